"""The KPI scan (Numba, one pass) against plain numpy over the engine's tables, mid-day and at the end,
and the tail-only weighted quantile against numpy's quantile of the repeated values."""
from __future__ import annotations

import numpy as np
import pytest

from agents.tourism import Interventions, kpis
from agents.tourism.layout import (
    CHECKED_IN, F_ARRIVE, F_CHECKIN_END, F_CHECKIN_START, F_OVERNIGHT, F_SEARCH_END, G_FLAGS, G_HOTEL,
    G_SIZE, LEFT, OUT_DONE, V_GROUP, V_OUTCOME,
)

from .conftest import city


def reference_kpis(w) -> dict[str, float]:
    """The person-weighted sums with numpy masks and gathers over the arrived groups and visits."""
    gi, gf = w.gi[kpis.arrived(w)], w.gf[kpis.arrived(w)]
    size = gi[:, G_SIZE].astype(float)
    n = int(w.ctr[kpis.C_NVISITS])
    waits, wsize, _ = kpis.entry_waits(w)
    searched = ((gi[:, G_FLAGS] & F_OVERNIGHT) != 0) & np.isfinite(gf[:, F_SEARCH_END])
    checked = np.isfinite(gf[:, F_CHECKIN_END])

    def mean(v, wt):
        return float((v * wt).sum() / wt.sum()) if wt.sum() > 0 else float("nan")

    return {
        "tourists_total": float(size.sum()),
        "visits_completed": float(w.gi[w.vi[:n][w.vi[:n, V_OUTCOME] == OUT_DONE, V_GROUP], G_SIZE].sum()),
        "mean_entry_wait_s": mean(waits, wsize),
        "p95_entry_wait_s": float(np.quantile(np.repeat(waits, wsize.astype(int)), 0.95, method="inverted_cdf"))
        if len(waits) else float("nan"),
        "mean_room_search_s": mean(gf[searched, F_SEARCH_END] - gf[searched, F_ARRIVE], size[searched]),
        "mean_checkin_s": mean(gf[checked, F_CHECKIN_END] - gf[checked, F_CHECKIN_START], size[checked]),
        "room_search_failed": float(size[searched & (gi[:, G_HOTEL] < 0)].sum()),
        "tourists_in_city": float(size.sum() - kpis.state_persons(w)[[CHECKED_IN, LEFT]].sum()),
    }


@pytest.mark.parametrize("iv", [Interventions(), Interventions(room_platform_share=0.6, online_checkin_share=0.5,
                                                                reservation_share=0.5)])
def test_kpi_scan_matches_numpy_through_a_day(iv):
    eng = city(interventions=iv)
    seen = set()
    for k, t in enumerate(np.linspace(7.5, 30, 10) * 3600.0):
        eng.advance(t)
        if k == 2:  # tourists handed over by another model: groups after the drawn ones, some not arrived yet
            assert eng.add_arrivals(np.array([0, 1]), np.array([40, 25])) > 0
        got, want = eng.kpis(), reference_kpis(eng.world)
        for name, ref in want.items():
            assert got[name] == pytest.approx(ref, rel=1e-12, nan_ok=True), (t, name)
        seen |= {n for n, v in got.items() if v > 0}
    assert len(eng.world.gi) > int(eng.world.ctr[kpis.C_N_DRAWN])
    # the day exercised every sum: waits, searches, check-ins, failures, tourists leaving
    assert {"mean_entry_wait_s", "p95_entry_wait_s", "mean_room_search_s", "mean_checkin_s",
            "visits_completed", "tourists_in_city"} <= seen


def test_weighted_quantile_sorts_only_the_tail_and_agrees_with_numpy():
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(1, 400))
        values = rng.integers(0, 30, n).astype(float)  # many ties
        weights = rng.integers(1, 9, n).astype(float)
        q = float(rng.choice([0.05, 0.5, 0.9, 0.95, 0.99, 1.0]))
        ref = np.quantile(np.repeat(values, weights.astype(int)), q, method="inverted_cdf")
        assert kpis.weighted_quantile(values, weights, q) == ref
    assert np.isnan(kpis.weighted_quantile(np.zeros(0), np.zeros(0), 0.95))
