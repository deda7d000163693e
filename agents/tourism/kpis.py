"""Measures computed from the engine's arrays with numpy (no per-tourist Python).

Every measure counts persons: a group of n counts n times (its wait is each member's wait).
Durations are taken over what has finished by the engine's clock: an entry wait once the group
reached a gate, a room search once it booked or gave up, a check-in once it got its key.
"""
from __future__ import annotations

import numpy as np

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
    the smallest value whose cumulative weight reaches q of the total)."""
    if len(values) == 0:
        return float("nan")
    o = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[o])
    i = np.searchsorted(cum, q * cum[-1], side="left")
    return float(values[o][min(i, len(o) - 1)])


def weighted_mean(values, weights) -> float:
    # (values * weights).sum(), not np.dot: BLAS may start threads for a long dot product, which
    # costs milliseconds on a busy machine and is called at every frame
    total = weights.sum()
    return float((values * weights).sum() / total) if total > 0 else float("nan")


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


def kpis(w: World) -> dict[str, float]:
    gi, gf = w.gi[arrived(w)], w.gf[arrived(w)]
    size = gi[:, G_SIZE].astype(float)
    n = int(w.ctr[C_NVISITS])
    done = w.vi[:n, V_OUTCOME] == OUT_DONE
    waits, wsize, _ = entry_waits(w)
    searched = ((gi[:, G_FLAGS] & F_OVERNIGHT) != 0) & np.isfinite(gf[:, F_SEARCH_END])
    checked = np.isfinite(gf[:, F_CHECKIN_END])
    q, _, desk = queue_integrals(w)
    cap = w.ai[:, A_CAP_NOMINAL].astype(float)
    return {
        "tourists_total": float(size.sum()),
        "visits_completed": float(w.gi[w.vi[:n][done, V_GROUP], G_SIZE].sum()),
        "mean_entry_wait_s": weighted_mean(waits, wsize),
        "p95_entry_wait_s": weighted_quantile(waits, wsize, 0.95),
        "mean_room_search_s": weighted_mean(gf[searched, F_SEARCH_END] - gf[searched, F_ARRIVE], size[searched]),
        "mean_checkin_s": weighted_mean(gf[checked, F_CHECKIN_END] - gf[checked, F_CHECKIN_START], size[checked]),
        "queue_hours_total": float((q.sum() + desk.sum()) / 3600.0),
        "peak_occupancy_ratio": float((w.ad[:, D_PEAK_IN] / cap).max()) if len(cap) else 0.0,
        "turned_away": float(w.ad[:, D_TURNED].sum()),
        "room_search_failed": float(size[searched & (gi[:, G_HOTEL] < 0)].sum()),
        "tourists_in_city": float(size.sum() - state_persons(w)[[CHECKED_IN, LEFT]].sum()),
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
