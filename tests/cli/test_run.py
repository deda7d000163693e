import json
import subprocess
import sys

import pandas as pd
import pytest
import rasterio

from tests.factories import write_scenario
from twin.cli import main


def citytwin(*args):
    """Run the real console entry point in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "twin.cli", *map(str, args)], capture_output=True, text=True)


@pytest.mark.slow
def test_run_writes_the_contract_outputs(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, '[parameters]\nwalkers = 50\n\n[[interventions]]\nname = "fast"\n'
                        "[interventions.parameters]\nspeed_mps = 2.0\n")
    out = tmp_path / "run"
    assert main(["run", str(sc), "--intervention", "fast", "--seed", "5", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["variant"] == "fast" and summary["seed"] == 5 and summary["model"] == "toy"
    assert summary["kpis"]["walkers_done"] == 50
    assert summary["units"]["mean_time_s"] == "s"
    assert 30 < summary["kpis"]["mean_time_s"] < 80  # 100 m at about 2 m/s
    ts = pd.read_csv(out / "timeseries.csv")
    assert list(ts.columns[:1]) == ["time_s"] and "walkers_done" in ts.columns
    assert ts["time_s"].is_monotonic_increasing and ts["walkers_done"].iloc[-1] == 50
    assert pd.read_parquet(out / "timeseries.parquet").equals(ts)
    with rasterio.open(out / "max_count.tif") as r:
        assert r.crs.to_epsg() == 32650 and r.read(1).max() >= 1
    bundle = json.loads((out / "bundle.json").read_text())
    assert bundle["seed"] == 5 and len(bundle["hash"]) == 16 and "mesa" in bundle["versions"]
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.slow
def test_same_seed_same_numbers(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 30\n")
    for name in ("a", "b"):
        assert main(["run", str(sc), "--out", str(tmp_path / name), "--quiet"]) == 0
    a, b = (json.loads((tmp_path / n / "summary.json").read_text())["kpis"] for n in ("a", "b"))
    assert a == b
    assert main(["run", str(sc), "--seed", "99", "--out", str(tmp_path / "c"), "--quiet"]) == 0
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["kpis"] != a


@pytest.mark.slow
def test_set_overrides_a_parameter(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city)
    assert main(["run", str(sc), "--set", "walkers=7", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["kpis"]["walkers_done"] == 7


@pytest.mark.slow
@pytest.mark.parametrize("body, expected", [
    ("[parameters]\nwalker = 3\n", 'unknown parameter "walker"'),
    ("[parameters]\nspeed_mps = \"3 km/h\"\n", "must be a number in m/s"),
    ("[parameters]\nspeed_mps = 9.0\n", "out of range"),
    ("[paramaters]\nwalkers = 3\n", '(did you mean "parameters"?)'),
    ('[[interventions]]\nname = "x"\n[interventions.parameters]\nspeed_sd = 1\n', '(did you mean "speed_sd_mps"?)'),
])
def test_scenario_typos_exit_2_without_traceback(tmp_path, tiny_city, body, expected):
    sc = write_scenario(tmp_path, tiny_city, body)
    out = tmp_path / "never"
    r = citytwin("run", sc, "--out", out)
    assert r.returncode == 2, r.stderr
    assert expected in r.stderr and str(sc) in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.slow
def test_unknown_model_and_missing_city(tmp_path, tiny_city):
    r = citytwin("run", write_scenario(tmp_path, tiny_city, model="station_dispersl"), "--out", tmp_path / "o")
    assert r.returncode == 2 and 'did you mean "station_dispersal"' in r.stderr
    r = citytwin("run", write_scenario(tmp_path, tmp_path / "nowhere", name="nocity"), "--out", tmp_path / "o")
    assert r.returncode == 2 and "no such city folder" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_unknown_intervention_names_the_variants(tmp_path, tiny_city):
    r = citytwin("run", write_scenario(tmp_path, tiny_city), "--intervention", "nope", "--out", tmp_path / "o")
    assert r.returncode == 2 and "baseline" in r.stderr


@pytest.mark.slow
def test_models_lists_and_describes(tmp_path):
    r = citytwin("models", "toy")
    assert r.returncode == 0 and "speed_mps" in r.stdout and "m/s" in r.stdout and "walkers_done" in r.stdout
