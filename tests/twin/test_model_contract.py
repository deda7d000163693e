"""Every registered model keeps the contract (Landlab-style: one parametrised test for all).

The toy model (tests/toy_model.py) runs in two set-ups: fixed steps, and adaptive steps with a
time-series and a file parameter, so that the platform's side of the contract is covered whatever
models are registered.
"""
import math

import numpy as np
import pytest

from agents.registry import MODELS, get_model
from tests.conftest import DEMO_CITY
from twin.core.city import City
from twin.core.model_contract import FIELD_KINDS, CityModel
from tests.factories import state_context
from twin.core.state_file import read_state, state_bytes, write_state_bytes

CONTRACT_KPIS = {
    "station_dispersal": {"agents_total", "agents_exited", "clearance_time_s", "mean_egress_time_s",
                          "p95_egress_time_s", "max_density_ppm2", "exited_by_gate", "los_seconds"},
    "tourist_flow": {"tourists_total", "visits_completed", "mean_entry_wait_s", "p95_entry_wait_s",
                     "mean_room_search_s", "mean_checkin_s", "queue_hours_total", "peak_occupancy_ratio"},
    "flood": {"max_depth_m", "max_flooded_area_m2", "buildings_flooded", "people_exposed", "roads_impassable_km",
              "rain_volume_m3", "inflow_volume_m3", "drained_volume_m3", "pumped_volume_m3", "outflow_volume_m3",
              "stored_volume_m3", "volume_error_rel"},
}
REAL_MODELS = sorted(n for n in MODELS if n != "toy")
DURATION_S = 60.0
# The real models run on the demo city (seconds each): slow; the toy keeps the contract in `make test-fast`.
MODELS_TOY_FAST = [n if n == "toy" else pytest.param(n, marks=pytest.mark.slow) for n in sorted(MODELS)]


@pytest.fixture(scope="module")
def demo_city():
    return City.load(DEMO_CITY)


@pytest.fixture(scope="module")
def toy_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy_inputs")
    starts = folder / "starts.csv"
    starts.write_text("500010,3400020\n500050,3400080\n500150,3400050\n", encoding="utf-8")
    return {"stepping": "adaptive", "speed_profile": [[0, 1.0], [20, 2.5], [40, 0.5]], "start_file": str(starts),
            "walkers": 30, "distance_m": 60.0}


def set_ups(name, tiny_city, demo_city, toy_inputs):
    """(city, params) pairs a model is checked with."""
    if name == "toy":
        city = City.load(tiny_city)
        return [(city, {"walkers": 30, "distance_m": 60.0}), (city, toy_inputs)]
    return [(demo_city, {})]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_declarations(name):
    cls = get_model(name)
    assert issubclass(cls, CityModel) and cls.name == name and cls.title
    names = [p.name for p in cls.params]
    assert len(names) == len(set(names))
    for p in cls.params:
        assert p.doc and p.unit, f"{name}.{p.name} needs a doc and a unit ('-' for none)"
        assert p.coerce(p.default, "default") == p.default, f"{name}.{p.name}: default out of its own range"
    kpis = {k.name for k in cls.kpis}
    assert CONTRACT_KPIS.get(name, set()) <= kpis, f"missing contract KPIs: {CONTRACT_KPIS[name] - kpis}"
    assert all(k.unit and k.doc for k in cls.kpis)
    assert any(k.headline for k in cls.kpis), "the indicator tiles need at least one headline KPI"
    assert not cls.state_colours or len(cls.state_colours) == len(cls.state_names)
    for s in cls.field_styles:
        assert s.kind in FIELD_KINDS and s.unit and s.doc
        assert not s.bands or len(s.colours) == len(s.bands) + 1
    for f in cls.feature_styles:
        assert f.kind in ("number", "state") and f.unit and f.doc
        assert f.kind != "state" or len(f.states) == len(f.colours) > 0
    assert cls.report_interval_s > 0
    from twin.scenario.alert_settings import parse_alerts

    rules = parse_alerts(None, f"model {name}", cls)  # every default alert names a declared KPI or value
    assert [r.name for r in rules] == [r.name for r in cls.alerts] and all(r.doc and r.unit for r in rules)


@pytest.mark.parametrize("name", MODELS_TOY_FAST)
def test_a_reseeded_continuation_is_a_valid_run_and_deterministic(name, tiny_city, demo_city, toy_inputs):
    """Replication k of a branch: restored, then ``reseed((seed, k))``. The run goes on to the end,
    and the same k gives the same numbers."""
    cls = get_model(name)
    city, params = set_ups(name, tiny_city, demo_city, toy_inputs)[0]
    first = cls(city, duration_s=DURATION_S, seed=7, **params)
    first.advance_to(DURATION_S / 2)
    arrays, meta = first.get_state()
    ends = []
    for k in (1, 1, 2):
        m = cls(city, duration_s=DURATION_S, seed=7, **params)
        m.set_state({a: v.copy() for a, v in arrays.items()}, meta)
        m.reseed((7, k))
        m.run_to_end()
        assert m.done and CONTRACT_KPIS.get(name, set()) <= set(m.final_kpis())
        ends.append(m.final_kpis())
    assert ends[0] == ends[1]


@pytest.mark.parametrize("name", MODELS_TOY_FAST)
def test_time_lands_on_the_grid_and_snapshots_carry_ids(name, tiny_city, demo_city, toy_inputs):
    cls = get_model(name)
    for city, params in set_ups(name, tiny_city, demo_city, toy_inputs):
        model = cls(city, duration_s=DURATION_S, seed=42, **params)
        interval = model.report_interval_s
        seen: dict[int, np.ndarray] = {}
        for target in (interval, 2 * interval + 0.3 * interval, 3 * interval):
            model.advance_to(target)
            q = model.time_quantum_s
            assert model.time_s >= min(target, DURATION_S) - 1e-9 or model.done
            if q > 0:  # landed on the model's own grid, no further than one quantum on
                assert model.time_s - target < q + 1e-9
                assert math.isclose(round(model.time_s / q) * q, model.time_s, abs_tol=1e-9)
            else:  # lands exactly on the target, or on the end of the run
                assert model.time_s == pytest.approx(min(target, DURATION_S))
            assert model.time == model.time_s  # Mesa's clock is the model clock, in seconds
            snap = model.snapshot()
            assert snap.positions.dtype == np.float64 and snap.positions.shape == (len(snap.states), 2)
            assert snap.ids.shape == (len(snap.positions),) and len(np.unique(snap.ids)) == len(snap.ids)
            if snap.z is not None:  # heights above the terrain (upper floors, stairs)
                assert snap.z.dtype == np.float64 and snap.z.shape == (len(snap.positions),)
                assert np.isfinite(snap.z).all()
            for i, pos in zip(snap.ids, snap.positions):
                seen.setdefault(int(i), pos)
            for layer, frame in snap.features.items():
                declared = {f.name for f in cls.feature_styles if f.layer == layer}
                assert set(frame.values) <= declared, f"undeclared feature values on {layer}"
                ids = set(city.layer(layer)["id"].astype(str)) if layer in city.layers else set()
                assert set(map(str, frame.ids)) <= ids, f"{layer}: ids not in the layer"
                assert all(len(v) == len(frame.ids) for v in frame.values.values())
            for fname in snap.fields:
                assert cls.field_style(fname).unit, f"field {fname} has no declared style"
        ts = model.timeseries()
        times = ts["time_s"].to_numpy()
        k = np.arange(len(times))
        on_grid = np.isclose(times, k * interval) | np.isclose(times, model.time_s)
        assert on_grid.all(), f"report times off the k x interval grid: {times}"
        keyed = [kp.name for kp in cls.kpis if kp.keyed and kp.per_step]
        for kp in keyed:
            assert any(c.startswith(kp + ".") for c in ts.columns), f"keyed KPI {kp} has no columns"
        assert CONTRACT_KPIS.get(name, set()) <= set(model.final_kpis())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_state_round_trip_is_exact(name, tiny_city, demo_city, toy_inputs, tmp_path):
    """Saved at T, written to a state file, restored into a fresh model and run on: the same KPIs and
    time series as a run that never stopped."""
    cls = get_model(name)
    for n, (city, params) in enumerate(set_ups(name, tiny_city, demo_city, toy_inputs)):
        straight = cls(city, duration_s=DURATION_S, seed=7, **params)
        straight.run_to_end()
        first = cls(city, duration_s=DURATION_S, seed=7, **params)
        first.advance_to(DURATION_S / 2)
        path = tmp_path / f"{name}-{n}.npz"
        write_state_bytes(state_bytes(first, state_context(first)), path)
        saved = read_state(path)
        again = cls(city, duration_s=DURATION_S, seed=7, **params)
        again.set_state(saved.arrays, saved.meta["model"])
        assert again.time_s == first.time_s
        again.run_to_end()
        assert again.final_kpis() == straight.final_kpis()
        a, b = again.timeseries(), straight.timeseries()
        assert list(a.columns) == list(b.columns)
        assert a.equals(b), "time series differ after a restore"
        assert np.array_equal(again.snapshot().positions, straight.snapshot().positions)


def test_a_model_missing_a_layer_says_which(tiny_city):
    city = City.load(tiny_city)
    if "station_dispersal" not in MODELS:
        pytest.fail("station_dispersal is not registered")
    from twin.core.errors import UserError

    with pytest.raises(UserError, match="walkable"):
        get_model("station_dispersal")(city, duration_s=10, seed=1)


def test_pauses_never_change_a_run(tiny_city, toy_inputs):
    """Adaptive stepping: a run paused at odd times ends exactly like one that is not."""
    cls = get_model("toy")
    city = City.load(tiny_city)
    straight = cls(city, duration_s=DURATION_S, seed=3, **toy_inputs)
    straight.run_to_end()
    paused = cls(city, duration_s=DURATION_S, seed=3, **toy_inputs)
    for t in (0.3, 1.7, 7.2, 13.0, 13.5, 29.9):
        paused.advance_to(t)
    paused.run_to_end()
    assert paused.final_kpis() == straight.final_kpis()
    assert paused.timeseries().equals(straight.timeseries())
    assert paused.steps == straight.steps


def test_drivers_read_the_time_series_position_through_public_properties(tiny_city):
    """``next_report_s`` and ``rows_recorded``: what the runner, the branch and the app's worker read."""
    m = get_model("toy")(City.load(tiny_city), duration_s=DURATION_S, seed=3, walkers=10, distance_m=500.0)
    assert m.rows_recorded == 0 and m.next_report_s == 0.0
    m.advance_to(0.0)
    assert m.rows_recorded == 1 and m.next_report_s == m.report_interval_s
    m.advance_to(12.0)
    assert m.rows_recorded == 3 and m.next_report_s == 15.0  # rows at 0, 5, 10
    m.advance_to(m.next_report_s)
    assert m.rows_recorded == 4 == len(m.timeseries()) and m.next_report_s == 20.0


def test_the_mesa_adapter_hands_stepping_to_citytwin(tiny_city):
    """Mesa's default schedule (one ``step`` per time unit) is off: ``step`` is the model's own, it moves
    neither Mesa's clock nor its step count, and Mesa's own time advance fires nothing."""
    import mesa

    from twin.core.mesa_adapter import take_over_stepping

    m = get_model("toy")(City.load(tiny_city), duration_s=DURATION_S, seed=3, walkers=10, distance_m=500.0)
    assert m.step.__func__ is type(m).step
    x0 = m.pos[:, 0].copy()
    m.step()  # the toy's own step: the walkers move, the clocks stay
    assert (m.pos[:, 0] > x0).all() and m.time == 0.0 and m.steps == 0
    x1 = m.pos[:, 0].copy()
    m._advance_time(5.0)  # Mesa's event loop: the default schedule would have stepped five times
    assert np.array_equal(m.pos[:, 0], x1)

    class Plain(mesa.Model):
        def __init__(self):
            super().__init__(rng=1)
            self.calls = 0

        def step(self):
            self.calls += 1

    p = Plain()
    take_over_stepping(p)
    p.step()
    assert p.calls == 1 and p.steps == 0 and p.time == 0.0
    broken = mesa.Model.__new__(mesa.Model)  # a Mesa that builds models differently: said, not a crash
    from twin.core.errors import UserError

    with pytest.raises(UserError, match="Mesa"):
        take_over_stepping(broken)


def test_a_fixed_step_model_that_forgets_dt_s_is_told_how_to_fix_it(tiny_city):
    from twin.core.errors import UserError

    class Forgetful(get_model("toy")):
        name = "forgetful"

        def __init__(self, city, **kw):
            super().__init__(city, **kw)
            self.dt_s = 0.0  # as if the model never set its step

        @property
        def time_quantum_s(self):
            return 0.0

        _advance = CityModel._advance

    m = Forgetful(City.load(tiny_city), duration_s=DURATION_S, seed=3, walkers=10)
    with pytest.raises(UserError, match=r"forgetful: a fixed-step model .* self\.dt_s = "):
        m.advance_to(10.0)
