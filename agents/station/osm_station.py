"""The station's own reading of an OpenStreetMap file: the tags the platform's city layers do not
carry (a platform's ``ref``, doors, ticket barriers, lifts).

The city importer keeps what every model shares (buildings, roads, walkable areas, POIs); a station
also needs the track number of each platform and the nodes that are not POIs. The station's import
hook reads them here from the same ``.osm.pbf`` (``city.meta["imported_from"]``) with GDAL's OSM
driver, through an ``osmconf.ini`` of its own that turns exactly these tags into columns.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd

TAGS = ("name", "ref", "railway", "public_transport", "highway", "level", "layer", "entrance", "barrier",
        "door", "building", "conveying", "building:min_level", "min_height")
OSM_SUFFIXES = (".pbf", ".osm")

_CONF = """[general]
closed_ways_are_polygons=building,railway=platform,public_transport=platform,highway=platform,area:highway

[points]
osm_id=yes
attributes={attrs}
other_tags=no

[lines]
osm_id=yes
attributes={attrs}
other_tags=no

[multipolygons]
osm_id=yes
osm_way_id=yes
attributes={attrs}
other_tags=no

[multilinestrings]
osm_id=yes
attributes=name
other_tags=no

[other_relations]
osm_id=yes
attributes=name
other_tags=no
"""


def _positive(values) -> pd.Series:
    return pd.to_numeric(values.astype(str).str.extract(r"([-+]?\d+(?:\.\d+)?)")[0], errors="coerce").fillna(0) > 0


def osm_sources(city) -> list[Path]:
    """The OpenStreetMap files the city was imported from (those that still exist)."""
    paths = [Path(p) for p in city.meta.get("imported_from", []) or []]
    return [p for p in paths if p.suffix.lower() in OSM_SUFFIXES and p.is_file()]


def read_station_tags(paths: list[Path], crs) -> dict[str, gpd.GeoDataFrame]:
    """``points`` (doors, subway entrances, ticket barriers, lifts) and ``areas`` (platforms, with their
    ``ref``, and buildings raised above the ground: ``building:min_level`` or ``min_height`` > 0), in
    ``crs``; ids as the city importer writes them (``osm_node_<id>``, ``osm_way_<id>``)."""
    import pyogrio

    points, areas = [], []
    with tempfile.TemporaryDirectory(prefix="citytwin-station-osm-") as tmp:
        conf = Path(tmp) / "osmconf.ini"
        conf.write_text(_CONF.format(attrs=",".join(TAGS)), encoding="utf-8")
        for path in paths:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                pts = pyogrio.read_dataframe(path, layer="points", on_invalid="fix", CONFIG_FILE=str(conf))
                pol = pyogrio.read_dataframe(path, layer="multipolygons", on_invalid="fix", CONFIG_FILE=str(conf))
            # GDAL writes "building:min_level" as the field "building_min_level"
            pts, pol = (g.rename(columns={t.replace(":", "_"): t for t in TAGS if ":" in t}) for g in (pts, pol))
            for g in (pts, pol):
                for t in TAGS:
                    if t not in g.columns:
                        g[t] = None
            keep = (pts["entrance"].notna() | pts["railway"].isin(["subway_entrance", "train_station_entrance"])
                    | pts["barrier"].isin(["turnstile", "fare_gate", "full-height_turnstile"])
                    | (pts["highway"] == "elevator"))
            pts = pts[keep].copy()
            pts["id"] = "osm_node_" + pts["osm_id"].astype(str)
            plat = (pol["railway"] == "platform") | (pol["public_transport"] == "platform") | (pol["highway"] == "platform")
            # buildings that stand above the ground (a deck over platform heads): people walk beneath
            raised = pol["building"].notna() & (_positive(pol["building:min_level"]) | _positive(pol["min_height"]))
            pol = pol[plat | raised].copy()
            way = pol["osm_way_id"]
            pol["id"] = [f"osm_way_{w}" if isinstance(w, str) and w else f"osm_relation_{r}" for w, r in zip(way, pol["osm_id"])]
            points.append(pts.to_crs(crs))
            areas.append(pol.to_crs(crs))
    cols = ["id", *TAGS, "geometry"]

    def join(frames):
        df = pd.concat([f[cols] for f in frames], ignore_index=True) if frames else pd.DataFrame(columns=cols)
        return gpd.GeoDataFrame(df, geometry="geometry", crs=crs)

    return {"points": join(points), "areas": join(areas)}


__all__ = ["osm_sources", "read_station_tags", "TAGS"]
