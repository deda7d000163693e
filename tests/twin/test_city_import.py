"""The city import on real data (Helsinki OSM, Prague GeoPackage) and on small files built here."""
import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import LineString, Point, Polygon, box

from tests.conftest import DATA
from twin.gis.city_import import contract_layer_for, import_city
from twin.core.city import City
from twin.core.errors import UserError
from twin.gis.osm import parse_height_m, parse_levels, parse_maxspeed, poi_kind

HELSINKI = DATA / "city" / "helsinki_central" / "Helsinki.osm.pbf"
PRAGUE = DATA / "city" / "prague_bubenec" / "bubenec.gpkg"

_IMPORTED: dict = {}


def imported(which: str, tmp_path_factory):
    """Import a real dataset once per test session: (package folder, report)."""
    if which not in _IMPORTED:
        src = {"helsinki": HELSINKI, "prague": PRAGUE}[which]
        if not src.is_file():
            pytest.fail(f"the reference data is missing (tests/data): expected {src}")
        out = tmp_path_factory.mktemp(f"real_{which}") / which
        _IMPORTED[which] = (out, import_city([src], out, name=which.capitalize()))
    return _IMPORTED[which]


@pytest.fixture(scope="session")
def helsinki(tmp_path_factory):
    return imported("helsinki", tmp_path_factory)


@pytest.fixture(scope="session")
def prague(tmp_path_factory):
    return imported("prague", tmp_path_factory)


# -- real cities ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_helsinki_osm_import(helsinki):
    out, report = helsinki
    city = City.load(out)
    assert city.crs.to_epsg() == 32635 and "UTM zone" in report["crs_reason"]
    b = city.buildings
    assert 470 <= len(b) <= 500  # 500 in the file; a few ways cut by the extract edge collapse
    assert (b["height_m"] > 0).all()
    h = report["heights"]
    assert h["height"] == 17 and 140 <= h["levels"] <= 168 and h["height"] + h["levels"] + h["default"] == len(b)
    assert b["height_source"].value_counts()["levels"] == h["levels"]
    station = b[b["use"] == "station"]
    assert len(station) == 1 and "rautatieasema" in station["name"].iloc[0].lower()
    pois = city.pois
    assert len(pois[pois["kind"] == "railway_station"]) >= 1
    assert "Helsinki" in set(pois[pois["kind"] == "railway_station"]["name"])
    metro = pois[pois["kind"] == "metro"]
    assert len(metro) >= 2 and {"Rautatientori", "Helsingin yliopisto"} & set(metro["name"])
    assert pois["id"].is_unique and pois["id"].str.match(r"osm_(node|way|relation)_\d+").all()
    assert {"bus_stop", "hotel", "attraction", "taxi_rank"} <= set(pois["kind"])
    roads = city.roads
    assert len(roads) > 2000 and (roads["speed_kmh"] > 0).all()
    assert {"primary", "footway", "residential"} <= set(roads["kind"])
    assert city.has("walkable") and city.has("water")
    assert city.terrain is None and report["dem"] is None
    assert report["repaired"]["buildings"] > 0  # self-intersecting OSM ways, repaired and counted
    assert "OpenStreetMap" in city.attribution
    saved = json.loads((out / "import_report.json").read_text(encoding="utf-8"))
    assert saved["layers"]["buildings"] == len(b) and saved["crs"] == "EPSG:32635"
    assert saved["input_files"] == [str(HELSINKI)]


@pytest.mark.slow
def test_helsinki_report_text(helsinki):
    text = helsinki[1].text()
    assert "EPSG:32635" in text and "from levels" in text and "repaired" in text
    assert f"buildings {len(City.load(helsinki[0]).buildings)}" in text


@pytest.mark.slow
def test_prague_geopackage_import(prague):
    out, report = prague
    city = City.load(out)
    assert city.crs.to_epsg() == 5514 and "DEM" in report["crs_reason"]
    assert len(city.buildings) == 144 and (city.buildings["height_source"] == "default").all()
    assert (city.buildings["height_m"] == 10.0).all() and report["heights"]["default"] == 144
    assert len(city.roads) == 35
    assert any("tessellation" in s for s in report["skipped"]) and any("plots" in s for s in report["skipped"])
    t = city.terrain
    assert t is not None and t.grid.cell_m == pytest.approx(1.0)
    assert 180 < np.nanmin(t.grid.values) < 195 and 215 < np.nanmax(t.grid.values) < 230  # Bubeneč: ~188–222 m
    with rasterio.open(out / "dem.tif") as r:
        assert r.crs.to_epsg() == 5514 and r.res == (1.0, 1.0)
    # Buildings sit on the terrain: their footprints are inside the DEM.
    gb = t.grid.bounds
    bb = city.buildings.total_bounds
    assert gb[0] <= bb[0] and gb[1] <= bb[1] and gb[2] >= bb[2] and gb[3] >= bb[3]
    z = city.elevation_at(city.buildings.centroid.x.to_numpy(), city.buildings.centroid.y.to_numpy())
    assert np.all((z > 185) & (z < 225))
    # The vectors were in Web Mercator; reprojected, a 10 m × 10 m block should not be 1.5× too big.
    assert city.buildings.geometry.area.median() < 1000


@pytest.mark.slow
def test_helsinki_station_area(helsinki):
    import shapely

    from agents.station.city_import import derive_station_area

    city = City.load(helsinki[0])
    area, info = derive_station_area(city, "railway_station", 250, agents=800, return_info=True)
    walk = area.layer("walkable")
    poly = walk[walk["level"] == 0].geometry.iloc[0]  # the hall and platforms (with platforms cut off from it)
    assert poly.geom_type in ("Polygon", "MultiPolygon") and poly.is_valid
    assert 10_000 < poly.area < 60_000 and info["station"].startswith("Helsingin")
    gates = area.layer("gates")
    exits = gates[gates["kind"] == "exit"]
    assert len(exits) >= 3 and exits["id"].tolist()[:3] == ["G1", "G2", "G3"] and gates["id"].is_unique
    for lv, g in zip(exits["level"], exits.geometry):  # on the edge of the floor of their level
        floor = shapely.union_all(walk[walk["level"] == lv].geometry.values)
        assert floor.boundary.distance(g) < 0.1 and floor.buffer(0.1).contains(g)
    sources = area.layer("sources")
    assert len(sources) >= 1 and sources["count"].sum() == 800
    assert all(poly.contains(s) for s in sources.geometry)
    # It saves and loads as a valid package the crowd model can use.
    out = helsinki[0].parent / "station_area"
    area.save(out)
    again = City.load(out)
    again.require(["walkable", "gates", "sources"], "station_dispersal")
    assert len(again.layer("gates")) == len(gates)


@pytest.mark.slow
def test_station_by_name_and_unknown_station(helsinki):
    from agents.station.city_import import derive_station_area

    city = City.load(helsinki[0])
    area = derive_station_area(city, "päärautatieasema", 150)
    assert len(area.layer("gates")) >= 3
    with pytest.raises(UserError, match="no station 'Atlantis'"):
        derive_station_area(city, "Atlantis", 200)


@pytest.mark.slow
def test_import_with_walkable_around(tmp_path):
    out = tmp_path / "hel_station"
    report = import_city([HELSINKI], out, walkable_around="railway_station", walkable_radius_m=200)
    assert any(n.startswith("station 'Helsingin") for n in report["notes"])
    city = City.load(out)
    assert (city.layer("walkable")["level"] == 0).sum() == 1 and len(city.layer("gates")) >= 3 and len(city.layer("sources")) >= 1


@pytest.mark.slow
def test_import_places_the_steps_from_the_floors_at_their_ends(tmp_path):
    """Helsinki's OSM has steps near the station without a pair of levels: the import places them from
    the floors of the ways at their ends (a tunnel is level -1; one only implied by tunnel=yes beside
    a tagged one is the floor above), and would report any it could not place (none here; see
    tests/agents/test_station_import_rules.py)."""
    out = tmp_path / "hel_steps"
    report = import_city([HELSINKI], out, walkable_around="railway_station", walkable_radius_m=250)
    note = next(n for n in report["notes"] if n.startswith("station "))
    assert "stairs/escalators with two levels tagged: 0 placed as connectors" in note
    assert "8 more placed from the floors of the ways at their ends" in note and "not placed" not in note
    # the stairs down to the platform tunnel (level -1) are placed from the floors of the ways at their ends
    from agents.station.model import CONNECTORS

    conn = City.load(out).extra_layer(CONNECTORS)
    assert len(conn) >= 2 and (conn["from_level"] == -1).all() and (conn["to_level"] == 0).all()
    assert "connectors" in pyogrio_layers(out / "city.gpkg")


def pyogrio_layers(path):
    import pyogrio

    return {n for n, _ in pyogrio.list_layers(path)}


def test_connectors_derived_from_steps_and_escalators():
    """Steps and escalators tagged with two levels become connectors drawn from the lower to the
    upper end (incline), escalators running along or against the way (conveying); the rest is
    reported with the reason."""
    import geopandas as gpd
    import shapely

    from agents.station.city_import import derive_connectors

    crs = "EPSG:32635"
    street = shapely.box(0, 0, 100, 20)
    deck = shapely.box(0, 30, 100, 50)  # a platform on level 1
    floors = {0: street, 1: deck}
    ways = [  # (id, kind, level, incline, conveying, geometry)
        ("up stairs", "steps", "0;1", "up", "", [(10, 19.8), (10, 30.2)]),
        ("down-drawn stairs", "steps", "0;1", "down", "", [(20, 30.2), (20, 19.8)]),
        ("escalator up", "steps", "0;1", "up", "forward", [(30, 19.8), (30, 30.2)]),
        ("escalator down", "steps", "0;1", "up", "backward", [(40, 19.8), (40, 30.2)]),
        ("no incline", "steps", "0;1", "", "", [(50, 19.8), (50, 30.2)]),
        ("to level 2", "steps", "1;2", "up", "", [(60, 40), (60, 45)]),
        ("off the deck", "steps", "0;1", "up", "", [(70, 19.8), (70, 60)]),
        ("one floor", "steps", "0", "up", "", [(80, 5), (80, 10)]),
    ]
    roads = gpd.GeoDataFrame({"id": [w[0] for w in ways], "kind": [w[1] for w in ways], "level": [w[2] for w in ways],
                              "incline": [w[3] for w in ways], "conveying": [w[4] for w in ways], "width": ""},
                             geometry=[shapely.LineString(w[5]) for w in ways], crs=crs)
    layer, info = derive_connectors(roads, shapely.box(-10, -10, 110, 70), floors, crs)
    got = {r["id"]: r for _, r in layer.iterrows()}
    assert set(got) == {"up stairs", "down-drawn stairs", "escalator up", "escalator down"}
    assert got["down-drawn stairs"].geometry.coords[0][1] < 20  # reversed: drawn from the lower end
    assert got["escalator up"]["direction"] == "up" and got["escalator down"]["direction"] == "down"
    assert got["up stairs"]["kind"] == "stairs" and got["escalator up"]["kind"] == "escalator"
    assert (layer["from_level"] == 0).all() and (layer["to_level"] == 1).all()
    reasons = {s["id"]: s["reason"] for s in info["not_placed"]}
    assert reasons == {"no incline": "no incline tag: which end is up is unknown",
                       "to level 2": "level 2 has no walkable area in the station area",
                       "off the deck": "an end does not lie on the walkable area of its level"}
    assert info["candidates"] == 7 and info["placed"] == 4


# -- parsing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, metres", [
    ("12", 12.0), ("12.5 m", 12.5), ("12,5", 12.5), ("40'", 12.192), ("40 ft", 12.192), ("10'6\"", 3.2004),
    (" 7 ", 7.0), ("", None), ("tall", None), (None, None), ("-3", None), ("0", None),
])
def test_parse_height(value, metres):
    got = parse_height_m(value)
    assert got == (pytest.approx(metres, abs=1e-3) if metres is not None else None)


def test_parse_levels_and_speed():
    assert parse_levels("6") == 6 and parse_levels("5;6") == 6 and parse_levels("2-3") == 3 and parse_levels("x") is None
    assert parse_maxspeed("50") == 50 and parse_maxspeed("30 mph") == pytest.approx(48.28, abs=0.01)
    assert parse_maxspeed("FI:urban") == 50 and parse_maxspeed("walk") == 5 and parse_maxspeed("none") is None


@pytest.mark.parametrize("tags, kind", [
    ({"railway": "station", "public_transport": "station"}, "railway_station"),
    ({"railway": "station", "station": "subway"}, "metro"),
    ({"railway": "subway_entrance"}, "metro"),
    ({"highway": "bus_stop"}, "bus_stop"),
    ({"amenity": "bus_station"}, "bus_stop"),
    ({"amenity": "taxi"}, "taxi_rank"),
    ({"tourism": "hostel"}, "hotel"),
    ({"tourism": "museum"}, "attraction"),
    ({"historic": "memorial"}, "attraction"),
    ({"emergency": "assembly_point"}, "shelter"),
    ({"amenity": "shelter"}, None),  # a bus or picnic shelter, not an evacuation site
    ({"amenity": "cafe"}, None),
])
def test_poi_kinds(tags, kind):
    assert poi_kind(tags) == kind


def test_layer_names():
    assert contract_layer_for("buildings") == "buildings" and contract_layer_for("Building") == "buildings"
    assert contract_layer_for("streets") == "roads" and contract_layer_for("city_buildings_2024") == "buildings"
    assert contract_layer_for("tessellation") is None and contract_layer_for("plots") is None


# -- small files ----------------------------------------------------------------------------------
LON, LAT = 116.39, 39.91  # Beijing: UTM zone 50N


def _square(lon, lat, d=0.0002):
    return box(lon, lat, lon + d, lat + d)


@pytest.mark.slow
def test_geojson_and_shapefile_in_degrees_get_utm_and_heights(tmp_path):
    b = gpd.GeoDataFrame(
        {"name": ["A", "B", "C", "D"], "height": ["20 m", None, None, "abc"], "levels": [None, 4, None, None]},
        geometry=[_square(LON, LAT), _square(LON + 0.001, LAT), _square(LON + 0.002, LAT), _square(LON, LAT + 0.001)],
        crs="EPSG:4326")
    b.to_file(tmp_path / "houses.geojson", driver="GeoJSON")
    r = gpd.GeoDataFrame({"highway": ["primary"], "maxspeed": ["60"]},
                         geometry=[LineString([(LON - 0.001, LAT - 0.0005), (LON + 0.003, LAT - 0.0005)])], crs="EPSG:4326")
    r.to_file(tmp_path / "lines.shp")
    report = import_city([tmp_path / "houses.geojson", tmp_path / "lines.shp"], tmp_path / "out",
                         default_height_m=8, level_height_m=3.5)
    city = City.load(tmp_path / "out")
    assert city.crs.to_epsg() == 32650
    assert city.buildings["height_m"].tolist() == [20.0, 14.0, 8.0, 8.0]
    assert city.buildings["height_source"].tolist() == ["height", "levels", "default", "default"]
    assert report["heights"]["default"] == 2 and report["heights"]["levels"] == 1
    assert city.roads["kind"].iloc[0] == "primary" and city.roads["speed_kmh"].iloc[0] == 60
    # ~22 m squares: the reprojection is to metres
    assert 300 < city.buildings.geometry.area.iloc[0] < 600


def test_invalid_geometry_repaired_and_counted(tmp_path):
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10), (0, 0)])
    g = gpd.GeoDataFrame({"height_m": [12.0, 9.0]}, geometry=[bowtie, box(20, 0, 30, 10)], crs="EPSG:32633")
    g.to_file(tmp_path / "b.gpkg", layer="buildings", driver="GPKG")
    report = import_city([tmp_path / "b.gpkg"], tmp_path / "out")
    assert report["repaired"]["buildings"] == 1 and report["crs"] == "EPSG:32633"
    city = City.load(tmp_path / "out")
    assert len(city.buildings) == 2 and city.buildings.is_valid.all()
    assert city.buildings.geometry.area.iloc[0] == pytest.approx(50.0)
    assert "repaired buildings 1" in report.text()


@pytest.mark.slow
def test_contract_geopackage_taken_as_is(tmp_path, tiny_city):
    report = import_city([tiny_city / "city.gpkg", tiny_city / "dem.tif"], tmp_path / "again")
    city = City.load(tmp_path / "again")
    orig = City.load(tiny_city)
    assert city.crs == orig.crs and len(city.buildings) == len(orig.buildings)
    assert city.buildings["height_m"].tolist() == orig.buildings["height_m"].tolist()
    assert city.pois["id"].tolist() == ["A1"] and city.terrain is not None
    assert report["dem"]["resolution_m"] == 5.0
    np.testing.assert_allclose(city.terrain.sample([500_100.0], [3_400_050.0]),
                               orig.terrain.sample([500_100.0], [3_400_050.0]), atol=1e-3)


@pytest.mark.slow
def test_geographic_dem_is_reprojected_and_clipped(tmp_path):
    b = gpd.GeoDataFrame({"height_m": [10.0]}, geometry=[_square(LON, LAT, 0.002)], crs="EPSG:4326")
    b.to_file(tmp_path / "buildings.geojson", driver="GeoJSON")
    # A 0.02° DEM around the building, rising 1 m per 0.0001° of longitude (~8.5 m east-west).
    n = 200
    z = np.tile(100 + np.arange(n, dtype=np.float32), (n, 1))
    with rasterio.open(tmp_path / "dem.tif", "w", driver="GTiff", width=n, height=n, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(LON - 0.01, LAT + 0.01, 0.0001, 0.0001)) as dst:
        dst.write(z, 1)
    report = import_city([tmp_path / "buildings.geojson", tmp_path / "dem.tif"], tmp_path / "out")
    city = City.load(tmp_path / "out")
    assert city.crs.to_epsg() == 32650
    g = city.terrain.grid
    assert 5 < g.cell_m < 12 and report["dem"]["coverage"] == 1.0
    # clipped to the building + 50 m margin, not the whole 1.7 km DEM
    assert (g.bounds[2] - g.bounds[0]) < 400
    c = city.buildings.geometry.iloc[0].centroid
    lon_c = LON + 0.001
    expected = 100 + (lon_c - (LON - 0.01)) / 0.0001 - 0.5
    assert city.elevation_at(np.array([c.x]), np.array([c.y]))[0] == pytest.approx(expected, abs=1.5)


def test_dem_that_misses_the_city(tmp_path):
    b = gpd.GeoDataFrame({"height_m": [10.0]}, geometry=[_square(LON, LAT)], crs="EPSG:4326")
    b.to_file(tmp_path / "buildings.geojson", driver="GeoJSON")
    with rasterio.open(tmp_path / "far.tif", "w", driver="GTiff", width=10, height=10, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(LON + 1, LAT + 1, 0.001, 0.001)) as dst:
        dst.write(np.ones((10, 10), np.float32), 1)
    with pytest.raises(UserError, match="does not overlap"):
        import_city([tmp_path / "buildings.geojson", tmp_path / "far.tif"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_crs_option_and_points_as_pois(tmp_path):
    p = gpd.GeoDataFrame({"kind": ["hotel", "attraction"], "name": ["H", "A"]},
                         geometry=[Point(LON, LAT), Point(LON + 0.001, LAT)], crs="EPSG:4326")
    p.to_file(tmp_path / "spots.geojson", driver="GeoJSON")
    import_city([tmp_path / "spots.geojson"], tmp_path / "out", crs="EPSG:3857")
    city = City.load(tmp_path / "out")
    assert city.crs.to_epsg() == 3857 and city.pois["id"].tolist() == ["poi_1", "poi_2"]
    with pytest.raises(UserError, match="geographic"):
        import_city([tmp_path / "spots.geojson"], tmp_path / "out2", crs="EPSG:4326")
