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
    walk = shapely.union_all(helsinki_station.layer("walkable")[helsinki_station.layer("walkable")["level"] == 0].geometry.values)
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
    # ticket gates: none tagged in Helsinki, so estimated at the platform passages and, fenced in,
    # at the tops of the platforms' stairs and lifts down to the tunnel; each marked so
    tickets = gates[gates["kind"] == "ticket_gate"]
    assert len(tickets) >= 10 and tickets["estimated"].astype(bool).all()
    assert all(t.startswith("ticket gates, Platform ") or " down from Platform " in t for t in tickets["name"])
    fenced = tickets[tickets["name"].str.contains(" down from Platform ")]
    assert set(fenced["name"]) == {f"ticket gates, {k} down from Platform {p}" for k, p in
                                   (("stairs", 2), ("stairs", 7), ("stairs", 9), ("lift", 5), ("lift", 7), ("lift", 9))}
    fences = helsinki_station.layer("obstacles")
    assert len(fences) == 2 * len(fenced) and set(fences["bank"]) == set(fenced["id"])


def test_stairs_escalators_and_lifts_where_osm_has_them(helsinki_station_dir, helsinki_station):
    """Helsinki's steps at the station carry no level pair: the import places each from the floors of
    the ways at its ends (a tunnel is level -1, stairs ending in the hall reach level 0) and reports
    the others with the reason; the lifts are lifts of the crowd model (default size, estimated)."""
    import json

    area = helsinki_station.meta["station_area"]
    assert len(area["lifts"]) >= 1
    note = next(n for n in json.loads((helsinki_station_dir / "import_report.json").read_text())["notes"]
                if n.startswith("station "))
    assert "more placed from the floors of the ways at their ends" in note and "5 lifts placed as connectors" in note
    from agents.station.model import CONNECTORS

    conn = helsinki_station.extra_layer(CONNECTORS)
    # the stairs from the platforms and the hall down to the platform tunnel (level -1)
    assert conn is not None and len(conn) >= 3 and set(conn["kind"]) == {"stairs", "escalator", "lift"}
    assert (conn["from_level"] == -1).all() and (conn["to_level"] == 0).all()
    # every stair and escalator of the station is placed: the escalator and the stairs beside it
    # between the platform tunnel (layer=-1) and the passage in the hall (tunnel=yes without a
    # layer: indoors at street level), and the hall's steps down to the tunnel; the short steps at
    # the hall's doors, both ends on the street level, are floor, not connectors
    assert "not placed" not in note, note
    assert {"osm_way_470004885", "osm_way_16759164", "osm_way_470004875", "osm_way_18379252"} <= set(conn["id"])
    esc = conn[conn["kind"] == "escalator"]
    assert list(esc["id"]) == ["osm_way_470004885"] and list(esc["direction"]) == ["up"]  # conveying=yes: estimated
    assert "1 escalator(s) of unknown direction set to run up" in note
    assert not {"osm_way_28936432", "osm_way_32030447"} & set(conn["id"])
    # the lifts (highway=elevator nodes) between the platform tunnel and the platforms or the hall
    lifts = conn[conn["kind"] == "lift"]
    assert len(lifts) == len(area["lifts"]) == 5 and lifts["id"].str.startswith("osm_node_").all()
    assert {"lift from level -1 up to Platform 7", "lift from level -1 up to Platform 9"} <= set(lifts["name"])
    assert sorted(set(helsinki_station.layer("walkable")["level"].astype(int))) == [-1, 0]


def test_city_check_says_what_was_estimated(helsinki_station):
    from agents.station.model import StationDispersalModel

    check = StationDispersalModel.check_city(helsinki_station)
    assert check.can_run
    estimated = {i.what: i for i in check.estimated}
    assert "ticket gates (at the platform passages)" in estimated
    # the banks the crowd model refuses are left out, and the check says which way leads round each
    how = estimated["ticket gates (at the platform passages)"].how
    assert "6 more fenced in at the tops of the platforms' stairs and lifts" in how
    assert "left out, as the crowd model finds a way round them" in how
    assert "Platform 11: by its own exits G9, G13 (5 banks)" in how
    assert estimated["sources (platforms)"].count == len(helsinki_station.layer("sources"))
    found = {i.what: i for i in check.found}
    assert found["platforms (by OSM ref)"].count == 19
    assert found["connectors: lift"].count == estimated["lifts (capacity per trip, round trip)"].count == 5


def test_the_bundled_evening_peak_fits_the_platforms_found_and_has_no_los_f(helsinki_station_dir):
    """The bundled evening peak (six trains of 1,500 at P1..P6, written for the demo city's long
    platforms) run with --city on imported Helsinki: the import gives each platform the most a train
    unloads there (max_per_train, 0.3 persons per m² of platform), every train is cut down to it and
    the run says so; the crowd then leaves without level of service F (1,500 a train gave F on the
    platforms from the first minute)."""
    import dataclasses

    import geopandas as gpd

    from tests.conftest import ROOT
    from twin.runs.runner import build_model
    from twin.scenario.scenario import load_scenario

    src = gpd.read_file(helsinki_station_dir / "city.gpkg", layer="sources").set_index("id")
    fit = {i: int(round(src.geometry[i].area * 0.3)) for i in (f"P{k}" for k in range(1, 7))}
    assert all(abs(src["max_per_train"][i] - n) <= 1 for i, n in fit.items())
    sc = load_scenario(ROOT / "scenarios" / "station_evening_peak.toml", city=helsinki_station_dir)
    sc = dataclasses.replace(sc, duration_s=240.0)
    m = build_model(sc, sc.variants()[0])
    assert [t.passengers for t in m.trains] == [int(src["max_per_train"][f"P{k}"]) for k in range(1, 7)]
    assert any("6 of 6 trains carry more passengers than their platform takes" in w and "P1 at 0 s: 1500 -> " in w
               for w in m.warnings), m.warnings
    m.advance_to(60)
    assert m.los["F"] == 0 and m.los["E"] == 0, m.los  # the first minute flows
    m.advance_to(240)
    k = m.current_kpis()
    assert k["agents_exited"] > 0.15 * k["agents_total"], k
    los = m.final_kpis()["los_seconds"]
    # measured: no F at all; the densest spot spends about 15 s of 240 at E (the queues at the exits
    # and ticket gates)
    assert los["F"] == 0 and sum(los[c] for c in "ABCD") >= 180, los


def test_evening_peak_scenario_runs_unchanged_on_the_demo_city_and_on_helsinki(helsinki_station_dir):
    """The evening peak carries its own demand (a timetable of trains at platforms P1..P6) and names
    no city-specific id in its interventions (gates and connectors are selected by kind), so the
    same file runs on the two-level demo station and on the imported Helsinki central station,
    whose platforms are P1..P19 by track, every intervention included: Helsinki's escalator (up,
    estimated) is reversed by "reverse escalators to down"."""
    import dataclasses

    from tests.conftest import DEMO_CITY, ROOT
    from twin.runs.runner import build_model
    from twin.scenario import preflight
    from twin.scenario.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "station_evening_peak.toml")
    assert "reverse escalators to down" in sc.variants()
    for city_dir in (DEMO_CITY, helsinki_station_dir):
        here = dataclasses.replace(sc, city_path=city_dir)
        preflight.check_features(here, here.variants())
        base = build_model(here, here.variants()[0])
        assert [base.station.sources[t.source].id for t in base.trains] == [f"P{k}" for k in range(1, 7)]
        assert (base.N == 9000) == (city_dir == DEMO_CITY)  # Helsinki's platforms take fewer
        if city_dir != DEMO_CITY:  # Helsinki's escalator to the platform tunnel, reversed
            rev = build_model(here, "reverse escalators to down")
            assert [c.direction for c in rev.station.connectors if c.kind == "escalator"] == ["down"]
