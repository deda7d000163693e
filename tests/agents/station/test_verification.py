"""Verification against published references (VERIFICATION.md, pedestrian part).

Weidmann's fundamental diagram (periodic corridor), bottleneck flows vs width (Kretz et al. 2006,
Seyfried et al. 2009), the real Jülich bottleneck run 040_c_56_h- (Adrian et al. 2020) and the RiMEA
single-floor tests that apply (1, 4, 6, 7, 8/9, 12). The measured figures are printed (``pytest -s``)."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from agents.station.crowd import Crowd, MotionParams
from agents.station.model import StationDispersalModel
from agents.station.navigation import build_navigation

from .conftest import DATA, make_city


def weidmann(rho):
    return 1.34 * (1 - np.exp(-1.913 * (1 / rho - 1 / 5.4)))


def random_points(n, lo, hi, gap, rng, period=0.0):
    pts = np.empty((0, 2))
    while len(pts) < n:
        p = rng.uniform(lo, hi)
        d = pts - p
        if period:
            d[:, 0] -= period * np.round(d[:, 0] / period)
        if not len(pts) or (d * d).sum(1).min() >= gap * gap:
            pts = np.vstack([pts, p])
    return pts


def run_out(cr, dt, t_max, line_y=None):
    """Step until everyone left (or t_max); crossing times of y = line_y going south."""
    t, cross, done = 0.0, {}, []
    while cr.n and t < t_max:
        ids, yb = cr.ids[: cr.n].copy(), cr.y[: cr.n].copy()
        cr.step(dt)
        t += dt
        if line_y is not None:
            for k in np.flatnonzero((yb > line_y) & (cr.y[: cr.n] <= line_y)):
                cross.setdefault(int(ids[k]), t)
        ex = cr.take_exits()
        if ex is not None:
            done += [t] * len(ex[0])
    return t, np.sort(list(cross.values())), np.array(done)


def flow_10_90(times):
    c = np.sort(times)
    a, b = int(0.1 * len(c)), int(0.9 * len(c))
    return (b - a) / (c[b] - c[a])


# -- (a) + RiMEA 4: Weidmann fundamental diagram -----------------------------------------------
L, W = 20.0, 4.0


@pytest.fixture(scope="module")
def corridor():
    """A corridor periodic in x: the fields are made x-independent, so that the ends of the
    rasterised box are no walls."""
    nav = build_navigation(shapely.box(0, 0, L, W), [], cell_m=0.1, cache=False)
    nav.dir_x[:] = 1.0
    nav.dir_y[:] = 0.0
    mid = nav.wall_d.shape[1] // 2
    for f in (nav.free, nav.wall_d, nav.wall_nx, nav.wall_ny, nav.width):
        f[:] = f[:, mid:mid + 1]
    return nav


def fd_speed(nav, rho, mp, seed=1, T=30.0):
    rng = np.random.default_rng(seed)
    n = int(rho * L * W)
    p = random_points(n, [0, 0.15], [L, W - 0.15], 0.3, rng, period=L)
    cr = Crowd(nav, n, mp, cell_size=1.0, period_x=L)
    cr.add(p[:, 0], p[:, 1], np.full(n, 1.34), np.zeros(n, np.int32))
    dt = mp.default_dt()
    speeds = []
    for s in range(int(T / dt)):
        cr.step(dt)
        if s * dt > T / 2:
            speeds.append(cr.vx[:n].mean())
    return float(np.mean(speeds))


@pytest.mark.parametrize("rho", [0.5, 1.0, 2.0, 3.0])
def test_weidmann_fundamental_diagram(corridor, rho):
    v = fd_speed(corridor, rho, MotionParams())
    ref = weidmann(rho)
    print(f"Weidmann rho={rho}: simulated {v:.3f} m/s, Weidmann {ref:.3f} m/s, error {100 * (v / ref - 1):+.1f}%")
    assert abs(v / ref - 1) <= 0.20


# -- (b) bottleneck flow vs width, (c) Jülich run ---------------------------------------------
def bottleneck_nav(w):
    room = shapely.box(-2.8, 0, 2.8, 7.0)
    corr = shapely.box(-w / 2, -1.1, w / 2, 0.001)
    out = shapely.box(-2.8, -3.1, 2.8, -1.1 + 0.001)
    gate = shapely.LineString([(-2.8, -3.1), (2.8, -3.1)])
    return build_navigation(shapely.union_all([room, corr, out]), [("G", gate)], cell_m=0.05)


def bottleneck_flow(w, pos=None, seed=0, mp=None, n=75):
    mp = mp or MotionParams()
    nav = bottleneck_nav(w)
    rng = np.random.default_rng(seed)
    if pos is None:
        pos = random_points(n, [-2.6, 0.5], [2.6, 6.5], 0.45, rng)
    n = len(pos)
    cr = Crowd(nav, n, mp)
    cr.add(pos[:, 0], pos[:, 1], np.clip(rng.normal(1.34, 0.26, n), 0.5, 2.0), np.zeros(n, np.int32))
    _, cross, _ = run_out(cr, mp.default_dt(), 200.0, line_y=0.0)
    assert len(cross) == n, f"only {len(cross)} of {n} passed the bottleneck"
    return flow_10_90(cross)


@pytest.mark.slow
@pytest.mark.parametrize("w,lo,hi", [(0.5, 0.9, 1.2), (1.0, 1.6, 2.1)])
def test_bottleneck_flow_in_lab_range(w, lo, hi):
    """Lab: ~0.9-1.2 p/s through 0.5 m, ~1.7-2.0 p/s through 1.0 m (at 1.0 m, a 5 % margin for
    the seed-to-seed spread of two runs)."""
    flows = [bottleneck_flow(w, seed=s) for s in (0, 1)]
    print(f"bottleneck {w} m: flows {np.round(flows, 2)} p/s, mean {np.mean(flows):.2f}")
    assert lo <= np.mean(flows) <= hi


@pytest.mark.slow
def test_bottleneck_flow_grows_about_linearly_with_width():
    widths = np.array([0.4, 0.6, 0.8, 1.0, 1.2])
    flows = np.array([np.mean([bottleneck_flow(w, seed=s) for s in (0, 1)]) for w in widths])
    slope, icpt = np.polyfit(widths, flows, 1)
    r2 = 1 - np.sum((flows - (slope * widths + icpt)) ** 2) / np.sum((flows - flows.mean()) ** 2)
    print(f"flow vs width {widths} m: {np.round(flows, 2)} p/s; slope {slope:.2f} p/(m s), R² {r2:.3f}")
    assert np.all(np.diff(flows) > 0)
    assert 1.0 <= slope <= 2.5 and r2 >= 0.9


def julich():
    d = np.loadtxt(DATA / "040_c_56_h-.txt", comments="#")
    ids = np.unique(d[:, 0])
    cross = []
    for i in ids:
        t = d[d[:, 0] == i]
        t = t[np.argsort(t[:, 1])]
        k = np.flatnonzero((t[:-1, 3] > 0) & (t[1:, 3] <= 0))
        if len(k):
            cross.append(t[k[0] + 1, 1] / 25.0)
    start = d[d[:, 1] == 0][:, 2:4]
    return start, np.array(cross)


@pytest.mark.slow
def test_julich_bottleneck_run():
    start, cross = julich()
    assert len(start) == 75 and len(cross) == 75
    measured = flow_10_90(cross)
    assert measured == pytest.approx(1.16, abs=0.01)  # SOURCE.md
    sims = [bottleneck_flow(0.5, pos=start, seed=s) for s in (0, 1, 2)]
    sim = float(np.mean(sims))
    print(f"Jülich 040_c_56_h-: measured {measured:.3f} p/s, simulated {np.round(sims, 3)} -> {sim:.3f} p/s, "
          f"error {100 * (sim / measured - 1):+.1f}%")
    assert abs(sim / measured - 1) <= 0.25


# -- RiMEA ------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("model", ["collision_free", "social_force"])
def test_rimea_1_corridor(model):
    """One person, 40 m x 2 m corridor, 1.33 m/s: 26-34 s."""
    nav = build_navigation(shapely.box(0, 0, 42, 2), [("E", shapely.LineString([(42, 0), (42, 2)]))], cell_m=0.1)
    mp = MotionParams(model=model)
    cr = Crowd(nav, 1, mp)
    cr.add([1.0], [1.0], [1.33], [0])
    t, _, done = run_out(cr, mp.default_dt(), 60.0)
    # the exit zone starts 0.3 m before the gate line at x = 42: 40 m walked = reaching x = 41
    print(f"RiMEA 1 ({model}): {t:.2f} s")
    assert 26.0 <= t <= 34.0


def test_rimea_6_corner():
    """20 persons round a left turn in a 2 m wide L corridor; nobody cuts through the wall."""
    a = shapely.box(0, 0, 12, 2)
    b = shapely.box(10, 0, 12, 12)
    free = shapely.union(a, b)
    nav = build_navigation(free, [("N", shapely.LineString([(10, 12), (12, 12)]))], cell_m=0.1)
    rng = np.random.default_rng(0)
    pos = random_points(20, [0.3, 0.3], [6, 1.7], 0.35, rng)
    cr = Crowd(nav, 20, MotionParams())
    cr.add(pos[:, 0], pos[:, 1], np.clip(rng.normal(1.34, 0.26, 20), 0.5, 2.0), np.zeros(20, np.int32))
    t, out = 0.0, 0
    while cr.n and t < 60:
        cr.step(0.05)
        t += 0.05
        pts = shapely.points(cr.x[: cr.n], cr.y[: cr.n])
        assert shapely.covers(free, pts).all()
        ex = cr.take_exits()
        out += 0 if ex is None else len(ex[0])
    assert out == 20


def test_rimea_7_speed_distribution():
    """Desired speeds follow the configured distribution, and a free walker keeps its speed."""
    m = StationDispersalModel(make_city(), duration_s=10, seed=1)
    v = m.v0
    assert v.min() >= 0.5 and v.max() <= 2.0
    assert abs(v.mean() - 1.34) < 0.03 and abs(v.std() - 0.26) < 0.03
    nav = build_navigation(shapely.box(0, 0, 30, 4), [("E", shapely.LineString([(30, 0), (30, 4)]))], cell_m=0.1)
    for v0 in (0.6, 1.0, 1.8):
        cr = Crowd(nav, 1, MotionParams())
        cr.add([1.0], [2.0], [v0], [0])
        for _ in range(100):
            cr.step(0.05)
        assert cr.vx[0] == pytest.approx(v0, rel=0.02)


@pytest.mark.slow
def test_rimea_8_9_four_vs_two_exits():
    """RiMEA 9: 1000 persons in a 30 x 20 m room with four 1 m exits, then with two: the
    evacuation takes about twice as long with half the exits."""
    room = shapely.box(0, 0, 30, 20)
    gates = [("A", shapely.LineString([(0, 2), (0, 3)])), ("B", shapely.LineString([(0, 17), (0, 18)])),
             ("C", shapely.LineString([(30, 2), (30, 3)])), ("D", shapely.LineString([(30, 17), (30, 18)]))]
    nav = build_navigation(room, gates, cell_m=0.25)
    rng = np.random.default_rng(0)
    pos = random_points(1000, [1, 1], [29, 19], 0.4, rng)
    v0 = np.clip(rng.normal(1.34, 0.26, 1000), 0.5, 2.0)
    times = {}
    for name, open_ in (("four", [1, 1, 1, 1]), ("two", [1, 1, 0, 0])):
        fl = nav.floor[np.flatnonzero(open_)]
        r, c = nav.index_of(pos[:, 0], pos[:, 1])
        tgt = np.flatnonzero(open_)[np.argmin(fl[:, r, c], axis=0)].astype(np.int32)
        cr = Crowd(nav, 1000, MotionParams(), gate_open=np.array(open_, bool))
        cr.add(pos[:, 0], pos[:, 1], v0, tgt)
        t, _, done = run_out(cr, 0.05, 900.0)
        assert len(done) == 1000
        times[name] = t
    ratio = times["two"] / times["four"]
    print(f"RiMEA 8/9: four exits {times['four']:.1f} s, two exits {times['two']:.1f} s, ratio {ratio:.2f}")
    assert 1.6 <= ratio <= 2.4


@pytest.mark.slow
def test_rimea_12_congestion_only_at_the_first_bottleneck():
    """RiMEA 12: 150 persons leave a room through a 1 m wide, 2 m long corridor into a second room
    and out through a 1 m exit. A queue forms in front of the corridor; the corridor meters the
    flow, so none forms at the second room's exit."""
    room_a, room_b = shapely.box(0, 0, 10, 10), shapely.box(12, 0, 22, 10)
    corridor = shapely.box(9.999, 4.5, 12.001, 5.5)
    exit_b = shapely.LineString([(22, 4.5), (22, 5.5)])
    nav = build_navigation(shapely.union_all([room_a, corridor, room_b]), [("B", exit_b)], cell_m=0.1)
    rng = np.random.default_rng(3)
    pos = random_points(150, [0.5, 0.5], [8.0, 9.5], 0.4, rng)
    cr = Crowd(nav, 150, MotionParams())
    cr.add(pos[:, 0], pos[:, 1], np.clip(rng.normal(1.34, 0.26, 150), 0.5, 2.0), np.zeros(150, np.int32))
    before_corridor = before_exit = 0
    t = 0.0
    while cr.n and t < 400:
        cr.step(0.05)
        t += 0.05
        x, y = cr.x[: cr.n], cr.y[: cr.n]
        near = np.abs(y - 5.0) < 1.5
        before_corridor = max(before_corridor, int(((x > 8.0) & (x < 10.0) & near).sum()))
        before_exit = max(before_exit, int(((x > 20.0) & (x < 22.0) & near).sum()))
        cr.take_exits()
    print(f"RiMEA 12: all out in {t:.1f} s; most persons within 2 m before the corridor {before_corridor}, "
          f"before the exit {before_exit}")
    assert cr.n == 0
    assert before_corridor >= 10  # a queue (6 m², over 1.5 persons/m²) in front of the corridor
    # At the exit only the metered stream arrives (under 1.5 persons/m² over the same 6 m²): no queue.
    assert before_exit <= 8 and 3 * before_exit <= before_corridor


# -- queue density -----------------------------------------------------------------------------
@pytest.mark.slow
def test_queue_density_in_a_long_saturated_queue():
    """Queue density in a long saturated queue stays at most 8 persons/m²: a 4 m wide hall whose only
    way out is one ticket lane (25 passengers/min) holds 300 people queueing for some ten minutes.
    People standing keep their personal space (the speed-dependent body), so on the model's 1 m grid
    the queue reads 6-7 persons/m², not the 10-12 of hard discs (crush densities are 8-9)."""
    x0, y0 = 500000.0, 3000000.0
    gates = [{"id": "E", "kind": "exit", "open": True, "geometry": shapely.LineString([(x0 + 30, y0), (x0 + 30, y0 + 4)])},
             {"id": "T", "kind": "ticket_gate", "open": True, "lanes": 1,
              "geometry": shapely.LineString([(x0 + 15, y0), (x0 + 15, y0 + 4)])}]
    city = make_city(walkable=[{"name": "hall", "geometry": shapely.box(x0, y0, x0 + 30, y0 + 4)}], obstacles=[],
                     gates=gates, pois=[],
                     sources=[{"id": "S", "count": 300, "release_s": 0.0,
                               "geometry": shapely.box(x0 + 1, y0 + 0.5, x0 + 12, y0 + 3.5)}])
    m = StationDispersalModel(city, duration_s=1200, seed=4, share_walk=1.0, share_metro=0.0, share_bus=0.0,
                              share_taxi=0.0, release_spread_s=0.0)
    longest = 0
    while not m.finished and m.time_s < 1200:
        m.advance_to(m.time_s + 10)
        paid = m.crowd.x[:m.crowd.n] < x0 + 15
        longest = max(longest, int(paid.sum()))
    k = m.final_kpis()
    print(f"queue of up to {longest} people before one ticket lane: max density {k['max_density_ppm2']:.2f} "
          f"persons/m² (1 m grid); {k['agents_exited']} out in {k['station_clearance_time_s']:.0f} s")
    assert k["agents_exited"] == 300 and longest >= 150
    assert 4.0 <= k["max_density_ppm2"] <= 8.0
