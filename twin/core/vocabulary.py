"""The words a city package uses, in one place: building uses and point-of-interest kinds.

The importer maps source tags onto these (twin/gis/osm.py, twin/gis/city_import.py), the demo-city
generator writes them, the models read them and the 3D view colours and lists them (twin/view/scene.py,
twin/view/render.py). docs/city_package.md lists them; tests/twin/test_vocabulary.py checks that every
part of the platform speaks exactly this vocabulary (no use drawn as "other" because the view does
not know it, no legend entry that nothing produces)."""
from __future__ import annotations

__all__ = ["BUILDING_USES", "POI_KINDS"]

# buildings.use: what a building is used for (the view's colours and legend; flood exposure: people per m²)
BUILDING_USES: dict[str, str] = {
    "residential": "homes, flats, dormitories",
    "commercial": "shops, markets, restaurants",
    "office": "offices and office towers",
    "station": "railway and bus station buildings",
    "hotel": "hotels, hostels, guest houses",
    "attraction": "museums, temples, churches and other sights",
    "industrial": "factories and warehouses",
    "public": "schools, hospitals, town halls and other public buildings",
    "other": "anything else (or unknown)",
}

# pois.kind: what a point of interest is (which models read it: docs/city_package.md)
POI_KINDS: dict[str, str] = {
    "railway_station": "a railway station (tourists arrive by train; flood: a critical place)",
    "station": "a station, read as railway_station by the tourist model",
    "metro": "a metro entrance (station crowds leave by it)",
    "bus_stop": "a bus stop or bus terminal bay",
    "taxi_rank": "a taxi rank",
    "coach_stop": "where tour coaches set tourists down",
    "attraction": "a sight tourists visit (capacity, entry gates, service time)",
    "hotel": "a hotel (capacity in rooms)",
    "shelter": "a flood shelter (capacity in persons)",
    "pump": "a pumping station (capacity_m3s)",
    "hospital": "a hospital (a critical place in a flood)",
    "school": "a school (a critical place in a flood)",
}
