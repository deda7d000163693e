"""Speed of the tourist-flow engine: its queueing network vs the same network in SimPy, a
100,000-tourist day with hotels and travel, and the ``tourist_flow`` model's 100,000-tourist day on
the demo city with movement on the roads.

    .venv/bin/python benchmarks/bench_tourism.py [--tourists 100000] [--seeds 3] [--no-simpy] [--no-day]
                                                 [--no-model] [--frame-s 60]

Queueing network: one entry point, 6 attractions (gates, exponential entry service, capacity,
lognormal dwell), every tourist (groups of one) visits 3 attractions drawn by popularity, walking
between them (fixed walk times), and walks back to the entry point. Arrivals: Poisson over 08:00-18:00
with a morning peak. The SimPy model gets the same arrival times, itineraries and walk times
(taken from our engine), draws its own service and dwell times (numpy, drawn in advance), queues
for room inside (``simpy.Resource`` of the capacity) and then for a gate (``simpy.Resource`` of the
gates), FIFO, which admits in the same order and at the same times as our single FIFO queue that
needs a gate and room. Mean waits must agree within the noise, shown as the spread of our engine
over several seeds. Wall times exclude Numba's compilation (a warm-up run) and include building
the model. Results go to stdout only.

The city day: 3 entry points, 12 attractions with opening hours, 30 hotels, a shuttle, groups of
1 + Poisson, 60 % staying the night, and some of every intervention; advanced hour by hour as a
model would.

The model day: ``scenarios/holiday_tourism.toml`` (baseline) with its arrival profile scaled to
--tourists, on the demo city: travel times and routes from the road graph, the engine, the report
rows every 300 s, and a frame every --frame-s simulated seconds as the app would draw it (every
tourist's position, interpolated along the nodes of its route or in its crowd, the tourists on each
road, the crowding field and the per-POI values). The demo city's 7 attractions are small for
100,000 tourists: queues are hours long, which is the hard case for drawing (many crowds).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.tourism import (  # noqa: E402
    Attractions, Demand, Entries, Hotels, Interventions, TourismEngine, kpis, one_plus_poisson_pmf,
)
from agents.tourism.layout import F_ARRIVE  # noqa: E402

# -- the queueing network ----------------------------------------------------------------------
N_ATTR = 6
# Sized for 100,000 tourists: each attraction's gates are a little short (load 1.03-1.06) for the
# two or three busiest hours, so queues build up and clear, and the largest attraction fills up
# inside; gates and capacity scale with --tourists.
GATES = np.array([20, 19, 15, 16, 14, 13])
SERVICE_S = np.array([8.0, 10.0, 8.0, 12.0, 10.0, 12.0])
CAPACITY = np.array([12000, 9000, 8000, 5000, 4500, 2500])
DWELL_S = np.array([5400.0, 3600.0, 3600.0, 2700.0, 2700.0, 1800.0])
DWELL_CV = 0.5
POPULARITY = np.array([5.0, 3.0, 3.0, 2.0, 2.0, 1.5])
HOURS = np.arange(8, 18) * 3600.0
SHAPE = np.array([0.6, 1.2, 1.6, 1.4, 1.1, 1.0, 0.9, 0.8, 0.8, 0.6])  # relative arrivals per hour


def sized(n_tourists: int):
    f = n_tourists / 100_000
    return np.maximum(1, np.round(GATES * f)).astype(int), np.maximum(1, np.round(CAPACITY * f)).astype(int)


def network_engine(n_tourists: int, seed: int) -> TourismEngine:
    gates, capacity = sized(n_tourists)
    rng = np.random.default_rng(1000)  # the layout is fixed; the seed only changes the tourists
    xy = rng.uniform(0, 2500, (N_ATTR + 1, 2))
    walk = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1)) / 1.2
    rate = SHAPE / SHAPE.sum() * n_tourists  # persons per hour, hour by hour
    return TourismEngine(
        walk, Entries(place=[0], arrival_rate_per_h=[(np.append(HOURS, 18 * 3600.0), rate)]),
        Attractions(place=np.arange(1, N_ATTR + 1), gates=gates, service_time_s=SERVICE_S, capacity=capacity,
                    dwell_mean_s=DWELL_S, dwell_distribution="lognormal", dwell_cv=DWELL_CV, popularity=POPULARITY),
        None, Demand(time_budget_s=1e9, time_budget_cv=0.0, max_visits=3, overnight_share=0.0),
        start_s=8 * 3600.0, end_s=18 * 3600.0, rng=np.random.default_rng(seed))


def run_ours(n_tourists: int, seed: int):
    t0 = time.perf_counter()
    eng = network_engine(n_tourists, seed)
    eng.advance(72 * 3600.0)
    wall = time.perf_counter() - t0
    k = eng.kpis()
    assert k["visits_completed"] == 3 * k["tourists_total"], "every tourist makes 3 visits"
    return eng, wall, k["mean_entry_wait_s"]


def run_simpy(eng: TourismEngine, n_tourists: int, seed: int):
    import simpy

    gate_n, cap_n = sized(n_tourists)
    w = eng.world
    arrive = w.gf[:, F_ARRIVE].copy()
    plan = w.plan.copy()
    walk = w.T[0]
    n = len(arrive)
    rng = np.random.default_rng(seed)
    svc = rng.standard_exponential((n, 3)) * SERVICE_S[plan]
    s2 = np.log1p(DWELL_CV ** 2)
    dwell = DWELL_S[plan] * np.exp(rng.normal(-0.5 * s2, np.sqrt(s2), (n, 3)))

    t0 = time.perf_counter()
    env = simpy.Environment(initial_time=8 * 3600.0)
    gates = [simpy.Resource(env, capacity=int(c)) for c in gate_n]
    room = [simpy.Resource(env, capacity=int(c)) for c in cap_n]
    waits = []

    def tourist(i):
        place = 0
        for k in range(3):
            a = plan[i, k]
            yield env.timeout(walk[place, a + 1])
            joined = env.now
            inside = room[a].request()
            yield inside
            with gates[a].request() as gate:
                yield gate
                waits.append(env.now - joined)
                yield env.timeout(svc[i, k])
            yield env.timeout(dwell[i, k])
            room[a].release(inside)
            place = a + 1
        yield env.timeout(walk[place, 0])

    def source():
        for i in range(n):
            yield env.timeout(arrive[i] - env.now)
            env.process(tourist(i))

    env.process(source())
    env.run()
    wall = time.perf_counter() - t0
    assert len(waits) == 3 * n
    return wall, float(np.mean(waits))


# -- the city day ------------------------------------------------------------------------------
def city_day(n_tourists: int, seed: int) -> TourismEngine:
    rng = np.random.default_rng(2000)
    n_e, n_a, n_h = 3, 12, 30
    xy = rng.uniform(0, 6000, (n_e + n_a + n_h, 2))
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))
    walk = d / 1.2
    bus = np.full_like(walk, np.inf)
    stops = np.r_[0:n_e, n_e:n_e + 6]  # the entry points and the 6 most popular attractions
    bus[np.ix_(stops, stops)] = d[np.ix_(stops, stops)] / 7.0 + 120.0
    T = np.stack([walk, bus])
    hour = np.arange(25) * 3600.0
    profile = np.interp(np.arange(24), [0, 6, 9, 12, 16, 20, 23], [0, 0.2, 1.6, 1.2, 1.0, 0.4, 0])
    pmf = one_plus_poisson_pmf(2.2, 8)
    share = np.array([0.5, 0.3, 0.2])
    rates = [(hour, profile / profile.sum() * n_tourists * s) for s in share]
    opens = np.where(np.arange(n_a) % 3 == 0, np.nan, 8.5 * 3600.0)
    pop = 1.0 / np.arange(1, n_a + 1) ** 0.8
    svc = rng.uniform(10, 40, n_a)
    dwell = rng.uniform(1800, 7200, n_a)
    # gates and capacity for the expected visits (3 per tourist by popularity over ~8 busy hours)
    visits_per_s = n_tourists * 3 * pop / pop.sum() / (8 * 3600.0)
    gates = np.ceil(visits_per_s * svc).astype(int)
    capacity = np.ceil(1.2 * visits_per_s * dwell).astype(int) + 50
    rooms = rng.integers(800, 2500, n_h) * n_tourists // 100_000 + 10
    return TourismEngine(
        T, Entries(place=np.arange(n_e), arrival_rate_per_h=rates,
                   ids=["central station", "north station", "coach park"]),
        Attractions(place=np.arange(n_e, n_e + n_a), gates=gates, service_time_s=svc,
                    service_time_distribution=["exponential", "lognormal", "deterministic"] * 4,
                    capacity=capacity, dwell_mean_s=dwell, popularity=pop,
                    open_s=[None if np.isnan(o) else o for o in opens],
                    close_s=[None if np.isnan(o) else 17.5 * 3600.0 for o in opens]),
        Hotels(place=np.arange(n_e + n_a, n_e + n_a + n_h), rooms=rooms, desks=np.maximum(2, rooms // 150)),
        Demand(group_size_pmf=pmf, time_budget_s=7 * 3600.0, max_visits=3, alternatives=2, overnight_share=0.6,
               max_hotel_enquiries=5),
        Interventions(reservation_share=0.2, recommend_share=0.3, room_platform_share=0.5, online_checkin_share=0.3,
                      shuttle_share=0.8, shuttle_headway_s=600.0),
        start_s=0.0, end_s=24 * 3600.0, rng=np.random.default_rng(seed))


def bench_day(n_tourists: int):
    city_day(2000, 0).advance(48 * 3600.0)  # compile / load the kernels
    t0 = time.perf_counter()
    eng = city_day(n_tourists, 1)
    t_build = time.perf_counter() - t0
    t1 = time.perf_counter()
    peak_travel = 0
    for t in np.arange(1, 49) * 3600.0:  # hour by hour, reading what a model would report
        eng.advance(t)
        eng.attraction_values()
        eng.hotel_values()
        peak_travel = max(peak_travel, len(eng.travelling()["group"]))
    t_run = time.perf_counter() - t1
    return eng, t_build, t_run, peak_travel


def bench_model_day(n_tourists: int, frame_s: float):
    import tomllib

    from agents.tourism.model import TouristFlowModel
    from twin.core.city import City

    root = Path(__file__).resolve().parents[1]
    raw = tomllib.loads((root / "scenarios" / "holiday_tourism.toml").read_text())
    params = dict(raw["parameters"])
    profile = np.array(params["arrival_profile"], dtype=float)
    hours = np.diff(profile[:, 0], append=profile[-1, 0]) / 3600.0
    profile[:, 1] *= n_tourists / float((profile[:, 1] * hours).sum())
    params["arrival_profile"] = profile.tolist()
    duration = float(raw["scenario"]["duration_s"])
    t0 = time.perf_counter()
    city = City.load(root / "gis_data" / "demo_city")
    city.road_graph()
    t_city = time.perf_counter() - t0
    TouristFlowModel(city, duration_s=3600.0, seed=1, **{**params, "arrival_profile": [[0, 500]]}).run_to_end()  # warm up

    def run(frames: bool):
        t0 = time.perf_counter()
        m = TouristFlowModel(city, duration_s=duration, seed=raw["scenario"]["seed"], **params)
        t_build = time.perf_counter() - t0
        t1 = time.perf_counter()
        peak, n_frames, t_frames = 0, 0, 0.0
        step = frame_s if frames else m.report_interval_s
        for t in np.arange(step, duration + step / 2, step):
            m.advance_to(t)
            if frames:
                t2 = time.perf_counter()
                snap = m.snapshot()
                t_frames += time.perf_counter() - t2
                peak, n_frames = max(peak, len(snap.ids)), n_frames + 1
            if m.done:
                break
        return m, t_build, time.perf_counter() - t1, peak, n_frames, t_frames

    m, t_build, t_run, *_ = run(False)
    _, t_build2, t_run2, peak, n_frames, t_frames = run(True)
    k = m.final_kpis()
    print(f"\nmodel day on the demo city (tourist_flow, holiday scenario scaled): {k['tourists_total']:,.0f} tourists, "
          f"{m.engine.n_groups:,} groups, {m.time_s / 3600:.1f} h simulated")
    print(f"  city load + road graph {t_city:.2f} s (once)")
    print(f"  without frames: build {t_build:.2f} s + run {t_run:.2f} s = {t_build + t_run:.2f} s wall")
    print(f"  with movement on the roads, a frame every {frame_s:g} s: build {t_build2:.2f} s + run {t_run2:.2f} s = "
          f"{t_build2 + t_run2:.2f} s wall; {n_frames} frames, {t_frames / max(n_frames, 1) * 1e3:.1f} ms each, "
          f"up to {peak:,} tourists drawn")
    for key in ("visits_completed", "mean_entry_wait_s", "p95_entry_wait_s", "mean_room_search_s",
                "queue_hours_total", "turned_away", "room_search_failed"):
        print(f"  {key:22s} {k[key]:12,.1f} {kpis.UNITS[key]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tourists", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, default=3, help="our engine's seeds (the spread is the noise)")
    ap.add_argument("--no-simpy", action="store_true")
    ap.add_argument("--no-day", action="store_true")
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--frame-s", type=float, default=60.0, help="simulated seconds between frames (model day)")
    a = ap.parse_args()
    print(f"{os.cpu_count()} cores; the engine's event loop is single-threaded")
    network_engine(2000, 0).advance(72 * 3600.0)  # compile / load the kernels
    print(f"\nqueueing network: {a.tourists:,} tourists x 3 visits, {N_ATTR} attractions")
    runs = [run_ours(a.tourists, s + 1) for s in range(a.seeds)]
    waits = [r[2] for r in runs]
    for s, (eng, wall, wait) in enumerate(runs):
        print(f"  ours   seed {s + 1}: {wall:7.2f} s wall, mean entry wait {wait:7.1f} s "
              f"({eng.n_groups:,} tourists)")
    if not a.no_simpy:
        sp_wall, sp_wait = run_simpy(runs[0][0], a.tourists, 11)
        print(f"  SimPy  (seed 1's arrivals and itineraries): {sp_wall:7.2f} s wall, mean entry wait {sp_wait:7.1f} s")
        print(f"  ours mean wait over seeds {np.mean(waits):.1f} s (spread {min(waits):.1f}-{max(waits):.1f}); "
              f"SimPy - ours(seed 1) = {sp_wait - waits[0]:+.1f} s ({(sp_wait / waits[0] - 1) * 100:+.1f} %)")
        print(f"  speed: ours {sp_wall / runs[0][1]:.0f} x faster than SimPy")
    if not a.no_day:
        eng, t_build, t_run, peak = bench_day(a.tourists)
        k = eng.kpis()
        print(f"\ncity day: {k['tourists_total']:,.0f} tourists in {eng.n_groups:,} groups, 3 entry points, "
              f"12 attractions, 30 hotels, shuttle, all interventions")
        print(f"  build {t_build:.2f} s + 48 hourly advances {t_run:.2f} s = {t_build + t_run:.2f} s wall "
              f"(peak {peak:,} groups travelling)")
        for key in ("visits_completed", "mean_entry_wait_s", "p95_entry_wait_s", "mean_room_search_s",
                    "mean_checkin_s", "queue_hours_total", "peak_occupancy_ratio", "turned_away",
                    "room_search_failed"):
            print(f"  {key:22s} {k[key]:12,.1f} {kpis.UNITS[key]}")
    if not a.no_model:
        bench_model_day(a.tourists, a.frame_s)


if __name__ == "__main__":
    main()
