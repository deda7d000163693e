"""Reference results for the entry queue of one attraction (used by the verification tests).

* ``erlang_c``, ``mmc_mean_wait``: M/M/c, the Erlang C formula (Erlang 1917; e.g. Gross & Harris,
  *Fundamentals of Queueing Theory*, 4th ed., eq. 2.28 / 2.31):
  ``C(c, a) = [a^c / c! · 1/(1-ρ)] / [Σ_{k<c} a^k/k! + a^c / c! · 1/(1-ρ)]``, ``a = λ/μ``,
  ``ρ = a/c``, and the mean wait in queue ``Wq = C(c, a) / (c μ - λ)``.
* ``mdc_mean_wait``: M/D/c, exact, by Crommelin's (1932) embedded chain: with deterministic service
  D and FIFO, every customer in service at time t has left by t + D and each busy server finishes
  exactly one customer in (t, t+D], so the number present obeys
  ``N(t+D) = max(N(t) - c, 0) + A``, A ~ Poisson(λD). Its stationary law is the time-stationary law
  of N; ``Lq = E[N] - λD`` and ``Wq = Lq / λ`` (Little). Solved numerically on a truncated chain.
* ``mdc_mean_wait_cosmetatos``: the Cosmetatos (1975) approximation
  ``Wq(M/D/c) ≈ ½ · [1 + (1-ρ)(c-1)(√(4+5c) - 2)/(16ρc)] · Wq(M/M/c)``, a cross-check.
"""
from __future__ import annotations

import math

import numpy as np


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with offered load a = λ/μ (< c)."""
    if not 0 <= a < c:
        raise ValueError(f"offered load a={a} must be in [0, c={c}) for a stable queue")
    term = 1.0  # a^k / k!, summed in a stable loop
    s = 0.0
    for k in range(c):
        s += term
        term *= a / (k + 1)
    top = term * c / (c - a)  # a^c / c! · 1/(1-ρ)
    return top / (s + top)


def mmc_mean_wait(lam: float, mean_service: float, c: int) -> float:
    """Mean wait in queue (s) of M/M/c with arrival rate lam (1/s) and mean service time (s)."""
    mu = 1.0 / mean_service
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mdc_mean_wait(lam: float, service: float, c: int, n_max: int | None = None) -> float:
    """Exact mean wait in queue (s) of M/D/c (Crommelin 1932) from the chain N' = max(N-c,0) + A."""
    m = lam * service  # mean arrivals per service time
    if not 0 <= m < c:
        raise ValueError(f"load λD={m} must be in [0, c={c}) for a stable queue")
    if n_max is None:  # the tail of N decays geometrically; this keeps it below ~1e-15
        n_max = int(c + 60 + 40 * m / (1.0 - m / c))
    k = np.arange(n_max + 1)
    log_pois = -m + k * math.log(m) - np.array([math.lgamma(i + 1) for i in k]) if m > 0 else None
    pois = np.exp(log_pois) if m > 0 else (k == 0).astype(float)
    P = np.zeros((n_max + 1, n_max + 1))
    for i in range(n_max + 1):
        base = max(i - c, 0)
        row = np.zeros(n_max + 1)
        row[base:] = pois[: n_max + 1 - base]
        row[-1] += 1.0 - row.sum()  # the truncated tail goes to the last state
        P[i] = row
    # stationary: pi (P - I) = 0, sum pi = 1
    A = P.T - np.eye(n_max + 1)
    A[-1, :] = 1.0
    b = np.zeros(n_max + 1)
    b[-1] = 1.0
    pi = np.linalg.solve(A, b)
    lq = float(pi @ k) - m
    return lq / lam


def mdc_mean_wait_cosmetatos(lam: float, service: float, c: int) -> float:
    """Cosmetatos (1975) approximation of the M/D/c mean wait in queue (s)."""
    rho = lam * service / c
    corr = 1.0 + (1.0 - rho) * (c - 1) * (math.sqrt(4.0 + 5.0 * c) - 2.0) / (16.0 * rho * c)
    return 0.5 * corr * mmc_mean_wait(lam, service, c)
