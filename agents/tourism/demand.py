"""Who arrives when, in which groups, with which plan: drawn once, at construction, with numpy.

* Arrival times per entry point by inversion of the cumulative rate Λ(t) (piecewise linear for a
  piecewise-constant rate): Poisson arrivals are Λ⁻¹ of the partial sums of unit exponentials
  (Çinlar 1975, the time-change theorem), deterministic arrivals are Λ⁻¹(k + ½).
* Itineraries: up to ``max_visits + alternatives`` attractions drawn without replacement with
  probability proportional to popularity, by the Gumbel-top-k trick (Kool, van Hoof & Welling
  2019), then trimmed: an attraction closed during the whole time budget is skipped, and the plan
  stops at the first of the first ``max_visits`` kept attractions whose expected end (walk + entry
  + mean dwell, in plan order) is after the budget; the alternatives after them are kept as they
  are (the engine checks each against the clock when the group sets out).
"""
from __future__ import annotations

import numpy as np


def cumulative_rate(edges: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Λ at the edges (Λ[0] = 0)."""
    return np.concatenate(([0.0], np.cumsum(rates * np.diff(edges))))


def invert_cumulative(edges: np.ndarray, rates: np.ndarray, lam_edges: np.ndarray, y: np.ndarray) -> np.ndarray:
    """t with Λ(t) = y for 0 < y <= Λ(end). Segments with zero rate are skipped (Λ is flat there)."""
    j = np.searchsorted(lam_edges, y, side="left") - 1  # Λ[j] < y <= Λ[j+1], so rates[j] > 0
    j = np.clip(j, 0, len(rates) - 1)
    return edges[j] + (y - lam_edges[j]) / rates[j]


def arrival_times(edges, rates_groups, process: str, start_s: float, end_s: float, rng: np.random.Generator):
    """Group arrival times in [start_s, end_s] for one entry point (rates in groups per second)."""
    lam = cumulative_rate(edges, rates_groups)
    lam_start = np.interp(start_s, edges, lam)
    lam_end = np.interp(end_s, edges, lam)
    total = lam_end - lam_start
    if total <= 0:
        return np.empty(0)
    if process == "deterministic":
        y = lam_start + np.arange(int(np.floor(total + 0.5))) + 0.5
        y = y[y <= lam_end]
    else:
        parts = []
        acc = lam_start
        while True:  # unit-rate Poisson points on (lam_start, lam_end]
            n = int(total + 6 * np.sqrt(total) + 16)
            pts = acc + np.cumsum(rng.standard_exponential(n))
            parts.append(pts[pts <= lam_end])
            if pts[-1] > lam_end:
                break
            acc = pts[-1]
        y = np.concatenate(parts)
    t = invert_cumulative(edges, rates_groups, lam, y)
    return np.clip(t, start_s, end_s)


def draw_plans(rng, n_groups, popularity, max_visits, chunk=8192):
    """(groups, K) attraction indices by popularity without replacement (Gumbel-top-k), -1 padded."""
    ok = np.flatnonzero(popularity > 0)
    k = min(max_visits, len(ok))
    plan = np.full((n_groups, max(k, 1)), -1, np.int64)
    if k == 0 or n_groups == 0:
        return plan
    logw = np.log(popularity[ok])
    for s in range(0, n_groups, chunk):
        e = min(n_groups, s + chunk)
        keys = logw[None, :] + rng.gumbel(size=(e - s, len(ok)))
        top = np.argsort(-keys, axis=1, kind="stable")[:, :k]
        plan[s:e, :k] = ok[top]
    return plan


def trim_plans(plan, sizes, arrive, budget_end, start_place, T_walk, af_open, af_close, exp_entry_per_person,
               dwell_mean, attr_place, max_visits):
    """Drop attractions closed over the whole budget window; cut the plan where the expected time
    (walk from the previous stop + entry + mean dwell) passes the budget. Returns a new plan."""
    n, k = plan.shape
    out = np.full_like(plan, -1)
    t = arrive.copy()
    prev = start_place.copy()
    alive = np.ones(n, bool)
    col = np.zeros(n, np.int64)
    rows = np.arange(n)
    for j in range(k):
        a = plan[:, j]
        has = alive & (a >= 0)
        aa = np.where(has, a, 0)
        closed = (af_close[aa] <= arrive) | (af_open[aa] >= budget_end)
        go = has & ~closed
        t_arr = t + T_walk[prev, attr_place[aa]]
        t_end = np.maximum(t_arr, af_open[aa]) + sizes * exp_entry_per_person[aa] + dwell_mean[aa]
        main = col < max_visits
        fits = go & ((t_end <= budget_end) | ~main)
        alive &= ~(go & ~fits)
        out[rows[fits], col[fits]] = a[fits]
        t = np.where(fits & main, t_end, t)
        prev = np.where(fits & main, attr_place[aa], prev)
        col += fits
    return out
