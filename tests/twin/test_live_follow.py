"""Following a live run's folder without Qt (twin.live.follow, Session.follow_live): what the app's
live mode draws (the now-line, the forecast fan, sensor markers, forecast alerts) read from the
files a real live twin wrote."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.factories import X0, Y0, make_tiny_city, write_scenario
from tests.twin.live_servers import wait_for
from twin.core.city import City
from twin.core.sensors import Sensor, read_sensors, sensors_frame
from twin.live.feeds import open_feed
from twin.live.follow import LiveFolder
from twin.live.loop import LiveSettings, LiveTwin
from twin.live.synth import replay, synth
from twin.scenario.scenario import load_scenario
from twin.session import Session

BODY = "[parameters]\nwalkers = 100\ndistance_m = 120\njitter_mps = 0.3\n\n[alerts.many_done]\namber = 20\nred = 40\n"


def live_world(folder):
    """A tiny city with sensors of the toy model, its scenario, and a record of a truth whose walkers
    speed up by half at 30 s."""
    city = make_tiny_city(folder)
    sensors = [Sensor("SPD", "speed_gauge", X0 + 5, Y0 + 5, "speed_factor", "-", interval_s=10.0),
               Sensor("E1", "people_counter", X0 + 25, Y0 + 25, "walkers_east", "-", "buildings", "B00001", 1.0, 5.0),
               Sensor("M1", "grid", X0 + 100, Y0 + 50, "max_count", "-", noise_sd=0.5, interval_s=10.0)]
    sensors_frame(sensors, City.load(city).crs).to_file(city / "sensors.geojson", driver="GeoJSON")
    scenario = write_scenario(folder, city, BODY, duration_s=120, seed=3)
    synth(load_scenario(scenario), {"speed_profile": [[0, 1.0], [30, 1.5]]}, folder / "record")
    return scenario, folder / "record"


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("follow")
    scenario, record = live_world(d)
    drop = d / "drop"
    drop.mkdir()
    replay(record, f"folder:{drop}", 0)
    twin = LiveTwin(load_scenario(scenario), [open_feed(f"folder:{drop}")], d / "live",
                    LiveSettings(forecast_interval_s=40.0, horizon_s=40.0, members=3, stop_when_silent_s=20.0,
                                 poll_s=0.01), log=None)
    twin.run_until()
    return scenario, d / "live"


def test_a_live_folder_reads_as_now_fans_sensors_and_alerts_each_handed_out_once(live_run):
    scenario, out = live_run
    sensors = read_sensors(load_scenario(scenario).load_city())
    f = LiveFolder(out, sensors)
    snap = f.read()
    assert snap.now_s == 120.0 and snap.scenario == str(scenario.resolve()) and snap.issued_at == 80.0
    ts = pd.read_csv(out / "timeseries.csv")
    assert [r["time_s"] for r in snap.new_rows] == ts.time_s.tolist()
    # the fan: the latest forecast's quantiles over its horizon, from now on, each member's line in it
    q = pd.read_parquet(out / "forecasts.parquet")
    q = q[(q.issued_at == 80.0) & (q.name == "kpi.walkers_done")].sort_values("lead_s")
    fan = snap.fans["walkers_done"]
    np.testing.assert_array_equal(fan.time_s, 80.0 + q.lead_s.to_numpy())
    np.testing.assert_array_equal(fan.p90, q.p90.to_numpy())
    assert (fan.p10 <= fan.p50).all() and (fan.p50 <= fan.p90).all() and (fan.p90 > fan.p10).any()
    assert sorted(fan.members) == [1, 2, 3] and all(len(v) == len(fan.time_s) for v in fan.members.values())
    # sensors: the latest used reading of each, shaded among its kind, the model's value beside it
    obs = pd.read_parquet(out / "observations.parquet")
    e1 = obs[(obs.sensor == "E1") & (obs.fate == "used")].sort_values("time_s").iloc[-1]
    m = {mk.sensor.id: mk for mk in snap.sensors}
    assert m["E1"].value == e1.value and m["E1"].time_s == e1.time_s and 0.0 <= m["E1"].shade <= 1.0
    assert np.isfinite(m["M1"].model_value) and "(model " in m["M1"].label
    alerts = pd.read_csv(out / "alerts.csv")
    assert len(alerts) and [a["message"] for a in snap.new_alerts] == alerts.message.tolist()
    assert any("forecast issued at 80 s" in line for line in snap.new_log)
    assert f.read() is None  # nothing new: nothing handed out again
    (out / "log.txt").open("a").write("[t =   120.0 s] a later line\n")
    again = f.read()
    assert again.new_rows == [] and again.new_alerts == [] and again.new_log == ["[t =   120.0 s] a later line"]
    assert snap.assimilation is None and again.assimilation is None  # skill.csv alone: no filter ran


def test_a_filters_tables_are_handed_out_when_they_change(live_run, tmp_path):
    import shutil

    _, out = live_run
    folder = shutil.copytree(out, tmp_path / "live")
    f = LiveFolder(folder)
    assert f.read().assimilation is None
    pd.DataFrame({"time_s": [0.0, 40.0], "parameter": "speed_mps", "mean": [1.1, 1.4], "p10": [0.8, 1.3],
                  "p50": [1.1, 1.4], "p90": [1.4, 1.5], "truth": None}).to_csv(folder / "parameters.csv", index=False)
    t = f.read().assimilation
    assert t.parameters["mean"].tolist() == [1.1, 1.4] and len(t.skill) == len(pd.read_csv(folder / "skill.csv"))
    (folder / "log.txt").open("a").write("[t =   120.0 s] a later line\n")
    assert f.read().assimilation is None  # the tables did not change: not read again


def test_the_session_follows_a_live_folder_and_opens_its_scenario(live_run):
    scenario, out = live_run
    s = Session()
    seen = []
    s.events.connect(lambda e: seen.append(e.type))
    assert s.follow_live(out)
    assert s.scenario.path.resolve() == scenario.resolve() and s.live_snapshot.now_s == 120.0
    assert seen.index("scenario_changed") < seen.index("live_started") < seen.index("live_changed")
    assert seen.count("log") >= 2  # following ..., and the forecast alerts
    # the levels now: the alert values the latest forecast started from (all its members alike at lead 0)
    q = pd.read_parquet(out / "forecasts.parquet")
    at80 = q[(q.issued_at == 80.0) & (q.lead_s == 0) & (q.name == "alert.many_done")]
    assert s.live_snapshot.alert_values["alert.many_done"] == at80.p50.iloc[0] and (at80.p10 == at80.p90).all()
    assert {a.key for a in s.alerts.current if a.rule.name == "crowded_east"} == {"B00001", "B00002", "B00003"}
    rule = next(r for r in s.alerts.rules if r.name == "many_done")
    assert s.alerts.rule_level("many_done")[0] == rule.level(at80.p50.iloc[0]) == 1  # amber: 20 and more done
    # the live model as last saved, restored off this thread and handed out by a later poll
    frames = []
    s.events.live_frame.connect(lambda e: frames.append(e.frame))
    wait_for(lambda: s.poll_live() is None and frames, 60, "the live state's frame")
    ts = pd.read_csv(out / "timeseries.csv")
    assert frames[0].time_s == 120.0 and frames[0].kpis["walkers_done"] == ts.walkers_done.iloc[-1]
    assert len(frames[0].positions) == 100
    s.stop_live()
    assert s.live is None and seen[-1] == "live_stopped"


def test_following_a_folder_without_a_live_run_and_without_a_scenario_says_what_to_do(tmp_path):
    s = Session()
    errors = []
    s.events.error.connect(lambda e: errors.append(e.message))
    assert not s.follow_live(tmp_path)
    assert "no live run has saved there yet" in errors[0]
