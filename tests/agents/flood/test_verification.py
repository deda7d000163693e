"""Verification against analytic solutions (shared/VERIFICATION.md, flood): MacDonald's long
channels and Ritter's dam break. Run with ``pytest -s`` to see the figures."""
from __future__ import annotations

import configparser

import numpy as np
import pytest

from agents.flood.forcing import Hydrograph, Hyetograph
from agents.flood.solver import FloodSolver, Inflow

G = 9.81


def read_asc(path):
    """ESRI ASCII grid: (values, cell size)."""
    with open(path) as f:
        head = dict(f.readline().split() for _ in range(5))
        values = np.loadtxt(f)
    assert values.shape == (int(head["nrows"]), int(head["ncols"]))
    return values, float(head["cellsize"])


def duration_s(ini_path) -> float:
    cfg = configparser.ConfigParser()
    cfg.read(ini_path)
    h, m, s = (int(v) for v in cfg["time"]["duration"].split(":"))
    return 3600.0 * h + 60.0 * m + s


# MacDonald's long channels as set up in SWASHES (Delestre et al. 2013, "SWASHES: a compilation of
# shallow water analytic solutions for hydraulic and environmental studies", Int. J. Numer. Meth.
# Fluids 72, 269-300): 1000 m, Manning n = 0.033, subcritical; the rain case adds 0.001 m/s. The
# files are itzi's copies (SOURCE.md): the bed, the inflow as a rate per cell (m/s), the boundary
# types (2 = open), the run length, and the analytic water surface along the channel.
CASES = {
    # case: (dem, inflow, reference, ini, rain m/s, RMSE bound m)
    "without rain": ("wo_rain_dem.asc", "wo_rain_q.asc", "mcdo_norain.csv", "mcdo_norain.ini", 0.0, 0.035),
    "with rain": ("rain_dem.asc", "rain_q.asc", "mcdo_rain.csv", "mcdo_rain.ini", 0.001, 0.045),
}


@pytest.mark.parametrize("case", list(CASES))
def test_macdonald_long_channel_steady_surface(ref_data, case):
    dem_f, q_f, ref_f, ini_f, rain, bound = CASES[case]
    d = ref_data / "flood" / "macdonald_itzi"
    z, dx = read_asc(d / dem_f)
    q_rate, _ = read_asc(d / q_f)
    bc, _ = read_asc(d / "wo_rain_bctype.asc")  # the same layout for both: east end open
    ref = np.genfromtxt(d / ref_f, delimiter=",", names=True)
    np.testing.assert_allclose(z[1], ref["topo"], atol=1e-6)
    assert np.all(bc[:, -1] == 2) and np.all(bc[:, :-1] == 1)
    rows, cols = np.nonzero(q_rate)
    q_cell = q_rate[rows, cols] * dx * dx  # m/s over a cell: m³/s
    assert np.all(cols == 0) and np.allclose(q_cell, q_cell[0])
    q_total = float(q_cell.sum())
    inflow = Inflow(np.column_stack([rows, cols]), Hydrograph([0.0, 1e6], [q_total, q_total]), "upstream")
    t_end = duration_s(d / ini_f)
    s = FloodSolver(z, dx, manning_n=0.033, boundary={"east": "open"}, inflows=[inflow], dt_max_s=2.0,
                    rain=Hyetograph.uniform(rain * 3.6e6, 0.0, 1e6) if rain else None)
    s.advance(t_end)
    wse = s.bed_m[1] + s.h[1]
    err = wse - ref["wse"]
    rmse = float(np.sqrt(np.mean(err ** 2)))
    mae = float(np.mean(np.abs(err)))
    q_out = float(s.qx[:, -1].sum()) * dx
    q_expected = q_total + rain * z.size * dx * dx
    print(f"\nMacDonald {case}: {s.n_steps} steps to {t_end:.0f} s, water surface RMSE {rmse:.4f} m, "
          f"MAE {mae:.4f} m, max |error| {np.abs(err).max():.3f} m (at x = {ref['dx'][np.abs(err).argmax()]:.1f} m, "
          f"the inflow cell), error without the inflow cell: RMSE {np.sqrt(np.mean(err[1:] ** 2)):.4f} m; "
          f"outflow {q_out:.3f} m³/s for {q_expected:.3f} m³/s in; balance error {s.balance()['volume_error_rel']:.1e}")
    assert rmse < bound
    assert abs(q_out - q_expected) < 1e-3 * q_expected  # steady: what comes in goes out
    assert np.abs(s.qy[1:-1]).max() < 1e-6 * np.abs(s.qx).max()  # the flow is one-dimensional
    assert s.balance()["volume_error_rel"] < 1e-9


def ritter_depth(x, t, h0):
    """Ritter (1892) dam break over a dry bed without friction, dam at x = 0."""
    c0 = np.sqrt(G * h0)
    h = np.where(x <= -c0 * t, h0, (2 * c0 - x / t) ** 2 / (9 * G))
    return np.where(x >= 2 * c0 * t, 0.0, h)


def test_ritter_dam_break():
    """The local-inertial scheme drops the advection term, so it is not made for this supercritical
    flow (Bates et al. 2010; de Almeida et al. 2012): the figures are reported, not tuned, and the
    test only checks that the answer is physically sane. (Measured while writing this: the wet
    front reaches about 35 % of Ritter's distance and stays there at dx 0.5 and 0.25 m, and with a
    wet threshold of 1e-5 m: it is the equations without advection, not the grid.)"""
    h0, dx, t_end = 1.0, 1.0, 20.0
    nx = 500
    x = (np.arange(nx) + 0.5) * dx - 250.0  # dam at x = 0
    z = np.zeros((3, nx))
    h_init = np.where(x < 0, h0, 0.0)[None, :].repeat(3, axis=0)
    s = FloodSolver(z, dx, manning_n=0.0, initial_depth=h_init)  # the default θ and Courant number
    s.advance(t_end)
    h = s.h[1]
    exact = ritter_depth(x, t_end, h0)
    c0 = np.sqrt(G * h0)
    zone = (x > -c0 * t_end - 20) & (x < 2 * c0 * t_end + 20)
    l1 = np.abs(h - exact)[zone].sum() / exact[zone].sum()
    front = x[np.nonzero(h > 1e-3)[0].max()] + 0.5 * dx
    front_exact = 2 * c0 * t_end
    at_dam = h[np.argmin(np.abs(x - 0.5))]
    print(f"\nRitter dam break (h0 {h0} m, dx {dx} m, t {t_end} s): relative L1 error {l1:.3f}, depth at the dam "
          f"{at_dam:.3f} m (exact {4 / 9 * h0:.3f}), wet front (h > 1 mm) at {front:.1f} m vs {front_exact:.1f} m "
          f"({front / front_exact:.0%} of Ritter's), mass error {s.balance()['volume_error_rel']:.1e}")
    assert 0.2 * front_exact < front < 1.2 * front_exact
    assert 0.3 < at_dam < 0.6
    assert h.max() <= h0 + 1e-9  # nothing rises above the reservoir
    assert np.all(np.diff(h[(x > -c0 * t_end) & (x < front)]) <= 0.02)  # the rarefaction falls (a few mm of wiggle)
    assert s.balance()["volume_error_rel"] < 1e-12
