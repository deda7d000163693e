import json
import os

import pandas as pd
import pytest

from tests.factories import write_scenario
from twin.cli import main
from twin.core.errors import UserError
from twin.runs.experiment import RunFailed, compare
from twin.scenario.plan import make_plan
from twin.scenario.sweeps import slugify
from twin.scenario.scenario import load_scenario

BODY = ('[parameters]\nwalkers = 30\n\n[[interventions]]\nname = "Fast walkers"\n'
        "[interventions.parameters]\nspeed_mps = 1.4\n\n[[interventions]]\nname = \"slow/odd name\"\n"
        "[interventions.parameters]\nspeed_mps = 0.8\n")


@pytest.fixture
def scenario(tmp_path, tiny_city):
    return write_scenario(tmp_path, tiny_city, BODY, replications=3, seed=11)


def summaries(out):
    return {p.parent.relative_to(out).as_posix(): json.loads(p.read_text())["kpis"]
            for p in sorted(out.glob("runs/*/rep-*/summary.json"))}


def test_plan_uses_common_random_numbers(scenario):
    plan = make_plan(load_scenario(scenario))
    assert [v.slug for v in plan.variants] == ["baseline", "fast-walkers", "slow-odd-name"]
    seeds = {(r.variant, r.replication): r.seed for r in plan.runs}
    assert len(plan.runs) == 9
    for k in range(3):  # replication k: seed = scenario seed + k in every variant
        assert {seeds[(v, k)] for v in ("baseline", "Fast walkers", "slow/odd name")} == {11 + k}
    assert make_plan(load_scenario(scenario), replications=5).replications == 5


def test_slugs_are_unique_and_safe():
    taken = set()
    assert slugify("Open N3 & W1!", taken) == "open-n3-w1"
    assert slugify("open n3 w1", taken) == "open-n3-w1-2"
    long = slugify("x" * 200)
    assert len(long) <= 60


@pytest.mark.slow
def test_compare_writes_tables_runs_and_report(scenario, tmp_path):
    out = tmp_path / "cmp"
    r = compare(scenario, out, workers=1, progress=False)
    table = pd.read_csv(out / "comparison.csv")
    assert list(table.columns)[:9] == ["variant", "kpi", "mean", "ci_low", "ci_high", "n", "delta_vs_baseline",
                                       "delta_ci_low", "delta_ci_high"]
    assert set(table["kpi"]) == {"walkers_done", "mean_time_s", "done_by_half.west", "done_by_half.east"}
    assert (table["n"] == 3).all()
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 9 and {"variant", "replication", "seed", "walkers", "speed_mps", "mean_time_s",
                               "done_by_half.west"} <= set(runs.columns)
    assert pd.read_csv(out / "runs.csv").shape == runs.shape
    fast = table[(table.variant == "Fast walkers") & (table.kpi == "mean_time_s")].iloc[0]
    assert fast["delta_ci_high"] < 0  # faster walkers take less time, and the interval says so
    for run in runs.itertuples():
        folder = out / run.run_dir
        assert {"summary.json", "bundle.json", "scenario.toml", "timeseries.csv", "timeseries.parquet",
                "max_count.tif"} <= {p.name for p in folder.iterdir()}
    assert (out / "report.html").is_file() and "Fast walkers" in r.text()
    assert not list(out.rglob("*.partial"))


@pytest.mark.slow
def test_same_numbers_with_1_or_2_workers_and_on_dask(scenario, tmp_path):
    """Each run is a pure function of (scenario, variant, seed): the executor must not matter."""
    from distributed import LocalCluster

    assert os.environ["CITYTWIN_MODELS"].startswith("toy=")  # spawned workers inherit it (conftest)
    a = compare(scenario, tmp_path / "w1", workers=1, progress=False, report=False)
    b = compare(scenario, tmp_path / "w2", workers=2, progress=False, report=False)
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        c = compare(scenario, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False, report=False)
    assert a.ran == b.ran == c.ran == 9
    ref = (tmp_path / "w1" / "comparison.csv").read_text()
    assert (tmp_path / "w2" / "comparison.csv").read_text() == ref
    assert (tmp_path / "dask" / "comparison.csv").read_text() == ref
    assert summaries(tmp_path / "w1") == summaries(tmp_path / "w2") == summaries(tmp_path / "dask")


@pytest.mark.slow
def test_runs_that_read_files_are_reused_until_a_file_changes(tmp_path, tiny_city):
    """A run's hash includes the files it reads (bundle.json): resuming must compare like with like,
    so that a timetable or rain CSV does not make every run look unfinished, and an edited file
    makes them run again."""
    (tmp_path / "profile.csv").write_text("t_s,value\n0,1.0\n60,1.5\n")
    sc = write_scenario(tmp_path, tiny_city, '[parameters]\nwalkers = 10\nspeed_profile = "profile.csv"\n',
                        replications=2)
    out = tmp_path / "cmp"
    first = compare(sc, out, workers=1, progress=False, report=False)
    assert (first.ran, first.reused) == (2, 0)
    again = compare(sc, out, workers=1, progress=False, report=False)
    assert (again.ran, again.reused) == (0, 2)
    (tmp_path / "profile.csv").write_text("t_s,value\n0,1.0\n60,2.0\n")
    edited = compare(sc, out, workers=1, progress=False, report=False)
    assert (edited.ran, edited.reused) == (2, 0)


@pytest.mark.slow
def test_interrupted_compare_resumes_without_redoing_runs(scenario, tmp_path):
    out = tmp_path / "cmp"
    compare(scenario, out, workers=1, progress=False, report=False)
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/rep-*/summary.json")}
    ref = (out / "comparison.csv").read_text()
    gone = [out / "runs/baseline/rep-001/summary.json", out / "runs/slow-odd-name/rep-002/summary.json"]
    for p in gone:
        p.unlink()
    r = compare(scenario, out, workers=1, progress=False, report=False)
    assert (r.ran, r.reused) == (2, 7)
    after = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/rep-*/summary.json")}
    assert {p for p in after if p not in before or after[p] != before[p]} == set(gone)
    assert (out / "comparison.csv").read_text() == ref
    # A changed scenario invalidates the old runs (hash in bundle.json), it does not reuse them.
    scenario.write_text(scenario.read_text().replace("walkers = 30", "walkers = 31"))
    assert compare(scenario, out, workers=1, progress=False, report=False).ran == 9


@pytest.mark.slow
@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_crash_mid_run_leaves_no_half_written_files(scenario, tmp_path, monkeypatch, capsys, exc):
    import twin.runs.runner

    out = tmp_path / "cmp"
    real, calls = twin.runs.runner.write_geotiff, []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 4:
            raise exc
        return real(*a, **kw)

    monkeypatch.setattr(twin.runs.runner, "write_geotiff", flaky)
    expected = RunFailed if isinstance(exc, RuntimeError) else KeyboardInterrupt
    with pytest.raises(expected) as info:
        compare(scenario, out, workers=1, progress=False)
    if expected is RunFailed:  # the other runs went on; the failure names variant and seed
        assert 'variant "baseline", replication 1, seed 12' in str(info.value) and "disk on fire" in str(info.value)
        assert "disk on fire" in (out / "errors.log").read_text()
        assert len(summaries(out)) == 8
    else:
        assert "run the same command again" in capsys.readouterr().err
        assert len(summaries(out)) == 3
    assert not list(out.rglob("*.partial")) and not (out / "comparison.csv").exists()
    for folder in out.glob("runs/*/rep-*"):
        assert (folder / "summary.json").is_file()  # a run folder exists only when complete
    monkeypatch.setattr(twin.runs.runner, "write_geotiff", real)
    done = len(summaries(out))
    r = compare(scenario, out, workers=1, progress=False, report=False)
    assert (r.ran, r.reused) == (9 - done, done)
    assert len(summaries(out)) == 9 and (out / "comparison.csv").is_file()


def test_ctrl_c_exits_130_with_a_resume_hint(scenario, tmp_path, monkeypatch, capsys):
    import twin.runs.experiment

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(twin.runs.experiment, "run_task", interrupted)
    assert main(["compare", str(scenario), "--workers", "1", "--quiet", "--out", str(tmp_path / "o")]) == 130
    assert "run the same command again" in capsys.readouterr().err


@pytest.mark.slow
def test_run_folder_reproduces_with_citytwin_run(scenario, tmp_path):
    out = tmp_path / "cmp"
    compare(scenario, out, workers=1, progress=False, report=False)
    folder = out / "runs" / "fast-walkers" / "rep-002"
    again = tmp_path / "again"
    assert main(["run", str(folder / "scenario.toml"), "--out", str(again), "--quiet"]) == 0
    a = json.loads((folder / "summary.json").read_text())
    b = json.loads((again / "summary.json").read_text())
    assert a["kpis"] == b["kpis"] and a["seed"] == b["seed"] == 13
    assert json.loads((folder / "bundle.json").read_text())["hash"]


def test_user_error_in_a_worker_is_reported_once(scenario, tmp_path, monkeypatch):
    import twin.runs.experiment

    monkeypatch.setattr(twin.runs.experiment, "run_task", lambda *a: {"status": "user_error", "message": "bad city"})
    with pytest.raises(UserError, match="^bad city$"):
        compare(scenario, tmp_path / "o", workers=1, progress=False)


def test_bad_workers_and_scheduler(scenario, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYTWIN_DASK_TIMEOUT", "2s")
    with pytest.raises(UserError, match="--workers"):
        compare(scenario, tmp_path / "o", workers=0, progress=False)
    with pytest.raises(UserError, match="cannot reach the Dask scheduler"):
        compare(scenario, tmp_path / "o2", scheduler="tcp://127.0.0.1:1", progress=False)


def test_start_method_forks_only_without_threads_qt_or_numba_pool(monkeypatch):
    import sys
    import threading

    from numba.np.ufunc import parallel

    from twin.runs import experiment

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delitem(sys.modules, "PySide6.QtCore", raising=False)
    monkeypatch.setattr(parallel, "_is_initialized", False)
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert experiment._start_method() == "fork"
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    assert experiment._start_method() == "spawn"
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setitem(sys.modules, "PySide6.QtCore", object())
    assert experiment._start_method() == "spawn"
    monkeypatch.delitem(sys.modules, "PySide6.QtCore")
    monkeypatch.setattr(parallel, "_is_initialized", True)  # numba's pool started: never fork it
    assert experiment._start_method() == "spawn"
