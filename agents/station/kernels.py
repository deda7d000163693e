"""Numba kernels of the station crowd: pure functions over numpy arrays.

Everything per agent and per step lives here; the model only calls these functions on whole
arrays. Coordinates are metres in the city CRS, float64. A station has one or more *levels*
(floors); each agent walks on one level (``lv``). The navigation rasters of all levels are packed
into flat arrays (``navigation.Floors``): level ``L`` is a north-up raster of ``lrows[L] x
lcols[L]`` cells whose top-left corner is ``(lx0[L], ly0[L])`` and whose first cell is at
``loff[L]``; a target's floor field and directions lie on its level's raster, from ``toff[t]`` on.
Values are sampled bilinearly at cell centres.

Contents
--------
* ``build_cells``: uniform-grid neighbour search over the plan extent, one grid per level. A
  counting sort puts the agents in cell order (``order``) and copies their positions and body
  radii into contiguous sorted buffers, so the neighbour loops stream through memory. Optionally
  periodic in x (for fundamental-diagram runs).
* ``cfsm_step``: the collision-free speed model of Tordeux, Chraibi & Seyfried (2016), the model
  family of JuPedSim's ``CollisionFreeSpeedModel``: the direction is the desired direction plus
  exponential repulsion from neighbours and walls; the speed is ``min(v0, max(0, s / T))`` with
  ``s`` the free spacing to the nearest agent ahead inside a corridor of the two bodies' width.
  Bodies have a speed-dependent size as in the generalised centrifugal-force model (Chraibi,
  Seyfried & Schadschneider 2010, the lateral semi-axis ``b = b_max - (b_max - b_min) v / v0``):
  a standing or queueing person claims a wider disc (shoulders squared, personal space) than a
  walking one, so queues pack like people do (at most ~7 persons/m²) while walking crowds keep
  Weidmann's fundamental diagram. The repulsion is cut off where a neighbour's push falls below
  3 % of the desired direction and read from a table over the squared distance
  (``repulsion_table``); the spacing scans only the cells the look-ahead corridor crosses. The
  rasters a step reads together lie side by side (``Floors.dir_xy``, ``Floors.walls``).
* ``sfm_step``: the social force model (Helbing & Molnár 1995; Helbing, Farkas & Vicsek 2000)
  with body compression and sliding friction, plus the anisotropy of Helbing & Johansson 2007.
* Both steps keep every agent at least ``r_hard`` away from walls (wall-distance field), hold
  agents whose ``hold`` time has not come (ticket lanes, the foot of a stair or escalator) and
  write one *event* per agent (``ev``): an open exit zone entered (its target index), the entry
  zone of the connector the agent is heading for (its target index), a ticket lane entered by a
  passenger who still has to validate (``lane_base + lane``), or the end of a hold at a
  connector's foot (``EV_BOARD``); -1 otherwise.
* ``density_grid``, ``target_counts``, ``route_choice``, ``place_agents``: density per level,
  queues, the choice of the next target, release.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

import agents.thread_policy  # noqa: F401  (one OpenMP wait policy per process)

# Entry points release the GIL (nogil=True): the app runs a branch's futures in threads beside the
# window, which must get the interpreter between kernel calls (docs/command_room.md).

BIG = 1.0e30
N_CHUNKS = 256  # the threaded steps hand out agents in this many chunks
UNREACHABLE_M = 1.0e6  # floor values at or above this are unreachable
EV_NONE = -1
EV_BOARD = -2
REP_TABLE_FROM_M2 = 0.01  # neighbours closer than 0.1 m push by the formula, the rest by the table


def repulsion_table(a_rep, d_rep, r_walk, r_cut, size=16384):
    """The collision-free model's neighbour push per metre of offset, ``a exp((2 r_walk - d) / D) / d``,
    tabulated over the squared distance ``d²`` from 0 to ``r_cut²`` (``size`` + 1 values and one
    more to interpolate at the end): read back by linear interpolation from ``d`` = 0.1 m on, within
    2e-5 of the formula (relative; 5e-7 from 0.3 m on, two walking bodies touch at 0.28 m), it spares
    each pair a square root, an exponential and a division."""
    if a_rep <= 0 or r_cut <= 0:  # no push (MotionParams.r_cut is 0 then): a table of zeros, never read
        return np.zeros(size + 2)
    d2 = np.linspace(0.0, r_cut * r_cut, size + 1)
    d = np.sqrt(np.maximum(d2, d2[1]))  # the first value is never read (the formula serves d < 0.1 m)
    w = a_rep * np.exp((2.0 * r_walk - d) / d_rep) / d
    return np.r_[w, w[-1]]


# -- field sampling ----------------------------------------------------------------------------
@njit(inline="always", fastmath=True)
def _bil_index(x, y, x0, y0, inv_h, rows, cols):
    fx = (x - x0) * inv_h - 0.5
    fy = (y0 - y) * inv_h - 0.5
    if fx < 0.0:
        fx = 0.0
    elif fx > cols - 1.0001:
        fx = cols - 1.0001
    if fy < 0.0:
        fy = 0.0
    elif fy > rows - 1.0001:
        fy = rows - 1.0001
    c0 = int(fx)
    r0 = int(fy)
    return r0, c0, fx - c0, fy - r0


@njit(inline="always", fastmath=True)
def _bil(F, r0, c0, wx, wy):
    return ((F[r0, c0] * (1.0 - wx) + F[r0, c0 + 1] * wx) * (1.0 - wy)
            + (F[r0 + 1, c0] * (1.0 - wx) + F[r0 + 1, c0 + 1] * wx) * wy)


@njit(inline="always", fastmath=True)
def _bilf(F, base, cols, r0, c0, wx, wy):
    """Bilinear sample of a raster stored flat from ``base`` on, ``cols`` wide."""
    a = base + r0 * cols + c0
    return ((F[a] * (1.0 - wx) + F[a + 1] * wx) * (1.0 - wy)
            + (F[a + cols] * (1.0 - wx) + F[a + cols + 1] * wx) * wy)


@njit(inline="always", fastmath=True)
def _bilv(F, a, stride, j, cols, wx, wy):
    """Bilinear sample of value ``j`` of a raster that stores ``stride`` values per cell side by side
    (``Floors.dir_xy``, ``Floors.walls``); ``a`` is the flat index of the top-left cell."""
    p = a * stride + j
    q = p + cols * stride
    return ((F[p] * (1.0 - wx) + F[p + stride] * wx) * (1.0 - wy)
            + (F[q] * (1.0 - wx) + F[q + stride] * wx) * wy)


@njit(inline="always")
def _cell_at(x, y, x0, y0, inv_h, rows, cols):
    """Flat index (within a level) of the cell holding a point, -1 outside the raster."""
    c = int(math.floor((x - x0) * inv_h))
    r = int(math.floor((y0 - y) * inv_h))
    if r < 0 or r >= rows or c < 0 or c >= cols:
        return -1
    return r * cols + c


@njit(cache=True, nogil=True)
def sample_field(F, x0, y0, inv_h, x, y):
    """Bilinear samples of a 2-D field at points (used by tests and the model)."""
    rows, cols = F.shape
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        r0, c0, wx, wy = _bil_index(x[i], y[i], x0, y0, inv_h, rows, cols)
        out[i] = _bil(F, r0, c0, wx, wy)
    return out


@njit(cache=True, nogil=True)
def sample_flat(F, base, x0, y0, inv_h, rows, cols, x, y):
    """Bilinear samples of a raster stored flat from ``base`` (a target's floor field, say)."""
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        r0, c0, wx, wy = _bil_index(x[i], y[i], x0, y0, inv_h, rows, cols)
        out[i] = _bilf(F, base, cols, r0, c0, wx, wy)
    return out


@njit(cache=True, nogil=True)
def clear_width(wall_d, cell_m, cap_m):
    """Local clear width (m) of the free space: at each cell, the diameter of the largest disc
    inside the free space that covers the cell centre ("local thickness", Hildebrand &
    Rüegsegger 1997), capped at ``2 * cap_m``. Blocked cells get 0. Disc centres are taken at
    cell centres, which underestimates by up to one cell; half a cell is added to each radius."""
    rows, cols = wall_d.shape
    out = np.zeros((rows, cols), dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            R = wall_d[r, c]
            if R <= 0.0:
                continue
            R += 0.5 * cell_m
            if R > cap_m:
                R = cap_m
            w = 2.0 * R
            k = int(R / cell_m)
            lim2 = (R / cell_m) ** 2
            for dr in range(-k, k + 1):
                rr = r + dr
                if rr < 0 or rr >= rows:
                    continue
                for dc in range(-k, k + 1):
                    cc = c + dc
                    if cc < 0 or cc >= cols or dr * dr + dc * dc > lim2:
                        continue
                    if wall_d[rr, cc] > 0.0 and out[rr, cc] < w:
                        out[rr, cc] = w
    return out


@njit(inline="always")
def _hash_uniform(a, b):
    """Deterministic uniform number in [0, 1) from two integers (splitmix64), independent of
    the thread that asks: used for the small direction noise that breaks symmetric jams."""
    h = np.uint64(a) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(b) * np.uint64(0xD1B54A32D192ED03)
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    h = h ^ (h >> np.uint64(31))
    return float(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(inline="always", fastmath=True)
def body_radius(vx, vy, v_ref, r_walk, r_stand):
    """Speed-dependent body radius: ``r_stand`` standing, falling linearly with the speed to
    ``r_walk`` at ``v_ref`` and above (the GCFM's lateral semi-axis, Chraibi et al. 2010)."""
    if r_stand <= r_walk:
        return r_walk
    if v_ref <= 1e-9:
        return r_stand
    f = math.sqrt(vx * vx + vy * vy) / v_ref
    if f > 1.0:
        f = 1.0
    return r_stand - (r_stand - r_walk) * f


# -- neighbour search ---------------------------------------------------------------------------
@njit(inline="always")
def _cell_index(x, y, xmin, ymin, inv_cs, ncx, ncy):
    """Cell of a point; points outside the grid go to the border cells."""
    cx = min(max(int((x - xmin) * inv_cs), 0), ncx - 1)
    cy = min(max(int((y - ymin) * inv_cs), 0), ncy - 1)
    return cy * ncx + cx


@njit(inline="always")
def _min_image(dx, periodic, period_x):
    """The shortest x offset in a corridor that wraps round every ``period_x`` metres."""
    if periodic:
        if dx > 0.5 * period_x:
            return dx - period_x
        if dx < -0.5 * period_x:
            return dx + period_x
    return dx


@njit(cache=True, nogil=True)
def build_cells(x, y, vx, vy, v0, lv, n, xmin, ymin, inv_cs, ncx, ncy, nlev, r_walk, r_stand, v_body, grid, wall_d,
                cell_of, cursor, start, order, sx, sy, sr):
    """Counting sort of agents ``0..n-1`` by (level, cell).

    On return agents ``order[start[c]:start[c+1]]`` lie in cell ``c = L * ncx * ncy + cy * ncx +
    cx`` and ``sx[k], sy[k], sr[k]`` are the position and body radius of agent ``order[k]``.
    Points outside the grid are clamped to the border cells (they are still found, just less
    efficiently). ``nlev`` grids are needed, so ``start`` holds ``nlev * ncx * ncy + 1`` entries.
    The radius falls from ``r_stand`` to ``r_walk`` at ``v_body`` m/s (at the agent's ``v0`` when
    ``v_body`` is 0); a person closer to a wall than that keeps no personal space towards it: the
    radius is then the wall distance (never below ``r_walk``), so people pressed against the
    jambs of a door or the cabinets of a ticket lane still step through it.
    """
    lx0, ly0, lrows, lcols, loff, inv_h = grid
    per = ncx * ncy
    ncell = nlev * per
    for c in range(ncell + 1):
        start[c] = 0
    for i in range(n):
        c = lv[i] * per + _cell_index(x[i], y[i], xmin, ymin, inv_cs, ncx, ncy)
        cell_of[i] = c
        start[c + 1] += 1
    for c in range(ncell):
        start[c + 1] += start[c]
        cursor[c] = start[c]
    for i in range(n):
        c = cell_of[i]
        k = cursor[c]
        cursor[c] = k + 1
        order[k] = i
        sx[k] = x[i]
        sy[k] = y[i]
        r = body_radius(vx[i], vy[i], v_body if v_body > 0.0 else v0[i], r_walk, r_stand)
        if r > r_walk:
            L = lv[i]
            r0, c0, wx, wy = _bil_index(x[i], y[i], lx0[L], ly0[L], inv_h, lrows[L], lcols[L])
            dw = _bilf(wall_d, loff[L], lcols[L], r0, c0, wx, wy)
            if dw < r:
                r = dw if dw > r_walk else r_walk
        sr[k] = r


@njit(inline="always")
def _cell_range(lo, hi, origin, inv_cs, nc, periodic):
    a = int(math.floor((lo - origin) * inv_cs))
    b = int(math.floor((hi - origin) * inv_cs))
    if not periodic:
        if a < 0:
            a = 0
        if b > nc - 1:
            b = nc - 1
    elif b - a >= nc:
        b = a + nc - 1
    return a, b


@njit(inline="always")
def _gap(p, c, origin, cs, nc):
    """Distance along one axis from ``p`` to cell ``c`` of a row of ``nc`` cells; 0 inside it and for
    the border cells, which also hold the points beyond the grid (``_cell_index``)."""
    if c <= 0 or c >= nc - 1:
        return 0.0
    lo = origin + c * cs
    if p < lo:
        return lo - p
    if p > lo + cs:
        return p - lo - cs
    return 0.0


@njit(inline="always")
def _event(i, nx, ny, L, t_end, tgt, hold, board, paid, grid, zone, lane, t_open, n_exit, lane_base, t_to_level):
    """What agent ``i`` at its new position sets off (see the module doc). At the foot of a stair
    or escalator a passenger takes the one she stands at if it goes where she was heading (in a
    crowd at the head of the stairs one takes what is in front of one)."""
    lx0, ly0, lrows, lcols, loff, inv_h = grid
    cols = lcols[L]
    a = _cell_at(nx, ny, lx0[L], ly0[L], inv_h, lrows[L], cols)
    if a >= 0:
        z = zone[loff[L] + a]
        if z >= 0 and t_open[z]:
            if z < n_exit:
                return z
            if board[i] < 0 and (z == tgt[i] or (t_to_level[z] >= 0 and t_to_level[z] == t_to_level[tgt[i]])):
                return z
        if paid[i]:
            ln = lane[loff[L] + a]
            if ln >= 0:
                return lane_base + ln
    if board[i] >= 0 and hold[i] <= t_end + 1e-9:
        return EV_BOARD
    return EV_NONE


# -- collision-free speed model -----------------------------------------------------------------
@njit(fastmath=True, cache=True, nogil=True)
def _cfsm_agents(k_lo, k_hi, t_now, x, y, vx, vy, v0, tgt, ids, lv, hold, board, paid, ev, step_no,
                order, start, sx, sy, sr, cells, grid, flds, targ, prm, rep_tab):
    xmin, ymin, inv_cs, ncx, ncy, period_x = cells
    lx0, ly0, lrows, lcols, loff, inv_h = grid
    walls, zone, lane = flds
    toff, dir_xy, t_open, n_exit, lane_base, t_to_level = targ
    r_walk, r_stand, time_gap, t_narrow, w_single, w_wide, a_rep, d_rep, r_cut, rep_cap, a_wall, d_wall, \
        r_hard, noise, dt = prm
    periodic = period_x > 0.0
    cs = 1.0 / inv_cs
    tab_scale = (rep_tab.shape[0] - 2) / (r_cut * r_cut) if r_cut > 0.0 else 0.0
    for k in range(k_lo, k_hi):
        i = order[k]
        xi = sx[k]
        yi = sy[k]
        ri = sr[k]
        L = lv[i]
        base = loff[L]
        rows = lrows[L]
        cols = lcols[L]
        lc = L * ncx * ncy
        r0, c0, wx, wy = _bil_index(xi, yi, lx0[L], ly0[L], inv_h, rows, cols)
        a_here = r0 * cols + c0
        ta = toff[tgt[i]] + a_here
        ex = _bilv(dir_xy, ta, 2, 0, cols, wx, wy)
        ey = _bilv(dir_xy, ta, 2, 1, cols, wx, wy)
        a_here += base
        vi = v0[i]
        if hold[i] > t_now:
            vi = 0.0
        # neighbour repulsion on this level; it steers the direction only, so it keeps the walking
        # contact distance: the larger standing body sets where people stop (the spacing below),
        # not how hard they push each other aside
        rx = 0.0
        ry = 0.0
        if a_rep > 0.0:
            ell_w = 2.0 * r_walk
            rc2 = r_cut * r_cut
            ax, axb = _cell_range(xi - r_cut, xi + r_cut, xmin, inv_cs, ncx, periodic)
            ay, ayb = _cell_range(yi - r_cut, yi + r_cut, ymin, inv_cs, ncy, False)
            for cy in range(ay, ayb + 1):
                gy = _gap(yi, cy, ymin, cs, ncy)
                for cxr in range(ax, axb + 1):
                    cx = cxr % ncx if periodic else cxr
                    if not periodic:
                        # the corners of the block of cells lie beyond the cut-off: no one there pushes
                        gx = _gap(xi, cx, xmin, cs, ncx)
                        if gx * gx + gy * gy > rc2 + 1e-6:
                            continue
                    c = lc + cy * ncx + cx
                    for m in range(start[c], start[c + 1]):
                        dx = _min_image(xi - sx[m], periodic, period_x)
                        dy = yi - sy[m]
                        d2 = dx * dx + dy * dy
                        if d2 < rc2 and d2 > 1e-12:
                            if d2 >= REP_TABLE_FROM_M2:
                                u = d2 * tab_scale
                                j = int(u)
                                u -= j
                                w = rep_tab[j] * (1.0 - u) + rep_tab[j + 1] * u
                            else:
                                d = math.sqrt(d2)
                                w = a_rep * math.exp((ell_w - d) / d_rep) / d
                            rx += w * dx
                            ry += w * dy
        # the summed neighbour push may turn an agent sideways but never backwards: it is capped
        # at rep_cap (< 1) times the unit desired direction
        rn = math.sqrt(rx * rx + ry * ry)
        if rn > rep_cap:
            rx *= rep_cap / rn
            ry *= rep_cap / rn
        ex += rx
        ey += ry
        # walls: slide (drop the component into the wall) within d_wall of body contact, and push
        # out linearly when the body overlaps the wall
        dw = _bilv(walls, a_here, 4, 0, cols, wx, wy)
        if dw < ri + d_wall:
            nwx = _bilv(walls, a_here, 4, 1, cols, wx, wy)
            nwy = _bilv(walls, a_here, 4, 2, cols, wx, wy)
            dot = ex * nwx + ey * nwy
            if dot < 0.0:
                ex -= dot * nwx
                ey -= dot * nwy
            if dw < ri:
                w = a_wall * (ri - dw) / ri
                ex += w * nwx
                ey += w * nwy
        norm = math.sqrt(ex * ex + ey * ey)
        if norm > 1e-9:
            ex /= norm
            ey /= norm
        else:
            ex = 0.0
            ey = 0.0
        if noise > 0.0:
            # small deterministic heading noise; larger for agents that stood still last step,
            # so that symmetric standstills (two agents each "ahead" of the other) dissolve
            amp = noise
            if vx[i] * vx[i] + vy[i] * vy[i] < 0.01 * v0[i] * v0[i]:
                amp = 4.0 * noise
            th = amp * (2.0 * _hash_uniform(ids[i], step_no) - 1.0)
            ct = math.cos(th)
            st = math.sin(th)
            ex, ey = ct * ex - st * ey, st * ex + ct * ey
        # in passages too narrow for two abreast people close up (shoulders turned, lanes
        # interleaved: the zipper effect), so the time gap falls towards t_narrow with the clear
        # width here or one body length ahead, and a standing person keeps only her walking body
        tg = time_gap
        shrink = 0.0
        w = _bilv(walls, a_here, 4, 3, cols, wx, wy)
        ra, ca, wxa, wya = _bil_index(xi + ex * 2.0 * r_walk, yi + ey * 2.0 * r_walk, lx0[L], ly0[L], inv_h, rows, cols)
        wa = _bilv(walls, base + ra * cols + ca, 4, 3, cols, wxa, wya)
        if wa < w:
            w = wa
        if w < w_wide:
            f = (w - w_single) / (w_wide - w_single)
            if f < 0.0:
                f = 0.0
            if t_narrow < time_gap:
                tg = t_narrow + (time_gap - t_narrow) * f
            shrink = (ri - r_walk) * (1.0 - f)
        # free spacing to the nearest agent ahead: who is ahead is decided by the walking bodies'
        # width (a corridor of 2 r_walk), how close one comes by the speed-dependent bodies
        lat_ell = 2.0 * r_walk
        smin = vi * tg + 1e-6
        if vi > 0.0:
            look = ri + r_stand - shrink + smin
            xa = xi + ex * look
            ya = yi + ey * look
            ax, axb = _cell_range(min(xi, xa) - lat_ell, max(xi, xa) + lat_ell, xmin, inv_cs, ncx, periodic)
            ay, ayb = _cell_range(min(yi, ya) - lat_ell, max(yi, ya) + lat_ell, ymin, inv_cs, ncy, False)
            for cy in range(ay, ayb + 1):
                dy_lo = ymin + cy * cs - yi
                inner_y = 0 < cy < ncy - 1
                for cxr in range(ax, axb + 1):
                    cx = cxr % ncx if periodic else cxr
                    if inner_y and not periodic and 0 < cx < ncx - 1:
                        # cells the look-ahead corridor misses (wholly to one side, or behind) hold no one
                        # ahead: the box of cells round a diagonal corridor is mostly such cells
                        dx_lo = xmin + cx * cs - xi
                        ux0 = dx_lo * ey
                        ux1 = (dx_lo + cs) * ey
                        uy0 = dy_lo * ex
                        uy1 = (dy_lo + cs) * ex
                        if min(ux0, ux1) - max(uy0, uy1) >= lat_ell + 1e-6:
                            continue
                        if max(ux0, ux1) - min(uy0, uy1) <= -lat_ell - 1e-6:
                            continue
                        if max(dx_lo * ex, (dx_lo + cs) * ex) + max(dy_lo * ey, (dy_lo + cs) * ey) <= -1e-6:
                            continue
                    c = lc + cy * ncx + cx
                    for m in range(start[c], start[c + 1]):
                        if m == k:
                            continue
                        dx = _min_image(sx[m] - xi, periodic, period_x)
                        dy = sy[m] - yi
                        proj = dx * ex + dy * ey
                        if proj <= 0.0:
                            continue
                        lat = dx * ey - dy * ex
                        if lat < 0.0:
                            lat = -lat
                        if lat >= lat_ell:
                            continue
                        s = math.sqrt(dx * dx + dy * dy) - ri - sr[m] + shrink
                        if s < smin:
                            smin = s
        speed = smin / tg
        if speed < 0.0:
            speed = 0.0
        elif speed > vi:
            speed = vi
        nx = xi + speed * ex * dt
        ny = yi + speed * ey * dt
        nx, ny = _wall_constraint(xi, yi, nx, ny, walls, base, lx0[L], ly0[L], inv_h, rows, cols, r_hard)
        if periodic:
            if nx >= xmin + period_x:
                nx -= period_x
            elif nx < xmin:
                nx += period_x
            vx[i] = speed * ex
            vy[i] = speed * ey
        else:
            vx[i] = (nx - xi) / dt
            vy[i] = (ny - yi) / dt
        x[i] = nx
        y[i] = ny
        ev[i] = _event(i, nx, ny, L, t_now + dt, tgt, hold, board, paid, grid, zone, lane, t_open, n_exit, lane_base,
                           t_to_level)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def cfsm_step(t_now, x, y, vx, vy, v0, tgt, ids, lv, hold, board, paid, ev, step_no, n,
              order, start, sx, sy, sr, cells, grid, flds, targ, prm, rep_tab):
    """One step of the collision-free speed model for agents ``0..n-1`` (cells already built).

    ``prm`` = (r_walk, r_stand, T, T_narrow, w_single, w_wide, a, D, r_cut, rep_cap, a_wall,
    d_wall, r_hard, noise, dt). Updates ``x, y, vx, vy`` in place and writes ``ev``. Every agent
    reads only the sorted copies of the old positions, so the result does not depend on the
    threads.
    """
    chunk = (n + N_CHUNKS - 1) // N_CHUNKS
    for ch in prange(N_CHUNKS):
        _cfsm_agents(min(n, ch * chunk), min(n, (ch + 1) * chunk), t_now, x, y, vx, vy, v0, tgt, ids, lv, hold,
                     board, paid, ev, step_no, order, start, sx, sy, sr, cells, grid, flds, targ, prm, rep_tab)


@njit(fastmath=True, cache=True, nogil=True)
def cfsm_step_serial(t_now, x, y, vx, vy, v0, tgt, ids, lv, hold, board, paid, ev, step_no, n,
                     order, start, sx, sy, sr, cells, grid, flds, targ, prm, rep_tab):
    """Serial twin of ``cfsm_step`` (small crowds: no thread start-up)."""
    _cfsm_agents(0, n, t_now, x, y, vx, vy, v0, tgt, ids, lv, hold, board, paid, ev, step_no,
                 order, start, sx, sy, sr, cells, grid, flds, targ, prm, rep_tab)


@njit(inline="always", fastmath=True)
def _wall_constraint(xi, yi, nx, ny, walls, base, x0, y0, inv_h, rows, cols, r_hard):
    """Push a new position out of the wall band; if that fails keep the old one."""
    r0, c0, wx, wy = _bil_index(nx, ny, x0, y0, inv_h, rows, cols)
    dw = _bilv(walls, base + r0 * cols + c0, 4, 0, cols, wx, wy)
    if dw >= r_hard:
        return nx, ny
    for _ in range(3):
        a = base + r0 * cols + c0
        gx = _bilv(walls, a, 4, 1, cols, wx, wy)
        gy = _bilv(walls, a, 4, 2, cols, wx, wy)
        nx += (r_hard - dw + 1e-4) * gx
        ny += (r_hard - dw + 1e-4) * gy
        r0, c0, wx, wy = _bil_index(nx, ny, x0, y0, inv_h, rows, cols)
        dw = _bilv(walls, base + r0 * cols + c0, 4, 0, cols, wx, wy)
        if dw >= r_hard:
            return nx, ny
    return xi, yi


# -- social force model -------------------------------------------------------------------------
@njit(fastmath=True, cache=True, nogil=True)
def _sfm_agents(k_lo, k_hi, t_now, x, y, vx, vy, v0, tgt, lv, hold, board, paid, ev, order, start, sx, sy, svx, svy,
               cells, grid, flds, targ, prm):
    xmin, ymin, inv_cs, ncx, ncy, period_x = cells
    lx0, ly0, lrows, lcols, loff, inv_h = grid
    walls, zone, lane = flds
    toff, dir_xy, t_open, n_exit, lane_base, t_to_level = targ
    radius, tau, mass, a_soc, b_soc, k_body, kappa, lam, a_w, b_w, r_hard, dt = prm
    periodic = period_x > 0.0
    rij = 2.0 * radius
    cut = rij + b_soc * math.log(max(a_soc, 1e-9) / 1e-2)
    cut2 = cut * cut
    inv_m = 1.0 / mass
    for k in range(k_lo, k_hi):
        i = order[k]
        xi = sx[k]
        yi = sy[k]
        vxi = svx[k]
        vyi = svy[k]
        L = lv[i]
        base = loff[L]
        rows = lrows[L]
        cols = lcols[L]
        r0, c0, wx, wy = _bil_index(xi, yi, lx0[L], ly0[L], inv_h, rows, cols)
        a_here = r0 * cols + c0
        ta = toff[tgt[i]] + a_here
        ex = _bilv(dir_xy, ta, 2, 0, cols, wx, wy)
        ey = _bilv(dir_xy, ta, 2, 1, cols, wx, wy)
        a_here += base
        en = math.sqrt(ex * ex + ey * ey)
        if en > 1e-9:
            ex /= en
            ey /= en
        vi0 = v0[i]
        if hold[i] > t_now:
            vi0 = 0.0
        fx = mass * (vi0 * ex - vxi) / tau
        fy = mass * (vi0 * ey - vyi) / tau
        # heading for anisotropy: current velocity, else desired direction
        sp = math.sqrt(vxi * vxi + vyi * vyi)
        if sp > 1e-6:
            hx = vxi / sp
            hy = vyi / sp
        else:
            hx = ex
            hy = ey
        lc = L * ncx * ncy
        ax, bx = _cell_range(xi - cut, xi + cut, xmin, inv_cs, ncx, periodic)
        ay, by = _cell_range(yi - cut, yi + cut, ymin, inv_cs, ncy, False)
        for cy in range(ay, by + 1):
            for cxr in range(ax, bx + 1):
                cx = cxr % ncx if periodic else cxr
                c = lc + cy * ncx + cx
                for m in range(start[c], start[c + 1]):
                    if m == k:
                        continue
                    dx = _min_image(xi - sx[m], periodic, period_x)
                    dy = yi - sy[m]
                    d2 = dx * dx + dy * dy
                    if d2 >= cut2 or d2 < 1e-12:
                        continue
                    d = math.sqrt(d2)
                    nxij = dx / d
                    nyij = dy / d
                    # anisotropy: weaker from behind (cos phi = -n . heading)
                    cphi = -(nxij * hx + nyij * hy)
                    aniso = lam + (1.0 - lam) * 0.5 * (1.0 + cphi)
                    f = a_soc * math.exp((rij - d) / b_soc) * aniso
                    ov = rij - d
                    if ov > 0.0:
                        f += k_body * ov
                        tx = -nyij
                        ty = nxij
                        dvt = (svx[m] - vxi) * tx + (svy[m] - vyi) * ty
                        fx += kappa * ov * dvt * tx
                        fy += kappa * ov * dvt * ty
                    fx += f * nxij
                    fy += f * nyij
        dw = _bilv(walls, a_here, 4, 0, cols, wx, wy)
        if dw < radius + 10.0 * b_w:
            nwx = _bilv(walls, a_here, 4, 1, cols, wx, wy)
            nwy = _bilv(walls, a_here, 4, 2, cols, wx, wy)
            nn = math.sqrt(nwx * nwx + nwy * nwy)
            if nn > 1e-9:
                nwx /= nn
                nwy /= nn
            f = a_w * math.exp((radius - dw) / b_w)
            ov = radius - dw
            if ov > 0.0:
                f += k_body * ov
                tx = -nwy
                ty = nwx
                vt = vxi * tx + vyi * ty
                fx -= kappa * ov * vt * tx
                fy -= kappa * ov * vt * ty
            fx += f * nwx
            fy += f * nwy
        nvx = vxi + fx * inv_m * dt
        nvy = vyi + fy * inv_m * dt
        vmax = 1.3 * vi0
        s2 = nvx * nvx + nvy * nvy
        if s2 > vmax * vmax:
            s = math.sqrt(s2)
            nvx *= vmax / s
            nvy *= vmax / s
        nx = xi + nvx * dt
        ny = yi + nvy * dt
        nx, ny = _wall_constraint(xi, yi, nx, ny, walls, base, lx0[L], ly0[L], inv_h, rows, cols, r_hard)
        if periodic:
            if nx >= xmin + period_x:
                nx -= period_x
            elif nx < xmin:
                nx += period_x
        else:
            # velocity consistent with the constrained move
            nvx = (nx - xi) / dt
            nvy = (ny - yi) / dt
        vx[i] = nvx
        vy[i] = nvy
        x[i] = nx
        y[i] = ny
        ev[i] = _event(i, nx, ny, L, t_now + dt, tgt, hold, board, paid, grid, zone, lane, t_open, n_exit, lane_base,
                           t_to_level)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def sfm_step(t_now, x, y, vx, vy, v0, tgt, lv, hold, board, paid, ev, n, order, start, sx, sy, svx, svy,
             cells, grid, flds, targ, prm):
    """One semi-implicit Euler step of the social force model (Helbing et al. 2000).

    ``svx, svy`` are the velocities in sorted order (``gather_sorted``); ``prm`` = (radius, tau,
    mass, A, B, k, kappa, lambda, A_w, B_w, r_hard, dt).
    """
    chunk = (n + N_CHUNKS - 1) // N_CHUNKS
    for ch in prange(N_CHUNKS):
        _sfm_agents(min(n, ch * chunk), min(n, (ch + 1) * chunk), t_now, x, y, vx, vy, v0, tgt, lv, hold, board,
                    paid, ev, order, start, sx, sy, svx, svy, cells, grid, flds, targ, prm)


@njit(fastmath=True, cache=True, nogil=True)
def sfm_step_serial(t_now, x, y, vx, vy, v0, tgt, lv, hold, board, paid, ev, n, order, start, sx, sy, svx, svy,
                    cells, grid, flds, targ, prm):
    """Serial twin of ``sfm_step`` (small crowds: no thread start-up)."""
    _sfm_agents(0, n, t_now, x, y, vx, vy, v0, tgt, lv, hold, board, paid, ev, order, start, sx, sy, svx, svy,
                cells, grid, flds, targ, prm)


@njit(cache=True, nogil=True)
def gather_sorted(order, n, vx, vy, svx, svy):
    for k in range(n):
        i = order[k]
        svx[k] = vx[i]
        svy[k] = vy[i]


# -- density --------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def density_grid(x, y, lv, n, gx0, gy0, counts, area, out):
    """Persons per m² on a 1 m grid per level (``counts``, ``area``, ``out``: (levels, rows, cols)):
    counts smoothed with a separable [1/4, 1/2, 1/4] tent (a ~2 x 2 m window) divided by the
    walkable area under the same tent (``area``, m²). Returns the highest value."""
    nl, rows, cols = counts.shape
    counts[:] = 0.0
    for i in range(n):
        c = int(math.floor(x[i] - gx0))
        r = int(math.floor(gy0 - y[i]))
        if 0 <= r < rows and 0 <= c < cols:
            counts[lv[i], r, c] += 1.0
    best = 0.0
    for L in range(nl):
        for r in range(rows):
            for c in range(cols):
                a = area[L, r, c]
                if a <= 0.25:
                    out[L, r, c] = 0.0
                    continue
                s = 0.0
                for dr in range(-1, 2):
                    rr = r + dr
                    if rr < 0 or rr >= rows:
                        continue
                    wr = 0.5 if dr == 0 else 0.25
                    for dc in range(-1, 2):
                        cc = c + dc
                        if cc < 0 or cc >= cols:
                            continue
                        wc = 0.5 if dc == 0 else 0.25
                        s += wr * wc * counts[L, rr, cc]
                v = s / a
                out[L, r, c] = v
                if v > best:
                    best = v
    return best


# -- route choice -------------------------------------------------------------------------------
@njit(inline="always")
def _keep_or_switch(current, best_target, best, cur, hyst_s, force):
    """Hysteresis of route choice: switch only when the best target beats the current one by
    more than ``hyst_s`` seconds (or when forced, or the current one is no longer possible)."""
    if best_target < 0:
        return current
    if force or cur >= BIG or best < cur - hyst_s:
        return best_target
    return current


@njit(cache=True, nogil=True)
def target_counts(x, y, lv, tgt, n, grid, floor, toff, radius_m, T):
    """The queue of each target: agents heading for it (``tgt``) within ``radius_m`` walking
    distance of it (its floor field). Counting only those who head for it keeps neighbouring
    targets (a stair beside an escalator) from sharing one crowd."""
    lx0, ly0, lrows, lcols, loff, inv_h = grid
    out = np.zeros(T, dtype=np.int64)
    for i in range(n):
        L = lv[i]
        t = tgt[i]
        cols = lcols[L]
        r0, c0, wx, wy = _bil_index(x[i], y[i], lx0[L], ly0[L], inv_h, lrows[L], cols)
        if _bilf(floor, toff[t], cols, r0, c0, wx, wy) <= radius_m:
            out[t] += 1
    return out


@njit(cache=True, nogil=True)
def route_choice(x, y, lv, paid, v0, dest, idx, grid, floor, toff, lt_start, lt_idx, cand, n_exit,
                 dist, ride, qdown, allowed, onward, queue_s, perceive_m, noise, tgt, hyst_s, force,
                 avoid_level, t_to_level):
    """The next target of agents ``idx`` (rows of ``x, y, lv, paid, tgt``; ``v0, dest, noise``
    per row too): an exit, or a waypoint on the way to one (a ticket gate bank, the foot of a
    stair or escalator), chosen by the expected time to the agent's onward destination.

    For a target ``u`` on the agent's level that its state ``s`` (1 = still has to validate)
    may choose (``cand[s, u]``) and a final exit ``g`` (``allowed[a, g]``)::

        cost = (floor_u(x) + dist[s, u, g] + onward[g, dest]) / v0 + ride[s, u, g]
               + noise[u] + noise[g] (once when u = g) + queue_s[u] (if perceived)
               + qdown[s, u, g] + queue_s[g] (if perceived, and u is not g)

    ``dist`` is the walking distance after ``u`` along the best route to ``g`` (stairs counted
    as the level distance that takes as long), ``ride`` the seconds of escalator rides on it and
    ``qdown`` the queue seconds at the waypoints after ``u``. A queue is perceived by guided
    agents (``perceive_m`` < 0) and by others when it lies within ``perceive_m`` walking metres.
    The agent keeps its current target unless the best beats it by ``hyst_s`` (or ``force``).
    Nobody takes a stair or escalator back to the level she came from (``avoid_level[a]``; a
    connector entry ``u`` leads to level ``t_to_level[u]``, -1 for other targets).
    """
    lx0, ly0, lrows, lcols, loff, inv_h = grid
    n_t = cand.shape[1]
    out = np.empty(idx.shape[0], dtype=np.int32)
    for a in range(idx.shape[0]):
        i = idx[a]
        L = lv[i]
        s = 1 if paid[i] else 0
        cols = lcols[L]
        r0, c0, wx, wy = _bil_index(x[i], y[i], lx0[L], ly0[L], inv_h, lrows[L], cols)
        inv_v = 1.0 / v0[a]
        pm = perceive_m[a]
        best = BIG
        bestt = -1
        cur = BIG
        for q in range(lt_start[L], lt_start[L + 1]):
            u = lt_idx[q]
            if not cand[s, u] or (t_to_level[u] >= 0 and t_to_level[u] == avoid_level[a]):
                continue
            d = _bilf(floor, toff[u], cols, r0, c0, wx, wy)
            if d >= UNREACHABLE_M:
                continue
            here = d * inv_v
            if pm < 0.0 or d <= pm:
                here += queue_s[u]
            after = BIG
            if u < n_exit:
                if allowed[a, u]:
                    after = onward[u, dest[a]] * inv_v + noise[a, u]
            else:
                here += noise[a, u]
                for g in range(n_exit):
                    dg = dist[s, u, g]
                    if not allowed[a, g] or dg >= UNREACHABLE_M:
                        continue
                    c = (dg + onward[g, dest[a]]) * inv_v + ride[s, u, g] + noise[a, g]
                    if pm < 0.0 or d + dg <= pm:
                        c += qdown[s, u, g] + queue_s[g]
                    if c < after:
                        after = c
            if after >= BIG:
                continue
            cost = here + after
            if cost < best:
                best = cost
                bestt = u
            if u == tgt[i]:
                cur = cost
        out[a] = _keep_or_switch(tgt[i], bestt, best, cur, hyst_s, force)
    return out


@njit(cache=True, nogil=True)
def route_tables(n_exit, succ_start, succ_idx, succ_dist, succ_ride, succ_state, cand, v_ref):
    """Best route from every waypoint to every exit, for both states (0: may leave, 1: must
    validate first), over the waypoint graph: after passing waypoint ``u`` in state ``s`` the
    agent may head for the targets ``succ_idx[succ_start[u]:succ_start[u+1]]`` (walking
    ``succ_dist`` metres, riding ``succ_ride`` s, then in state ``succ_state`` if it was 1; a
    ticket bank sets it to 0). Exits end a route (state 0 only). Costs are compared as
    ``dist / v_ref + ride`` (Bellman-Ford; the graph is small).

    Returns ``dist[s, u, g]``, ``ride[s, u, g]`` and ``via[s, u, g, w]`` (waypoint ``w`` lies on
    the route after ``u``)."""
    T = cand.shape[1]
    dist = np.full((2, T, n_exit), BIG)
    ride = np.zeros((2, T, n_exit))
    nxt = np.full((2, T, n_exit), -1, dtype=np.int64)
    nst = np.zeros((2, T, n_exit), dtype=np.int64)
    for g in range(n_exit):
        dist[0, g, g] = 0.0
    for _ in range(2 * T + 2):
        changed = False
        for s in range(2):
            for u in range(n_exit, T):
                if not cand[s, u]:
                    continue
                for q in range(succ_start[u], succ_start[u + 1]):
                    w = succ_idx[q]
                    s2 = succ_state[q] if s == 1 else 0
                    if not cand[s2, w]:
                        continue
                    for g in range(n_exit):
                        if dist[s2, w, g] >= BIG:
                            continue
                        dd = succ_dist[q] + dist[s2, w, g]
                        rr = succ_ride[q] + ride[s2, w, g]
                        if dd / v_ref + rr < dist[s, u, g] / v_ref + ride[s, u, g] - 1e-9:
                            dist[s, u, g] = dd
                            ride[s, u, g] = rr
                            nxt[s, u, g] = w
                            nst[s, u, g] = s2
                            changed = True
        if not changed:
            break
    via = np.zeros((2, T, n_exit, T), dtype=np.bool_)
    for s in range(2):
        for u in range(T):
            for g in range(n_exit):
                if dist[s, u, g] >= BIG or u < n_exit:
                    continue
                w = nxt[s, u, g]
                ss = nst[s, u, g]
                steps = 0
                while w >= n_exit and steps < T:
                    via[s, u, g, w] = True
                    w, ss = nxt[ss, w, g], nst[ss, w, g]
                    steps += 1
    return dist, ride, via


# -- release ------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def place_agents(cand_x, cand_y, group, n_groups, level, x, y, n_old, order, start, xmin, ymin, inv_cs, ncx, ncy,
                 min_gap, out_x, out_y):
    """Pick for each due agent the first candidate point at least ``min_gap`` away from every
    agent present on ``level`` (``x[:n_old]``, found through the cell lists built from slightly
    older positions) and from those placed before it. Agents come in groups (a train, the people
    leaving one stair) in order: the first in a group that finds no room stops its group, so the
    order is kept, while other groups go on. ``out_x[a]`` is NaN for an agent not placed; returns
    how many were placed."""
    m, K = cand_x.shape
    blocked = np.zeros(n_groups, dtype=np.bool_)
    placed = 0
    gap2 = min_gap * min_gap
    reach = min_gap + 0.25
    lc = level * ncx * ncy
    for a in range(m):
        out_x[a] = np.nan
        out_y[a] = np.nan
        g = group[a]
        if blocked[g]:
            continue
        for kk in range(K):
            px = cand_x[a, kk]
            py = cand_y[a, kk]
            if math.isnan(px):
                continue
            ok = True
            if n_old > 0:
                ax, bx = _cell_range(px - reach, px + reach, xmin, inv_cs, ncx, False)
                ay, by = _cell_range(py - reach, py + reach, ymin, inv_cs, ncy, False)
                for cy in range(ay, by + 1):
                    if not ok:
                        break
                    for cx in range(ax, bx + 1):
                        c = lc + cy * ncx + cx
                        for q in range(start[c], start[c + 1]):
                            j = order[q]
                            if j >= n_old:
                                continue
                            dx = x[j] - px
                            dy = y[j] - py
                            if dx * dx + dy * dy < gap2:
                                ok = False
                                break
                        if not ok:
                            break
            if ok:
                for b in range(a):
                    if math.isnan(out_x[b]):
                        continue
                    dx = out_x[b] - px
                    dy = out_y[b] - py
                    if dx * dx + dy * dy < gap2:
                        ok = False
                        break
            if ok:
                out_x[a] = px
                out_y[a] = py
                placed += 1
                break
        if math.isnan(out_x[a]):
            blocked[g] = True
    return placed


@njit(cache=True, nogil=True)
def on_connector(ids, conn_e, entry_conn, lower, upper, z0, z1, axis, width, up, t_on, t_off, t, xy, z):
    """Where the people ``ids`` on stairs and escalators are, into ``xy`` (plan) and ``z`` (height):
    along the slope by the share of their travel time gone (those waiting for room to step off stand
    at the end), spread across the width so that a full stair does not draw them in one file. Read
    at every trajectory frame: one pass instead of a dozen array temporaries."""
    for k in range(len(ids)):
        i = ids[k]
        e = conn_e[i]
        c = entry_conn[e]
        frac = min(max((t - t_on[i]) / max(t_off[i] - t_on[i], 1e-9), 0.0), 1.0)
        if not up[e]:
            frac = 1.0 - frac  # 0 at the lower end, 1 at the upper one
        side = ((i * 0.618034) % 1.0 - 0.5) * 0.8 * width[c]
        xy[k, 0] = lower[c, 0] + (upper[c, 0] - lower[c, 0]) * frac + (-axis[c, 1]) * side
        xy[k, 1] = lower[c, 1] + (upper[c, 1] - lower[c, 1]) * frac + axis[c, 0] * side
        z[k] = z0[c] + (z1[c] - z0[c]) * frac
