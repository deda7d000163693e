"""The filters of twin/live/filters.py on cases with known answers: a linear-Gaussian model, where the
Kalman filter's posterior is exact; weights and resampling that conserve what they must; bad
observations (missing, duplicated, wildly wrong) survived."""
from __future__ import annotations

import numpy as np
import pytest

from twin.live.filters import (effective_sample_size, enkf_update, gaspari_cohn, outlier_screen, kalman_update, localisation,
                               merge_duplicates, normalise_log_weights, particle_step, systematic_resample)

# a linear-Gaussian model: three state elements (two of them correlated), one parameter; two gauges
MEAN = np.array([1.0, 2.0, -1.0, 0.5])
COV = np.array([[1.0, 0.6, 0.0, 0.2],
                [0.6, 2.0, 0.3, 0.0],
                [0.0, 0.3, 0.5, 0.1],
                [0.2, 0.0, 0.1, 0.3]])
H = np.array([[1.0, 0.0, 0.0, 1.0],    # gauge 1 sees element 0 plus the parameter
              [0.0, 0.5, 0.5, 0.0]])   # gauge 2 sees the mean of elements 1 and 2
Y = np.array([2.5, 0.0])
SD = np.array([0.5, 0.3])


def test_the_enkf_with_a_large_ensemble_matches_the_kalman_filters_exact_posterior():
    rng = np.random.default_rng(1)
    X = rng.multivariate_normal(MEAN, COV, size=40_000)
    up = enkf_update(X, X @ H.T, Y, SD, np.random.default_rng(2))
    mean, cov = kalman_update(MEAN, COV, H, Y, SD)
    # sampling error of a 40,000-member ensemble: about 1 / sqrt(40,000) = 0.005 of a standard deviation
    assert np.abs(up.members.mean(axis=0) - mean).max() < 0.03
    assert np.allclose(np.var(up.members, axis=0, ddof=1), np.diag(cov), rtol=0.05)
    assert np.allclose(np.cov(up.members.T), cov, atol=0.03)
    assert up.used.all() and not up.rejected.any()
    assert np.var(up.members[:, 3]) < COV[3, 3]  # the parameter, seen only through gauge 1, is learnt too


def test_the_enkf_is_reproducible_for_a_seed():
    X = np.random.default_rng(1).multivariate_normal(MEAN, COV, size=50)
    a = enkf_update(X, X @ H.T, Y, SD, np.random.default_rng(7)).members
    b = enkf_update(X, X @ H.T, Y, SD, np.random.default_rng(7)).members
    assert np.array_equal(a, b)


def test_gaspari_cohn_is_one_at_zero_zero_from_twice_the_half_width_and_smooth():
    r = np.linspace(0, 2.5, 251)
    g = gaspari_cohn(r)
    assert g[0] == 1.0 and np.all(g[r >= 2.0] == 0.0)
    assert np.all(np.diff(g) <= 1e-12)  # decreasing
    assert abs(gaspari_cohn(1.0 - 1e-9) - gaspari_cohn(1.0 + 1e-9)) < 1e-6  # continuous at 1
    assert gaspari_cohn(1.0) == pytest.approx(5 / 24)


def test_localisation_keeps_a_gauge_from_correcting_what_lies_far_from_it():
    rng = np.random.default_rng(3)
    n = 200
    X = rng.normal(size=(n, 3)) + rng.normal(size=(n, 1))  # correlated everywhere: spurious reach
    HX = X[:, [0]]
    state_xy = np.array([[0.0, 0.0], [150.0, 0.0], [5000.0, 0.0]])
    rho_xs, rho_yy = localisation([[0.0, 0.0]], state_xy, half_width_m=200.0)
    up = enkf_update(X, HX, np.array([3.0]), np.array([0.5]), rng, rho_xs, rho_yy)
    assert np.array_equal(up.members[:, 2], X[:, 2])  # 5 km away: untouched
    moved = np.abs(up.members.mean(axis=0) - X.mean(axis=0))
    assert moved[0] > moved[1] > 0  # near the gauge: corrected, less so further out
    # a global parameter (no position) is corrected by every gauge
    rho_xs, _ = localisation([[0.0, 0.0]], np.array([[np.nan, np.nan]]), 200.0)
    assert rho_xs[0, 0] == 1.0


def test_the_enkf_skips_a_missing_observation_merges_a_duplicate_and_gates_a_wild_one():
    X = np.random.default_rng(1).multivariate_normal(MEAN, COV, size=500)
    HX = X @ H.T
    only_first = enkf_update(X, HX[:, :1], Y[:1], SD[:1], np.random.default_rng(5)).members
    missing = enkf_update(X, HX, np.array([Y[0], np.nan]), SD, np.random.default_rng(5))
    assert np.array_equal(missing.members, only_first)
    assert missing.used.tolist() == [True, False] and not missing.rejected.any()
    wild = enkf_update(X, HX, np.array([Y[0], 1e6]), SD, np.random.default_rng(5))
    assert np.array_equal(wild.members, only_first)  # the wild reading changed nothing...
    assert wild.rejected.tolist() == [False, True]  # ...and is counted
    allwild = enkf_update(X, HX, np.array([-1e6, 1e6]), SD, np.random.default_rng(5))
    assert np.array_equal(allwild.members, X) and allwild.rejected.all()
    ids, vals = merge_duplicates(["g1", "g2", "g1"], [2.0, np.nan, 4.0])
    assert ids == ["g1", "g2"] and vals[0] == 3.0 and np.isnan(vals[1])


def test_the_outlier_test_widens_with_the_ensemble_spread():
    pred = np.array([[0.0], [2.0]])  # mean 1, variance 1
    usable, rejected = outlier_screen(pred, np.array([5.0]), np.array([1.0]), k=3.0)  # 4 / sqrt(2) = 2.8 sigma
    assert usable.all() and not rejected.any()
    usable, rejected = outlier_screen(pred, np.array([6.0]), np.array([1.0]), k=3.0)  # 3.5 sigma
    assert rejected.all() and not usable.any()


def test_particle_weights_sum_to_one_and_survive_underflow():
    w = normalise_log_weights(np.array([-1e4, -1e4 - 1.0, -np.inf, np.nan]))
    assert w.sum() == pytest.approx(1.0) and w[2] == 0 and w[3] == 0
    assert w[0] / w[1] == pytest.approx(np.e)
    assert np.allclose(normalise_log_weights(np.full(4, -np.inf)), 0.25)
    assert effective_sample_size(np.full(10, 0.1)) == pytest.approx(10)
    assert effective_sample_size(np.eye(10)[3]) == pytest.approx(1)


def test_systematic_resampling_preserves_the_count_and_gives_each_its_share():
    rng = np.random.default_rng(4)
    for _ in range(50):
        n = int(rng.integers(2, 60))
        w = rng.dirichlet(np.full(n, 0.3))
        idx = systematic_resample(w, rng)
        assert len(idx) == n and np.all(np.diff(idx) >= 0)
        counts = np.bincount(idx, minlength=n)
        assert counts.sum() == n
        assert np.all(counts >= np.floor(n * w - 1e-9)) and np.all(counts <= np.ceil(n * w + 1e-9))


def test_a_particle_filter_on_a_linear_gaussian_scalar_converges_to_the_kalman_answer():
    rng = np.random.default_rng(8)
    x = rng.normal(0.0, 1.0, 100_000)  # prior N(0, 1); y = x + N(0, 0.5²) observed as 1
    up = particle_step(x[:, None], np.array([1.0]), np.array([0.5]), rng)
    mean, cov = kalman_update(np.zeros(1), np.eye(1), np.eye(1), np.array([1.0]), np.array([0.5]))
    assert mean[0] == pytest.approx(0.8) and cov[0, 0] == pytest.approx(0.2)
    assert up.weights.sum() == pytest.approx(1.0)
    assert float(up.weights @ x) == pytest.approx(mean[0], abs=0.01)  # importance weights
    children = x[up.parents]  # and the resampled particles
    assert up.resampled and len(children) == len(x)
    assert children.mean() == pytest.approx(mean[0], abs=0.01)
    assert children.var() == pytest.approx(cov[0, 0], rel=0.03)
    assert 0 < up.ess < len(x)


def test_the_particle_filter_skips_missing_and_gates_wild_observations():
    rng = np.random.default_rng(9)
    x = rng.normal(0.0, 1.0, (200, 2))
    up = particle_step(x, np.array([np.nan, 1e6]), np.array([0.5, 0.5]), rng)
    assert np.allclose(up.weights, 1 / 200) and not up.resampled  # nothing usable: nothing changes
    assert up.rejected.tolist() == [False, True] and not up.used.any()
    up = particle_step(x, np.array([0.5, 1e6]), np.array([0.5, 0.5]), rng, resample_below=0.0)
    ref = np.exp(-0.5 * ((x[:, 0] - 0.5) / 0.5) ** 2)
    assert np.allclose(up.weights, ref / ref.sum())  # only the first one counted
    assert not up.resampled and np.array_equal(up.parents, np.arange(200))


def test_the_liu_west_kernel_keeps_the_mean_and_spread_and_parts_identical_members():
    from twin.live.filters import liu_west

    rng = np.random.default_rng(5)
    theta = rng.normal([1.0, -2.0], [0.5, 0.1], (50_000, 2))
    moved = liu_west(theta, np.full(len(theta), 1 / len(theta)), 0.3, np.random.default_rng(6))
    assert np.allclose(moved.mean(axis=0), theta.mean(axis=0), atol=0.01)
    assert np.allclose(moved.std(axis=0), theta.std(axis=0), rtol=0.02)
    assert np.corrcoef(moved[:, 0], theta[:, 0])[0, 1] == pytest.approx(np.sqrt(1 - 0.3 ** 2), abs=0.01)
    # an ensemble collapsed onto one value is jittered by at least the floor: no two members alike
    same = liu_west(np.ones((8, 1)), np.full(8, 1 / 8), 0.3, np.random.default_rng(7), floor_sd=0.1)
    assert len(np.unique(same)) == 8 and 0.005 < same.std() < 0.1


def test_inflation_and_relaxation_to_prior_spread_restore_the_spread_they_promise():
    from twin.live.filters import inflate, relax_to_prior_spread

    rng = np.random.default_rng(8)
    prior = rng.normal(0.0, 2.0, (200, 3))
    assert np.allclose(inflate(prior, 1.5).std(axis=0), 1.5 * prior.std(axis=0))
    assert np.allclose(inflate(prior, 1.5).mean(axis=0), prior.mean(axis=0))
    post = 3.0 + 0.1 * (prior - prior.mean(axis=0))
    relaxed = relax_to_prior_spread(prior, post, 0.5)
    want = 0.5 * prior.std(axis=0, ddof=1) + 0.5 * post.std(axis=0, ddof=1)
    assert np.allclose(relaxed.std(axis=0, ddof=1), want) and np.allclose(relaxed.mean(axis=0), post.mean(axis=0))
    assert np.allclose(relax_to_prior_spread(prior, post, 0.0), post)


def test_the_spread_floor_keeps_a_collapsed_parameter_movable():
    from twin.live.filters import enkf_update, keep_spread, relax_to_prior_spread

    rng = np.random.default_rng(12)
    X = np.column_stack([np.full(10, 1.38) + rng.normal(0.0, 1e-5, 10), np.full(10, 2.0), rng.normal(5.0, 1.0, 10)])
    kept = keep_spread(X, [0.008, 0.008, 0.008], rng)
    assert np.allclose(kept.std(axis=0, ddof=1)[:2], 0.008) and np.allclose(kept.mean(axis=0), X.mean(axis=0))
    assert np.argsort(kept[:, 0]).tolist() == np.argsort(X[:, 0]).tolist()  # scaled, in the same order
    assert np.array_equal(kept[:, 2], X[:, 2])  # spread above the floor: untouched
    assert len(set(kept[:, 1].round(12))) == 10  # all alike: drawn apart

    # a parameter read by 13 counters, y = 100 θ + the model's own randomness (sd 10), the truth 1.3, its
    # members collapsed at 1.38: each update sees the same 6 % excess; with its spread gone it stays,
    # with the floor it comes down more than half the way in 30 updates
    def run(floor):
        theta = 1.38 + rng.normal(0.0, 1e-5, (10, 1))
        for _ in range(30):
            y = 130.0 + rng.normal(0.0, 10.0, 13)
            up = enkf_update(theta, 100.0 * theta + rng.normal(0.0, 10.0, (10, 13)), y, np.full(13, 20.0), rng)
            theta = relax_to_prior_spread(theta, up.members, 0.5)
            if floor:
                theta = keep_spread(theta, floor, rng)
        return float(theta.mean())

    assert run(0.0) == pytest.approx(1.38, abs=0.005)
    assert run(0.016) < 1.34


def test_a_member_predicts_the_mean_of_a_reading_never_below_zero():
    """A density counter (noise 0.2) reports max(0, value + noise): 0.08 on average of an empty
    platform. The filter predicts that mean (expected_reading), not the value itself; a sensor
    without noise reads the value."""
    from twin.core.sensors import Sensor
    from twin.live.observe import expected_reading, sensor_reading

    s = Sensor(id="PC", kind="people_counter", x=0.0, y=0.0, value="density", unit="persons/m2", layer="",
               feature="", noise_sd=0.2, interval_s=60.0, mode="level", radius_m=5.0, level=1, name="")
    rng = np.random.default_rng(21)
    values = np.array([0.0, 0.1, 0.4, 2.0])
    drawn = np.array([[sensor_reading(s, v, rng) for _ in range(40000)] for v in values]).mean(axis=1)
    predicted = expected_reading(s, values)
    assert np.allclose(predicted, drawn, atol=0.003)
    assert predicted[0] == pytest.approx(0.2 / np.sqrt(2 * np.pi)) and predicted[-1] == pytest.approx(2.0)
    exact = Sensor(**{**s.__dict__, "noise_sd": 0.0})
    assert np.array_equal(expected_reading(exact, values), values)
    assert expected_reading(s, np.array([-1.0]))[0] == -1.0  # a quantity that may be negative: not censored


def test_the_unexplained_variance_estimates_the_observation_error():
    from twin.live.filters import unexplained_variance

    rng = np.random.default_rng(9)
    n = 4000  # cases; in each the truth is drawn like one of 30 members (spread 1), read with an error of sd 2
    centre = rng.normal(0.0, 10.0, n)
    truth = centre + rng.normal(0.0, 1.0, n)
    members = centre[:, None] + rng.normal(0.0, 1.0, (n, 30))
    observed = truth + rng.normal(0.0, 2.0, n)
    u = [unexplained_variance(members[k][:, None], observed[k:k + 1])[0] for k in range(n)]
    assert np.mean(u) == pytest.approx(4.0, rel=0.1)  # E[d²] - spread² = R (the mean's own error is small)


def test_tempering_keeps_a_share_of_the_particles_effective_and_is_off_when_not_needed():
    from twin.live.filters import particle_step

    rng = np.random.default_rng(10)
    predicted = rng.normal(0.0, 1.0, (50, 4))  # 50 particles, 4 sharp readings far from most of them
    observed, sd = np.full(4, 1.5), np.full(4, 0.05)
    sharp = particle_step(predicted, observed, sd, np.random.default_rng(1), resample_below=0.0)
    tempered = particle_step(predicted, observed, sd, np.random.default_rng(1), resample_below=0.0, temper_to=0.3)
    assert sharp.tempering == 1.0 and sharp.ess < 2
    assert 0 < tempered.tempering < 0.1 and tempered.ess == pytest.approx(15, rel=1e-3)
    loose = particle_step(predicted, observed, np.full(4, 50.0), np.random.default_rng(1), resample_below=0.0,
                          temper_to=0.3)
    assert loose.tempering == 1.0 and loose.ess > 45  # readings that say little are taken as they are


def test_the_variance_the_parameters_do_not_explain_is_the_models_own_randomness():
    from twin.live.filters import variance_unexplained_by

    rng = np.random.default_rng(4)
    theta = rng.uniform(0.8, 1.6, (20_000, 1))  # members: a count of 100 × demand, plus the model's randomness
    own = rng.normal(0.0, 5.0, (20_000, 2)) * [1.0, 0.0]  # sensor 2: no randomness of its own
    predicted = 100.0 * theta + own
    v = variance_unexplained_by(predicted, theta)
    assert v[0] == pytest.approx(25.0, rel=0.03) and v[1] == pytest.approx(0.0, abs=1e-9)
    assert np.var(predicted[:, 0]) > 20 * v[0]  # the whole spread is mostly the demand's
    w = np.r_[np.full(10_000, 1.0), np.zeros(10_000)] / 10_000  # a weighted ensemble: only the first half counts
    predicted[10_000:, 0] += 1e3 * rng.normal(size=10_000)
    assert variance_unexplained_by(predicted, theta, w)[0] == pytest.approx(25.0, rel=0.05)
    # no parameters (or one value for all): the spread about the mean; a member predicting none: NaN
    assert variance_unexplained_by(predicted[:100], np.zeros((100, 0)))[1] == pytest.approx(np.var(predicted[:100, 1]))
    flat = variance_unexplained_by(np.c_[np.arange(4.0), [1.0, np.nan, 1.0, 1.0]], np.ones((4, 1)))
    assert flat[0] == pytest.approx(1.25) and np.isnan(flat[1])
