"""Where the view draws each tourist: whole-array numpy, no loop per tourist.

A group that travels is on its route (``routes.Routes.locate``), its members a step apart. The
others stand in a crowd at a place: a queue around an attraction's entrance (the first in line
at the centre), the visitors inside around a point behind it, a front-desk crowd at a hotel.
Each crowd is a sunflower disc (Vogel 1979: the k-th point at radius c·√k and angle k × the
golden angle, an even packing of any number of points: each holds π c² of area, neighbours lie
about 1.7 c apart), filled in the order the people arrived, so a queue's disc grows with its
length and the first in line stays at the entrance.
"""
from __future__ import annotations

import numpy as np

GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))  # rad, ~137.5°
MEMBER_SCALE_M = 0.4  # members of a travelling group: ~0.7 m apart


def sunflower(k: np.ndarray, scale_m) -> np.ndarray:
    """Offsets (n, 2) of the k-th points of a sunflower disc of scale c = ``scale_m`` (radius c·√k)."""
    k = np.asarray(k, dtype=np.float64)
    r = scale_m * np.sqrt(k)
    a = k * GOLDEN_ANGLE
    return np.column_stack([r * np.cos(a), r * np.sin(a)])


def members(groups: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every member of ``groups``: (row in ``groups`` of each person, member number 0..size-1)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    row = np.repeat(np.arange(len(groups)), sizes)
    first = np.cumsum(sizes) - sizes
    return row, np.arange(len(row)) - first[row]


def crowd_ranks(crowd: np.ndarray, order: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Persons before each group in its crowd, the groups taken by ``order`` (ties: as given)."""
    n = len(crowd)
    if n == 0:
        return np.zeros(0, np.int64)
    o = np.lexsort((order, crowd))  # stable
    c, s = crowd[o], size[o]
    ahead = np.cumsum(s) - s  # persons before, counting every crowd
    start = np.r_[True, c[1:] != c[:-1]]
    out = np.empty(n, np.int64)
    out[o] = ahead - np.maximum.accumulate(np.where(start, ahead, 0))
    return out


def count_grid(xy: np.ndarray, weights, x0: float, y0: float, cell_m: float, shape: tuple[int, int]) -> np.ndarray:
    """Sum of ``weights`` per cell of a north-up grid (row 0 at ``y0``, the top); points outside are left out."""
    rows, cols = shape
    c = np.floor((xy[:, 0] - x0) / cell_m).astype(np.int64)
    r = np.floor((y0 - xy[:, 1]) / cell_m).astype(np.int64)
    ok = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
    w = np.broadcast_to(np.asarray(weights, dtype=np.float64), (len(xy),))[ok]
    return np.bincount(r[ok] * cols + c[ok], weights=w, minlength=rows * cols).reshape(rows, cols)
