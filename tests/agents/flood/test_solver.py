"""FloodSolver: exact landing on asked times, pause and resume, state round trip, threads, sinks,
maxima and arrival times, and the refusals of bad input."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from agents.flood.forcing import Hydrograph, Hyetograph
from agents.flood.solver import FloodSolver, Inflow, PointSink
from twin.core.errors import UserError

from .conftest import bumpy_bed, storm_solver


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype
            assert np.array_equal(a[k], b[k], equal_nan=True), k
        else:
            assert a[k] == b[k], k


def test_advance_lands_exactly_on_the_asked_time():
    s = storm_solver()
    for t in (0.37, 12.0, 29.999, 31.5, 100.0):
        s.advance(t)
        assert s.t == t
    with pytest.raises(UserError, match="back in time"):
        s.advance(50.0)


def test_steps_never_cross_a_sync_point():
    s = storm_solver(sync_interval_s=7.0)
    times = [0.0]
    while s.t < 200.0:
        s.step()
        times.append(s.t)
    times = np.array(times)
    k = np.floor(times[:-1] / 7.0 + 1e-12)
    assert np.all(times[1:] <= (k + 1) * 7.0 + 1e-9)
    landed = {t for t in times if abs(t / 7.0 - round(t / 7.0)) < 1e-12}
    assert {7.0 * k for k in range(29)} <= landed  # every sync point up to 196 s was landed on exactly


def test_pause_and_resume_is_bit_identical():
    """Stopped at multiples of the sync interval (as the app does) or run straight through."""
    straight = storm_solver()
    straight.advance(450.0)
    paused = storm_solver()
    for t in (30.0, 60.0, 90.0, 240.0, 270.0, 450.0):
        paused.advance(t)
    assert paused.n_steps == straight.n_steps
    assert_same_state(paused.get_state(), straight.get_state())
    assert paused.balance() == straight.balance()


def test_state_round_trip_is_bit_identical():
    a = storm_solver(boundary="open")
    a.advance(180.0)
    saved = a.get_state()
    a.advance(420.0)
    b = storm_solver(boundary="open")  # same static inputs, fresh solver
    b.set_state(saved)
    b.advance(420.0)
    assert_same_state(a.get_state(), b.get_state())
    assert a.balance() == b.balance()
    # the saved state is a copy: advancing does not change it
    assert saved["t"] == 180.0
    assert not np.array_equal(saved["h"], a.h)


def test_state_covers_every_dynamic_quantity():
    s = storm_solver()
    s.advance(300.0)
    st = s.get_state()
    assert set(st) == set(FloodSolver.STATE_ARRAYS + FloodSolver.STATE_SCALARS)
    for k in ("rain_m3", "inflow_m3", "drained_uniform_m3", "drained_inlets_m3", "pumped_m3"):
        assert st[k] > 0
    with pytest.raises(UserError, match="missing"):
        s.set_state({k: v for k, v in st.items() if k != "qx"})
    with pytest.raises(UserError, match="shape"):
        s.set_state(dict(st, h=np.zeros((3, 3))))


def test_one_and_two_threads_give_identical_results():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.fail("this machine offers Numba a single thread; the test needs 2")
    results = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        s = storm_solver(boundary="open", block_rows=8)  # 5 blocks of rows for the threads to share
        s.advance(400.0)
        results.append((s.get_state(), s.balance()))
    assert_same_state(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]


def test_sinks_take_at_most_what_their_cell_holds():
    """A pump far bigger than the water it sits in takes the water there is, nothing more."""
    z = np.zeros((10, 10))
    s = FloodSolver(z, 1.0, initial_depth=np.full(z.shape, 0.01),
                    drains=[PointSink((0, 0), 0.0)], pumps=[PointSink((5, 5), 100.0, start_s=1.0)])
    s.advance(0.9)
    assert s.pumped_m3 == 0.0  # not started yet
    s.advance(60.0)
    b = s.balance()
    assert 0.1 * b["initial_volume_m3"] < b["pumped_volume_m3"] <= b["initial_volume_m3"]
    assert s.h.min() >= 0
    assert b["volume_error_rel"] < 1e-12
    assert s.sink_m3[0] == 0.0 and s.sink_m3[1] == b["pumped_volume_m3"]  # drains first, then pumps


def test_maxima_and_arrival_time():
    """A pond filled slowly by an inflow (so it stays nearly level), then lowered by a drain: max
    depth keeps the peak, arrival time is when the depth first passed 0.1 m."""
    z = np.zeros((5, 5))
    inflow = Inflow(np.array([[2, 2]]), Hydrograph(np.array([0.0, 1000.0]), np.array([0.005, 0.005])))
    s = FloodSolver(z, 1.0, inflows=[inflow], drains=[PointSink((2, 2), 0.01, start_s=1000.0)],
                    sync_interval_s=10.0)
    s.advance(400.0)  # 2 m³ over 25 m²: 0.08 m
    assert np.all(np.isnan(s.arrival_time))
    s.advance(1000.0)
    arrival = s.arrival_time
    assert np.all((arrival > 400.0) & (arrival < 600.0))  # 2.5 m³ (0.1 m) are in at 500 s
    assert abs(np.mean(arrival) - 500.0) < 20.0
    peak = s.max_depth.copy()
    assert np.abs(peak - 0.2).max() < 0.005  # 5 m³ over 25 m²
    running = peak.copy()
    while s.t < 1200.0:  # the drain lowers the pond (which sloshes a little as the inflow stops)
        s.step(1200.0)
        running = np.maximum(running, s.h.astype(np.float32))
    assert s.h.max() < peak.min() - 0.05
    assert np.array_equal(s.max_depth, running)
    assert np.array_equal(s.arrival_time, arrival)


def test_rain_on_buildings_is_not_counted_and_they_stay_dry():
    z = np.zeros((6, 6))
    blocked = np.zeros(z.shape, bool)
    blocked[2:4, 2:4] = True
    s = FloodSolver(z, 2.0, blocked=blocked, rain=Hyetograph.uniform(36.0, 0.0, 100.0))
    s.advance(200.0)
    assert np.all(s.h[blocked] == 0) and np.all(s.max_depth[blocked] == 0)
    assert math.isclose(s.rain_m3, 36.0 / 3.6e6 * 100.0 * 32 * 4.0, rel_tol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(pumps=[PointSink((3, 3), 1.0, name="mobile 1")]), "mobile 1 lies inside a building"),
    (dict(drains=[PointSink((50, 3), 1.0)]), "outside the 10 × 10 grid"),
    (dict(inflows=[Inflow(np.array([[0, 0], [0, 12]]), Hydrograph([0.0, 1.0], [1.0, 1.0]), "river")]),
     r"inflow river: cell \(row 0, col 12\) is outside"),
    (dict(boundary="leaky"), "must be"),
    (dict(boundary={"east": "open", "up": "open"}), "mapping"),
    (dict(cfl=0.7, theta=0.7), "stability limit"),
    (dict(manning_n=-0.01), "manning_n"),
    (dict(initial_depth=np.full((10, 10), -1.0)), "initial_depth"),
])
def test_bad_input_is_refused_clearly(kwargs, message):
    z = np.zeros((10, 10))
    blocked = np.zeros(z.shape, bool)
    blocked[2:5, 2:5] = True
    with pytest.raises(UserError, match=message):
        FloodSolver(z, 1.0, blocked=blocked, **kwargs)


def test_bed_with_no_data_is_refused():
    z = bumpy_bed()
    z[3, 4] = np.nan
    with pytest.raises(UserError, match="no-data"):
        FloodSolver(z, 2.0)
