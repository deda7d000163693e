"""OpenStreetMap (.osm.pbf / .osm) to the contract layers of a city package.

Read with GDAL's OSM driver (through pyogrio) and an ``osmconf.ini`` of our own, written to a
temporary file, that turns every tag we use into a column (``height``, ``building:levels``,
``railway`` …) instead of leaving it in the ``other_tags`` text. The tag mapping itself (which
features become buildings, roads, POIs, walkable areas and the models' area layers, and the
defaults) is documented at the top of :mod:`twin.gis.city_import`.
"""
from __future__ import annotations

import math
import re
import tempfile
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj

from twin.core.city import column_defaults
from twin.core.errors import UserError
from twin.core.vocabulary import OTHER_USE
from twin.core.osm_values import parse_height_m, parse_level_list, parse_levels, single_level  # noqa: F401 (the importer's API)

# Every tag the importer itself reads, on every OSM layer; the models' import hooks add theirs
# (osm_tags(): these first, then each model's in registry order).
BASE_OSM_TAGS = (
    "name", "building", "building:levels", "height", "amenity", "railway", "public_transport", "highway",
    "maxspeed", "place", "area", "capacity", "landuse", "layer", "tunnel",
    "bridge", "indoor", "level", "lanes", "foot",
)


def osm_tags() -> tuple[str, ...]:
    from twin.declarations import import_hooks

    tags = list(BASE_OSM_TAGS)
    for hook in import_hooks():
        tags += [*hook.osm_tags, *hook.poi_tags, *hook.road_columns, *hook.poi_columns]
    for area_tags, columns in osm_area_layers().values():
        tags += [*(t.partition("=")[0] for t in area_tags), *columns]
    return tuple(dict.fromkeys(tags))


def osm_area_layers() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """{layer: (tags, columns)} of the OSM areas the models' import hooks declare
    (``CityImportHook.osm_areas``, registry order; the declarations of one layer are joined)."""
    from twin.declarations import import_hooks

    out: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for hook in import_hooks():
        for a in hook.osm_areas:
            tags, columns = out.get(a.layer, ((), ()))
            out[a.layer] = (tuple(dict.fromkeys(tags + a.tags)), tuple(dict.fromkeys(columns + a.columns)))
    return out


def has_any_tag(areas: pd.DataFrame, tags) -> pd.Series:
    """Which rows of OSM features (one column per tag) carry one of ``tags`` (``key=value`` or ``key``: any value)."""
    hit = pd.Series(False, index=areas.index)
    for t in tags:
        key, _, value = t.partition("=")
        if key in areas.columns:
            hit |= (areas[key] == value) if value else areas[key].notna()
    return hit


# Closed ways with these tags are areas (GDAL also honours area=yes); the models' walkable areas and
# area layers add theirs.
CLOSED_WAYS_ARE_POLYGONS = (
    "aeroway,amenity,boundary,building,craft,geological,historic,landuse,leisure,military,natural,"
    "office,place,shop,sport,tourism,area:highway"
)


def walkable_layer() -> str:
    """The layer the OSM areas people walk on go to (``CityImportHook.walkable_layer``, the first
    hook that names one), or "" (no model keeps them)."""
    from twin.declarations import import_hooks

    return next((hook.walkable_layer for hook in import_hooks() if hook.walkable_layer), "")


def walkable_area_tags() -> tuple[tuple[str, str, str], ...]:
    """(tag, value, kind) of the walkable areas the models' import hooks declare, in registry order."""
    from twin.declarations import import_hooks

    return tuple(dict.fromkeys(t for hook in import_hooks() for t in hook.walkable_areas))


def closed_ways_are_polygons() -> str:
    declared = [*(f"{k}={v}" for k, v, _ in walkable_area_tags()),
                *(t for tags, _ in osm_area_layers().values() for t in tags)]
    return ",".join([CLOSED_WAYS_ARE_POLYGONS, *dict.fromkeys(declared)])

_LAYER_SECTION = """[{name}]
osm_id=yes
osm_version=no
osm_timestamp=no
osm_uid=no
osm_user=no
osm_changeset=no
attributes={attrs}
other_tags=no
ignore=created_by,converted_by,source,time,ele,note,todo,openGeoDB:,fixme,FIXME
"""


def osmconf_text() -> str:
    attrs = ",".join(osm_tags())
    parts = [f"[general]\nclosed_ways_are_polygons={closed_ways_are_polygons()}\n"]
    for name in ("points", "lines", "multipolygons", "multilinestrings", "other_relations"):
        parts.append(_LAYER_SECTION.format(name=name, attrs=attrs))
    return "\n".join(parts)


def read_osm(path: Path) -> dict[str, gpd.GeoDataFrame]:
    """The ``points``, ``lines`` and ``multipolygons`` layers with one column per tag, EPSG:4326."""
    import pyogrio

    with tempfile.TemporaryDirectory(prefix="citytwin-osm-") as tmp:
        conf = Path(tmp) / "osmconf.ini"
        conf.write_text(osmconf_text(), encoding="utf-8")
        out = {}
        tags = osm_tags()
        for layer in ("points", "lines", "multipolygons"):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # "Non closed ring detected" etc.
                    gdf = pyogrio.read_dataframe(path, layer=layer, on_invalid="fix", CONFIG_FILE=str(conf))
            except Exception as e:
                raise UserError(
                    f"{path}: cannot read it as OpenStreetMap data ({_short(e)}). Download the extract again "
                    "(e.g. from download.geofabrik.de or with osmium extract) and check it opens in QGIS."
                ) from None
            # GDAL writes "building:levels" as the field "building_levels".
            gdf = gdf.rename(columns={t.replace(":", "_"): t for t in tags if ":" in t})
            for tag in tags:
                if tag not in gdf.columns:
                    gdf[tag] = None
            out[layer] = gdf
    if not any(len(g) for g in out.values()):
        raise UserError(f"{path}: the OpenStreetMap file holds no features. Check the extract covers your area.")
    return out


def _short(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__


# -- value parsing --------------------------------------------------------------------------------
_NUM = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


MPH = 1.609344
SPECIAL_SPEEDS = {"walk": 5.0, "living_street": 20.0, "urban": 50.0, "rural": 80.0, "motorway": 120.0}


def parse_maxspeed(value) -> float | None:
    """'50', '30 mph', 'FI:urban', 'walk' → km/h; None when absent or 'none'/'signals'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip().lower()
    m = _NUM.search(s)
    if m:
        v = float(m.group(0).replace(",", "."))
        if "mph" in s:
            v *= MPH
        return v if 0 < v <= 200 else None
    for key, v in SPECIAL_SPEEDS.items():
        if s.endswith(key):
            return v
    return None


# -- classification -------------------------------------------------------------------------------
# Speed (km/h) of a road without maxspeed, by OSM highway value ("_link" roads as their road).
DEFAULT_SPEED_KMH = {
    "motorway": 100.0, "trunk": 80.0, "primary": 50.0, "secondary": 50.0, "tertiary": 40.0,
    "unclassified": 30.0, "residential": 30.0, "road": 30.0, "living_street": 20.0, "service": 20.0,
    "busway": 40.0, "track": 20.0, "cycleway": 20.0, "pedestrian": 5.0, "footway": 5.0, "path": 5.0,
    "steps": 3.0, "corridor": 5.0, "bridleway": 5.0,
}
FALLBACK_SPEED_KMH = 30.0


def default_speed_kmh(kind: str) -> float:
    kind = str(kind).removesuffix("_link")
    if kind not in DEFAULT_SPEED_KMH and any(t == "highway" and v == kind for t, v, _ in walkable_area_tags()):
        return DEFAULT_SPEED_KMH["pedestrian"]  # a walkable area's edge drawn as a line
    return DEFAULT_SPEED_KMH.get(kind, FALLBACK_SPEED_KMH)


def poi_kind(t: dict) -> str | None:
    """The POI kind of a feature's tags, or None: the models' import hooks are asked in registry
    order and the first kind given wins."""
    from twin.declarations import import_hooks

    for hook in import_hooks():
        if hook.poi_kind is not None and (kind := hook.poi_kind(t)) is not None:
            return kind
    return None


def _osm_ids(gdf: gpd.GeoDataFrame, layer: str) -> pd.Series:
    if layer == "multipolygons":
        way = gdf.get("osm_way_id")
        rel = gdf.get("osm_id")
        ids = []
        for w, r in zip(way if way is not None else [None] * len(gdf), rel if rel is not None else [None] * len(gdf)):
            ids.append(f"osm_way_{w}" if w not in (None, "") and not pd.isna(w) else f"osm_relation_{r}")
        return pd.Series(ids, index=gdf.index)
    prefix = "osm_node_" if layer == "points" else "osm_way_"
    return prefix + gdf["osm_id"].astype(str)


def _records(gdf) -> list[dict]:
    cols = [c for c in osm_tags() if c in gdf.columns]
    df = gdf[cols].astype(object).where(gdf[cols].notna(), None)
    return df.to_dict("records")


def osm_layers(raw: dict[str, gpd.GeoDataFrame], level_height_m: float, default_height_m: float) -> dict[str, gpd.GeoDataFrame]:
    """Contract layers (in EPSG:4326) from the raw OSM driver layers."""
    from twin.declarations import import_hooks, osm_building_uses, poi_kinds

    pts, lines, polys = raw["points"], raw["lines"], raw["multipolygons"]
    hooks = import_hooks()
    layers: dict[str, gpd.GeoDataFrame] = {}
    crs = polys.crs or lines.crs or pts.crs or "EPSG:4326"

    # Buildings
    b = polys[polys["building"].notna() & (polys["building"] != "no")]
    heights, sources, uses = [], [], []
    for h, lv, use in zip(b["height"], b["building:levels"], b["building"]):
        hm = parse_height_m(h)
        if hm is not None:
            heights.append(hm), sources.append("height")
        elif (n := parse_levels(lv)) is not None:
            heights.append(n * level_height_m), sources.append("levels")
        else:
            heights.append(default_height_m), sources.append("default")
        uses.append(osm_building_uses().get(str(use), OTHER_USE))
    layers["buildings"] = gpd.GeoDataFrame(
        {"id": _osm_ids(b, "multipolygons").to_numpy(), "name": b["name"].fillna("").to_numpy(),
         "use": uses, "osm_building": b["building"].to_numpy(), "height_m": np.asarray(heights, float),
         "height_source": sources, "levels": [parse_levels(v) for v in b["building:levels"]]},
        geometry=b.geometry.to_numpy(), crs=crs)

    # Roads
    r = lines[lines["highway"].notna()]
    kinds = r["highway"].astype(str).to_numpy()
    speeds = [parse_maxspeed(v) for v in r["maxspeed"]]
    layers["roads"] = gpd.GeoDataFrame(
        {"id": _osm_ids(r, "lines").to_numpy(), "name": r["name"].fillna("").to_numpy(), "kind": kinds,
         "speed_kmh": [s if s is not None else default_speed_kmh(k) for k, s in zip(kinds, speeds)],
         "speed_source": ["maxspeed" if s is not None else "default" for s in speeds],
         "tunnel": r["tunnel"].fillna("").to_numpy(), "bridge": r["bridge"].fillna("").to_numpy(),
         "layer": r["layer"].fillna("").to_numpy(), "level": r["level"].fillna("").to_numpy(),
         # the tags the models' import hooks keep on the roads (what a model reads of a road)
         **{t: r[t].fillna("").to_numpy() for t in dict.fromkeys(c for h in hooks for c in h.road_columns)
            if t not in ("level", "layer")}},
        geometry=r.geometry.to_numpy(), crs=crs)

    # POIs: nodes, and the centroid (a point inside) of areas
    rows, geoms = [], []
    kinds = poi_kinds()
    deciding = tuple(dict.fromkeys(t for h in hooks for t in h.poi_tags))  # kept in osm_tags
    base = ("id", "kind", "name", "capacity", "capacity_source", "osm_tags", "area_m2")
    # the POI columns the models declare, with their defaults; a kind's own defaults override them
    declared = {c: v for c, v in column_defaults("pois").items() if c not in base}
    kept = tuple(dict.fromkeys(c for h in hooks for c in h.poi_columns if c not in base and c not in declared))
    geod = pyproj.Geod(ellps="WGS84")
    for layer, gdf in (("points", pts), ("multipolygons", polys)):
        if not len(gdf):
            continue
        ids = _osm_ids(gdf, layer).to_numpy()
        recs = _records(gdf)
        geo = gdf.geometry.to_numpy()
        for i, t in enumerate(recs):
            kind = poi_kind(t)
            if kind is None or geo[i] is None or geo[i].is_empty:
                continue
            pk = kinds[kind]
            capacity = parse_levels(t.get(pk.capacity_tag)) if t.get(pk.capacity_tag) else None
            rows.append({"id": ids[i], "kind": kind, "name": t.get("name") or "",
                         "capacity": int(capacity) if capacity else pk.capacity,
                         "capacity_source": "tag" if capacity else "default",
                         **declared, **dict(pk.defaults),
                         "osm_tags": ";".join(f"{k}={t[k]}" for k in deciding if t.get(k)),
                         # a POI drawn as an area keeps its size (ellipsoidal m²): the point loses it
                         "area_m2": abs(geod.geometry_area_perimeter(geo[i])[0]) if layer == "multipolygons" else None,
                         **{c: str(t[c]) if t.get(c) is not None else "" for c in kept}})
            geoms.append(geo[i] if layer == "points" else geo[i].point_on_surface())
    cols = [*base, *declared, *kept]
    layers["pois"] = gpd.GeoDataFrame(pd.DataFrame(rows, columns=cols), geometry=geoms, crs=crs)

    # The areas people walk on, for the model that keeps them
    walk_layer = walkable_layer()
    ped = ((polys["highway"] == "pedestrian") | (polys["place"] == "square") | (polys["amenity"] == "marketplace"))
    kind = pd.Series("", index=polys.index, dtype=object)
    for tag, value, k in walkable_area_tags():  # the models' walkable areas (first declared wins)
        if tag in polys.columns:
            kind[(kind == "") & (polys[tag] == value)] = k
    kind[(kind == "") & ped] = "pedestrian"
    wk = polys[(kind != "") & polys["building"].isna()]
    if walk_layer:
        layers[walk_layer] = gpd.GeoDataFrame(
            {"id": _osm_ids(wk, "multipolygons").to_numpy(), "name": wk["name"].fillna("").to_numpy(),
             "kind": kind[wk.index].to_numpy(),
             "layer": pd.to_numeric(wk["layer"], errors="coerce").fillna(0).to_numpy(),
             # the floor: a single whole-number level tag, else 0 (the tag as written in osm_level)
             "level": [single_level(v) for v in wk["level"]], "osm_level": wk["level"].fillna("").to_numpy()},
            geometry=wk.geometry.to_numpy(), crs=crs)

    # The models' area layers (CityImportHook.osm_areas): the OSM id and the declared tags as text
    for name, (tags, columns) in osm_area_layers().items():
        a = polys[has_any_tag(polys, tags)]
        text = {c: (a[c].fillna("").astype(str) if c in a.columns else pd.Series("", index=a.index)).to_numpy()
                for c in columns if c != "id"}
        layers[name] = gpd.GeoDataFrame({"id": _osm_ids(a, "multipolygons").to_numpy(), **text},
                                        geometry=a.geometry.to_numpy(), crs=crs)
    return layers
