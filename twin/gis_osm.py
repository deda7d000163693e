"""OpenStreetMap (.osm.pbf / .osm) to the contract layers of a city package.

Read with GDAL's OSM driver (through pyogrio) and an ``osmconf.ini`` of our own, written to a
temporary file, that turns every tag we use into a column (``height``, ``building:levels``,
``railway`` …) instead of leaving it in the ``other_tags`` text. The tag mapping itself (which
features become buildings, roads, POIs, water and walkable areas, and the defaults) is documented
at the top of :mod:`twin.city_import`.
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

from .core.errors import UserError

# Every tag the import reads, on every OSM layer.
OSM_TAGS = (
    "name", "building", "building:levels", "height", "amenity", "tourism", "historic", "railway",
    "public_transport", "station", "subway", "train", "bus", "highway", "maxspeed", "emergency",
    "natural", "waterway", "water", "place", "area", "rooms", "beds", "capacity", "landuse", "layer",
    "tunnel", "bridge", "indoor", "level", "lanes", "width", "foot", "conveying", "incline",
)
# Closed ways with these tags are areas (GDAL also honours area=yes).
CLOSED_WAYS_ARE_POLYGONS = (
    "aeroway,amenity,boundary,building,craft,geological,historic,landuse,leisure,military,natural,"
    "office,place,shop,sport,tourism,water,highway=platform,public_transport=platform,railway=platform,"
    "waterway=riverbank,area:highway"
)

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
    attrs = ",".join(OSM_TAGS)
    parts = [f"[general]\nclosed_ways_are_polygons={CLOSED_WAYS_ARE_POLYGONS}\n"]
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
            gdf = gdf.rename(columns={t.replace(":", "_"): t for t in OSM_TAGS if ":" in t})
            for tag in OSM_TAGS:
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


def parse_height_m(value) -> float | None:
    """'12', '12.5 m', '12,5', '40\\'' (feet), '40 ft', '10\\'6"' → metres; None when unusable."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip().lower()
    if not s:
        return None
    feet_inches = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:'|ft|feet)\s*(?:(\d+(?:\.\d+)?)\s*(?:\"|in|inch(?:es)?))?", s)
    if feet_inches:
        ft = float(feet_inches.group(1)) + float(feet_inches.group(2) or 0) / 12.0
        h = ft * 0.3048
    else:
        m = _NUM.search(s)
        if not m:
            return None
        h = float(m.group(0).replace(",", "."))
        if re.search(r"\d\s*(cm)\b", s):
            h /= 100.0
    return h if 0.0 < h < 1000.0 else None


def parse_levels(value) -> float | None:
    """'6', '5;6', '2-3', '4.5' → storeys (the largest number given); None when unusable."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    nums = [float(n.replace(",", ".")) for n in re.findall(r"\d+(?:[.,]\d+)?", str(value))]
    nums = [n for n in nums if 0 < n < 250]
    return max(nums) if nums else None


MPH = 1.609344
SPECIAL_SPEEDS = {"walk": 5.0, "living_street": 20.0, "urban": 50.0, "rural": 80.0, "motorway": 120.0}


def parse_level_list(value) -> list[float]:
    """OSM ``level`` values: "1", "0;1", "-1;0", "0-2" (a range) -> the levels, [] when absent."""
    text = str(value or "").strip()
    if not text or text.lower() == "nan":
        return []
    out = []
    for part in text.replace(",", ";").split(";"):
        part = part.strip()
        lo, sep, hi = part[1:].partition("-")
        try:
            if sep:  # a range "0-2" (the leading sign belongs to the first number)
                out += [float(part[0] + lo), float(hi)]
            else:
                out.append(float(part))
        except ValueError:
            return []
    return out


def single_level(value) -> int:
    """The floor of an area: its level tag when that is one whole number, else 0."""
    levels = parse_level_list(value)
    return int(levels[0]) if len(levels) == 1 and levels[0] == int(levels[0]) else 0


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
BUILDING_USE = {
    "apartments": "residential", "residential": "residential", "house": "residential", "detached": "residential",
    "terrace": "residential", "dormitory": "residential", "semidetached_house": "residential",
    "commercial": "commercial", "retail": "commercial", "supermarket": "commercial", "kiosk": "commercial",
    "office": "office",
    "train_station": "station", "transportation": "station",
    "hotel": "hotel",
    "church": "attraction", "cathedral": "attraction", "museum": "attraction", "chapel": "attraction",
    "industrial": "industrial", "warehouse": "industrial",
    "public": "public", "civic": "public", "school": "public", "hospital": "public", "university": "public",
    "government": "public", "college": "public", "kindergarten": "public",
}

# Speed (km/h) of a road without maxspeed, by OSM highway value ("_link" roads as their road).
DEFAULT_SPEED_KMH = {
    "motorway": 100.0, "trunk": 80.0, "primary": 50.0, "secondary": 50.0, "tertiary": 40.0,
    "unclassified": 30.0, "residential": 30.0, "road": 30.0, "living_street": 20.0, "service": 20.0,
    "busway": 40.0, "track": 20.0, "cycleway": 20.0, "pedestrian": 5.0, "footway": 5.0, "path": 5.0,
    "steps": 3.0, "corridor": 5.0, "platform": 5.0, "bridleway": 5.0,
}
FALLBACK_SPEED_KMH = 30.0


def default_speed_kmh(kind: str) -> float:
    return DEFAULT_SPEED_KMH.get(str(kind).removesuffix("_link"), FALLBACK_SPEED_KMH)


# POI defaults: capacity (persons, or rooms for hotels), entry gates, service time per person (s).
POI_DEFAULTS = {
    "railway_station": (2000, 4, 0.0),
    "metro": (1000, 2, 0.0),
    "bus_stop": (60, 1, 0.0),
    "taxi_rank": (10, 1, 60.0),
    "hotel": (80, 1, 120.0),
    "attraction": (200, 2, 20.0),
    "shelter": (100, 1, 5.0),
}


def poi_kind(t: dict) -> str | None:
    """The contract POI kind of a feature's tags, or None (first matching rule wins)."""
    g = lambda k: (t.get(k) or "")  # noqa: E731
    railway, pt, amenity, tourism = g("railway"), g("public_transport"), g("amenity"), g("tourism")
    if g("station") == "subway" or railway == "subway_entrance" or (railway == "station" and g("subway") == "yes"):
        return "metro"
    if railway in ("station", "halt") or (pt == "station" and (g("train") == "yes" or railway)):
        return "railway_station"
    if g("highway") == "bus_stop" or amenity == "bus_station" or (pt == "station" and g("bus") == "yes"):
        return "bus_stop"
    if pt == "station":
        return "railway_station"
    if amenity == "taxi":
        return "taxi_rank"
    if tourism in ("hotel", "hostel", "guest_house", "motel"):
        return "hotel"
    if tourism in ("attraction", "museum", "viewpoint") or (g("historic") and g("historic") != "no"):
        return "attraction"
    if g("emergency") == "assembly_point":  # amenity=shelter is a bus or picnic shelter, not an evacuation site
        return "shelter"
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
    cols = [c for c in OSM_TAGS if c in gdf.columns]
    df = gdf[cols].astype(object).where(gdf[cols].notna(), None)
    return df.to_dict("records")


def osm_layers(raw: dict[str, gpd.GeoDataFrame], level_height_m: float, default_height_m: float) -> dict[str, gpd.GeoDataFrame]:
    """Contract layers (in EPSG:4326) from the raw OSM driver layers."""
    pts, lines, polys = raw["points"], raw["lines"], raw["multipolygons"]
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
        uses.append(BUILDING_USE.get(str(use), "other"))
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
         "layer": r["layer"].fillna("").to_numpy(),
         # steps and escalators between floors (the station crowd model's connectors)
         "level": r["level"].fillna("").to_numpy(), "incline": r["incline"].fillna("").to_numpy(),
         "conveying": r["conveying"].fillna("").to_numpy(), "width": r["width"].fillna("").to_numpy()},
        geometry=r.geometry.to_numpy(), crs=crs)

    # POIs: nodes, and the centroid (a point inside) of areas
    rows, geoms = [], []
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
            cap, gates, service = POI_DEFAULTS[kind]
            capacity = None
            if kind == "hotel":
                capacity = parse_levels(t.get("rooms"))
            elif t.get("capacity"):
                capacity = parse_levels(t.get("capacity"))
            rows.append({"id": ids[i], "kind": kind, "name": t.get("name") or "",
                         "capacity": int(capacity) if capacity else cap,
                         "capacity_source": "tag" if capacity else "default",
                         "gates": gates, "service_time_s": float(service),
                         "osm_tags": ";".join(f"{k}={t[k]}" for k in ("railway", "public_transport", "station",
                                                                        "highway", "amenity", "tourism",
                                                                        "historic", "emergency") if t.get(k))})
            geoms.append(geo[i] if layer == "points" else geo[i].point_on_surface())
    cols = ["id", "kind", "name", "capacity", "capacity_source", "gates", "service_time_s", "osm_tags"]
    layers["pois"] = gpd.GeoDataFrame(pd.DataFrame(rows, columns=cols), geometry=geoms, crs=crs)

    # Water and walkable areas
    is_water = (polys["natural"] == "water") | (polys["waterway"] == "riverbank") | polys["water"].notna()
    w = polys[is_water]
    layers["water"] = gpd.GeoDataFrame({"id": _osm_ids(w, "multipolygons").to_numpy(), "name": w["name"].fillna("").to_numpy()},
                                       geometry=w.geometry.to_numpy(), crs=crs)
    ped = ((polys["highway"] == "pedestrian") | (polys["place"] == "square") | (polys["amenity"] == "marketplace"))
    plat = (polys["railway"] == "platform") | (polys["public_transport"] == "platform") | (polys["highway"] == "platform")
    wk = polys[(ped | plat) & polys["building"].isna()]
    layers["walkable"] = gpd.GeoDataFrame(
        {"id": _osm_ids(wk, "multipolygons").to_numpy(), "name": wk["name"].fillna("").to_numpy(),
         "kind": np.where(plat[wk.index], "platform", "pedestrian"),
         "layer": pd.to_numeric(wk["layer"], errors="coerce").fillna(0).to_numpy(),
         # the floor: a single whole-number level tag, else 0 (the tag as written in osm_level)
         "level": [single_level(v) for v in wk["level"]], "osm_level": wk["level"].fillna("").to_numpy()},
        geometry=wk.geometry.to_numpy(), crs=crs)
    return layers
