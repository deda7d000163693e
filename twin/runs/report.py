"""`report.html` of a comparison: one self-contained file a planner can read offline.

Headline sentences come from the model's KPI declarations (``headline`` picks the KPIs, ``unit``
formats them, ``better`` = "lower"/"higher" says whether a change is an improvement). Plots are
matplotlib figures embedded as base64 PNG; nothing is fetched from the network.
"""
from __future__ import annotations

import contextlib
import base64
import datetime as _dt
import html
import io
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from twin.core.files import atomic_file
from twin.core.formats import fmt_clock as clock
from twin.core import formats
from twin.core.formats import fmt_number
from twin.scenario.scenario import BASELINE
from twin.runs.stats import LEVEL, Interval, band

COLORS = ["#4d4d4d", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
          "#bcbd22"]
MAX_SERIES = 8  # variants drawn in time-series and maps; the tables always hold all of them


# --------------------------------------------------------------------------------------------
# Words and numbers
# --------------------------------------------------------------------------------------------
# {feature id: name} of the report being written (the runs' summary.json "names"): keyed KPIs read
# by name, not by OSM id. Set by write_report for the length of one report.
_NAMES: dict[str, str] = {}


def feature_name(key: str) -> str:
    return _NAMES.get(key, key)


def kpi_label(name: str) -> str:
    """``exited_by_gate.N1`` → "exited by gate North 1": the shared label, with the feature's name
    where the runs name it."""
    base, _, key = name.partition(".")
    return formats.kpi_label(f"{base}.{feature_name(key)}" if key else base)


def _scale(unit: str, ref: float) -> tuple[float, str]:
    if unit == "s" and abs(ref) >= 120:
        return (3600.0, "h") if abs(ref) >= 3 * 3600 else (60.0, "min")
    if unit in ("-", "", None):
        return 1.0, ""
    unit = {"ppm2": "persons/m²", "m2": "m²", "m3": "m³", "mps": "m/s", "m3s": "m³/s"}.get(unit, unit)
    return 1.0, unit.replace("m2", "m²").replace("m3", "m³")


def _num(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return fmt_number(float(v)).replace("-", "−")


def fmt_qty(v: float, unit: str, ref: float | None = None, sign: bool = False) -> str:
    f, label = _scale(unit, v if ref is None else ref)
    s = _num(v / f) if math.isfinite(v) else "n/a"
    if sign and math.isfinite(v) and v > 0:
        s = "+" + s
    return f"{s} {label}".strip() if s != "n/a" else s


def fmt_range(lo: float, hi: float, unit: str, ref: float) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "n/a"
    f, label = _scale(unit, ref)
    return f"{_num(lo / f)} to {_num(hi / f)} {label}".strip()


def _kpi_specs(plan) -> dict:
    return _model_kpis(plan)[0]


def _model_kpis(plan) -> tuple[dict, str | None]:
    """The model's KPI declarations (which are headlines, which way is better), and why they are
    missing if the model cannot be imported: the report is still written, and says what it lacks."""
    try:
        return {k.name: k for k in plan.scenario.model_class().kpis}, None
    except Exception as e:  # noqa: BLE001 - reported in the report (write_report) and as a warning
        return {}, f"{type(e).__name__}: {e}"


def _better(specs: dict, kpi: str) -> str | None:
    spec = specs.get(kpi.split(".")[0])
    return getattr(spec, "better", None) if spec is not None else None


def _row_interval(row, prefix: str) -> Interval:
    if prefix == "delta":
        mean, lo, hi = row["delta_vs_baseline"], row["delta_ci_low"], row["delta_ci_high"]
    else:
        mean, lo, hi = row["mean"], row["ci_low"], row["ci_high"]
    sd = 0.0 if (math.isfinite(lo) and lo == hi) else (math.nan if not math.isfinite(lo) else 1.0)
    return Interval(float(mean), float(lo), float(hi), int(row["n"]), sd)


def verdict(d: Interval, better: str | None) -> str:
    """"better" / "worse" / "unclear" / "same" / "unknown" for a delta interval."""
    if d.n < 2 or not math.isfinite(d.low):
        return "unknown"
    if d.degenerate and d.mean == 0:
        return "same"
    if not d.excludes_zero():
        return "unclear"
    if better is None:
        return "changed"
    lower = d.mean < 0
    return "better" if (lower == (better == "lower")) else "worse"


def clause(kpi: str, unit: str, d: Interval, base_mean: float, better: str | None) -> str:
    label = kpi_label(kpi)
    ref = max(abs(d.mean), abs(d.low) if math.isfinite(d.low) else 0, abs(d.high) if math.isfinite(d.high) else 0)
    pct = f", {d.mean / base_mean:+.0%} on the baseline".replace("-", "−") if base_mean and math.isfinite(base_mean) and d.mean else ""
    if d.n < 2:
        return (f"changes {label} by {fmt_qty(d.mean, unit, ref, sign=True)} "
                f"(a single replication: no confidence interval)")
    if d.degenerate:
        if d.mean == 0:
            return f"leaves {label} unchanged (identical in every replication)"
        verb = "cuts" if d.mean < 0 else "raises"
        return f"{verb} {label} by {fmt_qty(abs(d.mean), unit, ref)} in every one of {d.n} replications{pct}"
    ci = f"{int(LEVEL * 100)}% CI {fmt_range(d.low, d.high, unit, ref)}"
    if not d.excludes_zero():
        return f"makes no clear difference to {label} ({fmt_qty(d.mean, unit, ref, sign=True)}, {ci})"
    verb = "cuts" if d.mean < 0 else "raises"
    lo, hi = sorted((abs(d.low), abs(d.high)))
    ci = f"{int(LEVEL * 100)}% CI {fmt_range(lo, hi, unit, ref)}"
    v = verdict(d, better)
    judged = {"better": " — an improvement", "worse": " — worse"}.get(v, "")
    return f"{verb} {label} by {fmt_qty(abs(d.mean), unit, ref)} ({ci}{pct}){judged}"


def headline_kpis(plan, table: pd.DataFrame) -> list[str]:
    specs = _kpi_specs(plan)
    present = list(dict.fromkeys(table["kpi"]))
    chosen = [k for k in present if k in specs and specs[k].headline]
    return chosen or [k for k in present if "." not in k][:2]


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def headlines(plan, table: pd.DataFrame, limit: int = 12) -> list[str]:
    """One sentence per intervention (and per sweep point, up to ``limit``) on the headline KPIs."""
    if table.empty:
        return []
    specs = _kpi_specs(plan)
    kpis = headline_kpis(plan, table)
    base = table[table["variant"] == BASELINE].set_index("kpi")
    out = []
    for v in plan.variants:
        if v.name == BASELINE:
            continue
        rows = table[(table["variant"] == v.name) & table["kpi"].isin(kpis)].set_index("kpi")
        parts, unclear, same = [], [], []
        for k in kpis:
            if k not in rows.index:
                continue
            r = rows.loc[k]
            d = _row_interval(r, "delta")
            if d.n >= 2 and d.degenerate and d.mean == 0:
                same.append(kpi_label(k))
            elif d.n >= 2 and math.isfinite(d.low) and not d.excludes_zero():
                unclear.append(kpi_label(k))
            else:
                parts.append(clause(k, r["unit"], d, float(base.loc[k, "mean"]) if k in base.index else math.nan,
                                    _better(specs, k)))
        if unclear:
            parts.append(f"makes no clear difference to {_join(unclear)} (the 95% intervals include zero)")
        if same:
            parts.append(f"leaves {_join(same)} unchanged (identical in every replication)")
        if parts:
            who = f"“{v.name}”" if v.kind == "intervention" else f"The sweep point {v.name}"
            text = who + " " + "; ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
            out.append(text + " compared with the baseline.")
        if len(out) >= limit:
            break
    return out


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def write_report_page(out, title: str, body: str):
    """``out/report.html``: one self-contained page (styles and pictures inline), written atomically."""
    page = (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{body}</body></html>")
    path = Path(out) / "report.html"
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def _short(name: str, n: int = 38) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def kpi_figure(runs: pd.DataFrame, table: pd.DataFrame, kpi: str, unit: str, variants: list[str]):
    """Left: every replication and the mean with its CI per variant. Right: paired Δ vs baseline."""
    from matplotlib.figure import Figure

    rows = table[table["kpi"] == kpi].set_index("variant")
    ref = float(np.nanmax(np.abs(runs[kpi].to_numpy(dtype=float)))) if len(runs) else 1.0
    f, label = _scale(unit, ref)
    ulabel = f" ({label})" if label else ""
    h = 0.8 + 0.42 * len(variants)
    fig = Figure(figsize=(11, h))
    ax1, ax2 = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(variants))[::-1]
    rng = np.random.default_rng(0)
    for i, v in enumerate(variants):
        vals = runs.loc[runs["variant"] == v, kpi].to_numpy(dtype=float) / f
        ax1.scatter(vals, y[i] + rng.uniform(-0.12, 0.12, len(vals)), s=14, color="#9a9a9a", zorder=2,
                    label="one replication" if i == 0 else None)
        r = rows.loc[v]
        c = COLORS[0] if v == BASELINE else COLORS[1]
        ax1.plot([r["mean"] / f], [y[i]], "D", color=c, zorder=3, label="mean" if i == 0 else None)
        if math.isfinite(r["ci_low"]):
            ax1.plot([r["ci_low"] / f, r["ci_high"] / f], [y[i], y[i]], color=c, lw=3, alpha=0.7, zorder=3)
        if v != BASELINE and math.isfinite(r["delta_vs_baseline"]):
            ax2.plot([r["delta_vs_baseline"] / f], [y[i]], "D", color=COLORS[1], zorder=3)
            if math.isfinite(r["delta_ci_low"]):
                ax2.plot([r["delta_ci_low"] / f, r["delta_ci_high"] / f], [y[i], y[i]], color=COLORS[1], lw=3,
                         alpha=0.7)
    ax2.axvline(0, color="#444", lw=1, ls="--")
    ax1.set_yticks(y, [_short(v) for v in variants])
    ax1.set_xlabel(f"{kpi_label(kpi)}{ulabel}")
    ax2.set_xlabel(f"difference from baseline{ulabel}")
    ax1.set_title(f"{kpi_label(kpi)}: replications, mean and {int(LEVEL * 100)}% CI", fontsize=10, loc="left")
    ax2.set_title("paired difference vs baseline, 95% CI", fontsize=10, loc="left")
    for ax in (ax1, ax2):
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(-0.6, len(variants) - 0.4)
    ax1.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def dict_kpi_figure(table: pd.DataFrame, kpi: str, unit: str, variants: list[str]):
    from matplotlib.figure import Figure

    sub = table[table["kpi"].str.startswith(kpi + ".")]
    keys = list(dict.fromkeys(k.split(".", 1)[1] for k in sub["kpi"]))
    if not keys:
        return None
    fig = Figure(figsize=(11, 3.2))
    ax = fig.subplots()
    w = 0.8 / len(variants)
    x = np.arange(len(keys))
    for i, v in enumerate(variants):
        r = sub[sub["variant"] == v].set_index("kpi").reindex([f"{kpi}.{k}" for k in keys])
        m = r["mean"].to_numpy(dtype=float)
        err = np.vstack([m - r["ci_low"].to_numpy(dtype=float), r["ci_high"].to_numpy(dtype=float) - m])
        err = np.where(np.isfinite(err), err, 0)
        ax.bar(x + (i - (len(variants) - 1) / 2) * w, m, w, yerr=err, capsize=2, label=_short(v, 30),
               color=COLORS[i % len(COLORS)])
    ax.set_xticks(x, [_short(feature_name(k), 18) for k in keys], rotation=30 if len(keys) > 6 else 0,
                  ha="right" if len(keys) > 6 else "center", fontsize=8)
    ax.set_ylabel(f"{kpi_label(kpi)} ({_scale(unit, 1)[1] or 'count'})")
    ax.set_title(f"{kpi_label(kpi)} by key: mean and {int(LEVEL * 100)}% CI", fontsize=10, loc="left")
    ax.legend(fontsize=8, frameon=False, ncol=min(4, len(variants)))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def timeseries_figure(series: dict[str, list[pd.DataFrame]], columns: list[str], units: dict):
    from matplotlib.figure import Figure

    if not columns:
        return None
    ncol = 2 if len(columns) > 1 else 1
    nrow = math.ceil(len(columns) / ncol)
    fig = Figure(figsize=(11, 3.0 * nrow))
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    tmax = max((f["time_s"].max() for fr in series.values() for f in fr), default=0)
    tf, tl = (60.0, "min") if tmax > 300 else (1.0, "s")
    for ax, col in zip(axes, columns):
        unit = units.get(col, "")
        ref = max((float(np.nanmax(np.abs(f[col].to_numpy(dtype=float)))) for fr in series.values() for f in fr
                   if col in f.columns and len(f)), default=1.0)
        f, label = _scale(unit, ref)
        for i, (v, frames) in enumerate(series.items()):
            b = band(frames, col)
            if b.empty:
                continue
            c = COLORS[i % len(COLORS)]
            t = b["time_s"].to_numpy(dtype=float) / tf
            ax.plot(t, b["mean"] / f, color=c, lw=1.6, label=_short(v, 30))
            if np.isfinite(b["low"]).any():
                ax.fill_between(t, b["low"] / f, b["high"] / f, color=c, alpha=0.2, lw=0)
        ax.set_title(kpi_label(col) + (f" ({label})" if label else ""), fontsize=10, loc="left")
        ax.set_xlabel(f"time ({tl})")
        ax.grid(alpha=0.3)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _read_raster(path: Path):
    """The raster as one plan map: a multi-band raster (one band per floor level) shows the
    highest value of its bands at each cell."""
    import rasterio

    with rasterio.open(path) as r:
        v = r.read().astype(float)
        if len(v) > 1:
            with np.errstate(all="ignore"):
                v = np.where(np.isnan(v).all(axis=0), np.nan, np.nanmax(np.where(np.isnan(v), -np.inf, v), axis=0))[None]
        return v[0], r.bounds


def underlay_layers() -> list[tuple[str, dict]]:
    """(layer, matplotlib style) of the outlines under a map, bottom first: the areas the models'
    views draw (a station's floor, a river), the buildings, then the blocks they draw (walls)."""
    from twin.declarations import layer_views

    views = layer_views()
    areas = [(n, dict(facecolor=v.colours[-1], edgecolor="#b9b39f", lw=0.5))
             for n, v in views.items() if v.drawing == "area" and not v.state_column]
    blocks = [(n, dict(facecolor=v.colours[-1], edgecolor="none"))
              for n, v in views.items() if v.drawing == "extruded" and not v.state_column]
    return [*areas, ("buildings", dict(facecolor="#d0d0d0", edgecolor="#9a9a9a", lw=0.4)), *blocks]


def map_figure(name: str, means: dict[str, np.ndarray], bounds, city, unit: str):
    """Baseline, each variant and variant − baseline, side by side, over the city's outlines."""
    from matplotlib.figure import Figure

    variants = [v for v in means if v != BASELINE][:4]
    ncols = 3 if variants else 1
    rows_v = [[v] for v in variants] or [[]]
    extent = (bounds.left, bounds.right, bounds.bottom, bounds.top)
    aspect = (bounds.top - bounds.bottom) / max(1e-9, bounds.right - bounds.left)
    panel_w = 11 / ncols
    fig = Figure(figsize=(11, min(40, len(rows_v) * (panel_w * 0.8 * aspect + 0.5))))
    axes = np.atleast_2d(fig.subplots(len(rows_v), ncols, squeeze=False))
    allv = np.concatenate([m[np.isfinite(m)].ravel() for m in means.values()]) if means else np.array([0.0])
    vmax = float(np.nanmax(allv)) if allv.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    diffs = [np.abs(means[v] - means[BASELINE]) for v in variants]
    # a raster that is empty (no data) in every run has no difference to scale by: the scale is then 1
    dmax = max((float(d[np.isfinite(d)].max()) for d in diffs if np.isfinite(d).any()), default=0.0) or 1.0

    def underlay(ax):
        for layer, kw in underlay_layers():
            try:
                gdf = city.layer(layer) if city is not None and city.has(layer) else None
            except Exception:  # noqa: BLE001 - an outline is decoration; never fail the report on it
                gdf = None
            if gdf is not None and len(gdf):
                gdf.plot(ax=ax, zorder=1, **kw)

    def show(ax, values, title, diff=False):
        underlay(ax)
        if diff:
            v = np.where(np.abs(values) > 0, values, np.nan)
            im = ax.imshow(v, extent=extent, cmap="RdBu_r", vmin=-dmax, vmax=dmax, zorder=2, interpolation="nearest")
        else:
            v = np.where(values > 0, values, np.nan)
            im = ax.imshow(v, extent=extent, cmap="magma_r", vmin=0, vmax=vmax, zorder=2, interpolation="nearest",
                           alpha=0.9)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.set_aspect("equal")
        cb = fig.colorbar(im, ax=ax, shrink=0.85, pad=0.02, fraction=0.04)
        cb.ax.tick_params(labelsize=7)
        if unit:
            cb.set_label(_scale(unit, 1)[1] or unit, fontsize=7)

    for r, vs in enumerate(rows_v):
        show(axes[r, 0], means[BASELINE], f"{name}: baseline (mean)")
        for v in vs:
            show(axes[r, 1], means[v], f"{_short(v, 32)} (mean)")
            show(axes[r, 2], means[v] - means[BASELINE], f"{_short(v, 26)} − baseline", diff=True)
    fig.tight_layout()
    return fig


def sweep_figure(runs: pd.DataFrame, table: pd.DataFrame, plan, kpis: list[str], units: dict):
    from matplotlib.figure import Figure

    sweep = [v for v in plan.variants if v.kind == "sweep"]
    params = list(dict.fromkeys(k for v in sweep for k in v.point
                                if all(isinstance(x.point.get(k), (int, float)) for x in sweep)))
    if not sweep or not params or not kpis:
        return None
    fig = Figure(figsize=(11, 2.8 * len(kpis)))
    axes = np.atleast_2d(fig.subplots(len(kpis), len(params), squeeze=False))
    for i, k in enumerate(kpis):
        rows = table[table["kpi"] == k].set_index("variant")
        unit = units.get(k.split(".")[0], "")
        ref = float(np.nanmax(np.abs(rows["mean"].to_numpy(dtype=float)))) if len(rows) else 1
        f, label = _scale(unit, ref)
        for j, p in enumerate(params):
            ax = axes[i, j]
            xs = np.array([v.point[p] for v in sweep], dtype=float)
            m = np.array([rows.loc[v.name, "mean"] for v in sweep], dtype=float) / f
            lo = np.array([rows.loc[v.name, "ci_low"] for v in sweep], dtype=float) / f
            hi = np.array([rows.loc[v.name, "ci_high"] for v in sweep], dtype=float) / f
            err = np.where(np.isfinite([m - lo, hi - m]), [m - lo, hi - m], 0)
            ax.errorbar(xs, m, yerr=err, fmt="o", color=COLORS[1], ms=4, capsize=2)
            if BASELINE in rows.index:
                ax.axhline(rows.loc[BASELINE, "mean"] / f, color=COLORS[0], ls="--", lw=1, label="baseline")
            ax.set_xlabel(p)
            ax.set_ylabel(kpi_label(k) + (f" ({label})" if label else ""), fontsize=8)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px auto;
     max-width:1150px;color:#222;line-height:1.45;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px} h2{border-bottom:2px solid #ddd;padding-bottom:3px;margin-top:32px}
.meta{color:#555;font-size:.92em} .headlines li{margin:6px 0;font-size:1.05em}
table{border-collapse:collapse;font-size:.9em;margin:8px 0} th,td{padding:4px 9px;border-bottom:1px solid #e5e5e5;
      text-align:right;white-space:nowrap} th{background:#f5f5f5;text-align:center}
td.l,th.l{text-align:left;white-space:normal} tr.first td{border-top:2px solid #ccc}
td.better{background:#e3f4e1} td.worse{background:#fbe3e1} td.unclear,td.same{color:#666} td.changed{background:#e8effa}
.note{color:#555;font-size:.9em} .warn{background:#fff3d6;border-left:4px solid #e8112d;padding:6px 10px} img{max-width:100%;margin:6px 0} details{margin:8px 0}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border-radius:3px;font-size:.85em}
"""


def _kpi_rows_html(table: pd.DataFrame, kpis: list[str], specs: dict, variants: list[str]) -> str:
    head = ("<tr><th class=l>KPI</th><th class=l>variant</th><th>mean</th><th>95% CI</th><th>n</th>"
            "<th>Δ vs baseline</th><th>95% CI of Δ</th></tr>")
    body = []
    for k in kpis:
        rows = table[table["kpi"] == k].set_index("variant")
        unit = rows["unit"].iloc[0] if len(rows) else ""
        ref = float(np.nanmax(np.abs(rows["mean"].to_numpy(dtype=float)))) if len(rows) else 1.0
        better = _better(specs, k)
        for i, v in enumerate([v for v in variants if v in rows.index]):
            r = rows.loc[v]
            ci = _row_interval(r, "mean")
            d = _row_interval(r, "delta")
            cls = "" if v == BASELINE else verdict(d, better)
            kcell = (f'<td class=l rowspan="{len(rows)}"><b>{html.escape(kpi_label(k))}</b><br>'
                     f'<span class=note>{html.escape(k)}</span></td>') if i == 0 else ""
            ci_txt = "<span class=note>no variation</span>" if ci.degenerate else fmt_range(ci.low, ci.high, unit, ref)
            if v == BASELINE:
                dtxt, dci = "—", "—"
            else:
                dref = max(abs(x) for x in (d.mean, d.low, d.high) if math.isfinite(x)) if math.isfinite(d.mean) else 1
                dtxt = fmt_qty(d.mean, unit, dref, sign=True)
                dci = ("<span class=note>same in every rep.</span>" if d.degenerate
                       else fmt_range(d.low, d.high, unit, dref))
            body.append(f'<tr class="{"first" if i == 0 else ""}">{kcell}<td class=l>{html.escape(v)}</td>'
                        f"<td>{fmt_qty(ci.mean, unit, ref)}</td><td>{ci_txt}</td><td>{ci.n}</td>"
                        f'<td class="{cls}">{dtxt}</td><td class="{cls}">{dci}</td></tr>')
    return f"<table>{head}{''.join(body)}</table>"


def write_report(plan, out: Path, runs: pd.DataFrame, table: pd.DataFrame, kpi_cols: list[str], units: dict) -> Path:
    from twin.view.fonts import use_cjk_fallback

    use_cjk_fallback()  # Chinese (Japanese, Korean) names in plot labels: no boxes, no glyph warnings
    with named_by_runs(out):
        return _write_report(plan, out, runs, table, kpi_cols, units)


@contextlib.contextmanager
def named_by_runs(out: Path):
    """Within it, keyed KPIs read by the feature names the runs under ``out`` carry."""
    _NAMES.clear()
    _NAMES.update(_run_names(out))
    try:
        yield
    finally:
        _NAMES.clear()


def _run_names(out: Path) -> dict[str, str]:
    """The feature names the runs' summaries carry (``names``), merged."""
    import json

    names: dict[str, str] = {}
    for path in sorted(Path(out).glob("runs/*/rep-*/summary.json"))[:200]:
        try:
            names.update(json.loads(path.read_text(encoding="utf-8")).get("names", {}) or {})
        except (OSError, ValueError, AttributeError):
            continue
    return {str(k): str(v) for k, v in names.items()}


def _run_city_check(out: Path) -> dict:
    """The inputs the runs' model estimated or defaulted (summary.json ``city_check``; the same city and
    model for every run of a comparison, so the first summary that has it says it)."""
    import json

    for path in sorted(Path(out).glob("runs/*/rep-*/summary.json"))[:200]:
        try:
            entry = json.loads(path.read_text(encoding="utf-8")).get("city_check")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(entry, dict) and entry:
            return entry
    return {}


def city_check_html(entry: dict) -> str:
    """A note naming the inputs that are estimates or defaults, not the city's data (empty when none)."""
    labels = {"estimated": "Estimated", "defaulted": "Defaulted", "missing": "Missing"}
    rows = "".join(f"<li><b>{labels[k]}:</b> {html.escape(str(item))}</li>" for k in labels
                   for item in entry.get(k, []) or [])
    if not rows:
        return ""
    return ("<p class=warn><b>Inputs not from the city's data.</b> The model estimated or defaulted some of its "
            "inputs (<code>citytwin city check</code> lists them with what to add); the results rest on them.</p>"
            f"<ul class=city-check>{rows}</ul>")


def _write_report(plan, out: Path, runs: pd.DataFrame, table: pd.DataFrame, kpi_cols: list[str],
                  units: dict) -> Path:
    from twin import __version__

    sc = plan.scenario
    specs, specs_error = _model_kpis(plan)
    variants = [v.name for v in plan.variants]
    shown = _shown_variants(plan)
    scalar = [k for k in kpi_cols if "." not in k]
    dict_kpis = list(dict.fromkeys(k.split(".")[0] for k in kpi_cols if "." in k))
    heads = headline_kpis(plan, table)
    order = heads + [k for k in scalar if k not in heads]
    at = branch_time(plan)
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    if at is None:
        parts = [f"<h1>{html.escape(sc.name)}: comparison of {len(variants)} variants</h1>"]
        span = f"{fmt_qty(sc.duration_s, 's')} simulated per run"
    else:
        parts = [f"<h1>{html.escape(sc.name)}: two futures from t = {html.escape(clock(at))}</h1>"]
        span = (f"the baseline ran to t = {clock(at)} once; from that same state each future runs from "
                f"{clock(at)} to the end ({fmt_qty(sc.duration_s - at, 's')} at most)")
    parts.append(
        f"<p class=meta>Model <b>{html.escape(sc.model)}</b> on city <b>{html.escape(sc.city_path.name)}</b>, "
        f"{span}, <b>{plan.replications}</b> replication(s) per variant "
        f"({len(runs)} runs). Generated {when} by CityTwin {__version__}.</p>")
    parts.append(city_check_html(_run_city_check(out)))
    if specs_error is not None:
        message = (f"The declarations of model {sc.model!r} could not be read ({specs_error}), so this report "
                   "cannot tell better from worse: the findings are not judged, the tables are not coloured and "
                   "the KPIs have no glossary. Fix the model's import and run `citytwin compare` again.")
        warnings.warn(message, stacklevel=2)
        parts.append(f"<p class=warn><b>Incomplete report.</b> {html.escape(message)}</p>")
    if at is not None:
        parts.append(f"<p class=note>Everything before {html.escape(clock(at))} is shared by both futures; the KPIs "
                     "are those at the end of each future (counting the shared past, which is identical), so every "
                     "difference arises from T on. Charts over time start at T.</p>")
    hl = headlines(plan, table)
    parts.append("<h2>Key findings</h2>")
    if hl:
        parts.append("<ul class=headlines>" + "".join(f"<li>{html.escape(h)}</li>" for h in hl) + "</ul>")
    else:
        parts.append("<p>Only the baseline was run: add [[interventions]] or an [experiment] to compare.</p>")
    if plan.replications < 2:
        parts.append("<p class=note><b>One replication per variant:</b> no confidence intervals can be "
                     "estimated; rerun with <code>--replications 5</code> or more before drawing conclusions.</p>")
    parts.append('<p class="note legend">Colour of a difference: <span style="background:#e3f4e1">improvement</span>'
                 '<span style="background:#fbe3e1">worse</span><span style="background:#e8effa">changed '
                 '(no preferred direction declared)</span><span style="color:#666">grey: the 95% interval '
                 "includes zero — no clear difference</span></p>")
    parts.append("<h2>KPI table</h2>")
    parts.append(_kpi_rows_html(table, heads, specs, variants))
    rest = [k for k in order if k not in heads]
    if rest:
        parts.append(f"<details><summary><b>More KPIs</b> ({len(rest)})</summary>"
                     f"{_kpi_rows_html(table, rest, specs, variants)}</details>")
    for dk in dict_kpis:
        keys = [k for k in kpi_cols if k.startswith(dk + ".")]
        parts.append(f"<details><summary><b>{html.escape(kpi_label(dk))}</b> by key ({len(keys)} rows per variant)"
                     f"</summary>{_kpi_rows_html(table, keys, specs, variants)}</details>")
    parts.append("<h2>KPIs by variant</h2><p class=note>Grey dots: single replications. Diamond and bar: mean "
                 "and its 95% confidence interval. Right: the paired difference from the baseline (same seeds); "
                 "a bar that crosses the dashed zero line means no clear difference.</p>")
    plot_variants = variants if len(variants) <= 30 else shown
    for k in heads:
        parts.append(_img(kpi_figure(runs, table, k, units.get(k, ""), plot_variants), k))
    if rest:
        parts.append(f"<details><summary><b>Plots of the other KPIs</b> ({len(rest)})</summary>")
        parts += [_img(kpi_figure(runs, table, k, units.get(k, ""), plot_variants), k) for k in rest]
        parts.append("</details>")
    for dk in dict_kpis:
        fig = dict_kpi_figure(table, dk, units.get(dk, ""), shown)
        if fig is not None:
            parts.append(_img(fig, dk))
    sf = sweep_figure(runs, table, plan, heads, units)
    if sf is not None:
        parts.append("<h2>Parameter sweep</h2><p class=note>Mean and 95% CI of each sweep point against "
                     "each swept parameter; dashed: the baseline.</p>" + _img(sf, "sweep"))
    # Time series
    series, columns = _load_series(out, plan, shown, since_s=at)
    if columns:
        wide = (" With only 2 replications the bands are very wide (t-factor 12.7): run more replications "
                "for a usable band." if plan.replications == 2 else "")
        parts.append("<h2>Over time</h2><p class=note>Mean across replications (line) and its 95% "
                     f"confidence band (shaded), per variant.{wide}</p>")
        fig = timeseries_figure(series, columns, units)
        parts.append(_img(fig, "time series"))
    # Maps
    maps = _load_maps(out, plan, shown)
    if maps:
        try:
            city = sc.load_city()
            crs = city.crs.to_string()
        except Exception:  # noqa: BLE001
            city, crs = None, "the city CRS"
        parts.append(f"<h2>Maps</h2><p class=note>Mean over replications of each variant's raster, and its "
                     f"difference from the baseline (red: higher than baseline, blue: lower), over the buildings "
                     f"and the areas the models draw. Coordinates in {html.escape(crs)}; the GeoTIFFs are in each run folder.</p>")
        for name, (means, bounds) in maps.items():
            unit = _raster_unit(out, plan, name)
            parts.append(f"<h3>{html.escape(kpi_label(name))}</h3>")
            parts.append(_img(map_figure(name, means, bounds, city, unit), name))
    if len(shown) < len(variants):
        parts.append(f"<p class=note>Plots of time series, maps and keyed KPIs show {len(shown)} of "
                     f"{len(variants)} variants (baseline and interventions first); the tables hold all.</p>")
    parts.append(_glossary(specs, kpi_cols))
    parts.append(_method(plan, runs))
    return write_report_page(out, f"{sc.name} — comparison", "".join(parts))


def _shown_variants(plan) -> list[str]:
    names = [v.name for v in plan.variants if v.kind != "sweep"]
    names += [v.name for v in plan.variants if v.kind == "sweep"]
    return names[:MAX_SERIES]


def _load_series(out: Path, plan, variants: list[str], since_s: float | None = None):
    series: dict[str, list[pd.DataFrame]] = {}
    columns: list[str] = []
    for spec in plan.runs:
        if spec.variant not in variants:
            continue
        p = out / spec.folder / "timeseries.parquet"
        if not p.is_file():
            p = p.with_suffix(".csv")
            if not p.is_file():
                continue
            df = pd.read_csv(p)
        else:
            df = pd.read_parquet(p)
        if since_s is not None:
            df = df[df["time_s"] >= since_s - 1e-9]
        num = [c for c in df.columns if c != "time_s" and pd.api.types.is_numeric_dtype(df[c])]
        for c in num:
            if c not in columns:
                columns.append(c)
        series.setdefault(spec.variant, []).append(df[["time_s", *num]])
    return {v: series[v] for v in variants if v in series}, columns


def _load_maps(out: Path, plan, variants: list[str]):
    names: list[str] = []
    for spec in plan.runs:
        if spec.variant == BASELINE:
            names = sorted(p.stem for p in (out / spec.folder).glob("*.tif"))
            break
    maps = {}
    for name in names:
        means, bounds = {}, None
        for v in variants:
            stack = []
            for spec in plan.runs:
                p = out / spec.folder / f"{name}.tif"
                if spec.variant == v and p.is_file():
                    values, bounds = _read_raster(p)
                    stack.append(values)
            if stack and all(s.shape == stack[0].shape for s in stack):
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
                    means[v] = np.nanmean(np.stack(stack), axis=0) if len(stack) > 1 else stack[0]
        if BASELINE in means:
            shape = means[BASELINE].shape
            maps[name] = ({v: m for v, m in means.items() if m.shape == shape}, bounds)
    return maps


def _raster_unit(out: Path, plan, name: str) -> str:
    import rasterio

    spec = plan.runs[0]
    try:
        with rasterio.open(out / spec.folder / f"{name}.tif") as r:
            return r.tags(1).get("unit", "")
    except Exception:  # noqa: BLE001
        return ""


def _glossary(specs: dict, kpi_cols: list[str]) -> str:
    names = list(dict.fromkeys(k.split(".")[0] for k in kpi_cols))
    rows = []
    for n in names:
        s = specs.get(n)
        if s is None:
            continue
        b = {"lower": "lower is better", "higher": "higher is better"}.get(getattr(s, "better", None), "—")
        rows.append(f"<tr><td class=l>{html.escape(n)}</td><td class=l>{html.escape(s.unit)}</td>"
                    f"<td class=l>{html.escape(s.doc)}</td><td class=l>{b}</td></tr>")
    if not rows:
        return ""
    return ("<h2>What the KPIs mean</h2><table><tr><th class=l>KPI</th><th class=l>unit</th>"
            "<th class=l>meaning</th><th class=l>direction</th></tr>" + "".join(rows) + "</table>")


def branch_time(plan) -> float | None:
    """The time a branch's futures start from (``twin.runs.branch.BranchPlan``); None for a comparison."""
    at = getattr(plan, "at_s", None)
    return float(at) if at is not None else None


def _branch_method(plan) -> str:
    at, seed, n = clock(plan.at_s), plan.seed, plan.replications
    return f"""<h2>Method</h2><ul class=note>
<li>The baseline ran once from 0 to {at} (seed {seed}); its complete state (agents, clocks, random
generators, the time series so far) is saved in <code>states/</code>. Both futures, the baseline continued
and the intervention, restore that same state and run to the end.</li>
<li>Replications with common random numbers from T on: replication 0 keeps the saved random generators
(the plain continuation: the baseline's replication 0 ends exactly like the uninterrupted run); replication
k ≥ 1 of <i>both</i> futures reseeds the restored model from ({seed}, k). What was drawn before T, or
when the model was built, is the same in every replication, so the spread is that of the futures only
({n} replication(s) per future).</li>
<li>Mean and 95% confidence interval per future: Student t-interval, mean ± t(0.975, n−1)·sd/√n.
Difference from the baseline: <b>paired t-interval</b> on the per-replication differences.</li>
<li>With one replication no interval is estimated (n/a); when all replications agree exactly the interval
collapses to the value and is marked “no variation” (a future with no random draws after T).</li>
<li>Files: <code>comparison.csv</code>, <code>runs.csv</code>, <code>branch.json</code>,
<code>runs/&lt;variant&gt;/rep-NNN/</code> (each future's outputs; its <code>bundle.json</code> names the
state it started from).</li></ul>"""


def _method(plan, runs: pd.DataFrame) -> str:
    if branch_time(plan) is not None:
        return _branch_method(plan)
    sc = plan.scenario
    n = plan.replications
    seeds = ", ".join(str(sc.seed + k) for k in range(min(n, 6))) + (", …" if n > 6 else "")
    sweep = ""
    if plan.method:
        sweep = (f"<li>Parameter sweep: method <b>{html.escape(plan.method)}</b> from the scenario's "
                 "[experiment] table; each point is a variant named by its parameter values, run on top of "
                 "the baseline parameters.</li>")
    return f"""<h2>Method</h2><ul class=note>
<li>Every variant runs {n} replication(s). Replication k uses seed {sc.seed} + k in <i>every</i> variant
(seeds {seeds}): common random numbers, so the same travellers, arrivals and random choices meet each
variant.</li>
<li>Mean and 95% confidence interval per variant: Student t-interval, mean ± t(0.975, n−1)·sd/√n.</li>
<li>Difference from the baseline: <b>paired t-interval</b> on the per-replication differences
d<sub>k</sub> = variant<sub>k</sub> − baseline<sub>k</sub>: mean(d) ± t(0.975, n−1)·sd(d)/√n.</li>
<li>With one replication no interval is estimated (shown as n/a). When all replications agree exactly,
the interval collapses to the value and is marked “no variation”.</li>
<li>Keyed KPIs (one value per feature) are compared key by key; a key missing from a run counts as 0.</li>
{sweep}
<li>Files: <code>comparison.csv</code> (this table), <code>runs.csv</code> / <code>runs.parquet</code>
(one row per run: variant, replication, seed, parameters, KPIs), <code>runs/&lt;variant&gt;/rep-NNN/</code>
(each run's summary, time series, rasters, and a <code>scenario.toml</code> that reproduces it with
<code>citytwin run</code>).</li></ul>"""
