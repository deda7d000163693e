"""Property-based tests (issue 10): whatever a TOML file holds, the scenario loader, the parameter
coercion, ``--set`` and the output check either accept it or raise UserError; never anything else
(a traceback in the CLI)."""
from __future__ import annotations

import datetime as dt
import math

import pytest
import tomli_w
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from agents.registry import get_model
from twin.core.params import FilePath, Numbers, Series, TimeSeries
from twin.core.errors import UserError
from twin.core.limits import MAX_NESTING, nesting_levels
from twin.scenario.sweeps import EXPERIMENT_KEYS
from twin.scenario.output_settings import OUTPUT_KEYS
from twin.scenario.scenario import SCENARIO_KEYS, load_scenario, parse_set

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                            HealthCheck.too_slow])

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2, 1000000000, 2**32, 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324, 0.5, 1.5]),
    st.text(max_size=20),
    st.sampled_from(["", " ", "N1", "北门", "../..", "/", "\x00", "a" * 300, "nan", "inf", "1e308"]),
    st.datetimes(), st.dates(), st.times(),
)
keys = st.one_of(st.text(max_size=10), st.sampled_from(["name", "parameters", "min", "max", "walkers"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=12)


PARAMS = ["walkers", "speed_mps", "speed_sd_mps", "distance_m", "closed_gates", "bogus"]


@st.composite
def scenario_docs(draw, city: str):
    """A valid toy scenario (sometimes with a sweep and exports) with one to three of its values
    replaced by anything TOML can hold, or removed: most examples get past the first checks."""
    doc = {"scenario": {"name": "p", "model": "toy", "city": city, "duration_s": 60, "seed": 1, "replications": 2},
           "parameters": {"walkers": 5},
           "interventions": [{"name": "a", "parameters": {"speed_mps": 1.2}}, {"name": "b", "parameters": {}}]}
    if draw(st.booleans()):
        doc["experiment"] = draw(st.sampled_from([
            {"method": "grid", "parameters": {"walkers": [3, 4]}},
            {"method": "sets", "sets": [{"walkers": 3}, {"speed_mps": 1.1}]},
            {"method": "lhs", "samples": 3, "parameters": {"speed_mps": {"min": 1.0, "max": 2.0}}}]))
    if draw(st.booleans()):
        doc["outputs"] = {"snapshot_times_s": [10, 20], "trajectory_interval_s": 5}
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(["scenario", "parameters", "interventions", "experiment", "outputs", "top"]))
        if section == "top":
            doc[draw(st.sampled_from(["scenario", "parameters", "interventions", "experiment", "outputs", "x"]))] = \
                draw(values)
            continue
        table = doc.setdefault(section, {} if section != "interventions" else [])
        if isinstance(table, list):  # an intervention: its name, its parameters, or one parameter
            if not table:
                continue
            item = table[draw(st.integers(0, len(table) - 1))]
            if not isinstance(item, dict):
                continue
            key = draw(st.sampled_from(["name", "parameters", "description", "extra", *PARAMS]))
            target = item if key in ("name", "parameters", "description", "extra") else item.setdefault(
                "parameters", {})
        elif isinstance(table, dict):
            if section == "experiment" and isinstance(table.get("parameters"), dict) and draw(st.booleans()):
                table = table["parameters"]
                key = draw(st.sampled_from(PARAMS))
            else:
                pool = {"scenario": sorted(SCENARIO_KEYS) + ["extra"], "parameters": PARAMS,
                        "experiment": sorted(EXPERIMENT_KEYS), "outputs": sorted(OUTPUT_KEYS)}.get(section)
                if pool is None:  # [interventions] turned into a table by an earlier replacement
                    continue
                key = draw(st.sampled_from(pool))
            target = table
        else:
            continue
        if not isinstance(target, dict):
            continue
        if draw(st.integers(0, 4)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(values)
    return doc


def write(doc, path) -> bool:
    try:
        path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    except (TypeError, ValueError):  # not representable as TOML (e.g. a key tomli_w refuses)
        return False
    return True


@pytest.fixture(scope="module")
def city(tiny_city):
    return str(tiny_city)


@pytest.mark.slow
@SETTINGS
@given(data=st.data())
def test_any_scenario_file_loads_or_says_why(tmp_path, city, data):
    from twin.scenario import preflight

    doc = data.draw(scenario_docs(city))
    path = tmp_path / "s.toml"
    assume(write(doc, path))
    try:
        checked = preflight.for_compare(path, tmp_path / "out", lock=False)
    except UserError as e:
        assert str(e).strip()
        return
    assert checked.plan.replications >= 1 and checked.scenario.duration_s > 0
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_as_a_scenario_file(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError):  # no text without [scenario] (model, city, duration_s) is a scenario
        load_scenario(path)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["toy", "station_dispersal"])
@SETTINGS
@given(value=values)
@example(value="a" * 300)  # a file name too long for the file system (was OSError)
@example(value="\x00")  # NUL in a path (was ValueError)
@example(value="~nobody-here/x.csv")  # an unknown user's home
def test_param_coerce_accepts_or_raises_user_error(model, value):
    for p in get_model(model).params:
        try:
            v = p.coerce(value, "test")
        except UserError:
            continue
        if p.kind in (int, float):
            assert isinstance(v, p.kind) and not isinstance(v, bool) and math.isfinite(v)
            assert (p.min is None or v >= p.min) and (p.max is None or v <= p.max)
        elif p.kind is list:
            assert all(isinstance(x, str) for x in v)
        elif p.kind is Numbers:
            assert all(isinstance(x, float) and math.isfinite(x) for x in v)
        elif p.kind is FilePath:
            assert isinstance(v, str)
        elif p.kind is TimeSeries:
            assert v == [] or (isinstance(v, Series) and all(map(math.isfinite, v.v)))
        else:
            assert isinstance(v, p.kind)


@pytest.mark.slow
@SETTINGS
@given(items=st.lists(st.text(max_size=40) | st.builds(lambda k, v: f"{k}={v}", st.text(max_size=8),
                                                           st.text(max_size=30)), max_size=4))
def test_parse_set_accepts_or_raises_user_error(items):
    try:
        out = parse_set(items)
    except UserError:
        return
    assert all(nesting_levels(v) <= MAX_NESTING for v in out.values())


@pytest.mark.slow
@SETTINGS
@given(name=st.text(max_size=300))
def test_check_output_accepts_or_raises_user_error(tmp_path, name):
    from twin.scenario import preflight

    try:
        preflight.check_output(tmp_path / name if name and not name.startswith("/") else name)
    except UserError:
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the check creates nothing


@pytest.mark.slow
def test_values_strategy_reaches_deep_and_odd_values():
    """The generator must produce what the issue found (nan, inf, deep nesting, dates), or the
    properties above prove little."""
    assert dt.date(2020, 1, 1) and nesting_levels([[[[1]]]]) == 4
    found = set()

    def leaves(v):
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            return [x for item in v for x in leaves(item)]
        return [v]

    @settings(max_examples=400, deadline=None, database=None)
    @given(values)
    def collect(v):
        for x in leaves(v):
            if isinstance(x, float) and math.isnan(x):
                found.add("nan")
            if isinstance(x, float) and math.isinf(x):
                found.add("inf")
            if isinstance(x, (dt.date, dt.time)):
                found.add("date")
        if nesting_levels(v) >= 3:
            found.add("deep")

    collect()
    assert found == {"nan", "inf", "deep", "date"}
