"""The walk-through in docs/models.md runs as written: its model, its scenario and its test."""
import importlib
import re
import sys

import pytest

from tests.conftest import DEMO_CITY, ROOT

DOC = ROOT / "docs" / "models.md"


def walkthrough_files() -> dict[str, str]:
    """{path: code} of the blocks marked ``<!-- walkthrough: path -->`` in docs/models.md."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- walkthrough: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S)
    return dict(blocks)


@pytest.fixture
def walkers(tmp_path, monkeypatch):
    files = walkthrough_files()
    assert set(files) == {"agents/walkers/model.py", "scenarios/walkers.toml", "tests/agents/walkers/test_model.py"}
    (tmp_path / "walkers_doc_model.py").write_text(files["agents/walkers/model.py"], encoding="utf-8")
    scenario = tmp_path / "walkers.toml"
    scenario.write_text(files["scenarios/walkers.toml"].replace('"../gis_data/demo_city"', repr(str(DEMO_CITY))),
                        encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    from agents import registry

    monkeypatch.setitem(registry.MODELS, "walkers", "walkers_doc_model:WalkersModel")
    yield files, scenario
    sys.modules.pop("walkers_doc_model", None)


@pytest.mark.slow
def test_the_walkthrough_model_scenario_and_test_run(walkers, tmp_path):
    files, scenario = walkers
    namespace = {}
    exec(compile(files["tests/agents/walkers/test_model.py"], "walkers test", "exec"), namespace)
    namespace["test_walkers_take_distance_over_speed"](scenario)


def test_the_walkthrough_model_keeps_the_contract(walkers, tiny_city):
    """What tests/twin/test_model_contract.py checks of a registered model: a state saved half-way and
    restored gives exactly the run that never stopped."""
    from twin.core.city import City

    cls = importlib.import_module("walkers_doc_model").WalkersModel
    city = City.load(tiny_city)
    straight = cls(city, duration_s=120, seed=3, walkers=50, distance_m=80.0)
    straight.run_to_end()
    assert straight.final_kpis()["walkers_done"] == 50 and straight.rows_recorded == len(straight.timeseries())
    half = cls(city, duration_s=120, seed=3, walkers=50, distance_m=80.0)
    half.advance_to(30)
    again = cls(city, duration_s=120, seed=3, walkers=50, distance_m=80.0)
    arrays, meta = half.get_state()
    again.set_state(arrays, meta)
    again.run_to_end()
    assert again.final_kpis() == straight.final_kpis() and again.timeseries().equals(straight.timeseries())
    snap = again.snapshot()
    assert 0 < snap.fields["count"].values.sum() <= 50 and set(snap.states.tolist()) == {1}  # some walked off the map
