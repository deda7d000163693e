"""citytwin calibrate / sensitivity / explore on the command line: results, and exit 2 with one
paragraph for bad input, with nothing written."""
import math

import pandas as pd
import pytest

from tests.factories import write_scenario
from twin.cli import main

PI = math.pi


@pytest.mark.slow
def test_sensitivity_and_explore_cli(tmp_path, tiny_city, capsys):
    sc = write_scenario(tmp_path, tiny_city, model="ishigami", duration_s=1, name="ish")
    out = tmp_path / "sa"
    vary = [a for i in (1, 2, 3) for a in ("--vary", f"x{i}={-PI}..{PI}")]
    assert main(["sensitivity", str(sc), *vary, "--samples", "16", "--workers", "1", "--quiet", "--out", str(out)]) == 0
    assert "sobol: 80 runs" in capsys.readouterr().out
    assert set(pd.read_csv(out / "sensitivity.csv")["parameter"]) == {"x1", "x2", "x3"}
    ex = tmp_path / "ex"
    toy = write_scenario(tmp_path, tiny_city, '[parameters]\nwalkers = 10\ndistance_m = 30\n[[interventions]]\n'
                         'name = "fast"\n[interventions.parameters]\nspeed_mps = 1.5\n', duration_s=60, name="toy")
    assert main(["explore", str(toy), "--uncertain", "speed_mps=0.5..1.5", "--uncertain", "distance_m=20..40",
                 "--samples", "4", "--target", "mean_time_s<=30", "--workers", "1", "--quiet", "--out", str(ex)]) == 0
    text = capsys.readouterr().out
    assert "2 variants × 4 futures = 8 runs" in text and "robustness.csv" in text
    assert len(pd.read_parquet(ex / "futures.parquet")) == 8


@pytest.mark.parametrize("args, message", [
    (["explore", "{sc}", "--uncertain", "speed=0.5..1.5", "--samples", "4"], 'no parameter "speed" (did you mean "speed_mps"?)'),
    (["explore", "{sc}", "--uncertain", "speed_mps=2..1", "--samples", "4"], "LOW (2) must be less than HIGH (1)"),
    (["explore", "{sc}", "--uncertain", "speed_mps=0.5..1.5", "--samples", "4", "--target", "walkers<=3"],
     'no KPI "walkers"'),
    (["explore", "{sc}", "--uncertain", "speed_mps=0.5..1.5", "--samples", "1"], "--samples"),
    (["sensitivity", "{sc}", "--vary", "walkers=0..10"], "out of range"),
    (["sensitivity", "{sc}", "--vary", "speed_mps=0.5..1.5", "--method", "fast"], '--method "fast"'),
    (["sensitivity", "{sc}", "--vary", "speed_mps=0.5..1.5", "--samples", "10"], "power of two"),
    (["sensitivity", "{sc}"], "--vary is needed"),
    (["calibrate", "{sc}", "--observed", "{tmp}/none.csv", "--fit", "speed_mps=0.5..1.5"], "no such file"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, tiny_city, capsys, args, message):
    sc = write_scenario(tmp_path, tiny_city, name="toy")
    out = tmp_path / "out"
    argv = [a.format(sc=sc, tmp=tmp_path) for a in args] + ["--quiet", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("citytwin: error:") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
