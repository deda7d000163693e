"""The tourist model's import hook and words: hotels and attractions from OpenStreetMap.

POI kinds: ``hotel`` (tourism=hotel/hostel/guest_house/motel; capacity = the ``rooms`` tag, else
80 rooms; 1 desk, 120 s to check in), ``attraction`` (tourism=attraction/museum/viewpoint, any
historic=*; 200 persons, 2 gates, 20 s). ``station`` and ``coach_stop`` are the entry points a city
package may give by hand. Buildings tagged hotel are hotels; church, cathedral, chapel and museum
are attractions."""
from __future__ import annotations

from twin.core.model_contract import BuildingUse, CityImportHook, LayerSpec, PoiKind


def poi_kind(t: dict) -> str | None:
    tourism, historic = t.get("tourism") or "", t.get("historic") or ""
    if tourism in ("hotel", "hostel", "guest_house", "motel"):
        return "hotel"
    if tourism in ("attraction", "museum", "viewpoint") or (historic and historic != "no"):
        return "attraction"
    return None


# The POI columns the tourists read: capacity (persons, rooms for hotels), entry gates, service time.
CITY_LAYERS = (LayerSpec("pois", "vector", "capacity, gates and service time of each POI",
                         defaults=(("capacity", 0), ("gates", 1), ("service_time_s", 0.0)),
                         numbers=("capacity", "service_time_s"), counts=("capacity", "service_time_s", "gates")),)
BUILDING_USES = (
    BuildingUse("hotel", "hotels, hostels, guest houses", "#f0a35e", ("hotel",)),
    BuildingUse("attraction", "museums, temples, churches and other sights", "#ffd966",
                ("church", "cathedral", "museum", "chapel")),
)
POI_KINDS = (
    PoiKind("station", "a station, read as railway_station by the tourist model", "#8a3a70"),
    PoiKind("coach_stop", "where tour coaches set tourists down", "#a0522d"),
    PoiKind("attraction", "a sight tourists visit (capacity, entry gates, service time)", "#b03090", 200, 2, 20.0),
    PoiKind("hotel", "a hotel (capacity in rooms)", "#6040c0", 80, 1, 120.0, capacity_tag="rooms"),
)
IMPORT_HOOK = CityImportHook(osm_tags=("rooms", "beds"), poi_tags=("tourism", "historic"), poi_kind=poi_kind)
