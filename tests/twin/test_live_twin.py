"""Live mode end to end on the toy model (docs/live.md): a synthetic record, replayed into a real
Mosquitto broker or a CSV folder, drives a live run whose forcing is the truth's; ensemble forecasts
are reproducible; a forecast alert comes before the truth crosses the threshold; bad feeds are
survived and counted; kill -9 and restart resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.factories import X0, Y0, make_tiny_city, write_scenario
from tests.twin.live_servers import Broker, wait_for
from twin.core.city import City
from twin.core.sensors import Sensor, sensors_frame
from twin.live.feeds import open_feed
from twin.live.loop import LiveSettings, LiveTwin
from twin.live.synth import replay, synth
from twin.scenario.scenario import load_scenario

TRUTH = {"speed_profile": [[0, 1.0], [30, 1.5]]}  # the hidden truth: walkers speed up by half at 30 s


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny city with sensors of the toy model, a scenario (speed factor 1 as planned) and a record
    of the truth."""
    d = tmp_path_factory.mktemp("live")
    city = make_tiny_city(d)
    c = City.load(city)
    sensors = [Sensor("SPD", "speed_gauge", X0 + 5, Y0 + 5, "speed_factor", "-", interval_s=10.0),
               Sensor("E1", "people_counter", X0 + 25, Y0 + 25, "walkers_east", "-", "buildings", "B00001", 1.0, 5.0),
               Sensor("M1", "grid", X0 + 100, Y0 + 50, "max_count", "-", noise_sd=0.5, interval_s=10.0),
               Sensor("G1", "gate_counter", X0, Y0, "exited", "persons", "gates", "G1", 1.0, 60.0, "count")]
    sensors_frame(sensors, c.crs).to_file(city / "sensors.geojson", driver="GeoJSON")
    scenario = write_scenario(d, city, "[parameters]\nwalkers = 100\ndistance_m = 120\njitter_mps = 0.3\n",
                              duration_s=120, seed=3)
    sc = load_scenario(scenario)
    record = d / "record"
    synth(sc, TRUTH, record)
    return {"dir": d, "scenario": scenario, "sc": sc, "record": record}


def _live(world, feeds, out, **kw):
    settings = LiveSettings(**{"forecast_interval_s": 20.0, "horizon_s": 30.0, "members": 4, "silence_s": 30.0,
                               "stop_when_silent_s": 20.0, "poll_s": 0.01, **kw})
    return LiveTwin(load_scenario(world["scenario"]), feeds, out, settings, log=None)


def _folder_feed(world, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    replay(world["record"], f"folder:{drop}", 0)
    return drop


def test_synth_writes_the_sensors_view_of_the_truth_with_seeded_noise(world, tmp_path):
    rec = json.loads((world["record"] / "record.json").read_text())
    assert rec["sensors"] == ["E1", "M1", "SPD"] and "G1" in rec["skipped"]  # the toy has no gates
    msgs = [json.loads(x) for x in (world["record"] / "messages.jsonl").read_text().splitlines()]
    assert len(msgs) == rec["messages"] == 24 + 12 + 12
    spd = [(m["time"], m["value"]) for m in msgs if m["sensor"] == "SPD"]
    assert spd[:3] == [(10.0, 1.0), (20.0, 1.0), (30.0, 1.5)]  # the gauge reads the truth's forcing
    truth = pd.read_csv(world["record"] / "truth.csv")
    e1 = truth[truth.sensor == "E1"].value.to_numpy()
    noisy = [m["value"] for m in msgs if m["sensor"] == "E1"]
    assert 0 < abs(pd.Series(noisy) - e1).mean() < 3  # noise of sd 1 was added
    again = synth(world["sc"], TRUTH, tmp_path / "again")
    assert (tmp_path / "again" / "messages.jsonl").read_bytes() == (world["record"] / "messages.jsonl").read_bytes()
    synth(world["sc"], TRUTH, tmp_path / "other", seed=4)
    assert (tmp_path / "other" / "messages.jsonl").read_bytes() != (world["record"] / "messages.jsonl").read_bytes()
    assert again["messages"] == rec["messages"]


def test_a_record_replayed_into_mosquitto_drives_the_live_run_with_the_truths_forcing(world, tmp_path):
    broker = Broker(tmp_path)
    try:
        feed = open_feed(broker.url + "/citytwin/#")
        twin = _live(world, [feed], tmp_path / "live", members=0)
        wait_for(lambda: feed.connected, 30, "the live twin to subscribe")
        assert replay(world["record"], broker.url + "/citytwin", 0) == 48
        # Every message through the broker before the twin reads them: run while they stream in, the
        # twin reaches --until on the first reading stamped 120 s and, rightly, stops there, so
        # whether the other readings of that last moment count would depend on the machine's load.
        wait_for(lambda: feed._q.qsize() == 48, 60, "the broker to deliver the whole record")
        result = twin.run_until()
    finally:
        broker.stop()
    out = tmp_path / "live"
    assert result["time_s"] == 120.0 and result["feeds"][feed.url]["used"] == 48
    live = pd.read_csv(out / "timeseries.csv")
    truth = pd.read_csv(world["record"] / "truth" / "timeseries.csv")
    pd.testing.assert_frame_equal(live, truth)  # speed measured in = speed in the model: the truth's run
    obs = pd.read_parquet(out / "observations.parquet")
    assert (obs.fate == "used").all() and set(obs.sensor) == {"E1", "M1", "SPD"}


@pytest.mark.slow  # two live runs with six 4-member forecasts each (about 4 s on an idle machine)
def test_forecasts_are_reproducible_scored_and_alert_before_the_truth_crosses(world, tmp_path):
    drop = _folder_feed(world, tmp_path)
    outs = []
    for k, workers in ((1, 1), (2, 1)):
        twin = _live(world, [open_feed(f"folder:{drop}")], tmp_path / f"live{k}", workers=workers)
        s = twin.run_until()
        assert s["forecasts"] == 6  # at 0, 20, ..., 100 s (none at the end: nothing lies ahead)
        outs.append(tmp_path / f"live{k}")
    f = [pd.read_parquet(o / "forecasts.parquet") for o in outs]
    pd.testing.assert_frame_equal(f[0], f[1])  # the same numbers again
    assert list(f[0].columns) == ["issued_at", "lead_s", "name", "p10", "p50", "p90", "n"]
    spread = f[0][f[0].name == "kpi.mean_time_s"]
    assert ((spread.p90 - spread.p10) > 0).any()  # the members differ (jitter drawn per member)
    assert (spread.p10 <= spread.p50).all() and (spread.p50 <= spread.p90).all()
    skill = pd.read_csv(outs[0] / "skill.csv")
    assert {"sensor.E1", "sensor.M1", "kpi.walkers_done"} <= set(skill.kpi)
    assert set(skill.against) == {"observed", "live"} and skill.crps.ge(0).all()
    assert 0 < skill[skill.kpi == "sensor.E1"].coverage.mean() <= 1
    # the alert "many done reaches red" (walkers_done >= 40) comes before the truth gets there
    truth = pd.read_csv(world["record"] / "truth" / "timeseries.csv")
    crossed = truth.time_s[truth.walkers_done >= 40].min()
    alerts = pd.read_csv(outs[0] / "alerts.csv")
    red = alerts[(alerts.rule == "many_done") & (alerts.level == "red")]
    assert len(red) and red.issued_at.min() < crossed
    first = red.iloc[0]
    assert abs(first.issued_at + first.lead_s - crossed) <= 10
    assert "of 4 members" in first.message


def test_garbage_silence_and_time_jumps_are_survived_and_counted(world, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a.csv").write_text(
        "sensor,time,value,unit\n"
        "SPD,10,1.0,-\n"
        "E1,20,90,-\n"
        "E1,nonsense,90,-\n"          # garbage
        "NOPE,25,1,-\n"               # unknown sensor
        "E1,999999,90,-\n"            # the clock jumps ahead
        "M1,30,2,-\n"
        "E1,5,90,-\n"                 # back in time (the model is not past it yet: still used)
        "SPD,40,2.0,-\n", encoding="utf-8")
    # it stops after 8 s of silence: time enough, on a loaded machine, for the late file below to be
    # dropped while it still listens
    twin = _live(world, [open_feed(f"folder:{drop}")], tmp_path / "live", members=2, silence_s=0.3,
                 stop_when_silent_s=8.0)
    th = threading.Thread(target=twin.run_until)
    th.start()
    wait_for(lambda: twin.run.time_s >= 40, 60, "the twin to reach 40 s")
    (drop / "b.csv").write_text("sensor,time,value,unit\nE1,10,90,-\n", encoding="utf-8")  # too late now
    th.join(60)
    assert not th.is_alive()
    s = twin.summary()
    assert s["time_s"] == 40.0  # it went as far as the feed's clock, then the feed fell silent
    c = s["feeds"][f"folder:{drop}"]
    assert (c["received"], c["used"], c["late"], c["invalid"], c["jumps"]) == (9, 5, 1, 3, 3)
    assert c["silences"] >= 1
    log = (tmp_path / "live" / "log.txt").read_text()
    assert "jumps 999979 s ahead" in log and "silent for" in log and "time went back from 30 s to 5 s" in log
    obs = pd.read_parquet(tmp_path / "live" / "observations.parquet")
    assert obs.fate.value_counts().to_dict() == {"used": 5, "invalid": 3, "late": 1}
    assert "unknown sensor 'NOPE' (not in the city's sensors layer)" in set(obs.reason)
    assert "at 10 s, the model was at 40 s" in set(obs.reason)
    prog = json.loads((tmp_path / "live" / "live.json").read_text())
    assert prog["forced"]["speed_profile"] == [[0.0, 1.0], [40.0, 2.0]]


@pytest.mark.slow  # two citytwin processes start (imports), one is killed
def test_a_twin_killed_with_sigkill_resumes_from_its_last_saved_state(world, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    lines = (world["record"] / "messages.jsonl").read_text().splitlines()
    msgs = [json.loads(x) for x in lines]
    first = [m for m in msgs if m["time"] <= 60]
    rest = [m for m in msgs if m["time"] > 60]

    def write(name, ms):
        pd.DataFrame([{k: m.get(k, "") for k in ("sensor", "time", "value", "unit")} for m in ms]).to_csv(
            drop / name, index=False)

    write("a.csv", first)
    out = tmp_path / "live"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "twin.cli", "live", str(world["scenario"]), "--feed", f"folder:{drop}", "--out",
           str(out), "--forecast-interval-s", "20", "--horizon-s", "20", "--members", "2", "--until", "120",
           "--stop-when-silent-s", "60"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def saved_60():
            assert p.poll() is None, p.stderr.read().decode()[-2000:]
            return (out / "live.json").is_file() and json.loads((out / "live.json").read_text())["time_s"] >= 60

        wait_for(saved_60, 120, "the twin to save its state at 60 s")
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
    saved = json.loads((out / "live.json").read_text())["time_s"]
    write("b.csv", rest)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resumed from the state at t = {saved:g} s" in r.stdout
    live = pd.read_csv(out / "timeseries.csv")
    truth = pd.read_csv(world["record"] / "truth" / "timeseries.csv")
    pd.testing.assert_frame_equal(live, truth)  # the interrupted twin ends where the truth did
    f = pd.read_parquet(out / "forecasts.parquet")
    assert sorted(f.issued_at.unique()) == [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    skill = pd.read_csv(out / "skill.csv")
    assert not skill.duplicated(["issued_at", "lead_s", "kpi"]).any()  # nothing scored twice across the restart
    assert set(skill.issued_at) >= {0.0, 20.0, 40.0, 60.0, 80.0}


@pytest.mark.slow  # starting worker processes under pytest-qt (spawn, not fork) takes most of it
def test_forecasts_on_worker_processes_equal_those_in_process(world, tmp_path):
    drop = _folder_feed(world, tmp_path)
    for k, workers in ((1, 1), (2, 2)):
        _live(world, [open_feed(f"folder:{drop}")], tmp_path / f"live{k}", workers=workers).run_until()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "live1" / "forecasts.parquet"),
                                  pd.read_parquet(tmp_path / "live2" / "forecasts.parquet"))


def test_members_run_at_their_own_resolution(world, tmp_path):
    """--member-set: the members take other parameters than the live run (here their walkers' speed
    jitter is off: the ensemble has no spread), and the live run's own numbers do not change."""
    drop = _folder_feed(world, tmp_path)
    outs = {}
    for name, member in (("full", {}), ("coarse", {"jitter_mps": 0.0})):
        twin = _live(world, [open_feed(f"folder:{drop}")], tmp_path / name, member_overrides=member)
        twin.run_until()
        outs[name] = tmp_path / name
    f = {k: pd.read_parquet(o / "forecasts.parquet") for k, o in outs.items()}
    kpi = {k: v[v.name == "kpi.mean_time_s"] for k, v in f.items()}
    assert ((kpi["full"].p90 - kpi["full"].p10) > 0).any()
    assert ((kpi["coarse"].p90 - kpi["coarse"].p10).abs() < 1e-9).all()
    obs = {k: pd.read_parquet(o / "observations.parquet") for k, o in outs.items()}
    pd.testing.assert_frame_equal(obs["full"], obs["coarse"])


def test_a_member_parameter_the_model_does_not_have_is_refused_by_name(world, tmp_path):
    r = subprocess.run([sys.executable, "-m", "twin.cli", "live", str(world["scenario"]), "--feed",
                        f"folder:{tmp_path}", "--out", str(tmp_path / "o"), "--member-set", "jiter_mps=0"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and 'unknown parameter "jiter_mps"' in r.stderr and "jitter_mps" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()
