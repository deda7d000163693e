"""What the registered models declare, merged: the one place the platform learns model knowledge.

The importer, the 3D view and the docs ask here for the building uses, POI kinds, import hooks and
layer views of every model in ``agents.registry`` (registry order; the first model to declare a
name wins), never for a model by its name; the layers a model defines are merged by the package
reader itself (``twin.core.city.layer_specs``). A model plugs in by its declarations
(docs/models.md, "What the platform reads from every model")."""
from __future__ import annotations

from functools import cache

from twin.core.model_contract import BuildingUse, CityImportHook, LayerView, PoiKind
from twin.core.vocabulary import BASE_BUILDING_USES, OTHER_USE

__all__ = ["model_classes", "building_uses", "poi_kinds", "import_hooks", "layer_views", "osm_building_uses"]


@cache
def model_classes() -> tuple:
    from agents.registry import MODELS, get_model

    return tuple(get_model(name) for name in MODELS)


def _merged(attr: str, base=()) -> dict:
    out = {d.name: d for d in base}
    for cls in model_classes():
        for d in getattr(cls, attr):
            out.setdefault(d.name, d)
    return out


@cache
def building_uses() -> dict[str, BuildingUse]:
    """Every building use, the platform's first, "other" last."""
    uses = _merged("building_uses", BASE_BUILDING_USES)
    uses[OTHER_USE] = uses.pop(OTHER_USE)
    return uses


@cache
def osm_building_uses() -> dict[str, str]:
    """OSM ``building=*`` value -> building use."""
    return {v: u.name for u in building_uses().values() for v in u.osm}


@cache
def poi_kinds() -> dict[str, PoiKind]:
    return _merged("poi_kinds")


@cache
def import_hooks() -> tuple[CityImportHook, ...]:
    return tuple(cls.import_hook for cls in model_classes() if cls.import_hook is not None)


@cache
def layer_views() -> dict[str, LayerView]:
    out: dict[str, LayerView] = {}
    for cls in model_classes():
        for v in cls.layer_views:
            out.setdefault(v.layer, v)
    return out
