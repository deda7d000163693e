"""Numba kernels of the station crowd: pure functions over numpy arrays.

Everything per agent and per step lives here; the model only calls these functions on whole
arrays. Coordinates are metres in the city CRS, float64. Fields are north-up rasters (row 0 is
the northern edge) described by ``(x0, y0_top, inv_h)``; values are sampled bilinearly at cell
centres.

Contents
--------
* ``build_cells``: uniform-grid neighbour search. A counting sort puts the agents in cell order
  (``order``) and copies their positions into contiguous sorted buffers, so the neighbour loops
  stream through memory. Optionally periodic in x (for fundamental-diagram runs).
* ``cfsm_step``: the collision-free speed model of Tordeux, Chraibi & Seyfried (2016), the model
  family of JuPedSim's ``CollisionFreeSpeedModel``: the direction is the desired direction plus
  exponential repulsion from neighbours and walls; the speed is ``min(v0, max(0, s / T))`` with
  ``s`` the free spacing to the nearest agent ahead inside a corridor of one body width.
* ``sfm_step``: the social force model (Helbing & Molnár 1995; Helbing, Farkas & Vicsek 2000)
  with body compression and sliding friction, plus the anisotropy of Helbing & Johansson 2007.
* Both steps keep every agent at least ``r_hard`` away from walls (wall-distance field) and report
  which open gate zone an agent entered (``exit_gate``).
* ``density_grid``, ``route_costs``, ``place_agents``: density counts, exit choice, release.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Entry points release the GIL (nogil=True): the app runs a branch's futures in threads beside the
# window, which must get the interpreter between kernel calls (docs/command_room.md).

BIG = 1.0e30


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
def _bil3(F, g, r0, c0, wx, wy):
    return ((F[g, r0, c0] * (1.0 - wx) + F[g, r0, c0 + 1] * wx) * (1.0 - wy)
            + (F[g, r0 + 1, c0] * (1.0 - wx) + F[g, r0 + 1, c0 + 1] * wx) * wy)


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
def build_cells(x, y, n, xmin, ymin, inv_cs, ncx, ncy, cell_of, cursor, start, order, sx, sy):
    """Counting sort of agents ``0..n-1`` by cell.

    On return agents ``order[start[c]:start[c+1]]`` lie in cell ``c = cy * ncx + cx`` and
    ``sx[k], sy[k]`` are the positions of agent ``order[k]``. Points outside the grid are
    clamped to the border cells (they are still found, just less efficiently).
    """
    ncell = ncx * ncy
    for c in range(ncell + 1):
        start[c] = 0
    for i in range(n):
        c = _cell_index(x[i], y[i], xmin, ymin, inv_cs, ncx, ncy)
        cell_of[i] = c
        start[c + 1] += 1
    for c in range(ncell):
        start[c + 1] += start[c]
    for c in range(ncell):
        cursor[c] = start[c]
    for i in range(n):
        c = cell_of[i]
        k = cursor[c]
        cursor[c] = k + 1
        order[k] = i
        sx[k] = x[i]
        sy[k] = y[i]


@njit(parallel=True, cache=True, nogil=True)
def build_cells_parallel(x, y, n, xmin, ymin, inv_cs, ncx, ncy, cell_of, cursor, start, order, sx, sy):
    """``build_cells`` with the per-agent parts threaded; the same, stable order."""
    ncell = ncx * ncy
    for i in prange(n):
        cell_of[i] = _cell_index(x[i], y[i], xmin, ymin, inv_cs, ncx, ncy)
    for c in range(ncell + 1):
        start[c] = 0
    for i in range(n):
        start[cell_of[i] + 1] += 1
    for c in range(ncell):
        start[c + 1] += start[c]
        cursor[c] = start[c]
    for i in range(n):
        c = cell_of[i]
        order[cursor[c]] = i
        cursor[c] += 1
    for k in prange(n):
        sx[k] = x[order[k]]
        sy[k] = y[order[k]]


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


# -- collision-free speed model -----------------------------------------------------------------
@njit(fastmath=True, cache=True, nogil=True)
def _cfsm_step_one(k, ell, r_rep, periodic, x, y, vx, vy, v0, tgt, ids, step_no, noise, n,
              order, start, sx, sy, xmin, ymin, inv_cs, ncx, ncy, period_x,
              dir_x, dir_y, wall_d, wall_nx, wall_ny, zone, gate_open, fx0, fy0, inv_h,
              radius, time_gap, a_rep, d_rep, rep_cap, a_wall, d_wall, r_hard, dt, exit_gate,
              width, t_narrow, w_single, w_wide):
    rows, cols = wall_d.shape
    i = order[k]
    xi = sx[k]
    yi = sy[k]
    r0, c0, wx, wy = _bil_index(xi, yi, fx0, fy0, inv_h, rows, cols)
    g = tgt[i]
    ex = _bil3(dir_x, g, r0, c0, wx, wy)
    ey = _bil3(dir_y, g, r0, c0, wx, wy)
    e0x = ex
    e0y = ey
    rx = 0.0
    ry = 0.0
    # neighbour repulsion
    if r_rep > 0.0:
        ax, bx = _cell_range(xi - r_rep, xi + r_rep, xmin, inv_cs, ncx, periodic)
        ay, by = _cell_range(yi - r_rep, yi + r_rep, ymin, inv_cs, ncy, False)
        rr2 = r_rep * r_rep
        for cy in range(ay, by + 1):
            for cxr in range(ax, bx + 1):
                cx = cxr % ncx if periodic else cxr
                c = cy * ncx + cx
                for m in range(start[c], start[c + 1]):
                    if m == k:
                        continue
                    dx = xi - sx[m]
                    dy = yi - sy[m]
                    dx = _min_image(dx, periodic, period_x)
                    d2 = dx * dx + dy * dy
                    if d2 < rr2 and d2 > 1e-12:
                        d = math.sqrt(d2)
                        w = a_rep * math.exp((ell - d) / d_rep) / d
                        rx += w * dx
                        ry += w * dy
    # the summed neighbour push may turn an agent sideways but never backwards: it is capped
    # at rep_cap (< 1) times the unit desired direction
    rn = math.sqrt(rx * rx + ry * ry)
    if rn > rep_cap:
        rx *= rep_cap / rn
        ry *= rep_cap / rn
    ex = e0x + rx
    ey = e0y + ry
    # wall repulsion
    dw = _bil(wall_d, r0, c0, wx, wy)
    nwx = _bil(wall_nx, r0, c0, wx, wy)
    nwy = _bil(wall_ny, r0, c0, wx, wy)
    if dw < radius + d_wall:
        # walls: slide (drop the component into the wall) within d_wall of body contact,
        # and push out linearly when the body overlaps the wall
        dot = ex * nwx + ey * nwy
        if dot < 0.0:
            ex -= dot * nwx
            ey -= dot * nwy
        if dw < radius:
            w = a_wall * (radius - dw) / radius
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
    # width here or one body length ahead
    tg = time_gap
    if t_narrow < time_gap:
        w = _bil(width, r0, c0, wx, wy)
        ra, ca, wxa, wya = _bil_index(xi + ex * ell, yi + ey * ell, fx0, fy0, inv_h, rows, cols)
        wa = _bil(width, ra, ca, wxa, wya)
        if wa < w:
            w = wa
        if w < w_wide:
            f = (w - w_single) / (w_wide - w_single)
            if f < 0.0:
                f = 0.0
            tg = t_narrow + (time_gap - t_narrow) * f
    # spacing to the nearest agent ahead within a corridor of one body width
    vi = v0[i]
    look = ell + vi * tg + 1e-6
    smin = look
    xa = xi + ex * look
    ya = yi + ey * look
    ax, bx = _cell_range(min(xi, xa) - ell, max(xi, xa) + ell, xmin, inv_cs, ncx, periodic)
    ay, by = _cell_range(min(yi, ya) - ell, max(yi, ya) + ell, ymin, inv_cs, ncy, False)
    for cy in range(ay, by + 1):
        for cxr in range(ax, bx + 1):
            cx = cxr % ncx if periodic else cxr
            c = cy * ncx + cx
            for m in range(start[c], start[c + 1]):
                if m == k:
                    continue
                dx = sx[m] - xi
                dy = sy[m] - yi
                dx = _min_image(dx, periodic, period_x)
                proj = dx * ex + dy * ey
                if proj <= 0.0:
                    continue
                lat = dx * ey - dy * ex
                if lat < 0.0:
                    lat = -lat
                if lat >= ell:
                    continue
                d = math.sqrt(dx * dx + dy * dy)
                if d < smin:
                    smin = d
    speed = (smin - ell) / tg
    if speed < 0.0:
        speed = 0.0
    elif speed > vi:
        speed = vi
    nx = xi + speed * ex * dt
    ny = yi + speed * ey * dt
    nx, ny = _wall_constraint(xi, yi, nx, ny, wall_d, wall_nx, wall_ny, fx0, fy0, inv_h,
                              rows, cols, r_hard)
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
    exit_gate[i] = _zone_at(nx, ny, zone, gate_open, fx0, fy0, inv_h, rows, cols)

@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def cfsm_step(x, y, vx, vy, v0, tgt, ids, step_no, noise, n,
              order, start, sx, sy, xmin, ymin, inv_cs, ncx, ncy, period_x,
              dir_x, dir_y, wall_d, wall_nx, wall_ny, zone, gate_open, fx0, fy0, inv_h,
              radius, time_gap, a_rep, d_rep, rep_cap, a_wall, d_wall, r_hard, dt, exit_gate,
              width, t_narrow, w_single, w_wide):
    """One step of the collision-free speed model for agents ``0..n-1`` (cells already built).

    Updates ``x, y, vx, vy`` in place and writes ``exit_gate[i]`` (the open gate zone entered,
    else -1).
    """
    rows, cols = wall_d.shape
    ell = 2.0 * radius  # contact distance (equal radii)
    r_rep = ell + d_rep * math.log(max(a_rep, 1e-9) / 1e-4) if a_rep > 0 else 0.0
    periodic = period_x > 0.0
    for k in prange(n):
        _cfsm_step_one(k, ell, r_rep, periodic, x, y, vx, vy, v0, tgt, ids, step_no, noise, n, order, start, sx, sy, xmin, ymin, inv_cs, ncx, ncy, period_x, dir_x, dir_y, wall_d, wall_nx, wall_ny, zone, gate_open, fx0, fy0, inv_h, radius, time_gap, a_rep, d_rep, rep_cap, a_wall, d_wall, r_hard, dt, exit_gate,
              width, t_narrow, w_single, w_wide)


@njit(fastmath=True, cache=True, nogil=True)
def cfsm_step_serial(x, y, vx, vy, v0, tgt, ids, step_no, noise, n,
              order, start, sx, sy, xmin, ymin, inv_cs, ncx, ncy, period_x,
              dir_x, dir_y, wall_d, wall_nx, wall_ny, zone, gate_open, fx0, fy0, inv_h,
              radius, time_gap, a_rep, d_rep, rep_cap, a_wall, d_wall, r_hard, dt, exit_gate,
              width, t_narrow, w_single, w_wide):
    """Serial twin of ``cfsm_step`` (small crowds: no thread start-up)."""
    rows, cols = wall_d.shape
    ell = 2.0 * radius  # contact distance (equal radii)
    r_rep = ell + d_rep * math.log(max(a_rep, 1e-9) / 1e-4) if a_rep > 0 else 0.0
    periodic = period_x > 0.0
    for k in range(n):
        _cfsm_step_one(k, ell, r_rep, periodic, x, y, vx, vy, v0, tgt, ids, step_no, noise, n, order, start, sx, sy, xmin, ymin, inv_cs, ncx, ncy, period_x, dir_x, dir_y, wall_d, wall_nx, wall_ny, zone, gate_open, fx0, fy0, inv_h, radius, time_gap, a_rep, d_rep, rep_cap, a_wall, d_wall, r_hard, dt, exit_gate,
              width, t_narrow, w_single, w_wide)



@njit(inline="always", fastmath=True)
def _wall_constraint(xi, yi, nx, ny, wall_d, wall_nx, wall_ny, fx0, fy0, inv_h, rows, cols, r_hard):
    """Push a new position out of the wall band; if that fails keep the old one."""
    r0, c0, wx, wy = _bil_index(nx, ny, fx0, fy0, inv_h, rows, cols)
    dw = _bil(wall_d, r0, c0, wx, wy)
    if dw >= r_hard:
        return nx, ny
    for _ in range(3):
        gx = _bil(wall_nx, r0, c0, wx, wy)
        gy = _bil(wall_ny, r0, c0, wx, wy)
        nx += (r_hard - dw + 1e-4) * gx
        ny += (r_hard - dw + 1e-4) * gy
        r0, c0, wx, wy = _bil_index(nx, ny, fx0, fy0, inv_h, rows, cols)
        dw = _bil(wall_d, r0, c0, wx, wy)
        if dw >= r_hard:
            return nx, ny
    return xi, yi


@njit(inline="always")
def _zone_at(x, y, zone, gate_open, fx0, fy0, inv_h, rows, cols):
    c = int(math.floor((x - fx0) * inv_h))
    r = int(math.floor((fy0 - y) * inv_h))
    if r < 0 or r >= rows or c < 0 or c >= cols:
        return -1
    z = zone[r, c]
    if z >= 0 and gate_open[z]:
        return z
    return -1


# -- social force model -------------------------------------------------------------------------
@njit(fastmath=True, cache=True, nogil=True)
def _sfm_step_one(k, rij, cut, cut2, periodic, inv_m, x, y, vx, vy, v0, tgt, n,
             order, start, sx, sy, svx, svy, xmin, ymin, inv_cs, ncx, ncy, period_x,
             dir_x, dir_y, wall_d, wall_nx, wall_ny, zone, gate_open, fx0, fy0, inv_h,
             radius, tau, mass, a_soc, b_soc, k_body, kappa, lam, a_w, b_w, r_hard, dt, exit_gate):
    rows, cols = wall_d.shape
    i = order[k]
    xi = sx[k]
    yi = sy[k]
    vxi = svx[k]
    vyi = svy[k]
    r0, c0, wx, wy = _bil_index(xi, yi, fx0, fy0, inv_h, rows, cols)
    g = tgt[i]
    ex = _bil3(dir_x, g, r0, c0, wx, wy)
    ey = _bil3(dir_y, g, r0, c0, wx, wy)
    en = math.sqrt(ex * ex + ey * ey)
    if en > 1e-9:
        ex /= en
        ey /= en
    vi0 = v0[i]
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
    ax, bx = _cell_range(xi - cut, xi + cut, xmin, inv_cs, ncx, periodic)
    ay, by = _cell_range(yi - cut, yi + cut, ymin, inv_cs, ncy, False)
    for cy in range(ay, by + 1):
        for cxr in range(ax, bx + 1):
            cx = cxr % ncx if periodic else cxr
            c = cy * ncx + cx
            for m in range(start[c], start[c + 1]):
                if m == k:
                    continue
                dx = xi - sx[m]
                dy = yi - sy[m]
                dx = _min_image(dx, periodic, period_x)
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
    dw = _bil(wall_d, r0, c0, wx, wy)
    if dw < radius + 10.0 * b_w:
        nwx = _bil(wall_nx, r0, c0, wx, wy)
        nwy = _bil(wall_ny, r0, c0, wx, wy)
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
    nx, ny = _wall_constraint(xi, yi, nx, ny, wall_d, wall_nx, wall_ny, fx0, fy0, inv_h,
                              rows, cols, r_hard)
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
    exit_gate[i] = _zone_at(nx, ny, zone, gate_open, fx0, fy0, inv_h, rows, cols)

@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def sfm_step(x, y, vx, vy, v0, tgt, n,
             order, start, sx, sy, svx, svy, xmin, ymin, inv_cs, ncx, ncy, period_x,
             dir_x, dir_y, wall_d, wall_nx, wall_ny, zone, gate_open, fx0, fy0, inv_h,
             radius, tau, mass, a_soc, b_soc, k_body, kappa, lam, a_w, b_w, r_hard, dt, exit_gate):
    """One semi-implicit Euler step of the social force model (Helbing et al. 2000).

    ``svx, svy`` are the velocities in sorted order (filled by the caller from ``order``).
    """
    rows, cols = wall_d.shape
    rij = 2.0 * radius
    cut = rij + b_soc * math.log(max(a_soc, 1e-9) / 1e-2)
    cut2 = cut * cut
    periodic = period_x > 0.0
    inv_m = 1.0 / mass
    for k in prange(n):
        _sfm_step_one(k, rij, cut, cut2, periodic, inv_m, x, y, vx, vy, v0, tgt, n, order, start, sx, sy, svx, svy, xmin, ymin, inv_cs, ncx, ncy, period_x, dir_x, dir_y, wall_d, wall_nx, wall_ny, zone, gate_open, fx0, fy0, inv_h, radius, tau, mass, a_soc, b_soc, k_body, kappa, lam, a_w, b_w, r_hard, dt, exit_gate)


@njit(fastmath=True, cache=True, nogil=True)
def sfm_step_serial(x, y, vx, vy, v0, tgt, n,
             order, start, sx, sy, svx, svy, xmin, ymin, inv_cs, ncx, ncy, period_x,
             dir_x, dir_y, wall_d, wall_nx, wall_ny, zone, gate_open, fx0, fy0, inv_h,
             radius, tau, mass, a_soc, b_soc, k_body, kappa, lam, a_w, b_w, r_hard, dt, exit_gate):
    """Serial twin of ``sfm_step`` (small crowds: no thread start-up)."""
    rows, cols = wall_d.shape
    rij = 2.0 * radius
    cut = rij + b_soc * math.log(max(a_soc, 1e-9) / 1e-2)
    cut2 = cut * cut
    periodic = period_x > 0.0
    inv_m = 1.0 / mass
    for k in range(n):
        _sfm_step_one(k, rij, cut, cut2, periodic, inv_m, x, y, vx, vy, v0, tgt, n, order, start, sx, sy, svx, svy, xmin, ymin, inv_cs, ncx, ncy, period_x, dir_x, dir_y, wall_d, wall_nx, wall_ny, zone, gate_open, fx0, fy0, inv_h, radius, tau, mass, a_soc, b_soc, k_body, kappa, lam, a_w, b_w, r_hard, dt, exit_gate)



@njit(cache=True, nogil=True)
def gather_sorted(order, n, vx, vy, svx, svy):
    for k in range(n):
        i = order[k]
        svx[k] = vx[i]
        svy[k] = vy[i]


# -- density --------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def density_grid(x, y, n, gx0, gy0, rows, cols, counts, area, out):
    """Persons per m² on a 1 m grid: counts smoothed with a separable [1/4, 1/2, 1/4] tent
    (a ~2 x 2 m window) divided by the walkable area under the same tent (``area``, m²)."""
    for r in range(rows):
        for c in range(cols):
            counts[r, c] = 0.0
    for i in range(n):
        c = int(math.floor(x[i] - gx0))
        r = int(math.floor(gy0 - y[i]))
        if 0 <= r < rows and 0 <= c < cols:
            counts[r, c] += 1.0
    best = 0.0
    for r in range(rows):
        for c in range(cols):
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
                    s += wr * wc * counts[rr, cc]
            a = area[r, c]
            v = s / a if a > 0.25 else 0.0
            out[r, c] = v
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
def route_costs(x, y, v0, dest, idx, floor, fx0, fy0, inv_h, allowed, onward, queue_s,
                perceive_m, noise, tgt, hyst_s, force):
    """Exit choice for agents ``idx``: cost = geodesic distance / v0 + queue time (if the gate
    is within ``perceive_m``, or always when ``perceive_m`` < 0) + onward distance / v0 + noise.

    ``allowed[a, g]`` says which gates agent-row ``a`` may choose. The agent switches only when
    the best cost beats its current gate by more than ``hyst_s`` (or ``force``). Returns the new
    targets for ``idx``.
    """
    G, rows, cols = floor.shape
    out = np.empty(idx.shape[0], dtype=np.int32)
    for a in range(idx.shape[0]):
        i = idx[a]
        r0, c0, wx, wy = _bil_index(x[i], y[i], fx0, fy0, inv_h, rows, cols)
        best = BIG
        bestg = -1
        cur = BIG
        for g in range(G):
            if not allowed[a, g]:
                continue
            d = _bil3(floor, g, r0, c0, wx, wy)
            if d >= 1e6:
                continue
            cost = (d + onward[g, dest[i]]) / v0[i] + noise[i, g]
            if perceive_m[a] < 0.0 or d <= perceive_m[a]:
                cost += queue_s[g]
            if cost < best:
                best = cost
                bestg = g
            if g == tgt[i]:
                cur = cost
        out[a] = _keep_or_switch(tgt[i], bestg, best, cur, hyst_s, force)
    return out


@njit(cache=True, nogil=True)
def via_bank_costs(x, y, v0, dest, idx, floor, G, fx0, fy0, inv_h, bank_ok, bank_exit, allowed, onward,
                   queue_s, perceive_m, noise, tgt, hyst_s, force):
    """Choice of ticket gate bank for agents ``idx`` still in a paid area. Fields ``floor[:G]``
    lead to the exits, ``floor[G + b]`` through bank ``b``. The cost of bank ``b`` is the walk to
    it / v0 + its queue time (when perceived, as in ``route_costs``) + the best continuation:
    min over allowed exits of (``bank_exit[b, g]`` + onward distance) / v0 + that exit's queue
    + noise. Returns targets ``G + b`` (hysteresis as in ``route_costs``)."""
    T, rows, cols = floor.shape
    B = T - G
    out = np.empty(idx.shape[0], dtype=np.int32)
    for a in range(idx.shape[0]):
        i = idx[a]
        r0, c0, wx, wy = _bil_index(x[i], y[i], fx0, fy0, inv_h, rows, cols)
        best = BIG
        bestt = -1
        cur = BIG
        for b in range(B):
            if not bank_ok[b]:
                continue
            d = _bil3(floor, G + b, r0, c0, wx, wy)
            if d >= 1e6:
                continue
            after = BIG
            for g in range(G):
                if not allowed[a, g] or bank_exit[b, g] >= 1e6:
                    continue
                c = (bank_exit[b, g] + onward[g, dest[i]]) / v0[i] + noise[i, g]
                if perceive_m[a] < 0.0 or d + bank_exit[b, g] <= perceive_m[a]:
                    c += queue_s[g]
                if c < after:
                    after = c
            if after >= BIG:
                continue
            cost = d / v0[i] + after + noise[i, G + b]
            if perceive_m[a] < 0.0 or d <= perceive_m[a]:
                cost += queue_s[G + b]
            if cost < best:
                best = cost
                bestt = G + b
            if G + b == tgt[i]:
                cur = cost
        out[a] = _keep_or_switch(tgt[i], bestt, best, cur, hyst_s, force)
    return out


@njit(cache=True, nogil=True)
def gate_counts(x, y, n, floor, fx0, fy0, inv_h, radius_m):
    """Number of agents within ``radius_m`` (geodesic) of each gate."""
    G, rows, cols = floor.shape
    out = np.zeros(G, dtype=np.int64)
    for i in range(n):
        r0, c0, wx, wy = _bil_index(x[i], y[i], fx0, fy0, inv_h, rows, cols)
        for g in range(G):
            if _bil3(floor, g, r0, c0, wx, wy) <= radius_m:
                out[g] += 1
    return out


# -- release ------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def place_agents(cand_x, cand_y, x, y, n_old, order, start, xmin, ymin, inv_cs, ncx, ncy,
                 min_gap, out_x, out_y):
    """Pick for each due agent the first candidate point at least ``min_gap`` away from every
    agent present (``x[:n_old]``, found through the cell lists built from slightly older
    positions) and from those placed before it. Returns how many were placed (in order; the
    first that fails stops placement so release order is kept)."""
    m, K = cand_x.shape
    placed = 0
    gap2 = min_gap * min_gap
    reach = min_gap + 0.25
    for a in range(m):
        ok_any = False
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
                        c = cy * ncx + cx
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
                for b in range(placed):
                    dx = out_x[b] - px
                    dy = out_y[b] - py
                    if dx * dx + dy * dy < gap2:
                        ok = False
                        break
            if ok:
                out_x[placed] = px
                out_y[placed] = py
                placed += 1
                ok_any = True
                break
        if not ok_any:
            break
    return placed
