import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.factories import write_scenario
from twin.cli import main


@pytest.mark.slow
def test_compare_cli_end_to_end(tmp_path, tiny_city, capsys):
    sc = write_scenario(tmp_path, tiny_city, '[parameters]\nwalkers = 20\n\n[[interventions]]\nname = "fast"\n'
                        "[interventions.parameters]\nspeed_mps = 1.5\n", replications=5)
    out = tmp_path / "cmp"
    assert main(["compare", str(sc), "--replications", "2", "--workers", "1", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 variants × 2 replications = 4 runs" in text and "report.html" in text
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["variant"]) == {"baseline", "fast"} and (table["n"] == 2).all()
    assert sorted(p.parent.name for p in out.glob("runs/*/rep-*/summary.json")) == ["rep-000", "rep-000", "rep-001",
                                                                                    "rep-001"]
    seeds = {json.loads(p.read_text())["seed"] for p in out.glob("runs/*/rep-001/summary.json")}
    assert seeds == {2}  # scenario seed 1 + replication 1, in both variants
    # A second call reuses every run.
    assert main(["compare", str(sc), "--replications", "2", "--workers", "1", "--quiet", "--out", str(out)]) == 0
    assert "(0 run now, 4 reused)" in capsys.readouterr().out


@pytest.mark.slow
def test_compare_with_a_time_series_parameter(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, '[parameters]\nwalkers = 10\nspeed_profile = [[0, 1.0], [20, 2.0]]\n\n'
                        '[[interventions]]\nname = "slow"\n[interventions.parameters]\nspeed_profile = [[0, 0.5]]\n')
    out = tmp_path / "cmp"
    assert main(["compare", str(sc), "--replications", "1", "--workers", "1", "--quiet", "--out", str(out)]) == 0
    runs = pd.read_parquet(out / "runs.parquet")
    assert runs.set_index("variant").loc["slow", "speed_profile"] == "[0.0, 0.5]"


@pytest.mark.parametrize("body, expected", [
    ('[experiment]\nmethod = "random"\n[experiment.parameters]\nwalkers = [1]\n', 'method = "random" is unknown'),
    ('[experiment]\nmethod = "grid"\n[experiment.parameters]\nwalkrs = [1, 2]\n', '(did you mean "walkers"?)'),
    ('[experiment]\nmethod = "lhs"\nsamples = 0\n[experiment.parameters]\nspeed_mps = {min = 1, max = 2}\n',
     "samples must be"),
])
def test_bad_experiment_exits_2(tmp_path, tiny_city, capsys, body, expected):
    sc = write_scenario(tmp_path, tiny_city, body)
    out = tmp_path / "never"
    assert main(["compare", str(sc), "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "[experiment]" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.slow
def test_bad_experiment_exits_2_in_a_real_process(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, '[experiment]\nmethod = "grid"\n[experiment.parameters]\nwalkers = []\n')
    r = subprocess.run([sys.executable, "-m", "twin.cli", "compare", str(sc), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "parameters.walkers: the list of values is empty" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()
