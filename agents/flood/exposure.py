"""What the water hits: people in buildings, and per-feature depths of buildings, roads and critical POIs.

People per building
-------------------
A ``population`` column of the buildings layer is used as it is. Where it is absent (or empty for a
building), the number of people is estimated from the floor area and the use::

    people = round(footprint area × levels / floor area per person of the use)

with ``levels`` from the ``levels`` column, else ``height_m / 3 m`` (at least 1), and the floor area
per person of ``FLOOR_M2_PER_PERSON``. Residential: 36.5 m² per person, China's average housing
floor area per urban resident in the 2020 census (National Bureau of Statistics, 7th census). The
others are planning assumptions of this model (office 15 m² per workplace, shops 30, hotels 40 per
guest, public buildings 25, industry 80, other 60); stations and attractions count 0 here (their
people are the station and tourist models' business). The estimate is a night-time residential
picture plus daytime workplaces at once: an upper bound of people exposed, stated as such.

Depths per feature
------------------
Buildings are walls in the flood grid, so their own cells stay dry: the water that reaches a
building is the water on the open cells around its footprint (``impacts.building_cells(ring=True)``).
A building's maximum depth is the maximum over those cells of the engine's per-cell maximum depth
(exact in time, not sampled); it is *flooded* once that exceeds ``building_flood_depth_m``, at the
first update (every ``sync_interval_s``) that sees it. Roads: the depth of a road graph edge is the
maximum over the cells its segment crosses, a road's the maximum over its edges; a road is
impassable while that exceeds ``road_closed_depth_m``. Critical POIs: the depth on their cell (the
open cells around it when it lies in a building).
"""
from __future__ import annotations

import numpy as np

from . import impacts, memo

FLOOR_M2_PER_PERSON = {
    "residential": 36.5, "hotel": 40.0, "office": 15.0, "commercial": 30.0, "public": 25.0,
    "industrial": 80.0, "other": 60.0,
}
NO_PEOPLE_USES = ("station", "attraction")
LEVEL_HEIGHT_M = 3.0
CRITICAL_KINDS = ("shelter", "pump", "railway_station", "hospital", "school")


def levels_of(buildings) -> np.ndarray:
    """Storeys of each building: the ``levels`` column, else ``height_m / 3 m`` (at least 1)."""
    import pandas as pd

    n = len(buildings)
    levels = pd.to_numeric(buildings["levels"], errors="coerce").to_numpy(float) if "levels" in buildings \
        else np.full(n, np.nan)
    height = pd.to_numeric(buildings["height_m"], errors="coerce").to_numpy(float) if n else np.zeros(0)
    return np.where(np.isfinite(levels) & (levels > 0), np.round(levels),
                    np.maximum(1.0, np.round(height / LEVEL_HEIGHT_M))).astype(np.int64)


def people_per_building(buildings) -> np.ndarray:
    """People in each building: the ``population`` column, else the estimate of the module docstring."""
    import pandas as pd

    n = len(buildings)
    if n == 0:
        return np.zeros(0, np.int64)
    area = buildings.geometry.area.to_numpy()
    levels = levels_of(buildings)
    use = buildings["use"].astype(str).str.lower().to_numpy() if "use" in buildings else np.full(n, "other")
    per = np.array([FLOOR_M2_PER_PERSON.get(u, FLOOR_M2_PER_PERSON["other"]) for u in use])
    people = np.where(np.isin(use, NO_PEOPLE_USES), 0.0, np.round(area * levels / per))
    if "population" in buildings:
        given = pd.to_numeric(buildings["population"], errors="coerce").to_numpy(float)
        people = np.where(np.isfinite(given) & (given >= 0), np.round(given), people)
    return people.astype(np.int64)


def _only(keep: np.ndarray, indptr: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CSR cell lists without the cells where ``keep`` is false."""
    ok = keep.ravel()[cells]
    owner = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    out = np.zeros_like(indptr)
    np.cumsum(np.bincount(owner[ok], minlength=len(indptr) - 1), out=out[1:])
    return out, cells[ok]


class Exposure:
    """Per-feature depths, updated every sync; its dynamic arrays are part of the model's state."""

    STATE = ("bld_max_depth", "bld_flooded_at", "edge_depth", "road_depth", "road_max_depth", "road_impassable_at",
             "poi_depth", "poi_max_depth", "poi_flooded_at")

    def __init__(self, raster, buildings, graph, pois, building_depth_m: float, road_depth_m: float,
                 permanent: np.ndarray | None = None):
        grid = raster.grid
        # cells of the water bodies are left out: a road over them is a bridge, a building beside them
        # is not flooded by the river at its normal level
        keep = ~raster.blocked if permanent is None else ~(raster.blocked | permanent)
        self.building_depth_m = building_depth_m
        self.road_depth_m = road_depth_m
        geoms = buildings.geometry.values
        ring = memo.cached("building_ring", memo.digest(list(geoms), grid, raster.blocked),
                           lambda: impacts.building_cells(geoms, grid, raster.blocked, ring=True))
        self.bld_ptr, self.bld_cells = _only(keep, *(a.copy() for a in ring))
        self.people = people_per_building(buildings)
        self.levels = levels_of(buildings) if len(buildings) else np.zeros(0, np.int64)
        nb = len(buildings)
        self.bld_max_depth = np.zeros(nb)
        self.bld_flooded_at = np.full(nb, np.nan)
        # road graph edges as line segments: the cells each one crosses
        if graph is not None:
            import shapely

            segs = shapely.linestrings(np.stack([graph.node_xy[graph.edge_u], graph.node_xy[graph.edge_v]], axis=1))
            crossed = memo.cached("edge_cells", memo.digest(list(segs), grid), lambda: impacts.line_cells(segs, grid))
            self.edge_ptr, self.edge_cells = _only(keep, *(a.copy() for a in crossed))
            self.edge_road = graph.edge_road
            self.road_len_m = graph.road_len
            nr = len(graph.road_ids)
        else:
            self.edge_ptr, self.edge_cells = np.zeros(1, np.int64), np.zeros(0, np.int64)
            self.edge_road = np.zeros(0, np.int64)
            self.road_len_m = np.zeros(0)
            nr = 0
        self.edge_depth = np.zeros(len(self.edge_ptr) - 1)
        self.road_depth = np.zeros(nr)
        self.road_max_depth = np.zeros(nr)
        self.road_impassable_at = np.full(nr, np.nan)
        # critical POIs: their cell, or the open cells around it when it is a building cell
        self.poi_ids = pois["id"].astype(str).to_numpy()
        self.poi_kind = pois["kind"].astype(str).to_numpy()
        self.poi_ptr, self.poi_cells = _only(keep, *self._poi_cells(pois, raster))
        npoi = len(pois)
        self.poi_depth = np.zeros(npoi)
        self.poi_max_depth = np.zeros(npoi)
        self.poi_flooded_at = np.full(npoi, np.nan)

    @staticmethod
    def _poi_cells(pois, raster):
        grid, blocked = raster.grid, raster.blocked
        owner, cells = [], []
        for k, g in enumerate(pois.geometry.values):
            r, c = grid.index_of(g.x, g.y)
            r, c = int(r), int(c)
            if not grid.inside(r, c):
                continue
            if not blocked[r, c]:
                owner.append(k)
                cells.append(r * grid.nx + c)
                continue
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < grid.ny and 0 <= cc < grid.nx and not blocked[rr, cc]:
                        owner.append(k)
                        cells.append(rr * grid.nx + cc)
        return impacts._csr(np.asarray(owner, np.int64), np.asarray(cells, np.int64), len(pois))

    def update(self, t: float, h: np.ndarray, max_depth: np.ndarray) -> np.ndarray:
        """Read the water at time ``t``; returns the buildings that flooded since the last update."""
        hf = h.ravel()
        mf = max_depth.ravel()
        if len(self.bld_max_depth):
            self.bld_max_depth = np.nan_to_num(impacts.segment_max(mf, self.bld_ptr, self.bld_cells))
        new = np.flatnonzero((self.bld_max_depth > self.building_depth_m) & np.isnan(self.bld_flooded_at))
        self.bld_flooded_at[new] = t
        if len(self.edge_depth):
            self.edge_depth = np.nan_to_num(impacts.segment_max(hf, self.edge_ptr, self.edge_cells))
            depth = np.zeros(len(self.road_depth))
            np.maximum.at(depth, self.edge_road, self.edge_depth)
            self.road_depth = depth
            self.road_max_depth = np.maximum(self.road_max_depth, depth)
            self.road_impassable_at[self.road_impassable() & np.isnan(self.road_impassable_at)] = t
        if len(self.poi_depth):
            self.poi_depth = np.nan_to_num(impacts.segment_max(hf, self.poi_ptr, self.poi_cells))
            self.poi_max_depth = np.nan_to_num(impacts.segment_max(mf, self.poi_ptr, self.poi_cells))
            self.poi_flooded_at[(self.poi_max_depth > self.building_depth_m) & np.isnan(self.poi_flooded_at)] = t
        return new

    def road_impassable(self) -> np.ndarray:
        return self.road_depth > self.road_depth_m

    def edge_impassable(self) -> np.ndarray:
        return self.edge_depth > self.road_depth_m

    @property
    def flooded(self) -> np.ndarray:
        return ~np.isnan(self.bld_flooded_at)
