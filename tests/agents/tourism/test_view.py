"""The view's array functions against plain references on small input."""
from __future__ import annotations

import numpy as np

from agents.tourism.view import count_grid, crowd_ranks, members, sunflower


def test_crowd_ranks_against_a_python_loop():
    rng = np.random.default_rng(4)
    n = 400
    crowd = rng.integers(0, 7, n)
    order = rng.choice([-np.inf, np.inf, 1.0, 2.0, 3.5], n) + np.where(rng.random(n) < 0.5, rng.random(n), 0.0)
    size = rng.integers(1, 6, n)
    ref = np.empty(n, np.int64)
    for c in range(7):
        idx = [i for i in range(n) if crowd[i] == c]
        ahead = 0
        for i in sorted(idx, key=lambda i: (order[i], i)):
            ref[i] = ahead
            ahead += size[i]
    assert np.array_equal(crowd_ranks(crowd, order, size), ref)
    assert len(crowd_ranks(crowd[:0], order[:0], size[:0])) == 0


def test_members():
    row, member = members(np.array([10, 11, 12]), np.array([2, 0, 3]))
    assert row.tolist() == [0, 0, 2, 2, 2] and member.tolist() == [0, 1, 0, 1, 2]


def test_sunflower_spreads_evenly():
    xy = sunflower(np.arange(1000), 0.5)
    assert np.allclose(xy[0], 0.0)
    r = np.hypot(*xy.T)
    assert np.allclose(r, 0.5 * np.sqrt(np.arange(1000)))
    # an even packing, no clumps: nearest neighbours lie about 1.7 scales apart
    d = np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1)) + np.eye(1000) * 1e9
    nearest = d.min(axis=1)[10:]
    assert 0.8 < nearest.min() and nearest.max() < 0.9


def test_count_grid_against_histogram2d():
    rng = np.random.default_rng(1)
    xy = rng.uniform([-20, -20], [120, 70], (500, 2))
    w = rng.integers(1, 4, 500).astype(float)
    x0, y0, cell, shape = 0.0, 50.0, 10.0, (5, 10)  # rows from y 50 down to 0, columns x 0..100
    got = count_grid(xy, w, x0, y0, cell, shape)
    h, _, _ = np.histogram2d(y0 - xy[:, 1], xy[:, 0] - x0, bins=shape, range=[[0, 50], [0, 100]], weights=w)
    assert np.allclose(got, h)
    assert got.sum() < w.sum()  # points outside are left out
