"""Comparison statistics: means and paired differences with Student-t confidence intervals.

Method (stated in every report):

* Replication ``k`` of every variant uses the same seed, ``scenario seed + k`` (common random
  numbers). The difference of a variant from the baseline is therefore computed per replication,
  ``d_k = x_variant,k − x_baseline,k``, and summarised by the **paired t-interval**
  ``mean(d) ± t(0.975, n−1) · sd(d) / √n``. Pairing removes the run-to-run noise that both variants
  share, which is why it is much tighter than comparing two independent means.
* A variant's own mean gets the one-sample t-interval ``mean ± t(0.975, n−1) · sd / √n``.
* With ``n = 1`` no interval can be estimated: the bounds are NaN (blank in CSV, "n/a" in the
  report) — never a made-up zero-width interval.
* When every replication gives the same value (zero variance, e.g. a count fixed by the input),
  the interval collapses to the mean; the report says so instead of claiming certainty it
  measured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

LEVEL = 0.95
COLUMNS = ["variant", "kpi", "mean", "ci_low", "ci_high", "n", "delta_vs_baseline", "delta_ci_low", "delta_ci_high"]


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int
    sd: float

    @property
    def estimated(self) -> bool:
        """True when the interval was estimated from data (n ≥ 2)."""
        return self.n >= 2 and math.isfinite(self.low)

    @property
    def degenerate(self) -> bool:
        """n ≥ 2 but no variation at all: the interval is a point."""
        return self.n >= 2 and self.sd == 0.0

    def excludes_zero(self) -> bool:
        return self.estimated and (self.low > 0 or self.high < 0)


def t_interval(values, level: float = LEVEL) -> Interval:
    """Mean and Student-t confidence interval of ``values`` (NaNs dropped)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, math.nan)
    sd = float(x.std(ddof=1))
    # Round-off in a constant column (e.g. 0.1 + 0.2 summed differently) is not variation.
    if sd <= 1e-12 * max(1.0, abs(mean)):
        return Interval(mean, mean, mean, n, 0.0)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, sd)


def paired_interval(variant, baseline, level: float = LEVEL) -> Interval:
    """Paired t-interval of ``variant − baseline``; the two are aligned by position (replication)."""
    a = np.asarray(variant, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    return t_interval(a - b, level)


def compare_table(runs: pd.DataFrame, kpis: list[str], baseline: str, units: dict | None = None,
                  variants: list[str] | None = None, level: float = LEVEL) -> pd.DataFrame:
    """The comparison table (CONTRACT §4) from the tidy runs table.

    ``runs`` has one row per run with ``variant``, ``replication`` and one column per (flattened)
    KPI. Differences are paired on ``replication``; a replication missing from either side is left
    out of that pair (``n`` is then the number of the variant's own runs, and the delta interval
    uses only complete pairs).
    """
    units = units or {}
    variants = variants or list(dict.fromkeys(runs["variant"]))
    base = runs[runs["variant"] == baseline].set_index("replication")
    rows = []
    for v in variants:
        own = runs[runs["variant"] == v].set_index("replication")
        common = own.index.intersection(base.index).sort_values()
        for k in kpis:
            if k not in runs.columns:
                continue
            ci = t_interval(own[k].to_numpy(dtype=float), level)
            if v == baseline:
                d = Interval(0.0, 0.0, 0.0, ci.n, 0.0) if ci.n else t_interval([])
            else:
                d = paired_interval(own.loc[common, k].to_numpy(dtype=float),
                                    base.loc[common, k].to_numpy(dtype=float), level)
            rows.append({"variant": v, "kpi": k, "mean": ci.mean, "ci_low": ci.low, "ci_high": ci.high,
                         "n": ci.n, "delta_vs_baseline": d.mean, "delta_ci_low": d.low,
                         "delta_ci_high": d.high, "unit": _unit(units, k)})
    return pd.DataFrame(rows, columns=COLUMNS + ["unit"])


def _unit(units: dict, kpi: str) -> str:
    """A KPI's unit; a keyed KPI's column (``name.key``, ``model.name.key`` in a coupled run) takes its KPI's."""
    parts = kpi.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in units:
            return units[".".join(parts[:n])]
    return ""


def band(frames: list[pd.DataFrame], column: str, level: float = LEVEL) -> pd.DataFrame:
    """Mean ± t-interval across replications of one time-series column, on the union of times.

    A run that finished early keeps its last value (the model stopped because nothing more could
    happen), so every replication covers the whole time axis.
    """
    from scipy import stats

    series = [f.set_index("time_s")[column].astype(float) for f in frames if column in f.columns]
    if not series:
        return pd.DataFrame(columns=["time_s", "mean", "low", "high", "n"])
    times = sorted(set().union(*[s.index for s in series]))
    m = np.column_stack([s[~s.index.duplicated(keep="last")].reindex(times).ffill().bfill().to_numpy()
                         for s in series])
    n = m.shape[1]
    mean = m.mean(axis=1)
    if n >= 2:
        half = stats.t.ppf(0.5 + level / 2, n - 1) * m.std(axis=1, ddof=1) / math.sqrt(n)
    else:
        half = np.full_like(mean, np.nan)
    return pd.DataFrame({"time_s": times, "mean": mean, "low": mean - half, "high": mean + half, "n": n})


def together_table(runs: pd.DataFrame, kpis: list[str], baseline: str, alone: list[str], together: str,
                   level: float = LEVEL) -> pd.DataFrame:
    """Does acting together beat the sum of acting alone? For each KPI: the effect of ``together``
    (its difference from the baseline), the sum of the effects of the ``alone`` variants, and the
    interaction = together − sum, each a paired t-interval over the replications all of them share
    (common random numbers). An interaction of the KPI's ``better`` sign is a synergy."""
    by = {v: runs[runs["variant"] == v].set_index("replication") for v in [baseline, together, *alone]}
    common = by[baseline].index
    for v in by.values():
        common = common.intersection(v.index)
    common = common.sort_values()
    rows = []
    for k in kpis:
        if k not in runs.columns:
            continue
        base = by[baseline].loc[common, k].to_numpy(dtype=float)
        joint = by[together].loc[common, k].to_numpy(dtype=float) - base
        parts = sum((by[v].loc[common, k].to_numpy(dtype=float) - base for v in alone), np.zeros(len(common)))
        j, s, i = (t_interval(x, level) for x in (joint, parts, joint - parts))
        rows.append({"kpi": k, "together": j.mean, "together_ci_low": j.low, "together_ci_high": j.high,
                     "sum_alone": s.mean, "sum_alone_ci_low": s.low, "sum_alone_ci_high": s.high,
                     "interaction": i.mean, "interaction_ci_low": i.low, "interaction_ci_high": i.high, "n": i.n})
    return pd.DataFrame(rows)
