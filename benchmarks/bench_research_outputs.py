"""What the research outputs cost (docs/outputs.md 'Cost'): a scenario run to the end and written,
once without any ``[outputs]`` and once with the given ones (same seed: the model does the same
work), and the difference of the two wall times as a share of the run with outputs (the run with
outputs goes first, after a 30-second warm-up run that loads the libraries, kernels and city).
On a shared machine the wall times swing with the other jobs, so the same difference is also taken
of the process's CPU time (all its threads), which the load disturbs much less. The run with
outputs also times what its own thread spends on them (the snapshots read for them, handing frames to
the writers, finishing the files, moving them into the run folder); the trajectory writer's thread is
not in that figure but is in the difference; its threads' CPU time is printed by part
(``trajectory_writer_cpu_s``: "frames" gathers, orders and orients the rows, then each file), and
the part of the run thread's time that waited for it to catch up. Prints the machine's load average around each run, the
core count and each file's size. ``--repeat N`` makes N such pairs (with, then without) and adds the
best and the median of their shares: on a shared machine one pair says little.

    python benchmarks/bench_research_outputs.py scenarios/riverside_storm.toml \
        --outputs 'fields = ["depth", "velocity"]' 'field_interval_s = 60' 'feature_interval_s = 60'
    python benchmarks/bench_research_outputs.py scenarios/station_evening_peak.toml \
        --outputs 'trajectory_interval_s = 0.25' --repeat 3
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.runs import exports  # noqa: E402
from twin.runs.runner import Run  # noqa: E402
from twin.scenario.scenario import load_scenario, scenario_from_dict  # noqa: E402


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def load() -> list[float]:
    return [round(x, 1) for x in os.getloadavg()]


def cpu_s() -> float:
    """CPU seconds of this process, every thread (the model's, the writer's) counted."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed_run(sc, out: Path) -> dict:
    spent = {"recording": 0.0}
    read_due = exports.Recorder.read_due

    def timed(self, model):
        t = time.perf_counter()
        read_due(self, model)
        spent["recording"] += time.perf_counter() - t

    exports.Recorder.read_due = timed
    try:
        load_before, t0, c0 = load(), time.perf_counter(), cpu_s()
        run = Run(sc, stage_near=out.parent)
        run.run_to_end()
        t_run = time.perf_counter() - t0
        if run.streams is not None:
            t = time.perf_counter()
            run.streams.close()
            spent["finishing"] = time.perf_counter() - t
        t = time.perf_counter()
        run.write(out, run.result())
        t_write = time.perf_counter() - t
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    finally:
        exports.Recorder.read_due = read_due
    files = {p.name: round(size(out / p.name) / 2**20, 1) for p in (run.streams.files if run.streams else [])}
    writer = run.streams.trajectories if run.streams is not None else None
    writer_cpu = {k: round(v, 2) for k, v in writer.cpu_s.items()} if writer is not None else {}
    if writer is not None:  # the part of "recording" that waited for the writer to catch up
        spent["of which waiting for the trajectory writer"] = writer.waited_s
    if run.streams is not None:
        run.streams.release()
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "run_s": round(t_run, 1), "write_run_folder_s": round(t_write, 1),
            "simulated_s": run.model.time_s, "load_before": load_before, "load_after": load(),
            "own_thread_s": {k: round(v, 2) for k, v in spent.items()}, "trajectory_writer_cpu_s": writer_cpu,
            "files_MB": files}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--outputs", nargs="+", required=True, help="TOML lines of the [outputs] table")
    ap.add_argument("--out", default=None)
    ap.add_argument("--duration", type=float, default=None, help="run only the first DURATION seconds")
    ap.add_argument("--repeat", type=int, default=1, help="this many pairs of runs (with, then without); "
                    "prints each pair and the best and median shares")
    a = ap.parse_args()
    sc = load_scenario(a.scenario)
    raw = dict(sc.raw)
    if a.duration is not None:
        raw["scenario"] = {**raw["scenario"], "duration_s": a.duration}
    plain = scenario_from_dict({k: v for k, v in raw.items() if k != "outputs"}, sc.path)
    raw["outputs"] = tomllib.loads("\n".join(a.outputs))  # only these: the scenario's own exports are not timed
    with_outputs = scenario_from_dict(raw, sc.path)
    top = Path(a.out or tempfile.mkdtemp(prefix="bench-research-"))
    # a short run first loads the libraries, the compiled kernels and the city for both; then the run
    # with outputs (should anything be left to load, the share errs on the high side)
    warm = dict(raw, scenario={**raw["scenario"], "duration_s": min(30.0, plain.duration_s)})
    warm.pop("outputs")
    timed_run(scenario_from_dict(warm, sc.path), top / "warm-up")
    pairs = []
    for i in range(a.repeat):
        with_ = timed_run(with_outputs, top / f"with{i}")
        without = timed_run(plain, top / f"without{i}")
        extra = with_["wall_s"] - without["wall_s"]
        extra_cpu = with_["cpu_s"] - without["cpu_s"]
        pairs.append({"without_outputs": without, "with_outputs": with_, "extra_wall_s": round(extra, 1),
                      "overhead_share": round(extra / with_["wall_s"], 3), "extra_cpu_s": round(extra_cpu, 1),
                      "cpu_share": round(extra_cpu / with_["cpu_s"], 3),
                      "own_thread_share": round(sum(v for k, v in with_["own_thread_s"].items()
                                                    if not k.startswith("of which")) / with_["wall_s"], 3)})
    head = {"scenario": sc.name, "outputs": raw["outputs"], "cores": os.cpu_count()}
    if a.repeat == 1:
        print(json.dumps({**head, **pairs[0]}, indent=2))
        return
    summary = {}
    for key in ("overhead_share", "cpu_share", "extra_wall_s", "extra_cpu_s"):
        values = [p[key] for p in pairs]
        summary[key] = {"best": min(values), "median": statistics.median(values), "all": values}
    summary["load_1min"] = [p["with_outputs"]["load_before"][0] for p in pairs]
    print(json.dumps({**head, "pairs": pairs, "summary": summary}, indent=2))

if __name__ == "__main__":
    main()
