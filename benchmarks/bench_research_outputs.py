"""What the research outputs cost (docs/outputs.md 'Cost'): one run of a scenario with fields over
time, trajectories or feature values, timing every moment the run spends on them (the snapshots
read for them, the writing while the run goes, finishing the files and moving them into the run
folder) against the run's wall time, and the size of each file.

    python benchmarks/bench_research_outputs.py scenarios/riverside_storm.toml \
        --outputs 'fields = ["depth", "velocity"]' 'field_interval_s = 60' 'feature_interval_s = 60'
    python benchmarks/bench_research_outputs.py scenarios/station_evening_peak.toml \
        --outputs 'trajectory_interval_s = 0.25'
"""
from __future__ import annotations

import argparse
import json
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--outputs", nargs="+", required=True, help="TOML lines of the [outputs] table")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    sc = load_scenario(a.scenario)
    raw = dict(sc.raw)
    raw["outputs"] = tomllib.loads("\n".join(a.outputs))  # only these: the scenario's own exports are not timed
    sc = scenario_from_dict(raw, sc.path)

    spent = {"recording": 0.0}
    read_due = exports.Recorder.read_due

    def timed(self, model):
        t = time.perf_counter()
        read_due(self, model)
        spent["recording"] += time.perf_counter() - t

    exports.Recorder.read_due = timed
    out = Path(a.out or tempfile.mkdtemp(prefix="bench-research-")) / "run"
    t0 = time.perf_counter()
    run = Run(sc, stage_near=out.parent)
    t_build = time.perf_counter() - t0
    run.run_to_end()
    t_run = time.perf_counter() - t0
    t = time.perf_counter()
    run.streams.close()
    spent["finishing"] = time.perf_counter() - t
    t = time.perf_counter()
    result = run.result()
    run.write(out, result)
    t_write = time.perf_counter() - t
    t = time.perf_counter()
    run.streams.copy_into(Path(tempfile.mkdtemp(dir=out.parent)))  # what the run folder's write spent on them
    spent["moving_in"] = time.perf_counter() - t
    wall = time.perf_counter() - t0
    files = {p.name: size(p) for p in run.streams.files}
    overhead = sum(spent.values())
    print(json.dumps({"scenario": sc.name, "outputs": raw["outputs"], "simulated_s": run.model.time_s,
                      "build_s": round(t_build, 1), "run_s": round(t_run, 1), "write_run_folder_s": round(t_write, 1),
                      "wall_s": round(wall, 1), "spent_s": {k: round(v, 2) for k, v in spent.items()},
                      "overhead_share": round(overhead / wall, 3),
                      "files_MB": {k: round(v / 2**20, 1) for k, v in files.items()}}, indent=2))


if __name__ == "__main__":
    main()
