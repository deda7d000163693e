"""Filters over an ensemble (docs/assimilation.md): a particle filter step and a stochastic ensemble
Kalman filter update, in numpy, knowing nothing of any model.

An ensemble is a matrix with one row per member. What the members predict of the observations
(``predicted``, members × observations) is the model's business (``twin.live.observe``); here it is
numbers. Every observation has a standard deviation (its sensor's declared noise).

Three kinds of bad observation are survived:

- missing (NaN): skipped, as if it had not been sent;
- duplicated (the same sensor twice at one time): ``merge_duplicates`` keeps one, the mean;
- wildly wrong: the outlier test. An observation whose innovation (observed minus the ensemble mean) is more
  than ``outlier_k`` times ``sqrt(ensemble variance + noise variance)`` away is rejected and counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_OUTLIER_K = 5.0


# -- observations -----------------------------------------------------------------------------------
def merge_duplicates(ids, values) -> tuple[list, np.ndarray]:
    """One value per id (first-seen order): the mean of an id's finite values, NaN when it has none."""
    order: list = []
    sums: dict = {}
    for i, v in zip(ids, np.asarray(values, dtype=np.float64)):
        if i not in sums:
            order.append(i)
            sums[i] = [0.0, 0]
        if np.isfinite(v):
            sums[i][0] += v
            sums[i][1] += 1
    return order, np.array([sums[i][0] / sums[i][1] if sums[i][1] else np.nan for i in order], dtype=np.float64)


def outlier_screen(predicted: np.ndarray, observed: np.ndarray, sd: np.ndarray, k: float = DEFAULT_OUTLIER_K,
         weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(usable, rejected) masks over the observations: usable = finite, predicted by every member and
    within the outlier test; rejected = finite but outside it (or not predicted by every member)."""
    predicted = np.atleast_2d(np.asarray(predicted, dtype=np.float64))
    observed = np.asarray(observed, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    finite = np.isfinite(observed)
    ok_pred = np.isfinite(predicted).all(axis=0)
    w = _uniform(len(predicted)) if weights is None else np.asarray(weights, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mean = w @ np.where(np.isfinite(predicted), predicted, 0.0)
        var = w @ (np.where(np.isfinite(predicted), predicted, 0.0) - mean) ** 2
        spread = np.sqrt(var + sd ** 2)
        inside = np.abs(observed - mean) <= k * spread
    usable = finite & ok_pred & inside
    return usable, finite & ~usable


def _uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


# -- the particle filter ---------------------------------------------------------------------------------
def gaussian_log_likelihood(predicted: np.ndarray, observed: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """log p(observed | member) for each member, independent Gaussian errors of ``sd`` (NaN
    observations skipped). Constants common to all members are left out."""
    predicted = np.atleast_2d(np.asarray(predicted, dtype=np.float64))
    observed = np.asarray(observed, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    use = np.isfinite(observed)
    if not use.any():
        return np.zeros(len(predicted))
    z = (predicted[:, use] - observed[use]) / sd[use]
    return -0.5 * np.sum(z * z, axis=1) - np.sum(np.log(sd[use]))


def normalise_log_weights(logw: np.ndarray) -> np.ndarray:
    """Weights summing to 1 from log weights (shifted by the largest: no underflow). Members with
    -inf or NaN get 0; if every member does, the weights are uniform."""
    logw = np.asarray(logw, dtype=np.float64)
    ok = np.isfinite(logw)
    if not ok.any():
        return _uniform(len(logw))
    w = np.zeros(len(logw))
    w[ok] = np.exp(logw[ok] - logw[ok].max())
    return w / w.sum()


def effective_sample_size(w: np.ndarray) -> float:
    """1 / sum(w²): N for uniform weights, 1 when one member holds all the weight."""
    w = np.asarray(w, dtype=np.float64)
    return float(1.0 / np.sum(w * w))


def systematic_resample(w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of the parents of N children (sorted): one uniform draw, N evenly spaced pointers
    into the cumulative weights. Member i has floor(N w_i) or ceil(N w_i) children."""
    w = np.asarray(w, dtype=np.float64)
    n = len(w)
    positions = (rng.random() + np.arange(n)) / n
    cum = np.cumsum(w)
    cum[-1] = 1.0  # the last pointer never falls past the end through rounding
    return np.searchsorted(cum, positions, side="right").clip(0, n - 1)


@dataclass
class ParticleUpdate:
    weights: np.ndarray  # after the observations, before resampling (sum 1)
    ess: float  # effective sample size of those weights
    parents: np.ndarray  # each new member's parent (0..N-1); identity when not resampled
    resampled: bool
    used: np.ndarray  # mask over the observations
    rejected: np.ndarray  # mask over the observations: outliers
    tempering: float = 1.0  # the exponent the likelihood was raised to (1: as it is)


def tempering_exponent(logl: np.ndarray, prior_weights: np.ndarray, target_ess: float) -> float:
    """The largest exponent φ in (0, 1] whose tempered weights ``prior × likelihood^φ`` keep an
    effective sample size of at least ``target_ess`` (bisection; the ESS falls as φ grows). Tempering
    is the likelihood of observations whose error is 1/sqrt(φ) times the one assumed: what a model
    further from the truth than its sensors' noise needs, instead of one particle taking all."""
    logw0 = np.log(np.maximum(np.asarray(prior_weights, dtype=np.float64), 1e-300))

    def ess(phi: float) -> float:
        return effective_sample_size(normalise_log_weights(logw0 + phi * logl))

    if ess(1.0) >= target_ess - 1e-9:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ess(mid) >= target_ess else (lo, mid)
    return max(lo, 1e-12)


def particle_step(predicted: np.ndarray, observed: np.ndarray, sd: np.ndarray, rng: np.random.Generator,
                  prior_weights: np.ndarray | None = None, resample_below: float = 1.0,
                  outlier_k: float = DEFAULT_OUTLIER_K, temper_to: float = 0.0) -> ParticleUpdate:
    """One step of sequential importance resampling: weights × the likelihood of the observations that
    pass the outlier test; systematic resampling when the effective sample size falls below
    ``resample_below`` × N (1.0: at every step, the bootstrap filter). After resampling the weights
    are uniform again; the caller restores each child from its parent's state and reseeds it. With
    ``temper_to`` > 0 the likelihood is tempered (``tempering_exponent``) so that at least that share
    of N members stays effective."""
    predicted = np.atleast_2d(np.asarray(predicted, dtype=np.float64))
    n = len(predicted)
    w0 = _uniform(n) if prior_weights is None else np.asarray(prior_weights, dtype=np.float64)
    used, rejected = outlier_screen(predicted, observed, sd, outlier_k, w0)
    obs = np.where(used, observed, np.nan)
    logl = gaussian_log_likelihood(predicted, obs, sd)
    phi = tempering_exponent(logl, w0, temper_to * n) if temper_to > 0 and used.any() else 1.0
    w = normalise_log_weights(np.log(np.maximum(w0, 1e-300)) + phi * logl)
    ess = effective_sample_size(w)
    if used.any() and ess < resample_below * n + 1e-9:
        return ParticleUpdate(w, ess, systematic_resample(w, rng), True, used, rejected, phi)
    return ParticleUpdate(w, ess, np.arange(n), False, used, rejected, phi)


# -- the ensemble Kalman filter ----------------------------------------------------------------------------
def gaspari_cohn(r) -> np.ndarray:
    """The Gaspari-Cohn (1999) fifth-order taper at ``r`` = distance / half-width: 1 at 0, 0 from 2 on."""
    r = np.abs(np.asarray(r, dtype=np.float64))
    out = np.zeros_like(r)
    a = r <= 1.0
    b = (r > 1.0) & (r < 2.0)
    x = r[a]
    out[a] = -0.25 * x**5 + 0.5 * x**4 + 0.625 * x**3 - 5.0 / 3.0 * x**2 + 1.0
    x = r[b]
    out[b] = x**5 / 12.0 - 0.5 * x**4 + 0.625 * x**3 + 5.0 / 3.0 * x**2 - 5.0 * x + 4.0 - 2.0 / 3.0 / x
    return out


def localisation(obs_xy: np.ndarray, state_xy: np.ndarray, half_width_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaspari-Cohn tapers (observations × state elements, observations × observations) from the
    distances between gauges and state elements. A state element with a NaN position (a global
    parameter) is not tapered: every gauge may correct it."""
    obs_xy = np.atleast_2d(np.asarray(obs_xy, dtype=np.float64))
    state_xy = np.atleast_2d(np.asarray(state_xy, dtype=np.float64))
    d_xs = np.hypot(obs_xy[:, None, 0] - state_xy[None, :, 0], obs_xy[:, None, 1] - state_xy[None, :, 1])
    d_yy = np.hypot(obs_xy[:, None, 0] - obs_xy[None, :, 0], obs_xy[:, None, 1] - obs_xy[None, :, 1])
    rho_xs = np.where(np.isnan(d_xs), 1.0, gaspari_cohn(np.nan_to_num(d_xs) / half_width_m))
    return rho_xs, gaspari_cohn(d_yy / half_width_m)


@dataclass
class KalmanUpdate:
    members: np.ndarray  # the updated ensemble (members × state elements)
    used: np.ndarray  # mask over the observations
    rejected: np.ndarray  # mask over the observations: outliers


def enkf_update(members: np.ndarray, predicted: np.ndarray, observed: np.ndarray, sd: np.ndarray,
                rng: np.random.Generator, rho_xs: np.ndarray | None = None, rho_yy: np.ndarray | None = None,
                outlier_k: float = DEFAULT_OUTLIER_K) -> KalmanUpdate:
    """The stochastic ensemble Kalman filter (Burgers et al. 1998): each member is moved by the gain
    times its innovation against the observations perturbed with their noise.

    ``members``: N × n, the augmented state (model state elements and parameters side by side);
    ``predicted``: N × m, what each member predicts of the m observations. ``rho_xs`` (m × n) and
    ``rho_yy`` (m × m) taper the covariances (``localisation``): a gauge corrects only its
    surroundings. K = (P_xy ∘ rho_xs)ᵀ (P_yy ∘ rho_yy + R)⁻¹."""
    X = np.atleast_2d(np.asarray(members, dtype=np.float64))
    HX = np.atleast_2d(np.asarray(predicted, dtype=np.float64))
    observed = np.asarray(observed, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    n_members = len(X)
    used, rejected = outlier_screen(HX, observed, sd, outlier_k)
    if not used.any() or n_members < 2:
        return KalmanUpdate(X.copy(), used, rejected)
    y, s, H = observed[used], sd[used], HX[:, used]
    A = X - X.mean(axis=0)
    B = H - H.mean(axis=0)
    p_xy = B.T @ A / (n_members - 1)  # m × n
    p_yy = B.T @ B / (n_members - 1)  # m × m
    if rho_xs is not None:
        p_xy = p_xy * np.asarray(rho_xs, dtype=np.float64)[used]
    if rho_yy is not None:
        p_yy = p_yy * np.asarray(rho_yy, dtype=np.float64)[np.ix_(used, used)]
    perturbed = y + rng.standard_normal((n_members, len(y))) * s
    innovation = perturbed - H  # N × m
    gain_t = np.linalg.solve(p_yy + np.diag(s ** 2), p_xy)  # (K)ᵀ: m × n
    return KalmanUpdate(X + innovation @ gain_t, used, rejected)


def kalman_update(mean: np.ndarray, cov: np.ndarray, H: np.ndarray, observed: np.ndarray,
                  sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact Kalman filter update of a Gaussian prior by linear observations: the answer the
    ensemble filters approach on a linear-Gaussian model (tests and docs)."""
    H = np.atleast_2d(H)
    R = np.diag(np.asarray(sd, dtype=np.float64) ** 2)
    S = H @ cov @ H.T + R
    K = np.linalg.solve(S, H @ cov).T
    return mean + K @ (observed - H @ mean), (np.eye(len(mean)) - K @ H) @ cov


# -- keeping the ensemble's spread honest --------------------------------------------------------------------
def liu_west(theta: np.ndarray, weights: np.ndarray, h: float, rng: np.random.Generator,
             floor_sd: np.ndarray | float = 0.0) -> np.ndarray:
    """The kernel of Liu and West (2001) for a particle filter's static parameters after resampling:
    every member shrinks towards the weighted mean by a = sqrt(1 - h²) and is jittered by a Gaussian
    of h² times the weighted covariance. The mean and covariance of the ensemble are kept (in
    expectation), while no two members keep the same value, so the parameters do not collapse onto
    the few that resampling drew. ``floor_sd`` (per parameter): the jitter's least standard deviation,
    for an ensemble already collapsed onto one value (its covariance 0)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    n, p = theta.shape
    if p == 0 or h <= 0:
        return theta.copy()
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mean = w @ theta
    d = theta - mean
    cov = (d * w[:, None]).T @ d / max(1.0 - float(w @ w), 1e-12)  # unbiased for weights
    floor = np.broadcast_to(np.asarray(floor_sd, dtype=np.float64), (p,))
    cov = cov + np.diag(np.maximum(floor ** 2 - np.diag(cov), 0.0))
    a = np.sqrt(max(1.0 - h * h, 0.0))
    chol = np.linalg.cholesky(cov + np.eye(p) * 1e-15 * max(1.0, float(np.abs(cov).max())))
    return a * theta + (1.0 - a) * mean + h * rng.standard_normal((n, p)) @ chol.T


def inflate(members: np.ndarray, factor: float) -> np.ndarray:
    """Multiplicative inflation (Anderson and Anderson 1999): every member's departure from the
    ensemble mean × ``factor``. It stands for the model error and the sampling error of a small
    ensemble, which otherwise make an ensemble Kalman filter ever surer of itself."""
    X = np.atleast_2d(np.asarray(members, dtype=np.float64))
    m = X.mean(axis=0)
    return m + factor * (X - m)


def relax_to_prior_spread(prior: np.ndarray, posterior: np.ndarray, alpha: float) -> np.ndarray:
    """Relaxation to prior spread (Whitaker and Hamill 2012): the posterior's departures from its mean
    scaled, element by element, so that its spread is alpha × the prior's + (1 - alpha) × its own.
    alpha 0: the update as it is; 1: the prior's spread kept."""
    prior = np.atleast_2d(np.asarray(prior, dtype=np.float64))
    post = np.atleast_2d(np.asarray(posterior, dtype=np.float64))
    if len(post) < 2 or alpha <= 0:
        return post.copy()
    sd_b = prior.std(axis=0, ddof=1)
    sd_a = post.std(axis=0, ddof=1)
    scale = np.where(sd_a > 0, (alpha * sd_b + (1.0 - alpha) * sd_a) / np.where(sd_a > 0, sd_a, 1.0), 1.0)
    m = post.mean(axis=0)
    return m + (post - m) * scale


def keep_spread(members: np.ndarray, floor_sd: np.ndarray | float, rng: np.random.Generator) -> np.ndarray:
    """Each column's departures from its mean scaled so that its spread (standard deviation) is at least
    ``floor_sd``; a column whose members are all alike gets centred draws of that spread instead. An
    ensemble whose spread has collapsed has no covariance left for an update to act on: a bias the
    readings keep showing then moves it no more (and an adaptive error takes the bias for noise)."""
    X = np.atleast_2d(np.asarray(members, dtype=np.float64)).copy()
    n, p = X.shape
    if n < 2:
        return X
    floor = np.broadcast_to(np.asarray(floor_sd, dtype=np.float64), (p,))
    mean, sd = X.mean(axis=0), X.std(axis=0, ddof=1)
    for j in np.flatnonzero(sd < floor):
        d = X[:, j] - mean[j]
        if sd[j] <= 1e-9 * floor[j]:
            d = rng.standard_normal(n)
            d -= d.mean()
            sd_j = d.std(ddof=1)
        else:
            sd_j = sd[j]
        X[:, j] = mean[j] + d * (floor[j] / sd_j)
    return X


def unexplained_variance(predicted: np.ndarray, observed: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per observation: the squared innovation (observed minus the ensemble mean) less the ensemble's
    variance, the part of the misfit that neither the members' spread explains: in expectation the
    observation error's variance (Desroziers et al. 2005: E[d²] = H P Hᵀ + R). NaN where unobserved."""
    predicted = np.atleast_2d(np.asarray(predicted, dtype=np.float64))
    w = _uniform(len(predicted)) if weights is None else np.asarray(weights, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mean = w @ predicted
        var = w @ (predicted - mean) ** 2
        return (np.asarray(observed, dtype=np.float64) - mean) ** 2 - var


def variance_unexplained_by(predicted: np.ndarray, theta: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per observation: the weighted variance of the members' predictions about their weighted
    least-squares fit on the members' parameters ``theta`` (N × p; p = 0: about their mean), the part
    of the ensemble's spread the parameters do not explain: a stochastic model's own randomness at
    the sensor. A member with the truth's parameters still differs from the truth's reading by about
    twice this variance (the truth's draw and the member's). NaN where a member predicts none."""
    predicted = np.atleast_2d(np.asarray(predicted, dtype=np.float64))
    n = len(predicted)
    w = _uniform(n) if weights is None else np.asarray(weights, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64).reshape(n, -1)
    centred = theta - w @ theta
    scale = np.sqrt(w @ centred ** 2)
    X = np.column_stack([np.ones(n), centred[:, scale > 0] / scale[scale > 0]])
    sw = np.sqrt(w)[:, None]
    out = np.full(predicted.shape[1], np.nan)
    ok = np.isfinite(predicted).all(axis=0)
    if ok.any():
        beta = np.linalg.lstsq(X * sw, predicted[:, ok] * sw, rcond=None)[0]
        out[ok] = w @ (predicted[:, ok] - X @ beta) ** 2
    return out
