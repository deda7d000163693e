"""The reference formulas against closed forms and published values."""
from __future__ import annotations

import math

import pytest

from agents.tourism.queueing_theory import erlang_c, mdc_mean_wait, mdc_mean_wait_cosmetatos, mmc_mean_wait


def test_mm1_is_rho_over_mu_minus_lambda():
    assert mmc_mean_wait(0.8, 1.0, 1) == pytest.approx(0.8 / (1.0 - 0.8), rel=1e-12)


def test_erlang_c_textbook_value():
    # Erlang C with c = 2, a = 1 (ρ = 0.5): a²/2 · 2 / (1 + 1 + a²/2 · 2) = 1/3
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3, rel=1e-12)
    # c = 10 agents, a = 8 erlangs: 0.409 (the classic call-centre example)
    assert erlang_c(10, 8.0) == pytest.approx(0.4092, abs=5e-4)


def test_md1_matches_pollaczek_khinchine():
    for rho in (0.3, 0.7, 0.9):
        assert mdc_mean_wait(rho, 1.0, 1) == pytest.approx(rho / (2 * (1 - rho)), rel=1e-9)


@pytest.mark.slow
def test_mdc_exact_close_to_cosmetatos_and_below_mmc():
    for c in (2, 3, 5, 10):
        lam = 0.8 * c / 60.0
        exact = mdc_mean_wait(lam, 60.0, c)
        assert exact == pytest.approx(mdc_mean_wait_cosmetatos(lam, 60.0, c), rel=0.02)
        assert 0.45 * mmc_mean_wait(lam, 60.0, c) < exact < 0.6 * mmc_mean_wait(lam, 60.0, c)


def test_unstable_load_is_refused():
    with pytest.raises(ValueError):
        erlang_c(2, 2.0)
    with pytest.raises(ValueError):
        mdc_mean_wait(1.0, 3.0, 2)
    assert math.isfinite(mdc_mean_wait(0.0 + 1e-9, 1.0, 1))
