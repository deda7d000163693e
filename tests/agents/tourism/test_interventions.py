"""Demand, hotels and each intervention do what docs/tourist_flow.md says."""
from __future__ import annotations

import numpy as np
import pytest

from agents.tourism import Attractions, Demand, Hotels, Interventions, kpis, one_plus_poisson_pmf
from agents.tourism.layout import (
    A_CAP, F_ARRIVE, F_OVERNIGHT, F_PLATFORM, F_SEARCH_END, G_ENTRY, G_FLAGS, G_HOTEL, G_ROOMS, G_SEARCH_K,
    G_SIZE,
)

from .conftest import city


def run(**kw):
    eng = city(**kw)
    eng.advance(60 * 3600.0)
    return eng


@pytest.mark.slow
def test_arrivals_and_group_sizes():
    pmf = one_plus_poisson_pmf(2.5, 8)
    eng = run(rate=(600.0, 300.0), demand=Demand(group_size_pmf=pmf, overnight_share=0.5))
    persons = eng.kpis()["tourists_total"]
    assert persons == pytest.approx(900.0 * 12, rel=0.05)  # 12 h at 900 persons/h
    size = eng.world.gi[:, G_SIZE]
    assert size.mean() == pytest.approx(2.5, rel=0.03)
    assert np.bincount(size, minlength=9)[1:] / len(size) == pytest.approx(pmf, abs=0.015)
    assert (eng.world.gi[:, G_ROOMS] == (size + 1) // 2).all()
    by_entry = np.bincount(eng.world.gi[:, G_ENTRY], weights=size)
    assert by_entry[0] / by_entry.sum() == pytest.approx(2 / 3, abs=0.02)


def test_deterministic_arrivals_are_evenly_spaced():
    eng = city(rate=(360.0, 0.0), process="deterministic", demand=Demand(overnight_share=0.0))
    t = eng.world.gf[:, F_ARRIVE]
    assert len(t) == 360 * 12 and np.diff(t) == pytest.approx(10.0)


@pytest.mark.slow
def test_walk_in_search_asks_hotels_nearest_first():
    eng = run(demand=Demand(overnight_share=1.0))
    w = eng.world
    booked = w.gi[:, G_HOTEL] >= 0
    e, k = w.gi[booked, G_ENTRY], w.gi[booked, G_SEARCH_K]
    assert (w.hotel_order[e, k] == w.gi[booked, G_HOTEL]).all()
    assert (k > 0).any() and (k == 0).any()  # some found a room at the nearest hotel, others walked on
    # the nearest hotel to the station (place 0) is "central" (place 6)
    assert w.hotel_order[0, 0] == 0
    failed = ((w.gi[:, G_FLAGS] & F_OVERNIGHT) != 0) & ~booked
    assert (w.gi[failed, G_SEARCH_K] == 3).all()
    assert eng.kpis()["room_search_failed"] == w.gi[failed, G_SIZE].sum()


@pytest.mark.slow
def test_room_platform_finds_rooms_in_its_promised_time():
    eng = run(demand=Demand(overnight_share=1.0), interventions=Interventions(room_platform_share=1.0,
                                                                            platform_search_s=10.0))
    assert eng.kpis()["mean_room_search_s"] == pytest.approx(10.0)
    walk = run(demand=Demand(overnight_share=1.0))
    assert walk.kpis()["mean_room_search_s"] > 600.0
    # the platform fills the rooms nearest to the entry points first: no free room left where walk-ins fail
    assert sum(eng.hotel_values()["rooms_free"].values()) <= sum(walk.hotel_values()["rooms_free"].values())


@pytest.mark.slow
def test_online_checkin_takes_its_promised_time():
    eng = run(interventions=Interventions(online_checkin_share=1.0, online_checkin_s=30.0))
    assert eng.kpis()["mean_checkin_s"] == pytest.approx(30.0)
    assert run().kpis()["mean_checkin_s"] > 150.0  # at least one desk service


@pytest.mark.parametrize("iv", [Interventions(extra_gates=2), Interventions(entry_time_factor=0.3)])
def test_more_gates_and_faster_entry_cut_waits(iv):
    base = run(rate=(600.0, 200.0)).kpis()
    better = run(rate=(600.0, 200.0), interventions=iv).kpis()
    assert better["mean_entry_wait_s"] < 0.8 * base["mean_entry_wait_s"]
    assert better["queue_hours_total"] < base["queue_hours_total"]


def test_capacity_cap_limits_the_crowd_inside():
    eng = run(rate=(600.0, 200.0), interventions=Interventions(capacity_cap=100))
    assert (eng.world.ai[:, A_CAP] == 100).all()
    assert eng.kpis()["peak_occupancy_ratio"] <= max(100 / c for c in (800, 300, 500, 200)) + 1e-12
    assert run(rate=(600.0, 200.0)).kpis()["peak_occupancy_ratio"] > 0.5


def test_reservations_skip_the_regular_queue():
    eng = run(rate=(600.0, 200.0), interventions=Interventions(reservation_share=0.4))
    v = kpis.visit_table(eng.world)
    ok = np.isfinite(v["start_s"])
    wait = v["start_s"] - v["join_s"]
    res, reg = ok & (v["reserved"] == 1), ok & (v["reserved"] == 0)
    assert res.sum() > 500 and reg.sum() > 500
    assert wait[res].mean() < 0.2 * wait[reg].mean()
    # a slot holder joins at its slot start at the earliest
    slot_wait = v["join_s"] - v["arrive_s"]
    assert (slot_wait[res] >= 0).all() and (slot_wait[res] > 0).any() and (slot_wait[reg] == 0).all()


def test_recommendation_spreads_the_load():
    # a morning rush to one of two identical attractions side by side; everybody lists the
    # famous one first and its twin as the alternative: without advice all queue at the first
    at = Attractions(place=[2, 2], gates=2, service_time_s=30.0, capacity=2000, dwell_mean_s=1800.0,
                     popularity=[1e6, 1.0], ids=["famous", "twin"])
    dm = Demand(max_visits=1, alternatives=1, overnight_share=0.0, time_budget_s=20 * 3600.0)
    rush = (([7 * 3600.0, 8 * 3600.0], [600.0, 0.0]), 0.0)
    kw = dict(rate=rush, attractions=at, demand=dm)
    base = run(**kw)
    rec = run(**kw, interventions=Interventions(recommend_share=1.0))
    crowd = run(**kw, interventions=Interventions(recommend_share=1.0, recommend_objective="crowding"))
    half = run(**kw, interventions=Interventions(recommend_share=0.5))
    wait = {name: e.kpis()["mean_entry_wait_s"] for name, e in
            (("base", base), ("rec", rec), ("crowd", crowd), ("half", half))}
    assert wait["rec"] < 0.6 * wait["base"] and wait["crowd"] < 0.6 * wait["base"]
    assert wait["rec"] < wait["half"] < wait["base"]
    visits = [np.bincount(kpis.visit_table(e.world)["attraction"], minlength=2) for e in (base, rec)]
    assert visits[0][1] == 0 and abs(visits[1][0] - visits[1][1]) < 0.1 * visits[1].sum()
    assert base.kpis()["visits_completed"] == rec.kpis()["visits_completed"] == base.kpis()["tourists_total"]


def test_alternatives_replace_a_closed_attraction_and_visits_stop_at_max_visits():
    at = Attractions(place=[2, 3, 4], gates=4, service_time_s=10.0, capacity=3000, dwell_mean_s=600.0,
                     popularity=[10.0, 1.0, 1.0], open_s=[None, None, None], close_s=[9 * 3600.0, None, None],
                     ids=["closes early", "b", "c"])
    eng = run(attractions=at, demand=Demand(max_visits=1, alternatives=2, overnight_share=0.0,
                                            time_budget_s=6 * 3600.0))
    v = kpis.visit_table(eng.world)
    per_group = np.bincount(v["group"][v["outcome"] == 1], minlength=eng.n_groups)
    assert per_group.max() == 1 and (per_group == 1).mean() > 0.95
    late = eng.world.gf[v["group"], F_ARRIVE] > 9 * 3600.0
    assert not (v["attraction"][late] == 0).any() and (v["attraction"][late] > 0).sum() > 100


def test_shuttle_is_taken_by_its_users_where_faster():
    eng = city(interventions=Interventions(shuttle_share=1.0, shuttle_headway_s=300.0))
    none = city(interventions=Interventions(shuttle_share=0.0))
    modes, modes0 = [], []
    for t in np.arange(8, 18, 0.25) * 3600:
        eng.advance(t)
        none.advance(t)
        modes.append(eng.travelling()["mode"])
        modes0.append(none.travelling()["mode"])
    assert np.concatenate(modes).sum() > 10 and np.concatenate(modes0).sum() == 0


def test_keyed_values_agree_with_states():
    eng = city(interventions=Interventions(reservation_share=0.3))
    eng.advance(12 * 3600.0)
    av, hv = eng.attraction_values(), eng.hotel_values()
    st = eng.state_persons()
    assert set(av["queue_length"]) == {"old town", "museum", "park", "tower"}
    assert sum(av["queue_length"].values()) == st["queue"]
    assert sum(av["occupancy"].values()) == st["inside"]
    assert sum(hv["desk_queue"].values()) == st["desk_queue"]
    booked = np.bincount(eng.world.gi[eng.world.gi[:, G_HOTEL] >= 0, G_HOTEL],
                         weights=eng.world.gi[eng.world.gi[:, G_HOTEL] >= 0, G_ROOMS], minlength=3)
    assert [hv["rooms_free"][h] for h in ("central", "east", "west")] == (np.array([400, 300, 600]) - booked).tolist()
    # the integrals grow with the queue: their difference over an interval is persons × seconds
    q0 = av["queue_person_s"]["old town"]
    eng.advance(12 * 3600.0 + 60.0)
    q1 = eng.attraction_values()["queue_person_s"]["old town"]
    assert q1 - q0 >= 0


def test_platform_users_search_from_the_entry_point():
    eng = run(demand=Demand(overnight_share=1.0), interventions=Interventions(room_platform_share=0.5))
    w = eng.world
    plat = (w.gi[:, G_FLAGS] & F_PLATFORM) != 0
    assert 0.4 < plat.mean() < 0.6
    assert np.allclose(w.gf[plat, F_SEARCH_END] - w.gf[plat, F_ARRIVE], 10.0)


def test_hotel_with_no_rooms_is_skipped():
    ho = Hotels(place=[6, 7], rooms=[10, 500], rooms_free=[0, 500], ids=["full", "free"])
    eng = run(hotels=ho, demand=Demand(overnight_share=1.0))
    assert eng.hotel_values()["rooms_free"]["full"] == 0
    assert (eng.world.gi[:, G_HOTEL] != 0).all()
