"""The station model on a real city: Helsinki central station, imported from OpenStreetMap.

OSM has no crowd geometry, so the import derives it (twin/gis_station.py): the walkable area is the
streets (buffered to their typical width), squares and platforms within 150 m of the station hall,
minus the other buildings; gates are where streets leave that circle; sources are the platforms.
"""
import numpy as np
import pytest
import shapely

from twin.city_import import import_city
from twin.core.city import City


@pytest.fixture(scope="module")
def helsinki_station(tmp_path_factory):
    from tests.conftest import DATA

    pbf = DATA / "city" / "helsinki_central" / "Helsinki.osm.pbf"
    out = tmp_path_factory.mktemp("helsinki") / "city"
    import_city([pbf], out, walkable_around="railway_station", walkable_radius_m=150)
    return City.load(out)


def test_derived_station_area_is_usable(helsinki_station):
    city = helsinki_station
    walkable = shapely.union_all(city.walkable.geometry.values)
    assert walkable.geom_type == "Polygon" and walkable.area > 10_000
    assert len(city.gates) >= 3
    assert all(walkable.boundary.distance(g) < 1.0 for g in city.gates.geometry)
    assert all(walkable.buffer(0.01).contains(s) for s in city.sources.geometry)


def test_passengers_leave_helsinki_station(helsinki_station):
    from agents.registry import get_model

    city = helsinki_station
    n_gates = len(city.gates)
    model = get_model("station_dispersal")(city, duration_s=400, seed=3)
    total = int(city.sources["count"].sum())
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
