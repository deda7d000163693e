"""Geometry repair shared by city loading and import: valid shapes of the kind a layer holds."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

FAMILY_TYPES = {"Polygon": (3, 6), "LineString": (1, 5), "Point": (0, 4)}  # shapely type ids


def keep_family(geoms: np.ndarray, family: str) -> np.ndarray:
    """Keep only the parts of each geometry of ``family`` (e.g. polygonal parts of a collection)."""
    if family not in FAMILY_TYPES:
        return geoms
    out = np.empty(len(geoms), dtype=object)
    single, multi = FAMILY_TYPES[family]
    for i, g in enumerate(geoms):
        if g is None or g.is_empty:
            out[i] = None
            continue
        tid = shapely.get_type_id(g)
        if tid in (single, multi):
            out[i] = g
            continue
        parts = [q for p in shapely.get_parts(g) for q in shapely.get_parts(p)
                 if shapely.get_type_id(q) in (single, multi)]
        parts = [q for p in parts for q in shapely.get_parts(p)]  # flatten multis
        if not parts:
            out[i] = None
        elif family == "Polygon":
            out[i] = shapely.unary_union(parts)
        elif len(parts) == 1:
            out[i] = parts[0]
        else:
            out[i] = shapely.multilinestrings(parts) if family == "LineString" else shapely.multipoints(parts)
    return out


def repair_geometries(gdf: gpd.GeoDataFrame, family: str) -> tuple[gpd.GeoDataFrame, int, int]:
    """make_valid invalid geometries, keep parts of the layer's family, drop empties.

    Returns the layer, how many geometries were repaired and how many features were dropped
    (null, empty, or nothing of the right kind left after repair).
    """
    geoms = gdf.geometry.to_numpy()
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    invalid = present & ~shapely.is_valid(geoms)
    repaired = int(invalid.sum())
    if repaired:
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    wrong = present & ~np.isin(shapely.get_type_id(geoms), FAMILY_TYPES.get(family, (0, 1, 2, 3, 4, 5, 6, 7)))
    if wrong.any():
        geoms = geoms.copy()
        geoms[wrong] = keep_family(geoms[wrong], family)
    if family == "Polygon":  # slivers from repair
        areas = shapely.area(geoms)
        geoms = np.where(np.nan_to_num(areas) > 0, geoms, None)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    out = gdf.copy()
    out[out.geometry.name] = gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs)
    out = out[keep].reset_index(drop=True)
    return out, repaired, int((~keep).sum())


def geometry_family(gdf: gpd.GeoDataFrame) -> str | None:
    """'Polygon', 'LineString' or 'Point' (the most common), None when the layer has no geometry."""
    types = gdf.geom_type.dropna()
    if not len(types):
        return None
    top = types.str.replace("Multi", "").value_counts().index[0]
    return top if top in FAMILY_TYPES else None


# -- vector files ---------------------------------------------------------------------------------
