"""What the flood model got from a city (``citytwin city check``, twin.core.city_check): the terrain,
water bodies and their levels, drains and pumps, the people in each building, the shelters and
the station's entrances; which of them the data gives and which the model estimates."""
from __future__ import annotations

import numpy as np
import pandas as pd

from twin.core.city_check import CityCheck, feature_names, value_sources

from . import site
from .exposure import CRITICAL_KINDS


def check(check: CityCheck, city, params: dict | None = None) -> CityCheck:
    """``params`` (a run's): shelters are reported only when its residents evacuate."""
    if city.terrain is not None:
        g = city.terrain.grid
        check.add("taken", "ground elevation (DEM)", int(np.isfinite(g.values).sum()),
                  how=f"{g.shape[1]} × {g.shape[0]} cells of {g.cell_m:g} m")
    else:
        check.add("missing", "a terrain model", how="no dem.tif: add a DEM (a GeoTIFF of ground elevation) to "
                  "the import (`citytwin city import ... dem.tif`)", blocking=True)
    water = city.layer("water")
    if len(water) and city.terrain is not None:
        given = water["level_m"].notna().to_numpy() if "level_m" in water.columns else np.zeros(len(water), bool)
        check.add("taken", "water level (level_m)", int(given.sum()), feature_names(water[given]))
        check.add("estimated", "water level", int((~given).sum()), feature_names(water[~given]),
                  how="the lowest ground along its banks on the DEM; give a level_m column")
    b = city.buildings
    if len(b):
        pop = pd.to_numeric(b["population"], errors="coerce") if "population" in b.columns else \
            pd.Series(np.nan, index=b.index)
        given = (pop.notna() & (pop >= 0)).to_numpy()
        check.add("taken", "residents per building (population)", int(given.sum()))
        check.add("estimated", "residents per building", int((~given).sum()),
                  how="floor area (footprint × storeys) / floor area per person by use; give a population column")
        src = value_sources(city, "buildings", b, "height_m", "height_source")
        check.add("estimated", "building heights (storeys)", len(src["estimated"]),
                  how="from the number of levels; give height_m")
        check.add("defaulted", "building heights (storeys)", len(src["defaulted"]),
                  how="a default height; give height_m or building:levels")
    drains = city.layer("drains")
    check.add("found", "drain inlets", len(drains), feature_names(drains))
    pumps = city.pois_of("pump") if city.has("pois") else city.pois
    check.add("found", "pumps", len(pumps), feature_names(pumps))
    crit = city.pois_of(*CRITICAL_KINDS) if city.has("pois") else city.pois
    check.add("found", "critical places", len(crit), feature_names(crit))
    gates = city.layer("gates")
    entrances = site.station_entrances(city, gates)
    check.add("found", "station entrances (water runs in)", len(entrances), feature_names(gates, ids=entrances))
    if params is not None and not params.get("evacuate", True):
        return check
    shelters = site.shelters(city, b, lambda text: None)  # the run warns; here the lists below say it
    tagged = shelters[~shelters["estimated"].astype(bool)] if len(shelters) else shelters
    estimated = shelters[shelters["estimated"].astype(bool)] if len(shelters) else shelters
    check.add("found", "shelters", len(tagged), feature_names(tagged))
    if len(tagged):
        src = value_sources(city, "pois", city.pois_of("shelter"), "capacity")
        check.add("taken", "shelter capacity", len(src["taken"]), feature_names(tagged, ids=src["taken"]))
        check.add("defaulted", "shelter capacity", len(src["defaulted"]), feature_names(tagged, ids=src["defaulted"]),
                  how="a default; give each shelter its capacity (persons)")
    elif len(estimated):
        check.add("estimated", "shelters", len(estimated), feature_names(estimated),
                  how="schools or public buildings, one person per "
                  f"{site.SHELTER_M2_PER_PERSON:g} m² of floor; add POIs of kind shelter with a capacity")
    else:
        check.add("missing", "shelters", how="no shelters, schools or public buildings: evacuees are stranded; "
                  "add POIs of kind shelter with a capacity")
    return check
