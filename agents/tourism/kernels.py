"""Numba kernels of the tourist-flow engine: the discrete-event loop over the ``World`` arrays.

One call of ``run_until(w, t_stop)`` pops events from a binary heap ordered by (time, sequence
number) and merges them with the pre-drawn city arrivals (sorted by time), until the next event
is later than ``t_stop``. A group has at most one pending event; its kind follows from the
group's state (travelling -> arrival, GATE -> gate done, INSIDE -> dwell done, ...). Attractions
put their opening and closing in the heap as negative ids.

Random numbers inside the kernels come from a counter-based generator: SplitMix64 (Steele, Lea &
Flood 2014, the finaliser of ``java.util.SplittableRandom``) applied to ``key + counter·γ``, where
the counter encodes (group, stream, visit, member). A draw therefore depends only on who is served
where, never on the order of events or on where a run was paused, and the generator has no state
besides the key, which the engine draws from the caller's ``numpy.random.Generator``.

Queues are FIFO linked lists through ``gi[:, G_NEXT]`` (a group is in at most one list). Time
integrals of queue lengths and occupancy are brought up to date only when a count changes, so a
pause never adds floating-point operations (pausing is bit-identical to running on).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .layout import (
    A_CAP, A_CLOSE, A_DWELL_CV, A_DWELL_DIST, A_DWELL_MEAN, A_GATES, A_OPEN, A_PLACE, A_QUOTA,
    A_SLOT0, A_SVC_CV, A_SVC_DIST, A_SVC_MEAN, AF_AREA_IN, AF_AREA_Q, AF_T_LAST, C_HEAP_N,
    C_NEXT_ARR, C_NVISITS, C_SEQ, CHECKED_IN, D_BUSY, D_ENTERED, D_INSIDE, D_JOINED, D_LEFT,
    D_PEAK_IN, D_PEAK_Q, D_PQP, D_QP, D_RESERVED, D_SLOT_WAIT, D_TURNED, DESK, DESK_QUEUE,
    DIST_DETERMINISTIC, DIST_EXPONENTIAL, F_ARR, F_ARRIVE, F_BUDGET_END, F_CHECKIN_END,
    F_CHECKIN_START, F_DEP, F_FOLLOW, F_LEFT, F_MARK, F_ONLINE, F_OVERNIGHT, F_PLATFORM,
    F_RESERVE, F_SEARCH_END, F_SHUTTLE, G_ATTR, G_ENTRY, G_FLAGS, G_FROM, G_HOTEL, G_MODE,
    G_NEXT, G_PLACE, G_PLAN_K, G_ROOMS, G_SEARCH_K, G_SIZE, G_SLOT, G_STATE, G_TO, G_VISIT,
    G_VISITS, GATE, H_DESK_CV, H_DESK_MEAN, H_DESKS, H_DESK_DIST, H_ENQUIRY, H_PLACE, HD_BUSY,
    HD_FREE, HD_JOINED, HD_PEAK_Q, HD_QP, HF_AREA_Q, HF_T_LAST, IDLE, INSIDE, LEFT,
    OBJ_CROWDING, OUT_DONE, OUT_TURNED, P_DROPPED, P_PENDING, P_TURNED, P_VISITED, PAR_HEADWAY,
    PAR_MAX_ENQ, PAR_OBJECTIVE, PAR_ONLINE_S, PAR_PLATFORM_S, PAR_SLOT_LEN, PAR_T0, QUEUE,
    S_DESK, S_DWELL, S_GATE, SEARCH_ENQUIRY, SEARCH_PLATFORM, SEARCH_TRAVEL, TRAVEL_ATTR,
    TRAVEL_EXIT, TRAVEL_HOTEL, V_ARRIVE, V_ATTR, V_ENTER, V_GROUP, V_JOIN, V_LEAVE, V_OUTCOME,
    V_RESERVED, V_START, WAIT_SLOT,
)

INF = np.inf


# -- counter-based random numbers --------------------------------------------------------------
@njit(inline="always")
def splitmix64(x):
    """SplitMix64 finaliser (Steele, Lea & Flood 2014) of a uint64."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def counter(g, stream, visit, member, sub):
    """A unique counter for (group, stream, visit slot < 256, member < 256, sub < 2)."""
    return np.uint64(((((g * 16 + stream) * 256 + visit) * 256 + member) * 2) + sub)


@njit(inline="always")
def uniform(key, c):
    """A uniform number in (0, 1) for counter c: 53 random bits, offset by half a step."""
    z = splitmix64(key + c * np.uint64(0x9E3779B97F4A7C15))
    return ((z >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(inline="always")
def draw(dist, mean, cv, key, g, stream, visit, member):
    """A duration with the given mean: exponential, deterministic or lognormal with coefficient of
    variation cv (σ² = ln(1 + cv²), μ = ln(mean) − σ²/2; the normal by Box–Muller)."""
    if dist == DIST_DETERMINISTIC or mean <= 0.0:
        return mean
    u = uniform(key, counter(g, stream, visit, member, 0))
    if dist == DIST_EXPONENTIAL:
        return -mean * math.log(u)
    u2 = uniform(key, counter(g, stream, visit, member, 1))
    z = math.sqrt(-2.0 * math.log(u)) * math.cos(2.0 * math.pi * u2)
    s2 = math.log1p(cv * cv)
    return mean * math.exp(math.sqrt(s2) * z - 0.5 * s2)


# -- event heap --------------------------------------------------------------------------------
@njit(inline="always")
def _before(ht, hs, i, j):
    return ht[i] < ht[j] or (ht[i] == ht[j] and hs[i] < hs[j])


@njit
def heap_push(ht, hs, hid, ctr, t, ident):
    n = ctr[C_HEAP_N]
    ht[n] = t
    hs[n] = ctr[C_SEQ]
    hid[n] = ident
    ctr[C_SEQ] += 1
    ctr[C_HEAP_N] = n + 1
    i = n
    while i > 0:
        p = (i - 1) >> 1
        if _before(ht, hs, i, p):
            ht[i], ht[p] = ht[p], ht[i]
            hs[i], hs[p] = hs[p], hs[i]
            hid[i], hid[p] = hid[p], hid[i]
            i = p
        else:
            break


@njit
def heap_pop(ht, hs, hid, ctr):
    """Remove the earliest event; returns (time, id)."""
    t = ht[0]
    ident = hid[0]
    n = ctr[C_HEAP_N] - 1
    ctr[C_HEAP_N] = n
    ht[0] = ht[n]
    hs[0] = hs[n]
    hid[0] = hid[n]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= n:
            break
        m = left
        if left + 1 < n and _before(ht, hs, left + 1, left):
            m = left + 1
        if _before(ht, hs, m, i):
            ht[i], ht[m] = ht[m], ht[i]
            hs[i], hs[m] = hs[m], hs[i]
            hid[i], hid[m] = hid[m], hid[i]
            i = m
        else:
            break
    return t, ident


@njit(inline="always")
def _push(w, t, ident):
    heap_push(w.ht, w.hs, w.hid, w.ctr, t, ident)


# -- FIFO lists --------------------------------------------------------------------------------
@njit(inline="always")
def _append(w, lst, g):
    w.gi[g, G_NEXT] = -1
    if w.qt[lst] < 0:
        w.qh[lst] = g
    else:
        w.gi[w.qt[lst], G_NEXT] = g
    w.qt[lst] = g


@njit(inline="always")
def _pop_head(w, lst):
    g = w.qh[lst]
    nxt = w.gi[g, G_NEXT]
    w.qh[lst] = nxt
    if nxt < 0:
        w.qt[lst] = -1
    w.gi[g, G_NEXT] = -1
    return g


# -- time integrals ----------------------------------------------------------------------------
@njit(inline="always")
def _touch_attr(w, a, now):
    dt = now - w.adf[a, AF_T_LAST]
    if dt > 0.0:
        w.adf[a, AF_AREA_Q] += (w.ad[a, D_QP] + w.ad[a, D_PQP]) * dt
        w.adf[a, AF_AREA_IN] += w.ad[a, D_INSIDE] * dt
        w.adf[a, AF_T_LAST] = now


@njit(inline="always")
def _touch_hotel(w, h, now):
    dt = now - w.hdf[h, HF_T_LAST]
    if dt > 0.0:
        w.hdf[h, HF_AREA_Q] += w.hd[h, HD_QP] * dt
        w.hdf[h, HF_T_LAST] = now


# -- travel ------------------------------------------------------------------------------------
@njit
def travel_time(w, g, p, q, now):
    """(duration, mode, departure) of the quickest way from place p to q for group g: on foot,
    or by shuttle for shuttle users where it is faster including the wait for the next departure
    (departures every PAR_HEADWAY s from PAR_T0)."""
    tt = w.T[0, p, q]
    if w.T.shape[0] > 1 and (w.gi[g, G_FLAGS] & F_SHUTTLE) != 0 and w.T[1, p, q] < INF:
        dep = now
        hw = w.par[PAR_HEADWAY]
        if hw > 0.0:
            t0 = w.par[PAR_T0]
            dep = t0 + math.ceil((now - t0) / hw) * hw
            if dep < now:
                dep = now
        ts = (dep - now) + w.T[1, p, q]
        if ts < tt:
            return ts, 1, dep
    return tt, 0, now


@njit
def _depart(w, g, now, p, q, state):
    tt, mode, dep = travel_time(w, g, p, q, now)
    w.gi[g, G_STATE] = state
    w.gi[g, G_FROM] = p
    w.gi[g, G_TO] = q
    w.gi[g, G_MODE] = mode
    w.gf[g, F_DEP] = dep
    arr = now + tt
    w.gf[g, F_ARR] = arr
    _push(w, arr, g)


# -- attractions -------------------------------------------------------------------------------
@njit
def try_start_gates(w, a, now):
    """Serve the queue heads while a gate is free and there is room inside for the whole group.
    The reservation lane goes first (non-preemptive priority); within a lane FIFO, and a head that
    does not fit blocks the lane (no overtaking). Gates admit only in [open, close)."""
    if now < w.af[a, A_OPEN] or now >= w.af[a, A_CLOSE]:
        return
    n_attr = w.af.shape[0]
    gates = w.ai[a, A_GATES]
    cap = w.ai[a, A_CAP]
    while w.ad[a, D_BUSY] < gates:
        lst = n_attr + a
        if w.qh[lst] < 0:
            lst = a
            if w.qh[lst] < 0:
                return
        g = w.qh[lst]
        s = w.gi[g, G_SIZE]
        if w.ad[a, D_RESERVED] + s > cap:
            return
        _pop_head(w, lst)
        _touch_attr(w, a, now)
        if lst == a:
            w.ad[a, D_QP] -= s
        else:
            w.ad[a, D_PQP] -= s
        w.ad[a, D_RESERVED] += s
        w.ad[a, D_BUSY] += 1
        w.vf[w.gi[g, G_VISIT], V_START] = now
        k = w.gi[g, G_PLAN_K]
        dur = 0.0  # the members pass the gate one after the other
        for m in range(s):
            dur += draw(w.ai[a, A_SVC_DIST], w.af[a, A_SVC_MEAN], w.af[a, A_SVC_CV], w.key[0], g, S_GATE, k, m)
        w.gi[g, G_STATE] = GATE
        _push(w, now + dur, g)


@njit
def _join_queue(w, g, a, now, priority):
    s = w.gi[g, G_SIZE]
    _touch_attr(w, a, now)
    if priority:
        _append(w, w.af.shape[0] + a, g)
        w.ad[a, D_PQP] += s
    else:
        _append(w, a, g)
        w.ad[a, D_QP] += s
    q = w.ad[a, D_QP] + w.ad[a, D_PQP]
    if q > w.ad[a, D_PEAK_Q]:
        w.ad[a, D_PEAK_Q] = q
    w.ad[a, D_JOINED] += s
    w.vf[w.gi[g, G_VISIT], V_JOIN] = now
    w.gi[g, G_STATE] = QUEUE
    try_start_gates(w, a, now)


@njit
def _book_slot(w, g, a, t_arr):
    """Timed-entry booking made when leaving for attraction a: the first slot that has not ended
    by the arrival time and still has quota for the whole group. Returns the slot or -1."""
    quota = w.ai[a, A_QUOTA]
    s = w.gi[g, G_SIZE]
    if quota <= 0:
        return -1
    slot_len = w.par[PAR_SLOT_LEN]
    t0 = w.af[a, A_SLOT0]
    k = 0
    if t_arr > t0:
        k = int((t_arr - t0) // slot_len)
    n_slots = w.slots.shape[1]
    while k < n_slots and t0 + k * slot_len < w.af[a, A_CLOSE]:
        if w.slots[a, k] + s <= quota:
            w.slots[a, k] += s
            return k
        k += 1
    return -1


@njit
def _predicted(w, a):
    """What a recommendation ranks by (lower is better): the expected wait of a newcomer now,
    persons queueing × mean service / gates, or the crowding (inside + queueing) / capacity."""
    q = w.ad[a, D_QP] + w.ad[a, D_PQP]
    if w.par[PAR_OBJECTIVE] == OBJ_CROWDING:
        return (w.ad[a, D_INSIDE] + q) / w.ai[a, A_CAP]
    return q * w.af[a, A_SVC_MEAN] / w.ai[a, A_GATES]


@njit
def decide_next(w, g, now, p):
    """Choose what group g at place p does next. Candidates are the pending attractions of its
    plan that it reaches before closing and can finish (expected entry + mean dwell) within its
    time budget; the others are dropped for good. Among candidates open on arrival it takes the
    first in plan order, or, if it follows the recommendation, the one ranked best by
    ``_predicted``. If the only candidates open later, it waits where it is until it can leave to
    arrive at the earliest opening. Without candidates the day ends (hotel or exit)."""
    s = w.gi[g, G_SIZE]
    follow = (w.gi[g, G_FLAGS] & F_FOLLOW) != 0
    budget_end = w.gf[g, F_BUDGET_END]
    best_k = -1
    best_score = INF
    best_tarr = 0.0
    wake = INF
    for k in range(w.plan.shape[1]):
        a = w.plan[g, k]
        if a < 0:
            break
        if w.plan_st[g, k] != P_PENDING:
            continue
        tt, mode, dep = travel_time(w, g, p, w.ai[a, A_PLACE], now)
        t_arr = now + tt
        t_in = max(t_arr, w.af[a, A_OPEN])
        if t_arr >= w.af[a, A_CLOSE] or t_in + s * w.af[a, A_SVC_MEAN] + w.af[a, A_DWELL_MEAN] > budget_end:
            w.plan_st[g, k] = P_DROPPED
            continue
        if t_arr < w.af[a, A_OPEN] and w.af[a, A_OPEN] - tt > now:
            # (strictly later: a group that cannot leave any later goes now and waits at the gate)
            wake = min(wake, w.af[a, A_OPEN] - tt)
            continue
        score = _predicted(w, a) if follow else float(k)
        if score < best_score:
            best_score = score
            best_k = k
            best_tarr = t_arr
    if best_k >= 0:
        a = w.plan[g, best_k]
        w.gi[g, G_ATTR] = a
        w.gi[g, G_PLAN_K] = best_k
        w.gi[g, G_SLOT] = -1
        if (w.gi[g, G_FLAGS] & F_RESERVE) != 0:
            w.gi[g, G_SLOT] = _book_slot(w, g, a, best_tarr)
        _depart(w, g, now, p, w.ai[a, A_PLACE], TRAVEL_ATTR)
    elif wake < INF:
        w.gi[g, G_STATE] = IDLE
        _push(w, wake, g)
    else:
        end_day(w, g, now, p)


@njit
def end_day(w, g, now, p):
    h = w.gi[g, G_HOTEL]
    if h >= 0:
        _depart(w, g, now, p, w.hi[h, H_PLACE], TRAVEL_HOTEL)
    else:
        _depart(w, g, now, p, w.entry_place[w.gi[g, G_ENTRY]], TRAVEL_EXIT)


@njit
def _arrive_attraction(w, g, now):
    a = w.gi[g, G_ATTR]
    s = w.gi[g, G_SIZE]
    v = w.ctr[C_NVISITS]
    w.ctr[C_NVISITS] = v + 1
    w.vi[v, V_GROUP] = g
    w.vi[v, V_ATTR] = a
    w.vf[v, V_ARRIVE] = now
    w.gi[g, G_VISIT] = v
    slot = w.gi[g, G_SLOT]
    w.vi[v, V_RESERVED] = 1 if slot >= 0 else 0
    if now >= w.af[a, A_CLOSE]:  # closed while on the way
        _turn_away(w, g, a, now)
        return
    if slot >= 0:
        t_slot = w.af[a, A_SLOT0] + slot * w.par[PAR_SLOT_LEN]
        if now < t_slot:
            w.gi[g, G_STATE] = WAIT_SLOT
            w.ad[a, D_SLOT_WAIT] += s
            _push(w, t_slot, g)
            return
    _join_queue(w, g, a, now, slot >= 0)


@njit
def _turn_away(w, g, a, now):
    v = w.gi[g, G_VISIT]
    w.vi[v, V_OUTCOME] = OUT_TURNED
    w.vf[v, V_LEAVE] = now
    w.ad[a, D_TURNED] += w.gi[g, G_SIZE]
    w.plan_st[g, w.gi[g, G_PLAN_K]] = P_TURNED
    decide_next(w, g, now, w.ai[a, A_PLACE])


@njit
def _gate_done(w, g, now):
    a = w.gi[g, G_ATTR]
    s = w.gi[g, G_SIZE]
    _touch_attr(w, a, now)
    w.ad[a, D_BUSY] -= 1
    w.ad[a, D_INSIDE] += s
    w.ad[a, D_ENTERED] += s
    if w.ad[a, D_INSIDE] > w.ad[a, D_PEAK_IN]:
        w.ad[a, D_PEAK_IN] = w.ad[a, D_INSIDE]
    w.vf[w.gi[g, G_VISIT], V_ENTER] = now
    w.gi[g, G_STATE] = INSIDE
    dwell = draw(w.ai[a, A_DWELL_DIST], w.af[a, A_DWELL_MEAN], w.af[a, A_DWELL_CV], w.key[0], g, S_DWELL,
                 w.gi[g, G_PLAN_K], 0)
    _push(w, now + dwell, g)
    try_start_gates(w, a, now)


@njit
def _dwell_done(w, g, now):
    a = w.gi[g, G_ATTR]
    s = w.gi[g, G_SIZE]
    _touch_attr(w, a, now)
    w.ad[a, D_INSIDE] -= s
    w.ad[a, D_RESERVED] -= s
    w.ad[a, D_LEFT] += s
    v = w.gi[g, G_VISIT]
    w.vf[v, V_LEAVE] = now
    w.vi[v, V_OUTCOME] = OUT_DONE
    w.plan_st[g, w.gi[g, G_PLAN_K]] = P_VISITED
    w.gi[g, G_VISITS] += 1
    try_start_gates(w, a, now)
    decide_next(w, g, now, w.ai[a, A_PLACE])


@njit
def _close(w, a, now):
    """Closing time is the last admission: everyone still queueing is turned away (in queue
    order, reservation lane first); those inside finish their visit."""
    n_attr = w.af.shape[0]
    for lst in (n_attr + a, a):
        while w.qh[lst] >= 0:
            g = _pop_head(w, lst)
            s = w.gi[g, G_SIZE]
            _touch_attr(w, a, now)
            if lst == a:
                w.ad[a, D_QP] -= s
            else:
                w.ad[a, D_PQP] -= s
            _turn_away(w, g, a, now)


# -- hotels ------------------------------------------------------------------------------------
@njit
def _search_step(w, g, now, p):
    """Walk-in room search: go to the next hotel in order of travel time from the entry point."""
    k = w.gi[g, G_SEARCH_K]
    if k >= min(w.hotel_order.shape[1], int(w.par[PAR_MAX_ENQ])):
        w.gf[g, F_SEARCH_END] = now  # gave up: no room
        decide_next(w, g, now, p)
        return
    h = w.hotel_order[w.gi[g, G_ENTRY], k]
    _depart(w, g, now, p, w.hi[h, H_PLACE], SEARCH_TRAVEL)


@njit
def _enquiry_done(w, g, now):
    k = w.gi[g, G_SEARCH_K]
    h = w.hotel_order[w.gi[g, G_ENTRY], k]
    p = w.hi[h, H_PLACE]
    rooms = w.gi[g, G_ROOMS]
    if w.hd[h, HD_FREE] >= rooms:
        w.hd[h, HD_FREE] -= rooms
        w.gi[g, G_HOTEL] = h
        w.gf[g, F_SEARCH_END] = now
        decide_next(w, g, now, p)
    else:
        w.gi[g, G_SEARCH_K] = k + 1
        _search_step(w, g, now, p)


@njit
def _platform_done(w, g, now):
    """The platform books the free room nearest (by travel time) to the entry point at once."""
    e = w.gi[g, G_ENTRY]
    rooms = w.gi[g, G_ROOMS]
    for k in range(w.hotel_order.shape[1]):
        h = w.hotel_order[e, k]
        if w.hd[h, HD_FREE] >= rooms:
            w.hd[h, HD_FREE] -= rooms
            w.gi[g, G_HOTEL] = h
            break
    w.gf[g, F_SEARCH_END] = now
    decide_next(w, g, now, w.gi[g, G_PLACE])


@njit
def try_start_desks(w, h, now):
    lst = 2 * w.af.shape[0] + h
    while w.hd[h, HD_BUSY] < w.hi[h, H_DESKS] and w.qh[lst] >= 0:
        g = _pop_head(w, lst)
        _touch_hotel(w, h, now)
        w.hd[h, HD_QP] -= w.gi[g, G_SIZE]
        w.hd[h, HD_BUSY] += 1
        w.gi[g, G_STATE] = DESK
        dur = draw(w.hi[h, H_DESK_DIST], w.hf[h, H_DESK_MEAN], w.hf[h, H_DESK_CV], w.key[0], g, S_DESK, 0, 0)
        _push(w, now + dur, g)


@njit
def _arrive_hotel(w, g, now):
    """Evening check-in: online check-in picks up the key (PAR_ONLINE_S, no desk queue); the
    others queue FIFO for the front desk, one transaction per group."""
    h = w.gi[g, G_HOTEL]
    w.gf[g, F_CHECKIN_START] = now
    if (w.gi[g, G_FLAGS] & F_ONLINE) != 0:
        w.gi[g, G_STATE] = DESK
        _push(w, now + w.par[PAR_ONLINE_S], g)
        return
    s = w.gi[g, G_SIZE]
    _touch_hotel(w, h, now)
    _append(w, 2 * w.af.shape[0] + h, g)
    w.hd[h, HD_QP] += s
    w.hd[h, HD_JOINED] += s
    if w.hd[h, HD_QP] > w.hd[h, HD_PEAK_Q]:
        w.hd[h, HD_PEAK_Q] = w.hd[h, HD_QP]
    w.gf[g, F_MARK] = now
    w.gi[g, G_STATE] = DESK_QUEUE
    try_start_desks(w, h, now)


@njit
def _desk_done(w, g, now):
    h = w.gi[g, G_HOTEL]
    w.gf[g, F_CHECKIN_END] = now
    w.gf[g, F_LEFT] = now
    w.gi[g, G_STATE] = CHECKED_IN
    if (w.gi[g, G_FLAGS] & F_ONLINE) == 0:
        w.hd[h, HD_BUSY] -= 1
        try_start_desks(w, h, now)


# -- city arrival and the loop -----------------------------------------------------------------
@njit
def _city_arrival(w, g, now):
    e = w.gi[g, G_ENTRY]
    p = w.entry_place[e]
    w.gi[g, G_PLACE] = p
    flags = w.gi[g, G_FLAGS]
    if (flags & F_OVERNIGHT) != 0:
        if (flags & F_PLATFORM) != 0:
            w.gi[g, G_STATE] = SEARCH_PLATFORM
            _push(w, now + w.par[PAR_PLATFORM_S], g)
        else:
            _search_step(w, g, now, p)
    else:
        decide_next(w, g, now, p)


@njit
def _group_event(w, g, now):
    st = w.gi[g, G_STATE]
    if st == SEARCH_TRAVEL or st == TRAVEL_ATTR or st == TRAVEL_HOTEL or st == TRAVEL_EXIT:
        w.gi[g, G_PLACE] = w.gi[g, G_TO]
    if st == TRAVEL_ATTR:
        _arrive_attraction(w, g, now)
    elif st == GATE:
        _gate_done(w, g, now)
    elif st == INSIDE:
        _dwell_done(w, g, now)
    elif st == WAIT_SLOT:
        a = w.gi[g, G_ATTR]
        w.ad[a, D_SLOT_WAIT] -= w.gi[g, G_SIZE]
        _join_queue(w, g, a, now, True)
    elif st == IDLE:
        decide_next(w, g, now, w.gi[g, G_PLACE])
    elif st == SEARCH_TRAVEL:
        w.gi[g, G_STATE] = SEARCH_ENQUIRY
        h = w.hotel_order[w.gi[g, G_ENTRY], w.gi[g, G_SEARCH_K]]
        _push(w, now + w.hf[h, H_ENQUIRY], g)
    elif st == SEARCH_ENQUIRY:
        _enquiry_done(w, g, now)
    elif st == SEARCH_PLATFORM:
        _platform_done(w, g, now)
    elif st == TRAVEL_HOTEL:
        _arrive_hotel(w, g, now)
    elif st == DESK:
        _desk_done(w, g, now)
    elif st == TRAVEL_EXIT:
        w.gi[g, G_STATE] = LEFT
        w.gf[g, F_LEFT] = now


@njit(cache=True)
def run_until(w, t_stop):
    """Process every event with time <= t_stop (in time order; ties by arrival first, then by
    the order they were scheduled) and set the clock to t_stop."""
    n_groups = w.gi.shape[0]
    while True:
        nxt = w.ctr[C_NEXT_ARR]
        ta = w.gf[nxt, F_ARRIVE] if nxt < n_groups else INF
        th = w.ht[0] if w.ctr[C_HEAP_N] > 0 else INF
        if ta <= th:
            if ta > t_stop:
                break
            w.ctr[C_NEXT_ARR] = nxt + 1
            _city_arrival(w, nxt, ta)
        else:
            if th > t_stop:
                break
            now, ident = heap_pop(w.ht, w.hs, w.hid, w.ctr)
            if ident >= 0:
                _group_event(w, ident, now)
            else:
                code = -1 - ident
                a = code >> 1
                if code & 1:
                    _close(w, a, now)
                else:
                    try_start_gates(w, a, now)
    w.now[0] = t_stop


@njit(cache=True)
def schedule_openings(w):
    """Put each attraction's opening and closing (when finite and after the start) in the heap."""
    t0 = w.par[PAR_T0]
    for a in range(w.af.shape[0]):
        if w.af[a, A_OPEN] > t0 and w.af[a, A_OPEN] < INF:
            _push(w, w.af[a, A_OPEN], -1 - 2 * a)
        if w.af[a, A_CLOSE] < INF:
            _push(w, w.af[a, A_CLOSE], -1 - (2 * a + 1))
