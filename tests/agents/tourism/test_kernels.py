"""Kernels and demand draws against plain-Python / numpy references on small input."""
from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
from numba import njit

from agents.tourism import kernels as K
from agents.tourism.demand import arrival_times, cumulative_rate, draw_plans, invert_cumulative
from agents.tourism.layout import (
    C_HEAP_N, DIST_DETERMINISTIC, DIST_EXPONENTIAL, DIST_LOGNORMAL, F_SHUTTLE, N_CTR, N_PAR, PAR_HEADWAY,
    PAR_T0,
)

M64 = (1 << 64) - 1


def splitmix64_ref(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


@njit
def _splitmix(x):
    return K.splitmix64(x)


@njit
def _uniforms(key, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = K.uniform(key, np.uint64(i))
    return out


@njit
def _draws(dist, mean, cv, key, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = K.draw(dist, mean, cv, key, i, 1, 0, 0)
    return out


def test_splitmix64_matches_reference():
    for x in (0, 1, 12345, 2**63 + 7, M64):
        assert int(_splitmix(np.uint64(x))) == splitmix64_ref(x)


def test_uniforms_in_open_unit_interval_and_uniform():
    u = _uniforms(np.uint64(42), 200_000)
    assert u.min() > 0.0 and u.max() < 1.0
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    chi2 = ((counts - 10_000) ** 2 / 10_000).sum()
    assert chi2 < 45  # 19 degrees of freedom: P(chi2 > 45) ~ 7e-4


def test_counters_are_distinct():
    seen = {int(K.counter(g, s, v, m, b)) for g in range(3) for s in range(4) for v in range(3) for m in range(3)
            for b in range(2)}
    assert len(seen) == 3 * 4 * 3 * 3 * 2


@pytest.mark.slow
@pytest.mark.parametrize("dist,cv", [(DIST_EXPONENTIAL, 1.0), (DIST_LOGNORMAL, 0.5), (DIST_LOGNORMAL, 1.5),
                                     (DIST_DETERMINISTIC, 0.0)])
def test_draw_mean_and_cv(dist, cv):
    x = _draws(dist, 40.0, cv, np.uint64(7), 400_000)
    assert x.mean() == pytest.approx(40.0, rel=0.01 if cv < 1.2 else 0.03)
    assert x.std() / x.mean() == pytest.approx(cv, abs=0.02 if cv < 1.2 else 0.15)
    if dist == DIST_LOGNORMAL:  # log of a lognormal is normal with σ² = ln(1 + cv²)
        assert np.log(x).std() == pytest.approx(math.sqrt(math.log1p(cv * cv)), rel=0.01)


def test_heap_pops_in_time_then_insertion_order_like_heapq():
    rng = np.random.default_rng(3)
    n = 500
    ht, hs, hid, ctr = np.zeros(n), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(N_CTR, np.int64)
    ref, seq, out, expect = [], 0, [], []
    for step in range(2000):
        if ctr[C_HEAP_N] < n and (rng.random() < 0.6 or ctr[C_HEAP_N] == 0):
            t = float(rng.integers(0, 50))  # many ties
            K.heap_push(ht, hs, hid, ctr, t, step)
            heapq.heappush(ref, (t, seq, step))
            seq += 1
        else:
            out.append(K.heap_pop(ht, hs, hid, ctr))
            t, _, ident = heapq.heappop(ref)
            expect.append((t, ident))
    assert [(float(t), int(i)) for t, i in out] == expect


def test_travel_time_takes_the_shuttle_only_when_faster_with_the_wait():
    walk = np.array([[0.0, 1000.0], [1000.0, 0.0]])
    bus = np.array([[np.inf, 300.0], [300.0, np.inf]])
    T = np.stack([walk, bus])
    par = np.zeros(N_PAR)
    par[PAR_T0] = 100.0
    par[PAR_HEADWAY] = 600.0
    # at t = 150 the next departure is at 700: 550 s wait + 300 s ride = 850 < 1000
    assert K.travel_time(T, par, F_SHUTTLE, 0, 1, 150.0) == (850.0, 1, 700.0)
    # at t = 701 the next is at 1300: 599 + 300 = 899 < 1000
    tt, mode, dep = K.travel_time(T, par, F_SHUTTLE, 0, 1, 701.0)
    assert (tt, mode, dep) == pytest.approx((899.0, 1, 1300.0))
    # with a 1200 s headway the wait makes walking faster; and non-users always walk
    par[PAR_HEADWAY] = 1200.0
    assert K.travel_time(T, par, F_SHUTTLE, 0, 1, 150.0) == (1000.0, 0, 150.0)
    assert K.travel_time(T, par, 0, 0, 1, 100.0) == (1000.0, 0, 100.0)


def test_inversion_of_piecewise_constant_rate():
    edges = np.array([0.0, 10.0, 20.0, 30.0])
    rates = np.array([1.0, 0.0, 3.0])
    lam = cumulative_rate(edges, rates)
    assert lam.tolist() == [0.0, 10.0, 10.0, 40.0]
    y = np.array([0.5, 10.0, 10.5, 40.0])
    # reference: scan the segments by hand
    assert invert_cumulative(edges, rates, lam, y).tolist() == pytest.approx([0.5, 10.0, 20.0 + 0.5 / 3, 30.0])


def test_deterministic_arrivals_follow_the_profile():
    edges = np.array([0.0, 3600.0, 7200.0, 10800.0])
    rates = np.array([100.0, 0.0, 400.0]) / 3600.0
    t = arrival_times(edges, rates, "deterministic", 0.0, 10800.0, np.random.default_rng(0))
    assert np.histogram(t, bins=edges)[0].tolist() == [100, 0, 400]
    assert np.diff(t[100:]).tolist() == pytest.approx([9.0] * 399)


def test_poisson_arrivals_counts_and_gaps():
    edges = np.array([0.0, 36_000.0, 72_000.0])
    rates = np.array([0.5, 2.0])
    t = arrival_times(edges, rates, "poisson", 0.0, 72_000.0, np.random.default_rng(1))
    n1, n2 = np.histogram(t, bins=edges)[0]
    assert n1 == pytest.approx(18_000, abs=4 * math.sqrt(18_000))
    assert n2 == pytest.approx(72_000, abs=4 * math.sqrt(72_000))
    gaps = np.diff(t[t > 36_000.0])
    assert gaps.mean() == pytest.approx(0.5, rel=0.02) and gaps.std() == pytest.approx(0.5, rel=0.03)


def test_plans_follow_popularity_without_repeats():
    pop = np.array([4.0, 2.0, 1.0, 0.0, 1.0])
    plan = draw_plans(np.random.default_rng(2), 40_000, pop, 2)
    assert plan.shape == (40_000, 2)
    assert (plan[:, 0] != plan[:, 1]).all() and not (plan == 3).any()
    first = np.bincount(plan[:, 0], minlength=5) / 40_000
    assert first == pytest.approx(pop / pop.sum(), abs=0.01)
