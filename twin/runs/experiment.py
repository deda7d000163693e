"""`citytwin compare`: baseline, interventions and parameter sweeps × replications.

Plan
    The variants are the baseline, every ``[[interventions]]`` entry and, when the scenario has an
    ``[experiment]`` table, every point of its sweep (``grid``, ``sets`` or ``lhs``). Each variant
    runs ``replications`` times (``--replications`` > ``[experiment] replications`` >
    ``[scenario] replications``).

Common random numbers
    Replication ``k`` (0-based) of *every* variant runs with seed ``scenario seed + k``. A
    difference between two variants in the same replication is then due to the intervention,
    not to a different random draw, and the paired t-interval (``twin.runs.stats``) uses that.

Execution
    Each run is a pure function of (scenario, variant, seed) and writes its own folder
    ``runs/<variant-slug>/rep-NNN/`` atomically, ``summary.json`` last. Runs go to a local pool of
    spawned processes (``--workers``) or to a Dask cluster (``--scheduler``); the numbers are
    identical either way. A run whose folder already holds ``summary.json`` for the same inputs
    (same hash in ``bundle.json``) is not run again, so an interrupted compare picks up where it
    stopped. The tables and the report are rebuilt from the run folders at the end.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from twin.core.errors import UserError
from twin.core.params import plain_value
from twin.scenario.plan import RUNS_DIR, Plan, RunSpec, make_plan
from twin.scenario.scenario import BASELINE, scenario_from_dict


class RunFailed(UserError):
    """One or more runs raised an unexpected error; the message names their variants and seeds."""


# --------------------------------------------------------------------------------------------
# One run (in a worker process, a Dask worker or this process)
# --------------------------------------------------------------------------------------------
_PLANS: dict[str, Plan] = {}


def _plan_in_worker(raw: dict, path: str | None) -> Plan:
    key = hashlib.sha256(json.dumps([raw, path], sort_keys=True, default=str).encode()).hexdigest()
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = make_plan(scenario_from_dict(raw, Path(path) if path else None))
    return _PLANS[key]


def run_task(raw: dict, path: str | None, variant: str, seed: int, out: str) -> dict:
    """Run one (variant, seed) and write its folder. Returns a status dict, never raises on errors."""
    from twin.runs.runner import run_one

    try:
        plan = _plan_in_worker(raw, path)
        result = run_one(plan.scenario, variant, seed, out=Path(out), progress=False)
        return {"status": "ok", "wall_s": result.summary["wall_s"], "pid": os.getpid()}
    except UserError as e:
        return {"status": "user_error", "message": str(e)}
    except Exception as e:  # noqa: BLE001 - reported with the run's variant and seed
        return {"status": "error", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


def expected_hashes(plan: Plan) -> dict[str, str]:
    """Each run's hash (by run folder) as its bundle records it: the inputs, the variant and the
    files it reads. Computed once per plan: hashing reads every input file."""
    from twin.runs.runner import run_hash

    sc = plan.scenario
    files = {v.name: sc.input_files(v.name) for v in plan.variants}
    return {s.folder: run_hash(sc.resolved(s.variant, s.seed), s.variant, files[s.variant]) for s in plan.runs}


def finished_bundle(folder: Path, want: str) -> dict | None:
    """The bundle of a finished run (summary.json written) whose hash is ``want``, else None."""
    if not (folder / "summary.json").is_file():
        return None
    try:
        bundle = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return bundle if bundle.get("hash") == want else None


def _clean_partials(out: Path) -> None:
    """Temporary folders/files of runs killed mid-write (``.name.xxxx.partial``)."""
    root = out / RUNS_DIR
    if root.is_dir():
        for p in root.rglob(".*.partial"):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    for p in out.glob(".*.partial"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    if root.is_dir():
        from twin.core.locks import remove_stale

        remove_stale(root)  # locks of run folders whose writer was killed mid-commit


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------
def _worker_init(threads: int, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    # Leave one core per worker: numba's own threads would otherwise oversubscribe the machine.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    if "numba" in sys.modules:  # a forked worker inherits numba already imported
        import numba

        # Not through the environment: numba re-reads it whenever it compiles, and a value that differs
        # from the one its threads were launched with is a RuntimeError (a cache miss in a worker).
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    else:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when the comparison that started it ends, however it ends: after a `kill -9`
    of compare, its workers otherwise wait for work forever (Linux: PR_SET_PDEATHSIG). A run cut
    short leaves only a .partial folder, which the next compare removes."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the workers end when their queue closes
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def _start_method() -> str:
    """fork starts a worker in milliseconds with everything already imported, but only where that
    is safe: no other Python thread, no Qt (its threads are invisible to ``threading``), and
    numba's thread pool not started (its OpenMP layer aborts a forked child). Else spawn."""
    import threading

    if os.name != "posix" or os.uname().sysname != "Linux" or threading.active_count() != 1:
        return "spawn"
    if any(m in sys.modules for m in ("PySide6.QtCore", "PyQt6.QtCore", "PyQt5.QtCore")):
        return "spawn"
    if "numba" in sys.modules:
        try:
            from numba.np.ufunc import parallel

            if parallel._is_initialized:
                return "spawn"
        except (ImportError, AttributeError):
            return "spawn"
    return "fork"


class CompareCancelled(Exception):
    """Raised when ``should_stop`` says so; finished runs are kept and a rerun continues."""


def _check_stop(should_stop) -> None:
    if should_stop is not None and should_stop():
        raise CompareCancelled("comparison cancelled; the finished runs are kept")


def _iter_local(tasks: list[tuple], workers: int, should_stop=None, fn=None):
    """Yield (index, result) as runs finish on a process pool (forked or spawned, see _start_method) (or
    in-process). ``fn(*task)`` runs one task (default: ``run_task``); it must be a module-level function."""
    fn = fn or run_task
    if workers <= 1 or len(tasks) <= 1:
        for i, t in enumerate(tasks):
            _check_stop(should_stop)
            yield i, fn(*t)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    n = min(workers, len(tasks))
    threads = max(1, (os.cpu_count() or 1) // n)
    ex = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context(_start_method()),
                             initializer=_worker_init, initargs=(threads, os.getpid()))
    try:
        pending = {ex.submit(fn, *t): i for i, t in enumerate(tasks)}
        while pending:
            # Poll, so that a cancel from the app is honoured within a second, not after a whole run.
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            _check_stop(should_stop)
            for f in done:
                yield pending.pop(f), f.result()
    except BaseException:
        procs = list((getattr(ex, "_processes", None) or {}).values())  # shutdown() forgets them
        ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.terminate()  # a run killed mid-write leaves only a .partial folder, cleaned next time
        for p in procs:
            p.join(timeout=5)
        raise
    else:
        ex.shutdown(wait=True)


def _iter_dask(tasks: list[tuple], address: str, fn=None):
    """Yield (index, result) as runs finish on a Dask cluster (``fn(*task)`` each; default ``run_task``). If the scheduler loses every worker
    and none comes back within ``CITYTWIN_DASK_TIMEOUT``, stop with a message that says how many
    runs were waiting (the finished ones are kept) instead of waiting for ever."""
    try:
        from distributed import wait
    except ImportError:  # pragma: no cover - dask is a dependency
        raise UserError("--scheduler needs dask.distributed: pip install 'dask[distributed]'.") from None
    from twin.scenario.preflight import dask_client, dask_timeout_s

    timeout_s = dask_timeout_s()
    client = dask_client(address)
    try:
        futures = [client.submit(fn or run_task, *t, key=f"citytwin-run-{i}-{hashlib.sha1(repr(t).encode()).hexdigest()[:12]}",
                                 pure=False) for i, t in enumerate(tasks)]
        index = {f.key: i for i, f in enumerate(futures)}
        pending = set(futures)
        no_workers_since = None
        while pending:
            try:
                done, pending = wait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            if not done:
                if client.scheduler_info().get("workers"):
                    no_workers_since = None
                elif no_workers_since is None:
                    no_workers_since = time.monotonic()
                elif time.monotonic() - no_workers_since > timeout_s:
                    raise UserError(f"--scheduler {address}: the Dask scheduler has had no workers for {timeout_s:g} s "
                                    f"and {len(pending)} run(s) are waiting for one. Start workers with `dask worker "
                                    f"{address}`, then run the same command again: the finished runs are kept.")
                continue
            for f in done:
                try:
                    res = f.result()
                except Exception as e:  # noqa: BLE001 - a worker lost mid-run (KilledWorker), reported per run
                    res = {"status": "error", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
                yield index[f.key], res
    except BaseException:
        client.cancel(futures) if "futures" in locals() else None
        raise
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# compare()
# --------------------------------------------------------------------------------------------
@dataclass
class CompareResult:
    out: Path
    plan: Plan
    runs: pd.DataFrame
    comparison: pd.DataFrame
    ran: int
    reused: int
    headlines: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def text(self) -> str:
        n_var = len(self.plan.variants)
        lines = [f"{self.plan.scenario.name}: {n_var} variants × {self.plan.replications} replications = "
                 f"{len(self.runs)} runs ({self.ran} run now, {self.reused} reused) in {self.wall_s:.1f} s"]
        lines += [f"  - {h}" for h in self.headlines]
        lines.append(f"comparison table: {self.out / 'comparison.csv'}")
        lines.append(f"report:           {self.out / 'report.html'}")
        return "\n".join(lines)


def compare(scenario_path, out, replications: int | None = None, workers: int | None = None,
            scheduler: str | None = None, progress: bool = True, report: bool = True,
            on_progress=None, should_stop=None) -> CompareResult:
    """Run every variant × replication (skipping finished runs), then write the tables and report.

    ``on_progress(done, total)`` is called as runs finish and ``should_stop()`` polled (the app
    uses both); a stop raises :class:`CompareCancelled` with the finished runs kept.
    """
    from twin.scenario.preflight import for_compare

    started = time.perf_counter()
    # Everything (the scenario, every variant built on the city, --out, the scheduler) is checked
    # before the first folder is made; --out then stays locked against a second writer.
    checked = for_compare(scenario_path, out, replications=replications, workers=workers, scheduler=scheduler)
    try:
        return _run_plan(checked.plan, Path(out), workers, scheduler, progress, report, on_progress, should_stop,
                         started)
    finally:
        checked.release()


def _run_plan(plan: Plan, out: Path, workers, scheduler, progress, report, on_progress, should_stop,
              started: float) -> CompareResult:
    sc = plan.scenario
    out.mkdir(parents=True, exist_ok=True)
    _clean_partials(out)
    specs = plan.runs
    want = expected_hashes(plan)

    def finished(s: RunSpec) -> bool:
        return finished_bundle(out / s.folder, want[s.folder]) is not None

    todo = [s for s in specs if not finished(s)]
    raw, path = sc.raw, (str(sc.path.resolve()) if sc.path else None)
    tasks = [(raw, path, s.variant, s.seed, str((out / s.folder).resolve())) for s in todo]
    it = _iter_dask(tasks, scheduler) if scheduler else None
    execute(tasks, todo, len(specs), workers, progress, on_progress, should_stop, out,
            lambda: sum(map(finished, specs)), it=it)
    result = collect(plan, out, report=report)
    result.ran, result.reused = len(todo), len(specs) - len(todo)
    result.wall_s = time.perf_counter() - started
    return result


def execute(tasks: list[tuple], todo: list[RunSpec], total: int, workers: int | None, progress: bool, on_progress,
            should_stop, out: Path, count_done, fn=None, it=None) -> None:
    """Run ``tasks`` (one per spec in ``todo``; ``total`` counts the finished ones too) with a progress bar.

    Bad input (a UserError in a run) stops everything with its message; unexpected errors are collected
    in ``out/errors.log`` and reported together at the end; Ctrl-C says how many runs are saved."""
    failures: list[tuple[RunSpec, dict]] = []
    workers = workers or os.cpu_count() or 1
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: worker processes may then be forked (_start_method)
    bar = tqdm(total=total, initial=total - len(todo), unit="run", desc="runs", file=sys.stderr,
               disable=not progress or not todo, dynamic_ncols=True)
    finished = total - len(todo)
    try:
        it = it if it is not None else _iter_local(tasks, workers, should_stop, fn)
        for i, res in it:
            spec = todo[i]
            if res["status"] == "user_error":
                # Bad input fails the same way in every run: say it once and stop.
                raise UserError(res["message"])
            if res["status"] == "error":
                failures.append((spec, res))
                bar.write(f"run failed: {spec.label}: {res['error']}", file=sys.stderr)
            bar.update(1)
            finished += 1
            if on_progress is not None:
                on_progress(finished, total)
    except KeyboardInterrupt:
        bar.close()
        print(f"\ninterrupted: {count_done()} of {total} runs are saved in {out / RUNS_DIR}; run the same "
              "command again to continue from there.", file=sys.stderr)
        raise
    finally:
        bar.close()
    if failures:
        _report_failures(out, failures)


def _report_failures(out: Path, failures) -> None:
    from twin.core.files import atomic_file

    log = out / "errors.log"
    with atomic_file(log, "w", encoding="utf-8") as f:
        for spec, res in failures:
            f.write(f"=== {spec.label} ({spec.folder})\n{res['traceback']}\n")
    first = "; ".join(f"{s.label}: {r['error']}" for s, r in failures[:3])
    more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
    raise RunFailed(f"{len(failures)} run(s) failed with an unexpected error: {first}{more}. Full tracebacks are "
                    f"in {log}. The other runs are saved; after a fix, run the same command again to finish.")


# --------------------------------------------------------------------------------------------
# Tables from the run folders
# --------------------------------------------------------------------------------------------
def flatten_kpis(kpis: dict) -> dict[str, float]:
    """Scalar KPIs as they are; dict KPIs as ``kpi.key`` columns; anything else is left out."""
    flat: dict[str, float] = {}
    for name, value in kpis.items():
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    flat[f"{name}.{k}"] = float(v)
        elif isinstance(value, bool):
            flat[name] = float(value)
        elif isinstance(value, (int, float)):
            flat[name] = float(value)
    return flat


def _param_cell(v):
    v = plain_value(v)  # a time series as written: its CSV path or its [t_s, value] pairs
    return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v


def runs_table(plan: Plan, out: Path) -> tuple[pd.DataFrame, list[str], dict]:
    """One tidy row per run: variant, replication, seed, parameters, KPIs (dict KPIs flattened)."""
    rows, kpi_cols, units, dict_kpis = [], [], {}, set()
    params_cache: dict[str, dict] = {}
    for spec in plan.runs:
        folder = out / spec.folder
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        if spec.variant not in params_cache:
            params_cache[spec.variant] = {k: _param_cell(v) for k, v in plan.scenario.params_for(spec.variant).items()}
        flat = flatten_kpis(summary["kpis"])
        dict_kpis.update(k for k, v in summary["kpis"].items() if isinstance(v, dict))
        for k in flat:
            if k not in kpi_cols:
                kpi_cols.append(k)
        units.update(summary.get("units", {}))
        rows.append({"variant": spec.variant, "variant_kind": plan.variant(spec.variant).kind,
                     "replication": spec.replication, "seed": spec.seed, **params_cache[spec.variant],
                     **flat, "wall_s": summary.get("wall_s"), "simulated_s": summary.get("simulated_s"),
                     "run_dir": spec.folder})
    df = pd.DataFrame(rows)
    # A key missing from a dict KPI (a feature nobody used, a class never reached) counts 0.
    for k in kpi_cols:
        if k.split(".")[0] in dict_kpis:
            df[k] = df[k].fillna(0.0)
    # Order: identity, parameters, KPIs, bookkeeping.
    ident = ["variant", "variant_kind", "replication", "seed"]
    params = [c for c in df.columns if c not in ident + kpi_cols + ["wall_s", "simulated_s", "run_dir"]]
    df = df[ident + params + kpi_cols + ["wall_s", "simulated_s", "run_dir"]]
    return df, kpi_cols, units


def _departments(plan: Plan) -> tuple[list[str], str] | None:
    """(the interventions of one department each, the one of department "all") when the scenario
    has both; else None."""
    ivs = [i for i in plan.scenario.interventions if i.department]
    together = [i.name for i in ivs if i.department == "all"]
    alone = [i.name for i in ivs if i.department != "all"]
    names = {v.name for v in plan.variants}
    if len(together) != 1 or not alone or not {*alone, together[0]} <= names:
        return None
    return alone, together[0]


def collect(plan: Plan, out: Path, report: bool = True) -> CompareResult:
    from twin.runs import stats
    from twin.core.files import write_json, write_table

    runs, kpi_cols, units = runs_table(plan, out)
    table = stats.compare_table(runs, kpi_cols, BASELINE, units, [v.name for v in plan.variants])
    write_table(runs, out / "runs")
    write_table(table, out / "comparison", formats=("csv",))
    departments = _departments(plan)
    if departments:  # a coupled scenario's departments alone and together (docs/coupling.md)
        alone, together = departments
        write_table(stats.together_table(runs, kpi_cols, BASELINE, alone, together), out / "together",
                    formats=("csv",))
    write_json({"scenario": plan.scenario.name, "scenario_file": str(plan.scenario.path),
                "model": plan.scenario.model, "replications": plan.replications, "method": plan.method,
                "seeds": f"replication k uses seed {plan.scenario.seed} + k (common random numbers)",
                "variants": [{"name": v.name, "slug": v.slug, "kind": v.kind, "point": v.point}
                             for v in plan.variants],
                "kpis": kpi_cols, "units": units}, out / "experiment.json")
    result = CompareResult(out, plan, runs, table, 0, 0)
    from twin.runs.report import headlines, named_by_runs, write_report

    with named_by_runs(out):
        result.headlines = headlines(plan, table)
    if report:
        write_report(plan, out, runs, table, kpi_cols, units)
    return result
