"""Same numbers on 1 thread or 2, threaded kernel or serial twin (the brief: 1 worker or 8)."""
import numba
import numpy as np
import pytest
import shapely

from agents.station.crowd import Crowd, MotionParams
from agents.station.navigation import build_navigation


@pytest.fixture(scope="module")
def room():
    free = shapely.box(0, 0, 40, 30).difference(shapely.box(19, 0, 21, 28))  # a wall with a passage
    nav = build_navigation(free, [], cell_m=0.25, cache=False)
    nav.dir_x[:] = 1.0
    nav.dir_y[:] = 0.0
    return nav


@pytest.mark.slow
@pytest.mark.parametrize("model", ["collision_free", "social_force"])
def test_threads_and_serial_kernels_agree(room, model):
    rng = np.random.default_rng(5)
    gx, gy = np.meshgrid(np.arange(0.5, 18.5, 0.6), np.arange(0.5, 29.5, 0.6))
    x, y = gx.ravel() + rng.uniform(-0.05, 0.05, gx.size), gy.ravel()
    n = len(x)
    mp = MotionParams(model=model)
    results = []
    for threads, parallel_min in [(1, 10**9), (1, 0), (2, 0)]:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        cr = Crowd(room, n, mp, cell_size=1.0)
        cr.parallel_min = parallel_min
        cr.add(x, y, np.full(n, 1.3), np.zeros(n, np.int32))
        for _ in range(100):
            cr.step(mp.default_dt())
        order = np.argsort(cr.ids[: cr.n])
        results.append(np.column_stack([cr.x[: cr.n], cr.y[: cr.n]])[order])
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert n > 1000
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[1], results[2])
    assert np.abs(results[0] - np.column_stack([x, y])).max() > 0.1  # they did move
