"""(g) The Numba kernels against plain numpy references on small inputs."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from agents.station import kernels as K
from agents.station.crowd import Crowd, MotionParams
from agents.station.navigation import WIDTH_CAP_M, Floors, build_navigation


def bilinear(F, x0, y0, h, x, y):
    rows, cols = F.shape
    fx = np.clip((x - x0) / h - 0.5, 0, cols - 1.0001)
    fy = np.clip((y0 - y) / h - 0.5, 0, rows - 1.0001)
    c0 = fx.astype(int)
    r0 = fy.astype(int)
    wx, wy = fx - c0, fy - r0
    return ((F[r0, c0] * (1 - wx) + F[r0, c0 + 1] * wx) * (1 - wy)
            + (F[r0 + 1, c0] * (1 - wx) + F[r0 + 1, c0 + 1] * wx) * wy)


def room_nav():
    free = shapely.box(0, 0, 12, 8)
    return build_navigation(free, [("E", shapely.LineString([(12, 3), (12, 5)]))], cell_m=0.25, cache=False)


def test_build_cells_matches_sort():
    rng = np.random.default_rng(0)
    n = 500
    x, y = rng.uniform(0, 10, n), rng.uniform(0, 6, n)
    lv = rng.integers(0, 2, n).astype(np.int32)
    vx, vy = rng.uniform(-0.3, 0.3, n), np.zeros(n)
    v0 = np.full(n, 1.3)
    ncx, ncy = 10, 6
    cell_of = np.zeros(n, np.int64)
    cursor = np.zeros(2 * ncx * ncy, np.int64)
    start = np.zeros(2 * ncx * ncy + 1, np.int64)
    order = np.zeros(n, np.int64)
    sx, sy, sr = np.zeros(n), np.zeros(n), np.zeros(n)
    wall = np.full(4, 9.0, np.float32)  # one level-wide 2 x 2 raster far from walls, for both levels
    grid = (np.array([-100.0, -100.0]), np.array([100.0, 100.0]), np.array([2, 2]), np.array([2, 2]),
            np.array([0, 0]), 0.01)
    K.build_cells(x, y, vx, vy, v0, lv, n, 0.0, 0.0, 1.0, ncx, ncy, 2, 0.14, 0.21, 0.3, grid, wall,
                  cell_of, cursor, start, order, sx, sy, sr)
    ref_cell = lv * ncx * ncy + np.floor(y).astype(int) * ncx + np.floor(x).astype(int)
    assert np.array_equal(cell_of, ref_cell)
    assert np.array_equal(order, np.argsort(ref_cell, kind="stable"))
    assert np.array_equal(start[1:] - start[:-1], np.bincount(ref_cell, minlength=2 * ncx * ncy))
    assert np.array_equal(sx, x[order]) and np.array_equal(sy, y[order])
    # the body shrinks linearly from 0.21 m standing to 0.14 m at 0.3 m/s
    np.testing.assert_allclose(sr, (0.21 - 0.07 * np.minimum(np.abs(vx) / 0.3, 1.0))[order])


def cfsm_reference(nav, mp, x, y, v0, dt):
    """Plain numpy, all pairs, of one collision-free step from standstill (no noise, walls and
    narrow passages far away): every body has its standing radius."""
    ex = bilinear(nav.dir_x[0], nav.x0, nav.y0, nav.cell_m, x, y)
    ey = bilinear(nav.dir_y[0], nav.x0, nav.y0, nav.cell_m, x, y)
    ell_w = 2 * mp.radius  # the repulsion keeps the walking contact distance
    ell = 2 * mp.radius_standing  # two standing bodies
    r_rep = ell_w + mp.d_rep * np.log(mp.a_rep / mp.rep_eps)
    dx = x[:, None] - x[None, :]
    dy = y[:, None] - y[None, :]
    d = np.hypot(dx, dy)
    np.fill_diagonal(d, np.inf)
    w = np.where(d < r_rep, mp.a_rep * np.exp((ell_w - d) / mp.d_rep) / d, 0.0)
    ex = ex + (w * dx).sum(1)
    ey = ey + (w * dy).sum(1)
    nrm = np.hypot(ex, ey)
    ex, ey = ex / nrm, ey / nrm
    # spacing: agents ahead (proj > 0) within a corridor of the walking width, free spacing d - ell
    rx, ry = -dx, -dy  # vector i -> j
    proj = rx * ex[:, None] + ry * ey[:, None]
    lat = np.abs(rx * ey[:, None] - ry * ex[:, None])
    cand = np.where((proj > 0) & (lat < ell_w), d - ell, np.inf)
    smin = np.minimum(cand.min(1), v0 * mp.time_gap)
    speed = np.clip(smin / mp.time_gap, 0, v0)
    return x + speed * ex * dt, y + speed * ey * dt


@pytest.mark.slow
def test_cfsm_step_matches_reference():
    nav = room_nav()
    mp = MotionParams(noise=0.0)
    rng = np.random.default_rng(3)
    # 60 agents in the middle of the room (all > 1 m from walls), some in contact
    pts = []
    while len(pts) < 60:
        p = rng.uniform([2, 2], [9, 6])
        if all(np.hypot(*(p - q)) > 0.31 for q in pts):
            pts.append(p)
    pts = np.array(pts)
    v0 = rng.uniform(0.8, 1.6, len(pts))
    cr = Crowd(nav, len(pts), mp, cell_size=1.0)
    cr.add(pts[:, 0], pts[:, 1], v0, np.zeros(len(pts), np.int32))
    cr.step(0.05)
    rx, ry = cfsm_reference(nav, mp, pts[:, 0], pts[:, 1], v0, 0.05)
    assert np.abs(rx - pts[:, 0]).max() > 0.01  # some moved
    np.testing.assert_allclose(cr.x[:cr.n], rx, atol=1e-9)
    np.testing.assert_allclose(cr.y[:cr.n], ry, atol=1e-9)


@pytest.mark.slow
def test_cfsm_same_result_with_other_cell_sizes():
    nav = room_nav()
    rng = np.random.default_rng(5)
    pts = rng.uniform([1, 1], [11, 7], (150, 2))
    res = []
    for cs in (0.5, 1.0, 2.5):
        cr = Crowd(nav, 150, MotionParams(), cell_size=cs)
        cr.add(pts[:, 0], pts[:, 1], np.full(150, 1.3), np.zeros(150, np.int32))
        for _ in range(5):
            cr.step(0.05)
        res.append(np.c_[cr.x[:150], cr.y[:150]].copy())
    np.testing.assert_allclose(res[0], res[1], atol=1e-12)
    np.testing.assert_allclose(res[0], res[2], atol=1e-12)


@pytest.mark.slow
def test_levels_do_not_interact():
    """Two agents at the same plan position on different levels walk as if alone."""
    nav = room_nav()
    floors = Floors.pack([nav, nav], [[0], [1]])
    alone = Crowd(nav, 1, MotionParams(noise=0.0))
    alone.add([4.0], [4.0], [1.3], [0])
    both = Crowd(floors, 2, MotionParams(noise=0.0))
    both.add([4.0, 4.0], [4.0, 4.0], [1.3, 1.3], [0, 1], lv=[0, 1])
    for _ in range(20):
        alone.step(0.05)
        both.step(0.05)
    assert both.x[0] == pytest.approx(alone.x[0], abs=1e-12) and both.x[1] == pytest.approx(alone.x[0], abs=1e-12)
    assert alone.x[0] > 5.0


def sfm_reference(nav, mp, x, y, vx, vy, v0, dt):
    ex = bilinear(nav.dir_x[0], nav.x0, nav.y0, nav.cell_m, x, y)
    ey = bilinear(nav.dir_y[0], nav.x0, nav.y0, nav.cell_m, x, y)
    nrm = np.hypot(ex, ey)
    ex, ey = ex / nrm, ey / nrm
    fx = mp.mass * (v0 * ex - vx) / mp.tau
    fy = mp.mass * (v0 * ey - vy) / mp.tau
    sp = np.hypot(vx, vy)
    hx = np.where(sp > 1e-6, vx / np.maximum(sp, 1e-12), ex)
    hy = np.where(sp > 1e-6, vy / np.maximum(sp, 1e-12), ey)
    rij = 2 * mp.radius
    cut = rij + mp.b_soc * np.log(mp.a_soc / 1e-2)
    dx = x[:, None] - x[None, :]
    dy = y[:, None] - y[None, :]
    d = np.hypot(dx, dy)
    np.fill_diagonal(d, np.inf)
    m = d < cut
    nx_, ny_ = dx / d, dy / d
    cphi = -(nx_ * hx[:, None] + ny_ * hy[:, None])
    f = mp.a_soc * np.exp((rij - d) / mp.b_soc) * (mp.lam + (1 - mp.lam) * 0.5 * (1 + cphi))
    ov = np.maximum(rij - d, 0)
    f = f + mp.k_body * ov
    tx, ty = -ny_, nx_
    dvt = (vx[None, :] - vx[:, None]) * tx + (vy[None, :] - vy[:, None]) * ty
    fx = fx + np.where(m, f * nx_ + mp.kappa * ov * dvt * tx, 0).sum(1)
    fy = fy + np.where(m, f * ny_ + mp.kappa * ov * dvt * ty, 0).sum(1)
    nvx, nvy = vx + fx / mp.mass * dt, vy + fy / mp.mass * dt
    s = np.hypot(nvx, nvy)
    cap = np.minimum(1.0, 1.3 * v0 / np.maximum(s, 1e-12))
    nvx, nvy = nvx * cap, nvy * cap
    return x + nvx * dt, y + nvy * dt


@pytest.mark.slow
def test_sfm_step_matches_reference():
    nav = room_nav()
    mp = MotionParams(model="social_force")
    rng = np.random.default_rng(4)
    pts = rng.uniform([3, 3], [9, 5], (40, 2))  # some overlap: contact forces act
    v0 = rng.uniform(0.8, 1.6, 40)
    vel = rng.normal(0, 0.3, (40, 2))
    cr = Crowd(nav, 40, mp, cell_size=1.0)
    cr.add(pts[:, 0], pts[:, 1], v0, np.zeros(40, np.int32))
    cr.vx[:40], cr.vy[:40] = vel[:, 0], vel[:, 1]
    cr.step(0.01)
    rx, ry = sfm_reference(nav, mp, pts[:, 0], pts[:, 1], vel[:, 0], vel[:, 1], v0, 0.01)
    np.testing.assert_allclose(cr.x[:40], rx, atol=1e-9)
    np.testing.assert_allclose(cr.y[:40], ry, atol=1e-9)


@pytest.mark.slow
def test_density_grid_matches_numpy():
    from scipy.ndimage import convolve

    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 8, 300), rng.uniform(-5, 0, 300)
    lv = rng.integers(0, 2, 300).astype(np.int32)
    rows, cols = 5, 8
    area = rng.uniform(0.5, 1.0, (2, rows, cols))
    counts, out = np.zeros((2, rows, cols)), np.zeros((2, rows, cols))
    best = K.density_grid(x, y, lv, 300, 0.0, 0.0, counts, area, out)
    w = np.array([0.25, 0.5, 0.25])
    refs = []
    for L in (0, 1):
        h = np.zeros((rows, cols))
        m = lv == L
        np.add.at(h, (np.floor(-y[m]).astype(int), np.floor(x[m]).astype(int)), 1)
        refs.append(convolve(h, np.outer(w, w), mode="constant") / area[L])
    np.testing.assert_allclose(out, np.stack(refs), rtol=1e-12)
    assert best == max(r.max() for r in refs)


@pytest.mark.slow
def test_route_choice_matches_numpy():
    """Exits and waypoints on one level: cost = (walk + after + onward) / v0 + rides + queues (if
    perceived) + noise; the current target is kept unless beaten by the hysteresis; nobody heads
    back to the level she came from."""
    rng = np.random.default_rng(2)
    G, W, rows, cols = 3, 2, 20, 30
    T = G + W
    floor = rng.uniform(0, 50, (T, rows, cols)).astype(np.float32)
    floor[3, :, :5] = 2e6  # a waypoint unreachable from the western part
    grid = (np.array([0.0]), np.array([0.0]), np.array([rows]), np.array([cols]), np.array([0]), 2.0)
    toff = np.arange(T) * rows * cols
    lt_start, lt_idx = np.array([0, T]), np.arange(T)
    n = 60
    x, y = rng.uniform(1, 14, n), rng.uniform(-9, -1, n)
    lv = np.zeros(n, np.int32)
    paid = rng.random(n) < 0.3
    v0 = rng.uniform(0.8, 1.6, n)
    dest = rng.integers(0, 4, n).astype(np.int32)
    cand = np.ones((2, T), bool)
    cand[1, :G] = False  # who has to validate may not leave yet
    cand[0, 1] = False  # a closed exit
    dist = rng.uniform(0, 40, (2, T, G))
    ride = rng.uniform(0, 20, (2, T, G))
    qdown = rng.uniform(0, 15, (2, T, G))
    dist[:, 4, 2] = K.BIG  # no route from waypoint 4 to exit 2
    allowed = rng.random((n, G)) < 0.8
    onward = rng.uniform(0, 100, (G, 4))
    queue = rng.uniform(0, 30, T)
    perceive = np.where(rng.random(n) < 0.5, -1.0, 20.0)
    noise = rng.normal(0, 5, (n, T))
    cur = rng.integers(0, T, n).astype(np.int32)
    t_to_level = np.array([-1, -1, -1, 0, 1], np.int32)  # waypoints 3 and 4 lead to levels 0 and 1
    avoid = rng.integers(-1, 2, n).astype(np.int32)  # the level each one came from (-1: none)
    out = K.route_choice(x, y, lv, paid, v0, dest, np.arange(n), grid, floor.ravel(), toff, lt_start, lt_idx, cand,
                         G, dist, ride, qdown, allowed, onward, queue, perceive, noise, cur, 10.0, False, avoid,
                         t_to_level)
    d = np.stack([bilinear(floor[t].astype(float), 0.0, 0.0, 0.5, x, y) for t in range(T)], 1)
    seen = (perceive[:, None] < 0) | (d <= 20.0)
    cost = np.full((n, T), np.inf)
    for a in range(n):
        s = int(paid[a])
        for u in range(T):
            if not cand[s, u] or d[a, u] >= 1e6 or t_to_level[u] == avoid[a] >= 0:
                continue
            here = d[a, u] / v0[a] + (queue[u] if seen[a, u] else 0.0)
            if u < G:
                after = onward[u, dest[a]] / v0[a] + noise[a, u] if allowed[a, u] else np.inf
            else:
                here += noise[a, u]
                opts = [(dist[s, u, g] + onward[g, dest[a]]) / v0[a] + ride[s, u, g] + noise[a, g]
                        + (qdown[s, u, g] + queue[g] if perceive[a] < 0 or d[a, u] + dist[s, u, g] <= 20.0 else 0.0)
                        for g in range(G) if allowed[a, g] and dist[s, u, g] < 1e6]
                after = min(opts) if opts else np.inf
            cost[a, u] = here + after
    best = cost.argmin(1)
    curc = cost[np.arange(n), cur]
    ref = np.where(cost.min(1) < curc - 10.0, best, cur)
    assert np.array_equal(out, ref)
    assert (out != cur).any() and (out == cur).any()


def test_route_tables_find_the_best_route_through_waypoints():
    """Exit 0 directly; waypoint 2 (a stair foot) leads to waypoint 3 (a ticket bank), which
    leads to both exits: in state 1 the route to an exit must pass the bank."""
    G, T = 2, 4
    cand = np.ones((2, T), bool)
    cand[1, :G] = False
    cand[0, 3] = False  # only who must validate heads for the bank
    # successors: from 2 -> 3 (10 m, keep state), 2 -> 0 (50 m); from 3 -> 0 (5 m), 3 -> 1 (8 m, state 0)
    succ = [(2, 3, 10.0, 3.0, 1), (2, 0, 50.0, 0.0, 1), (3, 0, 5.0, 0.0, 0), (3, 1, 8.0, 0.0, 0)]
    start = np.searchsorted([s[0] for s in succ], np.arange(T + 1))
    dist, ride, via = K.route_tables(G, start, np.array([s[1] for s in succ]), np.array([s[2] for s in succ]),
                                     np.array([s[3] for s in succ]), np.array([s[4] for s in succ]), cand, 1.34)
    assert dist[1, 2, 0] == pytest.approx(15.0) and ride[1, 2, 0] == pytest.approx(3.0)
    assert via[1, 2, 0, 3] and not via[1, 2, 0, 2]
    assert dist[1, 2, 1] == pytest.approx(18.0)
    assert dist[0, 2, 0] == pytest.approx(50.0) and ride[0, 2, 0] == 0.0  # may leave: straight to exit 0
    assert dist[0, 2, 1] >= K.BIG  # exit 1 only through the bank, which state 0 does not take


@pytest.mark.slow
def test_place_agents_keeps_gap():
    nav = room_nav()
    cr = Crowd(nav, 400, MotionParams())
    rng = np.random.default_rng(0)
    cr.add(rng.uniform(1, 11, 100), rng.uniform(1, 7, 100), np.ones(100), np.zeros(100, np.int32))
    cr.build_cells()
    cand = rng.uniform([1, 1], [11, 7], (200, 6, 2))
    px, py = cr.place(cand[..., 0], cand[..., 1], 0.32)
    px, py = px[np.isfinite(px)], py[np.isfinite(py)]
    allx, ally = np.r_[cr.x[:100], px], np.r_[cr.y[:100], py]
    d = np.hypot(allx[:, None] - allx[None], ally[:, None] - ally[None])
    new = np.arange(100, len(allx))
    dd = d[new][:, :]
    dd[np.arange(len(new)), new] = np.inf
    assert len(px) > 0 and dd.min() >= 0.32


def test_clear_width_measures_passages():
    # two 6 x 4 m rooms joined by a 3 m long, 0.5 m wide passage
    free = shapely.union_all([shapely.box(0, 0, 6, 4), shapely.box(6, 1.75, 9, 2.25), shapely.box(9, 0, 15, 4)])
    nav = build_navigation(free, [], cell_m=0.05, cache=False)
    w = nav.sample(nav.width, np.array([7.5, 7.5, 3.0, 12.0]), np.array([2.0, 1.85, 2.0, 0.3]))
    assert abs(w[0] - 0.5) <= 0.05 and abs(w[1] - 0.5) <= 0.05
    assert w[2] == pytest.approx(2 * WIDTH_CAP_M) and w[3] == pytest.approx(2 * WIDTH_CAP_M)


@pytest.mark.slow
@pytest.mark.parametrize("half_width,expect_gap", [(0.25, "narrow"), (2.0, "wide")])
def test_time_gap_falls_in_narrow_passages(half_width, expect_gap):
    """A follower 0.8 m behind a standing leader walks at (free spacing) / T, with T the narrow
    time gap in a 0.5 m passage and the normal one in a 4 m corridor."""
    mp = MotionParams(noise=0.0, a_rep=0.0)
    free = shapely.box(0, 2 - half_width, 20, 2 + half_width)
    nav = build_navigation(free, [], cell_m=0.05, cache=False)
    nav.dir_x[:] = 1.0
    nav.dir_y[:] = 0.0
    cr = Crowd(nav, 2, mp)
    cr.add(np.array([10.0, 10.8]), np.array([2.0, 2.0]), np.array([1.34, 0.0]), np.zeros(2, np.int32))
    cr.step(0.05)
    # both stand (standing bodies); in the narrow passage the follower keeps only her walking body
    if expect_gap == "narrow":
        expect = (0.8 - mp.radius_standing - mp.radius) / mp.t_narrow
    else:
        expect = (0.8 - 2 * mp.radius_standing) / mp.time_gap
    assert cr.vx[0] == pytest.approx(expect, rel=1e-6)


def test_repulsion_table_reads_back_the_formula():
    """The tabulated neighbour push, read as the step reads it, stays within 2e-5 of the exponential
    from 0.1 m on and within 5e-7 from 0.3 m (bodies in contact) on."""
    mp = MotionParams()
    tab = K.repulsion_table(mp.a_rep, mp.d_rep, mp.radius, mp.r_cut)
    d = np.linspace(0.1, mp.r_cut, 200001)[:-1]
    u = d * d * ((len(tab) - 2) / mp.r_cut ** 2)
    j = u.astype(int)
    u -= j
    read = tab[j] * (1 - u) + tab[j + 1] * u
    exact = mp.a_rep * np.exp((2 * mp.radius - d) / mp.d_rep) / d
    err = np.abs(read / exact - 1)
    assert err.max() < 2e-5
    assert err[d >= 0.3].max() < 5e-7
