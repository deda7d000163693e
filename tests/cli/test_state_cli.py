"""Saving a run's complete state and continuing from it (`run --save-state-at`, `run --from-state`)."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.factories import write_scenario
from twin.cli import main

TOY = ('[parameters]\nwalkers = 60\ndistance_m = 80.0\n\n[[interventions]]\nname = "fast"\n'
       "[interventions.parameters]\nspeed_mps = 3.0\n")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "twin.cli", *map(str, args)], capture_output=True, text=True)


@pytest.mark.slow
def test_a_run_saves_states_and_continues_exactly(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, TOY, duration_s=120)
    full, rest = tmp_path / "full", tmp_path / "rest"
    assert main(["run", str(sc), "--out", str(full), "--save-state-at", "30", "--save-state-at", "61.5",
                 "--quiet"]) == 0
    states = sorted(p.name for p in (full / "states").iterdir())
    assert states == ["state_t000030.npz", "state_t000062.npz"]  # 61.5 s moved up onto the 1 s steps
    assert main(["run", "--from-state", str(full / "states" / "state_t000030.npz"), "--out", str(rest),
                 "--quiet"]) == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (full, rest))
    assert a["kpis"] == b["kpis"] and b["from_state"]["time_s"] == 30.0
    assert pd.read_csv(full / "timeseries.csv").equals(pd.read_csv(rest / "timeseries.csv"))
    bundle = json.loads((rest / "bundle.json").read_text())
    assert bundle["from_state"]["time_s"] == 30.0


def test_continue_as_another_variant(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, TOY, duration_s=120)
    base = tmp_path / "base"
    assert main(["run", str(sc), "--out", str(base), "--save-state-at", "20", "--quiet"]) == 0
    state = base / "states" / "state_t000020.npz"
    out = tmp_path / "fast"
    assert main(["run", "--from-state", str(state), "--intervention", "fast", "--out", str(out), "--quiet"]) == 0
    s = json.loads((out / "summary.json").read_text())
    b = json.loads((base / "summary.json").read_text())
    assert s["variant"] == "fast" and s["kpis"]["mean_time_s"] < b["kpis"]["mean_time_s"]
    ts = pd.read_csv(out / "timeseries.csv")
    base_ts = pd.read_csv(base / "timeseries.csv")
    before = ts["time_s"] <= 20
    assert ts[before].equals(base_ts[base_ts["time_s"] <= 20])  # the shared past is the baseline's
    # --set alone keeps the state's variant and adds to it
    out2 = tmp_path / "set"
    assert main(["run", "--from-state", str(state), "--set", "speed_mps=2.0", "--out", str(out2), "--quiet"]) == 0
    assert json.loads((out2 / "summary.json").read_text())["variant"] == "baseline"


def test_state_file_is_safe_to_load(tmp_path, tiny_city):
    """numpy arrays and JSON only: it loads with allow_pickle=False and names its run."""
    sc = write_scenario(tmp_path, tiny_city, TOY, duration_s=60)
    assert main(["run", str(sc), "--out", str(tmp_path / "r"), "--save-state-at", "10", "--quiet"]) == 0
    with np.load(tmp_path / "r" / "states" / "state_t000010.npz", allow_pickle=False) as z:
        meta = json.loads(bytes(z["__meta__"]).decode())
        assert z["pos"].dtype == np.float64 and z["pos"].shape == (60, 2)
    assert meta["format"] == "citytwin-state/1" and meta["model_name"] == "toy" and meta["variant"] == "baseline"
    assert meta["time_s"] == 10.0 and len(meta["city_fingerprint"]) == 64


@pytest.mark.slow
@pytest.mark.parametrize("case", ["not a state", "other model", "changed city", "seed", "at the end", "bad variant"])
def test_bad_continuations_are_clear_errors(case, tmp_path, tiny_city):
    city = tmp_path / "city"
    shutil.copytree(tiny_city, city)
    sc = write_scenario(tmp_path, city, TOY, duration_s=60)
    run = tmp_path / "r"
    assert main(["run", str(sc), "--out", str(run), "--save-state-at", "10", "--save-state-at", "60", "--quiet"]) == 0
    state = run / "states" / "state_t000010.npz"
    out = tmp_path / "out"
    extra, expect = [], ""
    if case == "not a state":
        state = tmp_path / "fake.npz"
        np.savez(state, x=np.zeros(3))
        expect = "not a CityTwin state file"
    elif case == "other model":
        other = ROOT / "scenarios" / "station_evening_peak.toml"
        extra, expect = [other], "model 'toy'"
    elif case == "changed city":
        (city / "city.toml").write_text((city / "city.toml").read_text() + "\n# edited\n")
        expect = "not the one the state was saved on"
    elif case == "seed":
        extra, expect = ["--seed", "3"], "--seed cannot be combined"
    elif case == "at the end":
        state, expect = run / "states" / "state_t000060.npz", "nothing left to run"
    else:
        extra, expect = ["--intervention", "nope"], 'no intervention named "nope"'
    r = cli("run", *extra[:1] if case == "other model" else [], "--from-state", state, "--out", out,
            *([] if case == "other model" else extra))
    assert r.returncode == 2, r.stderr
    assert expect in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def evening_peak_until(tmp_path, duration_s: float):
    """The bundled evening peak, cut short: a copy whose city and timetable are absolute paths."""
    src = ROOT / "scenarios" / "station_evening_peak.toml"
    text = src.read_text(encoding="utf-8")
    for rel in ('"../gis_data/demo_city"', '"station_evening_peak_trains.csv"'):
        assert rel in text
        text = text.replace(rel, json.dumps(str((src.parent / rel.strip('"')).resolve())))
    assert "duration_s = 1800\n" in text
    sc = tmp_path / src.name
    sc.write_text(text.replace("duration_s = 1800\n", f"duration_s = {duration_s}\n"), encoding="utf-8")
    return sc


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 20 simulated minutes of the evening peak: ~1 min alone, more on a busy machine
def test_evening_peak_restored_at_600_s_ends_exactly_like_the_uninterrupted_run(tmp_path):
    """The issue's acceptance check: the station's evening peak, saved at 600 s, restored, run to the end.
    The run ends at 900 s, not 1800 s: by 600 s every train has emptied (the last at 450 s), so the
    restored state already holds the whole crowd and its queues; the last 15 minutes add only time."""
    sc = evening_peak_until(tmp_path, 900)
    full, rest = tmp_path / "full", tmp_path / "rest"
    assert main(["run", str(sc), "--out", str(full), "--save-state-at", "600", "--quiet"]) == 0
    assert main(["run", "--from-state", str(full / "states" / "state_t000600.npz"), "--out", str(rest),
                 "--quiet"]) == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (full, rest))
    assert a["kpis"] == b["kpis"]
    assert a["kpis"]["agents_total"] == 9000
    assert pd.read_csv(full / "timeseries.csv").equals(pd.read_csv(rest / "timeseries.csv"))
