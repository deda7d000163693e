"""The station model on a real city: Helsinki central station, imported from OpenStreetMap.

OSM has no crowd geometry, so the import derives it (agents/station/city_import.py, the station
model's import hook): platforms merged per track and named by their ``ref``, the station's precinct
(hall, platforms, the concourse between them) with the hall's doors as its exits, ticket gates
estimated at the platform passages, floors below ground with the stairs and escalators to them.
"""
import numpy as np
import pytest
import shapely

from twin.gis.city_import import import_city
from twin.core.city import City

# every test here shares one import of the OSM extract (about 5 s)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def helsinki_station_dir(tmp_path_factory):
    from tests.conftest import DATA

    pbf = DATA / "city" / "helsinki_central" / "Helsinki.osm.pbf"
    out = tmp_path_factory.mktemp("helsinki") / "city"
    import_city([pbf], out, walkable_around="railway_station", walkable_radius_m=250)
    return out


@pytest.fixture(scope="module")
def helsinki_station(helsinki_station_dir):
    return City.load(helsinki_station_dir)


@pytest.fixture(scope="module")
def osm_platforms(helsinki_station):
    """The railway platforms OSM has within the station area, read straight from the file: {ref}."""
    import pyogrio

    from tests.conftest import DATA

    polys = pyogrio.read_dataframe(DATA / "city" / "helsinki_central" / "Helsinki.osm.pbf", layer="multipolygons",
                                   on_invalid="fix").to_crs(helsinki_station.crs)
    area = helsinki_station.meta["station_area"]
    circle = shapely.Point(area["centre"]).buffer(area["radius_m"])
    tags = polys["other_tags"].fillna("")
    rail = polys[tags.str.contains('"railway"=>"platform"') & polys.intersects(circle)]
    refs = set()
    for t in rail["other_tags"]:
        ref = t.split('"ref"=>"')[1].split('"')[0] if '"ref"=>"' in t else ""
        refs |= {r.strip() for r in ref.split(";") if r.strip()}
    return refs


def test_platforms_match_the_osm_platforms(helsinki_station, osm_platforms):
    """One platform per track, named by its ref: the names are OSM's, not P1..P45 fragments."""
    names = helsinki_station.meta["station_area"]["platforms"]
    assert len(osm_platforms) == 19 and len(names) == len(osm_platforms)
    assert set(names) == {f"Platform {r}" for r in osm_platforms}
    sources = helsinki_station.layer("sources")
    # every platform is a source, named as OSM names it (13..18 reached under the deck over their
    # heads: a building with building:min_level=2 does not wall them off)
    assert sorted(sources["name"]) == sorted(names)
    assert all(sid == "P" + n.removeprefix("Platform ") for sid, n in zip(sources["id"], sources["name"]))
    walk = shapely.union_all(helsinki_station.walkable[helsinki_station.walkable["level"] == 0].geometry.values)
    assert all(walk.buffer(0.01).contains(s) for s in sources.geometry)


def test_only_the_stations_own_exits_are_exits(helsinki_station):
    """Exits are the hall's doors and the ends of the station's walkways, not street corners 250 m away."""
    area = helsinki_station.meta["station_area"]
    centre = shapely.Point(area["centre"])
    gates = helsinki_station.layer("gates")
    exits = gates[gates["kind"] == "exit"]
    assert 3 <= len(exits) <= 25
    assert set(exits["level"].astype(int)) == {-1, 0}  # the hall's doors, and the platform tunnel's ends
    hall = helsinki_station.buildings[helsinki_station.buildings["use"] == "station"]
    hall = hall.geometry[hall.distance(centre).idxmin()]
    station = shapely.union_all([hall, *helsinki_station.layer("sources").geometry.values])
    for g in exits.geometry:  # at the station (its doors, its walkways' ends), never out on the circle
        assert g.distance(station) < 30.0 and g.distance(centre) < area["radius_m"] - 20, g
    # the doors are named from OSM (entrance=main, ref), not left as ids
    assert (exits["name"].str.contains("entrance")).sum() >= 3
    # ticket gates: none tagged in Helsinki, so estimated at the platform passages, each marked so
    tickets = gates[gates["kind"] == "ticket_gate"]
    assert len(tickets) >= 1 and tickets["estimated"].astype(bool).all()
    assert all(t.startswith("ticket gates, Platform ") for t in tickets["name"])


def test_stairs_where_osm_has_them_and_lifts_reported(helsinki_station_dir, helsinki_station):
    """Helsinki's steps at the station carry no level pair: the import places each from the floors of
    the ways at its ends (a tunnel is level -1, stairs ending in the hall reach level 0) and reports
    the others with the reason; the lifts are listed (the crowd model does not simulate them)."""
    import json

    area = helsinki_station.meta["station_area"]
    assert len(area["lifts"]) >= 1
    note = next(n for n in json.loads((helsinki_station_dir / "import_report.json").read_text())["notes"]
                if n.startswith("station "))
    assert "more placed from the floors of the ways at their ends" in note and "lifts (not simulated)" in note
    from agents.station.model import CONNECTORS

    conn = helsinki_station.extra_layer(CONNECTORS)
    # the stairs from the platforms and the hall down to the platform tunnel (level -1)
    assert conn is not None and len(conn) >= 3 and set(conn["kind"]) <= {"stairs", "escalator"}
    assert (conn["from_level"] == -1).all() and (conn["to_level"] == 0).all()
    assert sorted(set(helsinki_station.walkable["level"].astype(int))) == [-1, 0]


def test_city_check_says_what_was_estimated(helsinki_station):
    from agents.station.model import StationDispersalModel

    check = StationDispersalModel.check_city(helsinki_station)
    assert check.can_run
    estimated = {i.what: i for i in check.estimated}
    assert "ticket gates (at the platform passages)" in estimated
    assert estimated["sources (platforms)"].count == len(helsinki_station.layer("sources"))
    found = {i.what: i for i in check.found}
    assert found["platforms (by OSM ref)"].count == 19


def test_evening_peak_scaled_to_the_platforms_has_no_los_f_plateau(helsinki_station_dir, tmp_path):
    """A train at every platform found, its passengers scaled to the platform (0.25 persons/m²),
    30 s apart: the crowd leaves by the doors and the platform tunnel without the worst area sitting
    at level of service F (the import before gave F for 1,170 of 1,200 s)."""
    import geopandas as gpd

    from tests.conftest import ROOT
    from twin.runs.runner import build_model
    from twin.scenario.scenario import load_scenario

    src = gpd.read_file(helsinki_station_dir / "city.gpkg", layer="sources")
    table = tmp_path / "trains.csv"
    table.write_text("platform,arrival_s,passengers\n" + "".join(
        f"{r.id},{30 * k},{max(10, int(r.geometry.area * 0.25))}\n" for k, r in enumerate(src.itertuples())))
    sc = load_scenario(ROOT / "scenarios" / "station_evening_peak.toml", city=helsinki_station_dir)
    import dataclasses

    sc = dataclasses.replace(sc, duration_s=300.0, parameters={**sc.parameters, "timetable": str(table)})
    m = build_model(sc, sc.variants()[0])
    m.advance_to(60)
    assert m.los["F"] == 0 and m.los["E"] == 0, m.los  # the first minute flows
    m.advance_to(300)
    k = m.current_kpis()
    assert k["agents_total"] > 500 and k["agents_exited"] > 0.2 * k["agents_total"]
    los = m.final_kpis()["los_seconds"]
    # no F plateau (measured: none at all; the densest spot spends about 130 s at E, at the queues of
    # the exits)
    assert los["F"] < 30 and sum(los[c] for c in "ABCD") >= 60, los


def test_evening_peak_scenario_runs_unchanged_on_the_demo_city_and_on_helsinki(helsinki_station_dir):
    """The evening peak carries its own demand (a timetable of trains at platforms P1..P6) and names
    no city-specific id in its interventions (gates and connectors are selected by kind), so the
    same file runs on the two-level demo station and on the imported Helsinki central station,
    whose platforms are P1..P19 by track; there the intervention on escalators has nothing to act
    on (the import places stairs only), and it fails before any run instead of running as a no-op."""
    import dataclasses

    from tests.conftest import DEMO_CITY, ROOT
    from twin.core.errors import UserError
    from twin.runs.runner import build_model
    from twin.scenario import preflight
    from twin.scenario.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "station_evening_peak.toml")
    escalators = "reverse escalators to down"
    assert escalators in sc.variants()
    on_helsinki = load_scenario(ROOT / "scenarios" / "station_evening_peak.toml", city=helsinki_station_dir)
    with pytest.raises(UserError, match=f'intervention "{escalators}".*matches none of the connectors'):
        preflight.check_features(on_helsinki, [escalators])
    for city_dir in (DEMO_CITY, helsinki_station_dir):
        here = dataclasses.replace(sc, city_path=city_dir)
        variants = [v for v in here.variants() if city_dir == DEMO_CITY or v != escalators]
        preflight.check_features(here, variants)
        base = build_model(here, variants[0])
        assert base.N == 9000 and [base.station.sources[t.source].id for t in base.trains] == [f"P{k}" for k in
                                                                                                range(1, 7)]
        if city_dir != DEMO_CITY:  # the spare stairs: Helsinki's stairs to the platform tunnel
            stairs = build_model(here, "open the spare stairs")
            assert len(stairs.station.connectors) >= 3 and all(c.open for c in stairs.station.connectors)
