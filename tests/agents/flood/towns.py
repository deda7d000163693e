"""Small city packages for the flood model's tests, built in code (EPSG:32650, metres).

``street_town``: flat ground at 0 m with hollows that hold still water (a lake at rest: each
hollow is filled to the brim, so nothing moves), one east-west street, buildings and shelters along
it. The water stands exactly where a test puts it, so what people do is known in advance.

``valley_town``: a sloping valley with roads, buildings, drains, a pump, for storms.
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
from shapely.geometry import LineString, Point, box

from twin.core.city import City, Terrain
from twin.core.files import write_geotiff
from twin.core.grid import GridField

CRS = pyproj.CRS("EPSG:32650")
X0, Y0 = 500_000.0, 3_400_000.0


def _save(folder: Path, name: str, layers: dict, z: np.ndarray, cell: float, extent_h: float) -> Path:
    path = folder / name
    dem = Terrain(GridField("elevation", z.astype(np.float32), X0, Y0 + extent_h, cell, unit="m"))
    City(name, CRS, {k: v for k, v in layers.items() if v is not None}, dem).save(path)
    return path


def depth_raster(path: Path, z: np.ndarray, cell: float, extent_h: float) -> Path:
    """A GeoTIFF of initial depths on the same grid as a town's DEM."""
    write_geotiff(GridField("depth", z.astype(np.float32), X0, Y0 + extent_h, cell, unit="m"), CRS, path)
    return path


# -- street town ----------------------------------------------------------------------------------------
STREET_W, STREET_H, STREET_CELL = 200.0, 100.0, 2.0
STREET_Y = 50.0  # the street runs along y = 50 m, x = 10 .. 190 m


def street_town(folder: Path, *, hollows=(), shelters=(("SH1", 180.0, 100),), population=(10,),
                branch: bool = False, name: str = "street") -> tuple[Path, np.ndarray]:
    """The town and its initial-depth grid (the hollows' water). ``hollows``: (x0, y0, x1, y1, depth)
    boxes in local metres. Building k stands at x = 20 + 30 k north of the street with
    ``population[k]`` people. ``branch``: a longer way round (north, y = 90 m) from x = 60 to x = 160."""
    ny, nx = int(STREET_H / STREET_CELL), int(STREET_W / STREET_CELL)
    z = np.zeros((ny, nx))
    depth = np.zeros((ny, nx))
    xs = (np.arange(nx) + 0.5) * STREET_CELL
    ys = STREET_H - (np.arange(ny) + 0.5) * STREET_CELL
    X, Y = np.meshgrid(xs, ys)
    for x0, y0, x1, y1, d in hollows:
        inside = (X > x0) & (X < x1) & (Y > y0) & (Y < y1)
        z[inside] = -d
        depth[inside] = d
    pts = [(x, STREET_Y) for x in range(10, 191, 10)]
    lines = [LineString([(X0 + a[0], Y0 + a[1]), (X0 + b[0], Y0 + b[1])]) for a, b in zip(pts[:-1], pts[1:])]
    ids = [f"S{k:02d}" for k in range(len(lines))]
    if branch:
        way = [(60.0, STREET_Y), (60.0, 90.0), (160.0, 90.0), (160.0, STREET_Y)]
        for k, (a, b) in enumerate(zip(way[:-1], way[1:])):
            lines.append(LineString([(X0 + a[0], Y0 + a[1]), (X0 + b[0], Y0 + b[1])]))
            ids.append(f"N{k}")
    roads = gpd.GeoDataFrame({"id": ids, "name": ids, "kind": "residential", "speed_kmh": 30.0}, geometry=lines, crs=CRS)
    bx = [20.0 + 30.0 * k for k in range(len(population))]
    buildings = gpd.GeoDataFrame(
        {"id": [f"B{k + 1}" for k in range(len(bx))], "height_m": 6.0, "levels": 2, "use": "residential",
         "name": "", "population": list(population)},
        geometry=[box(X0 + x - 5, Y0 + 56, X0 + x + 5, Y0 + 64) for x in bx], crs=CRS)
    pois = gpd.GeoDataFrame(
        {"id": [s[0] for s in shelters], "kind": "shelter", "name": [s[0] for s in shelters],
         "capacity": [s[2] for s in shelters], "gates": 1, "service_time_s": 0.0},
        geometry=[Point(X0 + s[1], Y0 + STREET_Y + 8) for s in shelters], crs=CRS)
    path = _save(folder, name, {"roads": roads, "buildings": buildings, "pois": pois}, z, STREET_CELL, STREET_H)
    return path, depth


# -- valley town ----------------------------------------------------------------------------------------
VALLEY_W, VALLEY_H, VALLEY_CELL = 300.0, 200.0, 5.0


def valley_z() -> np.ndarray:
    ny, nx = int(VALLEY_H / VALLEY_CELL), int(VALLEY_W / VALLEY_CELL)
    xs = (np.arange(nx) + 0.5) * VALLEY_CELL
    ys = VALLEY_H - (np.arange(ny) + 0.5) * VALLEY_CELL
    X, Y = np.meshgrid(xs, ys)
    # a valley along y = 60 m, rising north (to 8 m) and a little south, sloping gently east
    return 0.5 + 0.002 * X + np.where(Y > 60, 0.05 * (Y - 60), 0.02 * (60 - Y))


def valley_town(folder: Path, name: str = "valley", drains: bool = True, pump: bool = True) -> Path:
    roads = gpd.GeoDataFrame(
        {"id": ["R1", "R2", "R3"], "name": ["Valley Road", "Hill Road", "Cross Street"], "kind": "residential",
         "speed_kmh": 30.0},
        geometry=[LineString([(X0 + 10, Y0 + 60), (X0 + 150, Y0 + 60), (X0 + 290, Y0 + 60)]),
                  LineString([(X0 + 10, Y0 + 170), (X0 + 150, Y0 + 170), (X0 + 290, Y0 + 170)]),
                  LineString([(X0 + 150, Y0 + 60), (X0 + 150, Y0 + 170)])], crs=CRS)
    buildings = gpd.GeoDataFrame(
        {"id": ["B1", "B2", "B3"], "height_m": [6.0, 9.0, 30.0], "use": ["residential", "commercial", "office"],
         "name": ["", "", "Tower"]},
        geometry=[box(X0 + 40, Y0 + 66, X0 + 60, Y0 + 80), box(X0 + 200, Y0 + 66, X0 + 220, Y0 + 76),
                  box(X0 + 100, Y0 + 120, X0 + 120, Y0 + 140)], crs=CRS)
    pois = gpd.GeoDataFrame(
        {"id": ["SH1", "PU1"], "kind": ["shelter", "pump"], "name": ["Hill School", "Valley pump"],
         "capacity": [500, 0], "gates": 1, "service_time_s": 0.0, "capacity_m3s": [0.0, 0.4]},
        geometry=[Point(X0 + 150, Y0 + 175), Point(X0 + 100, Y0 + 57)], crs=CRS)
    if not pump:
        pois = pois.iloc[:1]
    d = gpd.GeoDataFrame({"id": ["D1", "D2"], "capacity_m3s": [0.05, 0.1]},
                         geometry=[Point(X0 + 80, Y0 + 58), Point(X0 + 250, Y0 + 62)], crs=CRS) if drains else None
    return _save(folder, name, {"roads": roads, "buildings": buildings, "pois": pois, "drains": d}, valley_z(),
                 VALLEY_CELL, VALLEY_H)


def dem_only_town(folder: Path, name: str = "dem_only") -> Path:
    """Nothing but a DEM: a bowl."""
    n = 40
    c = (np.arange(n) + 0.5) * 5.0 - 100.0
    X, Y = np.meshgrid(c, c)
    z = 2.0 + (X ** 2 + Y ** 2) / 2000.0
    path = folder / name
    City(name, CRS, {}, Terrain(GridField("elevation", z.astype(np.float32), X0, Y0 + 200.0, 5.0, unit="m"))).save(path)
    return path
