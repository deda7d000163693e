"""The flood model's import hook and words: water bodies and shelters from OpenStreetMap, and the
critical places (pumps, hospitals, schools) a city package may list.

Layer ``water`` (CONTRACT §1): water bodies, Polygon with ``name`` (optional ``level_m``, the level
the body starts at; else its lowest bank). From OpenStreetMap: areas with natural=water,
waterway=riverbank or any water=* (ids ``osm_way_<id>`` / ``osm_relation_<id>``); from other GIS
data: a layer named ``water``, ``waterbodies``, ``lakes``, ``rivers``…; features without ids get
``W00001``… The 3D view drapes them in blue just above the terrain.

POI kind ``shelter``: emergency=assembly_point (100 persons, 1 gate, 5 s)."""
from __future__ import annotations

from twin.core.model_contract import CityImportHook, LayerSpec, LayerView, OsmAreas, PoiKind


def poi_kind(t: dict) -> str | None:
    if (t.get("emergency") or "") == "assembly_point":  # amenity=shelter is a bus or picnic shelter, not an evacuation site
        return "shelter"
    return None


WATER = LayerSpec("water", "vector", "water bodies: Polygon with name (optional level_m, the level it starts at)",
                  "Polygon", aliases=("water", "waterbodies", "waterareas", "lakes", "rivers", "waterpolygons"),
                  defaults=(("name", ""),), generated_ids="W")
CITY_LAYERS = (
    WATER,
    # the station's entrances (gates of kind exit or entrance), where water runs in: the same layer
    # the station model defines, declared here too so that the flood reads it without the station
    LayerSpec("gates", "vector", "station entrances: id, kind (exit or entrance)", "any", ("id",),
              aliases=("gates", "gate", "exits", "entrances"), defaults=(("kind", "exit"), ("open", True), ("level", 0)),
              levels=True, ids_required=True),
    LayerSpec("drains", "vector", "drain inlets: Point with id and capacity_m3s", "Point", ("id", "capacity_m3s"),
              aliases=("drains", "drain", "inlets", "manholes", "gullies"), id_prefix="drain",
              numbers=("capacity_m3s",), counts=("capacity_m3s",)),
    # shelters' capacity (persons) and pumps' capacity_m3s on the POIs; residents per building
    LayerSpec("pois", "vector", "capacity of shelters and pumps", defaults=(("capacity", 0),),
              numbers=("capacity", "capacity_m3s"), counts=("capacity", "capacity_m3s")),
    LayerSpec("buildings", "vector", "residents per building", counts=("population",)),
)
POI_KINDS = (
    PoiKind("shelter", "a flood shelter (capacity in persons)", "#10a050", 100, defaults=(("service_time_s", 5.0),)),
    PoiKind("pump", "a pumping station (capacity_m3s)", "#2080c0"),
    PoiKind("hospital", "a hospital (a critical place in a flood)", "#c00020"),
    PoiKind("school", "a school (a critical place in a flood)", "#508030"),
)
# Water bodies in the view: filled, a little above the terrain (a flood's depth surface covers them).
LAYER_VIEWS = (LayerView("water", "Water", colours=("#5b9bd5",), legend=("water",), drawing="area", lift_m=0.25),)
IMPORT_HOOK = CityImportHook(osm_tags=("emergency",), poi_tags=("emergency",), poi_kind=poi_kind,
                             osm_areas=(OsmAreas("water", ("natural=water", "waterway=riverbank", "water")),))
