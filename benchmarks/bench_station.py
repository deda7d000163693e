"""Throughput of the station crowd engine vs JuPedSim's CollisionFreeSpeedModel (same geometry,
same agents, same dt), and the evening-peak scenario's real-time factor.

    .venv/bin/python benchmarks/bench_station.py [--sizes 10000 50000] [--densities 1 3]
                                                 [--steps 100] [--no-jupedsim] [--no-scenario]

Geometry: a square room holding N agents at the given density (lattice with jitter), exit along
the whole east wall; everyone walks east. dt = 0.05 s for both. Prints agent-steps per second for
numba threads 1 and 2 and for JuPedSim (single-threaded C++), and the ratios; then the evening-peak
scenario on 1 and 2 threads (wall and CPU time, time per phase of a step). Results go to stdout
only.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before numba starts its threads (see agents/station/kernels.py)

from agents.station.crowd import Crowd, MotionParams  # noqa: E402
from agents.station.navigation import build_navigation  # noqa: E402

DT = 0.05


def setup(n: int, rho: float, seed: int = 0):
    side = math.sqrt(n / rho)
    room = shapely.box(0, 0, side, side)
    exit_line = shapely.LineString([(side, 0), (side, side)])
    a = 1.0 / math.sqrt(rho)  # lattice spacing
    k = int(math.floor((side - 0.6) / a))
    xs, ys = np.meshgrid(0.3 + a * (np.arange(k) + 0.5), 0.3 + a * (np.arange(k) + 0.5))
    pts = np.c_[xs.ravel(), ys.ravel()]
    rng = np.random.default_rng(seed)
    pts = pts[rng.permutation(len(pts))[:n]]
    pts += rng.uniform(-0.05, 0.05, pts.shape) * (a - 0.3)
    v0 = np.clip(rng.normal(1.34, 0.26, len(pts)), 0.5, 2.0)
    return room, exit_line, side, pts, v0


def bench_ours(room, exit_line, pts, v0, steps: int, threads: int) -> float:
    numba.set_num_threads(threads)
    nav = build_navigation(room, [("E", exit_line)], cell_m=0.5)
    cr = Crowd(nav, len(pts), MotionParams(), cell_size=1.0)
    cr.parallel_min = 0  # always the threaded kernel, to measure the thread speed-up
    cr.add(pts[:, 0], pts[:, 1], v0, np.zeros(len(pts), np.int32))
    for _ in range(5):  # warm-up (compilation is cached, this settles the caches)
        cr.step(DT)
    done = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        n = cr.n
        cr.step(DT)
        cr.take_exits()
        done += n
    return done / (time.perf_counter() - t0)


def bench_jupedsim(room, side, pts, v0, steps: int) -> float:
    import jupedsim as jps

    sim = jps.Simulation(model=jps.CollisionFreeSpeedModel(), geometry=room, dt=DT)
    exit_id = sim.add_exit_stage(shapely.box(side - 0.3, 0.1, side - 0.01, side - 0.1))
    jid = sim.add_journey(jps.JourneyDescription([exit_id]))
    for (x, y), v in zip(pts, v0):
        sim.add_agent(jps.CollisionFreeSpeedModelAgentParameters(
            journey_id=jid, stage_id=exit_id, position=(float(x), float(y)), desired_speed=float(v), radius=0.14))
    for _ in range(5):
        sim.iterate()
    done = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        done += sim.agent_count()
        sim.iterate()
    return done / (time.perf_counter() - t0)


def bench_scenario(threads: int) -> tuple[int, float, float, float, dict]:
    """The evening peak (scenarios/station_evening_peak.toml, baseline) on ``threads`` threads:
    (passengers, simulated s, wall s, CPU s of this process, seconds per phase of a step)."""
    import collections

    from agents.station import model as M
    from agents.station.crowd import Crowd
    from twin.runs.runner import build_model
    from twin.scenario.scenario import load_scenario

    numba.set_num_threads(threads)
    phases = collections.Counter()

    def timed(obj, name):
        f = getattr(obj, name)

        def g(*a, **k):
            t = time.perf_counter()
            r = f(*a, **k)
            phases[name] += time.perf_counter() - t
            return r
        setattr(obj, name, g)
        return f

    saved = [(obj, name, timed(obj, name)) for obj, name in
             [(Crowd, "build_cells"), (Crowd, "move")] + [(M.StationDispersalModel, n) for n in
                                                          ("_arrive", "_release", "_events", "_reroute", "_onward",
                                                           "_density")]]
    sc = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "station_evening_peak.toml")
    m = build_model(sc)
    if threads == 1:
        m.crowd.parallel_min = 10**9
    t0, c0 = time.perf_counter(), time.process_time()
    m.run_to_end()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    for obj, name, f in saved:
        setattr(obj, name, f)
    return m.N, m.time_s, wall, cpu, dict(phases)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--densities", type=float, nargs="+", default=[1.0, 3.0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-jupedsim", action="store_true")
    ap.add_argument("--no-scenario", action="store_true")
    a = ap.parse_args()
    print(f"numba {numba.__version__}, threading layer {numba.config.THREADING_LAYER}, dt {DT} s, "
          f"{a.steps} measured steps")
    head = f"{'agents':>7} {'p/m2':>5} " + " ".join(f"{'ours ' + str(t) + 'T':>12}" for t in a.threads)
    head += f" {'JuPedSim':>12} {'ratio 1T':>9} {'ratio best':>10} {'speed-up':>9}"
    print(head)
    print("-" * len(head))
    for n in a.sizes:
        for rho in a.densities:
            room, exit_line, side, pts, v0 = setup(n, rho)
            ours = [bench_ours(room, exit_line, pts, v0, a.steps, t) for t in a.threads]
            jps_rate = float("nan") if a.no_jupedsim else bench_jupedsim(room, side, pts, v0, a.steps)
            best = max(ours)
            row = f"{n:>7} {rho:>5.1f} " + " ".join(f"{r:>12,.0f}" for r in ours)
            row += f" {jps_rate:>12,.0f} {ours[0] / jps_rate:>9.2f} {best / jps_rate:>10.2f} {ours[-1] / ours[0]:>9.2f}"
            print(row, flush=True)
    print("(agent-steps per second; ratio = ours / JuPedSim; speed-up = last thread count / first)")
    if not a.no_scenario:
        for t in a.threads:
            n, sim_s, wall, cpu, phases = bench_scenario(t)
            print(f"evening-peak scenario, {t} thread(s): {n} passengers, {sim_s:.0f} s simulated in {wall:.1f} s wall "
                  f"= {sim_s / wall:.1f} x real time (process CPU {cpu:.1f} s = {sim_s / cpu:.1f} x)")
            print("  per phase (wall s): " + ", ".join(f"{k.strip('_')} {v:.1f}" for k, v in
                                                       sorted(phases.items(), key=lambda kv: -kv[1])))
        try:
            load = os.getloadavg()[0]
            print(f"(load average {load:.1f} on {os.cpu_count()} cores: other processes share the machine)")
        except OSError:
            pass


if __name__ == "__main__":
    main()
