"""The ``[experiment]`` table of a scenario: parameter sweeps (``grid``, ``sets``, ``lhs``) and their names.

Parsed when the scenario is loaded, so a bad sweep fails before any run; ``twin.runs.experiment`` turns
the points into variants.
"""
from __future__ import annotations

import hashlib
import math
import re
from typing import TYPE_CHECKING, Any

from twin.core.errors import UserError, nearest
from twin.core.limits import MAX_REPLICATIONS, MAX_SEED, MAX_SWEEP_POINTS, bounded_number

if TYPE_CHECKING:
    from twin.scenario.scenario import Scenario

METHODS = ("grid", "sets", "lhs")
EXPERIMENT_KEYS = {"method", "parameters", "sets", "samples", "seed", "replications", "description"}


def slugify(name: str, taken: set[str] | None = None) -> str:
    """A folder name for a variant: lowercase letters, digits, ``._-``; unique within ``taken``."""
    slug = re.sub(r"[^a-z0-9._]+", "-", name.lower()).strip("-.") or "variant"
    if len(slug) > 60:
        slug = slug[:50].rstrip("-.") + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    if taken is not None:
        base, i = slug, 2
        while slug in taken:
            slug, i = f"{base}-{i}", i + 1
        taken.add(slug)
    return slug


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "+".join(map(str, v)) if v else "none"
    return str(v)


def point_name(point: dict) -> str:
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in point.items())


def sweep_points(sc: "Scenario") -> list[dict]:
    """The parameter points of the ``[experiment]`` table, validated (UserError names the key)."""
    exp = sc.experiment
    if not exp:
        return []
    where = f"{sc.where} [experiment]"
    for key in exp:
        if key not in EXPERIMENT_KEYS:
            raise UserError(f'{where}: unknown key "{key}"{nearest(key, EXPERIMENT_KEYS)}; '
                            f"allowed: {', '.join(sorted(EXPERIMENT_KEYS))}.")
    method = exp.get("method", "sets" if "sets" in exp else "grid")
    if method not in METHODS:
        raise UserError(f'{where}: method = "{method}" is unknown{nearest(str(method), METHODS)}; '
                        'use "grid" (every combination of lists), "sets" (explicit parameter sets) '
                        'or "lhs" (Latin hypercube over ranges).')
    reps = exp.get("replications", 1)
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise UserError(f"{where}: replications must be a whole number of at least 1, not {reps!r}.")
    bounded_number(reps, f"{where}: replications", whole=True, minimum=1, maximum=MAX_REPLICATIONS)
    cls = sc.model_class()
    specs = {p.name: p for p in cls.params}

    def check_name(name: str, table: str) -> Any:
        if name not in specs:
            raise UserError(f'{where}: {table} names unknown parameter "{name}" for model "{cls.name}"'
                            f"{nearest(name, specs)}. `citytwin models {cls.name}` lists the valid ones.")
        return specs[name]

    params = exp.get("parameters", {})
    if not isinstance(params, dict):
        raise UserError(f"{where}: parameters must be a table, e.g. [experiment.parameters].")
    points: list[dict] = []
    if method == "grid":
        if "sets" in exp or "samples" in exp:
            extra = "sets" if "sets" in exp else "samples"
            raise UserError(f'{where}: "{extra}" does not belong to method = "grid"; a grid takes lists in '
                            "[experiment.parameters] (or use method = \"sets\" / \"lhs\").")
        if not params:
            raise UserError(f"{where}: method = \"grid\" needs [experiment.parameters] with a list of values "
                            "per parameter, e.g. walkers = [100, 200].")
        axes = []
        for name, values in params.items():
            p = check_name(name, "[experiment.parameters]")
            key = f"{where} parameters.{name}"
            if not isinstance(values, list):
                raise UserError(f"{key}: a grid needs a list of values, e.g. {name} = [{_fmt_value(p.default)}, ...], "
                                f"not {values!r}.")
            if not values:
                raise UserError(f"{key}: the list of values is empty; give at least one value.")
            axes.append([(name, p.coerce(v, key)) for v in values])
        n_points = math.prod(len(a) for a in axes)
        if n_points > MAX_SWEEP_POINTS:
            raise UserError(f"{where}: the grid has {' × '.join(str(len(a)) for a in axes)} = {n_points:,} points; "
                            f"a sweep has at most {MAX_SWEEP_POINTS:,}. Use fewer values, or method = \"lhs\".")
        import itertools

        points = [dict(combo) for combo in itertools.product(*axes)]
    elif method == "sets":
        sets = exp.get("sets")
        if params:
            raise UserError(f'{where}: method = "sets" takes sets = [{{...}}, ...], not [experiment.parameters].')
        if not isinstance(sets, list) or not sets:
            raise UserError(f'{where}: method = "sets" needs sets = [{{walkers = 100}}, {{walkers = 200}}] '
                            "(a non-empty list of parameter tables).")
        if len(sets) > MAX_SWEEP_POINTS:
            raise UserError(f"{where}: {len(sets):,} sets; a sweep has at most {MAX_SWEEP_POINTS:,}.")
        for i, s in enumerate(sets):
            key = f"{where} sets[{i}]"
            if not isinstance(s, dict) or not s:
                raise UserError(f"{key}: each set must be a non-empty table of parameters, not {s!r}.")
            points.append({name: check_name(name, f"sets[{i}]").coerce(v, f"{key} {name}") for name, v in s.items()})
    else:  # lhs
        import numpy as np
        from scipy.stats import qmc

        if not params:
            raise UserError(f"{where}: method = \"lhs\" needs [experiment.parameters] with ranges, "
                            "e.g. speed_mps = {min = 0.8, max = 1.6}.")
        samples = exp.get("samples")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise UserError(f"{where}: samples must be a whole number of at least 1 for method = \"lhs\", "
                            f"not {samples!r}.")
        bounded_number(samples, f"{where}: samples", whole=True, minimum=1, maximum=MAX_SWEEP_POINTS)
        seed = exp.get("seed", sc.seed)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UserError(f"{where}: seed must be a whole number >= 0, not {seed!r}.")
        bounded_number(seed, f"{where}: seed", whole=True, minimum=0, maximum=MAX_SEED)
        ranges = []
        for name, r in params.items():
            p = check_name(name, "[experiment.parameters]")
            key = f"{where} parameters.{name}"
            if p.kind not in (int, float):
                raise UserError(f"{key}: Latin hypercube sampling needs a numeric parameter; "
                                f'"{name}" is {p.kind.__name__}. Use method = "sets" or "grid" for it.')
            if not isinstance(r, dict) or set(r) != {"min", "max"}:
                raise UserError(f"{key}: give a range as {{min = ..., max = ...}}, not {r!r}.")
            lo, hi = (p.coerce(r[b], f"{key}.{b}") for b in ("min", "max"))
            if lo > hi:
                raise UserError(f"{key}: min = {lo} is greater than max = {hi}.")
            ranges.append((name, p, lo, hi))
        unit = qmc.LatinHypercube(d=len(ranges), seed=np.random.default_rng(seed)).random(samples)
        for row in unit:
            pt = {}
            for (name, p, lo, hi), u in zip(ranges, row):
                v = lo + float(u) * (hi - lo)
                pt[name] = int(round(v)) if p.kind is int else float(v)
            points.append(pt)
    # Every point against the full validation of the model (ranges, types), naming the point.
    for pt in points:
        _check_point(sc, pt, where)
    return points


def _check_point(sc: "Scenario", point: dict, where: str) -> None:
    from twin.core.model_contract import validate_params

    validate_params(sc.model_class(), {**sc.parameters, **point}, f"{where} point {point_name(point)}")


def experiment_replications(sc: "Scenario", override: int | None = None) -> int:
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, int) or override < 1:
            raise UserError(f"--replications {override}: must be a whole number of at least 1.")
        return bounded_number(override, "--replications", whole=True, minimum=1, maximum=MAX_REPLICATIONS)
    if sc.experiment and "replications" in sc.experiment:
        return int(sc.experiment["replications"])
    return sc.replications
