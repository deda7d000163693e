import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from twin.runs.stats import band, compare_table, paired_interval, t_interval


def test_t_interval_matches_scipy():
    x = np.array([3.1, 2.9, 3.4, 3.0, 2.7, 3.3])
    ci = t_interval(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert ci.n == 6 and math.isclose(ci.low, lo) and math.isclose(ci.high, hi)


def test_one_replication_gives_no_interval():
    ci = t_interval([4.2])
    assert ci.mean == 4.2 and ci.n == 1 and math.isnan(ci.low) and math.isnan(ci.high) and not ci.estimated


def test_zero_variance_collapses_honestly():
    ci = paired_interval([5.0, 6.0, 7.0], [4.0, 5.0, 6.0])
    assert ci.mean == 1.0 and ci.low == ci.high == 1.0 and ci.degenerate and ci.excludes_zero()
    same = paired_interval([1.0, 2.0], [1.0, 2.0])
    assert same.mean == 0 and same.degenerate and not same.excludes_zero()


def test_paired_interval_covers_the_true_difference_at_the_nominal_rate():
    """400 synthetic experiments with common noise: the 95% paired interval covers about 95%."""
    rng = np.random.default_rng(20240611)
    true_delta, n, reps, hits = -3.2, 8, 400, 0
    for _ in range(reps):
        shared = rng.normal(60.0, 10.0, n)  # the common random numbers: same draw in both variants
        base = shared + rng.normal(0, 1.0, n)
        variant = shared + true_delta + rng.normal(0, 1.0, n)
        ci = paired_interval(variant, base)
        hits += ci.low <= true_delta <= ci.high
    coverage = hits / reps
    assert 0.92 <= coverage <= 0.98, coverage


def test_pairing_is_much_tighter_than_independent_samples():
    rng = np.random.default_rng(1)
    shared = rng.normal(60, 10, 10)
    a, b = shared + rng.normal(0, 1, 10), shared + 2 + rng.normal(0, 1, 10)
    paired = paired_interval(b, a)
    unpaired = t_interval(b).high - t_interval(b).low
    assert paired.high - paired.low < unpaired / 4 and paired.excludes_zero()


def test_compare_table_columns_and_pairing():
    runs = pd.DataFrame({"variant": ["baseline"] * 3 + ["x"] * 3, "replication": [0, 1, 2] * 2,
                         "k": [10.0, 12.0, 14.0, 9.0, 11.5, 12.5]})
    t = compare_table(runs, ["k"], "baseline", {"k": "s"})
    assert list(t.columns) == ["variant", "kpi", "mean", "ci_low", "ci_high", "n", "delta_vs_baseline",
                               "delta_ci_low", "delta_ci_high", "unit"]
    x = t[t.variant == "x"].iloc[0]
    assert math.isclose(x["delta_vs_baseline"], np.mean([-1.0, -0.5, -1.5]))
    assert x["n"] == 3 and x["unit"] == "s"
    b = t[t.variant == "baseline"].iloc[0]
    assert b["delta_vs_baseline"] == 0 and b["delta_ci_low"] == 0


def test_band_carries_finished_runs_forward():
    a = pd.DataFrame({"time_s": [0, 5, 10], "v": [0.0, 1.0, 2.0]})
    b = pd.DataFrame({"time_s": [0, 5], "v": [0.0, 3.0]})  # finished early: stays at 3
    out = band([a, b], "v")
    assert list(out["time_s"]) == [0, 5, 10] and out["mean"].tolist() == [0.0, 2.0, 2.5] and (out["n"] == 2).all()
