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
    from twin.runner import Run
    from twin.scenario import load_scenario

    t0 = time.perf_counter()
    sc = load_scenario(args.scenario)
    if args.duration:
        sc.duration_s = args.duration
    run = Run(sc, args.intervention)
    built = time.perf_counter() - t0
    t1 = time.perf_counter()
    run.run_to_end()
    stepped = time.perf_counter() - t1
    result = run.result()
    total = time.perf_counter() - t0
    shares = run.model.wall_s
    print(f"{sc.name} [{run.variant}], {sc.duration_s:g} simulated s, {os.cpu_count()} CPUs visible")
    print(f"  build {built:6.1f} s (city, flood grid, station navigation, tourist routes)")
    print(f"  run   {stepped:6.1f} s, of which:")
    for name, s in shares.items():
        print(f"    {name:<20} {s:6.1f} s  {100 * s / max(stepped, 1e-9):5.1f} %")
    print(f"  total {total:6.1f} s (target < 180 s on 2 cores)")
    k = result.summary["kpis"]
    for key in ("flood.max_flooded_area_m2", "station_dispersal.agents_exited", "station_dispersal.exited_by_gate",
                "tourist_flow.visits_completed", "tourist_flow.people_in_water", "station_dispersal.people_in_water"):
        print(f"  {key} = {k.get(key)}")


if __name__ == "__main__":
    main()
