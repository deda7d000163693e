"""Numba kernel of one time step of the local-inertial shallow-water scheme on a regular raster.

The scheme
----------
Bates, Horritt & Fewtrell (2010), "A simple inertial formulation of the shallow water equations
for efficient two-dimensional flood inundation modelling", J. Hydrol. 387, 33-45, drop the
convective acceleration from the momentum equation and solve, on each cell face, for the unit
discharge q (m²/s) with a semi-implicit Manning friction term (their eq. 11). de Almeida, Bates,
Freer & Souvignet (2012), "Improving the stability of a simple formulation of the shallow water
equations for 2-D flood modeling", Water Resour. Res. 48, W05528, add numerical diffusion by
weighting the face's old flow with its two neighbours in the same direction (their eq. 13)::

    q'   = θ q_f + (1 - θ)/2 (q_{f-1} + q_{f+1})
    q_f  ← (q' - g h_f Δt (η_r - η_l) / Δx) / (1 + g n² Δt |q_f| / h_f^{7/3})

with η = z + h the water surface, h_f = max(η_l, η_r) - max(z_l, z_r) the depth of water that can
flow across the face (Bates et al. 2010, eq. 13) and n Manning's coefficient (g·n² averaged over
the two cells). Continuity moves the face volumes: h ← h + Δt/Δx (q_w - q_e + q_n - q_s). The
time step obeys the Courant condition Δt = α Δx / √(g h_max) (Bates et al. 2010, eq. 14).

Stability in 2-D: a von Neumann analysis without friction gives, for the checkerboard mode,
8 α² ≤ 2 (1 + (2θ - 1)), i.e. α ≤ √(θ/2) (0.707 for θ = 1, 0.63 for θ = 0.8): the θ-weighting
that damps 1-D oscillations lowers the 2-D Courant limit. The solver enforces it.

Layout and precision
--------------------
* Rasters are north-up, row 0 the northern edge; ``h, z`` have shape (ny, nx); ``qx`` (ny, nx+1)
  holds the west-east faces (face j between columns j-1 and j, positive eastward), ``qy``
  (ny+1, nx) the north-south faces (face i between rows i-1 and i, positive southward).
* Depth ``h`` is float64; flows, bed, friction and the maxima are float32. Depth is the one
  quantity that accumulates tiny increments (a millimetre of rain on a metre of water every step):
  in float32 each such addition loses up to half a unit in the last place, always the same way
  over a uniform sheet of water, and the water balance would drift by 1e-3 of the rain. The flux
  arithmetic runs in float32, which vectorises twice as wide as float64.
* A face's flow depth and surface slope are formed from differences (z_r - z_l, h_r - h_l)
  before anything is added, so a lake at rest (h = level - z) has an exactly level surface even
  at large elevations.
* A blocked cell (a building) has its bed at ``WALL_Z``: the flow depth of each of its faces is
  then exactly zero, so it is a wall without a separate mask to read.
* ``par`` holds the step's scalars (float64, see ``P_*``).

Keeping depth non-negative, conservatively
------------------------------------------
After the face flows are computed, each cell's outgoing volume over the step is compared with
what it holds: where it is larger, all of the cell's outgoing faces are scaled by the same factor
s = KEEP · h Δx / (Δt Σ q_out) < 1. A face is scaled by its upstream cell's factor only, so the volume
leaving one cell is exactly the volume entering the other, and since inflows are never scaled
below what the formula gives, h ≥ 0 after the step.
The limited flows are the ones stored for the next step.

Threads and reproducibility
---------------------------
The threads take blocks of rows one after the other (``step``). Each value written depends only on the
previous state, never on which thread computed a neighbour, and every reduction is per row (into
an array that the caller sums serially), so results are bit-identical for any thread count.

Friction needs h_f^{1/3}; without Intel SVML Numba cannot vectorise ``cbrt``/``pow``, so the cube
root is a bit-level first guess refined by two Newton steps (relative error below 2e-6, far below
the uncertainty of n), which keeps the face loop vectorisable.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import get_thread_id, njit, prange, types
from numba.extending import intrinsic

import agents.thread_policy  # noqa: F401  (one OpenMP wait policy per process)

G = 9.81
WALL_Z = np.float32(1.0e30)  # bed level of a blocked cell (a wall)
# A limited cell may give away this fraction of its water, not all of it: the factor, computed in
# float32, and the flows round by ~1e-7, and a cell emptied "exactly" could end a hair below zero
# and be clamped, which would create water. Keeping a millionth of its depth leaves a margin of
# about ten roundings.
KEEP = 1.0 - 1.0e-6

# indices into the per-step scalar array ``par`` (float64)
(P_DT, P_DX, P_G, P_THETA, P_HMIN, P_RAIN, P_DRAIN, P_HSPEED, P_HARRIVE, P_TNEW) = range(10)
N_PAR = 10


@intrinsic
def _f32_bits(typingctx, x):
    if not (isinstance(x, types.Float) and x.bitwidth == 32):
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(x), codegen


@intrinsic
def _bits_f32(typingctx, i):
    if not (isinstance(i, types.Integer) and i.bitwidth == 32):
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(i), codegen


@intrinsic
def _take_ticket(typingctx, counter):
    """counter[0] += 1, atomically; returns the value before."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", ary.data, ir.Constant(ir.IntType(64), 1), "monotonic")

    return types.int64(counter), codegen


@njit(inline="always")
def cbrt32(x):
    """Cube root of a positive float32: Kahan's bit-level guess, then two Newton steps."""
    # unsigned: the bits of a positive float are, and Python's floor division of a signed integer
    # costs a sign correction in every vector lane (6 % of the whole step)
    i = np.uint32(_f32_bits(x))
    y = _bits_f32(np.int32(i // np.uint32(3) + np.uint32(709921077)))
    y = (y + y + x / (y * y)) * np.float32(1.0 / 3.0)
    y = (y + y + x / (y * y)) * np.float32(1.0 / 3.0)
    return y


@njit(inline="always")
def _flow_depth(hl, hr, zl, zr):
    """(h_f, η_r - η_l) of a face, from differences so that nothing cancels against the bed."""
    dz = np.float64(zr) - np.float64(zl)  # exact in float64
    deta = dz + (hr - hl)
    if deta <= 0.0:
        return hl - max(0.0, dz), deta
    return hr - max(0.0, -dz), deta


@njit(inline="always")
def _face_flow(hl, hr, zl, zr, qm, q0, qp, fl, fr, c):
    """New unit discharge across one interior face (positive from l to r).

    ``hl, hr`` float64 depths, ``zl, zr`` float32 beds, ``fl, fr`` g·n² of the two cells, ``qm,
    q0, qp`` the old flows of the previous, this and the next face in the same direction. ``c``
    holds the float32 constants (see ``_consts``)."""
    hf64, deta = _flow_depth(hl, hr, zl, zr)
    hf = np.float32(hf64)
    qa = c[0] * q0 + c[1] * (qm + qp)
    num = qa - c[2] * hf * np.float32(deta)
    den = np.float32(1.0) + c[3] * (fl + fr) * abs(q0) / (hf * hf * cbrt32(hf))
    q = num / den
    return q if hf > c[4] else np.float32(0.0)


@njit(inline="always")
def _edge_flow(h_b, h_in, z_b, z_in, q_in, sign, h_min):
    """Outflow across an open domain edge, as ``sign`` × magnitude (sign +1 for the east and south
    edges, -1 for the west and north ones): the velocity of the adjacent interior face carried
    across the edge (zero gradient), times the edge cell's depth; never inward. The flow then
    grows with the water at the edge, which keeps the edge from damming or draining itself."""
    if sign > 0:
        hf, _ = _flow_depth(h_in, h_b, z_in, z_b)
    else:
        hf, _ = _flow_depth(h_b, h_in, z_b, z_in)
    hf32 = np.float32(hf)
    u_out = np.float32(sign) * q_in / hf32 if hf32 > h_min else np.float32(0.0)
    q = max(u_out, np.float32(0.0)) * np.float32(h_b)
    return np.float32(sign) * q if np.float32(h_b) > h_min else np.float32(0.0)


@njit(inline="always")
def _consts(par):
    """float32 constants of the face update: θ, (1-θ)/2, g Δt/Δx, Δt/2 (for g·n² averaged), h_min."""
    return (np.float32(par[P_THETA]), np.float32(0.5 * (1.0 - par[P_THETA])),
            np.float32(par[P_G] * par[P_DT] / par[P_DX]), np.float32(0.5 * par[P_DT]), np.float32(par[P_HMIN]))


@njit(inline="always")
def _x_faces(i, h, z, gn2, gu, qx, open_edges, c, out, w, k):
    """New (unlimited) flows of the west-east faces of row i into ``out[w, k, :]``; friction g·n²
    ``gu`` everywhere if it is not negative, else from ``gn2``."""
    nx = h.shape[1]
    if gu >= 0.0:
        for j in range(1, nx):
            out[w, k, j] = _face_flow(h[i, j - 1], h[i, j], z[i, j - 1], z[i, j],
                                      qx[i, j - 1], qx[i, j], qx[i, j + 1], gu, gu, c)
    else:
        for j in range(1, nx):
            out[w, k, j] = _face_flow(h[i, j - 1], h[i, j], z[i, j - 1], z[i, j],
                                      qx[i, j - 1], qx[i, j], qx[i, j + 1], gn2[i, j - 1], gn2[i, j], c)
    out[w, k, 0] = np.float32(0.0)
    out[w, k, nx] = np.float32(0.0)
    if nx > 1:
        if open_edges[2]:
            out[w, k, 0] = _edge_flow(h[i, 0], h[i, 1], z[i, 0], z[i, 1], qx[i, 1], -1, c[4])
        if open_edges[3]:
            out[w, k, nx] = _edge_flow(h[i, nx - 1], h[i, nx - 2], z[i, nx - 1], z[i, nx - 2], qx[i, nx - 1], 1, c[4])


@njit(inline="always")
def _y_faces(f, h, z, gn2, gu, qy, open_edges, c, out, w, k):
    """New (unlimited) flows of the north-south faces of face row f (between rows f-1 and f)."""
    ny, nx = h.shape
    if 0 < f < ny:
        if gu >= 0.0:
            for j in range(nx):
                out[w, k, j] = _face_flow(h[f - 1, j], h[f, j], z[f - 1, j], z[f, j],
                                          qy[f - 1, j], qy[f, j], qy[f + 1, j], gu, gu, c)
        else:
            for j in range(nx):
                out[w, k, j] = _face_flow(h[f - 1, j], h[f, j], z[f - 1, j], z[f, j],
                                          qy[f - 1, j], qy[f, j], qy[f + 1, j], gn2[f - 1, j], gn2[f, j], c)
        return
    for j in range(nx):
        out[w, k, j] = np.float32(0.0)
    if ny > 1 and f == 0 and open_edges[0]:
        for j in range(nx):
            out[w, k, j] = _edge_flow(h[0, j], h[1, j], z[0, j], z[1, j], qy[1, j], -1, c[4])
    if ny > 1 and f == ny and open_edges[1]:
        for j in range(nx):
            out[w, k, j] = _edge_flow(h[ny - 1, j], h[ny - 2, j], z[ny - 1, j], z[ny - 2, j], qy[ny - 1, j], 1, c[4])


@njit(inline="always")
def _limit_row(i, h, fx, fy, dtdx, s, w, k):
    """s[w, k, 1 + j] = the factor scaling the outflows of cell (i, j); 1 outside the grid.
    ``fx[w, k]`` holds row i's west-east faces, ``fy[w, k]`` and ``fy[w, k + 1]`` its north and
    south faces."""
    ny, nx = h.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    s[w, k, 0] = one
    s[w, k, nx + 1] = one
    if i < 0 or i >= ny:
        for j in range(nx):
            s[w, k, j + 1] = one
        return
    keep = np.float32(KEEP)
    for j in range(nx):
        out = dtdx * (max(fx[w, k, j + 1], zero) - min(fx[w, k, j], zero)
                      + max(fy[w, k + 1, j], zero) - min(fy[w, k, j], zero))
        hc = np.float32(h[i, j]) * keep
        s[w, k, j + 1] = hc / out if out > hc else one


@njit(fastmath=True)
def _row_sum(a, w, n):
    s = 0.0
    for j in range(n):
        s += a[w, j]
    return s


@njit(fastmath=True)
def _row_max(a, i, n):
    m = a[i, 0]
    for j in range(1, n):
        m = max(m, a[i, j])
    return m


def scratch(ny: int, nx: int, block_rows: int, threads: int):
    """Per-thread scratch of ``step``: the block's raw flows, limiting factors and drained depths."""
    return (np.zeros((threads, block_rows + 2, nx + 1), np.float32),
            np.zeros((threads, block_rows + 3, nx), np.float32),
            np.ones((threads, block_rows + 2, nx + 2), np.float32),
            np.zeros((threads, nx)))


@njit(cache=True, parallel=True, error_model="numpy", boundscheck=False)
def step(h, z, gn2, qx, qy, rain_cell, par, open_edges, h_new, qx_new, qy_new, hmax, vmax, arrival,
         row_stats, fx, fy, s, take, block_rows):
    """One step of the scheme on the whole grid, in blocks of ``block_rows`` rows.

    Each block computes the raw flows of its rows' faces plus one row of halo on each side, the
    limiting factors of its rows and their two neighbours, then the limited flows, depths, maxima
    and arrival times of its rows; the raw flows never leave the thread's cache (``fx, fy, s,
    take``: per-thread scratch from ``scratch``). Everything is read from the old state (``h, qx,
    qy``) and written to the new (``h_new, qx_new, qy_new``), so the halos that two blocks both
    compute come out identical and no block reads what another writes. ``gn2`` is g·n² per cell,
    or (1, 1) for one value everywhere. ``row_stats[i]`` receives (drained depth Σ, edge outflow
    Σq, max depth, cells whose outflow was limited) of row i for the caller to sum serially.
    ``open_edges`` (uint8 × 4): whether the north, south, west and east edges let water out."""
    ny, nx = h.shape
    zero = np.float32(0.0)
    half = np.float32(0.5)
    c = _consts(par)
    dtdx = par[P_DT] / par[P_DX]
    rain = par[P_RAIN]
    drain = par[P_DRAIN]
    h_speed = np.float32(par[P_HSPEED])
    h_arrive = np.float32(par[P_HARRIVE])
    t_new = par[P_TNEW]
    # a 1 × 1 ``gn2`` is one friction for the whole grid: two fewer loads per face (4 % of the step)
    gu = np.float32(gn2[0, 0]) if gn2.shape[0] * gn2.shape[1] == 1 else np.float32(-1.0)
    n_blocks = (ny + block_rows - 1) // block_rows
    # The blocks are handed out one at a time (an atomic ticket) rather than split evenly up front:
    # when another process takes a core for a moment, the other thread goes on with the blocks
    # left, instead of waiting for its share (under a process using a third of a core, the step
    # went from 3.6 to 3.1 ms). Which thread computes a block never changes what it writes.
    tickets = np.zeros(1, np.int64)
    for _ in prange(fx.shape[0]):
        w = get_thread_id()
        b = _take_ticket(tickets)
        while b < n_blocks:
            r0 = b * block_rows
            r1 = min(ny, r0 + block_rows)
            # raw flows: west-east faces of rows r0-1 .. r1, north-south face rows r0-1 .. r1+1
            for i in range(max(r0 - 1, 0), min(r1 + 1, ny)):
                _x_faces(i, h, z, gn2, gu, qx, open_edges, c, fx, w, i - r0 + 1)
            for f in range(max(r0 - 1, 0), min(r1 + 2, ny + 1)):
                _y_faces(f, h, z, gn2, gu, qy, open_edges, c, fy, w, f - r0 + 1)
            for i in range(r0 - 1, r1 + 1):
                _limit_row(i, h, fx, fy, np.float32(dtdx), s, w, i - r0 + 1)
            for i in range(r0, r1):
                k = i - r0 + 1  # row i in fx and s; its north face in fy[k], south face in fy[k + 1]
                limited = 0
                crossed = 0
                for j in range(nx):
                    limited += s[w, k, j + 1] < np.float32(1.0)
                    qw = fx[w, k, j]
                    qe = fx[w, k, j + 1]
                    qn = fy[w, k, j]
                    qs = fy[w, k + 1, j]
                    fw = qw * (s[w, k, j] if qw > zero else s[w, k, j + 1])
                    fe = qe * (s[w, k, j + 1] if qe > zero else s[w, k, j + 2])
                    fn = qn * (s[w, k - 1, j + 1] if qn > zero else s[w, k, j + 1])
                    fs = qs * (s[w, k, j + 1] if qs > zero else s[w, k + 1, j + 1])
                    # each difference of two float32 is exact in float64: what leaves one cell enters the other
                    hn = max(h[i, j] + dtdx * ((np.float64(fw) - fe) + (np.float64(fn) - fs)), 0.0)
                    if rain_cell[i, j]:
                        hn += rain
                    tk = min(hn, drain)
                    hn -= tk
                    take[w, j] = tk
                    h_new[i, j] = hn
                    qx_new[i, j] = fw
                    qy_new[i, j] = fn
                    h32 = np.float32(hn)
                    hm = hmax[i, j]
                    hmax[i, j] = max(hm, h32)
                    crossed += (h32 > h_arrive) & (hm <= h_arrive)
                    u = fw + fe
                    v = fn + fs
                    spd = half * np.sqrt(u * u + v * v) / h32
                    vm = vmax[i, j]
                    vmax[i, j] = max(vm, spd) if h32 > h_speed else vm
                # A conditional store in the loop above would keep it from being vectorised (the arrival
                # time cost 10 % of the step); the cells that first pass the arrival depth are rare, and
                # are exactly those still without an arrival time.
                if crossed:
                    for j in range(nx):
                        if np.isnan(arrival[i, j]) and np.float32(h_new[i, j]) > h_arrive:
                            arrival[i, j] = t_new
                # the east face of the row, the south faces of the grid, and what left over the edges
                fe = fx[w, k, nx]
                fe = fe * (s[w, k, nx] if fe > zero else s[w, k, nx + 1])
                qx_new[i, nx] = fe
                out = np.float64(max(fe, zero)) - np.float64(min(qx_new[i, 0], zero))
                if i == 0:
                    for j in range(nx):
                        out -= min(qy_new[0, j], zero)
                if i == ny - 1:
                    for j in range(nx):
                        qs = fy[w, k + 1, j]
                        fs = qs * (s[w, k, j + 1] if qs > zero else s[w, k + 1, j + 1])
                        qy_new[ny, j] = fs
                        out += max(fs, zero)
                row_stats[i, 0] = _row_sum(take, w, nx)
                row_stats[i, 1] = out
                row_stats[i, 2] = _row_max(h_new, i, nx)
                row_stats[i, 3] = limited
            b = _take_ticket(tickets)
