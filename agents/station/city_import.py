"""The station model's import hook: its POI kinds from OpenStreetMap, and the walkable area, gates
and sources around a station derived from an imported city (``IMPORT_HOOK``; the city importer calls
it, docs/models.md "Declarations").

POI kinds (the first rule that matches wins; the other models' rules come after these):
``metro`` (station=subway, railway=subway_entrance, railway=station + subway=yes; 1000 persons, 2
gates), ``railway_station`` (railway=station/halt, public_transport=station not bus-only; 2000, 4),
``bus_stop`` (highway=bus_stop, amenity=bus_station; 60, 1), ``taxi_rank`` (amenity=taxi; 10, 1,
60 s of service).

The station crowd model needs ``walkable``, ``gates`` and ``sources`` layers that OpenStreetMap does
not have. :func:`derive_station_area` builds them from an imported city (e.g. ``citytwin city import
Helsinki.osm.pbf --walkable-around railway_station``) and, where the city came from an OSM file, the
tags its layers do not carry (platform ``ref``, doors, ticket barriers, lifts: :mod:`.osm_station`):

- **centre**: the station found by POI kind (``railway_station``, ``metro``…) or by name (a POI or a
  building whose name contains the text, case-insensitive). When a station building (``use`` =
  "station", or the building named) lies within 150 m, it is the *station hall* and its centroid is
  the centre.
- **platforms** (:func:`merge_platforms`): the railway platforms (else any platform) of the street
  level within ``radius_m``, merged per track (the fragments with the same ``ref``), named
  "Platform <ref>"; a fragment for several tracks (``3;4``) is floor they share.
- **walkable** (level 0): with platforms, the *precinct* (the convex hull of the platforms joined
  with the hall, closed by 10 m) holds the hall, the platforms, the walkways (footways, corridors,
  steps…) and pedestrian areas, minus the other buildings (not those raised over the floor,
  ``building:min_level``/``min_height`` > 0); the piece touching the hall is kept, with
  the platforms cut off from it that have an exit of their own. Without platforms, as before: the
  streets (buffered by half their typical width, :data:`STREET_WIDTH_M`), squares and hall within
  the circle.
- **exits** (gates of kind "exit", ids ``G1``… clockwise from north): the OSM entrances on the
  outline of that floor (at the hall), 3 m wide, and the ends of its walkways where they leave the
  precinct (the circle without platforms), named by the entrance or the street they open onto; below
  ground, where the station's passages leave it (:data:`UNDERGROUND_REACH_M` beyond the precinct).
- **levels and connectors**: a way's floor is :func:`way_level` (``level``, else ``layer`` below
  ground, else -1 for a tunnel); walkways below ground near the station are walkable areas of their
  level, and areas tagged with another level stay on it. Stairs and escalators become the
  ``connectors`` layer from their two tagged levels (:func:`derive_connectors`) or, without, from the
  floors of the ways at their ends (:func:`infer_connectors`); floors no stairs reach are left out.
- **ticket gates**: along tagged ``barrier=turnstile``/``fare_gate`` rows, else estimated across the
  passages from the platforms to the rest of the station and, fenced in by estimated walls (the
  ``obstacles`` layer), at the tops of the platforms' stairs and lifts down (:func:`_fenced_tops`);
  those the crowd model would refuse (a way round them) are left out, and the report says which
  way leads round each.
- **stairs' ends**: where both ends come out on one floor below ground but one end's floor is only
  implied by ``tunnel=yes`` and the other's is tagged, the implied end is the floor above; an end
  that meets no way is on the floor whose walkable area is clearly nearest (:func:`infer_connectors`).
- **sources**: one per platform (``P<ref>``), else the station hall (``H1``…), shrunk by 0.5 m so
  they lie strictly inside (pieces under 20 m² are left out); ``agents`` people in total, shared by
  area, released at 0 s; each carries ``max_per_train`` (:data:`PLATFORM_UNLOAD_PPM2`).
- **lifts** (``highway=elevator`` nodes, :func:`place_lifts`): connectors of kind lift between the
  floors they serve (their ``level`` tag, else the floors at the node), the crowd model's default
  capacity and round trip (estimated).
"""
from __future__ import annotations

import math
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from twin.core.city import City
from twin.core.errors import UserError
from twin.core.model_contract import BuildingUse, CityImportHook, ImportOption, LayerSpec, LayerView, PoiKind
from twin.core.osm_values import parse_height_m, parse_level_list

from .osm_station import osm_sources, read_station_tags

# Typical full width (m) of the walkable part of a street of each OSM highway kind.
STREET_WIDTH_M = {
    "primary": 14.0, "secondary": 12.0, "tertiary": 10.0, "residential": 8.0, "unclassified": 8.0,
    "living_street": 8.0, "pedestrian": 8.0, "service": 5.0, "footway": 3.0, "cycleway": 3.0,
    "path": 2.0, "trail": 2.0, "steps": 3.0, "platform": 4.0, "corridor": 3.0, "track": 4.0, "street": 8.0,
}
DEFAULT_STREET_WIDTH_M = 6.0
NOT_WALKABLE_KINDS = {"motorway", "motorway_link", "trunk", "trunk_link", "construction", "proposed",
                      "elevator", "raceway", "bus_guideway"}
NON_BLOCKING_BUILDINGS = {"roof", "canopy", "carport", "bridge", "entrance", "underpass_entrance"}
HALL_SEARCH_M = 150.0
MIN_SOURCE_M2 = 20.0  # smaller pieces of platform (cut by walls) are not used as sources
# A train unloads at most this many passengers per m² of the platform it stops at (estimated: one
# person per 3.3 m², Fruin's level of service A on a walkway, so that a whole train leaving within a
# minute, through ticket gates and down stairs, does not jam the platform); the sources'
# max_per_train, at least MIN_PER_TRAIN.
PLATFORM_UNLOAD_PPM2 = 0.3
MIN_PER_TRAIN = 10


def _street_width(kind) -> float:
    return STREET_WIDTH_M.get(str(kind).removesuffix("_link"), DEFAULT_STREET_WIDTH_M)


def _find_station(city: City, around: str):
    """(name, point, hall polygon or None)."""
    pois = city.pois
    buildings = city.buildings
    halls = buildings[buildings["use"] == "station"] if len(buildings) else buildings
    key = around.strip().casefold()
    cands = pois[pois["kind"].astype(str).str.casefold() == key] if len(pois) else pois
    named_building = None
    if not len(cands):
        if len(pois):
            cands = pois[pois["name"].astype(str).str.casefold().str.contains(key, regex=False)]
        if len(buildings):
            nb = buildings[buildings["name"].astype(str).str.casefold().str.contains(key, regex=False)]
            if len(nb):
                named_building = nb.iloc[int(np.argmax(nb.geometry.area.to_numpy()))]
    if not len(cands) and named_building is None:
        kinds = sorted(set(pois["kind"].astype(str))) if len(pois) else []
        raise UserError(f"no station {around!r} in city {city.name!r}: give a POI kind ({', '.join(kinds) or 'none'}) "
                        "or part of a station's name.")
    if named_building is not None and not len(cands):
        g = named_building.geometry
        return str(named_building.get("name", around)), g.centroid, g
    # Prefer the candidate nearest to a station building.
    best, best_d, best_hall = None, math.inf, None
    for _, row in cands.iterrows():
        p = row.geometry
        if len(halls):
            d = halls.geometry.distance(p).to_numpy()
            i = int(np.argmin(d))
            if d[i] < best_d:
                best, best_d, best_hall = row, d[i], halls.geometry.iloc[i]
        elif best is None:
            best = row
    hall = best_hall if best_d <= HALL_SEARCH_M else None
    if hall is None and named_building is not None:
        hall = named_building.geometry
    name = str(best.get("name") or around)
    centre = hall.centroid if hall is not None else best.geometry
    return name, centre, hall


def derive_station_area(city: City, around: str = "railway_station", radius_m: float = 250.0, *,
                        agents: int = 1000, return_info: bool = False):
    """A copy of ``city`` with ``walkable``, ``gates``, ``sources`` and ``connectors`` of a station
    (see the module doc).

    ``around`` is a POI kind or part of a station's name; ``radius_m`` the radius of the area.
    With ``return_info`` also returns a dict (station, centre, areas, counts, a one-line summary).
    """
    if not (isinstance(radius_m, (int, float)) and 20.0 <= radius_m <= 5000.0):
        raise UserError(f"--walkable-radius-m must be between 20 and 5000 m (got {radius_m}).")
    name, centre, hall = _find_station(city, around)
    circle = centre.buffer(radius_m, quad_segs=32)
    # Where the imported data ends inside the circle, its edge is the boundary (streets are cut there).
    data = city.roads if len(city.roads) else city.buildings
    if len(data):
        x0, y0, x1, y1 = data.total_bounds
        circle = shapely.intersection(circle, shapely.box(x0 + 1.0, y0 + 1.0, x1 - 1.0, y1 - 1.0))
        if circle.is_empty or circle.area < 100.0:
            raise UserError(f"city {city.name!r}: the station {name!r} lies outside the imported data.")
    osm = read_station_tags(osm_sources(city), city.crs) if osm_sources(city) else None

    # Platforms: railway platforms (else any public-transport platform) on the street level, by track.
    plats = _platform_areas(city, circle, osm)
    tracks = merge_platforms(plats) if len(plats) else []
    # The station precinct: the hall and its platforms (their convex hull); without platforms, the circle.
    if tracks:
        hull = shapely.union_all([t["geometry"] for t in tracks]).convex_hull.buffer(2.0)
        # closed (dilated, then eroded): the concourse between the hall and the platform heads is in it
        precinct = shapely.union(hull, hall).buffer(PRECINCT_CLOSE_M).buffer(-PRECINCT_CLOSE_M) if hall is not None else hull
        precinct = shapely.intersection(precinct, circle)
    else:
        precinct = circle

    pieces, streets = [], []
    roads = city.roads
    ground = roads.iloc[:0]
    if len(roads):
        r = roads[roads.intersects(precinct) & ~roads["kind"].astype(str).isin(NOT_WALKABLE_KINDS)]
        lv = np.array([way_level(row) for _, row in r.iterrows()], dtype=int) if len(r) else np.zeros(0, int)
        r = r[lv == 0]
        if tracks:  # inside a station: its walkways, not the streets and service roads beside the tracks
            r = r[r["kind"].astype(str).isin(STATION_WALKWAYS)]
        ground = r
        if len(r):
            widths = np.array([_street_width(k) for k in r["kind"]]) / 2.0
            buffered = shapely.buffer(r.geometry.to_numpy(), widths, quad_segs=4)
            pieces.extend(buffered)
            streets = [g for g, k in zip(buffered, r["kind"].astype(str)) if k not in ("platform", "corridor")]
    walk_areas = city.layer("walkable")
    upper: list[tuple[int, object, str]] = []  # areas tagged with another floor level: (level, geometry, kind)
    if len(walk_areas):
        w = walk_areas[walk_areas.intersects(precinct)]
        if "level" in w.columns:
            lv = w["level"].fillna(0).astype(int)
            upper = [(int(v), shapely.intersection(g, precinct), str(k)) for v, g, k in
                     zip(lv[lv != 0], w[lv != 0].geometry, w[lv != 0].get("kind", ["pedestrian"] * int((lv != 0).sum())))]
            w = w[lv == 0]
        if "layer" in w.columns:  # underground platforms and concourses are not on this plane
            w = w[~(w["layer"].astype(float).fillna(0) < 0)]
        if tracks:  # other platforms beside a station are not the station; its concourses are
            mine = set().union(*(t["ids"] for t in tracks)) | set(plats["id"])
            kinds = w["kind"].astype(str) if "kind" in w.columns else pd.Series("pedestrian", index=w.index)
            w = w[w["id"].astype(str).isin(mine) | (kinds != "platform")]
        pieces.extend(w.geometry.to_numpy())
    pieces.extend(t["geometry"] for t in tracks)
    if hall is not None:
        pieces.append(hall)
    if not pieces:
        raise UserError(f"city {city.name!r}: no streets, squares or platforms within {radius_m:g} m of {name!r}; "
                        "increase --walkable-radius-m or import a larger area.")
    area = shapely.intersection(shapely.unary_union(pieces), precinct)
    b = city.buildings
    if len(b):
        blocking = b[b.intersects(precinct)]
        if "osm_building" in blocking.columns:
            blocking = blocking[~blocking["osm_building"].astype(str).isin(NON_BLOCKING_BUILDINGS)]
        if osm is not None and len(osm["areas"]):  # raised on columns over the floor (building:min_level)
            a = osm["areas"]
            raised = set(a.loc[a["building"].notna() & ~a["railway"].eq("platform"), "id"].astype(str))
            blocking = blocking[~blocking["id"].astype(str).isin(raised)]
        geoms = [g for g in blocking.geometry.to_numpy() if hall is None or not g.equals(hall)]
        if hall is not None:
            geoms = [shapely.difference(g, hall) for g in geoms]
        if geoms:
            area = shapely.difference(area, shapely.unary_union(geoms))
    parts = [p for p in shapely.get_parts(area) if p.geom_type == "Polygon" and p.area > 0]
    if not parts:
        raise UserError(f"city {city.name!r}: nothing walkable is left around {name!r} once buildings are removed.")
    touching = [p for p in parts if hall is not None and p.intersects(hall)]
    main = max(touching or parts, key=lambda p: p.area)
    if tracks:  # platforms cut off from the hall (by a building across their heads) have exits of their own
        main = shapely.union_all([main, *(p for p in parts if p is not main and any(
            shapely.intersection(p, t["geometry"]).area >= MIN_SOURCE_M2 for t in tracks))])
    main = shapely.make_valid(main)
    polys = [p for p in shapely.get_parts(main) if p.geom_type == "Polygon"]
    main = shapely.MultiPolygon(polys) if len(polys) > 1 else polys[0]
    cx, cy = centre.x, centre.y

    def azimuth(g):
        p = g.interpolate(0.5, normalized=True)
        return math.degrees(math.atan2(p.x - cx, p.y - cy)) % 360.0

    # Exits: the station's doors (OSM entrance nodes on its outline), and where its walkways leave
    # the precinct; without platforms, where streets leave the circle.
    ring = precinct.boundary.buffer(0.05)
    street_union = shapely.unary_union(streets).buffer(0.1) if streets else None
    on_edge = shapely.line_merge(shapely.intersection(main.boundary, ring)) if main.intersects(ring) else None
    gate_lines = [g for g in shapely.get_parts(on_edge)] if on_edge is not None else []
    gate_lines = [g for g in gate_lines if g.geom_type == "LineString" and g.length >= 1.0]
    if street_union is not None:  # openings where walkways leave, not the cut ends of platforms
        gate_lines = [g for g in gate_lines if shapely.intersection(g, street_union).length >= 1.0]
    gate_names = []
    named = roads[roads["name"].astype(str).str.len() > 0] if len(roads) else roads
    if len(named):  # the streets outside, not the tunnels under them
        named = named[named.intersects(circle)]
        named = named[np.array([way_level(r) == 0 for _, r in named.iterrows()], dtype=bool)]

    def street_of(g) -> str:
        # the named street or square an exit opens onto, the nearest within STREET_NAME_M
        if not len(named):
            return ""
        d = named.geometry.distance(g).to_numpy()
        k = int(np.argmin(d))
        return str(named["name"].iloc[k]) if d[k] <= STREET_NAME_M else ""

    for g in gate_lines:
        near = ground[ground.geometry.distance(g) < 2.0] if len(ground) else ground
        names = [n for n in near["name"].astype(str) if n] if len(near) else []
        gate_names.append(names[0] if names else (f"exit to {street}" if (street := street_of(g)) else ""))
    doors = [(d, n if n.startswith("entrance ") and len(n) <= 12 and n[-1:].isupper() or not street_of(d)
              else f"{n}, {street_of(d)}") for d, n in (_doors(osm, main, hall) if tracks else [])]
    for door_line, door_name in doors:
        k = next((i for i, g in enumerate(gate_lines) if g.distance(door_line) < DOOR_MERGE_M), None)
        if k is not None:  # a walkway leaving through a door: one exit, named by the door
            gate_lines[k], gate_names[k] = door_line, door_name or gate_names[k]
        else:
            gate_lines.append(door_line), gate_names.append(door_name)
    if main.geom_type == "MultiPolygon":  # a piece without an exit would trap its passengers
        keep = [p for p in main.geoms if any(p.distance(g) < 0.5 for g in gate_lines) or
                (hall is not None and p.intersects(hall))]
        main = shapely.MultiPolygon(keep) if len(keep) > 1 else keep[0]
        gate_lines, gate_names = map(list, zip(*[(g, n) for g, n in zip(gate_lines, gate_names)
                                                 if main.distance(g) < 0.5])) if gate_lines else ([], [])
    dropped_m2 = float(sum(p.area for p in parts) - main.area)
    order = sorted(range(len(gate_lines)), key=lambda k: azimuth(gate_lines[k]))
    gate_lines = [gate_lines[k] for k in order]
    gate_names = [gate_names[k] or f"exit {i + 1}" for i, k in enumerate(order)]
    gates = gpd.GeoDataFrame(
        {"id": [f"G{i + 1}" for i in range(len(gate_lines))], "kind": "exit", "open": True, "name": gate_names,
         "width_m": [round(g.length, 2) for g in gate_lines],
         "azimuth_deg": [round(azimuth(g), 1) for g in gate_lines], "level": 0, "estimated": False},
        geometry=gate_lines, crs=city.crs)

    # Levels: the street level, the floors of walkable areas tagged with a level, and the walkways
    # below ground (level, else layer; a tunnel is layer -1 unless tagged).
    upper = [(lv, g, k) for lv, g, k in upper if not g.is_empty and g.area > 0]
    below_exits: list[tuple[int, object, str]] = []
    if len(roads):
        below = roads[roads.intersects(precinct.buffer(UNDERGROUND_REACH_M)) & roads["kind"].astype(str).isin(STATION_WALKWAYS)]
        for lv, grp in _by_level(below).items():
            if lv != 0:
                widths = [(parse_height_m(w) or max(_street_width(k), TUNNEL_WIDTH_M)) / 2
                          for k, w in zip(grp["kind"], grp["width"] if "width" in grp.columns else [None] * len(grp))]
                g = shapely.union_all(shapely.buffer(grp.geometry.to_numpy(), widths, quad_segs=4))
                clip = shapely.intersection(circle, precinct.buffer(UNDERGROUND_REACH_M))
                g = shapely.intersection(g, clip)
                upper.append((lv, g, "underground walkway" if lv < 0 else "walkway"))
                # where a passage below ground leaves the station, it is an exit of its level
                cut = shapely.line_merge(shapely.intersection(g.boundary, clip.boundary.buffer(0.05)))
                for q in shapely.get_parts(cut):
                    if q.geom_type == "LineString" and q.length >= 1.0:
                        near = grp[grp.geometry.distance(q) < 1.0]
                        nm = next((n for n in near["name"].astype(str) if n), "")
                        below_exits.append((lv, q, f"exit to {nm}" if nm else "exit along the tunnel"))
    floors = {0: main}
    for lv, g, _ in upper:
        floors[lv] = shapely.union(floors[lv], g) if lv in floors else g
    connectors, conn_info = derive_connectors(city.roads, precinct, floors, city.crs)
    more, more_info = infer_connectors(city.roads, precinct, floors, city.crs, set(connectors["id"]))
    lift_layer, lift_info = place_lifts(osm, precinct, floors, city.crs)
    for extra in (more, lift_layer):
        if len(extra):
            connectors = gpd.GeoDataFrame(pd.concat([connectors, extra], ignore_index=True), crs=city.crs)
    connectors = connectors.astype({"from_level": int, "to_level": int, "width_m": float, "speed_mps": float})
    # other floors are kept only where stairs or escalators lead to them from the street level
    reach, grew = {0}, True
    while grew:
        grew = False
        for _, c in connectors.iterrows():
            if (c["from_level"] in reach) != (c["to_level"] in reach):
                reach |= {c["from_level"], c["to_level"]}
                grew = True
    connectors = connectors[connectors["from_level"].isin(reach) & connectors["to_level"].isin(reach)].reset_index(drop=True)

    def where(line) -> str:  # a connector by what its upper end reaches: a platform, else the hall
        top = shapely.Point(line.coords[-1])
        on = next((t["name"] for t in tracks if t["geometry"].distance(top) < 1.0), "")
        return on or ("hall" if hall is not None and hall.distance(top) < 1.0 else "concourse")

    connectors["name"] = [f"{k} from level {a} up to {where(g)}" for k, a, g in
                          zip(connectors["kind"], connectors["from_level"], connectors.geometry)]
    below_exits = [(lv, q, n) for lv, q, n in below_exits if lv in reach]
    if below_exits:
        n0 = len(gates)
        more_gates = gpd.GeoDataFrame(
            {"id": [f"G{n0 + i + 1}" for i in range(len(below_exits))], "kind": "exit", "open": True,
             "name": [n for _, _, n in below_exits], "width_m": [round(q.length, 2) for _, q, _ in below_exits],
             "azimuth_deg": [round(azimuth(q), 1) for _, q, _ in below_exits],
             "level": [lv for lv, _, _ in below_exits], "estimated": False},
            geometry=[q for _, q, _ in below_exits], crs=city.crs)
        gates = gpd.GeoDataFrame(pd.concat([gates, more_gates], ignore_index=True), crs=city.crs)
    dropped_levels = sorted({lv for lv, _, _ in upper if lv not in reach})
    upper = [(lv, g, k) for lv, g, k in upper if lv in reach]
    conn_info["summary"] += "; " + more_info["summary"]
    if dropped_levels:
        conn_info["summary"] += (f"; walkable areas on level(s) {', '.join(map(str, dropped_levels))} left out "
                                 "(no stairs or escalator placed to them)")
    lifts = [f"{i} (levels {a} to {b})" for i, a, b in zip(connectors["id"], connectors["from_level"],
                                                           connectors["to_level"]) if i in set(lift_layer["id"])]

    # Sources: one per platform (track), else the station hall, shrunk to lie strictly inside.
    src_geoms, src_names, src_ids, src_levels = [], [], [], []
    for t in tracks:
        s = shapely.intersection(t["geometry"], main).buffer(-0.5)
        q = [q for q in shapely.get_parts(s) if q.geom_type == "Polygon" and q.area >= MIN_SOURCE_M2]
        if q:
            src_geoms.append(shapely.union_all(q)), src_names.append(t["name"]), src_ids.append(t["id"])
            src_levels.append(0)
    if not tracks:
        for lv, p in [(lv, g) for lv, g, k in upper if k == "platform"]:
            for q in shapely.get_parts(p.buffer(-0.5)):
                if q.geom_type == "Polygon" and q.area >= MIN_SOURCE_M2:
                    src_geoms.append(q), src_names.append("platform"), src_ids.append(""), src_levels.append(lv)
    if not src_geoms and hall is not None:
        s = shapely.intersection(hall, main).buffer(-0.5)
        src_geoms = [q for q in shapely.get_parts(s) if q.geom_type == "Polygon" and q.area >= MIN_SOURCE_M2]
        src_names = ["station hall"] * len(src_geoms)
        src_ids = [f"H{i + 1}" for i in range(len(src_geoms))]
        src_levels = [0] * len(src_geoms)
    if not src_geoms:  # no platforms and no hall: a disc at the centre
        s = shapely.intersection(centre.buffer(min(20.0, radius_m / 4)), main).buffer(-0.5)
        src_geoms = [q for q in shapely.get_parts(s) if q.geom_type == "Polygon" and q.area > 0][:1]
        src_names, src_ids, src_levels = ["station"] * len(src_geoms), ["S1"][:len(src_geoms)], [0] * len(src_geoms)
    if any(not i for i in src_ids):  # untagged platforms: P1, P2, ... west to east, then south to north
        order = sorted(range(len(src_geoms)), key=lambda k: (round(src_geoms[k].centroid.x), round(src_geoms[k].centroid.y)))
        src_geoms, src_names, src_levels = ([x[k] for k in order] for x in (src_geoms, src_names, src_levels))
        src_ids = [f"P{i + 1}" for i in range(len(src_geoms))]
        src_names = [f"Platform {i + 1}" if n == "platform" else n for i, n in enumerate(src_names)]
    areas = np.array([g.area for g in src_geoms])
    counts = _share(agents, areas) if len(areas) else []
    # what a train may unload onto each platform (estimated from its area): a timetable written for
    # another station's platforms is cut down to it (demand.fit_to_platforms)
    per_train = [float(max(MIN_PER_TRAIN, round(a * PLATFORM_UNLOAD_PPM2))) if tracks or lv != 0 else math.nan
                 for a, lv in zip(areas, src_levels)]
    sources = gpd.GeoDataFrame({"id": src_ids, "count": counts, "release_s": 0.0, "name": src_names,
                                "level": src_levels, "max_per_train": per_train}, geometry=src_geoms, crs=city.crs)

    walkable = gpd.GeoDataFrame({"name": [f"{name} (level 0)"] + [f"{k} (level {lv})" for lv, _, k in upper],
                                 "kind": ["station_area"] + [k for _, _, k in upper],
                                 "level": [0] + [lv for lv, _, _ in upper]},
                                geometry=[main] + [g for _, g, _ in upper], crs=city.crs)
    # Ticket gates: tagged barriers, else estimated at the passages from the platforms to the concourse.
    tickets, ticket_note = _ticket_gates(osm, main, tracks, city.crs)
    fences = None
    if len(tickets) and tickets["estimated"].all():
        tops, fences = _fenced_tops(connectors, tracks, len(tickets), city.crs)
        if len(tops):
            tickets = gpd.GeoDataFrame(pd.concat([tickets, tops], ignore_index=True), crs=city.crs)
            ticket_note += f", {len(tops)} more fenced in at the tops of the platforms' stairs and lifts"
    if len(tickets):
        gates = gpd.GeoDataFrame(pd.concat([gates, tickets], ignore_index=True), crs=city.crs)
    layers = dict(city.layers)
    layers.update(walkable=walkable, gates=gates, sources=sources)
    if fences is not None and len(fences):
        layers["obstacles"] = fences
    if len(connectors):
        layers["connectors"] = connectors
    else:
        layers.pop("connectors", None)
    floors_kept = {0, *(lv for lv, _, _ in upper)}
    meta = dict(city.meta)
    meta["station_area"] = {"station": name, "around": around, "radius_m": float(radius_m),
                            "centre": [float(cx), float(cy)], "agents": int(agents),
                            "platforms": [t["name"] for t in tracks], "levels": sorted(floors_kept), "lifts": lifts}
    out = City(name=city.name, crs=city.crs, layers=layers, terrain=city.terrain, root=city.root,
               attribution=city.attribution, meta=meta)
    out, ticket_note = _keep_valid_tickets(out, ticket_note, tracks)
    meta["station_area"]["ticket_gates"] = ticket_note
    if not return_info:
        return out
    g = out.layer("gates")
    n_exit, n_ticket = int((g["kind"] != "ticket_gate").sum()), int((g["kind"] == "ticket_gate").sum())
    info = {"station": name, "centre": (float(cx), float(cy)), "radius_m": float(radius_m),
            "walkable_m2": float(main.area), "dropped_fragments_m2": dropped_m2, "gates": n_exit,
            "ticket_gates": n_ticket, "sources": len(sources), "platforms": [t["name"] for t in tracks],
            "levels": sorted(floors_kept), "hall": hall is not None, "connectors": conn_info, "lifts": lifts}
    info["summary"] = (f"station {name!r} ({radius_m:g} m): walkable {main.area:,.0f} m² on level 0"
                       + (f" and {', '.join(str(v) for v in sorted(floors_kept) if v != 0)}" if len(floors_kept) > 1 else "")
                       + f", {len(tracks)} platforms ({', '.join(t['name'] for t in tracks) or 'none tagged'}), "
                       f"{n_exit} exits, {n_ticket} ticket gates ({ticket_note}), {len(sources)} sources with "
                       f"{int(sum(counts))} agents; {conn_info['summary']}; {len(lifts)} lifts placed as connectors (capacity and "
                       "round trip estimated: the crowd model's defaults)"
                       + (f", {len(lift_info['not_placed'])} not placed ("
                          f"{'; '.join(sorted({x['reason'] for x in lift_info['not_placed']}))})"
                          if lift_info["not_placed"] else ""))
    return out, info


# Walkways of a station (OSM highway values): its floors, passages and the paths between its platforms.
STATION_WALKWAYS = {"footway", "pedestrian", "corridor", "platform", "path", "steps", "living_street"}
UNDERGROUND_REACH_M = 15.0  # the passages below ground are the station's this far beyond its precinct
DOOR_HALF_WIDTH_M = 1.5  # a door node becomes an exit 3 m wide on the station's outline
DOOR_MERGE_M = 3.0
DOOR_SNAP_M = 1.5  # an entrance node this close to the outline of the station's walkable area is its door
NOT_DOORS = {"service", "garage", "no", "emergency_ward_entrance"}
TICKET_BARRIERS = {"turnstile", "fare_gate", "full-height_turnstile"}
TICKET_ROW_M = 4.0  # tagged barriers this close together are one bank of ticket gates
TICKET_INTO_WALL_M = 0.6
PRECINCT_CLOSE_M = 10.0
# A station's passages below ground are wider than a street's footway (Helsinki's platform tunnel:
# about 8 m); without a width tag they are taken as this wide (estimated).
TUNNEL_WIDTH_M = 6.0
STREET_NAME_M = 40.0
TUNNELS = {"yes", "true", "1"}


def way_level(row) -> int:
    """The floor of a way: its ``level`` when one whole number, else its ``layer`` when below ground,
    else -1 for a tunnel (OSM implies layer=-1 for tunnel=yes), else 0."""
    levels = parse_level_list(row.get("level"))
    if len(levels) == 1 and levels[0] == int(levels[0]):
        return int(levels[0])
    try:
        layer = int(float(str(row.get("layer") or "0").strip() or 0))
    except ValueError:
        layer = 0
    if layer < 0:
        return layer
    if str(row.get("tunnel") or "").strip().lower() in TUNNELS and not layer:
        return -1
    return 0


def _level_implied(row) -> bool:
    """Whether a way's floor is only implied (``tunnel=yes`` without ``level`` or ``layer``)."""
    tagged = parse_level_list(row.get("level")) or str(row.get("layer") or "").strip() not in ("", "nan", "None")
    return not tagged and str(row.get("tunnel") or "").strip().lower() in TUNNELS


def _by_level(ways) -> dict:
    if not len(ways):
        return {}
    lv = np.array([way_level(r) for _, r in ways.iterrows()], dtype=int)
    return {int(v): ways[lv == v] for v in np.unique(lv)}


def _natural(ref: str):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", ref) if p]


def _platform_areas(city: City, circle, osm) -> gpd.GeoDataFrame:
    """The platform areas of the street level within the circle, with their ``ref`` (from the OSM file)
    and whether they are railway platforms; only the railway ones when there are any."""
    w = city.layer("walkable")
    cols = ["id", "ref", "railway", "name", "geometry"]
    if not len(w) or "kind" not in w.columns:
        return gpd.GeoDataFrame(pd.DataFrame(columns=cols), geometry="geometry", crs=city.crs)
    w = w[(w["kind"].astype(str) == "platform") & w.intersects(circle)]
    if "level" in w.columns:
        w = w[w["level"].fillna(0).astype(int) == 0]
    if "layer" in w.columns:
        w = w[~(w["layer"].astype(float).fillna(0) < 0)]
    w = w.copy()
    w["geometry"] = shapely.intersection(w.geometry.to_numpy(), circle)
    tags = osm["areas"].drop_duplicates("id").set_index("id") if osm is not None and len(osm["areas"]) else None
    w["ref"] = [str(tags["ref"].get(i) or "").strip() if tags is not None and i in tags.index and
                isinstance(tags["ref"].get(i), str) else "" for i in w["id"]]
    w["railway"] = [bool(tags is not None and i in tags.index and tags["railway"].get(i) == "platform") for i in w["id"]]
    if w["railway"].any():
        w = w[w["railway"]]
    w = w[~w.geometry.is_empty]
    return gpd.GeoDataFrame(w[cols].reset_index(drop=True), geometry="geometry", crs=city.crs)


def merge_platforms(plats: gpd.GeoDataFrame, join_m: float = 1.5) -> list[dict]:
    """One platform per track: the fragments with the same ``ref`` merged (OSM splits a platform where
    its surface or roof changes), named "Platform <ref>". A fragment that serves several tracks
    (``ref=3;4``) is walkable floor shared by them, not one of them. Untagged fragments that touch
    each other (within ``join_m``) are one platform."""
    out = []
    refs = [[p.strip() for p in r.split(";") if p.strip()] for r in plats["ref"].astype(str)]
    single = {}
    for k, (rs, g, i) in enumerate(zip(refs, plats.geometry, plats["id"])):
        if len(rs) == 1:
            single.setdefault(rs[0], []).append((g, i))
    for ref in sorted(single, key=_natural):
        geoms = [g for g, _ in single[ref]]
        out.append({"ref": ref, "name": f"Platform {ref}", "id": f"P{ref}" if re.fullmatch(r"[\w.-]{1,8}", ref) else "",
                    "geometry": shapely.union_all(geoms), "ids": {i for _, i in single[ref]}})
    loose = [(g, i) for rs, g, i in zip(refs, plats.geometry, plats["id"]) if not rs]
    if loose:
        blobs = shapely.get_parts(shapely.union_all([g.buffer(join_m / 2) for g, _ in loose]))
        for b in blobs:
            mine = [(g, i) for g, i in loose if g.intersects(b)]
            if mine:
                named = [str(n) for n in plats.set_index("id").loc[[i for _, i in mine], "name"] if str(n)]
                out.append({"ref": "", "name": named[0] if named else "platform", "id": "",
                            "geometry": shapely.union_all([g for g, _ in mine]), "ids": {i for _, i in mine}})
    shared = {i for rs, i in zip(refs, plats["id"]) if len(rs) > 1}
    for t in out:  # the shared fragments are walkable with the platforms they serve
        t["ids"] = t["ids"] | shared
    if len({t["id"] for t in out if t["id"]}) != sum(1 for t in out if t["id"]):  # ids that clash: number them
        for t in out:
            t["id"] = ""
    return out


def _doors(osm, main, hall) -> list[tuple[object, str]]:
    """Exits at the OSM entrance nodes on the outline of the station's walkable area (``entrance=*``,
    ``railway=subway_entrance``/``train_station_entrance``; service and garage doors left out)."""
    if osm is None or not len(osm["points"]):
        return []
    pts = osm["points"]
    is_door = (pts["entrance"].notna() & ~pts["entrance"].astype(str).isin(NOT_DOORS)) | \
        pts["railway"].isin(["subway_entrance", "train_station_entrance"])
    pts = pts[is_door & (pts.geometry.distance(main.boundary) < DOOR_SNAP_M)]
    if hall is not None:
        pts = pts[pts.geometry.distance(hall.boundary) < DOOR_SNAP_M]
    out = []
    for _, r in pts.iterrows():
        line = shapely.line_merge(shapely.intersection(main.boundary, r.geometry.buffer(DOOR_HALF_WIDTH_M)))
        parts = [p for p in shapely.get_parts(line) if p.geom_type == "LineString"]
        if not parts:
            continue
        line = max(parts, key=lambda p: p.length)
        if line.length < 1.0 or any(line.distance(g) < DOOR_MERGE_M for g, _ in out):
            continue
        name = str(r["name"]) if isinstance(r["name"], str) else ""
        ref = str(r["ref"]) if isinstance(r["ref"], str) else ""
        kind = str(r["entrance"]) if isinstance(r["entrance"], str) and r["entrance"] not in ("yes",) else ""
        out.append((line, name or (f"entrance {ref}" if ref else f"{kind} entrance".strip())))
    return out


LIFT_CAR_M = 1.5  # a lift node becomes a car this deep, its doors at the two ends (EN 81-20, 1,000 kg: 1.1 x 2.1 m)
LIFT_WIDTH_M = 1.1
LIFT_REACH_M = 1.0  # a lift node serves the floors whose walkable area lies this near


def place_lifts(osm, precinct, floors: dict, crs):
    """Lifts (``highway=elevator`` nodes) as connectors of kind lift between the lowest and highest
    floor they serve: their ``level`` tag (``-1;0``), else the floors whose walkable area holds the
    node. A lift is drawn as its car, LIFT_CAR_M deep, turned so that the lobbies in front of its two
    doors have the most floor; capacity and round trip are the crowd model's defaults (estimated).
    Returns (connectors layer, info)."""
    rows, geoms, skipped = [], [], []
    pts = osm["points"] if osm is not None and len(osm["points"]) else None
    if pts is not None:
        pts = pts[(pts["highway"] == "elevator") & pts.within(precinct)]
    for _, r in (pts.iterrows() if pts is not None else ()):
        c = np.array([r.geometry.x, r.geometry.y])
        tagged = [int(v) for v in parse_level_list(r.get("level")) if v == int(v) and int(v) in floors]
        served = sorted(set(tagged)) if len(set(tagged)) >= 2 else \
            sorted(v for v in floors if floors[v].distance(r.geometry) <= LIFT_REACH_M)
        if len(served) < 2:
            skipped.append({"id": str(r["id"]), "reason": "it serves one floor of the station area only"})
            continue
        lo, hi = served[0], served[-1]
        best, best_area = None, 0.0
        for ang in np.linspace(0.0, 2 * np.pi, 16, endpoint=False):
            u = np.array([np.cos(ang), np.sin(ang)])
            a, b = c - u * LIFT_CAR_M / 2, c + u * LIFT_CAR_M / 2
            lobby_a = shapely.Point(a - u * 0.75).buffer(0.75)
            lobby_b = shapely.Point(b + u * 0.75).buffer(0.75)
            if floors[lo].distance(shapely.Point(a)) > END_TOL_M or floors[hi].distance(shapely.Point(b)) > END_TOL_M:
                continue
            area = min(shapely.intersection(lobby_a, floors[lo]).area, shapely.intersection(lobby_b, floors[hi]).area)
            if area > best_area + 1e-9:
                best, best_area = shapely.LineString([a, b]), area
        if best is None or best_area < 0.5:
            skipped.append({"id": str(r["id"]), "reason": "no floor in front of a door on each level"})
            continue
        rows.append({"id": str(r["id"]), "kind": "lift", "from_level": lo, "to_level": hi, "width_m": LIFT_WIDTH_M,
                     "direction": "both", "speed_mps": np.nan})
        geoms.append(best)
    layer = gpd.GeoDataFrame(rows, columns=CONNECTOR_COLUMNS, geometry=geoms, crs=crs)
    return layer, {"placed": len(rows), "not_placed": skipped}


def infer_connectors(roads, precinct, floors: dict, crs, placed: set):
    """Stairs and escalators (``highway=steps``, ``conveying=*``) without two levels tagged, whose ends
    meet ways on two different floors (:func:`way_level` of the ways that share the end): drawn
    from the lower to the upper end. An escalator tagged ``conveying=yes``/``reversible`` has no
    known direction: it is placed running up (estimated)."""
    rows, geoms, skipped, estimated = [], [], [], 0
    if not len(roads):
        return gpd.GeoDataFrame(rows, columns=CONNECTOR_COLUMNS, geometry=geoms, crs=crs), \
            {"placed": 0, "not_placed": [], "summary": "no ways"}
    conv = roads["conveying"].astype(str).str.lower() if "conveying" in roads.columns else pd.Series("", index=roads.index)
    is_conn = (roads["kind"].astype(str) == "steps") | conv.isin(ESCALATOR_CONVEYING)
    cand = roads[is_conn & roads.intersects(precinct) & ~roads["id"].astype(str).isin(placed)]
    other = roads[~is_conn]
    tree = shapely.STRtree(other.geometry.to_numpy())
    other_levels = np.array([way_level(r) for _, r in other.iterrows()], dtype=int)
    other_implied = np.array([_level_implied(r) for _, r in other.iterrows()], dtype=bool)

    def at_end(pt) -> np.ndarray:
        return tree.query(pt, predicate="dwithin", distance=0.05)

    def end_levels(pt) -> set:
        return set(other_levels[at_end(pt)].tolist())

    def end_level(pt, other_pt):
        # a way's end on one floor, its other end among ways of several (a landing where a tunnel
        # meets the street): the floor that differs from the first end's, the nearest of them
        mine, theirs = end_levels(pt), end_levels(other_pt)
        if len(mine) == 1:
            return next(iter(mine))
        if len(theirs) == 1 and mine - theirs:
            t = next(iter(theirs))
            return min(mine - theirs, key=lambda v: (abs(v - t), v))
        if not mine and len(theirs) == 1 and min(theirs) < 0 and floors[0].distance(pt) <= END_TOL_M:
            return 0  # stairs up from below ground, ending in the hall or on a square (an area, not a way)
        if not mine:  # a free end: the floor whose walkable area it lies on, when one is clearly nearest
            d = sorted((floors[v].distance(pt), v) for v in floors)
            if d and d[0][0] <= FREE_END_M and (len(d) == 1 or d[1][0] - d[0][0] >= FREE_END_M / 2):
                return d[0][1]
        return None

    def implied_only(pt) -> bool:
        k = at_end(pt)
        return bool(len(k)) and bool(other_implied[k].all())

    for _, r in cand.iterrows():
        line = r.geometry
        rid = str(r["id"])
        if line.geom_type != "LineString":
            continue
        a, b = shapely.Point(line.coords[0]), shapely.Point(line.coords[-1])
        la, lb = end_level(a, b), end_level(b, a)
        if la is not None and la == lb and la < 0 and implied_only(a) != implied_only(b):
            # steps between a way tagged below ground (layer, level) and one only implied there by
            # tunnel=yes (often an indoor passage at street level): the steps say the floors differ,
            # so the implied end is the floor above, where its walkable area is there
            up, end = la + 1, (a if implied_only(a) else b)
            if up in floors and floors[up].distance(end) <= END_TOL_M:
                la, lb = (up, lb) if end is a else (la, up)
        if la is None or lb is None or la == lb:
            conveying = str(r.get("conveying") or "").lower() in ESCALATOR_CONVEYING
            if len(set(parse_level_list(r.get("level")))) >= 2 or None in (la, lb) and {la, lb} - {None} or \
                    conveying and la is not None and la == lb:
                skipped.append({"id": rid, "reason": "the levels of its two ends are not known or not different"})
            continue  # (steps with both ends on one floor are walkable floor, not a connector)
        if la > lb:
            line, la, lb, a, b = shapely.LineString(list(line.coords)[::-1]), lb, la, b, a
            reversed_ = True
        else:
            reversed_ = False
        if la not in floors or lb not in floors or floors[la].distance(a) > END_TOL_M or floors[lb].distance(b) > END_TOL_M:
            skipped.append({"id": rid, "reason": "an end does not lie on the walkable area of its level"})
            continue
        conveying = str(r.get("conveying") or "").lower()
        kind = "escalator" if conveying in ESCALATOR_CONVEYING else "stairs"
        direction = "both"
        if kind == "escalator":
            if conveying in ("forward", "backward"):
                along = (conveying == "forward") != reversed_
                direction = "up" if along else "down"
            else:
                direction, estimated = "up", estimated + 1
        w = parse_height_m(r.get("width")) or DEFAULT_WIDTH_M[kind]
        w = min(max(w, 0.6), 1.0) if kind == "escalator" else max(w, 0.6)
        rows.append({"id": rid, "kind": kind, "from_level": int(la), "to_level": int(lb), "width_m": float(w),
                     "direction": direction, "speed_mps": 0.5 if kind == "escalator" else np.nan})
        geoms.append(line)
    layer = gpd.GeoDataFrame(rows, columns=CONNECTOR_COLUMNS, geometry=geoms, crs=crs)
    summary = (f"{len(rows)} more placed from the floors of the ways at their ends"
               + (f" ({estimated} escalator(s) of unknown direction set to run up)" if estimated else "")
               + (f", {len(skipped)} not placed" if skipped else ""))
    return layer, {"placed": len(rows), "not_placed": skipped, "estimated_direction": estimated, "summary": summary}


def _ticket_gates(osm, main, tracks, crs):
    """Ticket gates (kind ticket_gate): banks of the tagged barriers (``barrier=turnstile``/``fare_gate``)
    on the station's floor, each a line through its row from wall to wall; else, estimated, one bank
    across every passage from a platform to the rest of the station."""
    lines, names, est = [], [], []
    if osm is not None and len(osm["points"]):
        p = osm["points"]
        p = p[p["barrier"].isin(TICKET_BARRIERS) & p.within(main)]
        if len(p):
            blobs = shapely.get_parts(shapely.union_all(p.geometry.buffer(TICKET_ROW_M / 2).to_numpy()))
            for k, blob in enumerate(blobs):
                row = p[p.within(blob)]
                xy = np.array([(g.x, g.y) for g in row.geometry])
                c = xy.mean(axis=0)
                if len(xy) > 1:
                    u = np.linalg.svd(xy - c)[2][0]
                else:  # one barrier: across the narrowest way through it
                    ang = np.linspace(0, np.pi, 12, endpoint=False)
                    lens = [shapely.intersection(main, shapely.LineString([c - 20 * np.array([np.cos(t), np.sin(t)]),
                                                                          c + 20 * np.array([np.cos(t), np.sin(t)])])).length
                            for t in ang]
                    t = ang[int(np.argmin(lens))]
                    u = np.array([np.cos(t), np.sin(t)])
                cut = shapely.intersection(main, shapely.LineString([c - 30 * u, c + 30 * u]))
                seg = min((q for q in shapely.get_parts(cut) if q.geom_type == "LineString"),
                          key=lambda q: q.distance(shapely.Point(c)), default=None)
                if seg is not None and seg.length >= 1.0:
                    lines.append(seg), names.append(f"ticket gates {k + 1}"), est.append(False)
    note = f"{len(lines)} tagged"
    if not lines and tracks:
        paid = shapely.intersection(shapely.union_all([t["geometry"] for t in tracks]).buffer(0.01), main)
        inner = shapely.intersection(shapely.boundary(paid), main.buffer(-0.3))
        merged = shapely.line_merge(inner) if not inner.is_empty else inner
        for seg in shapely.get_parts(merged):
            if seg.geom_type != "LineString" or seg.length < 1.2:
                continue
            c = np.asarray(seg.coords)[[0, -1], :2]
            u = (c[1] - c[0]) / max(float(np.hypot(*(c[1] - c[0]))), 1e-9)
            # a bank is straight, from wall to wall (into them: no gap at its ends)
            seg = shapely.LineString([c[0] - u * TICKET_INTO_WALL_M, c[1] + u * TICKET_INTO_WALL_M])
            where = next((t["name"] for t in tracks if t["geometry"].distance(seg) < 0.5), "platform")
            lines.append(seg), names.append(f"ticket gates, {where}"), est.append(True)
        note = f"{len(lines)} estimated at the platform passages (none tagged)"
    gates = gpd.GeoDataFrame({"id": [f"T{i + 1}" for i in range(len(lines))], "kind": "ticket_gate", "open": True,
                              "name": names, "width_m": [round(g.length, 2) for g in lines], "azimuth_deg": np.nan,
                              "level": 0, "estimated": est}, geometry=lines, crs=crs)
    return gates, note


FENCE_M = 0.5  # the walls the import draws to close an estimated fare line (thicker than two cells of the navigation fields)
FENCED_LANDING_M = 3.2  # a fenced landing: 2 m of floor beyond the connector's end, then the bank's cabinets


def _fenced_tops(connectors, tracks, n0: int, crs):
    """Estimated ticket gates where a platform's stairs, escalators and lifts lead down (to a floor
    whose exits the fare line at the platforms' passages does not cut): at the upper end of each, a
    landing fenced in on both sides (obstacles, level 0) and closed by a bank across it, so that
    passengers validate before going down. Returns (gates, obstacles); each obstacle names its bank
    (``bank``), so that a bank left out takes its fences with it."""
    lines, names, fence_geoms, fence_bank = [], [], [], []
    for _, c in connectors.iterrows():
        track = next((t for t in tracks if int(c["to_level"]) == 0 and
                      t["geometry"].distance(shapely.Point(c.geometry.coords[-1])) < 1.0), None)
        if track is None:
            continue
        xy = np.asarray(c.geometry.coords)[:, :2]
        top, u = xy[-1], xy[-1] - xy[-2]
        u = u / max(float(np.hypot(*u)), 1e-9)
        n = np.array([-u[1], u[0]])
        w = float(c["width_m"])
        half = w / 2 + (0.5 if c["kind"] == "lift" else 0.0)  # a lift: its lobby, wider than the car

        def box(a0, a1, l0, l1):  # along the axis from a0 to a1, across it from l0 to l1 (local metres)
            return shapely.Polygon([top + u * a + n * b for a, b in ((a0, l0), (a1, l0), (a1, l1), (a0, l1))])

        bank_id = f"T{n0 + len(lines) + 1}"
        for sgn in (-1.0, 1.0):  # a side wall, and where the lobby is wider than the car, its back
            side = shapely.union(box(-0.3, FENCED_LANDING_M, sgn * half, sgn * (half + FENCE_M)),
                                 box(-0.3, -0.1, sgn * (w / 2 - 0.05), sgn * (half + FENCE_M)))
            fence_geoms.append(shapely.make_valid(side)), fence_bank.append(bank_id)
        at = FENCED_LANDING_M - 0.6  # the bank's cabinets (1.2 m deep) end where the fences do
        lines.append(shapely.LineString([top + u * at - n * (half + FENCE_M / 2), top + u * at + n * (half + FENCE_M / 2)]))
        names.append(f"ticket gates, {c['kind']} down from {track['name']}")
    gates = gpd.GeoDataFrame({"id": [f"T{n0 + i + 1}" for i in range(len(lines))], "kind": "ticket_gate", "open": True,
                              "name": names, "width_m": [round(g.length, 2) for g in lines], "azimuth_deg": np.nan,
                              "level": 0, "estimated": True}, geometry=lines, crs=crs)
    fences = gpd.GeoDataFrame({"id": [f"F{i + 1}" for i in range(len(fence_geoms))],
                               "name": [f"fence of {b} (estimated)" for b in fence_bank], "bank": fence_bank,
                               "level": 0}, geometry=fence_geoms, crs=crs)
    return gates, fences


def _keep_valid_tickets(city: City, note: str, tracks=()):
    """Leave out the ticket gates the crowd model would refuse (a way round them, a paid area on both
    sides): the model's own check (geometry.build_station), one gate at a time; the note says which
    way leads round each."""
    from twin.core.model_contract import validate_params

    from .geometry import build_station
    from .model import CONNECTORS, StationDispersalModel

    p = validate_params(StationDispersalModel, {}, "station import", None)
    for k in ONWARD_SHARES:
        p[k] = 0.0
    p["share_walk"] = 1.0
    dropped = []
    for _ in range(len(city.layer("gates")) + 1):
        try:
            build_station(city, p, city.extra_layer(CONNECTORS))
            break
        except UserError as e:
            m = re.search(r'ticket gate "([^"]+)"', str(e))
            if not m:  # not the ticket gates: the report says so, `city check` and the run say more
                note += f"; the crowd model refuses the station as derived: {e}"
                break
            g = city.layers["gates"]
            dropped.append(g[g["id"] == m.group(1)].iloc[0])
            city.layers["gates"] = g[g["id"] != m.group(1)].reset_index(drop=True)
            obst = city.layers.get("obstacles")
            if obst is not None and "bank" in obst.columns:  # its fences go with it
                city.layers["obstacles"] = obst[obst["bank"] != m.group(1)].reset_index(drop=True)
    if dropped:
        why = [_way_round(city, d, tracks) for d in dropped]
        why = [w + (f" ({why.count(w)} banks)" if why.count(w) > 1 else "") for w in dict.fromkeys(why)]
        note += f"; {len(dropped)} left out, as the crowd model finds a way round them: " + "; ".join(why)
    return city, note


def _way_round(city: City, bank, tracks) -> str:
    """Why a bank at a platform's passage does not cut the platform off from the exits: the stairs,
    escalators and lifts on that platform (to a floor with exits of its own), or its own exits."""
    from .model import CONNECTORS

    name = str(bank["name"])
    track = next((t for t in tracks if name.endswith(t["name"])), None)
    if track is None:
        return f"{name} (a passage beside it)"
    plat = track["geometry"]
    conn = city.extra_layer(CONNECTORS)
    down = []
    if conn is not None and len(conn):
        for _, c in conn.iterrows():
            top = shapely.Point(c.geometry.coords[-1])
            if int(c["to_level"]) == 0 and plat.distance(top) < 1.0:
                down.append(f"{c['kind']} {c['id']} to level {int(c['from_level'])}")
    gates = city.layer("gates")
    exits = gates[(gates["kind"] != "ticket_gate") & (gates["level"].astype(int) == 0)]
    own = [str(i) for i, g in zip(exits["id"], exits.geometry) if plat.distance(g) < 1.0]
    how = down + ([f"its own exit{'s' if len(own) > 1 else ''} {', '.join(own)}"] if own else [])
    return f"{track['name']}: by {', '.join(how)}" if how else f"{track['name']}: by the platforms beside it"


ESCALATOR_CONVEYING = {"yes", "forward", "backward", "reversible"}
CONNECTOR_COLUMNS = ["id", "kind", "from_level", "to_level", "width_m", "direction", "speed_mps"]
ONWARD_SHARES = ("share_metro", "share_bus", "share_taxi")
DEFAULT_WIDTH_M = {"stairs": 2.0, "escalator": 1.0}
END_TOL_M = 0.5  # a connector's end must lie this close to the walkable area of its level
FREE_END_M = 2.0  # an end that meets no way is on the floor whose walkable area is this near (and clearly nearest)


def derive_connectors(roads, circle, floors: dict, crs):
    """Stairs and escalators between levels from OSM ways (``highway=steps``, ``conveying=*``) whose
    ``level`` tag names two floors (``0;1``). The way is drawn from its lower to its upper end when
    ``incline=up`` (reversed for ``incline=down``); an escalator runs along the way
    (``conveying=forward``), against it (``backward``) or up (``yes``/``reversible``). A way is placed
    when both ends lie on the walkable area of their levels (``floors``: level -> polygon); the
    others are reported with the reason. Returns (connectors layer, info)."""
    rows, geoms, skipped = [], [], []
    cand = roads.iloc[:0]
    if len(roads) and "level" in roads.columns:
        near = roads[roads.intersects(circle)]
        conv = near["conveying"].astype(str).str.lower() if "conveying" in near.columns else ""
        cand = near[(near["kind"].astype(str) == "steps") | conv.isin(ESCALATOR_CONVEYING)]
    for _, r in cand.iterrows():
        levels = parse_level_list(r.get("level"))
        rid = str(r["id"])
        if len(set(levels)) < 2:
            continue  # steps within one floor: walkable, not a connector
        lo, hi = min(levels), max(levels)
        if lo != int(lo) or hi != int(hi):
            skipped.append({"id": rid, "level": str(r["level"]), "reason": "a level is not a whole number"})
            continue
        lo, hi = int(lo), int(hi)
        incline = str(r.get("incline") or "").lower()
        line = r.geometry
        if line.geom_type != "LineString":
            skipped.append({"id": rid, "level": str(r["level"]), "reason": "not one line"})
            continue
        if incline in ("down", "-"):
            line = shapely.LineString(list(line.coords)[::-1])
        elif incline not in ("up", "+") and not incline.endswith("%"):
            skipped.append({"id": rid, "level": str(r["level"]),
                            "reason": "no incline tag: which end is up is unknown"})
            continue
        conveying = str(r.get("conveying") or "").lower()
        kind = "escalator" if conveying in ESCALATOR_CONVEYING else "stairs"
        direction = "both"
        if kind == "escalator":
            along = conveying != "backward"
            direction = "up" if along == (incline not in ("down", "-")) else "down"
        missing = [lv for lv in (lo, hi) if lv not in floors]
        if missing:
            skipped.append({"id": rid, "level": str(r["level"]),
                            "reason": f"level {missing[0]} has no walkable area in the station area"})
            continue
        a, b = shapely.Point(line.coords[0]), shapely.Point(line.coords[-1])
        if floors[lo].distance(a) > END_TOL_M or floors[hi].distance(b) > END_TOL_M:
            skipped.append({"id": rid, "level": str(r["level"]),
                            "reason": "an end does not lie on the walkable area of its level"})
            continue
        w = parse_height_m(r.get("width")) or DEFAULT_WIDTH_M[kind]
        w = min(max(w, 0.6), 1.0) if kind == "escalator" else max(w, 0.6)
        rows.append({"id": rid, "kind": kind, "from_level": lo, "to_level": hi, "width_m": float(w),
                     "direction": direction, "speed_mps": 0.5 if kind == "escalator" else np.nan})
        geoms.append(line)
    layer = gpd.GeoDataFrame(rows, columns=["id", "kind", "from_level", "to_level", "width_m", "direction",
                                            "speed_mps"], geometry=geoms, crs=crs)
    n = len(rows) + len(skipped)
    summary = (f"{n} stairs/escalators with two levels tagged: {len(rows)} placed as connectors"
               + (f", {len(skipped)} not placed ({'; '.join(sorted({s['reason'] for s in skipped}))})" if skipped else ""))
    return layer, {"candidates": n, "placed": len(rows), "not_placed": skipped, "summary": summary}


def _share(total: int, weights: np.ndarray) -> list[int]:
    """Integers ≥ 1 summing to ``total`` (or to len(weights) when total is smaller), by largest remainder."""
    n = len(weights)
    total = max(int(total), n)
    raw = weights / weights.sum() * (total - n)
    base = np.floor(raw).astype(int)
    rest = total - n - base.sum()
    order = np.argsort(-(raw - base))
    base[order[:rest]] += 1
    return (base + 1).tolist()


def poi_kind(t: dict) -> str | None:
    """The station's POI kind of a feature's OSM tags, or None."""
    g = lambda k: (t.get(k) or "")  # noqa: E731
    railway, pt, amenity = g("railway"), g("public_transport"), g("amenity")
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
    return None


def derive(city: City, options: dict):
    """With ``walkable_around``: the station area around it (walkable, gates, sources, connectors)."""
    if not options.get("walkable_around"):
        return city, []
    city, info = derive_station_area(city, options["walkable_around"], options.get("walkable_radius_m", 250.0),
                                     return_info=True)
    return city, [info["summary"]]


# The layers of a city package the crowd model defines (CONTRACT §1).
WALKABLE = LayerSpec("walkable", "vector", "where pedestrians may walk", "Polygon",
                     aliases=("walkable", "pedestrian", "pedestrianareas", "walkways", "squares"),
                     defaults=(("name", ""), ("level", 0)), levels=True, generated_ids="WA", whole_polygons=True)
OBSTACLES = LayerSpec("obstacles", "vector", "walls, pillars and fences inside walkable", "Polygon",
                      aliases=("obstacles", "obstacle", "walls"), defaults=(("name", ""), ("level", 0)), levels=True,
                      generated_ids="O")
GATES = LayerSpec("gates", "vector", "where agents leave or pass: LineString or Polygon with id, kind "
                  "(exit, entrance or ticket_gate), open (bool)", "any", ("id",),
                  aliases=("gates", "gate", "exits", "entrances"),
                  defaults=(("kind", "exit"), ("open", True), ("level", 0)), levels=True, ids_required=True)
SOURCES = LayerSpec("sources", "vector", "where and when agents appear: Polygon with id, count (int), release_s "
                    "(default 0), optionally max_per_train (the most passengers one train of a timetable unloads "
                    "there)", "Polygon", ("id", "count"), aliases=("sources", "source", "spawns", "origins"),
                    defaults=(("release_s", 0.0), ("level", 0)), levels=True, ids_required=True,
                    numbers=("count", "release_s"), counts=("count",))
CITY_LAYERS = (WALKABLE, OBSTACLES, GATES, SOURCES)
# The view draws the floor pale with the station hall's roof see-through over it, obstacles as 1.2 m
# blocks, and gates as ribbons, green when open and red when closed, with their ids above them.
LAYER_VIEWS = (LayerView("walkable", "Walkable areas", colours=("#f4f1ea",), drawing="area", roofs_see_through=True),
               LayerView("obstacles", "Obstacles", colours=("#7a6a5a",), drawing="extruded", height_m=1.2),
               LayerView("gates", "Gates", width_m=1.6, state_column="open", colours=("#d62728", "#2ca02c"),
                         legend=("gate closed", "gate open"), label="id", pick_radius_m=2.0),)

BUILDING_USES = (BuildingUse("station", "railway and bus station buildings", "#c27ba0", ("train_station", "transportation")),)
POI_KINDS = (
    PoiKind("railway_station", "a railway station (tourists arrive by train; flood: a critical place)", "#8a3a70",
            2000, defaults=(("gates", 4),)),
    PoiKind("metro", "a metro entrance (station crowds leave by it)", "#0050a0", 1000, defaults=(("gates", 2),)),
    PoiKind("bus_stop", "a bus stop or bus terminal bay", "#e08000", 60),
    PoiKind("taxi_rank", "a taxi rank", "#d0b000", 10, defaults=(("service_time_s", 60.0),)),
)
IMPORT_HOOK = CityImportHook(
    osm_tags=("station", "subway", "train", "bus"),
    # steps and escalators between floors: the connectors
    road_columns=("level", "incline", "conveying", "width"),
    poi_tags=("railway", "public_transport", "station", "highway", "amenity"),
    poi_kind=poi_kind,
    # platforms are walkable: the crowd's sources, named by their ref
    walkable_layer="walkable",
    walkable_areas=(("railway", "platform", "platform"), ("public_transport", "platform", "platform"),
                    ("highway", "platform", "platform")),
    options=(ImportOption("walkable_around", "Derive a station crowd area (walkable, gates, sources) around this POI "
                          "kind or name, e.g. railway_station."),
             ImportOption("walkable_radius_m", "Radius of that station area.", 250.0, float)),
    derive=derive,
)

__all__ = ["derive_station_area", "derive_connectors", "STREET_WIDTH_M", "IMPORT_HOOK", "BUILDING_USES", "POI_KINDS",
           "CITY_LAYERS", "LAYER_VIEWS", "GATES", "SOURCES", "WALKABLE", "OBSTACLES"]
