"""kill -9 of `citytwin compare` at random moments (issue 10): every finished run is reused by the next
call, whatever the path was typed like, and the final comparison.csv is byte-identical to that of an
uninterrupted comparison."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.factories import write_scenario
from twin.core import locks

# 3 variants × 4 replications of the toy model, each run about a second.
BODY = ('[parameters]\nwalkers = 100000\nspeed_mps = 0.5\n\n'
        '[[interventions]]\nname = "fast"\n[interventions.parameters]\nspeed_mps = 0.8\n\n'
        '[[interventions]]\nname = "快"\n[interventions.parameters]\nspeed_mps = 1.1\n')
RUNS = 12


def compare(sc, out, cwd, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "twin.cli", "compare", str(sc), "--replications", "4",
                             "--workers", "2", "--quiet", "--out", str(out)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def finished(out: Path) -> set[str]:
    return {str(p.parent.relative_to(out)) for p in out.glob("runs/*/rep-*/summary.json")}


def counts(stdout: str) -> tuple[int, int]:
    m = re.search(r"\((\d+) run now, (\d+) reused\)", stdout)
    assert m, stdout
    return int(m[1]), int(m[2])


@pytest.mark.slow
def test_compare_killed_at_random_moments_resumes_to_identical_results(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, BODY, duration_s=100)
    ref = compare(sc, tmp_path / "ref", tmp_path)
    stdout, stderr = ref.communicate(timeout=600)
    assert ref.returncode == 0, stderr
    assert counts(stdout) == (RUNS, 0)

    rng = random.Random(10)
    out = tmp_path / "cmp"
    kills = 0
    # The calls name the scenario and --out in different ways, from different folders: run hashes
    # must not depend on how a path was typed, nor on the current folder.
    ways = [(sc.name, "cmp", tmp_path), (sc, out, Path("/")),
            (Path(tmp_path.name) / sc.name, Path(tmp_path.name) / "cmp", tmp_path.parent)]
    targets = sorted(rng.sample(range(1, RUNS - 1), 3))  # kill once this many runs are done…
    for round_, target in enumerate(targets):
        before = finished(out) if out.exists() else set()
        if len(before) >= target:
            continue
        p = compare(*ways[round_], start_new_session=True)
        try:
            end = time.monotonic() + 300
            while time.monotonic() < end and p.poll() is None and len(finished(out) if out.exists() else ()) < target:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))  # …plus a random moment: mid-run, mid-write or between runs
            whole_group = round_ != 0  # a crash takes the workers too; `kill -9 PID` leaves them orphaned
            if p.poll() is None:
                workers = psutil.Process(p.pid).children()
                os.killpg(p.pid, signal.SIGKILL) if whole_group else os.kill(p.pid, signal.SIGKILL)
                kills += 1
                # the workers of a killed compare end with it instead of waiting for work forever
                _, alive = psutil.wait_procs(workers, timeout=30)
                for w in alive:
                    w.kill()  # not left behind by a failing test
                assert not alive, f"workers {[w.pid for w in alive]} outlived the killed compare"
            p.wait(timeout=60)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert kills >= 2, "compare finished before it could be killed: make the runs slower"

    saved = finished(out)
    assert saved
    last = compare(sc.name, "cmp", tmp_path)
    stdout, stderr = last.communicate(timeout=600)
    assert last.returncode == 0, stderr
    ran, reused = counts(stdout)
    assert reused >= len(saved) and ran + reused == RUNS  # every saved run was reused, none redone
    assert (out / "comparison.csv").read_bytes() == (tmp_path / "ref" / "comparison.csv").read_bytes()
    assert not list(out.rglob("*.partial")) and not list(out.rglob(f"*{locks.SUFFIX}"))
    assert not locks.lock_path(out).exists()


@pytest.mark.slow
def test_run_hashes_do_not_depend_on_how_the_scenario_path_is_typed(tmp_path, tiny_city, monkeypatch, capsys):
    from twin.cli import main

    sc = write_scenario(tmp_path, tiny_city, '[parameters]\nwalkers = 10\n\n[[interventions]]\nname = "fast"\n'
                        "[interventions.parameters]\nspeed_mps = 1.5\n", replications=2)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    args = ["--workers", "1", "--quiet", "--out"]
    assert main(["compare", f"../{sc.name}", *args, "../cmp"]) == 0
    assert "(4 run now, 0 reused)" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    assert main(["compare", sc.name, *args, "cmp"]) == 0
    assert "(0 run now, 4 reused)" in capsys.readouterr().out
    assert main(["compare", str(sc), *args, str(tmp_path / "cmp")]) == 0
    assert "(0 run now, 4 reused)" in capsys.readouterr().out
    # `run` records the same hash for the same inputs, whatever the path looked like.
    assert main(["run", sc.name, "--seed", "1", "--quiet", "--out", "r1"]) == 0
    monkeypatch.chdir(tmp_path / "sub")
    assert main(["run", str(sc), "--seed", "1", "--quiet", "--out", "../r2"]) == 0
    hashes = {json.loads((tmp_path / d / "bundle.json").read_text())["hash"]
              for d in ("r1", "r2", "cmp/runs/baseline/rep-000")}
    assert len(hashes) == 1
