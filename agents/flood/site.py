"""What a flood needs from an imported city that the data seldom says outright: where people can
shelter, which map edges water may leave over, which gates are the station's entrances. Each choice
that is estimated rather than read from the data comes with a warning that says how to fix the data.

Shelters
    POIs of kind ``shelter`` (OSM ``emergency=assembly_point``). Where a city has none, schools and
    public buildings stand in (estimated): the POIs of kind ``school``, else the buildings whose
    ``use`` is ``public``, each taking one person per ``SHELTER_M2_PER_PERSON`` of floor area
    (footprint × storeys). A city with neither gets a warning: nobody can be evacuated there.

Boundary ``auto``
    The terrain model's edge is where the map cuts the ground, not a wall: water runs off it. Every
    edge is open, except an edge that a permanent water body (the water layer) reaches: a river cut
    by the map stays at rest there instead of draining off the map. A closed edge that holds water
    against it at the end of a run gets a warning.

Station entrances
    Gates of kind ``entrance``; gates of kind ``exit`` only where they lie within
    ``STATION_REACH_M`` of the station (a building holding a POI of kind railway_station, metro or
    subway_entrance, or of use ``station``): the exits of a crowd model's walkable area that lie out
    in the streets are not holes into the station.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

SHELTER_M2_PER_PERSON = 2.0  # floor area per person in an emergency shelter (Sphere Handbook: 3.5 m² long-term)
STOREY_M = 3.0
STATION_REACH_M = 50.0
STATION_KINDS = ("railway_station", "metro", "subway_entrance")
HELD_DEPTH_M = 0.3  # a closed edge holding water deeper than this is reported


def shelters(city, buildings: gpd.GeoDataFrame, warn) -> gpd.GeoDataFrame:
    """The shelters (id, name, kind "shelter", capacity, estimated), tagged ones first."""
    pois = city.pois
    tagged = pois[pois["kind"] == "shelter"] if len(pois) else pois
    cols = ["id", "name", "kind", "capacity", "estimated"]
    if len(tagged):
        out = tagged.assign(estimated=False)[cols + ["geometry"]]
        return gpd.GeoDataFrame(out.reset_index(drop=True), geometry="geometry", crs=city.crs)
    schools = pois[pois["kind"] == "school"] if len(pois) else pois
    if len(schools):
        rows = []
        for _, s in schools.iterrows():
            inside = buildings[buildings.geometry.intersects(s.geometry.buffer(5.0))] if len(buildings) else buildings
            cap = _capacity(inside) if len(inside) else 200
            rows.append({"id": str(s["id"]), "name": _text(s.get("name")) or str(s["id"]), "kind": "shelter",
                         "capacity": int(cap), "estimated": True, "geometry": s.geometry})
        how = "the schools (POIs of kind school)"
    else:
        public = buildings[buildings["use"].astype(str) == "public"] if len(buildings) and "use" in buildings else []
        rows = [{"id": str(b["id"]), "name": _text(b.get("name")) or f"public building {b['id']}", "kind": "shelter",
                 "capacity": int(_capacity(b.to_frame().T)), "estimated": True,
                 "geometry": b.geometry.representative_point()} for _, b in
                (public.iterrows() if len(public) else [])]
        how = "the public buildings (buildings of use public)"
    where = city.root or city.name
    if not rows:
        warn(f"{where}: no shelters: the city has no POIs of kind shelter (OSM emergency=assembly_point), no "
             "schools and no public buildings, so nobody can be evacuated and every evacuee is stranded. Add POIs "
             "of kind shelter with a capacity to the pois layer.")
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry=[], crs=city.crs)
    warn(f"{where}: no POIs of kind shelter (OSM emergency=assembly_point): {len(rows)} shelter(s) estimated from "
         f"{how}, each holding its floor area / {SHELTER_M2_PER_PERSON:g} m² per person. Add the real shelters "
         "to the pois layer (kind shelter, capacity).")
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=city.crs)


def _capacity(buildings) -> float:
    area = shapely.area(np.asarray(buildings.geometry.values))
    height = pd.to_numeric(buildings.get("height_m", pd.Series(STOREY_M, index=buildings.index)), errors="coerce")
    storeys = np.maximum(np.round(height.fillna(STOREY_M).to_numpy(float) / STOREY_M), 1)
    return max(float(np.sum(area * storeys)) / SHELTER_M2_PER_PERSON, 1.0)


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def auto_boundary(water_masks) -> dict[str, str]:
    """``boundary = "auto"``: every edge open but those a permanent water body reaches."""
    out = {}
    for side in ("north", "south", "west", "east"):
        touched = any(_edge(m, side).any() for m in water_masks)
        out[side] = "closed" if touched else "open"
    return out


def _edge(a: np.ndarray, side: str) -> np.ndarray:
    return {"north": a[0, :], "south": a[-1, :], "west": a[:, 0], "east": a[:, -1]}[side]


def held_water(depth: np.ndarray, land: np.ndarray, open_edges) -> dict[str, float]:
    """The deepest water on land along each closed edge (north, south, west, east order of ``open_edges``)."""
    out = {}
    for k, side in enumerate(("north", "south", "west", "east")):
        if open_edges[k]:
            continue
        d = np.where(_edge(land, side), _edge(depth, side), 0.0)
        if d.size and float(d.max()) > HELD_DEPTH_M:
            out[side] = float(d.max())
    return out


def station_entrances(city, gates: gpd.GeoDataFrame, kinds=("exit", "entrance")) -> np.ndarray:
    """Ids of the gates that are the station's entrances (see the module docstring)."""
    if not len(gates):
        return np.zeros(0, object)
    kind = gates["kind"].astype(str)
    ids = gates["id"].astype(str).to_numpy()
    entrance = (kind == "entrance").to_numpy()
    exits = (kind == "exit").to_numpy() & ("exit" in kinds)
    station = _station_area(city)
    if station is not None and exits.any():
        near = shapely.distance(np.asarray(gates.geometry.values), station) <= STATION_REACH_M
        exits &= near
    elif exits.any():
        exits[:] = False
    return ids[entrance | exits]


def _station_area(city):
    b = city.buildings
    parts = []
    if len(b) and "use" in b:
        parts += list(b.geometry[b["use"].astype(str) == "station"])
    pois = city.pois
    if len(pois):
        pts = pois.geometry[pois["kind"].astype(str).isin(STATION_KINDS)]
        for p in pts:
            hit = b.geometry[b.geometry.intersects(p.buffer(10.0))] if len(b) else []
            parts += list(hit) if len(hit) else [p]
    return shapely.union_all(parts) if parts else None
