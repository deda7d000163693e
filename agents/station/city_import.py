"""The station model's import hook: its POI kinds from OpenStreetMap, and the walkable area, gates
and sources around a station derived from an imported city (``IMPORT_HOOK``; the city importer calls
it, docs/models.md "Declarations").

POI kinds (the first rule that matches wins; the other models' rules come after these):
``metro`` (station=subway, railway=subway_entrance, railway=station + subway=yes; 1000 persons, 2
gates), ``railway_station`` (railway=station/halt, public_transport=station not bus-only; 2000, 4),
``bus_stop`` (highway=bus_stop, amenity=bus_station; 60, 1), ``taxi_rank`` (amenity=taxi; 10, 1,
60 s of service).

The station crowd model needs ``walkable``, ``gates`` and ``sources`` layers that OpenStreetMap does
not have. :func:`derive_station_area` builds them from the streets, squares, platforms and buildings
of an imported city (e.g. ``citytwin city import Helsinki.osm.pbf``):

- **centre**: the station found by POI kind (``railway_station``, ``metro``…) or by name (a POI or a
  building whose name contains the text, case-insensitive). When a station building (``use`` =
  "station", or the building named) lies within 150 m, it is the *station hall* and its centroid is
  the centre.
- **walkable**: within ``radius_m`` of the centre, the union of
  streets buffered by half their typical width (:data:`STREET_WIDTH_M`; motorways, trunk roads and
  tunnels are left out), the imported walkable areas (squares, pedestrian areas, platforms) and the
  station hall, minus every other building (roofs and canopies do not block walking). The piece
  connected to the station (the largest one touching the hall, else the largest) is kept, so the
  result is one connected polygon.
- **gates**: where the walkable area meets the circle (or the edge of the imported data) and a street
  leaves it: one short line on the boundary per opening, ids ``G1``… clockwise from north, kind
  "exit", open. The cut ends of platforms are walls, not gates.
- **levels and connectors**: walkable areas tagged with another whole-number ``level`` (a platform
  on ``level=1``) are kept as walkable areas of that level; ways tagged ``highway=steps`` or
  ``conveying=*`` whose ``level`` names two levels become the ``connectors`` layer (stairs and
  escalators) when both ends lie on walkable areas of their levels, and the others are reported
  (``derive_connectors``).
- **sources**: the platforms inside the walkable area (``P1``… west to east, as a scenario's
  timetable names them), else the station hall (``H1``…), shrunk by 0.5 m so they lie strictly
  inside (pieces under 20 m² are left out; underground platforms, OSM ``layer`` < 0, are
  ignored); ``agents`` people in total, shared by area, released at 0 s.
"""
from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import shapely

from twin.core.city import City
from twin.core.errors import UserError
from twin.core.model_contract import BuildingUse, CityImportHook, ImportOption, LayerSpec, LayerView, PoiKind
from twin.core.osm_values import parse_height_m, parse_level_list

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
    """A copy of ``city`` with ``walkable``, ``gates`` and ``sources`` around a station (see the module doc).

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

    pieces = []
    streets = []
    roads = city.roads
    if len(roads):
        r = roads[roads.intersects(circle) & ~roads["kind"].astype(str).isin(NOT_WALKABLE_KINDS)]
        if "tunnel" in r.columns:
            r = r[~r["tunnel"].astype(str).isin(["yes", "true", "1", "building_passage", "culvert"])]
        if len(r):
            widths = np.array([_street_width(k) for k in r["kind"]]) / 2.0
            buffered = shapely.buffer(r.geometry.to_numpy(), widths, quad_segs=4)
            pieces.extend(buffered)
            streets = [g for g, k in zip(buffered, r["kind"].astype(str)) if k not in ("platform", "corridor")]
    walk_areas = city.walkable
    platforms = []
    upper: list[tuple[int, object, str]] = []  # areas tagged with another floor level: (level, geometry, kind)
    if len(walk_areas):
        w = walk_areas[walk_areas.intersects(circle)]
        if "level" in w.columns:
            lv = w["level"].fillna(0).astype(int)
            upper = [(int(v), shapely.intersection(g, circle), str(k)) for v, g, k in
                     zip(lv[lv != 0], w[lv != 0].geometry, w[lv != 0].get("kind", ["pedestrian"] * int((lv != 0).sum())))]
            w = w[lv == 0]
        if "layer" in w.columns:  # underground platforms and concourses are not on this plane
            w = w[~(w["layer"].astype(float).fillna(0) < 0)]
        pieces.extend(w.geometry.to_numpy())
        if "kind" in w.columns:
            platforms = list(w[w["kind"] == "platform"].geometry.to_numpy())
    if hall is not None:
        pieces.append(hall)
    if not pieces:
        raise UserError(f"city {city.name!r}: no streets, squares or platforms within {radius_m:g} m of {name!r}; "
                        "increase --walkable-radius-m or import a larger area.")
    area = shapely.intersection(shapely.unary_union(pieces), circle)
    b = city.buildings
    if len(b):
        blocking = b[b.intersects(circle)]
        if "osm_building" in blocking.columns:
            blocking = blocking[~blocking["osm_building"].astype(str).isin(NON_BLOCKING_BUILDINGS)]
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
    dropped_m2 = float(sum(p.area for p in parts) - main.area)
    main = shapely.make_valid(main)
    if main.geom_type != "Polygon":
        main = max((p for p in shapely.get_parts(main) if p.geom_type == "Polygon"), key=lambda p: p.area)

    # Gates: the openings of the area on the circle.
    ring = circle.exterior.buffer(0.05)
    street_union = shapely.unary_union(streets).buffer(0.1) if streets else None
    on_circle = shapely.line_merge(shapely.intersection(main.boundary, ring)) if main.intersects(ring) else None
    gate_lines = [g for g in shapely.get_parts(on_circle)] if on_circle is not None else []
    gate_lines = [g for g in gate_lines if g.geom_type == "LineString" and g.length >= 1.0]
    if street_union is not None:  # openings where streets leave, not the cut ends of platforms
        gate_lines = [g for g in gate_lines if shapely.intersection(g, street_union).length >= 1.0]
    cx, cy = centre.x, centre.y

    def azimuth(g):
        p = g.interpolate(0.5, normalized=True)
        return math.degrees(math.atan2(p.x - cx, p.y - cy)) % 360.0

    gate_lines.sort(key=azimuth)
    gate_names = []
    for g in gate_lines:
        near = roads[roads.geometry.distance(g) < 2.0] if len(roads) else roads
        names = [n for n in near["name"].astype(str) if n] if len(near) else []
        gate_names.append(names[0] if names else "")
    gates = gpd.GeoDataFrame(
        {"id": [f"G{i + 1}" for i in range(len(gate_lines))], "kind": "exit", "open": True, "name": gate_names,
         "width_m": [round(g.length, 2) for g in gate_lines],
         "azimuth_deg": [round(azimuth(g), 1) for g in gate_lines]},
        geometry=gate_lines, crs=city.crs)

    upper = [(lv, g, k) for lv, g, k in upper if not g.is_empty and g.area > 0]
    floors = {0: main}
    for lv, g, _ in upper:
        floors[lv] = shapely.union(floors[lv], g) if lv in floors else g
    connectors, conn_info = derive_connectors(city.roads, circle, floors, city.crs)
    # other floors are kept only where stairs or escalators lead to them from the street level
    reach, grew = {0}, True
    while grew:
        grew = False
        for _, c in connectors.iterrows():
            if (c["from_level"] in reach) != (c["to_level"] in reach):
                reach |= {c["from_level"], c["to_level"]}
                grew = True
    dropped_levels = sorted({lv for lv, _, _ in upper if lv not in reach})
    upper = [(lv, g, k) for lv, g, k in upper if lv in reach]
    if dropped_levels:
        conn_info["summary"] += (f"; walkable areas on level(s) {', '.join(map(str, dropped_levels))} left out "
                                 "(no stairs or escalator placed to them)")
    # Sources: platforms inside the area, else the station hall, shrunk to lie strictly inside.
    src_geoms, src_names, src_levels = [], [], []
    for lv, p in [(0, q) for q in platforms] + [(lv, g) for lv, g, k in upper if k == "platform"]:
        s = (shapely.intersection(p, main) if lv == 0 else p).buffer(-0.5)
        for q in shapely.get_parts(s):
            if q.geom_type == "Polygon" and q.area >= MIN_SOURCE_M2:
                src_geoms.append(q), src_names.append("platform"), src_levels.append(lv)
    if not src_geoms and hall is not None:
        s = shapely.intersection(hall, main).buffer(-0.5)
        src_geoms = [q for q in shapely.get_parts(s) if q.geom_type == "Polygon" and q.area >= MIN_SOURCE_M2]
        src_names = ["station hall"] * len(src_geoms)
        src_levels = [0] * len(src_geoms)
    if not src_geoms:  # no platforms and no hall: a disc at the centre
        s = shapely.intersection(centre.buffer(min(20.0, radius_m / 4)), main).buffer(-0.5)
        src_geoms = [q for q in shapely.get_parts(s) if q.geom_type == "Polygon" and q.area > 0][:1]
        src_names = ["station"] * len(src_geoms)
        src_levels = [0] * len(src_geoms)
    areas = np.array([g.area for g in src_geoms])
    counts = _share(agents, areas) if len(areas) else []
    # platforms are P1, P2, ... (west to east, then south to north), as a timetable names them
    order = sorted(range(len(src_geoms)), key=lambda k: (round(src_geoms[k].centroid.x), round(src_geoms[k].centroid.y)))
    src_geoms = [src_geoms[k] for k in order]
    src_names = [src_names[k] for k in order]
    src_levels = [src_levels[k] for k in order]
    counts = [counts[k] for k in order]
    prefix = {"platform": "P", "station hall": "H"}
    sources = gpd.GeoDataFrame(
        {"id": [f"{prefix.get(n, 'S')}{i + 1}" for i, n in enumerate(src_names)], "count": counts, "release_s": 0.0,
         "name": src_names, "level": src_levels}, geometry=src_geoms, crs=city.crs)

    walkable = gpd.GeoDataFrame({"name": [f"{name} station area ({radius_m:g} m)"] + [f"{k} (level {lv})" for lv, _, k in upper],
                                 "kind": ["station_area"] + [k for _, _, k in upper],
                                 "level": [0] + [lv for lv, _, _ in upper]},
                                geometry=[main] + [g for _, g, _ in upper], crs=city.crs)
    layers = dict(city.layers)
    layers.update(walkable=walkable, gates=gates, sources=sources)
    if len(connectors):
        layers["connectors"] = connectors
    meta = dict(city.meta)
    meta["station_area"] = {"station": name, "around": around, "radius_m": float(radius_m),
                            "centre": [float(cx), float(cy)], "agents": int(agents)}
    out = City(name=city.name, crs=city.crs, layers=layers, terrain=city.terrain, root=city.root,
               attribution=city.attribution, meta=meta)
    if not return_info:
        return out
    info = {"station": name, "centre": (float(cx), float(cy)), "radius_m": float(radius_m),
            "walkable_m2": float(main.area), "dropped_fragments_m2": dropped_m2, "gates": len(gates),
            "sources": len(sources), "hall": hall is not None, "connectors": conn_info}
    info["summary"] = (f"station area around {name!r} ({radius_m:g} m): walkable {main.area:,.0f} m² in one piece "
                       f"({dropped_m2:,.0f} m² of unconnected fragments left out), {len(gates)} gates, "
                       f"{len(sources)} sources ({', '.join(sorted(set(src_names)))}) with {int(sum(counts))} agents; "
                       f"{conn_info['summary']}")
    return out, info


ESCALATOR_CONVEYING = {"yes", "forward", "backward", "reversible"}
DEFAULT_WIDTH_M = {"stairs": 2.0, "escalator": 1.0}
END_TOL_M = 0.5  # a connector's end must lie this close to the walkable area of its level


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
GATES = LayerSpec("gates", "vector", "where agents leave or pass: LineString or Polygon with id, kind "
                  "(exit, entrance or ticket_gate), open (bool)", "any", ("id",),
                  aliases=("gates", "gate", "exits", "entrances"),
                  defaults=(("kind", "exit"), ("open", True), ("level", 0)), levels=True, ids_required=True)
SOURCES = LayerSpec("sources", "vector", "where and when agents appear: Polygon with id, count (int), release_s "
                    "(default 0)", "Polygon", ("id", "count"), aliases=("sources", "source", "spawns", "origins"),
                    defaults=(("release_s", 0.0), ("level", 0)), levels=True, ids_required=True,
                    numbers=("count", "release_s"), counts=("count",))
CITY_LAYERS = (GATES, SOURCES)
# The view draws gates as ribbons, green when open and red when closed, with their ids above them.
LAYER_VIEWS = (LayerView("gates", "Gates", width_m=1.6, state_column="open", colours=("#d62728", "#2ca02c"),
                         legend=("gate closed", "gate open"), label="id", pick_radius_m=2.0),)

BUILDING_USES = (BuildingUse("station", "railway and bus station buildings", "#c27ba0", ("train_station", "transportation")),)
POI_KINDS = (
    PoiKind("railway_station", "a railway station (tourists arrive by train; flood: a critical place)", "#8a3a70",
            2000, 4, 0.0),
    PoiKind("metro", "a metro entrance (station crowds leave by it)", "#0050a0", 1000, 2, 0.0),
    PoiKind("bus_stop", "a bus stop or bus terminal bay", "#e08000", 60, 1, 0.0),
    PoiKind("taxi_rank", "a taxi rank", "#d0b000", 10, 1, 60.0),
)
IMPORT_HOOK = CityImportHook(
    osm_tags=("station", "subway", "train", "bus"),
    # steps and escalators between floors: the connectors
    road_columns=("level", "incline", "conveying", "width"),
    poi_tags=("railway", "public_transport", "station", "highway", "amenity"),
    poi_kind=poi_kind,
    options=(ImportOption("walkable_around", "Derive a station crowd area (walkable, gates, sources) around this POI "
                          "kind or name, e.g. railway_station."),
             ImportOption("walkable_radius_m", "Radius of that station area.", 250.0, float)),
    derive=derive,
)

__all__ = ["derive_station_area", "derive_connectors", "STREET_WIDTH_M", "IMPORT_HOOK", "BUILDING_USES", "POI_KINDS",
           "CITY_LAYERS", "LAYER_VIEWS", "GATES", "SOURCES"]
