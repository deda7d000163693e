"""Bad input gets a UserError that names the key and the feature and says how to fix it."""
from __future__ import annotations

import numpy as np
import pytest

from agents.tourism import Attractions, Demand, Entries, Hotels, Interventions, TourismEngine
from twin.core.errors import UserError

from .conftest import city

T2 = np.array([[0.0, 100.0], [100.0, 0.0]])


def build(entries=None, attractions=None, hotels=None, demand=None, interventions=None, T=T2, **kw):
    return TourismEngine(T, entries or Entries(place=[0], arrival_rate_per_h=100.0),
                         attractions or Attractions(place=[1], ids=["museum"]), hotels, demand, interventions,
                         rng=np.random.default_rng(0), **kw)


def test_attraction_with_zero_gates():
    with pytest.raises(UserError, match=r'attraction "museum": gates = 0; it must be at least 1\. Give at least 1'):
        build(attractions=Attractions(place=[1], gates=0, ids=["museum"]))


def test_negative_rate():
    with pytest.raises(UserError, match=r'entry "entry 0": arrival_rate_per_h = -5 is negative'):
        build(entries=Entries(place=[0], arrival_rate_per_h=-5.0))
    with pytest.raises(UserError, match=r"negative rate"):
        build(entries=Entries(place=[0], arrival_rate_per_h=[([0.0, 3600.0], [10.0, -1.0])]), end_s=7200.0)


@pytest.mark.slow
def test_profile_that_does_not_cover_the_day():
    late_start = ([6 * 3600.0, 12 * 3600.0], [100.0, 50.0])
    with pytest.raises(UserError, match=r"profile starts at 21600 s but the simulated period starts at 0 s"):
        build(entries=Entries(place=[0], arrival_rate_per_h=[late_start]))
    early_end = ([0.0, 3600.0, 7200.0], [100.0, 50.0])  # edges: ends at 2 h, the day at 24 h
    with pytest.raises(UserError, match=r"profile ends at 7200 s but the simulated period ends at 86400 s"):
        build(entries=Entries(place=[0], arrival_rate_per_h=[early_end]))
    # starts at or before the period and the last value holds on: fine
    build(entries=Entries(place=[0], arrival_rate_per_h=[([-3600.0, 3600.0], [0.0, 10.0])]))


@pytest.mark.parametrize("kw,match", [
    (dict(attractions=Attractions(place=[1], service_time_s=float("nan"), ids=["museum"])),
     r'attraction "museum": service_time_s = nan is not a finite number'),
    (dict(attractions=Attractions(place=[1], capacity=float("inf"), ids=["museum"])),
     r'attraction "museum": capacity = inf is not a finite number'),
    (dict(entries=Entries(place=[0], arrival_rate_per_h=float("inf"))), r"arrival_rate_per_h = inf is not a finite"),
    (dict(entries=Entries(place=[0], arrival_rate_per_h=[([0.0, np.nan], [1.0, 2.0])])), r"non-finite"),
    (dict(T=np.array([[0.0, np.nan], [1.0, 0.0]])), r"T\[0\]\[0, 1\] is NaN"),
    (dict(T=np.array([[0.0, np.inf], [1.0, 0.0]])), r"on foot from place 0 to 1 is not finite"),
    (dict(hotels=Hotels(place=[0], checkin_time_s=float("nan"), ids=["inn"])), r'hotel "inn": checkin_time_s = nan'),
    (dict(demand=Demand(time_budget_s=float("inf"))), r"time_budget_s = inf is not a finite number"),
    (dict(interventions=Interventions(entry_time_factor=float("nan"))), r"entry_time_factor = nan is not a finite"),
    (dict(end_s=float("inf")), r"end_s = inf is not a finite number"),
])
def test_non_finite_numbers(kw, match):
    with pytest.raises(UserError, match=match):
        build(**kw)


@pytest.mark.parametrize("kw,match", [
    (dict(attractions=Attractions(place=[1], service_time_distribution="exponentiel", ids=["museum"])),
     r'service_time_distribution = "exponentiel" is unknown \(did you mean "exponential"\?\)'),
    (dict(attractions=Attractions(place=[5], ids=["museum"])), r'"museum": place 5 is not a row of the travel-time'),
    (dict(attractions=Attractions(place=[1], capacity=0, ids=["museum"])), r'"museum": capacity = 0'),
    (dict(attractions=Attractions(place=[1], popularity=0.0, ids=["museum"])), r"every popularity is 0"),
    (dict(attractions=Attractions(place=[1], open_s=10.0, close_s=10.0, ids=["museum"])),
     r'"museum": close_s = 10 is not after open_s = 10'),
    (dict(attractions=Attractions(place=[1, 1], gates=[1, 2, 3])), r"gates has 3 values for 2 attractions"),
    (dict(entries=Entries(place=[0], arrival_process="bursty")), r'arrival_process = "bursty" is unknown'),
    (dict(entries=Entries(place=[], arrival_rate_per_h=[])), r"there is no entry point"),
    (dict(hotels=Hotels(place=[0], rooms=10, rooms_free=11, ids=["inn"])), r'"inn": rooms_free = 11 is more than'),
    (dict(hotels=Hotels(place=[0], desks=0, ids=["inn"])), r'"inn": desks = 0'),
    (dict(demand=Demand(group_size_pmf=[0.5, 0.4])), r"group_size_pmf sums to 0.9"),
    (dict(demand=Demand(group_size_pmf=[0.5, 0.5]), attractions=Attractions(place=[1], capacity=1, ids=["museum"])),
     r'"museum": capacity 1 .* smaller than the largest group \(2 persons\)'),
    (dict(interventions=Interventions(recommend_share=1.5)), r"recommend_share = 1.5: a share must be between 0 and 1"),
    (dict(interventions=Interventions(recommend_objective="fun")), r'recommend_objective = "fun"'),
    (dict(interventions=Interventions(extra_gates=-1)), r"extra_gates \(intervention\) = -1"),
    (dict(T=np.zeros((3, 2, 2))), r"travel times: shape \(3, 2, 2\)"),
    (dict(start_s=10.0, end_s=10.0), r"end_s = 10.0 must be after start_s"),
])
def test_other_bad_input(kw, match):
    with pytest.raises(UserError, match=match):
        build(**kw)


@pytest.mark.slow
def test_state_from_another_city_is_refused():
    state = city().get_state()
    with pytest.raises(UserError, match=r"saved with other attractions or hotels"):
        build().set_state(state)
