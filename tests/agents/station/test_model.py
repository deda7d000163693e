"""The station model end to end on a small hall built in code: (e) conservation, (f) nobody in an
obstacle or outside walkable, (h) determinism, KPIs, snapshot, rasters, interventions."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from agents.registry import get_model, model_names
from agents.station.model import BOARDED, EXITED, ONWARD, QUEUEING, WALKING, StationDispersalModel, los_letter
from twin.core.errors import UserError

from .conftest import make_city

FAST = dict(metro_headway_s=60.0, bus_headway_s=60.0)


def test_registry():
    assert "station_dispersal" in model_names()
    assert get_model("station_dispersal") is StationDispersalModel
    with pytest.raises(UserError, match="station_dispersal"):
        get_model("station_dispersl")


def test_every_param_documented():
    for p in StationDispersalModel.params:
        assert p.doc and p.unit
    names = {k.name for k in StationDispersalModel.kpis}
    for k in ("agents_total", "agents_exited", "clearance_time_s", "mean_egress_time_s", "p95_egress_time_s",
              "max_density_ppm2", "exited_by_gate", "los_seconds"):
        assert k in names


@pytest.mark.slow
def test_conservation_and_walls_every_step():
    city = make_city()
    m = StationDispersalModel(city, duration_s=600, seed=3, **FAST)
    free = m.station.free[0]
    walk = m.station.walkable[0]
    steps = 0
    while not m.finished and m.time_s < 600:
        m.advance_to(m.time_s + m.dt_s)  # one step at a time
        steps += 1
        c = m.counts()
        assert c["released"] == c["walking"] + c["queueing"] + c["onward"] + c["exited"] + c["boarded"]
        assert c["released"] + c["pending"] == m.N
        assert c["walking"] == m.crowd.n
        if steps % 20 == 0 and m.crowd.n:
            pts = shapely.points(m.crowd.x[: m.crowd.n], m.crowd.y[: m.crowd.n])
            assert shapely.covers(walk, pts).all(), "agent outside walkable"
            assert shapely.covers(free, pts).all(), "agent inside an obstacle"
    assert m.finished
    k = m.final_kpis()
    assert k["agents_total"] == k["agents_exited"] == k["agents_done"] == 300
    assert sum(k["exited_by_gate"].values()) == 300
    assert k["exited_by_gate"]["W1"] == 0  # closed
    assert 0 < k["mean_egress_time_s"] <= k["p95_egress_time_s"] <= k["clearance_time_s"]
    assert k["max_density_ppm2"] > 0
    # LOS is graded once per density interval while anyone walks in the station
    los_total = sum(k["los_seconds"].values())
    assert 0 < los_total <= k["station_clearance_time_s"] + m.p["density_interval_s"]
    ts = m.timeseries()
    assert list(ts.columns[:2]) == ["time_s", "agents_total"]


@pytest.mark.slow
def test_determinism_same_seed_same_kpis():
    city = make_city()
    runs = []
    for seed in (5, 5, 6):
        m = StationDispersalModel(city, duration_s=120, seed=seed, guidance_share=0.3, **FAST)
        m.advance_to(120)
        runs.append((m.final_kpis(), m.crowd.x[: m.crowd.n].copy()))
    assert runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][0] != runs[2][0]


def test_snapshot_and_rasters():
    m = StationDispersalModel(make_city(), duration_s=60, seed=1, **FAST)
    m.advance_to(40)
    s = m.snapshot()
    assert s.positions.dtype == np.float64 and s.positions.shape[1] == 2
    assert s.states.dtype == np.int8 and len(s.states) == len(s.positions)
    assert set(np.unique(s.states)) <= {WALKING, QUEUEING, ONWARD}
    c = m.counts()
    assert len(s.positions) == c["walking"] + c["queueing"] + c["onward"]
    d = s.fields["density"]
    assert d.cell_m == 1.0 and np.nanmax(d.values) > 0
    r = m.rasters()["max_density"]
    assert np.nanmax(r.values) == pytest.approx(m.max_density)


def test_los_letters():
    assert los_letter(0.2) == "A" and los_letter(0.35) == "B" and los_letter(0.5) == "C"
    assert los_letter(0.9) == "D" and los_letter(1.5) == "E" and los_letter(3.0) == "F"


@pytest.mark.slow
def test_open_gate_and_guidance_change_usage():
    city = make_city()
    base = StationDispersalModel(city, duration_s=200, seed=2, **FAST)
    base.run_to_end()
    opened = StationDispersalModel(city, duration_s=200, seed=2, open_gates=["W1"], closed_gates=["E1"], **FAST)
    opened.run_to_end()
    kb, ko = base.final_kpis(), opened.final_kpis()
    assert kb["exited_by_gate"]["W1"] == 0 and ko["exited_by_gate"]["W1"] > 0
    assert ko["exited_by_gate"]["E1"] == 0
    guided = StationDispersalModel(city, duration_s=200, seed=2, guidance_share=1.0, guidance_gates=["S1"], **FAST)
    guided.run_to_end()
    assert guided.final_kpis()["exited_by_gate"]["S1"] == 300


def test_stagger_and_extra_buses():
    city = make_city()
    a = StationDispersalModel(city, duration_s=30, seed=1, stagger_releases_s=100.0)
    assert a.release_t[a.src_ranges[1][0]] >= 120.0
    b = StationDispersalModel(city, duration_s=30, seed=1, extra_buses_per_hour=12.0)
    c = StationDispersalModel(city, duration_s=30, seed=1)
    bus = [i for i, q in enumerate(c.station.pois) if q.kind == "bus_stop"][0]
    assert b.onward.headway[bus] == pytest.approx(150.0) and c.onward.headway[bus] == pytest.approx(300.0)


@pytest.mark.slow
def test_onward_states_and_boarding():
    m = StationDispersalModel(make_city(), duration_s=400, seed=4, share_walk=0.0, share_metro=1.0, share_bus=0.0,
                              share_taxi=0.0, metro_headway_s=90.0, metro_capacity=50)
    seen = set()
    while not m.finished and m.time_s < 400:
        m.advance_to(m.time_s + 5)
        seen |= set(np.unique(m.state).tolist())
    assert {WALKING, ONWARD, QUEUEING, BOARDED} <= seen and EXITED not in seen
    assert m.onward.boarded_by_poi.sum() == m.counts()["boarded"]
    # batches never exceed the train capacity
    assert m.onward.boarded_by_poi[0] <= 50 * m.onward.departures[0]


@pytest.mark.slow
def test_social_force_runs():
    m = StationDispersalModel(make_city(), duration_s=20, seed=1, motion_model="social_force")
    assert m.dt_s == pytest.approx(0.01)
    m.advance_to(20)
    assert m.counts()["walking"] > 0
    pts = shapely.points(m.crowd.x[: m.crowd.n], m.crowd.y[: m.crowd.n])
    assert shapely.covers(m.station.free[0], pts).all()


def test_state_continues_at_another_time_step():
    """A state saved at one time step continued with another (an ensemble member at a coarser
    resolution) walks on at once: its clock is the new step's, not the saved step count."""
    city = make_city()
    m = StationDispersalModel(city, duration_s=600, seed=3, **FAST)
    m.advance_to(30.0)
    arrays, meta = m.get_state()
    coarse = StationDispersalModel(city, duration_s=600, seed=3, time_step_s=0.1, **FAST)
    assert coarse.dt_s != m.dt_s
    coarse.set_state(arrays, meta)
    assert coarse.steps == 300 and coarse.next_time_s == pytest.approx(30.1)
    x0 = coarse.crowd.x[:coarse.crowd.n].copy()
    assert len(x0)
    coarse.advance_to(31.0)
    assert coarse.steps == 310
    assert not np.array_equal(coarse.crowd.x[:len(x0)], x0)  # they walked


def test_models_of_one_process_share_their_floor_fields():
    """An ensemble's members hold the packed floor fields once (they are most of a model's memory);
    the ticket lanes each model fills are its own, and sharing changes no number."""
    city = make_city()
    a = StationDispersalModel(city, duration_s=30, seed=1, **FAST)
    b = StationDispersalModel(city, duration_s=30, seed=1, **FAST)
    assert a.floors.floor is b.floors.floor and a.floors.dir_xy is b.floors.dir_xy
    nav = a.floors.navs[0]  # the level's raster reads the packed fields, no second copy
    assert np.shares_memory(nav.floor, a.floors.floor) and np.shares_memory(nav.dir_x, a.floors.dir_xy)
    t = int(a.floors.lt_idx[a.floors.lt_start[0]])
    assert np.array_equal(nav.floor[0], a.floors.target_field(t))
    assert not np.shares_memory(a.floors.lane, b.floors.lane)
    assert np.array_equal(a.floors.lane, b.floors.lane)
    a.advance_to(30)
    b.advance_to(30)
    assert np.array_equal(a.crowd.x[: a.crowd.n], b.crowd.x[: b.crowd.n])
    assert a.final_kpis() == b.final_kpis()
