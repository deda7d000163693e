"""The tourist model's import rules (agents/tourism/city_import.py) on a few features built here:
what the Helsinki extract lacks (an unnamed viewpoint and guest house, a coach=yes bus stop, a
gallery in a block of flats, opening hours that do not parse, a sight open past midnight)."""
import geopandas as gpd
from shapely.geometry import Point, box

from agents.tourism.city_import import attraction_class, derive, poi_kind
from twin.core.city import City

CRS = "EPSG:32635"


def poi(pid, kind, name, tags, x, y, **extra):
    return {"id": pid, "kind": kind, "name": name, "capacity": {"attraction": 200, "hotel": 80}.get(kind, 0),
            "capacity_source": "default", "gates": 1, "service_time_s": 20.0, "osm_tags": tags,
            "area_m2": extra.pop("area_m2", None), "opening_hours": extra.pop("opening_hours", ""),
            "geometry": Point(x, y)}


def city():
    pois = gpd.GeoDataFrame([
        poi("n1", "attraction", "", "tourism=viewpoint", 500, 500),
        poi("n2", "hotel", "", "tourism=guest_house", 600, 600),
        poi("n3", "bus_stop", "Harbour", "highway=bus_stop;coach=yes", 700, 700),  # another model's kind
        poi("n4", "attraction", "Small Gallery", "tourism=gallery", 50, 50, opening_hours="Mo-Su 10:00-18:00"),
        poi("n5", "attraction", "Night Tower", "tourism=attraction", 800, 800, opening_hours="Fr 20:00-02:00"),
        poi("n6", "attraction", "Odd Museum", "tourism=museum", 900, 900, opening_hours="whenever we feel like it"),
        poi("n7", "attraction", "Old Soldier", "historic=memorial", 950, 950),
        poi("w1", "attraction", "Big Park", "leisure=park", 300, 300, area_m2=50_000.0),
    ], crs=CRS)
    buildings = gpd.GeoDataFrame({"id": ["b1"], "name": ["Flats"], "levels": [6.0], "height_m": [18.0],
                                  "height_source": ["levels"]}, geometry=[box(0, 0, 100, 40 + 60)], crs=CRS)
    return City("t", CRS, {"pois": pois, "buildings": buildings}, meta={"level_height_m": 3.0})


def test_the_rules_on_features_helsinki_lacks():
    out, notes = derive(city(), {"opening_date": "2026-06-19"})  # a Friday
    p = out.pois.set_index("id")
    assert p.loc["n1", "name"] == "Viewpoint" and p.loc["n1", "service_time_s"] == 0
    assert p.loc["n2", "name"] == "Guest house"
    assert p.loc["n3", "kind"] == "bus_stop" and p.loc["n3_coach", "kind"] == "coach_stop"
    assert p.loc["n3_coach", "name"] == "Harbour"
    # a gallery in a block of flats: the ground floor only (100 × 100 m² ÷ 10 m² per visitor)
    assert p.loc["n4", "capacity_source"] == "footprint" and p.loc["n4", "capacity"] == 1000
    assert (p.loc["n4", "open_s"], p.loc["n4", "close_s"]) == (36000, 64800)
    assert (p.loc["n5", "open_s"], p.loc["n5", "close_s"]) == (72000, 93600)  # past midnight
    assert p.loc["n6", "open_s"] != p.loc["n6", "open_s"]  # not understood: open all day ...
    assert any("not understood" in n and "Odd Museum" in n for n in notes)  # ... and said so
    assert "n7" not in p.index
    assert p.loc["w1", "capacity_source"] == "area" and p.loc["w1", "capacity"] == 2000
    # on a Monday the night tower is closed: nobody plans it
    monday, _ = derive(city(), {"opening_date": "2026-06-15"})
    assert monday.pois.set_index("id").loc["n5", "popularity"] == 0


def test_classes_and_kinds():
    assert attraction_class({"historic": "castle"}) == "castle"
    assert attraction_class({"historic": "tomb"}) == "grave"
    assert attraction_class({"tourism": "artwork"}) == "artwork"
    assert attraction_class({"leisure": "park"}) is None  # no name: a patch of green
    assert attraction_class({"leisure": "park", "name": "Esplanadi"}) == "park"
    assert attraction_class({"tourism": "theme_park"}) == "theme_park"
    assert poi_kind({"amenity": "bus_station"}) == "coach_stop"
    assert poi_kind({"public_transport": "platform", "coach": "yes"}) == "coach_stop"
    assert poi_kind({"tourism": "information"}) is None
