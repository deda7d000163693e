"""Measures computed from the engine's arrays with numpy (no per-tourist Python).

Every measure counts persons: a group of n counts n times (its wait is each member's wait).
Durations are taken over what has finished by the engine's clock: an entry wait once the group
reached a gate, a room search once it booked or gave up, a check-in once it got its key.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .layout import (
    AF_AREA_IN, AF_AREA_Q, AF_T_LAST, A_CAP_NOMINAL, CHECKED_IN, C_NEXT_ARR, C_NVISITS, C_N_DRAWN, D_INSIDE,
    D_PEAK_IN, D_PQP, D_QP, D_TURNED, F_ARRIVE, F_CHECKIN_END, F_CHECKIN_START, F_DESK_START,
    F_MARK, F_OVERNIGHT, F_SEARCH_END, G_FLAGS, G_HOTEL, G_SIZE, G_STATE, HD_FREE, HD_QP, HF_AREA_Q,
    HF_T_LAST, LEFT, N_STATES, OUT_DONE, V_ARRIVE, V_ATTR, V_ENTER, V_GROUP, V_JOIN, V_LEAVE,
    V_OUTCOME, V_RESERVED, V_START, World,
)

UNITS = {
    "tourists_total": "persons", "visits_completed": "person-visits", "mean_entry_wait_s": "s",
    "p95_entry_wait_s": "s", "mean_room_search_s": "s", "mean_checkin_s": "s",
    "queue_hours_total": "person-h", "peak_occupancy_ratio": "-", "turned_away": "person-visits",
    "room_search_failed": "persons", "tourists_in_city": "persons",
}


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-quantile of values each repeated weights times (inverse of the empirical CDF:
    the smallest value whose cumulative weight reaches q of the total). Weights must be positive.

    Only the tail that can hold the quantile is sorted: the k largest values, with k such that their
    weight exceeds (1 - q) of the total whatever the weights (k > (1 - q) total / smallest weight).
    Everything below the tail is no larger than its smallest value, so the cumulative weight at the
    tail's start is the rest's total. Called at every report row over every visit so far, this is
    10x faster than sorting them all, and gives the same value (ties are equal values)."""
    n = len(values)
    if n == 0:
        return float("nan")
    total = weights.sum()
    k = min(n, int(np.ceil((1.0 - q) * total / weights.min())) + 1)
    tail = np.argpartition(values, n - k)[n - k:] if k < n else np.arange(n)
    o = tail[np.argsort(values[tail])]
    cum = (total - weights[o].sum()) + np.cumsum(weights[o])
    i = np.searchsorted(cum, q * total, side="left")
    return float(values[o][min(i, k - 1)])


def arrived(w: World):
    """The groups that have arrived, in index order: a slice while none were handed over (the
    groups drawn at construction arrive in index order), else their indices."""
    n = int(w.ctr[C_NEXT_ARR])
    n_drawn = int(w.ctr[C_N_DRAWN])
    if len(w.gi) == n_drawn:
        return slice(0, n)
    return np.r_[np.arange(n), np.arange(n_drawn, len(w.gi))]


def entry_waits(w: World):
    """(wait_s, persons, attraction) of every visit that reached a gate: queue join -> gate."""
    n = int(w.ctr[C_NVISITS])
    vf, vi = w.vf[:n], w.vi[:n]
    ok = np.isfinite(vf[:, V_START])
    size = w.gi[vi[ok, V_GROUP], G_SIZE]
    return vf[ok, V_START] - vf[ok, V_JOIN], size.astype(float), vi[ok, V_ATTR]


def desk_waits(w: World):
    """(wait_s, persons, hotel) of every group that reached a front desk: queue join -> desk."""
    gi, gf = w.gi[arrived(w)], w.gf[arrived(w)]
    ok = np.isfinite(gf[:, F_MARK]) & np.isfinite(gf[:, F_DESK_START])
    return gf[ok, F_DESK_START] - gf[ok, F_MARK], gi[ok, G_SIZE].astype(float), gi[ok, G_HOTEL]


def visit_table(w: World) -> dict[str, np.ndarray]:
    """One row per arrival of a group at an attraction: group, persons, attraction, outcome
    (0 under way, 1 visited, 2 turned away), reserved (held a slot), and the times (s; NaN where
    not reached) of arrival, queue join, gate start, entry inside and leaving."""
    n = int(w.ctr[C_NVISITS])
    vi, vf = w.vi[:n], w.vf[:n]
    return {"group": vi[:, V_GROUP], "size": w.gi[vi[:, V_GROUP], G_SIZE], "attraction": vi[:, V_ATTR],
            "outcome": vi[:, V_OUTCOME], "reserved": vi[:, V_RESERVED], "arrive_s": vf[:, V_ARRIVE],
            "join_s": vf[:, V_JOIN], "start_s": vf[:, V_START], "enter_s": vf[:, V_ENTER], "leave_s": vf[:, V_LEAVE]}


def queue_integrals(w: World):
    """Person-seconds up to the clock: (entry queue per attraction, inside per attraction, desk
    queue per hotel). Read-only: the stored integrals are extended to ``now`` here."""
    now = w.now[0]
    dt_a = now - w.adf[:, AF_T_LAST]
    q = w.adf[:, AF_AREA_Q] + (w.ad[:, D_QP] + w.ad[:, D_PQP]) * dt_a
    inside = w.adf[:, AF_AREA_IN] + w.ad[:, D_INSIDE] * dt_a
    desk = w.hdf[:, HF_AREA_Q] + w.hd[:, HD_QP] * (now - w.hdf[:, HF_T_LAST])
    return q, inside, desk


def state_persons(w: World) -> np.ndarray:
    """Persons in each state (index = state code) among the groups that have arrived."""
    gi = w.gi[arrived(w)]
    return np.bincount(gi[:, G_STATE], weights=gi[:, G_SIZE], minlength=N_STATES).astype(np.int64)


# Sums of kpi_scan (persons-weighted where it says so)
S_PERSONS, S_VISITS_DONE, S_SEARCH_S, S_SEARCH_P, S_CHECKIN_S, S_CHECKIN_P, S_FAILED, S_DONE, \
    S_WAIT_S, S_WAIT_P = range(10)
N_SUMS = 10


@njit(cache=True, nogil=True)
def kpi_scan(gi, gf, vi, vf, n_next, n_drawn, n_visits, waits, wsize):
    """One pass over the arrived groups and the visit rows: the sums of ``kpis`` (S_* slots), and
    the entry waits and their persons of the visits that reached a gate, written to the front of
    ``waits`` and ``wsize`` (their count is returned). Called at every report row, so it allocates
    nothing but the small sums: the masks and gathers of a numpy version cost 5x more."""
    sums = np.zeros(N_SUMS)
    n_groups = gi.shape[0]
    for k in range(n_next + n_groups - n_drawn):
        g = k if k < n_next else n_drawn + k - n_next  # drawn groups arrive in index order; then the handed over
        size = float(gi[g, G_SIZE])
        sums[S_PERSONS] += size
        if (gi[g, G_FLAGS] & F_OVERNIGHT) != 0 and np.isfinite(gf[g, F_SEARCH_END]):
            sums[S_SEARCH_S] += size * (gf[g, F_SEARCH_END] - gf[g, F_ARRIVE])
            sums[S_SEARCH_P] += size
            if gi[g, G_HOTEL] < 0:
                sums[S_FAILED] += size
        if np.isfinite(gf[g, F_CHECKIN_END]):
            sums[S_CHECKIN_S] += size * (gf[g, F_CHECKIN_END] - gf[g, F_CHECKIN_START])
            sums[S_CHECKIN_P] += size
        st = gi[g, G_STATE]
        if st == CHECKED_IN or st == LEFT:
            sums[S_DONE] += size
    m = 0
    for v in range(n_visits):
        size = float(gi[vi[v, V_GROUP], G_SIZE])
        if vi[v, V_OUTCOME] == OUT_DONE:
            sums[S_VISITS_DONE] += size
        if np.isfinite(vf[v, V_START]):
            waits[m] = vf[v, V_START] - vf[v, V_JOIN]
            wsize[m] = size
            sums[S_WAIT_S] += size * waits[m]
            sums[S_WAIT_P] += size
            m += 1
    return sums, m


def mean(sums, total: int, persons: int) -> float:
    return float(sums[total] / sums[persons]) if sums[persons] > 0 else float("nan")


def kpis(w: World, buf: dict | None = None) -> dict[str, float]:
    """The engine's KPIs now. ``buf`` (a dict kept by the caller) holds the wait buffers between calls."""
    n = int(w.ctr[C_NVISITS])
    buf = {} if buf is None else buf
    if len(buf.get("waits", ())) != len(w.vi):  # as long as the visit table
        buf["waits"], buf["wsize"] = np.empty(len(w.vi)), np.empty(len(w.vi))
    s, m = kpi_scan(w.gi, w.gf, w.vi, w.vf, int(w.ctr[C_NEXT_ARR]), int(w.ctr[C_N_DRAWN]), n, buf["waits"], buf["wsize"])
    waits, wsize = buf["waits"][:m], buf["wsize"][:m]
    q, _, desk = queue_integrals(w)
    cap = w.ai[:, A_CAP_NOMINAL].astype(float)
    return {
        "tourists_total": float(s[S_PERSONS]),
        "visits_completed": float(s[S_VISITS_DONE]),
        "mean_entry_wait_s": mean(s, S_WAIT_S, S_WAIT_P),
        "p95_entry_wait_s": weighted_quantile(waits, wsize, 0.95),
        "mean_room_search_s": mean(s, S_SEARCH_S, S_SEARCH_P),
        "mean_checkin_s": mean(s, S_CHECKIN_S, S_CHECKIN_P),
        "queue_hours_total": float((q.sum() + desk.sum()) / 3600.0),
        "peak_occupancy_ratio": float((w.ad[:, D_PEAK_IN] / cap).max()) if len(cap) else 0.0,
        "turned_away": float(w.ad[:, D_TURNED].sum()),
        "room_search_failed": float(s[S_FAILED]),
        "tourists_in_city": float(s[S_PERSONS] - s[S_DONE]),
    }


def attraction_values(w: World, ids: list[str]) -> dict[str, dict[str, float]]:
    """Per attraction now: queue length (persons), occupancy (persons inside), occupancy ratio
    (inside / nominal capacity), and the cumulative person-seconds of queue and inside (their
    difference over an interval / the interval = the interval's mean)."""
    q, inside, _ = queue_integrals(w)
    cap = w.ai[:, A_CAP_NOMINAL]
    qlen = w.ad[:, D_QP] + w.ad[:, D_PQP]
    return {
        "queue_length": dict(zip(ids, qlen.tolist())),
        "occupancy": dict(zip(ids, w.ad[:, D_INSIDE].tolist())),
        "occupancy_ratio": dict(zip(ids, (w.ad[:, D_INSIDE] / cap).tolist())),
        "queue_person_s": dict(zip(ids, q.tolist())),
        "inside_person_s": dict(zip(ids, inside.tolist())),
    }


def hotel_values(w: World, ids: list[str]) -> dict[str, dict[str, float]]:
    """Per hotel now: rooms free and persons in the desk queue."""
    return {
        "rooms_free": dict(zip(ids, w.hd[:, HD_FREE].tolist())),
        "desk_queue": dict(zip(ids, w.hd[:, HD_QP].tolist())),
    }
