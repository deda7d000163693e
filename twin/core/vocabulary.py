"""The platform's own words for a city package: the building uses every city has.

Models add their own uses and every point-of-interest kind (``CityModel.building_uses`` and
``poi_kinds``: the station's station buildings, the tourists' hotels and attractions, the flood's
shelters…); :mod:`twin.declarations` merges them with these. The importer maps source tags onto
the merged words, the demo-city generator writes them, the 3D view colours and lists them.
docs/city_package.md lists them; tests/twin/test_vocabulary.py checks that every part of the
platform speaks exactly the merged vocabulary."""
from __future__ import annotations

from .model_contract import BuildingUse

__all__ = ["BASE_BUILDING_USES", "OTHER_USE"]

OTHER_USE = "other"

# buildings.use: what a building is used for (the view's colours and legend; the models' people per m²)
BASE_BUILDING_USES: tuple[BuildingUse, ...] = (
    BuildingUse("residential", "homes, flats, dormitories", "#e8d6b0",
                ("apartments", "residential", "house", "detached", "terrace", "dormitory", "semidetached_house")),
    BuildingUse("commercial", "shops, markets, restaurants", "#6fa8dc", ("commercial", "retail", "supermarket", "kiosk")),
    BuildingUse("office", "offices and office towers", "#8e9bd6", ("office",)),
    BuildingUse("industrial", "factories and warehouses", "#a39e93", ("industrial", "warehouse")),
    BuildingUse("public", "schools, hospitals, town halls and other public buildings", "#e06666",
                ("public", "civic", "school", "hospital", "university", "government", "college", "kindergarten")),
    BuildingUse(OTHER_USE, "anything else (or unknown)", "#cfcfcf"),
)
