"""One vocabulary of building uses and POI kinds: the platform's uses (twin.core.vocabulary) and the
models' declarations, merged by twin.declarations and spoken by the importer, the demo city, the
models and the view."""
import pyogrio

from tests.conftest import DEMO_CITY
from twin.declarations import building_uses, osm_building_uses, poi_kinds


def test_the_importer_maps_onto_the_vocabulary():
    from twin.gis.osm import poi_kind

    assert set(osm_building_uses().values()) <= set(building_uses())
    assert osm_building_uses()["train_station"] == "station" and osm_building_uses()["church"] == "attraction"
    tags = [{"railway": "station"}, {"station": "subway"}, {"highway": "bus_stop"}, {"amenity": "taxi"},
            {"tourism": "hotel"}, {"tourism": "museum"}, {"emergency": "assembly_point"}, {"amenity": "shelter"}]
    assert [poi_kind(t) for t in tags] == ["railway_station", "metro", "bus_stop", "taxi_rank", "hotel", "attraction",
                                          "shelter", None]  # amenity=shelter: a bus or picnic shelter
    assert poi_kinds()["hotel"].capacity_tag == "rooms" and poi_kinds()["railway_station"].capacity == 2000


def test_the_view_draws_every_use_and_kind_in_its_own_colour_and_nothing_else():
    from twin.view.scene import poi_colours, poi_kinds_order, use_code, use_codes, use_colours

    assert list(use_codes()) == list(use_colours()) == list(building_uses())
    assert list(building_uses())[-1] == "other"
    assert len(set(use_colours().values())) == len(use_colours())  # no two uses look alike
    assert use_code("hotel") != use_code("other") and use_code("Station") == use_codes()["station"]
    assert use_code("retail") == use_codes()["other"]  # a word outside the vocabulary
    assert poi_kinds_order() == tuple(poi_kinds())
    assert set(poi_colours()) == set(poi_kinds())


def test_each_model_declares_its_own_words():
    from agents.registry import get_model

    assert {u.name for u in get_model("station_dispersal").building_uses} == {"station"}
    assert {u.name for u in get_model("tourist_flow").building_uses} == {"hotel", "attraction"}
    assert {"shelter", "pump", "hospital", "school"} == {k.name for k in get_model("flood").poi_kinds}
    assert {"metro", "bus_stop", "taxi_rank", "railway_station"} == {k.name for k in get_model("station_dispersal").poi_kinds}


def test_the_models_read_the_vocabulary():
    from agents.flood.exposure import CRITICAL_KINDS, FLOOR_M2_PER_PERSON, NO_PEOPLE_USES

    assert set(FLOOR_M2_PER_PERSON) | set(NO_PEOPLE_USES) == set(building_uses())
    assert set(CRITICAL_KINDS) <= set(poi_kinds())


def test_the_demo_city_speaks_it():
    b = pyogrio.read_dataframe(DEMO_CITY / "city.gpkg", layer="buildings", read_geometry=False)
    p = pyogrio.read_dataframe(DEMO_CITY / "city.gpkg", layer="pois", read_geometry=False)
    assert set(b["use"]) <= set(building_uses()) and {"hotel", "attraction", "station"} <= set(b["use"])
    assert set(p["kind"]) <= set(poi_kinds())
