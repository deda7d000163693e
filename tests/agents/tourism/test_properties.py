"""Property tests: on random small cities with random interventions, capacity holds, everybody is
accounted for, Little's law holds exactly and pausing changes nothing."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.tourism import Attractions, Demand, Entries, Hotels, Interventions, TourismEngine, kpis
from agents.tourism.layout import A_CAP

from .test_state import assert_same
from .test_verification import occupancy_paths


@st.composite
def cities(draw):
    n_p = draw(st.integers(3, 7))
    xy = np.array(draw(st.lists(st.tuples(st.floats(0, 3000), st.floats(0, 3000)), min_size=n_p, max_size=n_p)))
    walk = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1)) / 1.2
    n_a = draw(st.integers(1, 3))
    n_h = draw(st.integers(0, 2))
    places = st.integers(0, n_p - 1)
    hours = draw(st.lists(st.tuples(st.floats(6, 12), st.floats(1, 10)), min_size=n_a, max_size=n_a))
    pmf = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=1, max_size=4)))
    pmf /= pmf.sum()
    at = Attractions(
        place=draw(st.lists(places, min_size=n_a, max_size=n_a)),
        gates=draw(st.lists(st.integers(1, 3), min_size=n_a, max_size=n_a)),
        service_time_s=draw(st.lists(st.floats(1, 60), min_size=n_a, max_size=n_a)),
        service_time_distribution=draw(st.lists(st.sampled_from(["exponential", "deterministic", "lognormal"]),
                                                min_size=n_a, max_size=n_a)),
        capacity=draw(st.lists(st.integers(len(pmf), 60), min_size=n_a, max_size=n_a)),
        dwell_mean_s=draw(st.lists(st.floats(0, 5400), min_size=n_a, max_size=n_a)),
        popularity=draw(st.lists(st.floats(0.1, 5), min_size=n_a, max_size=n_a)),
        open_s=[o * 3600 if draw(st.booleans()) else None for o, _ in hours],
        close_s=[(o + d) * 3600 if draw(st.booleans()) else None for o, d in hours])
    ho = None if n_h == 0 else Hotels(place=draw(st.lists(places, min_size=n_h, max_size=n_h)),
                                      rooms=draw(st.lists(st.integers(0, 40), min_size=n_h, max_size=n_h)),
                                      desks=draw(st.lists(st.integers(1, 2), min_size=n_h, max_size=n_h)))
    share = st.floats(0, 1)
    iv = Interventions(reservation_share=draw(share), slot_length_s=draw(st.floats(300, 3600)),
                       recommend_share=draw(share), recommend_objective=draw(st.sampled_from(["wait", "crowding"])),
                       room_platform_share=draw(share), online_checkin_share=draw(share),
                       entry_time_factor=draw(st.floats(0.2, 1.5)))
    dm = Demand(group_size_pmf=pmf, time_budget_s=draw(st.floats(1800, 10 * 3600)), max_visits=draw(st.integers(1, 3)),
                alternatives=draw(st.integers(0, 2)), overnight_share=draw(share))
    en = Entries(place=[draw(places)], arrival_rate_per_h=draw(st.floats(10, 400)),
                 arrival_process=draw(st.sampled_from(["poisson", "deterministic"])))
    return dict(travel_s=walk, entries=en, attractions=at, hotels=ho, demand=dm, interventions=iv,
                start_s=6 * 3600.0, end_s=14 * 3600.0), draw(st.integers(0, 2**32 - 1)), \
        sorted(draw(st.lists(st.floats(6 * 3600, 30 * 3600), max_size=8)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cities())
def test_random_cities(case):
    kw, seed, stops = case
    one = TourismEngine(**kw, rng=np.random.default_rng(seed))
    one.advance(1e8)  # until everybody is done, however long the queues
    k = one.kpis()
    assert one.category_persons()["done"] == k["tourists_total"] == sum(one.state_persons().values())
    cap = one.world.ai[:, A_CAP]
    for a, path in enumerate(occupancy_paths(one)):
        assert len(path) == 0 or (path.max() <= cap[a] and path[-1] == 0)
    q_int, in_int, desk_int = kpis.queue_integrals(one.world)
    v = kpis.visit_table(one.world)
    out = np.where(np.isfinite(v["start_s"]), v["start_s"], v["leave_s"])
    for a in range(len(cap)):
        m = (v["attraction"] == a) & np.isfinite(v["join_s"])
        assert np.isclose(q_int[a], (v["size"][m] * (out[m] - v["join_s"][m])).sum(), rtol=1e-9, atol=1e-6)
        m = (v["attraction"] == a) & np.isfinite(v["enter_s"])
        assert np.isclose(in_int[a], (v["size"][m] * (v["leave_s"][m] - v["enter_s"][m])).sum(), rtol=1e-9,
                          atol=1e-6)
    waits, size, hotel = kpis.desk_waits(one.world)
    for h in range(len(desk_int)):
        assert np.isclose(desk_int[h], (waits[hotel == h] * size[hotel == h]).sum(), rtol=1e-9, atol=1e-6)
    paused = TourismEngine(**kw, rng=np.random.default_rng(seed))
    for t in stops:
        paused.advance(t)
    paused.advance(1e8)
    assert_same(one, paused)
