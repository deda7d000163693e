"""A small tourist city built in code: 2 entry points, 4 attractions, 3 hotels on a plane,
walking at 1.2 m/s, a shuttle from the station to two attractions."""
from __future__ import annotations

import numpy as np

from agents.tourism import Attractions, Demand, Entries, Hotels, Interventions, TourismEngine

XY = np.array([
    [0, 0], [3000, 500],                            # 0 station, 1 coach stop
    [800, 600], [2000, -400], [-1200, 900], [400, -1500],  # 2..5 attractions
    [100, 200], [2600, 300], [-600, -300],          # 6..8 hotels
], float)
WALK_MPS = 1.2


def travel_matrix(shuttle=True):
    d = np.hypot(*(XY[:, None, :] - XY[None, :, :]).transpose(2, 0, 1))
    walk = d / WALK_MPS
    if not shuttle:
        return walk
    bus = np.full_like(walk, np.inf)
    for i, j in ((0, 3), (0, 4), (3, 4)):
        bus[i, j] = bus[j, i] = d[i, j] / 8.0
    return np.stack([walk, bus])


def city(*, seed=1, rate=(300.0, 100.0), process="poisson", shuttle=True, start_s=7 * 3600.0,
         end_s=19 * 3600.0, attractions=None, hotels=None, demand=None, interventions=None, T=None):
    entries = Entries(place=[0, 1], arrival_rate_per_h=list(rate), arrival_process=process,
                      ids=["station", "coach stop"])
    if attractions is None:
        attractions = Attractions(
            place=[2, 3, 4, 5], gates=[4, 2, 3, 2], service_time_s=[20.0, 30.0, 25.0, 40.0],
            service_time_distribution=["exponential", "lognormal", "deterministic", "exponential"],
            capacity=[800, 300, 500, 200], dwell_mean_s=[5400.0, 3600.0, 2700.0, 1800.0],
            popularity=[4.0, 2.0, 2.0, 1.0], open_s=[8 * 3600.0, 9 * 3600.0, None, 10 * 3600.0],
            close_s=[18 * 3600.0, 17 * 3600.0, None, 16 * 3600.0], ids=["old town", "museum", "park", "tower"])
    if hotels is None:
        hotels = Hotels(place=[6, 7, 8], rooms=[600, 400, 800], rooms_free=[400, 300, 600], desks=[2, 1, 2],
                        checkin_time_s=[180.0, 240.0, 150.0], ids=["central", "east", "west"])
    demand = demand or Demand(group_size_pmf=[0.3, 0.4, 0.15, 0.15], time_budget_s=7 * 3600.0, max_visits=3,
                              overnight_share=0.6)
    return TourismEngine(travel_matrix(shuttle) if T is None else T, entries, attractions, hotels, demand,
                         interventions or Interventions(), start_s=start_s, end_s=end_s,
                         rng=np.random.default_rng(seed))


def single_queue(*, gates=3, service_s=60.0, rho=0.8, n=150_000, dist="exponential", capacity=10**9,
                 dwell_s=600.0, process="poisson", seed=1, pmf=(1.0,)):
    """One entry, one attraction 120 s away, open all the time: an M/M/c (or M/D/c) entry queue
    (groups of one unless a group-size pmf is given). rho is the gates' load: persons per second ×
    service time per person / gates; n the expected number of persons."""
    lam = rho * gates / service_s
    end = n / lam
    T = np.array([[0.0, 120.0], [120.0, 0.0]])
    eng = TourismEngine(
        T, Entries(place=[0], arrival_rate_per_h=lam * 3600.0, arrival_process=process),
        Attractions(place=[1], gates=gates, service_time_s=service_s, service_time_distribution=dist,
                    capacity=capacity, dwell_mean_s=dwell_s, dwell_distribution="exponential"),
        None, Demand(group_size_pmf=pmf, time_budget_s=1e12, time_budget_cv=0.0, max_visits=1, overnight_share=0.0),
        start_s=0.0, end_s=end, rng=np.random.default_rng(seed))
    return eng, lam, end
