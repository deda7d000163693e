"""Shared inputs of the flood engine tests: small rasters built in code."""
from __future__ import annotations

import numpy as np
import pytest

from agents.flood.forcing import Hydrograph, Hyetograph
from agents.flood.solver import FloodSolver, Inflow, PointSink


def bumpy_bed(ny: int = 40, nx: int = 60, amp: float = 0.4, tilt: float = 0.005, base: float = 100.0) -> np.ndarray:
    """A smooth bed with hills and hollows around ``base`` metres (large on purpose: float32 beds)."""
    yy, xx = np.mgrid[0:ny, 0:nx]
    return base + amp * np.sin(xx / 4.0) * np.cos(yy / 5.0) + tilt * xx


def storm_solver(boundary="closed", **kw) -> FloodSolver:
    """Rain, an inflow hydrograph, uniform drainage, two drain inlets, a pump and a building."""
    z = bumpy_bed()
    blocked = np.zeros(z.shape, bool)
    blocked[15:22, 25:33] = True
    args = dict(
        blocked=blocked, boundary=boundary, manning_n=0.03,
        rain=Hyetograph(np.array([0.0, 120.0, 300.0, 420.0]), np.array([40.0, 120.0, 20.0])),
        drainage_mm_per_h=8.0,
        drains=[PointSink((30, 10), 0.02, name="D1"), PointSink((5, 50), 0.05, name="D2")],
        pumps=[PointSink((35, 55), 0.3, start_s=200.0, name="P1")],
        inflows=[Inflow(np.array([[2, 2], [3, 2], [4, 2]]),
                        Hydrograph(np.array([0.0, 100.0, 250.0, 400.0]), np.array([0.0, 0.8, 0.8, 0.0])), "line")],
        sync_interval_s=30.0,
    )
    args.update(kw)
    return FloodSolver(z, 2.0, **args)


@pytest.fixture(autouse=True)
def _two_threads():
    """Every test starts on the machine's two threads (some switch to one)."""
    import numba

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    yield
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
