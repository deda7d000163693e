"""One vocabulary of building uses and POI kinds (twin.core.vocabulary), spoken by the importer, the
demo city, the models and the view."""
import pyogrio

from tests.conftest import DEMO_CITY
from twin.core.vocabulary import BUILDING_USES, POI_KINDS


def test_the_importer_maps_onto_the_vocabulary():
    from twin.city_import import CONTRACT_USES
    from twin.gis_osm import BUILDING_USE, POI_DEFAULTS, poi_kind

    assert CONTRACT_USES == set(BUILDING_USES)
    assert set(BUILDING_USE.values()) <= set(BUILDING_USES)
    assert set(POI_DEFAULTS) <= set(POI_KINDS)
    tags = [{"railway": "station"}, {"station": "subway"}, {"highway": "bus_stop"}, {"amenity": "taxi"},
            {"tourism": "hotel"}, {"tourism": "museum"}, {"emergency": "assembly_point"}]
    assert {poi_kind(t) for t in tags} <= set(POI_KINDS)


def test_the_view_draws_every_use_and_kind_in_its_own_colour_and_nothing_else():
    from twin.scene import POI_KINDS_ORDER, USE_CODES, USE_COLOURS, use_code

    assert list(USE_CODES) == list(USE_COLOURS) == list(BUILDING_USES)
    assert len(set(USE_COLOURS.values())) == len(USE_COLOURS)  # no two uses look alike
    assert use_code("hotel") != use_code("other") and use_code("Station") == USE_CODES["station"]
    assert use_code("retail") == USE_CODES["other"]  # a word outside the vocabulary
    assert POI_KINDS_ORDER == tuple(POI_KINDS)


def test_the_models_read_the_vocabulary():
    from agents.flood.exposure import CRITICAL_KINDS, FLOOR_M2_PER_PERSON, NO_PEOPLE_USES

    assert set(FLOOR_M2_PER_PERSON) | set(NO_PEOPLE_USES) == set(BUILDING_USES)
    assert set(CRITICAL_KINDS) <= set(POI_KINDS)


def test_the_demo_city_speaks_it():
    b = pyogrio.read_dataframe(DEMO_CITY / "city.gpkg", layer="buildings", read_geometry=False)
    p = pyogrio.read_dataframe(DEMO_CITY / "city.gpkg", layer="pois", read_geometry=False)
    assert set(b["use"]) <= set(BUILDING_USES) and {"hotel", "attraction", "station"} <= set(b["use"])
    assert set(p["kind"]) <= set(POI_KINDS)
