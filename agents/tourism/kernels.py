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

Every kernel takes the arrays it touches as arguments (``run_until`` unpacks the ``World`` once):
Numba passes a tuple of arrays by value, field by field, which would cost more than an event.
Handlers never call the choice of the next stop directly; they put the group on the ``todo`` list,
which the loop works off after each event, so the handlers stay small and are compiled once.

Queues are FIFO linked lists through ``gi[:, G_NEXT]`` (a group is in at most one list). Time
integrals of queue lengths and occupancy are brought up to date only when a count changes, so a
pause never adds floating-point operations (pausing is bit-identical to running on).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

# Entry points release the GIL (nogil=True): the app runs a branch's futures in threads beside the
# window, which must get the interpreter between kernel calls (docs/command_room.md).

from .layout import (
    AF_AREA_IN, AF_AREA_Q, AF_T_LAST, A_CAP, A_CLOSE, A_DWELL_CV, A_DWELL_DIST, A_DWELL_MEAN,
    A_GATES, A_OPEN, A_PLACE, A_QUOTA, A_SLOT0, A_SVC_CV, A_SVC_DIST, A_SVC_MEAN, CHECKED_IN,
    C_HEAP_N, C_NEXT_ARR, C_NVISITS, C_N_DRAWN, C_SEQ, C_TODO, DESK, DESK_QUEUE, DIST_DETERMINISTIC,
    DIST_EXPONENTIAL, D_BUSY, D_ENROUTE, D_ENTERED, D_INSIDE, D_JOINED, D_LEFT, D_PEAK_IN, D_PEAK_Q,
    D_PQP, D_QP, D_RESERVED, D_SLOT_WAIT, D_TURNED, F_ARR, F_ARRIVE, F_BUDGET_END, F_CHECKIN_END,
    F_CHECKIN_START, F_DEP, F_DESK_START, F_FOLLOW, F_LEFT, F_MARK, F_ONLINE, F_OVERNIGHT,
    F_PLATFORM, F_RESERVE, F_SEARCH_END, F_SHUTTLE, GATE, G_ATTR, G_ENTRY, G_FLAGS, G_FROM, G_HOTEL,
    G_MODE, G_NEXT, G_PLACE, G_PLAN_K, G_ROOMS, G_SEARCH_K, G_SIZE, G_SLOT, G_STATE, G_TO, G_VISIT,
    G_VISITS, HD_BUSY, HD_FREE, HD_JOINED, HD_PEAK_Q, HD_QP, HF_AREA_Q, HF_T_LAST, H_DESKS, H_LET_UNTIL,
    H_DESK_CV, H_DESK_DIST, H_DESK_MEAN, H_ENQUIRY, H_PLACE, IDLE, INSIDE, LEFT, OBJ_CROWDING,
    OUT_DONE, OUT_TURNED, PAR_HEADWAY, PAR_MAX_ENQ, PAR_MAX_VISITS, PAR_OBJECTIVE, PAR_ONLINE_S,
    PAR_PLATFORM_S, PAR_SLOT_LEN, PAR_T0, P_DROPPED, P_PENDING, P_TURNED, P_VISITED, QUEUE,
    SEARCH_ENQUIRY, SEARCH_PLATFORM, SEARCH_TRAVEL, S_DESK, S_DWELL, S_GATE, TRAVEL_ATTR,
    TRAVEL_EXIT, TRAVEL_HOTEL, V_ARRIVE, V_ATTR, V_ENTER, V_GROUP, V_JOIN, V_LEAVE, V_OUTCOME,
    V_RESERVED, V_START, WAIT_SLOT,
)

INF = np.inf
# The kernels allocate nothing, so they run without Numba's reference counting of arrays
# (``_nrt=False``): the atomic increments it adds to every call doubled the cost of an event.
NO_RC = {"_nrt": False}


# -- counter-based random numbers --------------------------------------------------------------
@njit(inline="always", **NO_RC)
def splitmix64(x):
    """SplitMix64 finaliser (Steele, Lea & Flood 2014) of a uint64."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always", **NO_RC)
def counter(g, stream, visit, member, sub):
    """A unique counter for (group, stream, visit slot < 256, member < 256, sub < 2)."""
    return np.uint64(((((g * 16 + stream) * 256 + visit) * 256 + member) * 2) + sub)


@njit(inline="always", **NO_RC)
def uniform(key, c):
    """A uniform number in (0, 1) for counter c: 53 random bits, offset by half a step."""
    z = splitmix64(key + c * np.uint64(0x9E3779B97F4A7C15))
    return ((z >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@njit(inline="always", **NO_RC)
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
@njit(inline="always", **NO_RC)
def _before(ht, hs, i, j):
    return ht[i] < ht[j] or (ht[i] == ht[j] and hs[i] < hs[j])


@njit(inline="always", **NO_RC)
def _swap(ht, hs, hid, i, j):
    ht[i], ht[j] = ht[j], ht[i]
    hs[i], hs[j] = hs[j], hs[i]
    hid[i], hid[j] = hid[j], hid[i]


@njit(**NO_RC)
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
            _swap(ht, hs, hid, i, p)
            i = p
        else:
            break


@njit(**NO_RC)
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
            _swap(ht, hs, hid, i, m)
            i = m
        else:
            break
    return t, ident


# -- FIFO lists --------------------------------------------------------------------------------
@njit(inline="always", **NO_RC)
def _append(gi, qh, qt, lst, g):
    gi[g, G_NEXT] = -1
    if qt[lst] < 0:
        qh[lst] = g
    else:
        gi[qt[lst], G_NEXT] = g
    qt[lst] = g


@njit(inline="always", **NO_RC)
def _pop_head(gi, qh, qt, lst):
    g = qh[lst]
    nxt = gi[g, G_NEXT]
    qh[lst] = nxt
    if nxt < 0:
        qt[lst] = -1
    gi[g, G_NEXT] = -1
    return g


# -- time integrals ----------------------------------------------------------------------------
@njit(inline="always", **NO_RC)
def _touch_attr(ad, adf, a, now):
    dt = now - adf[a, AF_T_LAST]
    if dt > 0.0:
        adf[a, AF_AREA_Q] += (ad[a, D_QP] + ad[a, D_PQP]) * dt
        adf[a, AF_AREA_IN] += ad[a, D_INSIDE] * dt
        adf[a, AF_T_LAST] = now


@njit(inline="always", **NO_RC)
def _touch_hotel(hd, hdf, h, now):
    dt = now - hdf[h, HF_T_LAST]
    if dt > 0.0:
        hdf[h, HF_AREA_Q] += hd[h, HD_QP] * dt
        hdf[h, HF_T_LAST] = now


# -- travel ------------------------------------------------------------------------------------
@njit(**NO_RC)
def travel_time(T, par, flags, p, q, now):
    """(duration, mode, departure) of the quickest way from place p to q: on foot, or, for a
    shuttle user, by shuttle where that is faster including the wait for the next departure
    (every PAR_HEADWAY s from PAR_T0)."""
    tt = T[0, p, q]
    if T.shape[0] > 1 and (flags & F_SHUTTLE) != 0 and T[1, p, q] < INF:
        dep = now
        hw = par[PAR_HEADWAY]
        if hw > 0.0:
            t0 = par[PAR_T0]
            dep = t0 + math.ceil((now - t0) / hw) * hw
            if dep < now:
                dep = now
        ts = (dep - now) + T[1, p, q]
        if ts < tt:
            return ts, 1, dep
    return tt, 0, now


@njit(**NO_RC)
def depart(g, now, p, dest, state, gi, gf, T, par, ht, hs, hid, ctr):
    """Group g leaves place p for dest: fills its travel record and schedules the arrival."""
    tt, mode, dep = travel_time(T, par, gi[g, G_FLAGS], p, dest, now)
    gi[g, G_STATE] = state
    gi[g, G_FROM] = p
    gi[g, G_TO] = dest
    gi[g, G_MODE] = mode
    gf[g, F_DEP] = dep
    arr = now + tt
    gf[g, F_ARR] = arr
    heap_push(ht, hs, hid, ctr, arr, g)


@njit(inline="always", **NO_RC)
def _todo(todo, ctr, g):
    todo[ctr[C_TODO]] = g
    ctr[C_TODO] += 1


# -- attractions -------------------------------------------------------------------------------
@njit(**NO_RC)
def try_start_gates(a, now, key, af, ai, ad, adf, qh, qt, gi, vf, ht, hs, hid, ctr):
    """Serve the queue heads while a gate is free and there is room inside for the whole group.
    The reservation lane goes first (non-preemptive priority); within a lane FIFO, and a head that
    does not fit blocks the lane (no overtaking). Gates admit only in [open, close)."""
    if now < af[a, A_OPEN] or now >= af[a, A_CLOSE]:
        return
    n_attr = af.shape[0]
    gates = ai[a, A_GATES]
    cap = ai[a, A_CAP]
    while ad[a, D_BUSY] < gates:
        lst = n_attr + a
        if qh[lst] < 0:
            lst = a
            if qh[lst] < 0:
                return
        g = qh[lst]
        s = gi[g, G_SIZE]
        if ad[a, D_RESERVED] + s > cap:
            return
        _pop_head(gi, qh, qt, lst)
        _touch_attr(ad, adf, a, now)
        if lst == a:
            ad[a, D_QP] -= s
        else:
            ad[a, D_PQP] -= s
        ad[a, D_RESERVED] += s
        ad[a, D_BUSY] += 1
        vf[gi[g, G_VISIT], V_START] = now
        k = gi[g, G_PLAN_K]
        dur = 0.0  # the members pass the gate one after the other
        for m in range(s):
            dur += draw(ai[a, A_SVC_DIST], af[a, A_SVC_MEAN], af[a, A_SVC_CV], key, g, S_GATE, k, m)
        gi[g, G_STATE] = GATE
        heap_push(ht, hs, hid, ctr, now + dur, g)


@njit(**NO_RC)
def join_queue(g, a, now, priority, ad, adf, qh, qt, gi, vf):
    """Group g joins the regular queue or the reservation lane of a (the caller then tries the gates)."""
    s = gi[g, G_SIZE]
    _touch_attr(ad, adf, a, now)
    if priority:
        _append(gi, qh, qt, adf.shape[0] + a, g)
        ad[a, D_PQP] += s
    else:
        _append(gi, qh, qt, a, g)
        ad[a, D_QP] += s
    n = ad[a, D_QP] + ad[a, D_PQP]
    if n > ad[a, D_PEAK_Q]:
        ad[a, D_PEAK_Q] = n
    ad[a, D_JOINED] += s
    vf[gi[g, G_VISIT], V_JOIN] = now
    gi[g, G_STATE] = QUEUE


@njit(**NO_RC)
def book_slot(size, a, t_arr, af, ai, par, slots):
    """Timed-entry booking made when leaving for attraction a: the first slot that has not ended
    by the arrival time and still has quota for the whole group. Returns the slot or -1."""
    quota = ai[a, A_QUOTA]
    if quota <= 0:
        return -1
    slot_len = par[PAR_SLOT_LEN]
    t0 = af[a, A_SLOT0]
    k = 0
    if t_arr > t0:
        k = int((t_arr - t0) // slot_len)
    while k < slots.shape[1] and t0 + k * slot_len < af[a, A_CLOSE]:
        if slots[a, k] + size <= quota:
            slots[a, k] += size
            return k
        k += 1
    return -1


@njit(**NO_RC)
def predicted(a, objective, af, ai, ad):
    """What a recommendation ranks by (lower is better): the expected wait of a newcomer,
    (persons queueing or on their way there) × mean service / gates, or the crowding
    (inside + queueing + on the way) / capacity. Counting those on the way (the platform knows
    where its users go) keeps followers from all rushing to the queue that was short when they
    set out."""
    n = ad[a, D_QP] + ad[a, D_PQP] + ad[a, D_ENROUTE]
    if objective == OBJ_CROWDING:
        return (ad[a, D_INSIDE] + n) / ai[a, A_CAP]
    return n * af[a, A_SVC_MEAN] / ai[a, A_GATES]


@njit(**NO_RC)
def decide_next(g, now, gi, gf, plan, plan_st, af, ai, ad, T, par, slots, hi, entry_place, ht, hs, hid, ctr):
    """Choose what group g does next from where it is (G_PLACE). Candidates are the pending
    attractions of its plan that it reaches before closing and can finish (expected entry + mean
    dwell) within its time budget; the others are dropped for good. Among candidates open on
    arrival it takes the first in plan order, or, if it follows the recommendation, the one
    ranked best by ``predicted``. If the only candidates open later, it waits where it is until it
    can leave to arrive at the earliest opening. Without candidates, or after PAR_MAX_VISITS
    visits, the day ends: to the booked hotel, or back to the entry point to leave."""
    p = gi[g, G_PLACE]
    s = gi[g, G_SIZE]
    flags = gi[g, G_FLAGS]
    follow = (flags & F_FOLLOW) != 0
    objective = par[PAR_OBJECTIVE]
    budget_end = gf[g, F_BUDGET_END]
    best_k = -1
    best_score = INF
    best_tarr = 0.0
    wake = INF
    n_plan = plan.shape[1] if gi[g, G_VISITS] < par[PAR_MAX_VISITS] else 0
    for k in range(n_plan):
        a = plan[g, k]
        if a < 0:
            break
        if plan_st[g, k] != P_PENDING:
            continue
        tt, mode, dep = travel_time(T, par, flags, p, ai[a, A_PLACE], now)
        t_arr = now + tt
        t_in = max(t_arr, af[a, A_OPEN])
        if t_arr >= af[a, A_CLOSE] or t_in + s * af[a, A_SVC_MEAN] + af[a, A_DWELL_MEAN] > budget_end:
            plan_st[g, k] = P_DROPPED
            continue
        if t_arr < af[a, A_OPEN] and af[a, A_OPEN] - tt > now:
            # (strictly later: a group that cannot leave any later goes now and waits at the gate)
            wake = min(wake, af[a, A_OPEN] - tt)
            continue
        score = predicted(a, objective, af, ai, ad) if follow else float(k)
        if score < best_score:
            best_score = score
            best_k = k
            best_tarr = t_arr
    if best_k >= 0:
        a = plan[g, best_k]
        gi[g, G_ATTR] = a
        gi[g, G_PLAN_K] = best_k
        gi[g, G_SLOT] = -1
        if (flags & F_RESERVE) != 0:
            gi[g, G_SLOT] = book_slot(s, a, best_tarr, af, ai, par, slots)
        ad[a, D_ENROUTE] += s
        depart(g, now, p, ai[a, A_PLACE], TRAVEL_ATTR, gi, gf, T, par, ht, hs, hid, ctr)
    elif wake < INF:
        gi[g, G_STATE] = IDLE
        heap_push(ht, hs, hid, ctr, wake, g)
    elif gi[g, G_HOTEL] >= 0:
        depart(g, now, p, hi[gi[g, G_HOTEL], H_PLACE], TRAVEL_HOTEL, gi, gf, T, par, ht, hs, hid, ctr)
    else:
        depart(g, now, p, entry_place[gi[g, G_ENTRY]], TRAVEL_EXIT, gi, gf, T, par, ht, hs, hid, ctr)


@njit(**NO_RC)
def arrive_attraction(g, now, gi, vi, vf, af, ad, par, ht, hs, hid, ctr):
    """Group g reaches its attraction: opens a visit record. Returns 1 if it may queue now (the
    reservation lane if it holds a slot), 0 if it waits for its slot, -1 if the attraction has
    closed meanwhile (the caller turns it away)."""
    a = gi[g, G_ATTR]
    v = ctr[C_NVISITS]
    ctr[C_NVISITS] = v + 1
    vi[v, V_GROUP] = g
    vi[v, V_ATTR] = a
    vf[v, V_ARRIVE] = now
    gi[g, G_VISIT] = v
    slot = gi[g, G_SLOT]
    vi[v, V_RESERVED] = 1 if slot >= 0 else 0
    if now >= af[a, A_CLOSE]:
        return -1
    if slot >= 0:
        t_slot = af[a, A_SLOT0] + slot * par[PAR_SLOT_LEN]
        if now < t_slot:
            gi[g, G_STATE] = WAIT_SLOT
            ad[a, D_SLOT_WAIT] += gi[g, G_SIZE]
            heap_push(ht, hs, hid, ctr, t_slot, g)
            return 0
    return 1


@njit(**NO_RC)
def turn_away(g, a, now, gi, vi, vf, ad, plan_st, todo, ctr):
    v = gi[g, G_VISIT]
    vi[v, V_OUTCOME] = OUT_TURNED
    vf[v, V_LEAVE] = now
    ad[a, D_TURNED] += gi[g, G_SIZE]
    plan_st[g, gi[g, G_PLAN_K]] = P_TURNED
    _todo(todo, ctr, g)


@njit(**NO_RC)
def gate_done(g, now, key, gi, vf, af, ai, ad, adf, ht, hs, hid, ctr):
    """Group g has passed the gate: inside, dwell drawn."""
    a = gi[g, G_ATTR]
    s = gi[g, G_SIZE]
    _touch_attr(ad, adf, a, now)
    ad[a, D_BUSY] -= 1
    ad[a, D_INSIDE] += s
    ad[a, D_ENTERED] += s
    if ad[a, D_INSIDE] > ad[a, D_PEAK_IN]:
        ad[a, D_PEAK_IN] = ad[a, D_INSIDE]
    vf[gi[g, G_VISIT], V_ENTER] = now
    gi[g, G_STATE] = INSIDE
    dwell = draw(ai[a, A_DWELL_DIST], af[a, A_DWELL_MEAN], af[a, A_DWELL_CV], key, g, S_DWELL, gi[g, G_PLAN_K], 0)
    heap_push(ht, hs, hid, ctr, now + dwell, g)


@njit(**NO_RC)
def dwell_done(g, now, gi, vi, vf, ad, adf, plan_st, todo, ctr):
    """Group g leaves the attraction: its room inside is free again."""
    a = gi[g, G_ATTR]
    s = gi[g, G_SIZE]
    _touch_attr(ad, adf, a, now)
    ad[a, D_INSIDE] -= s
    ad[a, D_RESERVED] -= s
    ad[a, D_LEFT] += s
    v = gi[g, G_VISIT]
    vf[v, V_LEAVE] = now
    vi[v, V_OUTCOME] = OUT_DONE
    plan_st[g, gi[g, G_PLAN_K]] = P_VISITED
    gi[g, G_VISITS] += 1
    _todo(todo, ctr, g)


@njit(**NO_RC)
def close_attraction(a, now, gi, vi, vf, ad, adf, qh, qt, plan_st, todo, ctr):
    """Closing time is the last admission: everyone still queueing is turned away (in queue
    order, reservation lane first); those inside finish their visit."""
    n_attr = ad.shape[0]
    for lst in (n_attr + a, a):
        while qh[lst] >= 0:
            g = _pop_head(gi, qh, qt, lst)
            s = gi[g, G_SIZE]
            _touch_attr(ad, adf, a, now)
            if lst == a:
                ad[a, D_QP] -= s
            else:
                ad[a, D_PQP] -= s
            turn_away(g, a, now, gi, vi, vf, ad, plan_st, todo, ctr)


# -- hotels ------------------------------------------------------------------------------------
@njit(**NO_RC)
def search_step(g, now, gi, gf, hi, hotel_order, T, par, ht, hs, hid, todo, ctr):
    """Walk-in room search: go to the next hotel in order of travel time from the entry point,
    or give up when all (or PAR_MAX_ENQ) have been asked."""
    k = gi[g, G_SEARCH_K]
    if k >= min(hotel_order.shape[1], int(par[PAR_MAX_ENQ])):
        gf[g, F_SEARCH_END] = now
        _todo(todo, ctr, g)
        return
    h = hotel_order[gi[g, G_ENTRY], k]
    depart(g, now, gi[g, G_PLACE], hi[h, H_PLACE], SEARCH_TRAVEL, gi, gf, T, par, ht, hs, hid, ctr)


@njit(**NO_RC)
def enquiry_done(g, now, gi, gf, hf, hi, hd, hotel_order, T, par, ht, hs, hid, todo, ctr):
    k = gi[g, G_SEARCH_K]
    h = hotel_order[gi[g, G_ENTRY], k]
    rooms = gi[g, G_ROOMS]
    if hd[h, HD_FREE] >= rooms and now < hf[h, H_LET_UNTIL]:
        hd[h, HD_FREE] -= rooms
        gi[g, G_HOTEL] = h
        gf[g, F_SEARCH_END] = now
        _todo(todo, ctr, g)
    else:
        gi[g, G_SEARCH_K] = k + 1
        search_step(g, now, gi, gf, hi, hotel_order, T, par, ht, hs, hid, todo, ctr)


@njit(**NO_RC)
def platform_done(g, now, gi, gf, hf, hd, hotel_order, todo, ctr):
    """The platform books the free room nearest (by travel time) to the entry point at once."""
    e = gi[g, G_ENTRY]
    rooms = gi[g, G_ROOMS]
    for k in range(hotel_order.shape[1]):
        h = hotel_order[e, k]
        if hd[h, HD_FREE] >= rooms and now < hf[h, H_LET_UNTIL]:
            hd[h, HD_FREE] -= rooms
            gi[g, G_HOTEL] = h
            break
    gf[g, F_SEARCH_END] = now
    _todo(todo, ctr, g)


@njit(**NO_RC)
def try_start_desks(h, now, key, n_attr, hf, hi, hd, hdf, qh, qt, gi, gf, ht, hs, hid, ctr):
    lst = 2 * n_attr + h
    while hd[h, HD_BUSY] < hi[h, H_DESKS] and qh[lst] >= 0:
        g = _pop_head(gi, qh, qt, lst)
        _touch_hotel(hd, hdf, h, now)
        hd[h, HD_QP] -= gi[g, G_SIZE]
        hd[h, HD_BUSY] += 1
        gi[g, G_STATE] = DESK
        gf[g, F_DESK_START] = now
        dur = draw(hi[h, H_DESK_DIST], hf[h, H_DESK_MEAN], hf[h, H_DESK_CV], key, g, S_DESK, 0, 0)
        heap_push(ht, hs, hid, ctr, now + dur, g)


@njit(**NO_RC)
def arrive_hotel(g, now, n_attr, gi, gf, par, hd, hdf, qh, qt, ht, hs, hid, ctr):
    """Evening check-in. Online check-in picks up the key (PAR_ONLINE_S, no desk queue); the
    others queue FIFO for the front desk, one transaction per group. Returns the hotel whose
    desks should be tried, or -1."""
    h = gi[g, G_HOTEL]
    gf[g, F_CHECKIN_START] = now
    if (gi[g, G_FLAGS] & F_ONLINE) != 0:
        gi[g, G_STATE] = DESK
        gf[g, F_DESK_START] = now
        heap_push(ht, hs, hid, ctr, now + par[PAR_ONLINE_S], g)
        return -1
    s = gi[g, G_SIZE]
    _touch_hotel(hd, hdf, h, now)
    _append(gi, qh, qt, 2 * n_attr + h, g)
    hd[h, HD_QP] += s
    hd[h, HD_JOINED] += s
    if hd[h, HD_QP] > hd[h, HD_PEAK_Q]:
        hd[h, HD_PEAK_Q] = hd[h, HD_QP]
    gf[g, F_MARK] = now
    gi[g, G_STATE] = DESK_QUEUE
    return h


# -- the loop ----------------------------------------------------------------------------------
@njit(**NO_RC)
def _arrive(g, now, gi, gf, hi, hotel_order, entry_place, T, par, ht, hs, hid, todo, ctr):
    """Group g arrives in the city at its entry point: it chooses its first stop (``todo``), or
    first looks for a room."""
    gi[g, G_PLACE] = entry_place[gi[g, G_ENTRY]]
    flags = gi[g, G_FLAGS]
    if (flags & F_OVERNIGHT) == 0:
        _todo(todo, ctr, g)
    elif (flags & F_PLATFORM) != 0:
        gi[g, G_STATE] = SEARCH_PLATFORM
        heap_push(ht, hs, hid, ctr, now + par[PAR_PLATFORM_S], g)
    else:
        search_step(g, now, gi, gf, hi, hotel_order, T, par, ht, hs, hid, todo, ctr)


@njit(cache=True, nogil=True, **NO_RC)
def _arrive_now(g0, g1, now, T, af, ai, hi, hotel_order, entry_place, par, plan, gi, gf, plan_st, ad, slots, ht, hs,
                hid, todo, ctr):
    for g in range(g0, g1):
        _arrive(g, now, gi, gf, hi, hotel_order, entry_place, T, par, ht, hs, hid, todo, ctr)
    for i in range(ctr[C_TODO]):
        decide_next(todo[i], now, gi, gf, plan, plan_st, af, ai, ad, T, par, slots, hi, entry_place, ht, hs, hid, ctr)
    ctr[C_TODO] = 0


def arrive_now(w, g0: int, g1: int) -> None:
    """Groups g0 .. g1-1 (appended, handed over by another model) arrive now, after every event
    up to now: in index order, each then choosing its first stop."""
    _arrive_now(g0, g1, float(w.now[0]), w.T, w.af, w.ai, w.hi, w.hotel_order, w.entry_place, w.par, w.plan, w.gi,
                w.gf, w.plan_st, w.ad, w.slots, w.ht, w.hs, w.hid, w.todo, w.ctr)


@njit(cache=True, nogil=True, **NO_RC)
def _run(t_stop, key, T, af, ai, hf, hi, hotel_order, entry_place, par, plan, gi, gf, plan_st, vi, vf,
         ad, adf, hd, hdf, qh, qt, slots, ht, hs, hid, todo, ctr):
    n_groups = ctr[C_N_DRAWN]  # the groups drawn at construction arrive here, in index order
    n_attr = af.shape[0]
    while True:
        nxt = ctr[C_NEXT_ARR]
        ta = gf[nxt, F_ARRIVE] if nxt < n_groups else INF
        th = ht[0] if ctr[C_HEAP_N] > 0 else INF
        if ta <= th:  # a group arrives in the city
            if ta > t_stop:
                break
            now = ta
            ctr[C_NEXT_ARR] = nxt + 1
            _arrive(nxt, now, gi, gf, hi, hotel_order, entry_place, T, par, ht, hs, hid, todo, ctr)
        else:
            if th > t_stop:
                break
            now, g = heap_pop(ht, hs, hid, ctr)
            if g < 0:  # an attraction opens or closes
                code = -1 - g
                a = code >> 1
                if code & 1:
                    close_attraction(a, now, gi, vi, vf, ad, adf, qh, qt, plan_st, todo, ctr)
                else:
                    try_start_gates(a, now, key, af, ai, ad, adf, qh, qt, gi, vf, ht, hs, hid, ctr)
            else:
                st = gi[g, G_STATE]
                if st == SEARCH_TRAVEL or st == TRAVEL_ATTR or st == TRAVEL_HOTEL or st == TRAVEL_EXIT:
                    gi[g, G_PLACE] = gi[g, G_TO]
                if st == TRAVEL_ATTR:
                    a = gi[g, G_ATTR]
                    ad[a, D_ENROUTE] -= gi[g, G_SIZE]
                    r = arrive_attraction(g, now, gi, vi, vf, af, ad, par, ht, hs, hid, ctr)
                    if r < 0:
                        turn_away(g, a, now, gi, vi, vf, ad, plan_st, todo, ctr)
                    elif r > 0:
                        join_queue(g, a, now, gi[g, G_SLOT] >= 0, ad, adf, qh, qt, gi, vf)
                        try_start_gates(a, now, key, af, ai, ad, adf, qh, qt, gi, vf, ht, hs, hid, ctr)
                elif st == WAIT_SLOT:
                    a = gi[g, G_ATTR]
                    ad[a, D_SLOT_WAIT] -= gi[g, G_SIZE]
                    join_queue(g, a, now, True, ad, adf, qh, qt, gi, vf)
                    try_start_gates(a, now, key, af, ai, ad, adf, qh, qt, gi, vf, ht, hs, hid, ctr)
                elif st == GATE:
                    gate_done(g, now, key, gi, vf, af, ai, ad, adf, ht, hs, hid, ctr)
                    try_start_gates(gi[g, G_ATTR], now, key, af, ai, ad, adf, qh, qt, gi, vf, ht, hs, hid, ctr)
                elif st == INSIDE:
                    dwell_done(g, now, gi, vi, vf, ad, adf, plan_st, todo, ctr)
                    try_start_gates(gi[g, G_ATTR], now, key, af, ai, ad, adf, qh, qt, gi, vf, ht, hs, hid, ctr)
                elif st == IDLE:
                    _todo(todo, ctr, g)
                elif st == SEARCH_TRAVEL:
                    gi[g, G_STATE] = SEARCH_ENQUIRY
                    h = hotel_order[gi[g, G_ENTRY], gi[g, G_SEARCH_K]]
                    heap_push(ht, hs, hid, ctr, now + hf[h, H_ENQUIRY], g)
                elif st == SEARCH_ENQUIRY:
                    enquiry_done(g, now, gi, gf, hf, hi, hd, hotel_order, T, par, ht, hs, hid, todo, ctr)
                elif st == SEARCH_PLATFORM:
                    platform_done(g, now, gi, gf, hf, hd, hotel_order, todo, ctr)
                elif st == TRAVEL_HOTEL:
                    h = arrive_hotel(g, now, n_attr, gi, gf, par, hd, hdf, qh, qt, ht, hs, hid, ctr)
                    if h >= 0:
                        try_start_desks(h, now, key, n_attr, hf, hi, hd, hdf, qh, qt, gi, gf, ht, hs, hid, ctr)
                elif st == DESK:
                    gf[g, F_CHECKIN_END] = now
                    gf[g, F_LEFT] = now
                    gi[g, G_STATE] = CHECKED_IN
                    if (gi[g, G_FLAGS] & F_ONLINE) == 0:
                        h = gi[g, G_HOTEL]
                        hd[h, HD_BUSY] -= 1
                        try_start_desks(h, now, key, n_attr, hf, hi, hd, hdf, qh, qt, gi, gf, ht, hs, hid, ctr)
                elif st == TRAVEL_EXIT:
                    gi[g, G_STATE] = LEFT
                    gf[g, F_LEFT] = now
        # the groups that have to choose their next stop, in the order they became free
        for i in range(ctr[C_TODO]):
            decide_next(todo[i], now, gi, gf, plan, plan_st, af, ai, ad, T, par, slots, hi, entry_place,
                        ht, hs, hid, ctr)
        ctr[C_TODO] = 0


def run_until(w, t_stop: float) -> None:
    """Process every event with time <= t_stop (in time order; ties: city arrivals first, then
    the order they were scheduled) and set the clock to t_stop."""
    _run(float(t_stop), w.key[0], w.T, w.af, w.ai, w.hf, w.hi, w.hotel_order, w.entry_place, w.par, w.plan,
         w.gi, w.gf, w.plan_st, w.vi, w.vf, w.ad, w.adf, w.hd, w.hdf, w.qh, w.qt, w.slots, w.ht, w.hs, w.hid,
         w.todo, w.ctr)
    w.now[0] = t_stop


@njit(cache=True, nogil=True, **NO_RC)
def _schedule_openings(t0, af, ht, hs, hid, ctr):
    for a in range(af.shape[0]):
        if af[a, A_OPEN] > t0 and af[a, A_OPEN] < INF:
            heap_push(ht, hs, hid, ctr, af[a, A_OPEN], -1 - 2 * a)
        if af[a, A_CLOSE] < INF:
            heap_push(ht, hs, hid, ctr, af[a, A_CLOSE], -1 - (2 * a + 1))


def schedule_openings(w) -> None:
    """Put each attraction's opening and closing (when finite and after the start) in the heap."""
    _schedule_openings(w.par[PAR_T0], w.af, w.ht, w.hs, w.hid, w.ctr)
