"""Forcings the bundled models declare for live mode (docs/live.md): measured rain replaces the flood's
forecast rain from its time on; police reports close roads; GTFS-realtime delays move the station's
trains."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from agents.station.demand import Train, apply_delays, cancelled_trains
from agents.station.model import StationDispersalModel as StationModel
from tests.conftest import DEMO_CITY
from tests.factories import write_scenario
from twin.core.errors import UserError
from twin.core.model_contract import splice_series
from twin.live.feeds import open_feed
from twin.live.loop import LiveSettings, LiveTwin
from twin.live.synth import replay, synth
from twin.scenario.scenario import load_scenario
from tests.twin.live_servers import BytesServer
from tests.twin.test_live_feeds import cancellations_message


def test_splice_series_follows_the_plan_until_the_first_reading():
    plan = [[0, 10.0], [300, 40.0], [600, 20.0], [900, 0.0]]
    assert splice_series(plan, []) == plan
    assert splice_series(plan, [(300, 50.0), (300, 54.0), (600, 52.0)]) == [[0, 10.0], [300, 52.0]]
    assert splice_series(plan, [(450, 40.0)]) == [[0, 10.0], [300, 40.0]]  # same value: no new step


@pytest.mark.slow  # the flood model on the demo city is built three times (truth, live, at the first gauge)
def test_flood_rain_gauges_drive_the_live_run_and_police_reports_close_roads(tmp_path):
    body = ('[parameters]\ncell_size_m = 40.0\nrain = "design_storm"\nstorm_return_period_yr = 50\n'
            'storm_duration_min = 30\nevacuate = false\n')
    scenario = write_scenario(tmp_path, DEMO_CITY, body, model="flood", duration_s=600, seed=5)
    sc = load_scenario(scenario)
    truth = {"rain_scale": 1.5, "closed_roads": ["R00113"], "road_closure_s": 300}
    synth(sc, truth, tmp_path / "rec")
    msgs = [json.loads(x) for x in (tmp_path / "rec" / "messages.jsonl").read_text().splitlines()]
    assert {m["sensor"] for m in msgs} >= {"RG1", "RG2", "RG3", "WL1", "POLICE"}
    drop = tmp_path / "drop"
    drop.mkdir()
    replay(tmp_path / "rec", f"folder:{drop}", 0)
    twin = LiveTwin(sc, [open_feed(f"folder:{drop}")], tmp_path / "live",
                    LiveSettings(members=0, stop_when_silent_s=10.0, poll_s=0.01), log=None)
    s = twin.run_until()
    assert s["time_s"] == 600.0 and {"rain", "hyetograph", "closed_roads", "road_closure_s"} <= set(s["forced"])
    assert twin.forced["closed_roads"] == ["R00113"] and twin.forced["road_closure_s"] == 300.0
    live = pd.read_csv(tmp_path / "live" / "timeseries.csv").set_index("time_s")
    true = pd.read_csv(tmp_path / "rec" / "truth" / "timeseries.csv").set_index("time_s")
    plan_rain = twin.run.model.rain  # the live model's rain: the plan until 300 s, the gauges' mean after
    rain_live = live.rain_volume_m3.loc[600] - live.rain_volume_m3.loc[300]
    rain_true = true.rain_volume_m3.loc[600] - true.rain_volume_m3.loc[300]
    assert abs(rain_live / rain_true - 1) < 0.03  # measured rain in = rain in the model (gauge noise ±2 mm/h)
    # before the first gauge reading the live model had the plan's (smaller) storm
    assert live.rain_volume_m3.loc[240] < 0.75 * true.rain_volume_m3.loc[240]  # the truth rains 1.5 ×
    assert plan_rain.edges_s[0] == 0.0


def test_gtfs_realtime_delays_move_the_platforms_trains_not_yet_arrived():
    trains = [Train(0, 0.0, 100), Train(1, 90.0, 100), Train(1, 600.0, 100), Train(2, 180.0, 100)]
    got = apply_delays(trains, ["P2 480 120", "P3 60 200", "P2 300 60"], ["P1", "P2", "P3"])
    # P2's latest report (480 s at 120 s) moves both its trains (90 + 480 is after the report); P3's
    # train had arrived (180 + 60 < 200... no: 240 >= 200, so it moves too); P1 has no report
    assert [(t.source, t.arrival_s) for t in got] == [(0, 0.0), (1, 570.0), (1, 1080.0), (2, 240.0)]
    late = apply_delays([Train(0, 0.0, 10)], ["P1 30 100"], ["P1"])
    assert late[0].arrival_s == 0.0  # it had arrived (0 + 30 < 100): nothing to move
    # a delay reported, then cleared: the train that arrived in between stays late, the next is on time
    cleared = apply_delays([Train(0, 270.0, 10), Train(0, 810.0, 10)], ["P1 480 120", "P1 0 780"], ["P1"])
    assert [t.arrival_s for t in cleared] == [750.0, 810.0]
    # the same reports in another order in the list: the order reported counts
    assert apply_delays([Train(0, 270.0, 10), Train(0, 810.0, 10)], ["P1 0 780", "P1 480 120"], ["P1"]) == cleared
    with pytest.raises(UserError, match='write "platform delay_s reported_s"'):
        apply_delays(trains, ["P2 480"], ["P1", "P2", "P3"])
    with pytest.raises(UserError, match="train_delays, entry 1"):
        apply_delays(trains, ["P9 480 0"], ["P1", "P2", "P3"])
    # the station turns the feed's readings into that parameter, the latest per platform counting
    p = StationModel.forced_parameters(None, "train_delay_s", [(120.0, "P2", 480.0), (200.0, "P3", 60.0)])
    assert p == {"train_delays": ["P2 480 120", "P3 60 200"]}


def test_cancelled_trains_are_named_by_platform_and_planned_arrival():
    trains = [Train(0, 0.0, 10), Train(1, 120.0, 10), Train(1, 600.0, 10), Train(2, 100.0, 10)]
    arrivals = [0.0, 120.0, 900.0, 100.0]  # after delays: P2's second train is 300 s late
    assert cancelled_trains(trains, ["P2 150 60", "P2 630 700", "P1 0 30", "P3 500 0"], ["P1", "P2", "P3"],
                            arrivals) == {1, 2}  # nearest within 90 s, not yet arrived (P1's had; P3 has none at 500)
    with pytest.raises(UserError, match="train_cancellations, entry 1"):
        cancelled_trains(trains, ["P9 100 0"], ["P1", "P2", "P3"], arrivals)
    # a feed repeats a cancellation in every snapshot: the station counts it once, at its first report
    p = StationModel.forced_parameters(None, "cancelled_arrival_in_s", [(60.0, "P2", 840.0), (90.0, "P2", 810.0)])
    assert p == {"train_cancellations": ["P2 900 60"]}


def test_a_gtfs_realtime_cancellation_over_http_takes_the_train_out_of_the_live_station(tmp_path):
    """The railway's endpoint (a real local HTTP server) reports trip T2 to P2 at 120 s cancelled at 60 s
    (and one to a platform the station lacks): the live station never sees that train's passengers."""
    from agents.station.model import StationDispersalModel
    from tests.agents.station.conftest import make_city
    from twin.core.sensors import Sensor, sensors_frame

    city = make_city()
    city.save(tmp_path / "station")
    sensors = [Sensor("RAIL-cancelled", "train_feed", 500030.0, 3000015.0, "cancelled_arrival_in_s", "s", "sources",
                      "*"), Sensor("C-N1", "gate_counter", 500012.0, 3000030.0, "exited", "persons", "gates", "N1",
                                   mode="count")]
    sensors_frame(sensors, city.crs).to_file(tmp_path / "station" / "sensors.geojson", driver="GeoJSON")
    body = ('[parameters]\ntrains = ["P1 0 40", "P2 120 30", "P2 200 20"]\nrelease_spread_s = 10.0\n'
            "share_walk = 1.0\nshare_metro = 0.0\nshare_bus = 0.0\nshare_taxi = 0.0\n")
    sc = load_scenario(write_scenario(tmp_path, tmp_path / "station", body, model="station_dispersal",
                                      duration_s=240, seed=2))
    start = 1_800_000_000
    server = BytesServer(cancellations_message(start + 60, {"T2": [("P2", start + 120)], "T5": [("P9", start + 150)]}))
    drop = tmp_path / "drop"  # the gate counter's folder: its reading at 240 s moves the clock to the end
    drop.mkdir()
    (drop / "counts.csv").write_text("sensor,time,value,unit\nC-N1,240,3,persons\n", encoding="utf-8")
    try:
        feeds = [open_feed(f"gtfs-rt+http://127.0.0.1:{server.port}/rt.pb#sensor=RAIL", poll_s=0.0),
                 open_feed(f"folder:{drop}")]
        twin = LiveTwin(sc, feeds, tmp_path / "live", LiveSettings(members=0, start_epoch_s=start, poll_s=0.01),
                        log=None)
        s = twin.run_until()
    finally:
        server.stop()
    assert twin.forced == {"train_cancellations": ["P2 120 60"]}
    m = twin.run.model
    assert isinstance(m, StationDispersalModel) and m.N == 90
    assert m.current_kpis()["agents_total"] == 60  # 40 + 20: the 30 of the cancelled train never came
    assert m.finished and 210 < s["time_s"] <= 240  # and nobody waits for them: the station clears
    obs = pd.read_parquet(tmp_path / "live" / "observations.parquet").set_index("feature")
    assert obs.loc["P2", "fate"] == "used" and obs.loc["P2", "value"] == 60.0
    assert obs.loc["P9", "fate"] == "invalid" and "'P9' is no feature of layer sources" in obs.loc["P9", "reason"]
    assert "forcing: cancelled_arrival_in_s set train_cancellations" in (tmp_path / "live" / "log.txt").read_text()


def test_a_forcing_reading_the_model_refuses_is_invalid_and_the_twin_goes_on(tmp_path):
    from tests.factories import X0, Y0, make_tiny_city
    from twin.core.city import City
    from twin.core.sensors import Sensor, sensors_frame

    city = make_tiny_city(tmp_path)
    sensors = [Sensor("SPD", "speed_gauge", X0 + 5, Y0 + 5, "speed_factor", "-", interval_s=10.0),
               Sensor("E1", "people_counter", X0 + 25, Y0 + 25, "walkers_east", "-", "buildings", "B00001")]
    sensors_frame(sensors, City.load(city).crs).to_file(city / "sensors.geojson", driver="GeoJSON")
    sc = load_scenario(write_scenario(tmp_path, city, "[parameters]\nwalkers = 20\n", duration_s=60, seed=2))
    drop = tmp_path / "drop"
    drop.mkdir()  # a speed factor of 50 is outside speed_profile's range (0..10): the toy refuses it
    (drop / "a.csv").write_text("sensor,time,value,unit\nSPD,20,1.5,-\nSPD,40,50,-\nE1,60,3,-\n", encoding="utf-8")
    twin = LiveTwin(sc, [open_feed(f"folder:{drop}")], tmp_path / "live",
                    LiveSettings(members=0, poll_s=0.01, stop_when_silent_s=10.0), log=None)
    s = twin.run_until()
    assert s["time_s"] == 60.0 and twin.forced["speed_profile"] == [[0.0, 1.0], [20.0, 1.5]]
    obs = pd.read_parquet(tmp_path / "live" / "observations.parquet").set_index("time_s")
    assert obs.loc[20.0, "fate"] == "used" and obs.loc[40.0, "fate"] == "invalid"
    assert obs.loc[40.0, "reason"].startswith("the model refused it:") and "speed_profile" in obs.loc[40.0, "reason"]
    assert s["feeds"][f"folder:{drop}"]["invalid"] == 1 and twin.readings["speed_factor"] == [(20.0, "", 1.5)]
