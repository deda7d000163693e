"""Station test geometry built in code (no files): a 60 x 30 m hall with pillars, two platforms,
gates on every side and onward POIs outside."""
from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import pyproj
import pytest
import shapely

from twin.core.city import City, check_layer

CRS = pyproj.CRS("EPSG:32650")
DATA = Path(__file__).resolve().parents[2] / "data" / "pedestrian"
X0, Y0 = 500000.0, 3000000.0  # a UTM-like origin, to exercise large coordinates


def gdf(rows, name):
    g = gpd.GeoDataFrame(rows, geometry="geometry", crs=CRS)
    return check_layer(g, name, f"test layer {name}", CRS)


def make_city(*, gates=None, sources=None, walkable=None, obstacles=None, pois=None) -> City:
    box = lambda a, b, c, d: shapely.box(X0 + a, Y0 + b, X0 + c, Y0 + d)  # noqa: E731
    line = lambda *pts: shapely.LineString([(X0 + x, Y0 + y) for x, y in pts])  # noqa: E731
    if walkable is None:
        walkable = [{"name": "hall", "geometry": box(0, 0, 60, 30)}]
    if obstacles is None:
        obstacles = [{"name": f"pillar{i}", "geometry": box(10 + 10 * i, 14, 11 + 10 * i, 16)} for i in range(5)]
    if gates is None:
        gates = [
            {"id": "N1", "kind": "exit", "open": True, "geometry": line((10, 30), (14, 30))},
            {"id": "N2", "kind": "exit", "open": True, "geometry": line((40, 30), (44, 30))},
            {"id": "S1", "kind": "exit", "open": True, "geometry": line((28, 0), (32, 0))},
            {"id": "E1", "kind": "exit", "open": True, "geometry": line((60, 12), (60, 18))},
            {"id": "W1", "kind": "exit", "open": False, "geometry": line((0, 12), (0, 16))},
        ]
    if sources is None:
        sources = [
            {"id": "P1", "count": 150, "release_s": 0.0, "geometry": box(5, 5, 25, 9)},
            {"id": "P2", "count": 150, "release_s": 20.0, "geometry": box(35, 20, 55, 24)},
        ]
    if pois is None:
        pois = [
            {"id": "M1", "kind": "metro", "capacity": 0, "geometry": shapely.Point(X0 + 30, Y0 + 45)},
            {"id": "B1", "kind": "bus_stop", "capacity": 0, "geometry": shapely.Point(X0 + 75, Y0 + 15)},
            {"id": "X1", "kind": "taxi_rank", "capacity": 0, "geometry": shapely.Point(X0 + 30, Y0 - 20)},
        ]
    layers = {"walkable": gdf(walkable, "walkable"), "gates": gdf(gates, "gates"), "sources": gdf(sources, "sources")}
    if obstacles:
        layers["obstacles"] = gdf(obstacles, "obstacles")
    if pois:
        layers["pois"] = gdf(pois, "pois")
    return City("test station", crs=CRS, layers=layers)


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
    os.environ.setdefault("CITYTWIN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def two_level_city(*, connectors=None, sources=None, gates=None, walkable=None, level_height_m=None) -> City:
    """A 40 x 20 m concourse (level 0, exit E on its east side) under a 40 x 10 m platform
    (level 1). From the platform a 3 m stair (S1) and two 1 m escalators (E1 down, U1 up) lead down
    to the concourse: each drawn from its lower end (x = 16, level 0) to its upper end (x = 28,
    level 1), so people leave the platform westwards down the stairs and walk back east below."""
    box = lambda a, b, c, d: shapely.box(X0 + a, Y0 + b, X0 + c, Y0 + d)  # noqa: E731
    line = lambda *pts: shapely.LineString([(X0 + x, Y0 + y) for x, y in pts])  # noqa: E731
    if walkable is None:
        walkable = [{"name": "concourse", "level": 0, "geometry": box(0, 0, 40, 20)},
                    {"name": "platform", "level": 1, "geometry": box(0, 4, 40, 14)}]
    if gates is None:
        gates = [{"id": "E", "kind": "exit", "open": True, "level": 0, "geometry": line((40, 8), (40, 12))}]
    if sources is None:
        sources = [{"id": "P1", "count": 200, "release_s": 0.0, "level": 1, "geometry": box(31, 5, 39, 13)}]
    if connectors is None:
        connectors = [
            {"id": "S1", "kind": "stairs", "from_level": 0, "to_level": 1, "width_m": 3.0, "direction": "both",
             "speed_mps": None, "geometry": line((16, 6.5), (28, 6.5))},
            {"id": "E1", "kind": "escalator", "from_level": 0, "to_level": 1, "width_m": 1.0, "direction": "down",
             "speed_mps": 0.5, "geometry": line((16, 10.0), (28, 10.0))},
            {"id": "U1", "kind": "escalator", "from_level": 0, "to_level": 1, "width_m": 1.0, "direction": "up",
             "speed_mps": 0.5, "geometry": line((16, 12.0), (28, 12.0))},
        ]
    layers = {"walkable": gdf(walkable, "walkable"), "gates": gdf(gates, "gates"), "sources": gdf(sources, "sources")}
    if connectors:
        layers["connectors"] = gpd.GeoDataFrame(connectors, geometry="geometry", crs=CRS)
    meta = {} if level_height_m is None else {"level_height_m": level_height_m}
    return City("two-level test station", crs=CRS, layers=layers, meta=meta)
