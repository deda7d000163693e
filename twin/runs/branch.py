"""`citytwin branch`: run to T once, then two futures from that same state, compared from T.

Plan
    The baseline runs from 0 to T once (T moved up onto the model's time step). Its complete state
    (``Run.state_bytes()``, docs/state_file.md) is written to ``OUT/states/state_tNNNNNN.npz``. Two
    futures continue from that state: the baseline itself and the intervention (a scenario
    intervention, optionally with ``--set`` changes on top: together they become one variant).

Replications with common random numbers from T on
    Replication ``k`` of *both* futures restores the same state; for ``k >= 1`` the restored model
    then gets fresh generators from ``(seed, k)`` (``CityModel.reseed``: the numpy generator is set
    to ``PCG64(SeedSequence([seed, k]))``, Python's ``random`` is seeded with that sequence's first
    64-bit word). Replication 0 keeps the saved generators: it is the plain continuation, so the
    baseline's replication 0 ends exactly like the uninterrupted run. Both futures of replication k
    share every draw made after T, and the paired t-interval of ``twin.runs.stats`` uses that. The past
    (everything before T, and what a model draws when it is built, e.g. the station's walking
    speeds) is the same in every replication: the spread is that of the futures only.

Output (``--out``): ``states/``, ``runs/<variant>/rep-NNN/`` (run folders, as ``compare``),
``runs.csv``, ``comparison.csv`` (CONTRACT §4 columns), ``branch.json`` and ``report.html``. An
interrupted branch keeps its state and finished futures; the same command picks up from there.
"""
from __future__ import annotations

import copy
import json
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from twin.core.errors import UserError
from twin.runs.experiment import CompareResult, _clean_partials, execute, expected_hashes, finished_bundle, runs_table
from twin.scenario.plan import RUNS_DIR, Plan, RunSpec, Variant
from twin.scenario.scenario import BASELINE, Scenario, scenario_from_dict
from twin.scenario.sweeps import slugify

BRANCH_FILE = "branch.json"


@dataclass
class BranchPlan(Plan):
    """A comparison of two futures from the state at ``at_s``: the variants share the scenario's seed
    (the past is the same), replication k differs by the reseed from (seed, k)."""

    at_s: float = 0.0  # the time of the state (on the model's grid), set once the prefix ran
    asked_at_s: float = 0.0  # the time asked for (--at)
    intervention: str = ""
    seed: int = 0

    @property
    def runs(self) -> list[RunSpec]:
        return [RunSpec(v.name, v.slug, k, self.seed) for k in range(self.replications) for v in self.variants]


def check_branch(scenario, at, intervention: str | None, replications: int | None = None, workers: int | None = None,
                 out=None, seed: int | None = None, overrides: dict | None = None) -> BranchPlan:
    """Every check of `citytwin branch` that needs no simulation, before anything is written.

    ``overrides`` (``--set``) go on top of the intervention; the two together become one variant,
    named after both, in a copy of the scenario."""
    from twin.scenario import preflight
    from twin.core.limits import MAX_REPLICATIONS, MAX_WORKERS

    sc = preflight.check_scenario(scenario)
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise UserError(f"--at {at!r}: give the branch time in seconds, e.g. --at 600.")
    if not 0 < at < sc.duration_s:
        raise UserError(f"--at {at:g}: the branch time must lie inside the run, after 0 and before its end "
                        f"(duration_s = {sc.duration_s:g} s in {sc.where}).")
    if not intervention and not overrides:
        raise UserError(f"citytwin branch needs --intervention NAME (the variants of {sc.where} are: "
                        f"{', '.join(sc.variants())}) and/or --set KEY=VALUE changes for the second future.")
    if intervention == BASELINE and not overrides:
        raise UserError("--intervention baseline: the baseline is always one of the two futures; name an "
                        f"intervention ({', '.join(sc.variants()[1:]) or 'the scenario has none'}) or give --set.")
    sc.intervention(intervention)  # an unknown name fails here, naming the variants
    if replications is not None:
        replications = preflight.check_count(replications, "--replications", MAX_REPLICATIONS)
    if workers is not None:
        preflight.check_count(workers, "--workers", MAX_WORKERS)
    seed = preflight.check_seed(seed)
    sc.params_for(intervention, overrides)  # a bad --set fails here
    variant = intervention or BASELINE
    if overrides:
        sc, variant = _with_changes(sc, intervention, overrides)
    if out is not None:
        preflight.check_output(out)
    sc.load_city()  # a missing or broken city fails here, before the prefix runs
    preflight.check_features(sc, sc.variants())  # every variant, as run and compare check them
    preflight.check_models(sc, [BASELINE, variant])  # e.g. a feature id that does not exist
    taken: set[str] = set()
    variants = [Variant(BASELINE, slugify(BASELINE, taken), "baseline"),
                Variant(variant, slugify(variant, taken), "intervention")]
    return BranchPlan(sc, variants, replications or 1, None, at_s=float(at), asked_at_s=float(at),
                      intervention=variant, seed=sc.seed if seed is None else int(seed))


def _with_changes(sc: Scenario, intervention: str | None, overrides: dict) -> tuple[Scenario, str]:
    """A copy of the scenario with one more intervention: ``intervention`` plus the ``--set`` changes."""
    from twin.core.params import plain_value

    params = dict(sc.intervention(intervention).parameters) if intervention not in (None, BASELINE) else {}
    params.update({k: plain_value(v) for k, v in overrides.items()})
    changes = ", ".join(f"{k}={plain_value(v)}" for k, v in overrides.items())
    name = f"{intervention} + {changes}" if intervention not in (None, BASELINE) else f"changes: {changes}"
    raw = copy.deepcopy(sc.raw)
    raw.setdefault("interventions", []).append({"name": name, "parameters": params,
                                                "description": "branch: intervention and --set changes"})
    out = scenario_from_dict(raw, sc.path)
    out.city_path = sc.city_path
    if hasattr(sc, "_city"):
        out._city = sc._city
    return out, name


# --------------------------------------------------------------------------------------------
# The prefix: the baseline to T, once
# --------------------------------------------------------------------------------------------
def _plan_record(plan: BranchPlan) -> dict:
    sc = plan.scenario
    return {"scenario": sc.name, "scenario_file": str(sc.path.resolve()) if sc.path else None, "model": sc.model,
            "asked_at_s": plan.asked_at_s, "seed": plan.seed, "inputs": sc.raw}


def find_state(plan: BranchPlan, out: Path) -> Path | None:
    """The state of an earlier run of the same branch (same scenario, seed and --at), if complete."""
    try:
        rec = json.loads((out / BRANCH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    mine = json.loads(json.dumps(_plan_record(plan), default=str))
    if {k: rec.get(k) for k in mine} != mine:
        return None
    state = out / rec.get("state", "")
    return state if rec.get("state") and state.is_file() else None


def run_prefix(plan: BranchPlan, progress: bool = False) -> bytes:
    """The baseline from 0 to T; returns the state file's bytes (nothing is written)."""
    from twin.runs.runner import Run, _progress

    run = Run(plan.scenario, BASELINE, plan.seed, outputs=False)  # only its state at T is kept
    callback, close = _progress(progress, plan.asked_at_s, f"{plan.scenario.name} [baseline to T]")
    try:
        m = run.model
        while m.time_s < plan.asked_at_s - 1e-9 and not run.done:
            run.advance(min(plan.asked_at_s, m.next_report_s))
            if callback is not None:
                callback(m.time_s)
    finally:
        close()
    t = run.time_s
    if run.done:
        why = "the model finished (nothing more can happen)" if t < plan.scenario.duration_s - 1e-9 else "the run ends"
        raise UserError(f"--at {plan.asked_at_s:g}: {why} at t = {t:g} s, so there is no future to branch; give an "
                        f"earlier time.")
    return run.state_bytes()


# --------------------------------------------------------------------------------------------
# The futures (in a worker process or this one)
# --------------------------------------------------------------------------------------------
def future_task(raw: dict, path: str | None, city_path: str, state_path: str, variant: str, replication: int,
                out: str) -> dict:
    """Run one future from the state file and write its folder. Returns a status dict, never raises."""
    from twin.core.state_file import read_state
    from twin.runs.runner import Run

    try:
        sc = scenario_from_dict(raw, Path(path) if path else None)
        sc.city_path = Path(city_path)
        state = read_state(state_path)
        run = Run(sc, variant, int(state.meta["seed"]), state=state, replication=replication)
        run.run_to_end()
        result = run.write(Path(out))
        return {"status": "ok", "wall_s": result.summary["wall_s"], "pid": os.getpid()}
    except UserError as e:
        return {"status": "user_error", "message": str(e)}
    except Exception as e:  # noqa: BLE001 - reported with the run's variant and replication
        return {"status": "error", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


# --------------------------------------------------------------------------------------------
# branch()
# --------------------------------------------------------------------------------------------
@dataclass
class BranchResult(CompareResult):
    at_s: float = 0.0
    state_path: Path | None = None
    prefix_s: float = 0.0
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        head = (f"{self.plan.scenario.name}: branched at t = {self.at_s:g} s "
                f"({'state reused' if not self.prefix_s else f'baseline to T in {self.prefix_s:.1f} s'}); "
                f"2 futures × {self.plan.replications} replications = {len(self.runs)} runs "
                f"({self.ran} run now, {self.reused} reused) in {self.wall_s:.1f} s")
        lines = [head] + [f"  - {h}" for h in self.headlines]
        lines += [f"state:            {self.state_path}", f"comparison table: {self.out / 'comparison.csv'}",
                  f"report:           {self.out / 'report.html'}"]
        return "\n".join(lines)


def branch(plan: BranchPlan, out, workers: int | None = None, progress: bool = True, report: bool = True,
           on_progress=None, should_stop=None, state_bytes: bytes | None = None) -> BranchResult:
    """Run the prefix (or reuse its state), then both futures × replications, then tables and report.

    ``state_bytes``: a state taken elsewhere (the app's branch from now) instead of running the prefix.
    """
    from twin.core.files import write_json
    from twin.core.state_file import read_state, write_state_bytes
    from twin.core.files import sha256_file
    from twin.runs.runner import STATES_DIR, state_name

    started = time.perf_counter()
    out = Path(out)
    prefix_s = 0.0
    state_path = find_state(plan, out) if state_bytes is None else None
    if state_path is None:
        t0 = time.perf_counter()
        data = state_bytes if state_bytes is not None else run_prefix(plan, progress)
        prefix_s = time.perf_counter() - t0 if state_bytes is None else 0.0
        # Only now is anything written: every check of the input has passed, and the prefix ran.
        out.mkdir(parents=True, exist_ok=True)
        from twin.core.state_file import state_from_bytes

        t = state_from_bytes(data).time_s
        state_path = out / STATES_DIR / state_name(t)
        write_state_bytes(data, state_path)
        write_json({**_plan_record(plan), "state": str(state_path.relative_to(out)), "at_s": t,
                    "intervention": plan.intervention, "replications": plan.replications,
                    "seeds": f"both futures restore the state; replication k >= 1 reseeds from ({plan.seed}, k)"},
                   out / BRANCH_FILE)
    _clean_partials(out)
    state = read_state(state_path)
    plan.at_s = state.time_s
    sha = sha256_file(state_path)
    specs = plan.runs
    want = expected_hashes(plan)

    def finished(s: RunSpec) -> bool:
        """Done with the same inputs, from the same state, as the same replication."""
        fs = (finished_bundle(out / s.folder, want[s.folder]) or {}).get("from_state") or {}
        return fs.get("sha256") == sha and fs.get("replication") == s.replication

    todo = [s for s in specs if not finished(s)]
    sc = plan.scenario
    raw, path = sc.raw, (str(sc.path.resolve()) if sc.path else None)
    tasks = [(raw, path, str(sc.city_path), str(state_path.resolve()), s.variant, s.replication,
              str((out / s.folder).resolve())) for s in todo]
    execute(tasks, todo, len(specs), workers, progress, on_progress, should_stop, out,
            lambda: sum(map(finished, specs)), fn=future_task)
    result = collect(plan, out, report=report)
    result.ran, result.reused = len(todo), len(specs) - len(todo)
    result.state_path, result.prefix_s = state_path, prefix_s
    result.wall_s = time.perf_counter() - started
    return result


def collect(plan: BranchPlan, out: Path, report: bool = True) -> BranchResult:
    from twin.core.files import write_table
    from twin.runs import stats
    from twin.runs.report import headlines, named_by_runs, write_report

    runs, kpi_cols, units = runs_table(plan, out)
    table = stats.compare_table(runs, kpi_cols, BASELINE, units, [v.name for v in plan.variants])
    write_table(runs, out / "runs")
    write_table(table, out / "comparison", formats=("csv",))
    result = BranchResult(out, plan, runs, table, 0, 0, at_s=plan.at_s)
    with named_by_runs(out):
        result.headlines = headlines(plan, table)
    if report:
        write_report(plan, out, runs, table, kpi_cols, units)
    return result


def run_folder(out: Path, variant_slug: str, replication: int = 0) -> Path:
    return Path(out) / RUNS_DIR / variant_slug / f"rep-{replication:03d}"
