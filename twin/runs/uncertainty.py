"""What `calibrate`, `sensitivity` and `explore` share: parameter ranges and targets from the command
line, and many runs of one scenario at given parameter points, on local workers or Dask.

Ranges
    ``NAME=LOW..HIGH`` names a numeric parameter of the scenario's model; both ends are checked
    against the parameter's documented range, so a bad range fails before any run.

Targets
    ``KPI<=VALUE`` (or ``<``, ``>=``, ``>``) names a scalar KPI of the model.

Points
    A point is (variant, parameter values, seed). Each runs through the one run driver
    (``twin.runs.runner.Run``) as a pure function of its inputs, on the executors of ``compare``
    (``twin.runs.experiment.execute``: a local process pool or a Dask cluster), so the numbers are the
    same on 1 or many workers. A finished point is a small JSON file (``runs/.../NAME.json``: its
    KPIs and the hash of its inputs) written atomically; a rerun of the same command reuses the
    points whose hash matches, as ``compare`` reuses its run folders.
"""
from __future__ import annotations

import hashlib
import json
import operator
import os
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from twin.core.errors import UserError, finite_number, nearest
from twin.scenario.scenario import BASELINE, Scenario

RUNS_DIR = "runs"
RANGE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.+?)\s*\.\.\s*(.+?)\s*$")
TARGET_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|<|>)\s*(.+?)\s*$")
OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}


# --------------------------------------------------------------------------------------------
# Ranges and targets
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Range:
    name: str
    low: float
    high: float
    kind: type  # int or float
    unit: str

    def scale(self, u: float):
        """The value at ``u`` in [0, 1] of the range (rounded for whole-number parameters)."""
        v = self.low + float(u) * (self.high - self.low)
        return int(round(v)) if self.kind is int else float(v)

    def value(self, v: float):
        """``v`` (in the parameter's unit) as the parameter takes it."""
        return int(round(float(v))) if self.kind is int else float(v)

    @property
    def text(self) -> str:
        return f"{self.name}={self.low:g}..{self.high:g}"


PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(overrides: dict) -> dict[str, list[str]]:
    """The ``{NAME}`` holes in ``--set`` values (texts, or texts in lists): {NAME: the parameters holding it}."""
    out: dict[str, list[str]] = {}

    def walk(key, v):
        if isinstance(v, str):
            for name in PLACEHOLDER_RE.findall(v):
                out.setdefault(name, []).append(key) if key not in out.get(name, []) else None
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(key, x)

    for key, v in overrides.items():
        walk(key, v)
    return out


def fill_placeholders(overrides: dict, values: dict) -> dict:
    """``overrides`` with each ``{NAME}`` of ``values`` filled in: a text that is the hole alone becomes the
    number, a hole inside a longer text (``"P4 {delay} 0"``) is written as ``%g``."""
    if not values:
        return dict(overrides)

    def fill(v):
        if isinstance(v, str):
            whole = PLACEHOLDER_RE.fullmatch(v)
            if whole and whole.group(1) in values:
                return values[whole.group(1)]
            return PLACEHOLDER_RE.sub(lambda m: f"{values[m.group(1)]:g}" if m.group(1) in values else m.group(0), v)
        if isinstance(v, (list, tuple)):
            return [fill(x) for x in v]
        return v

    return {k: fill(v) for k, v in overrides.items()}


def parse_ranges(sc: Scenario, items, option: str, holes: dict | None = None) -> list[Range]:
    """``NAME=LOW..HIGH`` items as ranges of numeric parameters of the scenario's model, or of a
    ``{NAME}`` hole in a ``--set`` value (``holes``, from ``placeholders``: a number inside a
    parameter's value, such as one train's delay in a list of delays)."""
    from twin.core.params import validate_params

    cls = sc.model_class()
    specs = {p.name: p for p in cls.params}
    numeric = [p.name for p in cls.params if p.kind in (int, float)]
    holes = holes or {}
    if not items:
        raise UserError(f"{option} is needed at least once, e.g. {option} {numeric[0]}=LOW..HIGH; the numeric "
                        f"parameters of model {cls.name} are: {', '.join(numeric)}.")
    ranges: list[Range] = []
    for item in items:
        m = RANGE_RE.match(str(item))
        if not m:
            raise UserError(f'{option} "{item}": write NAME=LOW..HIGH, e.g. {option} {numeric[0]}=0.8..1.2.')
        name, lo_text, hi_text = m.groups()
        p = specs.get(name)
        if p is None and name not in holes:
            raise UserError(f'{option} "{item}": model {cls.name} has no parameter "{name}"{nearest(name, specs)}, '
                            f'and no --set value holds "{{{name}}}". `citytwin models {cls.name}` lists the '
                            f"parameters; the numeric ones are: {', '.join(numeric)}.")
        if p is not None and p.kind not in (int, float):
            raise UserError(f'{option} "{item}": "{name}" is a {p.kind.__name__} parameter; a range needs a numeric '
                            f'one ({", ".join(numeric)}), or a number inside it: write {{NAME}} where it goes in '
                            f"--set {name}=... and give --estimate NAME=LOW..HIGH.")
        where = f'{option} "{item}": LOW and HIGH must be numbers, e.g. {name}=0.8..1.2'
        lo, hi = finite_number(lo_text, where), finite_number(hi_text, where)
        if not lo < hi:
            raise UserError(f'{option} "{item}": LOW ({lo:g}) must be less than HIGH ({hi:g}).')
        if any(r.name == name for r in ranges):
            raise UserError(f'{option} "{item}": "{name}" is given twice; give each parameter one range.')
        if p is None:  # a hole: the value it fills is checked with the parameter holding it
            ranges.append(Range(name, lo, hi, float, ""))
            continue
        for end in (lo, hi):  # the parameter's documented range, with its own message
            validate_params(cls, {name: int(round(end)) if p.kind is int else end}, f'{option} "{item}"')
        ranges.append(Range(name, lo, hi, p.kind, p.unit))
    return ranges


@dataclass(frozen=True)
class Target:
    kpi: str
    op: str
    value: float

    def holds(self, x):
        return OPS[self.op](x, self.value)

    @property
    def text(self) -> str:
        return f"{self.kpi} {self.op} {self.value:g}"


def scalar_kpis(sc: Scenario) -> list[str]:
    return [k.name for k in sc.model_class().kpis if not getattr(k, "keyed", False)]


def headline_kpis(sc: Scenario) -> list[str]:
    """The model's headline KPIs (all scalar KPIs when it marks none)."""
    cls = sc.model_class()
    heads = [k.name for k in cls.kpis if k.headline and not getattr(k, "keyed", False)]
    return heads or scalar_kpis(sc)


def kpi_better(sc: Scenario) -> dict[str, str | None]:
    return {k.name: k.better for k in sc.model_class().kpis}


def parse_targets(sc: Scenario, items, option: str = "--target") -> list[Target]:
    names = scalar_kpis(sc)
    out: list[Target] = []
    for item in items or ():
        m = TARGET_RE.match(str(item))
        if not m:
            raise UserError(f'{option} "{item}": write KPI<=VALUE (or <, >=, >), e.g. {option} "{names[0]}<=600".')
        kpi, op, v = m.groups()
        if kpi not in names:
            raise UserError(f'{option} "{item}": model {sc.model_class().name} has no KPI "{kpi}"{nearest(kpi, names)}; '
                            f"its KPIs are: {', '.join(names)}.")
        value = finite_number(v, f'{option} "{item}": VALUE must be a number, e.g. {kpi}{op}600')
        out.append(Target(kpi, op, value))
    return out


def parse_kpis(sc: Scenario, items, option: str = "--kpi") -> list[str]:
    """KPIs named on the command line (default: the headline KPIs)."""
    if not items:
        return headline_kpis(sc)
    names = scalar_kpis(sc)
    for k in items:
        if k not in names:
            raise UserError(f'{option} "{k}": model {sc.model_class().name} has no KPI "{k}"{nearest(k, names)}; '
                            f"its KPIs are: {', '.join(names)}.")
    return list(dict.fromkeys(items))


# --------------------------------------------------------------------------------------------
# Points: many runs at given parameter values
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    variant: str
    values: tuple  # ((name, value), ...) set on top of the variant's parameters
    seed: int
    folder: str  # e.g. "runs/future-0003/baseline.json"

    @property
    def label(self) -> str:
        vals = ", ".join(f"{k}={v:g}" for k, v in self.values)
        return f'variant "{self.variant}" at {vals}, seed {self.seed}'


def overrides_for(sc: Scenario, variant: str, values) -> dict:
    """The point's values that apply to ``variant``: an intervention that sets a parameter itself keeps
    its own value (it is the measure), every other parameter takes the point's value."""
    chosen = sc.intervention(variant)
    own = set(chosen.parameters) if chosen is not None else set()
    return {k: v for k, v in dict(values).items() if k not in own}


_SCENARIOS: dict[str, Scenario] = {}


def scenario_in_worker(raw: dict, path: str | None) -> Scenario:
    from twin.scenario.scenario import scenario_from_dict

    key = hashlib.sha256(json.dumps([raw, path], sort_keys=True, default=str).encode()).hexdigest()
    if key not in _SCENARIOS:
        _SCENARIOS.clear()
        _SCENARIOS[key] = scenario_from_dict(raw, Path(path) if path else None)
    return _SCENARIOS[key]


def run_point(sc: Scenario, variant: str, values, seed: int, series: list[str] | None = None) -> dict:
    """Run one point to the end; its flattened KPIs (and the time series of ``series`` columns)."""
    from twin.runs.experiment import flatten_kpis
    from twin.runs.runner import Run

    run = Run(sc, variant, seed, overrides_for(sc, variant, values), outputs=False)  # only its KPIs are kept
    run.run_to_end()
    res = {"kpis": flatten_kpis(run.model.final_kpis())}
    if series is not None:
        ts = run.model.timeseries()
        res["series"] = {c: ts[c].astype(float).tolist() for c in ["time_s", *series] if c in ts}
    return res


def point_task(raw: dict, path: str | None, variant: str, values: tuple, seed: int, out: str, want: str) -> dict:
    """One point in a worker: run it and write its JSON file atomically. Never raises."""
    from twin.core.files import write_json

    try:
        sc = scenario_in_worker(raw, path)
        res = run_point(sc, variant, values, seed)
        record = {"variant": variant, "values": dict(values), "seed": seed, "hash": want, "kpis": res["kpis"]}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(record, Path(out))
        return {"status": "ok", "kpis": res["kpis"], "pid": os.getpid()}
    except UserError as e:
        return {"status": "user_error", "message": str(e)}
    except Exception as e:  # noqa: BLE001 - reported with the point's variant and values
        return {"status": "error", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


def point_hash(sc: Scenario, p: Point, files: dict) -> str:
    from twin.runs.runner import run_hash

    return run_hash(sc.resolved(p.variant, p.seed, overrides_for(sc, p.variant, p.values)), p.variant, files)


@dataclass
class PointResults:
    kpis: list[dict]  # in the order of the points
    ran: int
    reused: int
    extra: dict = field(default_factory=dict)


def run_points(sc: Scenario, points: list[Point], out: Path, workers: int | None = None, scheduler: str | None = None,
               progress: bool = True) -> PointResults:
    """Every point (reusing finished ones), on local workers or Dask; KPIs in the order of ``points``."""
    from twin.runs.experiment import _clean_partials, _iter_dask, execute

    out.mkdir(parents=True, exist_ok=True)
    _clean_partials(out)
    files = {v: sc.input_files(v) for v in dict.fromkeys(p.variant for p in points)}
    wants = [point_hash(sc, p, files[p.variant]) for p in points]
    results: list[dict | None] = [None] * len(points)
    todo_idx = []
    for i, (p, want) in enumerate(zip(points, wants)):
        f = out / p.folder
        try:
            rec = json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
        except (OSError, ValueError):
            rec = None
        if rec is not None and rec.get("hash") == want:
            results[i] = rec["kpis"]
        else:
            todo_idx.append(i)
    raw, path = sc.raw, (str(sc.path.resolve()) if sc.path else None)
    todo = [points[i] for i in todo_idx]
    tasks = [(raw, path, p.variant, p.values, p.seed, str((out / p.folder).resolve()), wants[i])
             for i, p in zip(todo_idx, todo)]
    it = _iter_dask(tasks, scheduler, fn=point_task) if scheduler else None
    execute(tasks, todo, len(points), workers, progress, None, None, out,
            lambda: sum((out / p.folder).is_file() for p in points), fn=point_task, it=it)
    for i, p in zip(todo_idx, todo):
        results[i] = json.loads((out / p.folder).read_text(encoding="utf-8"))["kpis"]
    return PointResults(results, len(todo), len(points) - len(todo))


# --------------------------------------------------------------------------------------------
# Shared checks and helpers of the three verbs
# --------------------------------------------------------------------------------------------
def preflight(scenario, out, workers, scheduler, variants=None):
    """The scenario, --out (locked till the end of the command), --workers, --scheduler, and every
    variant built once on the city, before any run."""
    from twin.scenario import preflight as pf
    from twin.core import locks
    from twin.core.limits import MAX_WORKERS

    sc = pf.check_scenario(scenario)
    if workers is not None:
        pf.check_count(workers, "--workers", MAX_WORKERS)
    out = pf.check_output(out)
    if scheduler:
        pf.check_scheduler(scheduler)
    sc.load_city()
    pf.check_models(sc, variants if variants is not None else [BASELINE])
    return sc, out, locks.hold(out)


def unit_samples(n: int, d: int, method: str, seed: int):
    """``n`` points in [0, 1]^d: Latin hypercube or scrambled Sobol (scipy.stats.qmc), seeded."""
    import numpy as np
    from scipy.stats import qmc

    if method == "lhs":
        return qmc.LatinHypercube(d=d, seed=np.random.default_rng(seed)).random(n)
    if method == "sobol":
        import warnings

        with warnings.catch_warnings():  # n not a power of two: still a good design, scipy only warns
            warnings.simplefilter("ignore", UserWarning)
            return qmc.Sobol(d=d, scramble=True, seed=np.random.default_rng(seed)).random(n)
    raise UserError(f'--sampler "{method}": use lhs (Latin hypercube) or sobol.')
