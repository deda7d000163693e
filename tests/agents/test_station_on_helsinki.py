"""The station model on a real city: Helsinki central station, imported from OpenStreetMap.

OSM has no crowd geometry, so the import derives it (agents/station/city_import.py, the station model's import hook): the walkable area is the
streets (buffered to their typical width), squares and platforms within 150 m of the station hall,
minus the other buildings; gates are where streets leave that circle; sources are the platforms.
"""
import numpy as np
import pytest
import shapely

from twin.gis.city_import import import_city
from twin.core.city import City


@pytest.fixture(scope="module")
def helsinki_station_dir(tmp_path_factory):
    from tests.conftest import DATA

    pbf = DATA / "city" / "helsinki_central" / "Helsinki.osm.pbf"
    out = tmp_path_factory.mktemp("helsinki") / "city"
    import_city([pbf], out, walkable_around="railway_station", walkable_radius_m=150)
    return out


@pytest.fixture(scope="module")
def helsinki_station(helsinki_station_dir):
    return City.load(helsinki_station_dir)


@pytest.mark.slow
def test_derived_station_area_is_usable(helsinki_station):
    city = helsinki_station
    walkable = shapely.union_all(city.walkable.geometry.values)
    assert walkable.geom_type == "Polygon" and walkable.area > 10_000
    assert len(city.layer("gates")) >= 3
    assert all(walkable.boundary.distance(g) < 1.0 for g in city.layer("gates").geometry)
    assert all(walkable.buffer(0.01).contains(s) for s in city.layer("sources").geometry)


@pytest.mark.slow
def test_passengers_leave_helsinki_station(helsinki_station):
    from agents.registry import get_model

    city = helsinki_station
    n_gates = len(city.layer("gates"))
    model = get_model("station_dispersal")(city, duration_s=400, seed=3)
    total = int(city.layer("sources")["count"].sum())
    walkable = shapely.union_all(city.walkable.geometry.values).buffer(0.5)
    while model.time_s < model.duration_s and not model.finished:
        model.advance_to(model.time_s + 50)
        snap = model.snapshot()
        inside = snap.states == snap.state_names.index("walking")
        pts = shapely.points(snap.positions[inside].astype(float))
        assert shapely.contains(walkable, pts).all(), "a walking passenger left the walkable area"
    k = model.final_kpis()
    assert k["agents_total"] == total
    # 150 m at ~1.3 m/s is under two minutes: nearly everyone is out of the area within 400 s.
    assert k["agents_exited"] >= 0.95 * total
    used = [g for g, n in k["exited_by_gate"].items() if n > 0]
    assert len(used) >= 2 and len(k["exited_by_gate"]) == n_gates
    assert 0 < k["mean_egress_time_s"] < 400 and np.isfinite(k["p95_egress_time_s"])


@pytest.mark.slow
def test_evening_peak_scenario_runs_unchanged_on_the_demo_city_and_on_helsinki(helsinki_station_dir):
    """The evening peak carries its own demand (a timetable of trains at platforms P1..P6) and names
    no city-specific id in its interventions (gates and connectors are selected by kind), so the
    same file runs on the two-level demo station and on the imported Helsinki central station;
    there, the interventions on stairs and escalators have nothing to act on (the import has no
    connectors), and they fail before any run instead of running as no-ops."""
    import dataclasses

    from tests.conftest import DEMO_CITY, ROOT
    from twin.core.errors import UserError
    from twin.runs.runner import build_model
    from twin.scenario import preflight
    from twin.scenario.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "station_evening_peak.toml")
    connectors = ["reverse escalators to down", "open the spare stairs"]
    assert set(connectors) <= set(sc.variants())
    on_helsinki = load_scenario(ROOT / "scenarios" / "station_evening_peak.toml", city=helsinki_station_dir)
    for v in connectors:
        with pytest.raises(UserError, match=f'intervention "{v}".*matches none of the connectors'):
            preflight.check_features(on_helsinki, [v])
    for city_dir in (DEMO_CITY, helsinki_station_dir):
        here = dataclasses.replace(sc, city_path=city_dir)
        variants = [v for v in here.variants() if city_dir == DEMO_CITY or v not in connectors]
        preflight.check_features(here, variants)
        models = {v: build_model(here, v) for v in variants}
        base = models[here.variants()[0]]
        assert base.N == 9000 and [base.station.sources[t.source].id for t in base.trains] == [f"P{k}" for k in
                                                                                                range(1, 7)]
        assert [t.arrival_s for t in base.trains] == [0.0, 90.0, 180.0, 270.0, 360.0, 450.0]
        if city_dir == DEMO_CITY:
            rev = models["reverse escalators to down"]
            down = np.array([not up for _, up in base.entries])
            assert base.t_open[base.E0:][down].sum() + 6 == rev.t_open[rev.E0:][down].sum()  # U1..U6 run down
            assert models["open more gates"].gate_open.all()
    # the baseline on Helsinki (the last built), for the first trains
    m = base
    m.advance_to(200)
    k = m.current_kpis()
    # three trains due by 200 s; their passengers appear as fast as the (small) platforms make room
    assert 1500 < k["agents_total"] <= 4500 and m.src_ptr[0] == m.src_ranges[0][1]  # all of P1's train is out
    assert k["agents_exited"] > 0 and k["max_density_ppm2"] <= 8.0


@pytest.mark.slow
def test_city_check_says_the_station_area_is_estimated(helsinki_station):
    """`citytwin city check`: the derived walkable area, gates and platform sources are estimates."""
    from agents.station.model import StationDispersalModel

    check = StationDispersalModel.check_city(helsinki_station)
    assert check.can_run
    estimated = {i.what: i for i in check.estimated}
    assert set(estimated) == {"walkable area", "gates (where streets leave the area)", "sources (platforms)"}
    assert estimated["sources (platforms)"].count == len(helsinki_station.layer("sources"))
    assert "Helsingin päärautatieasema" in estimated["walkable area"].how
    assert not check.taken  # the passengers per platform are shared by area, not from the data
