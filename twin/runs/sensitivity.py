"""`citytwin sensitivity`: which parameters move the headline KPIs, by SALib.

Method
    ``sobol`` (default): Saltelli's sampling (``SALib.sample.sobol``, first and total order,
    ``N (D + 2)`` runs) and Sobol' indices with bootstrap 95 % confidence intervals
    (``SALib.analyze.sobol``). ``morris``: elementary effects on ``--samples`` trajectories
    (``N (D + 1)`` runs) with mu*, its confidence interval, and sigma.

Common random numbers
    Every run uses the scenario's seed: the indices then measure the parameters' effect, not the
    run-to-run noise (which would otherwise show up as interaction in ST).

Outputs: ``sensitivity.csv`` (kpi, parameter, S1, S1_conf, ST, ST_conf; for Morris: kpi, parameter,
mu_star, mu_star_conf, sigma, mu), ``samples.parquet`` (every run's parameters and KPIs),
``sensitivity.png`` and ``report.html``. Runs go to local workers or Dask and are reused on a rerun.
"""
from __future__ import annotations

import html
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twin.core.errors import UserError
from twin.core.limits import MAX_RUNS, bounded_number
from twin.scenario.scenario import BASELINE
from twin.runs.uncertainty import Point, parse_kpis, parse_ranges, preflight, run_points

METHODS = ("sobol", "morris")
SOBOL_COLUMNS = ["kpi", "parameter", "S1", "S1_conf", "ST", "ST_conf"]
MORRIS_COLUMNS = ["kpi", "parameter", "mu_star", "mu_star_conf", "sigma", "mu"]


@dataclass
class SensitivityResult:
    out: Path
    method: str
    table: pd.DataFrame
    samples: pd.DataFrame
    ran: int
    reused: int
    wall_s: float

    def text(self) -> str:
        key = "ST" if self.method == "sobol" else "mu_star"
        lines = [f"{self.method}: {len(self.samples)} runs ({self.ran} run now, {self.reused} reused) in "
                 f"{self.wall_s:.1f} s"]
        for kpi, g in self.table.groupby("kpi", sort=False):
            g = g.dropna(subset=[key]).sort_values(key, ascending=False)
            if len(g):
                lines.append(f"  - {kpi}: " + ", ".join(f"{r.parameter} {key} {getattr(r, key):.2f}"
                                                       for r in g.itertuples()))
        lines += [f"indices: {self.out / 'sensitivity.csv'}", f"report:  {self.out / 'report.html'}"]
        return "\n".join(lines)


def sensitivity(scenario, out, vary, method: str = "sobol", samples: int = 64, kpis=(), intervention: str | None = None,
                workers: int | None = None, scheduler: str | None = None, progress: bool = True,
                report: bool = True) -> SensitivityResult:
    from twin.scenario.preflight import check_scenario

    started = time.perf_counter()
    sc = check_scenario(scenario)
    if method not in METHODS:
        raise UserError(f'--method "{method}": use sobol (first and total order indices) or morris (elementary '
                        "effects, fewer runs).")
    ranges = parse_ranges(sc, vary, "--vary")
    chosen = parse_kpis(sc, kpis)
    variant = intervention or BASELINE
    sc.intervention(variant)  # an unknown name fails here, naming the variants
    samples = bounded_number(samples, "--samples", whole=True, minimum=2, maximum=MAX_RUNS)
    d = len(ranges)
    problem = {"num_vars": d, "names": [r.name for r in ranges], "bounds": [[r.low, r.high] for r in ranges]}
    n_runs = samples * (d + 2) if method == "sobol" else samples * (d + 1)
    if n_runs > MAX_RUNS:
        raise UserError(f"--samples {samples}: {n_runs:,} runs; one study runs at most {MAX_RUNS:,}.")
    if method == "sobol" and samples & (samples - 1):
        raise UserError(f"--samples {samples}: Sobol' sampling needs a power of two (e.g. 64, 128, 256).")
    sc, out, lock = preflight(sc, out, workers, scheduler, [variant])
    try:
        x = design(problem, method, samples, sc.seed)
        points = [Point(variant, tuple((r.name, r.value(v)) for r, v in zip(ranges, row)), sc.seed,
                      f"runs/point-{i:06d}.json") for i, row in enumerate(x)]
        res = run_points(sc, points, out, workers, scheduler, progress)
        frame = pd.DataFrame([{**{r.name: row[j] for j, r in enumerate(ranges)}, **k}
                              for row, k in zip(x, res.kpis)])
        table = indices(problem, method, x, frame, chosen, sc.seed)
        from twin.core.files import write_json, write_table

        write_table(frame, out / "samples", formats=("parquet", "csv"))
        write_table(table, out / "sensitivity", formats=("csv",))
        write_json({"scenario": sc.name, "model": sc.model, "variant": variant, "method": method,
                    "samples": samples, "runs": len(points), "seed": sc.seed, "kpis": chosen,
                    "parameters": [{"name": r.name, "low": r.low, "high": r.high, "unit": r.unit} for r in ranges]},
                   out / "sensitivity.json")
        result = SensitivityResult(out, method, table, frame, res.ran, res.reused, 0.0)
        if report:
            write_report(sc, out, result, ranges)
        result.wall_s = time.perf_counter() - started
        return result
    finally:
        lock.release()


def design(problem: dict, method: str, samples: int, seed: int) -> np.ndarray:
    """The parameter points (in the parameters' units) that SALib's analysis expects, in order."""
    if method == "sobol":
        from SALib.sample import sobol as sobol_sample

        return sobol_sample.sample(problem, samples, calc_second_order=False, seed=seed)
    from SALib.sample import morris as morris_sample

    return morris_sample.sample(problem, samples, num_levels=4, seed=seed)


def indices(problem: dict, method: str, x: np.ndarray, frame: pd.DataFrame, kpis: list[str], seed: int) -> pd.DataFrame:
    """SALib's indices of each KPI; a KPI that never changes gets zeros (its variance is zero)."""
    rows = []
    for kpi in kpis:
        if kpi not in frame:
            raise UserError(f"the runs reported no KPI {kpi}.")
        y = frame[kpi].to_numpy(float)
        constant = bool(np.nanstd(y) == 0)
        for j, name in enumerate(problem["names"]):
            rows.append({"kpi": kpi, "parameter": name})
        if constant:
            cols = SOBOL_COLUMNS[2:] if method == "sobol" else MORRIS_COLUMNS[2:]
            for r in rows[-len(problem["names"]):]:
                r.update({c: 0.0 for c in cols})
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if method == "sobol":
                from SALib.analyze import sobol

                si = sobol.analyze(problem, y, calc_second_order=False, seed=seed)
                keys = ("S1", "S1_conf", "ST", "ST_conf")
            else:
                from SALib.analyze import morris

                si = morris.analyze(problem, x, y, seed=seed)
                keys = ("mu_star", "mu_star_conf", "sigma", "mu")
        for j, r in enumerate(rows[-len(problem["names"]):]):
            r.update({k: float(si[k][j]) for k in keys})
    return pd.DataFrame(rows, columns=SOBOL_COLUMNS if method == "sobol" else MORRIS_COLUMNS)


def figure(result: SensitivityResult, units: dict):
    from matplotlib.figure import Figure

    from twin.core.formats import kpi_label

    t = result.table
    kpis = list(dict.fromkeys(t["kpi"]))
    fig = Figure(figsize=(8, 2.2 * len(kpis) + 0.6))
    axes = np.atleast_1d(fig.subplots(len(kpis), 1))
    for ax, kpi in zip(axes, kpis):
        g = t[t["kpi"] == kpi]
        pos = np.arange(len(g))
        if result.method == "sobol":
            ax.barh(pos - 0.2, g["S1"], 0.4, xerr=g["S1_conf"], label="S1 (first order)", color="#1f77b4")
            ax.barh(pos + 0.2, g["ST"], 0.4, xerr=g["ST_conf"], label="ST (total)", color="#ff7f0e")
            ax.set_xlim(min(0.0, float(np.nanmin(g["S1"] - g["S1_conf"]))) - 0.02, 1.05)
        else:
            ax.barh(pos - 0.2, g["mu_star"], 0.4, xerr=g["mu_star_conf"], label="mu*", color="#1f77b4")
            ax.barh(pos + 0.2, g["sigma"], 0.4, label="sigma", color="#ff7f0e")
        ax.set_yticks(pos, list(g["parameter"]))
        ax.invert_yaxis()
        ax.set_title(f"{kpi_label(kpi)} ({units.get(kpi, '')})", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def write_report(sc, out: Path, result: SensitivityResult, ranges) -> Path:
    from twin import __version__
    from twin.core.files import atomic_file
    from twin.view.fonts import use_cjk_fallback
    from twin.runs.report import _img, write_report_page

    use_cjk_fallback()
    units = sc.model_class().kpi_units()
    fig = figure(result, units)
    with atomic_file(out / "sensitivity.png", "path") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    t = result.table.copy()
    for c in t.columns[2:]:
        t[c] = t[c].map(lambda v: f"{v:.3f}" if isinstance(v, float) and math.isfinite(v) else "")
    what = ("Sobol' indices: S1 = share of the KPI's variance due to the parameter alone, ST = including its "
            "interactions; ± the bootstrap 95 % interval." if result.method == "sobol" else
            "Morris elementary effects: mu* = mean absolute effect of moving the parameter (in KPI units), "
            "sigma = how much that effect changes with the other parameters (interaction or non-linearity).")
    body = (f"<h1>{html.escape(sc.name)}: sensitivity ({result.method})</h1>"
            f"<p class=meta>{len(result.samples)} runs of model <b>{html.escape(sc.model)}</b> with seed {sc.seed} "
            "(common random numbers); parameters "
            + ", ".join(f"<b>{html.escape(r.name)}</b> {r.low:g}..{r.high:g} {html.escape(r.unit)}" for r in ranges)
            + f". CityTwin {__version__}.</p><p class=note>{html.escape(what)}</p>"
            + t.to_html(index=False, border=0) + _img(fig, "sensitivity indices"))
    return write_report_page(out, f"{sc.name} — sensitivity", body)
