"""A twin experiment on the toy model (docs/assimilation.md): a hidden truth whose walkers are 30 %
faster than the prior's centre, counters east of two buildings read with noise, and
``citytwin assimilate`` with each filter: the assimilated forecasts of the headline KPI beat the
open loop's, the hidden speed is estimated closer to the truth than the prior, the run is
reproducible for a seed, and bad readings (missing, duplicated, wildly wrong) are survived."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.factories import X0, Y0, make_tiny_city, make_toy_twin_experiment, write_scenario
from twin.cli import main
from twin.core.city import City
from twin.core.errors import UserError
from twin.core.sensors import Sensor, sensors_frame
from twin.live.assimilate import rmse_table
from twin.live.synth import synth
from twin.scenario.scenario import load_scenario

TRUTH = 1.3  # speed_mps of the hidden truth; the prior is uniform over 0.6..1.6 (centre 1.1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = make_toy_twin_experiment(tmp_path_factory.mktemp("assim"), TRUTH)
    return world


def _assimilate(world, out, *extra, record=None, report=False):
    return main(["assimilate", str(world["scenario"]), "--record", str(record or world["record"]), "--out", str(out),
                 "--members", "8", "--estimate", "speed_mps=0.6..1.6", "--forecast-interval-s", "20",
                 "--horizon-s", "20", *extra, *([] if report else ["--no-report"])])


@pytest.mark.parametrize("method", ["pf", "enkf"])
def test_assimilation_beats_the_open_loop_and_finds_the_hidden_speed(world, method, capsys):
    out = world["dir"] / f"out_{method}"
    assert _assimilate(world, out, "--method", method, report=method == "pf") == 0
    printed = capsys.readouterr().out
    skill = pd.read_csv(out / "skill.csv")
    assert set(skill.method) == {"open_loop", "assimilated"}
    table = rmse_table(skill[skill.lead_s >= 5])
    rmse = table[table.kpi == "kpi.walkers_done"].set_index("method")["rmse"]
    assert rmse["assimilated"] < 0.7 * rmse["open_loop"]  # the headline KPI's forecasts got better
    params = pd.read_csv(out / "parameters.csv")
    assert list(params.columns) == ["time_s", "parameter", "mean", "p10", "p50", "p90", "truth"]
    assert (params.p10 <= params.p50).all() and (params.p50 <= params.p90).all()
    prior, final = params.iloc[0], params.iloc[-1]
    assert prior.time_s == 0 and final.truth == TRUTH
    assert abs(final["mean"] - TRUTH) < 0.75 * abs(prior["mean"] - TRUTH)  # closer than the prior
    assert final.p90 - final.p10 < prior.p90 - prior.p10  # and it is surer of it
    fc = pd.read_parquet(out / "forecasts.parquet")
    assert set(fc.method) == {"open_loop", "assimilated"} and sorted(set(fc.issued_at)) == [20.0, 40.0, 60.0]
    updates = pd.read_csv(out / "updates.csv")
    assert len(updates) == 14 and (updates.used == 2).all() and (updates.rejected == 0).all()
    res = pd.read_csv(out / "residuals.csv")
    used = res[res.fate == "used"]
    # the update pulls the members towards the readings
    assert (used.observed - used.after).abs().mean() < (used.observed - used.before).abs().mean()
    # the summary's skill, as printed: the headline KPI's RMSE by lead and the band's coverage
    summary = json.loads((out / "summary.json").read_text())
    by_lead = summary["headline_rmse_by_lead"]["kpi.walkers_done"]["20"]
    r20 = rmse_table(skill, 20.0)
    r20 = r20[r20.kpi == "kpi.walkers_done"].set_index("method")["rmse"]
    assert by_lead == pytest.approx(r20.to_dict())
    assert (f"RMSE kpi.walkers_done, open loop → assimilated: 5 s ") in printed
    assert (f"; 20 s {r20['open_loop']:.4g} → {r20['assimilated']:.4g} "
            f"({r20['assimilated'] / r20['open_loop']:.2f})\n") in printed
    scored = skill[skill.lead_s == 20]
    exact = [k for k, g in scored.groupby("kpi") if ((g.rmse == 0) & (g.crps == 0)).all()]
    assert summary["kpis_forecast_exactly"] == exact
    for m in ("open_loop", "assimilated"):
        moving = scored[(scored.method == m) & ~scored.kpi.isin(exact)]
        c = summary["coverage"][m]["20"]
        assert c["coverage"] == pytest.approx(moving.coverage.mean()) and c["kpis"] == moving.kpi.nunique()
        assert c["kpis_all"] == scored.kpi.nunique()
        assert f", 20 s {c['coverage']:.2f} (over {c['kpis']} KPIs and sensors" in printed.split(
            f"p10-p90 coverage, {m.replace('_', ' ')}: ")[1].split("\n")[0]
    if method == "pf":  # what a user sees: the estimates, residuals and skill as pictures in one page
        page = (out / "report.html").read_text(encoding="utf-8")
        for name in ("parameters", "residuals", "skill"):
            assert (out / f"{name}.png").stat().st_size > 5000
            assert f'alt="{name}" src="data:image/png;base64,' in page
        assert "speed_mps" in page and "E2" in page


def test_the_spread_floor_keeps_the_enkf_parameter_band_open(world, tmp_path):
    """--spread-floor 0.15 on speed 0.6..1.6: after every update the members' speeds keep a standard
    deviation of at least 0.15 (a p10-p90 band of about 0.38 for a normal spread), wider than the band
    without the floor at any time, and the estimate still ends closer to the truth than the prior."""
    assert _assimilate(world, tmp_path / "floor", "--method", "enkf", "--spread-floor", "0.15") == 0
    assert _assimilate(world, tmp_path / "none", "--method", "enkf") == 0
    floor, none = (pd.read_csv(tmp_path / name / "parameters.csv") for name in ("floor", "none"))
    band = (floor.p90 - floor.p10)[floor.time_s > 0]
    assert band.min() > 0.28 > (none.p90 - none.p10)[none.time_s > 0].min()
    assert abs(floor["mean"].iloc[-1] - TRUTH) < abs(floor["mean"].iloc[0] - TRUTH)


def test_a_model_error_flattens_the_particle_weights(world, tmp_path):
    ess = {}
    for name, extra in (("noise", []), ("model_error", ["--obs-error", "0.2"])):
        assert _assimilate(world, tmp_path / name, "--horizon-s", "1", "--forecast-interval-s", "60", "--temper", "0",
                           *extra) == 0
        ess[name] = pd.read_csv(tmp_path / name / "updates.csv").ess.iloc[0]
    assert ess["noise"] < ess["model_error"] <= 8


def test_an_assimilation_is_reproducible_for_a_seed_on_one_or_two_workers(world):
    a, b = world["dir"] / "rep_a", world["dir"] / "rep_b"
    assert _assimilate(world, a, "--seed", "5") == 0
    assert _assimilate(world, b, "--seed", "5", "--workers", "2") == 0
    for name in ("skill.csv", "parameters.csv", "residuals.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    pd.testing.assert_frame_equal(pd.read_parquet(a / "members.parquet"), pd.read_parquet(b / "members.parquet"))


def test_missing_duplicated_and_wild_readings_are_survived_and_counted(world, tmp_path):
    rec = tmp_path / "record"
    shutil.copytree(world["record"], rec)
    msgs = [json.loads(x) for x in (rec / "messages.jsonl").read_text().splitlines()]
    bad = []
    for m in msgs:
        if m["sensor"] == "E1" and m["time"] == 10.0:
            continue  # missing
        if m["sensor"] == "E2" and m["time"] == 15.0:
            bad.append(dict(m))  # duplicated
        if m["sensor"] == "E1" and m["time"] == 30.0:
            m = {**m, "value": 1e6}  # wildly wrong
        bad.append(m)
    bad += [[1, 2], {"sensor": "E2", "time": "noon", "value": 1}, {"sensor": "E1", "time": 25.0, "value": "abc"}]
    (rec / "messages.jsonl").write_text("".join(json.dumps(m) + "\n" for m in bad))
    out = tmp_path / "out"
    assert _assimilate(world, out, "--method", "pf", record=rec) == 0
    updates = pd.read_csv(out / "updates.csv").set_index("time_s")
    assert updates.loc[10.0, "observations"] == 1  # E1 missing: only E2 there
    assert updates.loc[15.0, "observations"] == 2  # E2 twice: one reading
    assert updates.loc[25.0, "observations"] == 2 and updates.loc[25.0, "used"] == 2  # "abc": no reading
    assert updates.loc[30.0, "rejected"] == 1 and updates.rejected.sum() == 1
    assert json.loads((out / "summary.json").read_text())["messages_skipped"] == 2
    res = pd.read_csv(out / "residuals.csv")
    wild = res[(res.time_s == 30.0) & (res.sensor == "E1")].iloc[0]
    assert wild.fate == "rejected" and wild.before == wild.after
    final = pd.read_csv(out / "parameters.csv").iloc[-1]
    assert np.isfinite(final["mean"]) and abs(final["mean"] - TRUTH) < 0.15



@pytest.mark.parametrize("method", ["pf", "enkf"])
def test_readings_averaged_over_update_every_s_make_one_update_per_window(world, tmp_path, method):
    """--update-every-s 20 on readings every 5 s: an update at 20, 40 and 60 s only, each from a
    sensor's mean reading over its window (four readings, three where a wildly wrong one was turned
    away, and counted, as it came), and the estimate still ends closer to the truth than the prior."""
    rec = tmp_path / "record"
    shutil.copytree(world["record"], rec)
    msgs = [json.loads(x) for x in (rec / "messages.jsonl").read_text().splitlines()]
    msgs = [{**m, "value": 1e6} if (m["sensor"], m["time"]) == ("E1", 30.0) else m for m in msgs]
    (rec / "messages.jsonl").write_text("".join(json.dumps(m) + "\n" for m in msgs))
    out = tmp_path / "out"
    assert _assimilate(world, out, "--method", method, "--update-every-s", "20", record=rec) == 0
    updates = pd.read_csv(out / "updates.csv").set_index("time_s")
    assert list(updates.index) == [20.0, 40.0, 60.0] and (updates.observations == 2).all()
    assert updates.rejected.to_dict() == {20.0: 0, 40.0: 1, 60.0: 0}
    res = pd.read_csv(out / "residuals.csv").set_index(["time_s", "sensor"])
    readings = pd.DataFrame(msgs)
    for (t, sid), row in res.iterrows():
        window = readings[(readings.sensor == sid) & (readings.time > t - 20) & (readings.time <= t)
                          & (readings.value < 1e6)]
        assert len(window) == (3 if (t, sid) == (40.0, "E1") else 4)
        assert row.observed == pytest.approx(window.value.mean())
    params = pd.read_csv(out / "parameters.csv")
    assert list(params.time_s) == [0.0, 20.0, 40.0, 60.0]
    assert abs(params["mean"].iloc[-1] - TRUTH) < abs(params["mean"].iloc[0] - TRUTH)

def test_bad_input_exits_2_with_a_message(world, tmp_path, capsys):
    assert _assimilate(world, tmp_path / "o1", record=tmp_path / "nowhere") == 2
    assert "not a record" in capsys.readouterr().err
    assert main(["assimilate", str(world["scenario"]), "--record", str(world["record"]), "--out",
                 str(tmp_path / "o2"), "--estimate", "speed=1..2"]) == 2
    assert 'no parameter "speed"' in capsys.readouterr().err
    assert _assimilate(world, tmp_path / "o3", "--members", "1") == 2
    assert "at least 2 members" in capsys.readouterr().err
    assert _assimilate(world, tmp_path / "o4", "--set", "speed_mps=1.2") == 2
    assert "either estimated or set" in capsys.readouterr().err
    # a parameter the model cannot change in a continued run (the number of walkers sizes its arrays)
    assert _assimilate(world, tmp_path / "o5", "--method", "enkf", "--estimate", "walkers=200..400") == 2
    assert "cannot continue a run with another value of" in capsys.readouterr().err
    assert _assimilate(world, tmp_path / "o6", "--kernel", "-1") == 2
    assert _assimilate(world, tmp_path / "o7", "--obs-error", "-0.1") == 2
    assert _assimilate(world, tmp_path / "o8", "--inflation", "0.5") == 2
    assert "--inflation 0.5" in capsys.readouterr().err
    assert _assimilate(world, tmp_path / "o9", "--rtps", "2") == 2
    assert "--rtps 2" in capsys.readouterr().err
    assert _assimilate(world, tmp_path / "o5r", "--method", "enkf", "--rerun-lag-s", "10", "--estimate",
                       "walkers=200..400") == 2
    err = capsys.readouterr().err
    assert "cannot continue a run with another value of" in err and "walkers" in err
    assert _assimilate(world, tmp_path / "o10", "--rerun-lag-s", "10") == 2  # the particle filter (the default)
    assert "--rerun-lag-s 10" in capsys.readouterr().err
    assert _assimilate(world, tmp_path / "o11", "--method", "enkf", "--rerun-lag-s", "-1") == 2
    assert "--rerun-lag-s -1" in capsys.readouterr().err
    assert _assimilate(world, tmp_path / "o12", "--method", "enkf", "--spread-floor", "0.9") == 2
    assert "--spread-floor 0.9" in capsys.readouterr().err
    assert _assimilate(world, tmp_path / "o13", "--spread-floor", "0.02") == 2  # the particle filter (the default)
    assert "--spread-floor 0.02" in capsys.readouterr().err
    assert _assimilate(world, tmp_path / "o14", "--update-every-s", "-5") == 2
    assert "--update-every-s -5" in capsys.readouterr().err
    hole = ["--set", 'speed_profile=[[0, 1.0], [10, "{late}"]]']
    assert _assimilate(world, tmp_path / "o15", *hole) == 2  # a hole with no --estimate to fill it
    err = capsys.readouterr().err
    assert '--set speed_profile: "{late}"' in err and "--estimate late=LOW..HIGH" in err
    assert _assimilate(world, tmp_path / "o16", *hole, "--estimate", "late=20..30") == 2  # outside the series' 0..10
    assert "speed_profile" in capsys.readouterr().err
    assert _assimilate(world, tmp_path / "o17", "--estimate", "late=1..2") == 2  # no hole holds it
    assert 'no --set value holds "{late}"' in capsys.readouterr().err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o5").exists()
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o3").exists()


def test_a_number_inside_a_list_parameter_is_estimated_through_a_hole_in_set(world, tmp_path):
    """``--set 'speed_profile=[[0, 1.0], [10, "{late}"]]' --estimate late=0.5..2.0``: the truth's walkers
    speed up 1.5 times from 10 s on, and the particle filter estimates that factor inside the list (as
    the station's delay of one train inside its list of delays: docs/assimilation.md). (The EnKF on
    this toy overshoots to 1.68-1.72 with or without --rerun-lag-s: its linear update on counters
    that saturate as the walkers arrive; the holes are filled the same way for both filters.)"""
    method = "pf"
    record = tmp_path / "late_record"
    synth(load_scenario(world["scenario"]), {"speed_profile": [[0, 1.0], [10, 1.5]]}, record)
    out = tmp_path / method
    assert main(["assimilate", str(world["scenario"]), "--record", str(record), "--out", str(out), "--members", "8",
                 "--set", 'speed_profile=[[0, 1.0], [10, "{late}"]]', "--estimate", "late=0.5..2.0",
                 "--method", method, "--forecast-interval-s", "20", "--horizon-s", "20", "--no-report"]) == 0
    params = pd.read_csv(out / "parameters.csv")
    assert set(params.parameter) == {"late"} and params.truth.isna().all()  # no parameter of the record's truth
    prior, final = params["mean"].iloc[0], params["mean"].iloc[-1]
    assert abs(final - 1.5) < 0.5 * abs(prior - 1.5), (prior, final)
    skill = pd.read_csv(out / "skill.csv")
    rmse = rmse_table(skill[skill.lead_s >= 5])
    rmse = rmse[rmse.kpi == "kpi.walkers_done"].set_index("method")["rmse"]
    assert rmse["assimilated"] < 0.7 * rmse["open_loop"]
    # the members ran with their own factors: the open loop's forecasts of a KPI spread over them
    m = pd.read_parquet(out / "members.parquet")
    m = m[(m.method == "open_loop") & (m.name == "kpi.walkers_done") & (m.lead_s == 20.0) & (m.issued_at == 20.0)]
    assert m.value.nunique() > 3


def test_the_enkf_corrects_the_declared_state_near_a_gauge(tmp_path, capsys):
    """The toy declares its max_count grid correctable; a gauge reads it with little noise. With
    --localise-m the forecasts start from corrected cells, so at lead 0 they read what the gauge read."""
    city = make_tiny_city(tmp_path)
    sensors = [Sensor("M1", "grid", X0 + 100, Y0 + 50, "max_count", "-", noise_sd=0.3, interval_s=5.0)]
    sensors_frame(sensors, City.load(city).crs).to_file(city / "sensors.geojson", driver="GeoJSON")
    scenario = write_scenario(tmp_path, city, "[parameters]\nwalkers = 300\ndistance_m = 60\njitter_mps = 0.3\n",
                              duration_s=30, seed=3)
    synth(load_scenario(scenario), {"speed_mps": TRUTH}, tmp_path / "record")
    lead0 = {}
    for name, extra in (("params", []), ("state", ["--localise-m", "20"])):
        out = tmp_path / name
        assert main(["assimilate", str(scenario), "--record", str(tmp_path / "record"), "--out", str(out),
                     "--method", "enkf", "--members", "8", "--estimate", "speed_mps=0.6..1.6",
                     "--forecast-interval-s", "10", "--horizon-s", "10", "--no-report", *extra]) == 0
        skill = pd.read_csv(out / "skill.csv")
        s = skill[(skill.kpi == "sensor.M1") & (skill.lead_s == 0) & (skill.method == "assimilated")]
        lead0[name] = float(np.sqrt(np.mean(s.rmse ** 2)))
    assert lead0["state"] < 0.5 * lead0["params"]
    # a model that declares nothing correctable: said before anything runs
    from twin.live.assimilate import Assimilation, AssimilationSettings

    from tests.toy_model import ToyModel

    class Bare(ToyModel):
        correctable = ()

    sc = load_scenario(scenario)
    sc.model_class = lambda: Bare
    with pytest.raises(UserError, match="declares no state a filter may correct"):
        Assimilation(sc, tmp_path / "record", [], AssimilationSettings(method="enkf", localise_m=10.0))


def test_a_counter_is_predicted_over_its_own_interval_even_after_a_missing_reading(tmp_path):
    city = make_tiny_city(tmp_path)
    sensors = [Sensor("C1", "people_counter", X0 + 25, Y0 + 25, "walkers_east", "-", "buildings", "B00001", 1.0, 10.0,
                      "count")]
    sensors_frame(sensors, City.load(city).crs).to_file(city / "sensors.geojson", driver="GeoJSON")
    scenario = write_scenario(tmp_path, city, "[parameters]\nwalkers = 300\ndistance_m = 60\n", duration_s=40, seed=3)
    rec = tmp_path / "record"
    synth(load_scenario(scenario), {}, rec)
    lines = [x for x in (rec / "messages.jsonl").read_text().splitlines() if json.loads(x)["time"] != 20.0]
    (rec / "messages.jsonl").write_text("\n".join(lines) + "\n")  # the reading at 20 s is lost
    out = tmp_path / "out"
    assert main(["assimilate", str(scenario), "--record", str(rec), "--out", str(out), "--members", "4",
                 "--horizon-s", "0.5", "--forecast-interval-s", "100", "--no-report"]) == 0
    res = pd.read_csv(out / "residuals.csv")
    truth = pd.read_csv(rec / "truth.csv").set_index("time_s")["value"]
    assert list(res.time_s) == [10.0, 30.0, 40.0]
    at30 = res[res.time_s == 30.0].iloc[0]
    # the members count the walkers over 20..30 s as the counter does, not over 10..30 s
    assert abs(at30.before - truth[30.0]) < 0.5 * truth[30.0]
    assert abs(at30.before - truth[30.0]) < abs(at30.before - (truth[20.0] + truth[30.0]))


WALL = {"updates.csv": ["wall_s"]}  # wall-clock times: the only columns a resumed run may change


# --update-every-s 30: stopped at 20 s with four readings gathered for the update at 30 s
@pytest.mark.parametrize("method, extra", [("pf", []), ("enkf", ["--localise-m", "20"]), ("enkf", ["--rerun-lag-s", "15"]),
                                           ("enkf", ["--update-every-s", "30", "--rerun-lag-s", "15"])])
def test_a_run_stopped_after_its_first_forecast_resumes_to_the_same_numbers(world, tmp_path, capsys, method, extra):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert _assimilate(world, whole, "--method", method, *extra) == 0
    assert not (whole / "checkpoint.zip").exists()
    # stopped at the first checkpoint (the forecast at 20 s): every table there, whole, marked incomplete
    assert _assimilate(world, parts, "--method", method, *extra, "--time-limit-s", "0") == 0
    assert "Run the same command again to go on" in capsys.readouterr().out
    summary = json.loads((parts / "summary.json").read_text())
    assert summary["complete"] is False and summary["time_s"] == 20.0 and summary["forecasts_issued"] == 1
    assert set(pd.read_parquet(parts / "forecasts.parquet").issued_at) == {20.0}
    updates = pd.read_csv(parts / "updates.csv")  # none yet with --update-every-s 30
    assert list(updates.time_s) == ([] if "--update-every-s" in extra else [5.0 * k for k in range(1, 5)])
    assert (parts / "checkpoint.zip").is_file() and not (parts / "report.html").exists()
    # the same --out with other options: refused, naming what differs
    assert _assimilate(world, parts, "--method", method, *extra, "--members", "6") == 2
    err = capsys.readouterr().err
    assert "--members: 8 then, 6 now" in err and "another --out" in err
    assert _assimilate(world, parts, "--method", method, *extra, "--set", "jitter_mps=0.2") == 2
    assert "scenario.parameters.jitter_mps: 0.3 then, 0.2 now" in capsys.readouterr().err
    saved = (parts / "checkpoint.zip").read_bytes()
    (parts / "checkpoint.zip").write_bytes(saved[:100])  # a checkpoint cut short (not written by citytwin)
    assert _assimilate(world, parts, "--method", method, *extra) == 2
    assert "the checkpoint cannot be read" in capsys.readouterr().err
    (parts / "checkpoint.zip").write_bytes(saved)
    if method == "pf":  # no checkpoint (stopped before the first): from the beginning, and it says so
        early = tmp_path / "early"
        shutil.copytree(parts, early)
        (early / "checkpoint.zip").unlink()
        assert _assimilate(world, early, "--method", method, *extra) == 0
        assert "no checkpoint to resume from; starting from the beginning" in capsys.readouterr().out
        pd.testing.assert_frame_equal(pd.read_csv(early / "skill.csv"), pd.read_csv(whole / "skill.csv"))
    assert _assimilate(world, parts, "--method", method, *extra) == 0
    assert "[t = 20 s] resumed from" in capsys.readouterr().out
    assert json.loads((parts / "summary.json").read_text())["complete"] is True
    assert not (parts / "checkpoint.zip").exists()
    for name in ("skill.csv", "parameters.csv", "residuals.csv", "updates.csv"):
        a, b = pd.read_csv(whole / name), pd.read_csv(parts / name)
        pd.testing.assert_frame_equal(a.drop(columns=WALL.get(name, [])), b.drop(columns=WALL.get(name, [])),
                                      check_exact=True, obj=name)
    for name in ("forecasts.parquet", "members.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(whole / name), pd.read_parquet(parts / name), check_exact=True,
                                      obj=name)
    a, b = (json.loads((d / "summary.json").read_text()) for d in (whole, parts))
    for key in ("wall_s", "mean_update_wall_s"):
        a.pop(key), b.pop(key)
    assert a == b
    # complete: run again, it says so and writes nothing
    before = {p.name: p.stat().st_mtime_ns for p in parts.iterdir()}
    assert _assimilate(world, parts, "--method", method, *extra) == 0
    assert "is complete" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in parts.iterdir()} == before


def test_members_run_again_over_the_lag_agree_with_their_updated_parameters(tmp_path):
    """With --rerun-lag-s, an update runs every member again from its state the lag before, with its new
    parameters: with a lag reaching back to the start, each member is then exactly the run its final
    parameters give from the start, its counter's counts included; without, it is not (its past ran on
    the prior's value)."""
    from twin.core.sensors import read_sensors
    from twin.live.assimilate import Assimilation, AssimilationSettings
    from twin.live.observe import Observer
    from twin.runs.runner import Run
    from twin.runs.uncertainty import parse_ranges

    city = make_tiny_city(tmp_path)
    sensors = [Sensor("C1", "people_counter", X0 + 25, Y0 + 25, "walkers_east", "-", "buildings", "B00001", 1.0, 10.0,
                      "count")]
    sensors_frame(sensors, City.load(city).crs).to_file(city / "sensors.geojson", driver="GeoJSON")
    scenario = write_scenario(tmp_path, city, "[parameters]\nwalkers = 300\ndistance_m = 60\n", duration_s=40, seed=3)
    synth(load_scenario(scenario), {"speed_mps": TRUTH}, tmp_path / "record")
    sc = load_scenario(scenario)
    ranges = parse_ranges(sc, ["speed_mps=0.6..1.6"], "--estimate")
    counter = Observer(sc.model_class(), read_sensors(sc.load_city())).state_sensors
    agree = {}
    for lag in (0.0, 100.0):
        f = Assimilation(sc, tmp_path / "record", ranges, AssimilationSettings(method="enkf", members=4, rerun_lag_s=lag),
                         log=None)
        f.start()
        prior = [m.params["speed_mps"] for m in f.members]
        f.catch_up(30.0)
        assert all(m.params["speed_mps"] != p for m, p in zip(f.members, prior))  # the updates moved them
        agree[lag] = []
        for m in f.members:
            fresh = Run(sc, "baseline", m.seed, dict(m.params), outputs=False)
            same = []
            for t in (10.0, 20.0, 30.0):  # the counter's cumulative count at each tick, as the member keeps it
                fresh.advance(t)
                same.append(m.cum[("C1", t)] == f.observer.read(fresh.model, counter)["C1"])
            agree[lag].append(np.array_equal(m.run.model.pos, fresh.model.pos) and all(same))
    assert all(agree[100.0]) and not any(agree[0.0])
