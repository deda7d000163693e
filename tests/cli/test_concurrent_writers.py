"""Concurrent use of one output folder (issue 10): one writer at a time, named when refused; the lock
of a killed process is taken over; ``atomic_dir`` forced together never fails or mixes two writers."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.factories import write_scenario
from twin.core import locks
from twin.cli import main
from twin.core.files import atomic_dir

SLOW = "[parameters]\nwalkers = 200000\ndistance_m = 10000\n"  # nobody arrives: the run lasts its duration


def citytwin(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "twin.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def hold_in_other_process(folder: Path, kind: str = "hold") -> subprocess.Popen:
    """A process that holds the writer's (or the commit) lock of ``folder`` until killed."""
    take = "locks.hold(sys.argv[1])" if kind == "hold" else "cm = locks.commit(sys.argv[1]); cm.__enter__()"
    code = f"import sys, time; from twin.core import locks; {take}; print('held', flush=True); time.sleep(600)"
    p = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_second_run_on_the_same_out_is_refused_naming_the_holder(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, SLOW, duration_s=600)
    out = tmp_path / "out"
    first = citytwin("run", sc, "--quiet", "--out", out)
    try:
        assert wait_for(lambda: locks.lock_path(out).exists()), "the first run never took its lock"
        second = subprocess.run([sys.executable, "-m", "twin.cli", "run", str(sc), "--quiet", "--out", str(out)],
                                capture_output=True, text=True)
        assert second.returncode == 2, second.stderr
        assert f"process {first.pid}" in second.stderr and "is writing to this folder" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
    assert json.loads((out / "summary.json").read_text())["kpis"]["walkers_done"] == 0
    assert not locks.lock_path(out).exists()  # released at the end
    assert main(["run", str(sc), "--quiet", "--set", "walkers=5", "--set", "distance_m=10", "--out", str(out)]) == 0


@pytest.mark.slow
def test_compare_is_refused_while_another_process_writes_there(tmp_path, tiny_city, capsys):
    sc = write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 10\n")
    out = tmp_path / "cmp"
    holder = hold_in_other_process(out)
    try:
        assert main(["compare", str(sc), "--workers", "1", "--quiet", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"process {holder.pid}" in err and "Wait for it to finish" in err
        assert os.listdir(out) == [locks.SUFFIX]  # the holder's lock, nothing of ours
    finally:
        holder.kill()
        holder.wait()
    # kill -9 leaves the lock file behind; the next writer takes it over.
    assert locks.lock_path(out).exists()
    assert main(["compare", str(sc), "--workers", "1", "--quiet", "--out", str(out)]) == 0
    assert (out / "comparison.csv").is_file() and not locks.lock_path(out).exists()


def test_stale_lock_file_of_a_dead_process_is_taken_over(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 5\n")
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out.mkdir()
    locks.lock_path(out).write_text(f"{dead.stdout.strip()}\nsomehost\n2020-01-01 00:00:00\ncitytwin run x\n")
    assert main(["run", str(sc), "--quiet", "--out", str(out)]) == 0
    assert (out / "summary.json").is_file() and not locks.lock_path(out).exists()


def test_lock_is_reentrant_for_its_thread_only(tmp_path):
    folder = tmp_path / "f"
    a = locks.hold(folder)
    assert locks.hold(folder) is a  # the same command taking it again (preflight, then atomic_dir)
    seen = {}

    def other():
        try:
            locks.hold(folder)
        except locks.FolderBusy as e:
            seen["error"] = str(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert "this process" in seen["error"]
    locks.release(a)
    assert locks.lock_path(folder).exists()  # still held once
    locks.release(a)
    assert not locks.lock_path(folder).exists() and not folder.exists()


def test_lock_makes_no_folders_it_does_not_leave_behind(tmp_path):
    folder = tmp_path / "a" / "b" / "out"
    lock = locks.hold(folder)
    assert (tmp_path / "a" / "b").is_dir()
    locks.release(lock)
    assert not (tmp_path / "a").exists()


# -- atomic_dir forced together ---------------------------------------------------------------------
FILES = ("summary.json", "timeseries.csv", "sub/map.tif")


def _write_as(path: str, who: str, barrier) -> None:
    with atomic_dir(Path(path)) as tmp:
        for name in FILES:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(who * 1000)
        barrier.wait()  # every writer reaches its commit at the same moment


def _assert_one_writer(folder: Path, writers: set[str]) -> None:
    contents = {(folder / name).read_text() for name in FILES}
    assert len(contents) == 1, "the folder mixes writers"
    assert contents.pop()[:1] in writers
    assert not [p for p in folder.parent.iterdir() if p.name.endswith((".partial", locks.SUFFIX))]
    assert not (folder / locks.SUFFIX).exists()


@pytest.mark.parametrize("round_", range(5))
def test_atomic_dir_forced_together_in_threads(tmp_path, round_):
    target = tmp_path / "run"
    barrier = threading.Barrier(6)
    errors = []

    def work(who):
        try:
            _write_as(str(target), who, barrier)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in "abcdef"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _assert_one_writer(target, set("abcdef"))


@pytest.mark.slow
def test_atomic_dir_forced_together_in_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn")  # this test process has threads: no fork
    for round_ in range(2):
        target = tmp_path / f"run{round_}"
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_write_as, args=(str(target), w, barrier)) for w in "wxyz"]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        _assert_one_writer(target, set("wxyz"))


@pytest.mark.slow
def test_killed_writer_lock_does_not_block_atomic_dir(tmp_path):
    target = tmp_path / "run"
    holder = hold_in_other_process(target, kind="commit")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert locks.commit_lock_path(target).exists()  # left behind by the killed process
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("ok")
    assert (target / "a.txt").read_text() == "ok" and not locks.commit_lock_path(target).exists()


@pytest.mark.slow
def test_compare_into_a_writable_folder_under_a_read_only_one(tmp_path, tiny_city):
    """/shared is read-only, /shared/me is mine: a comparison works there, and is still locked."""
    from tests.cli.test_hostile_input import _drop_dac_override, read_only_folder

    sc = write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 5\n", replications=1)
    shared = read_only_folder(tmp_path)  # skips where even a read-only folder is writable
    shared.chmod(0o755)
    mine = shared / "me"
    mine.mkdir()
    shared.chmod(0o555)

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "twin.cli", "compare", str(sc), "--workers", "1", "--quiet",
                               "--out", str(mine), *extra], capture_output=True, text=True,
                              preexec_fn=_drop_dac_override)

    try:
        r = run()
        assert r.returncode == 0, r.stderr
        assert (mine / "comparison.csv").is_file() and not (mine / locks.SUFFIX).exists()
        # …and a second writer is refused while one holds it.
        holder = hold_in_other_process(mine)
        try:
            r = run()
            assert r.returncode == 2 and f"process {holder.pid}" in r.stderr, r.stderr
        finally:
            holder.kill()
            holder.wait()
        r = run("--quiet")
        assert r.returncode == 0 and "(0 run now, 1 reused)" in r.stdout, r.stderr
        # A run (not a comparison) is built beside its folder: there it is refused up front.
        r = subprocess.run([sys.executable, "-m", "twin.cli", "run", str(sc), "--quiet", "--out", str(mine)],
                           capture_output=True, text=True, preexec_fn=_drop_dac_override)
        assert r.returncode == 2 and f"cannot write in {shared}" in r.stderr, r.stderr
    finally:
        shared.chmod(0o755)
