"""Bounds on every number a user gives (issue 10), and the helpers that enforce them."""
import math

import pytest

from agents.registry import get_model, model_names
from twin.core.errors import UserError
from twin.core.limits import MAX_DURATION_S, MAX_NESTING, bounded_number, nesting_levels


@pytest.mark.parametrize("model", model_names())
def test_every_numeric_parameter_of_every_model_has_finite_bounds(model):
    """Durations, counts, rates: a parameter without a maximum lets `inf`-like values through to the
    model (a run that never ends, an array that never fits). Every model, present and future."""
    for p in get_model(model).params:
        if p.kind in (int, float):
            assert p.min is not None and p.max is not None, f"{model}.{p.name} needs min and max"
            assert math.isfinite(p.min) and math.isfinite(p.max) and p.min <= p.default <= p.max, p.name
            if p.name.endswith("_s"):
                assert p.max <= MAX_DURATION_S, p.name


@pytest.mark.parametrize("value, message", [
    (math.nan, "is not a finite number"), (math.inf, "is not a finite number"), (1e308, "out of range"),
    (-3, "out of range"), (True, "must be a whole number"), ("3", "must be a whole number"),
    (2.5, "must be a whole number"),
])
def test_bounded_number_refuses_and_states_the_bounds(value, message):
    with pytest.raises(UserError, match=message) as e:
        bounded_number(value, "--seed", whole=True, minimum=0, maximum=100)
    if "range" in message or "finite" in message:
        assert "from 0 to 100" in str(e.value)


def test_bounded_number_accepts_and_converts():
    assert bounded_number(3.0, "x", whole=True, minimum=0, maximum=10) == 3
    assert isinstance(bounded_number(3, "x", minimum=0, maximum=10), float)


def test_nesting_levels_is_iterative_and_stops_early():
    v = []
    for _ in range(200_000):  # far deeper than the interpreter could recurse
        v = [v]
    assert nesting_levels(v) == MAX_NESTING + 1
    assert nesting_levels({"a": [{"b": 1}], "c": 2}) == 3 and nesting_levels(5) == 0
