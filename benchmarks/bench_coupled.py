"""The coupled storm on a holiday evening (scenarios/storm_holiday_evening.toml: flood, station and
tourists on one clock, one hour) timed as the CLI runs it, with each model's share of the time
(and the hand-overs'). The target: under 3 minutes on 2 cores.

    .venv/bin/python benchmarks/bench_coupled.py [--scenario FILE] [--intervention NAME] [--duration S]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "storm_holiday_evening.toml"))
    ap.add_argument("--intervention", default=None)
    ap.add_argument("--duration", type=float, default=None, help="simulated seconds (default: the scenario's)")
    args = ap.parse_args()
    from twin.runs.runner import Run
    from twin.scenario.scenario import load_scenario

    t0, c0 = time.perf_counter(), time.process_time()
    sc = load_scenario(args.scenario)
    if args.duration:
        sc.duration_s = args.duration
    run = Run(sc, args.intervention)
    built, built_cpu = time.perf_counter() - t0, time.process_time() - c0
    t1, c1 = time.perf_counter(), time.process_time()
    run.run_to_end()
    stepped, stepped_cpu = time.perf_counter() - t1, time.process_time() - c1
    result = run.result()
    total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    m = run.model
    print(f"{sc.name} [{run.variant}], {sc.duration_s:g} simulated s, {os.cpu_count()} CPUs visible, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"  build {built:6.1f} s wall {built_cpu:6.1f} s CPU (city, flood grid, station navigation, tourist routes)")
    print(f"  run   {stepped:6.1f} s wall {stepped_cpu:6.1f} s CPU, of which:")
    for name in m.wall_s:
        print(f"    {name:<20} {m.wall_s[name]:6.1f} s wall {m.cpu_s[name]:6.1f} s CPU  "
              f"{100 * m.cpu_s[name] / max(stepped_cpu, 1e-9):5.1f} % of the CPU time")
    print(f"  total {total:6.1f} s wall {total_cpu:6.1f} s CPU (target < 180 s on 2 cores)")
    k = result.summary["kpis"]
    for key in ("flood.max_flooded_area_m2", "station_dispersal.agents_exited", "station_dispersal.exited_by_gate",
                "station_dispersal.tourists_exited", "tourist_flow.tourists_from_station",
                "tourist_flow.tourists_total",
                "tourist_flow.visits_completed", "tourist_flow.people_in_water", "station_dispersal.people_in_water"):
        print(f"  {key} = {k.get(key)}")


if __name__ == "__main__":
    main()
