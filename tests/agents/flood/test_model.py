"""The flood model on the platform: a DEM-only city, the water balance through the model, impacts,
evacuation (shelters, capacities, cut-off roads, walking in water), state round trips with people on
the move, and the demo city."""
from __future__ import annotations

import numpy as np
import pytest

from agents.flood.evacuation import SHELTERED, STRANDED, WALKING, speed_factor
from agents.flood.model import FloodModel
from tests.agents.flood import towns
from tests.conftest import DEMO_CITY
from twin.core.city import City
from tests.factories import state_context
from twin.core.state_file import read_state, restore_state, state_bytes, write_state_bytes

KEY_KPIS = ("buildings_flooded", "people_exposed", "evacuees", "evacuated", "stranded", "mean_evacuation_time_s")


def street_model(tmp_path, hollows, duration_s=400.0, name="street", shelters=(("SH1", 180.0, 100),),
                 population=(10,), branch=False, **params) -> FloodModel:
    """The street town with still water where ``hollows`` say, people setting off at once at 1.34 m/s."""
    path, depth = towns.street_town(tmp_path, hollows=hollows, population=population, shelters=shelters,
                                    branch=branch, name=name)
    d = towns.depth_raster(tmp_path / f"{name}_depth.tif", depth, towns.STREET_CELL, towns.STREET_H)
    args = dict(rain="none", warning_time_s=0.0, response_time_s=0.0, walk_speed_sd_mps=0.0, initial_depth=str(d),
                evacuate_upper_floors=True)
    args.update(params)
    return FloodModel(City.load(path), duration_s=duration_s, seed=1, **args)


AROUND_B1 = (10, 53, 40, 67, 0.2)  # 0.2 m of still water around building B1 (flooded: > 0.15 m), street dry
WET_STREET = (5, 46, 195, 54, 0.2)  # the whole street under 0.2 m (passable: < 0.3 m)
HOME_TO_SHELTER_M = 160.0  # B1's street node (x = 20 m) to SH1's (x = 180 m)


# -- a city with nothing but a DEM ----------------------------------------------------------------------
def test_a_city_with_only_a_dem_runs(tmp_path):
    city = City.load(towns.dem_only_town(tmp_path))
    m = FloodModel(city, duration_s=900, seed=1, storm_duration_min=15)
    m.run_to_end()
    k = m.final_kpis()
    assert k["rain_volume_m3"] > 0 and k["stored_volume_m3"] > 0
    assert k["volume_error_rel"] < 1e-6
    assert k["buildings_flooded"] == 0 and k["evacuees"] == 0 and k["roads_impassable_km"] == 0
    assert k["max_depth_m"] > 0.01  # water gathered at the bottom of the bowl
    depth = m.snapshot().fields["depth"].values
    assert np.nanargmax(depth) == np.ravel_multi_index((20, 20), depth.shape) or depth[19:21, 19:21].max() == np.nanmax(depth)
    assert set(m.rasters()) == {"max_depth", "max_velocity", "arrival_time"}
    assert set(m.tables()["impacts"]) == set()  # nothing to report on


# -- water balance through the model ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("boundary", ["closed", "open"])
def test_water_balance_through_the_model(tmp_path, boundary):
    city = City.load(towns.valley_town(tmp_path))
    inflow = tmp_path / "inflow.csv"
    inflow.write_text("time_s,q_m3s\n0,0\n200,0.6\n500,0.2\n700,0\n", encoding="utf-8")
    m = FloodModel(city, duration_s=900, seed=1, rain="uniform", rain_mm_per_h=60, rain_duration_s=600,
                   inflow_file=str(inflow), inflow_at=f"POINT ({towns.X0 + 20} {towns.Y0 + 65})",
                   drainage_mm_per_h=5, mobile_pumps_xy=[towns.X0 + 150, towns.Y0 + 57],
                   mobile_pump_capacity_m3s=[0.2], mobile_pump_start_s=[300], boundary=boundary, sync_interval_s=10)
    m.run_to_end()
    k = m.final_kpis()
    for term in ("rain_volume_m3", "inflow_volume_m3", "drained_volume_m3", "pumped_volume_m3"):
        assert k[term] > 0, term
    assert k["inflow_volume_m3"] == pytest.approx(0.5 * 200 * 0.6 + 0.5 * 300 * 0.8 + 0.5 * 200 * 0.2, rel=1e-12)
    assert (k["outflow_volume_m3"] > 0) == (boundary == "open")
    print(f"\n{boundary}: volume_error_rel {k['volume_error_rel']:.2e}")
    assert k["volume_error_rel"] < 1e-6
    # the same balance from the KPIs (the valley starts dry)
    net = (k["rain_volume_m3"] + k["inflow_volume_m3"] - k["drained_volume_m3"] - k["pumped_volume_m3"]
           - k["outflow_volume_m3"])
    assert k["stored_volume_m3"] == pytest.approx(net, rel=1e-6)
    ts = m.timeseries()
    assert (np.diff(ts["rain_volume_m3"]) >= 0).all() and ts["volume_error_rel"].max() < 1e-6


@pytest.mark.slow
def test_larger_drains_and_pumps_take_more_water(tmp_path):
    city = City.load(towns.valley_town(tmp_path))
    base = dict(rain="uniform", rain_mm_per_h=80, rain_duration_s=600)
    runs = {}
    for name, extra in (("base", {}), ("drains x4", {"drain_capacity_factor": 4.0}),
                        ("no pumps", {"use_pumps": False})):
        m = FloodModel(city, duration_s=900, seed=1, **base, **extra)
        m.run_to_end()
        runs[name] = m.final_kpis()
    assert runs["drains x4"]["drained_volume_m3"] > 1.5 * runs["base"]["drained_volume_m3"]
    assert runs["no pumps"]["pumped_volume_m3"] == 0 < runs["base"]["pumped_volume_m3"]
    assert runs["drains x4"]["stored_volume_m3"] < runs["base"]["stored_volume_m3"] < runs["no pumps"]["stored_volume_m3"]


# -- impacts ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_building_under_water_is_flooded_and_counted(tmp_path):
    m = street_model(tmp_path, [AROUND_B1], duration_s=60, population=(10, 7), evacuate=False)
    m.run_to_end()
    k = m.final_kpis()
    assert k["buildings_flooded"] == 1 and k["people_exposed"] == 10  # B1 (population 10); B2 stays dry
    frame = m.snapshot().features["buildings"]
    assert list(frame.ids) == ["B1", "B2"]
    assert list(frame.values["flooded"]) == [1, 0]
    assert frame.values["max_depth"][0] == pytest.approx(0.2, abs=1e-6) and frame.values["max_depth"][1] == 0
    rows = m.tables()["impacts"]["buildings"]
    b1 = rows[rows["id"] == "B1"].iloc[0]
    assert b1["flooded"] and b1["flooded_at_s"] == 10.0 and b1["people"] == 10  # seen at the first update
    assert "B2" not in set(rows["id"])  # dry buildings are not listed


def test_people_are_estimated_from_floor_area_and_use():
    import geopandas as gpd
    from shapely.geometry import box

    from agents.flood.exposure import FLOOR_M2_PER_PERSON, people_per_building

    b = gpd.GeoDataFrame({"use": ["residential", "office", "station", "residential"], "height_m": [9.0, 30.0, 20.0, 6.0],
                          "levels": [np.nan, 10, 3, 2], "population": [np.nan, np.nan, np.nan, 4]},
                         geometry=[box(0, 0, 20, 10)] * 4)
    people = people_per_building(b)
    assert people[0] == round(200 * 3 / FLOOR_M2_PER_PERSON["residential"])  # 3 levels from 9 m
    assert people[1] == round(200 * 10 / FLOOR_M2_PER_PERSON["office"])
    assert people[2] == 0  # stations: the station model's people
    assert people[3] == 4  # the population column wins


@pytest.mark.slow
def test_roads_deeper_than_the_threshold_are_impassable(tmp_path):
    deep = (95, 40, 105, 60, 0.4)  # 0.4 m across the street at x = 100 m
    m = street_model(tmp_path, [deep], duration_s=30, evacuate=False)
    m.run_to_end()
    frame = m.snapshot().features["roads"]
    state = dict(zip(frame.ids, frame.values["state"]))
    assert state["S08"] == 1 and state["S09"] == 1  # the two segments meeting at x = 100 m
    assert sum(state.values()) == 2
    assert m.final_kpis()["roads_impassable_km"] == pytest.approx(0.02)


# -- evacuation ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_residents_walk_to_the_shelter(tmp_path):
    m = street_model(tmp_path, [AROUND_B1])
    m.run_to_end()
    k = m.final_kpis()
    assert k["evacuees"] == k["evacuated"] == 10 and k["stranded"] == 0
    assert k["evacuation_completion"] == 1.0
    assert k["shelter_occupancy"] == {"SH1": 10}
    # they set off at the first update (10 s) and walk 160 m at 1.34 m/s in the dry
    assert k["mean_evacuation_time_s"] == pytest.approx(HOME_TO_SHELTER_M / 1.34, rel=1e-9)
    snap = m.snapshot()
    assert (snap.states == SHELTERED).all()
    assert np.hypot(*(snap.positions - snap.positions.mean(axis=0)).T).max() < 5  # around the shelter


@pytest.mark.slow
def test_walking_speed_falls_with_depth(tmp_path):
    assert speed_factor(0.0) == 1.0 and speed_factor(0.35) == pytest.approx(0.583)
    assert speed_factor(0.6) == speed_factor(0.35)
    assert np.all(np.diff(speed_factor(np.linspace(0, 0.35, 20))) < 0)
    dry = street_model(tmp_path, [AROUND_B1], name="dry")
    wet = street_model(tmp_path, [AROUND_B1, WET_STREET], name="wet")
    dry.run_to_end()
    wet.run_to_end()
    t_dry, t_wet = dry.final_kpis()["mean_evacuation_time_s"], wet.final_kpis()["mean_evacuation_time_s"]
    assert wet.final_kpis()["evacuated"] == 10
    assert t_wet / t_dry == pytest.approx(1 / speed_factor(0.2), rel=1e-6)


@pytest.mark.slow
def test_shelter_capacities_are_respected(tmp_path):
    # SH2 is nearer (x = 100 m) with 3 places, SH1 has 4: 7 of the 10 find a place
    m = street_model(tmp_path, [AROUND_B1], shelters=(("SH1", 180.0, 4), ("SH2", 100.0, 3)))
    m.run_to_end()
    k = m.final_kpis()
    assert k["shelter_occupancy"] == {"SH1": 4, "SH2": 3}
    assert k["evacuated"] == 7 and k["stranded"] == 3
    e = m.evacuation
    assert (e.sh_taken <= e.sh_capacity).all() and (e.sh_arrived <= e.sh_capacity).all()


@pytest.mark.slow
def test_stranded_when_cut_off(tmp_path):
    closed = street_model(tmp_path, [AROUND_B1], name="closed", closed_roads=["S08"])  # x 90..100 m, police
    closed.run_to_end()
    deep = street_model(tmp_path, [AROUND_B1, (95, 40, 105, 60, 0.4)], name="deep")  # impassable water
    deep.run_to_end()
    for m in (closed, deep):
        k = m.final_kpis()
        assert k["evacuated"] == 0 and k["stranded"] == 10
        assert (m.snapshot().states == STRANDED).all()


def test_walkers_cut_off_on_the_way_turn_and_take_another_road(tmp_path):
    # the street is closed ahead of them at 30 s, while they walk: they go round by the north road
    m = street_model(tmp_path, [AROUND_B1], branch=True, closed_roads=["S10"], road_closure_s=30.0)
    m.advance_to(20)
    assert (m.evacuation.p_state == WALKING).all()
    m.run_to_end()
    k = m.final_kpis()
    assert k["evacuated"] == 10
    # 40 m to the branch at x = 60 m, 40 m north, 100 m east, 40 m south, 20 m to the shelter
    assert k["mean_evacuation_time_s"] == pytest.approx(240.0 / 1.34, rel=1e-9)


@pytest.mark.slow
def test_flooded_roads_are_found_on_the_way_unless_the_police_closed_them(tmp_path):
    deep = (125, 40, 135, 60, 0.4)  # across the street at x = 130 m: edges S11 and S12 impassable
    unaware = street_model(tmp_path, [AROUND_B1, deep], name="unaware", branch=True)
    unaware.run_to_end()
    told = street_model(tmp_path, [AROUND_B1, deep], name="told", branch=True, closed_roads=["S11", "S12"])
    told.run_to_end()
    assert unaware.final_kpis()["evacuated"] == told.final_kpis()["evacuated"] == 10
    # unaware: along the street to x = 120 m, where they see the water, back to the branch at x = 60 m,
    # round by the north road (180 m) and on to the shelter (20 m)
    assert unaware.final_kpis()["mean_evacuation_time_s"] == pytest.approx((100 + 60 + 180 + 20) / 1.34, rel=1e-9)
    assert told.final_kpis()["mean_evacuation_time_s"] == pytest.approx(240 / 1.34, rel=1e-9)
    ids = list(unaware.graph.road_ids)
    known = unaware.graph.edge_road[unaware.evacuation.known_closed]
    assert {ids[k] for k in known} == {"S11"}  # what they saw; S12 beyond it was never reached


def test_only_the_ground_floor_leaves_unless_asked(tmp_path):
    m = street_model(tmp_path, [AROUND_B1], evacuate_upper_floors=False, population=(11,))  # B1 has 2 storeys
    m.run_to_end()
    k = m.final_kpis()
    assert k["people_exposed"] == 11 and k["evacuees"] == 6 and k["evacuated"] == 6  # round(11 / 2)
    assert k["evacuation_completion"] == 1.0


def test_no_one_leaves_before_the_warning(tmp_path):
    m = street_model(tmp_path, [AROUND_B1], warning_time_s=120.0, response_time_s=60.0)
    m.advance_to(110)
    k = m.current_kpis()
    assert k["waiting"] == 10 and k["evacuees"] == 0
    m.run_to_end()
    e = m.evacuation
    assert (e.p_t_depart >= 120.0).all() and (e.p_t_depart <= 190.0).all()
    assert m.final_kpis()["evacuated"] == 10


# -- state ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_state_round_trip_with_people_on_the_move(tmp_path):
    """Saved while people walk, rerouted and queue for shelters, restored: the same run exactly."""
    kw = dict(hollows=[AROUND_B1], branch=True, closed_roads=["S10"], road_closure_s=60.0, population=(12, 9),
              shelters=(("SH1", 180.0, 15), ("SH2", 100.0, 3)), walk_speed_sd_mps=0.3, response_time_s=40.0,
              rain="uniform", rain_mm_per_h=40.0)
    straight = street_model(tmp_path, name="a", **kw)
    straight.run_to_end()
    first = street_model(tmp_path, name="a", **kw)
    first.advance_to(50)
    assert (first.evacuation.p_state == WALKING).any()
    path = tmp_path / "state.npz"
    write_state_bytes(state_bytes(first, state_context(first)), path)
    saved = read_state(path)
    again = street_model(tmp_path, name="a", **kw)
    again.set_state(saved.arrays, saved.meta["model"])
    assert len(again.evacuation.households) == len(first.evacuation.households) > 0
    again.run_to_end()
    assert again.final_kpis() == straight.final_kpis()
    assert again.timeseries().equals(straight.timeseries())
    assert np.array_equal(again.snapshot().positions, straight.snapshot().positions)
    assert np.array_equal(again.solver.h, straight.solver.h)


def test_a_branch_into_mobile_pumps_restores_the_baseline_state_and_pumps(tmp_path):
    """A state saved without mobile pumps goes into a variant that adds one (a drawn intervention,
    Run -> Branch): the pump joins with nothing pumped yet, and the water balance still closes."""
    city = City.load(towns.valley_town(tmp_path))
    kw = dict(duration_s=600, seed=1, rain="uniform", rain_mm_per_h=80, rain_duration_s=600, drainage_mm_per_h=5,
              sync_interval_s=10)
    base = FloodModel(city, **kw)
    base.advance_to(300)
    write_state_bytes(state_bytes(base, state_context(base)), tmp_path / "s.npz")
    saved = read_state(tmp_path / "s.npz")
    pumped = FloodModel(city, mobile_pumps_xy=[towns.X0 + 150, towns.Y0 + 57], mobile_pump_capacity_m3s=[0.2], **kw)
    assert pumped.solver.n_sinks == base.solver.n_sinks + 1
    restore_state(pumped, saved)  # the file's checks, then the model's
    assert len(pumped.solver.sink_m3) == pumped.solver.n_sinks and pumped.solver.sink_m3[-1] == 0.0
    pumped.run_to_end()
    k = pumped.final_kpis()
    assert k["pumped_volume_m3"] > 0 and k["volume_error_rel"] < 1e-6


# -- the demo city ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_short_storm_on_the_demo_city(tmp_path):
    city = City.load(DEMO_CITY)
    m = FloodModel(city, duration_s=900, seed=3, cell_size_m=10.0, storm_duration_min=15,
                   storm_return_period_yr=100, warning_time_s=0, response_time_s=0)
    m.run_to_end()
    k = m.final_kpis()
    print("\ndemo city, 15-min 100-year storm at 10 m:", {n: k[n] for n in KEY_KPIS})
    assert k["volume_error_rel"] < 1e-6
    assert k["rain_volume_m3"] > 0 and k["drained_volume_m3"] > 0
    assert k["buildings_flooded"] > 0 and k["people_exposed"] > 0 and k["evacuees"] > 0
    snap = m.snapshot()
    assert snap.fields["depth"].values.shape == m.raster.grid.shape
    assert {"buildings", "roads", "pois", "gates"} <= set(snap.features)
    # the river starts at its level (2.0 m) and is not counted as flooded land
    assert not (m.permanent & m.land).any()
