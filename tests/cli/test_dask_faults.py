"""`compare --scheduler` when the cluster is not what it should be (issue 10): a scheduler without
workers is reported while it is waited for and times out; losing every worker mid-way stops with a
message instead of hanging, and the finished runs are reused afterwards."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from tests.factories import write_scenario

BODY = '[parameters]\nwalkers = 20\n\n[[interventions]]\nname = "fast"\n[interventions.parameters]\nspeed_mps = 1.5\n'


def citytwin(*args, timeout_s="3s", **kw):
    return subprocess.Popen([sys.executable, "-m", "twin.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "CITYTWIN_DASK_TIMEOUT": timeout_s},
                            **kw)


@pytest.fixture
def cluster_without_workers():
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster


@pytest.mark.slow
def test_scheduler_without_workers_says_what_it_waits_for_and_times_out(tmp_path, tiny_city, cluster_without_workers):
    sc = write_scenario(tmp_path, tiny_city, BODY)
    out = tmp_path / "cmp"
    started = time.monotonic()
    p = citytwin("compare", sc, "--scheduler", cluster_without_workers.scheduler_address, "--quiet", "--out", out)
    stdout, stderr = p.communicate(timeout=120)
    elapsed = time.monotonic() - started
    assert p.returncode == 2, stderr
    assert "has no workers; waiting up to 3 s" in stderr  # said while it waits
    assert "is up but has no workers, and none joined" in stderr and "dask worker" in stderr
    assert "Traceback" not in stderr and not out.exists()
    assert elapsed < 60


@pytest.mark.slow
def test_losing_every_worker_mid_way_stops_with_a_message_and_keeps_finished_runs(tmp_path, tiny_city):
    from distributed import LocalCluster

    slow = BODY.replace("walkers = 20", "walkers = 100000\nspeed_mps = 0.5")
    sc = write_scenario(tmp_path, tiny_city, slow, duration_s=100, replications=6)
    out = tmp_path / "cmp"
    with LocalCluster(n_workers=1, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        p = citytwin("compare", sc, "--scheduler", cluster.scheduler_address, "--quiet", "--out", out)
        try:
            end = time.monotonic() + 240
            while time.monotonic() < end and not list(out.glob("runs/*/rep-*/summary.json")):
                time.sleep(0.1)
            cluster.scale(0)  # every worker gone
            stdout, stderr = p.communicate(timeout=180)
        finally:
            if p.poll() is None:
                p.kill()
        assert p.returncode == 2, stdout + stderr
        assert "the Dask scheduler has had no workers for 3 s" in stderr and "run(s) are waiting" in stderr
        assert "Traceback" not in stderr
        saved = len(list(out.glob("runs/*/rep-*/summary.json")))
        assert 0 < saved < 12
        cluster.scale(1)
        cluster.wait_for_workers(1, timeout=120)
        again = citytwin("compare", sc, "--scheduler", cluster.scheduler_address, "--quiet", "--out", out,
                         timeout_s="30s")
        stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    ran, reused = map(int, re.search(r"\((\d+) run now, (\d+) reused\)", stdout).groups())
    assert reused >= saved and ran + reused == 12
