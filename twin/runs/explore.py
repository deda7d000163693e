"""`citytwin explore`: every intervention in every sampled future; which plan holds up, and where it fails.

Futures
    ``--uncertain NAME=LOW..HIGH`` spans the space of what we cannot know (demand, compliance, a
    storm's return period). ``--samples N`` futures are drawn from it (Latin hypercube or scrambled
    Sobol, ``scipy.stats.qmc``, seeded with the scenario's seed). Future ``j`` runs with seed
    ``scenario seed + j`` for the baseline and every intervention (common random numbers within a
    future), so a difference between two plans in one future is due to the plans. An intervention
    that sets an uncertain parameter itself keeps its own value: it is the measure.

Robustness (``robustness.csv``, per intervention and KPI)
    mean, p10, p90 over the futures; ``max_regret``: the largest shortfall, over the futures, from
    the best intervention *in that future* (by the KPI's declared better direction);
    ``share_meeting_target``: share of futures where ``--target`` holds (blank for other KPIs).

Scenario discovery (``scenario_discovery.csv``)
    For each intervention and target, PRIM (``ema_workbench.analysis.prim``) looks for a box of the
    uncertainty space where the target is missed: the box on PRIM's peeling trajectory with the
    highest coverage (share of all misses inside it) among those with density (share of futures in
    it that miss) of at least ``PRIM_DENSITY``. Said in words: "fails when demand > 1.2 and ...".
"""
from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from twin.core.errors import UserError
from twin.core.limits import MAX_RUNS, MAX_SWEEP_POINTS, bounded_number
from twin.scenario.sweeps import slugify
from twin.runs.uncertainty import (Point, Range, Target, headline_kpis, kpi_better, parse_ranges, parse_targets, preflight,
                                   run_points, unit_samples)

PRIM_DENSITY = 0.8  # a box must hold at least this share of misses to be called "where it fails"
ROBUSTNESS_COLUMNS = ["intervention", "kpi", "mean", "p10", "p90", "max_regret", "share_meeting_target"]


@dataclass
class ExploreResult:
    out: Path
    robustness: pd.DataFrame
    futures: pd.DataFrame
    discovery: pd.DataFrame
    ran: int
    reused: int
    wall_s: float
    n_futures: int
    variants: list[str]
    sentences: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"{len(self.variants)} variants × {self.n_futures} futures = {len(self.futures)} runs "
                 f"({self.ran} run now, {self.reused} reused) in {self.wall_s:.1f} s"]
        lines += [f"  - {s}" for s in self.sentences]
        lines += [f"robustness table: {self.out / 'robustness.csv'}", f"futures:          {self.out / 'futures.parquet'}",
                  f"report:           {self.out / 'report.html'}"]
        return "\n".join(lines)


def explore(scenario, out, uncertain, samples: int, targets=(), sampler: str = "lhs", workers: int | None = None,
            scheduler: str | None = None, progress: bool = True, report: bool = True) -> ExploreResult:
    started = time.perf_counter()
    from twin.scenario.preflight import check_scenario

    sc = check_scenario(scenario)
    ranges = parse_ranges(sc, uncertain, "--uncertain")
    tgts = parse_targets(sc, targets)
    samples = bounded_number(samples, "--samples", whole=True, minimum=2, maximum=MAX_SWEEP_POINTS)
    if sampler not in ("lhs", "sobol"):
        raise UserError(f'--sampler "{sampler}": use lhs (Latin hypercube) or sobol.')
    variants = sc.variants()
    if len(variants) * samples > MAX_RUNS:
        raise UserError(f"--samples {samples}: {len(variants)} variants × {samples} futures = "
                        f"{len(variants) * samples:,} runs; one study runs at most {MAX_RUNS:,}.")
    sc, out, lock = preflight(sc, out, workers, scheduler, variants)
    try:
        unit = unit_samples(samples, len(ranges), sampler, sc.seed)
        futures = [tuple((r.name, r.scale(u)) for r, u in zip(ranges, row)) for row in unit]
        taken: set[str] = set()
        slugs = {v: slugify(v, taken) for v in variants}
        points = [Point(v, fut, sc.seed + j, f"runs/future-{j:04d}/{slugs[v]}.json")
                  for j, fut in enumerate(futures) for v in variants]
        res = run_points(sc, points, out, workers, scheduler, progress)
        result = analyse(sc, out, ranges, tgts, points, res.kpis, variants, report=report)
        result.ran, result.reused = res.ran, res.reused
        result.wall_s = time.perf_counter() - started
        return result
    finally:
        lock.release()


def futures_frame(points: list[Point], kpis: list[dict], ranges: list[Range], n_variants: int) -> pd.DataFrame:
    rows = []
    for i, (p, k) in enumerate(zip(points, kpis)):
        rows.append({"future": i // n_variants, "intervention": p.variant, "seed": p.seed, **dict(p.values), **k})
    return pd.DataFrame(rows)


def regrets(fut: pd.DataFrame, kpi: str, better: str | None) -> pd.Series:
    """Per row: how far the intervention falls short of the best intervention in the same future."""
    if better not in ("lower", "higher"):
        return pd.Series(np.nan, index=fut.index)
    g = fut.groupby("future")[kpi]
    best = g.transform("min") if better == "lower" else g.transform("max")
    return (fut[kpi] - best).abs()


def best_intervention(fut: pd.DataFrame, kpi: str, better: str | None, variants: list[str]) -> pd.Series:
    """Per future: the intervention with the best ``kpi`` (ties go to the earlier variant)."""
    order = {v: i for i, v in enumerate(variants)}
    f = fut.assign(_o=fut["intervention"].map(order))
    f = f.sort_values([kpi, "_o"], ascending=[better != "higher", True], kind="mergesort")
    return f.groupby("future")["intervention"].first()


def robustness_table(fut: pd.DataFrame, kpis: list[str], better: dict, targets: list[Target],
                     variants: list[str]) -> pd.DataFrame:
    rows = []
    by_kpi = {t.kpi: t for t in targets}
    for kpi in kpis:
        reg = regrets(fut, kpi, better.get(kpi))
        for v in variants:
            sel = fut["intervention"] == v
            x = fut.loc[sel, kpi].to_numpy(float)
            t = by_kpi.get(kpi)
            rows.append({"intervention": v, "kpi": kpi, "mean": float(np.mean(x)),
                         "p10": float(np.quantile(x, 0.1)), "p90": float(np.quantile(x, 0.9)),
                         "max_regret": float(reg[sel].max()) if reg[sel].notna().any() else math.nan,
                         "share_meeting_target": float(np.mean(t.holds(x))) if t is not None else math.nan})
    return pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)


# --------------------------------------------------------------------------------------------
# Scenario discovery
# --------------------------------------------------------------------------------------------
@dataclass
class Box:
    limits: dict[str, tuple[float | None, float | None]]  # restricted uncertainties: (low or None, high or None)
    coverage: float
    density: float
    mass: float


def prim_box(x: pd.DataFrame, y: np.ndarray, density: float = PRIM_DENSITY) -> Box | None:
    """The box of ``x`` where ``y`` (bool: a case of interest) concentrates, by PRIM; None if PRIM
    finds no box of at least ``density``."""
    import logging
    import warnings

    with warnings.catch_warnings():  # "ipyparallel not installed": an evaluator PRIM does not use
        warnings.simplefilter("ignore", UserWarning)
        from ema_workbench.analysis import prim

    logging.getLogger("EMA").setLevel(logging.WARNING)
    y = np.asarray(y, dtype=bool)
    if not y.any():
        return None
    p = prim.Prim(x.astype(float).reset_index(drop=True), y, peel_alpha=0.05, paste_alpha=0.05, mass_min=0.05)
    box = p.find_box()
    traj = box.peeling_trajectory
    ok = traj[traj["density"] >= density - 1e-12]  # not a model word: PRIM's box density
    if ok.empty:
        return None
    i = int(ok.sort_values(["coverage", "density"], ascending=False, kind="mergesort").index[0])  # not a model word: PRIM's box density
    lims, full = box.box_lims[i], p.box_init
    xs = x.astype(float)
    limits: dict[str, tuple[float | None, float | None]] = {}
    for c in x.columns:
        lo, hi = float(lims.loc[0, c]), float(lims.loc[1, c])
        lo_r, hi_r = lo > float(full.loc[0, c]), hi < float(full.loc[1, c])
        if lo_r or hi_r:
            limits[c] = (lo if lo_r else None, hi if hi_r else None)

    def stats(lim):
        inside = np.ones(len(xs), bool)
        for c, (lo, hi) in lim.items():
            inside &= (xs[c].to_numpy() >= lo if lo is not None else True) & (xs[c].to_numpy() <= hi if hi is not None
                                                                            else True)
        k = int((inside & y).sum())
        return k / y.sum(), (k / inside.sum() if inside.any() else 0.0), inside.mean()

    # Drop the restrictions that do not earn their place (as ema_workbench's drop_restriction does by
    # hand): without it the box must keep its coverage and stay above the density threshold.
    cov, dens, mass = stats(limits)
    for c in list(limits):
        trial = {k: v for k, v in limits.items() if k != c}
        tc, td, tm = stats(trial)
        if trial and tc >= cov - 1e-12 and td >= density - 1e-12:
            limits, cov, dens, mass = trial, tc, td, tm
    return Box(limits, float(cov), float(dens), float(mass))


def _g(v: float) -> str:
    return f"{v:.3g}"


def box_words(box: Box, ranges: list[Range]) -> str:
    """"demand > 1.2 and rain < 70 mm/h" from a box's restricted limits."""
    parts = []
    units = {r.name: ("" if r.unit in ("-", "") else f" {r.unit}") for r in ranges}
    for name, (lo, hi) in box.limits.items():
        u = units.get(name, "")
        if lo is not None and hi is not None:
            parts.append(f"{_g(lo)} < {name} < {_g(hi)}{u}")
        elif lo is not None:
            parts.append(f"{name} > {_g(lo)}{u}")
        else:
            parts.append(f"{name} < {_g(hi)}{u}")
    return " and ".join(parts)


def discover(fut: pd.DataFrame, ranges: list[Range], targets: list[Target], variants: list[str]) -> pd.DataFrame:
    rows = []
    names = [r.name for r in ranges]
    for t in targets:
        for v in variants:
            f = fut[fut["intervention"] == v]
            miss = ~t.holds(f[t.kpi].to_numpy(float))
            n, k = len(f), int(miss.sum())
            row = {"intervention": v, "target": t.text, "futures": n, "misses": k, "coverage": math.nan,
                   "density": math.nan, "mass": math.nan, "box": ""}  # not a model word: PRIM's box density
            if k == 0:
                row["sentence"] = f'"{v}" meets {t.text} in all {n} futures.'
            elif k == n:
                row["sentence"] = f'"{v}" misses {t.text} in all {n} futures.'
            else:
                box = prim_box(f[names], miss)
                if box is None or not box.limits:
                    row["sentence"] = (f'"{v}" misses {t.text} in {k} of {n} futures, with no region of the '
                                       f"uncertainties where most misses gather (PRIM found no box of density "
                                       f">= {PRIM_DENSITY:.0%}).")
                else:
                    words = box_words(box, ranges)
                    row.update(coverage=box.coverage, density=box.density, mass=box.mass, box=words)
                    row["sentence"] = (f'"{v}" fails {t.text} when {words} ({k} of {n} futures miss; this box holds '
                                       f"{box.coverage:.0%} of the misses (coverage) and {box.density:.0%} of the "
                                       f"futures in it miss (density)).")
            rows.append(row)
    return pd.DataFrame(rows, columns=["intervention", "target", "futures", "misses", "coverage", "density", "mass",  # not a model word: PRIM's box density
                                       "box", "sentence"])


# --------------------------------------------------------------------------------------------
# Tables, files, report
# --------------------------------------------------------------------------------------------
def analyse(sc, out: Path, ranges, targets, points, kpis, variants, report: bool = True) -> ExploreResult:
    from twin.core.files import write_json, write_table

    better = kpi_better(sc)
    fut = futures_frame(points, kpis, ranges, len(variants))
    shown = list(dict.fromkeys([t.kpi for t in targets] + headline_kpis(sc)))
    missing = [k for k in shown if k not in fut]
    if missing:
        raise UserError(f"{sc.where}: the runs reported no KPI {', '.join(missing)}; nothing to explore.")
    for k in shown:
        fut[f"regret.{k}"] = regrets(fut, k, better.get(k))
    for t in targets:
        fut[f"meets.{t.kpi}"] = t.holds(fut[t.kpi].to_numpy(float))
    primary = targets[0].kpi if targets else next((k for k in shown if better.get(k) in ("lower", "higher")), shown[0])
    best = best_intervention(fut, primary, better.get(primary), variants)
    fut["best_intervention"] = fut["future"].map(best)
    rob = robustness_table(fut, shown, better, targets, variants)
    disc = discover(fut, ranges, targets, variants)
    write_table(fut, out / "futures", formats=("parquet", "csv"))
    write_table(rob, out / "robustness", formats=("csv",))
    write_table(disc, out / "scenario_discovery", formats=("csv",))
    write_json({"scenario": sc.name, "scenario_file": str(sc.path) if sc.path else None, "model": sc.model,
                "uncertainties": [{"name": r.name, "low": r.low, "high": r.high, "unit": r.unit} for r in ranges],
                "targets": [{"kpi": t.kpi, "op": t.op, "value": t.value} for t in targets],
                "futures": int(fut["future"].nunique()), "interventions": variants, "kpis": shown,
                "best_by": primary, "better": {k: better.get(k) for k in shown},
                "units": {k: sc.model_class().kpi_units().get(k, "") for k in shown},
                "seeds": f"future j uses seed {sc.seed} + j for every intervention (common random numbers)",
                "prim_density": PRIM_DENSITY}, out / "explore.json")
    sentences = [s for s in disc["sentence"]] if len(disc) else []
    result = ExploreResult(out, rob, fut, disc, 0, 0, 0.0, int(fut["future"].nunique()), variants, sentences)
    if report:
        write_report(sc, out, result, ranges, targets, shown, better, primary)
    return result


@dataclass
class Exploration:
    """A finished ``explore`` folder as the app reads it."""

    folder: Path
    meta: dict
    robustness: pd.DataFrame
    futures: pd.DataFrame
    discovery: pd.DataFrame

    @property
    def uncertainties(self) -> list[str]:
        return [u["name"] for u in self.meta["uncertainties"]]

    def by_future(self) -> pd.DataFrame:
        """One row per future: its uncertain values and its best intervention."""
        return self.futures.drop_duplicates("future")[["future", *self.uncertainties, "best_intervention"]]


def load_exploration(folder) -> Exploration:
    import json

    folder = Path(folder)
    need = ["explore.json", "robustness.csv", "futures.parquet"]
    missing = [n for n in need if not (folder / n).is_file()]
    if missing:
        raise UserError(f"{folder}: not a finished exploration (no {', '.join(missing)}); choose the --out folder of "
                        "a `citytwin explore` that ran to the end.")
    try:
        meta = json.loads((folder / "explore.json").read_text(encoding="utf-8"))
        rob = pd.read_csv(folder / "robustness.csv")
        fut = pd.read_parquet(folder / "futures.parquet")
        disc = pd.read_csv(folder / "scenario_discovery.csv") if (folder / "scenario_discovery.csv").is_file() \
            else pd.DataFrame(columns=["sentence"])
    except (OSError, ValueError) as e:
        raise UserError(f"{folder}: the exploration's files cannot be read ({e}); run the explore again.") from None
    return Exploration(folder, meta, rob, fut, disc)


def write_report(sc, out: Path, res: ExploreResult, ranges, targets, kpis, better, primary) -> Path:
    from matplotlib.figure import Figure

    from twin import __version__
    from twin.view.fonts import use_cjk_fallback
    from twin.core.formats import kpi_label
    from twin.runs.report import COLORS, _img, write_report_page

    use_cjk_fallback()
    units = sc.model_class().kpi_units()
    fut, rob, variants = res.futures, res.robustness, res.variants
    parts = [f"<h1>{html.escape(sc.name)}: {len(variants)} plans in {res.n_futures} futures</h1>",
             f"<p class=meta>Model <b>{html.escape(sc.model)}</b>; uncertainties "
             + ", ".join(f"<b>{html.escape(r.name)}</b> {r.low:g}..{r.high:g} {html.escape(r.unit)}" for r in ranges)
             + (f"; targets {', '.join(html.escape(t.text) for t in targets)}" if targets else "")
             + f". Generated by CityTwin {__version__}.</p>"]
    if len(res.discovery):
        parts.append("<h2>Where each plan fails</h2><ul class=headlines>"
                     + "".join(f"<li>{html.escape(s)}</li>" for s in res.discovery["sentence"]) + "</ul>")
    parts.append("<h2>Robustness</h2><p class=note>Over the futures: mean, 10th and 90th percentile; max regret = "
                 "largest shortfall from the best plan of the same future; share meeting the target.</p>")
    shown = rob.copy()
    for c in ("mean", "p10", "p90", "max_regret"):
        shown[c] = shown[c].map(lambda v: f"{v:.4g}" if math.isfinite(v) else "")
    shown["share_meeting_target"] = rob["share_meeting_target"].map(lambda v: f"{v:.0%}" if math.isfinite(v) else "")
    parts.append(shown.to_html(index=False, escape=True, border=0))
    # Spread of each KPI over the futures, per plan
    for k in kpis:
        fig = Figure(figsize=(8, 0.45 * len(variants) + 1.2))
        ax = fig.subplots()
        data = [fut.loc[fut["intervention"] == v, k].to_numpy(float) for v in variants]
        ax.boxplot(data, orientation="horizontal", whis=(10, 90), showfliers=False)
        ax.set_yticks(range(1, len(variants) + 1), [v[:40] for v in variants])
        ax.invert_yaxis()
        for t in targets:
            if t.kpi == k:
                ax.axvline(t.value, color="#d62728", ls="--", label=f"target {t.text}")
                ax.legend(loc="best", fontsize=8)
        ax.set_xlabel(f"{kpi_label(k)} ({units.get(k, '')})")
        ax.set_title(f"{kpi_label(k)} over {res.n_futures} futures (box: quartiles, whiskers: p10-p90)")
        parts.append(_img(fig, k))
    # The futures on the first two uncertainties, coloured by the best plan
    if len(ranges) >= 2:
        a, b = ranges[0].name, ranges[1].name
        one = fut.drop_duplicates("future")
        fig = Figure(figsize=(7, 5))
        ax = fig.subplots()
        for i, v in enumerate(variants):
            sel = one["best_intervention"] == v
            if sel.any():
                ax.scatter(one.loc[sel, a], one.loc[sel, b], s=18, color=COLORS[i % len(COLORS)], label=v[:40])
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        ax.set_title(f"Futures coloured by the best plan ({kpi_label(primary)})")
        ax.legend(fontsize=7, loc="best")
        parts.append(_img(fig, "best plan by future"))
    parts.append("<h2>Method</h2><p class=note>Futures: "
                 f"{res.n_futures} samples of the uncertainties; future j runs every plan with seed "
                 f"{sc.seed} + j (common random numbers). Regret needs a KPI's better direction; PRIM "
                 f"(EMA Workbench) boxes have density >= {PRIM_DENSITY:.0%}. futures.parquet holds every run.</p>")
    return write_report_page(out, f"{sc.name} — explore", "".join(parts))
