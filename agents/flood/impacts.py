"""From features to cells and back: which cells a building, a road or a point covers, and the
per-feature maximum or mean of a raster over them.

Cell lists are CSR pairs ``(indptr, cells)``: feature k owns ``cells[indptr[k]:indptr[k+1]]``,
flat indices ``row * nx + col`` into the grid, sorted and without repeats. The reductions are
Numba loops over those arrays, so a step's per-feature values cost one pass over the listed
cells.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from agents.flood.terrain import RasterGrid


def _csr(owner: np.ndarray, cells: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of (owner, cell) pairs, cells sorted and unique within each owner."""
    indptr = np.zeros(n + 1, np.int64)
    if cells.size == 0:
        return indptr, np.zeros(0, np.int64)
    span = np.int64(cells.max()) + 1
    owner, cells = np.divmod(np.unique(owner.astype(np.int64) * span + cells), span)
    np.add.at(indptr, owner + 1, 1)
    return np.cumsum(indptr), cells.astype(np.int64)


def building_cells(geoms, grid: RasterGrid, blocked: np.ndarray | None = None,
                   ring: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cells of each building footprint: those whose centre lies inside it, or, for a footprint
    too small to hold a cell centre, the cell of its representative point.

    With ``ring=True`` the cells returned are instead the open cells next to the footprint (its
    own cells dilated by one cell in the 8 directions, minus ``blocked``): when buildings are
    walls in the flood grid their own cells stay dry, and the water that reaches a building is
    the water on these cells."""
    from rasterio import features

    geoms = list(geoms)
    n = len(geoms)
    nx = grid.nx
    burned = np.zeros(grid.shape, np.int32)
    shapes = [(g, k + 1) for k, g in enumerate(geoms) if g is not None and not g.is_empty]
    if shapes:
        burned = features.rasterize(shapes, out_shape=grid.shape, transform=grid.transform(), fill=0,
                                    dtype="int32")
    flat = burned.ravel()
    cells = np.flatnonzero(flat)
    owner = flat[cells].astype(np.int64) - 1
    # overlapping footprints: rasterize keeps the last one; add each polygon's own cells when it lost
    # all of them, and the representative-point cell of footprints smaller than a cell
    have = np.zeros(n, bool)
    have[owner] = True
    extra_o, extra_c = [], []
    for k in np.flatnonzero(~have):
        g = geoms[k]
        if g is None or g.is_empty:
            continue
        p = g.representative_point()
        r, c = grid.index_of(p.x, p.y)
        if grid.inside(r, c):
            extra_o.append(k)
            extra_c.append(int(r) * nx + int(c))
    owner = np.concatenate([owner, np.asarray(extra_o, np.int64)])
    cells = np.concatenate([cells, np.asarray(extra_c, np.int64)])
    if ring:
        owner, cells = _dilate(owner, cells, grid.ny, grid.nx)
        if blocked is not None:
            keep = ~np.asarray(blocked, bool).ravel()[cells]
            owner, cells = owner[keep], cells[keep]
    return _csr(owner, cells, n)


def _dilate(owner, cells, ny, nx):
    r, c = np.divmod(cells, nx)
    out_o, out_c = [], []
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            rr, cc = r + dr, c + dc
            ok = (rr >= 0) & (rr < ny) & (cc >= 0) & (cc < nx)
            out_o.append(owner[ok])
            out_c.append(rr[ok] * nx + cc[ok])
    return np.concatenate(out_o), np.concatenate(out_c)


@njit(cache=True)
def _segment_cells(x0, y0, x1, y1, gx0, gy0, cell, ny, nx, out, n_out):
    """Append to ``out`` the cells the segment crosses, in order (Amanatides & Woo 1987 traversal)."""
    fx0 = (x0 - gx0) / cell
    fy0 = (gy0 - y0) / cell
    fx1 = (x1 - gx0) / cell
    fy1 = (gy0 - y1) / cell
    c = int(np.floor(fx0))
    r = int(np.floor(fy0))
    c_end = int(np.floor(fx1))
    r_end = int(np.floor(fy1))
    dx = fx1 - fx0
    dy = fy1 - fy0
    step_c = 1 if dx > 0 else -1
    step_r = 1 if dy > 0 else -1
    t_dc = abs(1.0 / dx) if dx != 0 else np.inf
    t_dr = abs(1.0 / dy) if dy != 0 else np.inf
    t_c = ((c + 1 - fx0) if dx > 0 else (fx0 - c)) * t_dc if dx != 0 else np.inf
    t_r = ((r + 1 - fy0) if dy > 0 else (fy0 - r)) * t_dr if dy != 0 else np.inf
    for _ in range(abs(c_end - c) + abs(r_end - r) + 1):
        if 0 <= r < ny and 0 <= c < nx and n_out < out.size:
            out[n_out] = r * nx + c
            n_out += 1
        if r == r_end and c == c_end:
            break
        if t_c < t_r:
            c += step_c
            t_c += t_dc
        else:
            r += step_r
            t_r += t_dr
    return n_out


def line_cells(geoms, grid: RasterGrid) -> tuple[np.ndarray, np.ndarray]:
    """Cells each line (LineString or MultiLineString) passes through, in CSR form."""
    import shapely

    geoms = list(geoms)
    owner_l, cells_l = [], []
    for k, g in enumerate(geoms):
        if g is None or g.is_empty:
            continue
        parts = list(g.geoms) if hasattr(g, "geoms") else [g]
        for part in parts:
            xy = shapely.get_coordinates(part)
            if len(xy) == 0:
                continue
            span = np.abs(np.diff(xy, axis=0)).sum() / grid.cell_m if len(xy) > 1 else 0.0
            out = np.empty(int(2 * span + 2 * len(xy) + 4), np.int64)
            n_out = 0
            if len(xy) == 1:
                xy = np.vstack([xy, xy])
            for (xa, ya), (xb, yb) in zip(xy[:-1], xy[1:]):
                n_out = _segment_cells(xa, ya, xb, yb, grid.x0, grid.y0, grid.cell_m, grid.ny, grid.nx, out, n_out)
            owner_l.append(np.full(n_out, k, np.int64))
            cells_l.append(out[:n_out])
    owner = np.concatenate(owner_l) if owner_l else np.zeros(0, np.int64)
    cells = np.concatenate(cells_l) if cells_l else np.zeros(0, np.int64)
    return _csr(owner, cells, len(geoms))


def point_cells(xs, ys, grid: RasterGrid) -> np.ndarray:
    """Flat cell index of each point, -1 for a point off the grid."""
    r, c = grid.index_of(xs, ys)
    return np.where(grid.inside(r, c), r * grid.nx + c, -1).astype(np.int64)


@njit(cache=True, parallel=True)
def segment_max(values, indptr, cells):
    """Per-feature maximum of ``values`` (flat) over its cells; NaN for a feature with none."""
    n = indptr.size - 1
    out = np.full(n, np.nan)
    for k in prange(n):
        a, b = indptr[k], indptr[k + 1]
        if b > a:
            m = values[cells[a]]
            for p in range(a + 1, b):
                v = values[cells[p]]
                if v > m:
                    m = v
            out[k] = m
    return out


@njit(cache=True, parallel=True)
def segment_mean(values, indptr, cells):
    """Per-feature mean of ``values`` (flat) over its cells (summed in order); NaN for none."""
    n = indptr.size - 1
    out = np.full(n, np.nan)
    for k in prange(n):
        a, b = indptr[k], indptr[k + 1]
        if b > a:
            s = 0.0
            for p in range(a, b):
                s += values[cells[p]]
            out[k] = s / (b - a)
    return out


@njit(cache=True, parallel=True)
def segment_min(values, indptr, cells):
    """Per-feature minimum (e.g. the earliest arrival time: NaN cells are skipped); NaN for none."""
    n = indptr.size - 1
    out = np.full(n, np.nan)
    for k in prange(n):
        m = np.inf
        for p in range(indptr[k], indptr[k + 1]):
            v = values[cells[p]]
            if v < m:
                m = v
        if m < np.inf:
            out[k] = m
    return out
