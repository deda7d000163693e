"""City packages for the tourist-flow model, built in code."""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from shapely.geometry import LineString, Point

from tests.factories import CRS, X0, Y0
from twin.core.city import City

# A cross of streets: a 1200 m main street west-east (split at the crossing, so the streets share
# the vertex there) and a 800 m cross street; nothing else.
STREETS = [((0, 0), (600, 0)), ((600, 0), (1200, 0)), ((600, -400), (600, 0)), ((600, 0), (600, 400))]
STATION = ("ST", "station", (5.0, 8.0))
ATTRACTION = ("A", "attraction", (1194.0, -8.0))


def poi(pid, kind, xy, **cols):
    return dict(id=pid, kind=kind, x=xy[0], y=xy[1], **cols)


def make_city(folder: Path, pois: list[dict] | None = None, name: str = "mini") -> Path:
    """Roads only (the cross of streets) and ``pois`` (default: one station and one attraction)."""
    if pois is None:
        pois = [poi(*STATION), poi(*ATTRACTION, gates=2, service_time_s=10.0, capacity=200)]
    roads = gpd.GeoDataFrame({"name": [f"street {i}" for i in range(len(STREETS))], "kind": "residential",
                              "speed_kmh": 30.0},
                             geometry=[LineString([(X0 + a[0], Y0 + a[1]), (X0 + b[0], Y0 + b[1])]) for a, b in STREETS],
                             crs=CRS)
    cols = sorted({k for p in pois for k in p} - {"x", "y"})
    frame = gpd.GeoDataFrame({c: [p.get(c) for p in pois] for c in cols},
                             geometry=[Point(X0 + p["x"], Y0 + p["y"]) for p in pois], crs=CRS)
    path = folder / name
    City(name, CRS, {"roads": roads, "pois": frame}).save(path)
    return path
