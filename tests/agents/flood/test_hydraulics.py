"""The kernels against a plain numpy transcription of the scheme, and the physical invariants:
a lake at rest stays at rest, depth never goes negative, the water balance closes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from agents.flood import hydraulics as hy
from agents.flood.forcing import Hyetograph
from agents.flood.solver import FloodSolver, PointSink, WaterBody

from .conftest import bumpy_bed, storm_solver

G = hy.G


def reference_step(h, z, gn2, qx, qy, dt, dx, theta, h_min, edges, rain, drain, wet):
    """One step of the scheme in float64 numpy, written from the equations (hydraulics docstring)."""
    def flow_depth(hl, hr, zl, zr):
        deta = (zr - zl) + (hr - hl)
        return np.where(deta <= 0, hl - np.maximum(0, zr - zl), hr - np.maximum(0, zl - zr)), deta

    def faces(hl, hr, zl, zr, gl, gr, q):  # q includes the two edge faces
        hf, deta = flow_depth(hl, hr, zl, zr)
        qa = theta * q[1:-1] + 0.5 * (1 - theta) * (q[:-2] + q[2:])
        with np.errstate(divide="ignore", invalid="ignore"):
            den = 1 + dt * 0.5 * (gl + gr) * np.abs(q[1:-1]) / hf ** (7 / 3)
            new = (qa - G * dt / dx * hf * deta) / den
        return np.where(hf > h_min, new, 0.0)

    def edge(h_b, h_in, z_b, z_in, q_in, sign):
        hf, _ = flow_depth(h_in, h_b, z_in, z_b) if sign > 0 else flow_depth(h_b, h_in, z_b, z_in)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(hf > h_min, sign * q_in / hf, 0.0)
        return np.where(h_b > h_min, sign * np.maximum(u, 0) * h_b, 0.0)

    ny, nx = h.shape
    qx_new = np.zeros_like(qx)
    qy_new = np.zeros_like(qy)
    qx_new[:, 1:-1] = faces(h[:, :-1].T, h[:, 1:].T, z[:, :-1].T, z[:, 1:].T, gn2[:, :-1].T, gn2[:, 1:].T, qx.T).T
    qy_new[1:-1] = faces(h[:-1], h[1:], z[:-1], z[1:], gn2[:-1], gn2[1:], qy)
    if edges[0]:
        qy_new[0] = edge(h[0], h[1], z[0], z[1], qy[1], -1)
    if edges[1]:
        qy_new[-1] = edge(h[-1], h[-2], z[-1], z[-2], qy[-2], 1)
    if edges[2]:
        qx_new[:, 0] = edge(h[:, 0], h[:, 1], z[:, 0], z[:, 1], qx[:, 1], -1)
    if edges[3]:
        qx_new[:, -1] = edge(h[:, -1], h[:, -2], z[:, -1], z[:, -2], qx[:, -2], 1)
    out = dt / dx * (np.maximum(qx_new[:, 1:], 0) - np.minimum(qx_new[:, :-1], 0)
                     + np.maximum(qy_new[1:], 0) - np.minimum(qy_new[:-1], 0))
    keep = h * hy.KEEP
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(out > keep, keep / out, 1.0)
    sp = np.pad(s, 1, constant_values=1.0)
    fx = qx_new * np.where(qx_new > 0, sp[1:-1, :-1], sp[1:-1, 1:])
    fy = qy_new * np.where(qy_new > 0, sp[:-1, 1:-1], sp[1:, 1:-1])
    h_new = np.maximum(h + dt / dx * (fx[:, :-1] - fx[:, 1:] + fy[:-1] - fy[1:]), 0) + rain * wet
    take = np.minimum(h_new, drain)
    return h_new - take, fx, fy, take.sum()


def varied_manning(shape) -> np.ndarray:
    """Manning's n from 0.02 to 0.05 in bands (as land use gives it)."""
    return 0.02 + 0.01 * (np.add.outer(np.arange(shape[0]) // 7, np.arange(shape[1]) // 9) % 4)


@pytest.mark.slow
@pytest.mark.parametrize("boundary, friction", [("closed", "uniform"), ("open", "uniform"), ("closed", "per cell")])
def test_kernels_match_numpy_reference(boundary, friction):
    manning = 0.03 if friction == "uniform" else varied_manning(bumpy_bed().shape)
    s = storm_solver(boundary, theta=0.8, drains=[], pumps=[], inflows=[], manning_n=manning)  # point sources: see below
    assert (s._gn2_kernel.size == 1) == (friction == "uniform")
    s.advance(150.0)  # flows, wet and dry cells, limited cells
    h, qx, qy = s.h.copy(), s.qx.astype(np.float64), s.qy.astype(np.float64)
    t0 = s.t
    dt = s.step()
    rain = s.rain.depth_between_m(t0, t0 + dt)
    h_ref, fx, fy, _ = reference_step(h, s.z.astype(np.float64), s.gn2.astype(np.float64), qx, qy, dt, s.dx,
                                      s.theta, s.h_min, s.open_edges, rain, s.drain_rate_m_per_s * dt,
                                      s.rain_cell)
    wet = h > 1e-3
    assert wet.mean() > 0.3 and (~wet).sum() > 0
    assert s.limited_cells > 0
    scale = np.abs(fx).max()
    assert scale > 1e-3
    np.testing.assert_allclose(s.qx, fx, rtol=2e-4, atol=2e-5 * scale)
    np.testing.assert_allclose(s.qy, fy, rtol=2e-4, atol=2e-5 * np.abs(fy).max())
    np.testing.assert_allclose(s.h, h_ref, rtol=1e-5, atol=1e-7)


def test_one_friction_for_the_grid_is_the_same_as_per_cell():
    """The kernel's fast path for one Manning's n everywhere (g·n² as 1 × 1) gives the same bits as
    the same n given per cell."""
    s = storm_solver(drains=[], pumps=[], inflows=[])
    s.advance(150.0)
    p = s._par.copy()
    p[hy.P_DT], p[hy.P_RAIN], p[hy.P_TNEW] = 0.2, 1e-5, s.t + 0.2
    results = []
    for gn2 in (s.gn2[:1, :1].copy(), np.ascontiguousarray(s.gn2)):
        out = [np.zeros_like(s.h), np.zeros_like(s.qx), np.zeros_like(s.qy), s.max_depth.copy(),
               s.max_speed.copy(), s.arrival_time.copy(), np.zeros_like(s._row_stats)]
        hy.step(s.h, s.z, gn2, s.qx, s.qy, s.rain_cell, p, s.open_edges, *out,
                *hy.scratch(*s.shape, s.block_rows, len(s._scratch[0])), s.block_rows)
        results.append(out)
    assert np.abs(results[0][1]).max() > 1e-4  # water moves
    for a, b in zip(*results):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.slow
def test_cube_root_is_accurate():
    from numba import njit

    @njit
    def roots(x):
        out = np.empty_like(x)
        for k in range(x.size):
            out[k] = hy.cbrt32(x[k])
        return out

    x = np.geomspace(1e-4, 1e3, 20001).astype(np.float32)
    rel = np.abs(roots(x).astype(np.float64) / np.cbrt(x.astype(np.float64)) - 1)
    print(f"\ncube root: max relative error {rel.max():.2e}")
    assert rel.max() < 3e-6


def test_lake_at_rest_over_a_bumpy_bed_stays_at_rest():
    """Still water over hills, hollows, islands above the surface and buildings.

    The face slope is (z_r - z_l) + (h_r - h_l) in float64 from a float32 bed, and the lake's depth
    is level - z in float64: both differences are exact, so the surface is exactly level and every
    face flow is exactly zero. Any velocity at all would therefore be a bug, and the bound is 0."""
    z = bumpy_bed(amp=1.5, base=250.0)
    blocked = np.zeros(z.shape, bool)
    blocked[10:14, 20:26] = True
    level = 250.6
    assert (z > level).any() and (z < level - 1.0).any()  # islands and deep hollows
    s = FloodSolver(z, 2.0, blocked=blocked, water_bodies=[WaterBody(np.ones(z.shape, bool), level)],
                    boundary="closed")
    h0 = s.h.copy()
    s.advance(600.0)
    print(f"\nlake at rest: {s.n_steps} steps, max speed {s.max_speed.max():.3g} m/s, "
          f"max |Δh| {np.abs(s.h - h0).max():.3g} m")
    assert s.n_steps > 200
    assert s.max_speed.max() == 0.0
    assert np.array_equal(s.h, h0)
    assert np.abs(s.qx).max() == 0.0 and np.abs(s.qy).max() == 0.0


def test_depth_never_negative_on_a_steep_dry_slope():
    """A dry 30 % slope with a burst of rain, uniform drainage, drains and an open edge: shallow
    sheets race downhill, so cells are emptied and limited every step."""
    ny, nx = 30, 80
    yy, xx = np.mgrid[0:ny, 0:nx]
    z = 40.0 - 0.3 * 2.0 * xx + 0.2 * np.sin(yy)  # falls 0.6 m per 2 m cell
    s = FloodSolver(z, 2.0, manning_n=0.012, boundary={"east": "open"},
                    rain=Hyetograph.uniform(200.0, 0.0, 60.0), drainage_mm_per_h=30.0,
                    drains=[PointSink((15, 40), 0.5)], theta=1.0, cfl=0.7)
    limited_steps = 0
    while s.t < 300.0:
        s.step(300.0)
        assert s.h.min() >= 0.0
        limited_steps += s.limited_cells > 0
    b = s.balance()
    print(f"\nsteep slope: {s.n_steps} steps, {limited_steps} with limited cells, max speed "
          f"{s.max_speed.max():.2f} m/s, balance error {b['volume_error_rel']:.1e}")
    assert limited_steps > 10
    assert s.max_speed.max() > 1.0
    assert b["outflow_volume_m3"] > 0.3 * b["rain_volume_m3"]
    assert b["volume_error_rel"] < 1e-12


@pytest.mark.parametrize("boundary", ["closed", "open"])
def test_water_balance_closes_with_every_source_and_sink(boundary):
    s = storm_solver(boundary)
    s.advance(600.0)
    b = s.balance()
    print(f"\nbalance ({boundary}): " + ", ".join(f"{k} {v:.6g}" for k, v in b.items()))
    # every term is active
    assert b["rain_volume_m3"] > 0 and b["inflow_volume_m3"] > 0
    assert b["drained_uniform_m3"] > 0 and b["drained_inlets_m3"] > 0 and b["pumped_volume_m3"] > 0
    assert (b["outflow_volume_m3"] > 0) == (boundary == "open")
    # exact inputs: the hyetograph's and hydrograph's totals
    area = s.area * s.n_open
    assert math.isclose(b["rain_volume_m3"], s.rain.total_depth_m * area, rel_tol=1e-12)
    assert math.isclose(b["inflow_volume_m3"], s.inflows[0].hydrograph.total_volume_m3, rel_tol=1e-12)
    assert b["volume_error_rel"] < 1e-6
