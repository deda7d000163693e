"""Verification against queueing theory and conservation laws (docs/tourist_flow.md lists the figures)."""
from __future__ import annotations

import numpy as np
import pytest

from agents.tourism import Attractions, Demand, Interventions, kpis
from agents.tourism.layout import (
    A_CAP, A_CLOSE, A_OPEN, D_ENROUTE, D_INSIDE, D_PEAK_IN, D_PQP, D_QP, D_SLOT_WAIT, F_BUDGET_END, TRAVELLING_STATES,
)
from agents.tourism.queueing_theory import mdc_mean_wait, mmc_mean_wait

from .conftest import city, single_queue


def mean_wait_after_warmup(eng, warmup_s):
    v = kpis.visit_table(eng.world)
    ok = np.isfinite(v["start_s"]) & (v["join_s"] > warmup_s)
    return float((v["start_s"] - v["join_s"])[ok].mean()), int(ok.sum())


def replicated_mean_wait(dist, gates, rho, reps=4, n=100_000):
    """Mean entry wait over `reps` independent runs of n arrivals (the first simulated hour of
    each dropped as warm-up). Replications keep the rate's sampling noise, which the wait
    amplifies by about 1/(1-ρ), well inside the tolerance."""
    waits = []
    for seed in range(1, reps + 1):
        eng, lam, end = single_queue(gates=gates, rho=rho, dist=dist, n=n, seed=seed)
        eng.advance(end + 1e6)
        got, count = mean_wait_after_warmup(eng, 3600.0)
        assert count > 0.95 * n
        waits.append(got)
    return float(np.mean(waits)), lam


@pytest.mark.slow
@pytest.mark.parametrize("gates,rho", [(1, 0.7), (3, 0.8), (8, 0.85)])
def test_mmc_mean_wait_matches_erlang_c(gates, rho):
    got, lam = replicated_mean_wait("exponential", gates, rho)
    ref = mmc_mean_wait(lam, 60.0, gates)
    assert got == pytest.approx(ref, rel=0.10), f"M/M/{gates}: {got:.2f} s vs Erlang C {ref:.2f} s"


@pytest.mark.slow
@pytest.mark.parametrize("gates,rho", [(1, 0.7), (3, 0.8), (8, 0.85)])
def test_mdc_mean_wait_matches_crommelin(gates, rho):
    got, lam = replicated_mean_wait("deterministic", gates, rho)
    ref = mdc_mean_wait(lam, 60.0, gates)
    assert got == pytest.approx(ref, rel=0.10), f"M/D/{gates}: {got:.2f} s vs exact {ref:.2f} s"


def test_deterministic_arrivals_and_service_never_wait():
    eng, lam, end = single_queue(gates=2, rho=0.9, dist="deterministic", process="deterministic", n=5000)
    eng.advance(end + 1e5)
    k = eng.kpis()
    assert k["visits_completed"] == eng.n_groups and k["mean_entry_wait_s"] == 0.0


def finished_city(**kw):
    eng = city(**kw)
    eng.advance(60 * 3600.0)  # everybody is done long before
    assert eng.category_persons()["done"] == eng.kpis()["tourists_total"]
    return eng


IVS = [Interventions(), Interventions(reservation_share=0.5, recommend_share=0.5, capacity_cap=250),
       Interventions(room_platform_share=0.7, online_checkin_share=0.5, extra_gates=1, entry_time_factor=0.5)]


@pytest.mark.parametrize("iv", IVS)
def test_littles_law_for_every_queue_and_inside(iv):
    """L = λW over a run that starts and ends empty: time-average persons in queue × duration
    = persons joined × their mean wait, for each entry queue, each attraction's inside and each
    front desk queue (the integrals come from the counts, the waits from the visit records)."""
    eng = finished_city(interventions=iv)
    w = eng.world
    dur = eng.now - eng.start_s
    q_int, in_int, desk_int = kpis.queue_integrals(w)
    v = kpis.visit_table(w)
    for a in range(len(eng.attr_ids)):
        mine = (v["attraction"] == a) & np.isfinite(v["join_s"])
        lam = v["size"][mine].sum() / dur
        # the queue ends at the gate, or at closing time for those turned away
        out = np.where(np.isfinite(v["start_s"]), v["start_s"], v["leave_s"])
        wq = np.average(out[mine] - v["join_s"][mine], weights=v["size"][mine])
        assert q_int[a] / dur == pytest.approx(lam * wq, rel=1e-9), eng.attr_ids[a]
        ins = (v["attraction"] == a) & np.isfinite(v["enter_s"])
        lam_in = v["size"][ins].sum() / dur
        w_in = np.average(v["leave_s"][ins] - v["enter_s"][ins], weights=v["size"][ins])
        assert in_int[a] / dur == pytest.approx(lam_in * w_in, rel=1e-9), eng.attr_ids[a]
        assert lam > 0 and lam_in > 0
    waits, size, hotel = kpis.desk_waits(w)
    for h in range(len(eng.hotel_ids)):
        m = hotel == h
        assert desk_int[h] == pytest.approx((waits[m] * size[m]).sum(), rel=1e-9, abs=1e-6)
    assert desk_int.sum() > 0


def occupancy_paths(eng):
    """Persons inside each attraction after every entry and exit, rebuilt from the visit records."""
    v = kpis.visit_table(eng.world)
    out = []
    for a in range(len(eng.attr_ids)):
        m = (v["attraction"] == a) & np.isfinite(v["enter_s"])
        t = np.concatenate([v["enter_s"][m], v["leave_s"][m]])
        d = np.concatenate([v["size"][m], -v["size"][m]])
        o = np.lexsort((d, t))  # exits before entries at the same instant
        out.append(np.cumsum(d[o]))
    return out


@pytest.mark.parametrize("iv", IVS)
def test_occupancy_never_exceeds_capacity(iv):
    eng = finished_city(interventions=iv, rate=(600.0, 200.0))
    cap = eng.world.ai[:, A_CAP]  # effective capacity (after caps)
    for a, path in enumerate(occupancy_paths(eng)):
        assert path.max() <= cap[a], eng.attr_ids[a]
        assert path[-1] == 0
    assert eng.kpis()["peak_occupancy_ratio"] > 0.5  # the test does reach capacity somewhere
    assert (eng.world.ad[:, D_PEAK_IN] <= cap).all()


def test_every_tourist_is_accounted_for_at_any_time():
    eng = city(interventions=IVS[1])
    for t in np.linspace(7 * 3600, 40 * 3600, 12):
        eng.advance(t)
        k = eng.kpis()
        states = eng.state_persons()
        assert sum(states.values()) == k["tourists_total"]
        assert states["not_arrived"] == 0
        # and the attraction counts agree with the group states
        ad = eng.world.ad
        assert states["queue"] == ad[:, D_QP].sum() + ad[:, D_PQP].sum()
        assert states["inside"] == ad[:, D_INSIDE].sum()
        assert states["wait_slot"] == ad[:, D_SLOT_WAIT].sum()
        assert states["travel_attraction"] == ad[:, D_ENROUTE].sum()
    assert eng.category_persons()["done"] == eng.kpis()["tourists_total"] > 0
    assert len(eng.travelling()["group"]) == 0
    # everybody who planned a visit either visited, was turned away or dropped it
    st = eng.world.plan_st[eng.world.plan >= 0]
    assert (st > 0).all()


def test_travel_records_are_consistent():
    eng = city(interventions=Interventions(shuttle_share=1.0, shuttle_headway_s=300.0))
    eng.advance(11 * 3600.0)
    tr = eng.travelling()
    assert len(tr["group"]) > 20
    assert set(np.unique(tr["state"])) <= set(TRAVELLING_STATES)
    T = eng.world.T
    walk = tr["mode"] == 0
    assert (tr["arrive_s"] >= eng.now).all()
    leg = tr["from_place"], tr["to_place"]
    assert tr["arrive_s"][walk] - tr["depart_s"][walk] == pytest.approx(T[0][leg[0][walk], leg[1][walk]])
    bus = ~walk
    assert bus.any()
    assert tr["arrive_s"][bus] - tr["depart_s"][bus] == pytest.approx(T[1][leg[0][bus], leg[1][bus]])


def test_only_open_attractions_admit_and_visits_fit_the_budget():
    eng = finished_city(rate=(500.0, 200.0))
    v = kpis.visit_table(eng.world)
    af = eng.world.af
    started = np.isfinite(v["start_s"])
    a = v["attraction"][started]
    assert (v["start_s"][started] >= af[a, A_OPEN]).all() and (v["start_s"][started] < af[a, A_CLOSE]).all()
    # nobody sets out to arrive before the opening; who arrives after closing (it closed on the
    # way) is turned away
    arr_a = v["attraction"]
    assert (v["arrive_s"] >= af[arr_a, A_OPEN] - 1e-6).all()
    late = v["arrive_s"] >= af[arr_a, A_CLOSE]
    assert (v["outcome"][late] == 2).all()
    assert (v["outcome"] > 0).all()
    # a group leaves for an attraction only if it expects to be done within its time budget
    budget_end = eng.world.gf[v["group"], F_BUDGET_END]
    assert (v["arrive_s"] <= budget_end).all()


def test_attractions_without_hours_and_a_closed_one():
    at = Attractions(place=[2, 3], gates=2, service_time_s=20.0, capacity=400, dwell_mean_s=1800.0,
                     open_s=[None, 0.0], close_s=[None, 1.0], ids=["always", "never"])
    eng = finished_city(attractions=at, demand=Demand(max_visits=2, overnight_share=0.0))
    v = kpis.visit_table(eng.world)
    assert (v["attraction"] == 0).sum() > 100 and not (v["attraction"] == 1).any()


def reference_fifo_starts(join, size, service, dwell, gates, cap):
    """Plain-Python reference of the entry discipline: in join order, a group starts at the
    first time when it is at the head (no overtaking), a gate is free and there is room inside
    for the whole group (persons at the gates or inside)."""
    starts, gate_end, started = [], [], []  # started: (leave time, persons)
    t = -np.inf
    for j, s, sv, dw in zip(join, size, service, dwell):
        t = max(j, t)
        while True:
            busy = sorted(e for e in gate_end if e > t)
            if len(busy) >= gates:
                t = busy[len(busy) - gates]
                continue
            held = sorted((lv, n) for lv, n in started if lv > t)
            short = s - (cap - sum(n for _, n in held))
            if short > 0:  # wait until enough people have come out
                t = next(lv for lv, cum in zip([h[0] for h in held], np.cumsum([h[1] for h in held])) if cum >= short)
                continue
            break
        starts.append(t)
        gate_end.append(t + sv)
        started.append((t + sv + dw, s))
    return np.array(starts)


@pytest.mark.slow
def test_entry_discipline_matches_a_plain_python_reference():
    """Same joins, group sizes, service and dwell times as the engine drew (read back from its
    visit records): the reference gives the same gate start for every group."""
    eng, lam, end = single_queue(gates=2, rho=0.8, n=5000, capacity=12, dwell_s=400.0,
                                 pmf=[0.5, 0.3, 0.2])
    eng.advance(end + 1e6)
    v = kpis.visit_table(eng.world)
    o = np.argsort(v["join_s"], kind="stable")
    join, size = v["join_s"][o], v["size"][o]
    service = (v["enter_s"] - v["start_s"])[o]
    dwell = (v["leave_s"] - v["enter_s"])[o]
    ref = reference_fifo_starts(join, size, service, dwell, 2, 12)
    assert np.allclose(ref, v["start_s"][o], rtol=0, atol=1e-6)
    assert (size > 1).mean() > 0.4
    assert (ref > join + 1).mean() > 0.2  # the gates and the capacity did make people wait
    assert max(p.max() for p in occupancy_paths(eng)) == 12
