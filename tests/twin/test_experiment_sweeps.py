import numpy as np
import pandas as pd
import pytest

from tests.factories import write_scenario
from twin.core.errors import UserError
from twin.runs.experiment import compare
from twin.scenario.plan import make_plan
from twin.scenario.sweeps import sweep_points
from twin.scenario.scenario import load_scenario


def load(tmp_path, tiny_city, body):
    return load_scenario(write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 20\n\n" + body))


def test_grid_is_every_combination(tmp_path, tiny_city):
    sc = load(tmp_path, tiny_city, '[experiment]\nmethod = "grid"\nreplications = 2\n'
              "[experiment.parameters]\nspeed_mps = [0.8, 1.2]\nwalkers = [10, 20, 30]\n")
    plan = make_plan(sc)
    sweep = [v for v in plan.variants if v.kind == "sweep"]
    assert len(sweep) == 6 and sweep[0].name == "speed_mps=0.8, walkers=10" and sweep[0].slug == "speed_mps-0.8-walkers-10"
    assert plan.replications == 2 and len(plan.runs) == 14  # baseline + 6 points, × 2
    assert plan.scenario.params_for("speed_mps=1.2, walkers=30")["walkers"] == 30


def test_sets_and_list_parameters(tmp_path, tiny_city):
    sc = load(tmp_path, tiny_city, '[experiment]\nmethod = "sets"\n'
              'sets = [{speed_mps = 1.5}, {closed_gates = ["N1", "N2"], walkers = 5}]\n')
    assert sweep_points(sc) == [{"speed_mps": 1.5}, {"closed_gates": ["N1", "N2"], "walkers": 5}]
    assert make_plan(sc).variants[-1].name == "closed_gates=N1+N2, walkers=5"


def test_lhs_is_stratified_and_seeded(tmp_path, tiny_city):
    body = ('[experiment]\nmethod = "lhs"\nsamples = 8\nseed = 3\n[experiment.parameters]\n'
            "speed_mps = {min = 0.5, max = 1.5}\nwalkers = {min = 10, max = 90}\n")
    pts = sweep_points(load(tmp_path, tiny_city, body))
    again = sweep_points(load(tmp_path, tiny_city, body))
    assert pts == again and len(pts) == 8
    speeds = np.array([p["speed_mps"] for p in pts])
    assert sorted(np.floor((speeds - 0.5) / 0.125).astype(int)) == list(range(8))  # one per stratum
    assert all(isinstance(p["walkers"], int) and 10 <= p["walkers"] <= 90 for p in pts)


@pytest.mark.parametrize("body, expected", [
    ('method = "gird"\n[experiment.parameters]\nwalkers = [1]\n', 'method = "gird" is unknown (did you mean "grid"?)'),
    ('method = "grid"\n[experiment.parameters]\nwalker = [1, 2]\n', 'unknown parameter "walker"'),
    ('method = "grid"\n[experiment.parameters]\nspeed = [1, 2]\n', '(did you mean "speed_mps"?)'),
    ('method = "grid"\n[experiment.parameters]\nwalkers = []\n', "parameters.walkers: the list of values is empty"),
    ('method = "grid"\n[experiment.parameters]\nwalkers = 5\n', "parameters.walkers: a grid needs a list"),
    ('method = "grid"\n[experiment.parameters]\nspeed_mps = [1.0, 9.0]\n', '"speed_mps" = 9.0 in m/s is out of range'),
    ('method = "lhs"\nsamples = 4\n[experiment.parameters]\nspeed_mps = {min = 1.5, max = 0.5}\n',
     "parameters.speed_mps: min = 1.5 is greater than max = 0.5"),
    ('method = "lhs"\nsamples = 0\n[experiment.parameters]\nspeed_mps = {min = 0.5, max = 1.5}\n',
     "samples must be a whole number of at least 1"),
    ('method = "lhs"\nsamples = 3\n[experiment.parameters]\nspeed_mps = [0.5, 1.5]\n', "{min = ..., max = ...}"),
    ('method = "sets"\nsets = []\n', 'method = "sets" needs sets'),
    ('method = "grid"\nreplicatons = 2\n[experiment.parameters]\nwalkers = [1]\n', '(did you mean "replications"?)'),
])
def test_bad_experiment_tables_name_the_key(tmp_path, tiny_city, body, expected):
    with pytest.raises(UserError) as e:
        load(tmp_path, tiny_city, "[experiment]\n" + body)
    assert expected in str(e.value) and "[experiment]" in str(e.value)


@pytest.mark.slow
def test_sweep_and_interventions_together_give_a_tidy_runs_table(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, '[parameters]\nwalkers = 20\n\n[[interventions]]\nname = "fast"\n'
                        "[interventions.parameters]\nspeed_mps = 1.5\n\n"
                        '[experiment]\nmethod = "grid"\nreplications = 2\n[experiment.parameters]\n'
                        "walkers = [10, 30]\n")
    r = compare(sc, tmp_path / "out", workers=1, progress=False)
    runs = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    assert list(runs.columns[:4]) == ["variant", "variant_kind", "replication", "seed"]
    assert sorted(set(runs["variant"])) == ["baseline", "fast", "walkers=10", "walkers=30"]
    assert runs.groupby("variant")["walkers"].first().to_dict() == {"baseline": 20, "fast": 20, "walkers=10": 10,
                                                                    "walkers=30": 30}
    done = runs.groupby("variant")["walkers_done"].mean()
    assert done["walkers=10"] <= 10 < done["walkers=30"] <= 30
    assert len(r.comparison[r.comparison.kpi == "walkers_done"]) == 4
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Parameter sweep" in html
