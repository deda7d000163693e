"""A flood state saved at one cell size restored at another (agents/flood/regrid.py): the live twin at
full resolution, its forecast's members coarser. The water volume is kept, the accumulated totals
carry over, and the coarse member runs on with its water balance closed."""
from __future__ import annotations

import numpy as np
import pytest

from agents.flood import regrid
from agents.flood.model import FloodModel
from tests.agents.flood import towns
from tests.factories import state_context
from twin.core.city import City
from twin.core.errors import UserError
from twin.core.state_file import read_state, restore_state, state_bytes, write_state_bytes


def _state(h, qx=None, qy=None):
    ny, nx = h.shape
    return {"solver.h": h, "solver.max_depth": h.astype(np.float32), "solver.max_speed": np.zeros(h.shape, np.float32),
            "solver.arrival_time": np.where(h > 0.1, 5.0, np.nan),
            "solver.qx": np.zeros((ny, nx + 1), np.float32) if qx is None else qx,
            "solver.qy": np.zeros((ny + 1, nx), np.float32) if qy is None else qy}


def test_half_the_resolution_is_the_block_mean_and_keeps_the_flow_through_each_line():
    rng = np.random.default_rng(1)
    h = rng.random((4, 6))
    qx = rng.random((4, 7)).astype(np.float32)
    out = regrid.regrid(_state(h, qx=qx), 1.0, 2.0, np.zeros((2, 3), bool), 0.1)
    assert np.allclose(out["solver.h"], h.reshape(2, 2, 3, 2).mean(axis=(1, 3)))
    assert out["solver.qx"].shape == (2, 4) and out["solver.qy"].shape == (3, 3)
    # the discharge through the line x = 2 m over the first 2 m of y: the two fine faces' sum × 1 m
    assert out["solver.qx"][0, 1] * 2.0 == pytest.approx(qx[0, 2] + qx[1, 2], rel=1e-6)
    flooded = out["solver.max_depth"] > 0.1  # when it flooded: the earliest of its fine cells'
    assert flooded.any() and (out["solver.arrival_time"][flooded] == 5.0).all()
    assert np.isnan(out["solver.arrival_time"][~flooded]).all()


@pytest.mark.parametrize("src, dst", [(1.0, 1.5), (1.0, 3.0), (2.0, 1.0)])
def test_the_volume_is_kept_at_any_ratio_and_a_blocked_cell_passes_its_water_on(src, dst):
    rng = np.random.default_rng(2)
    h = rng.random((9, 12))
    ny, nx = int(np.ceil(9 * src / dst - 1e-9)), int(np.ceil(12 * src / dst - 1e-9))
    blocked = np.zeros((ny, nx), bool)
    blocked[1, 1] = blocked[ny - 1, 0] = True
    out = regrid.regrid(_state(h), src, dst, blocked, 0.1)
    assert out["solver.h"][blocked].sum() == 0.0
    assert out["solver.h"].sum() * dst ** 2 == pytest.approx(h.sum() * src ** 2, rel=1e-12)
    assert (out["solver.qx"][:, 1:][blocked] == 0).all() and (out["solver.qy"][1:, :][blocked] == 0).all()


def _valley_state(tmp_path, cell, **kw):
    city = City.load(towns.valley_town(tmp_path))
    base = FloodModel(city, cell_size_m=cell, **kw)
    base.advance_to(300)
    write_state_bytes(state_bytes(base, state_context(base)), tmp_path / "s.npz")
    return city, base, read_state(tmp_path / "s.npz")


@pytest.mark.parametrize("coarse", [5.0, 7.5])
def test_a_state_restored_at_a_coarser_cell_size_keeps_its_water_and_closes_its_balance(tmp_path, coarse):
    kw = dict(duration_s=600, seed=1, rain="uniform", rain_mm_per_h=80, rain_duration_s=600, drainage_mm_per_h=5,
              sync_interval_s=10)
    city, fine, saved = _valley_state(tmp_path, 2.5, **kw)
    member = FloodModel(city, cell_size_m=coarse, **kw)
    restore_state(member, saved)  # the file's checks (the saved grid's shapes), then the model's
    a, b = fine.solver.balance(), member.solver.balance()
    assert member.solver.h.shape == member.raster.grid.shape != fine.solver.h.shape
    assert b["stored_volume_m3"] == pytest.approx(a["stored_volume_m3"], rel=1e-12) and a["stored_volume_m3"] > 100
    for k in ("rain_volume_m3", "drained_volume_m3", "pumped_volume_m3", "outflow_volume_m3"):
        assert b[k] == a[k]  # the totals so far carry over
    assert b["volume_error_rel"] < 1e-12
    assert member.time_s == 300 and member.solver.h[member.raster.blocked].sum() == 0
    member.run_to_end()
    fine.run_to_end()
    k, kf = member.final_kpis(), fine.final_kpis()
    assert k["volume_error_rel"] < 1e-9 and k["pumped_volume_m3"] > a["pumped_volume_m3"]
    assert k["stored_volume_m3"] == pytest.approx(kf["stored_volume_m3"], rel=0.1)  # the same storm, coarser


def test_a_state_whose_grid_does_not_fit_its_cell_size_is_refused(tmp_path):
    kw = dict(duration_s=600, seed=1, rain="uniform", rain_mm_per_h=80, rain_duration_s=600)
    city, _, saved = _valley_state(tmp_path, 5.0, **kw)
    saved.meta["model"]["params"]["cell_size_m"] = 2.5  # says 2.5 m, holds a 5 m grid
    with pytest.raises(UserError, match=r"'solver\.\w+' has shape \(40, 6\d\), model flood needs shape"):
        restore_state(FloodModel(city, cell_size_m=10.0, **kw), saved)


def test_a_live_forecast_member_runs_coarser_than_the_twin(tmp_path):
    """``citytwin live --member-set cell_size_m=...``: a member restores the twin's state onto its own
    grid and forecasts from the same water (twin.live.forecast.member_task)."""
    from tests.conftest import DEMO_CITY
    from tests.factories import write_scenario
    from twin.live.forecast import member_task
    from twin.runs.runner import Run
    from twin.scenario.scenario import load_scenario

    sc = load_scenario(write_scenario(tmp_path, DEMO_CITY, '[parameters]\ncell_size_m = 20.0\nrain = "uniform"\n'
                                      "rain_mm_per_h = 60\nevacuate = false\n", model="flood", duration_s=600))
    twin = Run(sc, outputs=False)
    twin.advance(300)
    stored = twin.model.current_kpis()["stored_volume_m3"]
    out = member_task(sc.raw, str(sc.path), str(sc.city_path), twin.state_bytes(), "baseline", sc.seed,
                      {"cell_size_m": 40.0}, 1, 120.0, [], [], [])
    assert "error" not in out, out.get("error")
    rows = {(lead, name): v for lead, name, v in out["rows"]}
    assert rows[(0.0, "kpi.stored_volume_m3")] == pytest.approx(stored, rel=1e-12) and stored > 1000
    assert rows[(120.0, "kpi.stored_volume_m3")] > stored  # still raining
    assert rows[(120.0, "kpi.volume_error_rel")] < 1e-9
