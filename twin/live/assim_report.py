"""What a user sees of an assimilation (docs/assimilation.md, "Report"): the estimated parameters
over time with their spread, each sensor's residual before and after the updates, and the skill of
the open-loop and assimilated forecasts by lead time. Pictures (PNG) and one self-contained
``report.html``, from the tables ``citytwin assimilate`` writes; nothing here knows a model."""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from twin.core.errors import UserError
from twin.core.files import atomic_file

COLOURS = {"open_loop": "#7f7f7f", "assimilated": "#d62728"}
LABELS = {"open_loop": "open loop", "assimilated": "assimilated"}
MAX_SENSOR_PANELS = 12


TABLES = {"parameters.csv": ["time_s", "parameter", "mean", "p10", "p50", "p90", "truth"],
          "residuals.csv": ["time_s", "sensor", "observed", "before", "after", "fate"],
          "skill.csv": ["issued_at", "lead_s", "kpi", "method", "against", "truth", "mean", "rmse", "crps", "coverage"]}


@dataclass
class AssimilationTables:
    """What a viewer draws of an assimilation: the tables of a ``citytwin assimilate --out`` folder
    or of a ``citytwin live --assimilate`` one (a table not written yet is empty)."""

    folder: Path
    parameters: pd.DataFrame
    residuals: pd.DataFrame
    skill: pd.DataFrame
    summary: dict = field(default_factory=dict)

    def headline(self) -> list[str]:
        """The skill panel's KPIs as the run saved them (``summary.json``), or its model's headline KPIs
        (a folder written before they were saved); none where neither is known."""
        if self.summary.get("headline_kpis"):
            return list(self.summary["headline_kpis"])
        if not self.summary.get("model"):
            return []
        from twin.scenario.model_docs import model_class

        try:
            return headline_columns(model_class(str(self.summary["model"])))
        except UserError:
            return []

    def latest_estimates(self) -> pd.DataFrame:
        """Each parameter's last row (the estimate now)."""
        p = self.parameters.sort_values("time_s", kind="stable")
        return p.groupby("parameter", sort=False).tail(1)


def load_assimilation(folder: Path | str) -> AssimilationTables:
    """The tables of an assimilation's folder; a clear error where it is none."""
    folder = Path(folder)
    if not (folder / "parameters.csv").is_file():
        raise UserError(f"{folder}: no parameters.csv here, so this is not the folder of an assimilation. Open the "
                        "--out folder of `citytwin assimilate`, or of `citytwin live --assimilate pf|enkf` once its "
                        "filter has written its first checkpoint.")
    frames = {}
    for name, columns in TABLES.items():
        path = folder / name
        if not path.is_file():
            frames[name] = pd.DataFrame(columns=columns)
            continue
        try:
            frames[name] = pd.read_csv(path)
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: cannot be read as a table ({e}); write it again with the command that made it.")
        lacking = [c for c in columns if c not in frames[name].columns]
        if lacking:
            raise UserError(f"{path}: has no column {', '.join(lacking)}; it was not written by `citytwin assimilate` "
                            "or `citytwin live --assimilate` of this version: run it again.")
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    return AssimilationTables(folder, frames["parameters.csv"], frames["residuals.csv"], frames["skill.csv"],
                              summary if isinstance(summary, dict) else {})


def headline_columns(model_cls) -> list[str]:
    """The skill columns of a model's headline KPIs (the skill panel's panels), in its order."""
    return [f"kpi.{k.name}" for k in model_cls.kpis if k.headline and not k.keyed]


def skill_kpis(skill: pd.DataFrame, headline: list[str]) -> tuple[list[str], list[str]]:
    """The KPIs the skill panel draws (the headline ones scored, else the first five scored) and those
    left out because both ensembles forecast them without error at every lead (one that stays 0 all the
    record would be an empty panel: named instead)."""
    have = set(skill.kpi)
    kpis = [k for k in headline if k in have] or sorted(have)[:5]
    exact = [k for k in kpis if not (skill.loc[(skill.kpi == k) & (skill.lead_s > 0), "rmse"].abs() > 0).any()]
    return ([k for k in kpis if k not in exact] if len(exact) < len(kpis) else kpis), exact


def _save(fig, path: Path) -> None:
    with atomic_file(path, "path") as tmp:
        fig.savefig(tmp, format="png", dpi=96, bbox_inches="tight")


def parameters_figure(params: pd.DataFrame):
    """One panel per estimated parameter: the mean and its p10-p90 band after each update; the truth
    of a twin experiment dashed."""
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(params["parameter"]))
    fig = Figure(figsize=(8, 2.6 * max(len(names), 1)))
    axes = np.atleast_1d(fig.subplots(max(len(names), 1), 1, squeeze=False)[:, 0])
    for ax, name in zip(axes, names):
        p = params[params.parameter == name]
        t = p.time_s / 60.0
        ax.fill_between(t, p.p10, p.p90, step="post", color="#d62728", alpha=0.2, label="p10-p90")
        ax.step(t, p["mean"], where="post", color="#d62728", label="estimate (mean)")
        truth = p.truth.dropna()
        if len(truth):
            ax.axhline(float(truth.iloc[-1]), color="#333333", ls="--", lw=1, label="truth")
        ax.set_ylabel(name)
        ax.legend(fontsize=8, loc="best")
    axes[-1].set_xlabel("time (min)")
    fig.tight_layout()
    return fig


def residual_table(res: pd.DataFrame) -> pd.DataFrame:
    """Per sensor: readings used, RMS of the reading minus the ensemble mean before and after the updates."""
    used = res[res.fate == "used"]
    g = used.assign(b=(used.observed - used.before) ** 2, a=(used.observed - used.after) ** 2).groupby("sensor")
    out = pd.DataFrame({"readings": g.size(), "rms_before": np.sqrt(g["b"].mean()), "rms_after": np.sqrt(g["a"].mean())})
    rejected = res[res.fate == "rejected"].groupby("sensor").size()
    return out.assign(rejected=rejected.reindex(out.index).fillna(0).astype(int)).reset_index()


def residuals_figure(res: pd.DataFrame):
    """Each sensor's reading minus the ensemble mean, before (grey) and after (red) every update (the
    sensors with the largest residuals first, at most 12)."""
    from matplotlib.figure import Figure

    table = residual_table(res).sort_values("rms_before", ascending=False)
    sensors = list(table.sensor[:MAX_SENSOR_PANELS])
    cols = 3 if len(sensors) > 4 else max(len(sensors), 1)
    rows = max(math.ceil(len(sensors) / cols), 1)
    fig = Figure(figsize=(3.2 * cols, 2.2 * rows + 0.4))
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False)).reshape(-1)
    for ax, sid in zip(axes, sensors):
        s = res[(res.sensor == sid) & (res.fate == "used")]
        t = s.time_s / 60.0
        ax.axhline(0.0, color="#333333", lw=0.6)
        ax.plot(t, s.observed - s.before, ".", color=COLOURS["open_loop"], ms=4, label="before")
        ax.plot(t, s.observed - s.after, ".", color=COLOURS["assimilated"], ms=4, label="after")
        bad = res[(res.sensor == sid) & (res.fate == "rejected")]
        if len(bad):
            ax.plot(bad.time_s / 60.0, bad.observed - bad.before, "x", color="#000000", ms=5, label="rejected")
        ax.set_title(str(sid), fontsize=9)
        ax.tick_params(labelsize=7)
    return _finish(fig, axes, len(sensors), "time (min); reading minus the ensemble mean")


def _finish(fig, axes, used: int, xlabel: str, legend: bool | None = None):
    """A grid of panels done: the panels past ``used`` hidden, the legend on the first, the x label."""
    for ax in axes[used:]:
        ax.set_visible(False)
    if used if legend is None else legend:
        axes[0].legend(fontsize=7)
    fig.supxlabel(xlabel, fontsize=9)
    fig.tight_layout()
    return fig


def kpis_forecast_exactly(skill: pd.DataFrame) -> list[str]:
    """The KPIs every member of every ensemble forecast exactly at every lead (a gate kept closed, a
    clearance time that stays 0): their p10-p90 band has no width and holds the truth whatever the
    filter does, so the coverage that judges the band leaves them out."""
    s = skill[skill.lead_s > 0]
    if not len(s):
        return []
    exact = (s["rmse"].abs() == 0) & (s["crps"].abs() == 0)
    return sorted(k for k, e in exact.groupby(s["kpi"]) if e.all())


def coverage_by_lead(skill: pd.DataFrame) -> pd.DataFrame:
    """The p10-p90 band's coverage by method and lead: ``coverage`` over the KPIs not forecast exactly
    (``kpis``), ``coverage_all`` over every KPI scored (``kpis_all``), and ``coverage_<kind>`` over
    those not forecast exactly of each kind of score (``kpi``, ``sensor``: the name's prefix)."""
    s = skill[skill.lead_s > 0]
    moving = s[~s.kpi.isin(kpis_forecast_exactly(skill))]
    g_all, g = s.groupby(["method", "lead_s"]), moving.groupby(["method", "lead_s"])
    out = pd.DataFrame({"coverage_all": g_all["coverage"].mean(), "kpis_all": g_all["kpi"].nunique()})
    out["coverage"] = g["coverage"].mean()
    out["kpis"] = g["kpi"].nunique()
    out["kpis"] = out["kpis"].fillna(0).astype(int)
    kinds = moving.kpi.str.split(".", n=1).str[0]
    for kind in sorted(set(kinds)):
        out[f"coverage_{kind}"] = moving[kinds == kind].groupby(["method", "lead_s"])["coverage"].mean()
    return out.reset_index()[["method", "lead_s", "coverage", "kpis", "coverage_all", "kpis_all"]
                             + [f"coverage_{k}" for k in sorted(set(kinds))]]


def some_leads(leads) -> list[float]:
    """The leads worth a line of print or a table row: every 5 minutes where the horizon holds two of
    them, else about four evenly spaced (a forecast scored every 10 s has 90 leads in 15 minutes)."""
    leads = sorted(set(float(v) for v in leads))
    fives = [v for v in leads if v % 300 == 0]
    if len(fives) >= 2:
        return fives
    if len(leads) > 4:
        return [leads[round(len(leads) * i / 4) - 1] for i in range(1, 5)]
    return leads


def coverage_summary(skill: pd.DataFrame) -> dict:
    """``summary.json``'s ``coverage``: by method and lead (s), over the KPIs not forecast exactly and
    over all."""
    out: dict = {}
    for r in coverage_by_lead(skill).to_dict("records"):
        method, lead = r.pop("method"), r.pop("lead_s")
        out.setdefault(method, {})[f"{lead:g}"] = {k: (int(v) if k.startswith("kpis") else _share(v))
                                                    for k, v in r.items()}
    return out


def _share(v) -> float | None:
    return None if pd.isna(v) else round(float(v), 6)


def skill_by_lead(skill: pd.DataFrame) -> pd.DataFrame:
    """RMSE of the ensemble mean, mean CRPS and p10-p90 coverage by KPI, method and lead."""
    g = skill.groupby(["kpi", "method", "lead_s"])
    return pd.DataFrame({"rmse": g["rmse"].apply(lambda e: float(np.sqrt(np.mean(np.square(e))))),
                         "crps": g["crps"].mean(), "coverage": g["coverage"].mean(), "n": g.size()}).reset_index()


def skill_figure(skill: pd.DataFrame, kpis: list[str]):
    """The skill panel: RMSE by lead for each KPI (open loop against assimilated), and the p10-p90
    band's coverage over all of them by lead (the target band 70-90 % shaded)."""
    from matplotlib.figure import Figure

    table = skill_by_lead(skill[skill.lead_s > 0])
    panels = len(kpis) + 1
    cols = 3 if panels > 4 else panels
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(3.4 * cols, 2.5 * rows + 0.3))
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False)).reshape(-1)
    for ax, kpi in zip(axes, kpis):
        for method in ("open_loop", "assimilated"):
            t = table[(table.kpi == kpi) & (table.method == method)]
            ax.plot(t.lead_s / 60.0, t.rmse, "o-", ms=3, color=COLOURS[method], label=LABELS[method])
        ax.set_title(kpi.split(".", 1)[-1], fontsize=9)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=7)
    ax = axes[len(kpis)]
    cov = coverage_by_lead(skill)
    ax.axhspan(0.7, 0.9, color="#2ca02c", alpha=0.15, label="target")
    for method in ("open_loop", "assimilated"):
        c = cov[cov.method == method]
        ax.plot(c.lead_s / 60.0, c.coverage, "o-", ms=3, color=COLOURS[method], label=LABELS[method])
    ax.set_ylim(0, 1.02)
    left_out = len(kpis_forecast_exactly(skill))
    ax.set_title("p10-p90 coverage" + (f"\n({left_out} forecast exactly left out)" if left_out else " (all KPIs)"),
                 fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return _finish(fig, axes, panels, "lead (min); RMSE of the ensemble mean", legend=bool(kpis))


def write_assimilation_report(out: Path, summary: dict, headline: list[str]) -> Path:
    """``parameters.png``, ``residuals.png``, ``skill.png`` and ``report.html`` in ``out`` (a folder with
    the tables of an assimilation). ``headline``: the KPI columns of the skill panel, in order."""
    from twin.runs.report import _img, write_report_page
    from twin.view.fonts import use_cjk_fallback

    use_cjk_fallback()
    t = load_assimilation(out)
    out, params, res, skill = t.folder, t.parameters, t.residuals, t.skill
    kpis, exact = skill_kpis(skill, headline)
    parts = [f"<h1>{html.escape(str(summary.get('scenario', '')))}: assimilation</h1>",
             f"<p class=meta>{html.escape(str(summary.get('method')))}, {summary.get('members')} members, "
             f"{summary.get('updates')} updates ({summary.get('rejected')} readings rejected as outliers, "
             f"{summary.get('missing')} missing), {summary.get('mean_update_wall_s', 0):.3g} s per update, "
             f"record {html.escape(str(summary.get('record', '')))}.</p>"]
    if len(params):
        fig = parameters_figure(params)
        _save(fig, out / "parameters.png")
        est = pd.DataFrame([{"parameter": k, **v} for k, v in (summary.get("parameters") or {}).items()])
        parts += ["<h2>Estimated parameters</h2>",
                  est.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}") if len(est) else "",
                  _img(fig, "parameters")]
    if len(res):
        fig = residuals_figure(res)
        _save(fig, out / "residuals.png")
        table = residual_table(res)
        parts += ["<h2>Residuals before and after the updates</h2>",
                  table.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}"), _img(fig, "residuals")]
    if len(skill):
        fig = skill_figure(skill, kpis)
        _save(fig, out / "skill.png")
        scored = skill[skill.kpi.isin(kpis) & (skill.lead_s > 0)]
        by_lead = skill_by_lead(scored[scored.lead_s.isin(some_leads(scored.lead_s))])
        wide = by_lead.pivot_table(index=["kpi", "lead_s"], columns="method", values=["rmse", "coverage"])
        wide.columns = [f"{a} {LABELS.get(b, b)}" for a, b in wide.columns]
        parts += ["<h2>Forecast skill</h2>", _img(fig, "skill")]
        if exact and kpis != exact:
            parts += ["<p class=meta>Forecast without error by both ensembles at every lead, so not drawn: "
                      + html.escape(", ".join(k.split(".", 1)[-1] for k in exact)) + ".</p>"]
        parts += [wide.reset_index().to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}")]
        exactly = kpis_forecast_exactly(skill)
        cov = coverage_by_lead(skill)
        cov = cov[cov.lead_s.isin(some_leads(cov.lead_s))].rename(columns={
            "kpis": "KPIs and sensors", "coverage_all": "coverage with those forecast exactly",
            "kpis_all": "all of them", "coverage_kpi": "KPIs' coverage", "coverage_sensor": "sensors' coverage"})
        parts += ["<h2>Coverage of the p10-p90 band</h2>",
                  "<p class=meta>The share of outcomes inside the band (target 70-90 %), over the KPIs and "
                  "sensors some member forecast with an error"
                  + ("; left out, as every member forecast them exactly at every lead: "
                     + html.escape(", ".join(k.split(".", 1)[-1] for k in exactly)) if exactly else "")
                  + ".</p>",
                  cov.to_html(index=False, border=0, float_format=lambda v: f"{v:.3g}")]
    return write_report_page(out, f"{summary.get('scenario', '')} — assimilation", "".join(parts))
