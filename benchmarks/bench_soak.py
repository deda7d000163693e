"""Soak: does memory grow when CityTwin runs for a long time? (issue 10; target: growth < 10 %)

    python benchmarks/bench_soak.py                 # both parts, as reported
    python benchmarks/bench_soak.py --hours 0.5 --runs 20   # a quick look

1. The station evening peak (scenarios/station_evening_peak.toml: 9,000 passengers from six trains)
   replayed back to back in one process until 6 hours have been simulated, each peak a full
   ``run_one`` with its outputs written (time series, GeoTIFFs, bundle). The trains of a scenario
   arrive once and the model stops when the last passenger has left (about 1,400 s of its 1,800), so
   the six hours are some sixteen successive evening peaks; each uses the next seed, like the
   replications of a comparison. RSS is read after each peak (after a garbage collection); growth is
   the last peak against the first, so that one-off costs (imports, Numba compilation, the
   navigation-field cache) do not count as growth.
2. A 200-run comparison (the toy model: 2 variants × 100 replications, 2 local worker processes):
   RSS of the main process and of each worker, sampled every 0.2 s, first against last.

RSS is the resident set (psutil). The figures depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CITYTWIN_MODELS", "toy=tests.toy_model:ToyModel")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))

import psutil  # noqa: E402 - a dependency of dask.distributed

MB = 1024 * 1024
TARGET = 0.10


def rss_mb(proc: psutil.Process | None = None) -> float:
    return (proc or psutil.Process()).memory_info().rss / MB


def growth(first: float, last: float) -> str:
    g = (last - first) / first
    return f"{g * 100:+.1f} % ({'within' if g < TARGET else 'OVER'} the {TARGET * 100:.0f} % target)"


def station_peaks(hours: float, tmp: Path) -> None:
    from twin.runs.runner import run_one
    from twin.scenario.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "station_evening_peak.toml")
    print(f"1. {sc.name}: evening peaks back to back until {hours:g} simulated hours, one process")
    gc.collect()
    print(f"   RSS before the first peak (imports only): {rss_mb():7.1f} MB")
    after = []
    simulated = 0.0
    started = time.perf_counter()
    k = 0
    while simulated < hours * 3600:
        t = time.perf_counter()
        result = run_one(sc, seed=sc.seed + k, out=tmp / f"peak-{k:02d}")
        simulated += result.summary["simulated_s"]
        kpis = result.summary["kpis"]
        del result
        gc.collect()
        after.append(rss_mb())
        k += 1
        print(f"   peak {k:2d} (seed {sc.seed + k - 1}): {kpis['agents_exited']} out, clearance "
              f"{kpis['clearance_time_s']:.0f} s, {time.perf_counter() - t:6.1f} s wall, RSS {after[-1]:7.1f} MB, "
              f"{simulated / 3600:.2f} h simulated so far", flush=True)
    print(f"   {k} peaks, {simulated / 3600:.2f} h simulated in {(time.perf_counter() - started) / 60:.1f} min wall; "
          f"highest RSS of the process {max_rss_mb():.0f} MB")
    print(f"   RSS after peak 1: {after[0]:.1f} MB, after peak {k}: {after[-1]:.1f} MB -> growth "
          f"{growth(after[0], after[-1])}")


def max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def big_compare(runs: int, tmp: Path) -> None:
    from tests.factories import make_tiny_city, write_scenario
    from twin.runs.experiment import compare

    reps = runs // 2
    city = make_tiny_city(tmp)
    sc = write_scenario(tmp, city, '[parameters]\nwalkers = 5000\nspeed_mps = 1.0\ndistance_m = 150\n\n'
                        '[[interventions]]\nname = "fast"\n[interventions.parameters]\nspeed_mps = 1.3\n',
                        duration_s=200, seed=3, replications=reps, name="soak")
    me = psutil.Process()
    samples: dict[int, list[float]] = {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            for p in [me, *me.children(recursive=True)]:
                try:
                    if "resource_tracker" not in " ".join(p.cmdline()):  # multiprocessing's helper
                        samples.setdefault(p.pid, []).append(rss_mb(p))
                except psutil.Error:
                    pass
            time.sleep(0.2)

    compare(sc, tmp / "warm-up", replications=2, workers=2, progress=False)  # imports, caches, report fonts
    gc.collect()
    start_main = rss_mb()
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    started = time.perf_counter()
    result = compare(sc, tmp / "cmp", workers=2, progress=False)
    wall = time.perf_counter() - started
    done.set()
    t.join()
    gc.collect()
    end_main = rss_mb()
    print(f"2. compare: {len(result.runs)} runs (2 variants × {reps} replications, toy model, 2 workers) in "
          f"{wall:.1f} s")
    print(f"   main process RSS: {start_main:.1f} MB at the start, {end_main:.1f} MB at the end -> growth "
          f"{growth(start_main, end_main)}")
    workers = {pid: s for pid, s in samples.items() if pid != me.pid and len(s) >= 10}
    for i, (pid, s) in enumerate(sorted(workers.items())):
        # A worker's first samples are its start-up (imports, first run); after that it should be flat.
        warm = s[len(s) // 5]
        print(f"   worker {i + 1} (pid {pid}): RSS {warm:.1f} MB after a fifth of its life, {s[-1]:.1f} MB at its last "
              f"sample ({len(s)} samples) -> growth {growth(warm, s[-1])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=6.0, help="simulated hours of evening peaks, back to back")
    ap.add_argument("--runs", type=int, default=200, help="runs of the comparison")
    ap.add_argument("--skip-station", action="store_true")
    ap.add_argument("--skip-compare", action="store_true")
    args = ap.parse_args()
    print(f"bench_soak on {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as d:
        if not args.skip_compare:
            big_compare(args.runs, Path(d) / "compare")
        if not args.skip_station:
            station_peaks(args.hours, Path(d) / "station")


if __name__ == "__main__":
    main()
