"""A saved flood state put onto a grid of another cell size (docs/flood.md, "A state at another cell size").

Live forecasts and the assimilation's members run coarser than the twin they start from: the twin's
state at 2 m cells goes into members at 4 m. Both grids start at the DEM's top-left corner (their
last row and column may reach past it by less than a cell). The resampling is area-weighted and
conserves what the water balance counts:

- depth ``h``: the water volume of every source cell shared among the target cells it overlaps, in
  proportion to the overlap (a 2 × 2 block mean at half the resolution, any ratio otherwise); the
  water that lands on a target cell a building blocks goes to the nearest open cell. The stored
  volume is the source's to rounding, so the accumulated totals (rain, inflow, drained, pumped,
  outflow) carry over as they are and the balance still closes;
- unit discharges ``qx``, ``qy`` (m²/s through a face): a target face takes the mean over its length of
  the source's faces on its line (interpolated between the two nearest source face lines for a
  ratio that is not whole), so the flow through each line is the source's; zero next to a blocked
  target cell;
- ``max_depth`` and ``max_speed``: overlap-weighted means (the flooded area so far keeps its extent;
  the deepest point is smoothed as the coarse grid smooths it); ``arrival_time``: the earliest of the
  source cells whose centre the target cell holds, where the target's ``max_depth`` says it flooded.

Everything else in the state (per-feature maxima and times, the evacuees, the sinks' totals) does
not depend on the grid and stays as saved.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse

GRID_ARRAYS = ("solver.h", "solver.max_depth", "solver.max_speed", "solver.arrival_time")
FACE_ARRAYS = ("solver.qx", "solver.qy")


def saved_shapes(ny: int, nx: int) -> dict[str, tuple[int, int]]:
    """The grid arrays' shapes for a grid of ``ny`` × ``nx`` cells."""
    return {**{p: (ny, nx) for p in GRID_ARRAYS}, "solver.qx": (ny, nx + 1), "solver.qy": (ny + 1, nx)}


def overlaps(n_src: int, d_src: float, n_dst: int, d_dst: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D cells from a common origin: (source index, target index, overlap length) of every pair
    that overlaps. (Both grids cover the DEM, so every cell overlaps some of the other's; a part past
    the other's end is left out, and the shares are normalised over what overlaps.)"""
    lo = np.arange(n_src) * d_src
    hi = lo + d_src
    first = np.clip(np.floor(lo / d_dst + 1e-9).astype(np.int64), 0, n_dst - 1)
    last = np.clip(np.ceil(hi / d_dst - 1e-9).astype(np.int64) - 1, first, n_dst - 1)
    src, dst, length = [], [], []
    for k in range(int((last - first).max()) + 1):
        j = first + k
        w = np.minimum(hi, (j + 1) * d_dst) - np.maximum(lo, j * d_dst)
        keep = (j <= last) & (w > 0)
        src.append(np.flatnonzero(keep))
        dst.append(j[keep])
        length.append(w[keep])
    return np.concatenate(src), np.concatenate(dst), np.concatenate(length)


def share_matrix(n_src: int, d_src: float, n_dst: int, d_dst: float, per: str) -> sparse.csr_matrix:
    """(n_src × n_dst) overlap weights; ``per="source"``: each source cell's shares (rows sum to 1, what
    conserves a sum), ``per="target"``: each target cell's mean (columns sum to 1)."""
    s, t, w = overlaps(n_src, d_src, n_dst, d_dst)
    norm = np.bincount(s, w, n_src)[s] if per == "source" else np.bincount(t, w, n_dst)[t]
    return sparse.csr_matrix((w / norm, (s, t)), shape=(n_src, n_dst))


def face_matrix(n_src: int, d_src: float, n_dst: int, d_dst: float) -> sparse.csr_matrix:
    """((n_src + 1) × (n_dst + 1)): a target face line's value, interpolated linearly between the two
    source face lines around it (the same line when the ratio is whole)."""
    f = np.clip(np.arange(n_dst + 1) * d_dst / d_src, 0.0, float(n_src))
    j0 = np.minimum(np.floor(f + 1e-9).astype(np.int64), max(n_src - 1, 0))
    w = np.clip(f - j0, 0.0, 1.0)
    cols = np.arange(n_dst + 1)
    return sparse.csr_matrix((np.concatenate([1.0 - w, w]), (np.concatenate([j0, j0 + 1]), np.concatenate([cols, cols]))),
                             shape=(n_src + 1, n_dst + 1))


def _apply(a: np.ndarray, rows: sparse.csr_matrix, cols: sparse.csr_matrix) -> np.ndarray:
    """rowsᵀ · a · cols, in float64."""
    m = rows.T @ np.asarray(a, dtype=np.float64)
    return np.asarray((cols.T @ m.T).T)


def regrid(arrays: dict[str, np.ndarray], src_cell_m: float, dst_cell_m: float, blocked: np.ndarray,
           arrival_depth_m: float) -> dict[str, np.ndarray]:
    """The grid arrays of a flood state (``GRID_ARRAYS``, ``FACE_ARRAYS``; the others as given) at
    ``src_cell_m`` put onto the grid of ``dst_cell_m`` whose ``blocked`` cells are given."""
    ny_s, nx_s = arrays["solver.h"].shape
    ny_t, nx_t = blocked.shape
    a_s, a_t = src_cell_m ** 2, dst_cell_m ** 2
    out = dict(arrays)
    # depth: the volume, shared by overlap; what falls on a blocked cell goes to the nearest open one
    sy = share_matrix(ny_s, src_cell_m, ny_t, dst_cell_m, "source")
    sx = share_matrix(nx_s, src_cell_m, nx_t, dst_cell_m, "source")
    h = arrays["solver.h"]
    volume = _apply(h * a_s, sy, sx)
    if blocked.any() and not blocked.all():
        idx = ndimage.distance_transform_edt(blocked, return_distances=False, return_indices=True)
        moved = volume[blocked]
        volume[blocked] = 0.0
        np.add.at(volume, (idx[0][blocked], idx[1][blocked]), moved)
    out["solver.h"] = (volume / a_t).astype(h.dtype)
    # the maxima so far: overlap-weighted means
    my = share_matrix(ny_s, src_cell_m, ny_t, dst_cell_m, "target")
    mx = share_matrix(nx_s, src_cell_m, nx_t, dst_cell_m, "target")
    for path in ("solver.max_depth", "solver.max_speed"):
        v = np.maximum(_apply(arrays[path], my, mx), 0.0)
        v[blocked] = 0.0
        out[path] = v.astype(arrays[path].dtype)
    out["solver.max_depth"] = np.maximum(out["solver.max_depth"], out["solver.h"].astype(out["solver.max_depth"].dtype))
    # arrival: the earliest among the source cells whose centre lies in the target cell
    arrival = np.full((ny_t, nx_t), np.nan)
    r = np.minimum((np.arange(ny_s) + 0.5) * src_cell_m // dst_cell_m, ny_t - 1).astype(np.int64)
    c = np.minimum((np.arange(nx_s) + 0.5) * src_cell_m // dst_cell_m, nx_t - 1).astype(np.int64)
    src = np.asarray(arrays["solver.arrival_time"], dtype=np.float64)
    np.fmin.at(arrival, (r[:, None].repeat(nx_s, 1), c[None, :].repeat(ny_s, 0)), src)
    # (a refined grid: the source cell that holds the target's centre)
    rc = np.minimum(((np.arange(ny_t) + 0.5) * dst_cell_m // src_cell_m).astype(np.int64), ny_s - 1)
    cc = np.minimum(((np.arange(nx_t) + 0.5) * dst_cell_m // src_cell_m).astype(np.int64), nx_s - 1)
    arrival = np.fmin(arrival, src[np.ix_(rc, cc)])
    wet = out["solver.max_depth"] > np.float32(arrival_depth_m)
    out["solver.arrival_time"] = np.where(wet, arrival, np.nan).astype(arrays["solver.arrival_time"].dtype)
    # discharges per metre of face: the mean along the target face of the source's on its line
    fy, fx = face_matrix(ny_s, src_cell_m, ny_t, dst_cell_m), face_matrix(nx_s, src_cell_m, nx_t, dst_cell_m)
    qx = _apply(arrays["solver.qx"], my, fx)
    qy = _apply(arrays["solver.qy"], fy, mx)
    qx[:, :-1][blocked] = 0.0
    qx[:, 1:][blocked] = 0.0
    qy[:-1, :][blocked] = 0.0
    qy[1:, :][blocked] = 0.0
    out["solver.qx"] = qx.astype(arrays["solver.qx"].dtype)
    out["solver.qy"] = qy.astype(arrays["solver.qy"].dtype)
    return out
