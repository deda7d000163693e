"""Model names in scenario files → model classes, imported only when asked for.

The runner, the CLI and the GUI find a model by the name a scenario gives, never by importing it
statically, so adding a model is one line here.
"""
from __future__ import annotations

import importlib
import os

from twin.core.errors import UserError, nearest

MODELS: dict[str, str] = {
    "station_dispersal": "agents.station.model:StationDispersalModel",
    "tourist_flow": "agents.tourism.model:TouristFlowModel",
    "flood": "agents.flood.model:FloodModel",
}

# Plug-in models outside this package: CITYTWIN_MODELS="name=module:Class,other=module:Class".
for _item in filter(None, os.environ.get("CITYTWIN_MODELS", "").split(",")):
    _name, _, _target = _item.partition("=")
    MODELS[_name.strip()] = _target.strip()


def model_names() -> list[str]:
    return sorted(MODELS)


def get_model(name: str):
    if name not in MODELS:
        raise UserError(
            f'unknown model "{name}"{nearest(name, MODELS)}; the models are: {", ".join(model_names())}.'
        )
    module, _, cls = MODELS[name].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        raise UserError(f'model "{name}": cannot load {MODELS[name]} ({e}). Check the module and class '
                        "(a plug-in model: the CITYTWIN_MODELS environment variable, name=module:Class).") from None


def declared_city_layers() -> list:
    """Every registered model's ``city_layers`` (``LayerSpec``), in registry order: the package
    reader (``twin.core.city.layer_specs``) merges them with the platform's layers."""
    return [spec for name in MODELS for spec in get_model(name).city_layers]
