"""Throughput of the flood engine (cell-updates per second) on 1 and 4 million cells with 1 and 2
threads, beside the machine's memory bandwidth, Landlab's OverlandFlow (the same de Almeida et al.
2012 scheme) on the same grid and rain, and ANUGA (finite volumes on triangles) on a comparable
rain case; then the whole flood model on the 1-hour storm of scenarios/riverside_storm.toml (demo
city, 2 m cells, about 1.2 million cells, evacuation included), timed as the CLI runs it.

    .venv/bin/python benchmarks/bench_flood.py [--sizes 1000000 4000000] [--threads 1 2]
                                               [--steps 5] [--repeats 15] [--anuga-cells 250000]
                                               [--no-landlab] [--no-anuga] [--no-storm | --storm-only]

The case: a square raster of 2 m cells over a gently tilted, undulating bed (±0.5 m), 5 cm of
water everywhere to start, 50 mm/h of rain, Manning's n 0.03, closed edges. A cell-update is one
cell advanced by one time step. Each figure is the best of ``--repeats`` timed batches of
``--steps`` steps, 1 and 2 threads taking turns (the machine is shared: the best batch is the
least disturbed one). ANUGA
cannot take a raster: it gets the same bed, water and rain on a mesh of right triangles (four per
square), and its figure counts triangles. Results go to stdout only.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.flood.forcing import Hyetograph  # noqa: E402
from agents.flood.solver import FloodSolver  # noqa: E402

DX = 2.0
RAIN_MM_PER_H = 50.0
H0 = 0.05
N_MANNING = 0.03

# DRAM traffic of one cell-update of ``hydraulics.step`` (bytes): reads h (8), bed, g·n², qx, qy,
# max depth, max speed (4 each), rain mask (1); writes h (8), qx, qy (4 each), each with a
# write-allocate read of the line, and max depth and max speed (4 each, lines already read).
BYTES_PER_CELL_UPDATE = (8 + 4 * 6 + 1) + 2 * (8 + 4 + 4) + (4 + 4)


def bed(ny: int, nx: int) -> np.ndarray:
    x = (np.arange(nx) + 0.5) * DX
    y = (np.arange(ny) + 0.5) * DX
    return 0.001 * x[None, :] + 0.5 * np.sin(x[None, :] / 60.0) * np.cos(y[:, None] / 80.0)


def best_rate(run_batch, units: float, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_batch()
        best = min(best, time.perf_counter() - t0)
    return units / best


# -- memory bandwidth ---------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _triad(a, b, c, s):
    for i in prange(a.size):
        a[i] = b[i] + s * c[i]


def memory_bandwidth(repeats: int) -> dict[str, float]:
    """GB/s of a numpy copy (1 thread) and of a STREAM triad a = b + s·c in Numba (1 and 2 threads),
    on 64 million float64 (512 MB per array, far beyond the caches). The triad counts 32 bytes an
    element (b, c read, a written and read first for the write-allocate), as the step's count does."""
    n = 64_000_000
    a, b, c = np.empty(n), np.ones(n), np.full(n, 2.0)
    out = {"numpy copy, 1 thread": best_rate(lambda: np.copyto(a, b), 2 * 8 * n / 1e9, repeats)}
    for th in (1, 2):
        numba.set_num_threads(min(th, numba.config.NUMBA_NUM_THREADS))
        _triad(a, b, c, 3.0)
        out[f"triad, {th} thread{'s' if th > 1 else ''}"] = best_rate(lambda: _triad(a, b, c, 3.0), 4 * 8 * n / 1e9, repeats)
    return out


# -- ours ---------------------------------------------------------------------------------------------
def make_ours(side: int) -> FloodSolver:
    s = FloodSolver(bed(side, side), DX, manning_n=N_MANNING, initial_depth=np.full((side, side), H0),
                    rain=Hyetograph.uniform(RAIN_MM_PER_H, 0.0, 1e7))
    return s


def bench_ours(side: int, threads: list[int], steps: int, repeats: int) -> tuple[dict[int, float], float]:
    """Cell-updates/s per thread count. The thread counts take turns batch by batch, so that a
    burst of other work on the machine spoils the batches of both rather than of one."""
    s = make_ours(side)
    for th in threads:
        numba.set_num_threads(th)
        for _ in range(2):
            s.step()
    best = dict.fromkeys(threads, math.inf)
    for _ in range(repeats):
        for th in threads:
            numba.set_num_threads(th)
            t0 = time.perf_counter()
            for _ in range(steps):
                s.step()
            best[th] = min(best[th], time.perf_counter() - t0)
    return {th: steps * side * side / b for th, b in best.items()}, s._next_dt(math.inf)[0]


# -- Landlab ------------------------------------------------------------------------------------------
def bench_landlab(side: int, steps: int, repeats: int) -> tuple[float, float]:
    from landlab import RasterModelGrid
    from landlab.components import OverlandFlow

    g = RasterModelGrid((side, side), xy_spacing=DX)
    g.add_field("topographic__elevation", bed(side, side).ravel(), at="node")
    g.add_field("surface_water__depth", np.full(side * side, H0), at="node")
    of = OverlandFlow(g, mannings_n=N_MANNING, rainfall_intensity=RAIN_MM_PER_H / 3.6e6, steep_slopes=True)
    of.overland_flow(of.calc_time_step())
    rate = best_rate(lambda: [of.overland_flow(of.calc_time_step()) for _ in range(steps)],
                     steps * g.number_of_nodes, repeats)
    return rate, of.calc_time_step()


# -- ANUGA --------------------------------------------------------------------------------------------
def bench_anuga(cells: int, threads: int, repeats: int) -> tuple[float, float, int]:
    import anuga

    anuga.set_omp_num_threads(threads)
    m = int(round(math.sqrt(cells / 4)))  # 4 triangles per square
    dom = anuga.rectangular_cross_domain(m, m, len1=DX * m, len2=DX * m)
    dom.set_store(False)
    dom.set_quantity("elevation", lambda x, y: 0.001 * x + 0.5 * np.sin(x / 60.0) * np.cos(y / 80.0))
    dom.set_quantity("friction", N_MANNING)
    dom.set_quantity("stage", expression=f"elevation + {H0}")
    wall = anuga.Reflective_boundary(dom)
    dom.set_boundary({"left": wall, "right": wall, "top": wall, "bottom": wall})
    anuga.Rate_operator(dom, rate=RAIN_MM_PER_H / 3.6e6)
    state = {"t": 2.0}
    for _ in dom.evolve(yieldstep=2.0, finaltime=2.0):
        pass
    best, dt = math.inf, math.nan
    for _ in range(repeats):
        n0, t0 = dom.number_of_steps, time.perf_counter()
        state["t"] += 10.0
        for _ in dom.evolve(yieldstep=10.0, finaltime=state["t"]):
            pass
        el, n = time.perf_counter() - t0, dom.number_of_steps - n0
        if n and el / n < best:
            best, dt = el / n, 10.0 / n
    return len(dom) / best, dt, len(dom)


def bench_storm(cell_size_m: float) -> None:
    """The baseline of scenarios/riverside_storm.toml through ``twin.runs.runner.Run``, as ``citytwin run``
    runs it (without writing the run folder): wall time, and how it splits between the water and
    what reads it every sync (impacts, road closures, evacuation)."""
    from twin.runs.runner import Run
    from twin.scenario.scenario import load_scenario

    sc = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "riverside_storm.toml")
    t0 = time.perf_counter()
    run = Run(sc, overrides={"cell_size_m": cell_size_m})
    m = run.model
    t_build = time.perf_counter() - t0
    reading = [0.0]
    read_water = m._read_water

    def timed(t, dt):
        t1 = time.perf_counter()
        read_water(t, dt)
        reading[0] += time.perf_counter() - t1

    m._read_water = timed
    t1 = time.perf_counter()
    run.run_to_end()
    t_run = time.perf_counter() - t1
    k = m.final_kpis()
    cells = m.raster.grid.ny * m.raster.grid.nx
    water = t_run - reading[0]
    print(f"\n1-hour storm, demo city, {cell_size_m:g} m cells ({cells:,} cells), {numba.get_num_threads()} threads: "
          f"{t_build + t_run:.1f} s wall (build {t_build:.1f} s, run {t_run:.1f} s; target < 60 s)")
    print(f"  water: {m.solver.n_steps:,} steps, {water:.1f} s, {cells * m.solver.n_steps / water / 1e6:.0f} M "
          f"cell-updates/s; impacts, roads and evacuation every {m.time_quantum_s:g} s: {reading[0]:.1f} s")
    print(f"  buildings flooded {k['buildings_flooded']}, people exposed {k['people_exposed']}, evacuees "
          f"{k['evacuees']}, evacuated {k['evacuated']}, stranded {k['stranded']}, volume error "
          f"{k['volume_error_rel']:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--anuga-cells", type=int, default=250_000)
    ap.add_argument("--no-landlab", action="store_true")
    ap.add_argument("--no-anuga", action="store_true")
    ap.add_argument("--no-storm", action="store_true", help="skip the 1-hour storm on the demo city")
    ap.add_argument("--storm-only", action="store_true", help="only the 1-hour storm on the demo city")
    ap.add_argument("--storm-cell-m", type=float, default=2.0)
    a = ap.parse_args()
    if a.storm_only:
        print(f"numba {numba.__version__}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
        bench_storm(a.storm_cell_m)
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
        return
    threads = [t for t in a.threads if t <= numba.config.NUMBA_NUM_THREADS]
    print(f"numba {numba.__version__}, threading layer {numba.config.THREADING_LAYER}, {os.cpu_count()} cores; "
          f"{a.steps} steps per batch, best of {a.repeats}; load average {os.getloadavg()[0]:.1f} at start")

    bw = memory_bandwidth(a.repeats)
    print("\nmemory bandwidth (GB/s): " + ", ".join(f"{k} {v:.1f}" for k, v in bw.items()))
    best_bw = max(v for k, v in bw.items() if k.startswith("triad"))
    print(f"one cell-update of the flood step moves about {BYTES_PER_CELL_UPDATE} bytes from and to memory, so "
          f"the bandwidth bounds it at {best_bw * 1e9 / BYTES_PER_CELL_UPDATE / 1e6:,.0f} million cell-updates/s "
          f"(best triad); below that, the step is bound by arithmetic")

    rows = []
    for cells in a.sizes:
        side = int(round(math.sqrt(cells)))
        ours = bench_ours(side, threads, a.steps, a.repeats)
        ll = (math.nan, math.nan) if a.no_landlab else bench_landlab(side, 2, 5)
        rows.append((side * side, ours, ll))

    head = (f"\n{'cells':>10} " + " ".join(f"{'ours ' + str(t) + 'T':>11}" for t in threads)
            + f" {'speed-up':>8} {'Landlab 1T':>11} {'ours/LL':>8} {'dt ours':>8} {'dt LL':>7} {'% of BW bound':>13}")
    print(head + "\n" + "-" * (len(head) - 1))
    for cells, ours, ll in rows:
        r = [ours[0][t] for t in threads]
        line = f"{cells:>10,} " + " ".join(f"{x / 1e6:>9.1f} M" for x in r)
        line += f" {r[-1] / r[0]:>8.2f} {ll[0] / 1e6:>9.1f} M {r[0] / ll[0]:>8.1f} {ours[1]:>8.3f} {ll[1]:>7.3f}"
        line += f" {100 * max(r) * BYTES_PER_CELL_UPDATE / (best_bw * 1e9):>12.0f}%"
        print(line, flush=True)
    print("(cell-updates per second; speed-up = last thread count over the first; ours/LL at 1 thread; dt in s: "
          "Landlab's OverlandFlow takes α = 0.7, θ = 0.8; ours Courant 0.6, θ = 0.8)")

    if not a.no_anuga:
        print(f"\nANUGA {__import__('anuga').__version__} (DE0, triangles), same bed, water and rain:")
        for th in threads:
            with contextlib.redirect_stdout(io.StringIO()):
                rate, dt, n = bench_anuga(a.anuga_cells, th, 3)
            side = int(round(math.sqrt(n / 4)))
            ours_rate = rows[0][1][0][th] if rows else math.nan
            print(f"  {th} thread{'s' if th > 1 else ' '}: {n:,} triangles, {rate / 1e6:.2f} M triangle-updates/s, dt {dt:.3f} s; "
                  f"per square of ground ({side}² squares of {DX:g} m): {rate / 4 / 1e6:.2f} M/s, "
                  f"ours {ours_rate / 1e6:.0f} M/s ({ours_rate / (rate / 4):.0f}×)")
    if not a.no_storm:
        numba.set_num_threads(max(threads))
        bench_storm(a.storm_cell_m)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end (2 cores: above ~1, other work shared the machine)")


if __name__ == "__main__":
    main()
