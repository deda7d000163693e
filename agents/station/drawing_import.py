"""A station from its architects' drawings: what the station reads from a DXF or IFC file
(``IMPORT_HOOK.drawing_kinds``, ``ifc_kind``, ``drawing_import``); twin.gis.drawings reads the
files and places them (docs/city_package.md, "Drawings").

Kinds (DXF layers ``<kind>@<level>``, connectors ``<kind>@<lower>-<upper>``):

- ``walkable``: floor where people walk (closed polylines) → ``walkable`` (kind "floor");
- ``platform``: a platform's floor → ``walkable`` (kind "platform") and a source on it (the
  platform shrunk by 0.5 m; ``--drawing-passengers`` people in all, shared by area, released at 0 s);
- ``doorway``: the opening through a wall between two floor areas → ``walkable`` (kind "doorway");
- ``obstacle``: walls, pillars, kiosks → ``obstacles``; ``lift``: a lift shaft → ``obstacles``
  (lifts are listed, not simulated);
- ``gate``: an exit (a line across the doorway) → ``gates`` kind exit; ``ticket_gate``: a fare line
  of ticket gates, wall to wall → ``gates`` kind ticket_gate, 5 cm longer at both ends (into the
  walls: a line drawn flush to a wall's end may stop a hair short of it once turned);
- ``stairs``, ``escalator_up``, ``escalator_down``, ``escalator`` (lines from the lower end to the
  upper end) → ``connectors``. A plain ``escalator`` of unknown direction runs up (estimated; the
  IFC names "down"/"up" decide). The width is the polyline's constant width, else
  the IFC element's (escalators: the EN 115 step width, 0.6-1.0 m, that fits), else 2 m for
  stairs and 1 m for escalators (estimated).

IFC (``ifc_kind``; the first rule that matches wins):

1. an element (not a space, slab, wall, column, stair or transport element) whose name, object type
   or description says ticket gate, fare gate, gate line, ticket barrier or turnstile →
   ``ticket_gate`` (its long centre line);
2. ``IfcSpace`` → ``platform`` when its name, long name or object type says platform, else
   ``walkable``; ``IfcSlab`` (not a roof) → the same by its name, kept only on levels without
   spaces (a base slab spans track beds and walls too);
3. ``IfcWall``, ``IfcColumn`` → ``obstacle``;
4. ``IfcStair``, ``IfcStairFlight`` → ``stairs`` (a stair by its flights when it has them);
5. ``IfcTransportElement`` ESCALATOR → an escalator (``escalator_down``/``escalator_up`` when
   its name says down/up), ELEVATOR → ``lift``;
6. ``IfcDoor`` → ``doorway`` (the opening it fills: rooms, spaces bounded by the walls' faces, join
   only through their doors), and on the outside (IsExternal) ``gate`` too.

``--drawing-platforms REGEX``: the floor areas whose name (IFC: name, long name or object type)
matches are platforms too (a building with no platform in its drawing still gets its people).
Floor with no way to an exit (through doorways, stairs, escalators) is left out: an area wholly so
(a roof storey no stair reaches) is dropped, a piece of an area (a shaft walled off in a room)
becomes an obstacle; the report lists both.

Ids: exits ``G<n>``, ticket gates ``T<n>``, stairs ``S<n>``, escalators ``E<n>``, sources ``P<n>``:
the next numbers not used in the package. Every feature added carries the drawing's file name in
the column ``drawing``, and a drawing imported again replaces them; city.toml's ``station_drawings``
records what was estimated, which `citytwin city check` reports. After the merge the crowd model's
own check (``geometry.build_station``) runs, and what it refuses goes into the report.
"""
from __future__ import annotations

import re
from dataclasses import replace

import geopandas as gpd
import numpy as np
from scipy.cluster.hierarchy import DisjointSet
import pandas as pd
import shapely

from twin.core.city import check_layer, layer_specs
from twin.core.errors import UserError
from twin.core.model_contract import DrawingKind, ImportOption

from .city_import import DEFAULT_WIDTH_M, IMPORT_HOOK, _share

LINE, AREA = "LineString", "Polygon"
DRAWING_KINDS = (
    DrawingKind("walkable", "floor where people walk (closed polylines)"),
    DrawingKind("platform", "a platform's floor: walkable, and where arriving passengers appear"),
    DrawingKind("doorway", "a doorway through a wall, between two floor areas: walkable"),
    DrawingKind("obstacle", "walls, pillars, kiosks: not walkable"),
    DrawingKind("lift", "a lift shaft: not walkable (lifts are not simulated)"),
    DrawingKind("gate", "an exit: a line across the doorway", LINE),
    DrawingKind("ticket_gate", "a fare line of ticket gates, drawn wall to wall across the passage", LINE),
    DrawingKind("stairs", "stairs: a line from the lower end to the upper end", LINE, spans_levels=True),
    DrawingKind("escalator", "an escalator of unknown direction (runs up): a line from its lower to its upper end",
                LINE, spans_levels=True),
    DrawingKind("escalator_up", "an escalator running up: a line from its lower to its upper end", LINE,
                spans_levels=True),
    DrawingKind("escalator_down", "an escalator running down: a line from its lower to its upper end", LINE,
                spans_levels=True),
)
ESCALATOR_KINDS = {"escalator": "up", "escalator_up": "up", "escalator_down": "down"}
ESCALATOR_STEPS_M = (0.6, 0.8, 1.0)  # EN 115 nominal step widths
SOURCE_INSET_M = 0.5
TOUCH_M = 0.05  # floor areas this close on one level join (a room and the doorway out of it)
TICKET_OVERLAP_M = 0.05  # a fare line is taken this much into the walls at its ends (_into_walls)
DEFAULT_PASSENGERS = 400
# What a drawing leaves to estimate: (what, how) for the import's report and `city check`.
ESTIMATED = {
    "widths": ("connector widths (not in the drawing)", "2 m for stairs, 1 m for escalators; give the polylines a "
               "constant width, or set width_m in the connectors layer"),
    "directions": ("escalator directions (not in the drawing)", "running up; draw escalators on escalator_up@… or "
                   "escalator_down@… layers (IFC: a name that says up or down), or set direction in the connectors layer"),
    "passengers": ("passengers per platform", "--drawing-passengers shared by platform area; set each source's count"),
}

BARRIER_WORDS = re.compile(r"ticket[\s_-]*(gate|barrier|line|check)|fare[\s_-]*(gate|line|barrier)|gate[\s_-]*line|"
                           r"turnstile|drehkreuz|sperre", re.I)
PLATFORM_WORDS = re.compile(r"platform|bahnsteig|perron|quai|laituri", re.I)
NOT_BARRIERS = {"IfcSpace", "IfcSlab", "IfcWall", "IfcColumn", "IfcStair", "IfcStairFlight", "IfcTransportElement"}
DOWN_WORDS = re.compile(r"\bdown(wards?)?\b|\bab\b|abwärts", re.I)
UP_WORDS = re.compile(r"\bup(wards?)?\b|\bauf\b|aufwärts", re.I)


def ifc_kind(info: dict) -> str | None:
    """The drawing kind of an IFC element (see the module doc), or None."""
    classes = set(info.get("ifc_classes") or (info.get("ifc_class"),))
    words = " ".join(str(info.get(k) or "") for k in ("name", "object_type", "description", "long_name"))
    predefined = str(info.get("predefined_type") or "").upper()
    if BARRIER_WORDS.search(words) and not classes & NOT_BARRIERS:
        return "ticket_gate"
    if "IfcSpace" in classes or ("IfcSlab" in classes and predefined != "ROOF"):
        return "platform" if PLATFORM_WORDS.search(words) else "walkable"
    if classes & {"IfcWall", "IfcColumn"}:
        return "obstacle"
    if classes & {"IfcStair", "IfcStairFlight"}:
        return "stairs"
    if "IfcTransportElement" in classes:
        if predefined == "ESCALATOR":
            return "escalator_down" if DOWN_WORDS.search(words) else "escalator_up" if UP_WORDS.search(words) \
                else "escalator"
        if predefined == "ELEVATOR":
            return "lift"
        return None
    if "IfcDoor" in classes:  # the opening it fills joins the rooms on both sides; an outside door is an exit too
        return ("gate", "doorway") if info.get("is_external") else "doorway"
    return None


def _next_ids(prefix: str, used: set, n: int, digits: int = 0) -> list[str]:
    out, k = [], 1
    while len(out) < n:
        cand = f"{prefix}{k:0{digits}d}"
        if cand not in used:
            out.append(cand)
            used.add(cand)
        k += 1
    return out


def _without(gdf, file: str):
    """A layer without the features an earlier import of the same drawing added (None when absent)."""
    if gdf is None or not len(gdf) or "drawing" not in gdf.columns:
        return gdf
    return gdf[gdf["drawing"].astype(str) != file].reset_index(drop=True)


def _merged(old, rows: list[dict], crs, id_prefix: str = ""):
    """``old`` with ``rows`` appended (ids ``<id_prefix>00001``… not used yet when the rows have none)."""
    new = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
    if id_prefix and "id" not in new.columns:
        used = set(old["id"].astype(str)) if old is not None and len(old) and "id" in old.columns else set()
        new.insert(0, "id", _next_ids(id_prefix, used, len(new), digits=5))
    if old is None or not len(old):
        return new
    return gpd.GeoDataFrame(pd.concat([old.to_crs(crs), new], ignore_index=True), geometry="geometry", crs=crs)


def _into_walls(line):
    """A fare line a little longer at both ends: drawn flush to a wall's end or the floor's edge, once
    placed (turned, moved) it may stop a hair short of them, and the crowd model would find a way round."""
    if line.geom_type != "LineString" or line.length <= 0:
        return line
    c = np.asarray(line.coords)[:, :2]
    a = (c[1] - c[0]) / max(float(np.hypot(*(c[1] - c[0]))), 1e-12)
    b = (c[-1] - c[-2]) / max(float(np.hypot(*(c[-1] - c[-2]))), 1e-12)
    c[0], c[-1] = c[0] - a * TICKET_OVERLAP_M, c[-1] + b * TICKET_OVERLAP_M
    return shapely.LineString(c)


def _platform_pattern(text):
    """--drawing-platforms as a regular expression (None when not given)."""
    if text is None or not str(text).strip():
        return None
    try:
        return re.compile(str(text), re.I)
    except re.error as e:
        raise UserError(f"--drawing-platforms {text!r} is not a regular expression ({e}); give one that the names "
                        "of the platforms' floor areas match, e.g. --drawing-platforms '^(A|B)20[1-4]$'.") from None


def _names(f) -> list[str]:
    """What --drawing-platforms is matched against, each on its own: the feature's name (IFC: its name, long
    name and object type)."""
    return list(dict.fromkeys(str(v) for v in (f.name, f.info.get("name"), f.info.get("long_name"),
                                                f.info.get("object_type")) if v))


def _truthy(v) -> bool:
    return v is not None and not (isinstance(v, float) and np.isnan(v)) and bool(v)


def _rows_of(gdf) -> list[dict]:
    if gdf is None or not len(gdf):
        return []
    return [{"level": 0, **{k: v for k, v in r.items() if not (k == "level" and pd.isna(v))}}
            for r in gdf.to_dict("records")]


def _walled_off(walk: list[dict], other: list[dict], obst: list[dict], gates: list[dict], conns: list[dict]):
    """The floor the crowd model could not clear: the pieces of the levels' free floor (walkable areas
    less obstacles, ``other``: the package's own areas and obstacles too) from which no chain of stairs
    and escalators (either way: the model's check decides directions) leads to an exit. Returns the
    indices of ``walk`` (the drawing's areas) that lie wholly in such pieces (a roof storey no stair
    reaches) and the pieces that are part of an area (a shaft or cupboard walled off in a room)."""
    from .geometry import CONNECTOR_END_TOL_M, GATE_TOUCH_TOL_M

    def lv(r, key="level"):
        v = r.get(key)
        return 0 if v is None or (isinstance(v, float) and np.isnan(v)) else int(v)

    levels = sorted({lv(a) for a in walk + other})
    pieces, at = [], []
    for level in levels:
        floor = shapely.union_all([a["geometry"] for a in walk + other if lv(a) == level])
        solid = shapely.union_all([o["geometry"] for o in obst if lv(o) == level])
        free = shapely.difference(floor, solid) if not solid.is_empty else floor
        for q in shapely.get_parts(free):
            if q.area > 1e-3:
                pieces.append(q)
                at.append(level)
    if not pieces:
        return set(), []
    at = np.array(at)
    pieces_joined = DisjointSet(range(len(pieces)))  # pieces a connector joins are one area
    find = pieces_joined.__getitem__

    tree = shapely.STRtree(pieces)

    def near(geom, level, tol):
        return [int(k) for k in tree.query(geom, predicate="dwithin", distance=tol) if at[k] == level]

    def nearest(pt, level):  # a connector's end: the piece it lands on
        ks = near(pt, level, CONNECTOR_END_TOL_M)
        return [min(ks, key=lambda k: (pieces[k].distance(pt), k))] if ks else []

    for c in conns:
        xy = np.asarray(c["geometry"].coords)[[0, -1], :2]
        ends = nearest(shapely.Point(xy[0]), lv(c, "from_level")) + nearest(shapely.Point(xy[-1]), lv(c, "to_level"))
        for k in ends:
            pieces_joined.merge(k, ends[0])
    out = {find(k) for g in gates if str(g.get("kind") or "exit") != "ticket_gate"
           for k in near(g["geometry"], lv(g), GATE_TOUCH_TOL_M)}
    if not out:  # no exit at all: the model's own check says so
        return set(), []
    shut = [k for k in range(len(pieces)) if find(k) not in out]
    drop, pockets = set(), []
    for k in shut:
        inside = [i for i, a in enumerate(walk) if lv(a) == at[k] and a["geometry"].intersects(pieces[k])]
        if not inside:
            continue
        whole = [i for i in inside if shapely.difference(walk[i]["geometry"], pieces[k]).area
                 < 0.05 * walk[i]["geometry"].area]
        if whole:
            drop.update(whole)
        else:
            pockets.append({"name": "walled off in " + walk[inside[0]]["name"], "level": int(at[k]),
                            "geometry": pieces[k]})
    return drop, pockets


def _step_width(w: float) -> float:
    fits = [s for s in ESCALATOR_STEPS_M if s <= w + 1e-6]
    return fits[-1] if fits else ESCALATOR_STEPS_M[0]


def drawing_import(city, drawing, options: dict):
    """The drawing's station features merged into ``city`` (see the module doc): (city, report lines)."""
    from .model import CONNECTORS

    crs = city.crs
    file = drawing.path.name
    passengers = options.get("drawing_passengers")
    passengers = DEFAULT_PASSENGERS if passengers is None else passengers
    if not (isinstance(passengers, (int, np.integer)) and 0 <= passengers <= 100_000):
        raise UserError(f"--drawing-passengers must be a whole number from 0 to 100000 (got {passengers!r}).")
    estimated: dict[str, list[str]] = {}
    lines = []

    named = _platform_pattern(options.get("drawing_platforms"))
    floors = [replace(f, kind="platform") if f.kind == "walkable" and named is not None
              and any(named.search(w) for w in _names(f)) else f for f in drawing.of("walkable", "platform")]
    # IFC slabs are a level's floor only where it has no spaces: a base slab spans track beds and walls too
    spaced = {f.level for f in floors if "IfcSpace" in f.info.get("ifc_classes", ())}
    slabs = [f for f in floors if f.level in spaced and "IfcSlab" in f.info.get("ifc_classes", ())]
    floors = [f for f in floors if f not in slabs]
    walk = [{"name": f.name, "level": f.level, "kind": "platform" if f.kind == "platform" else "floor",
             "drawing": file, "geometry": f.geometry} for f in floors]
    doorways = drawing.of("doorway")
    walk += [{"name": f.name, "level": f.level, "kind": "doorway", "drawing": file, "geometry": f.geometry}
             for f in doorways]
    obst = [{"name": f.name, "level": f.level, "drawing": file, "geometry": f.geometry}
            for f in drawing.of("obstacle", "lift")]
    layers = {name: _without(gdf, file) for name, gdf in city.layers.items()}
    conn_old = _without(city.extra_layer(CONNECTORS), file)
    gates_old = layers.get("gates", city.layer("gates"))
    used = set(gates_old["id"].astype(str)) if len(gates_old) else set()
    exits, tickets = drawing.of("gate"), drawing.of("ticket_gate")
    gates = [{"id": gid, "kind": "exit", "open": True, "level": f.level, "name": f.name, "drawing": file,
              "geometry": f.geometry} for gid, f in zip(_next_ids("G", used, len(exits)), exits)]
    gates += [{"id": gid, "kind": "ticket_gate", "open": True, "level": f.level, "name": f.name, "drawing": file,
               "geometry": _into_walls(f.geometry)} for gid, f in zip(_next_ids("T", used, len(tickets)), tickets)]

    used = set(conn_old["id"].astype(str)) if conn_old is not None and len(conn_old) else set()
    conns = []
    for f in drawing.of("stairs", *ESCALATOR_KINDS):
        esc = f.kind in ESCALATOR_KINDS
        cid = _next_ids("E" if esc else "S", used, 1)[0]
        if f.width_m is None:
            width = DEFAULT_WIDTH_M["escalator" if esc else "stairs"]
            estimated.setdefault("widths", []).append(cid)
        else:
            width = _step_width(f.width_m) if esc else float(f.width_m)
        if f.kind == "escalator":
            estimated.setdefault("directions", []).append(cid)
        conns.append({"id": cid, "kind": "escalator" if esc else "stairs", "from_level": f.level,
                      "to_level": f.to_level, "width_m": float(width),
                      "direction": ESCALATOR_KINDS.get(f.kind, "both"), "speed_mps": 0.5 if esc else np.nan,
                      "name": f.name, "drawing": file, "geometry": f.geometry})

    # floor with no way to an exit (a roof storey no stair reaches, a shaft walled off in a room) is left
    # out: the crowd model refuses a station with parts it cannot clear, and would release people there
    old_walk = _rows_of(layers.get("walkable", city.layer("walkable")))
    old_obst = [o for o in _rows_of(layers.get("obstacles", city.layer("obstacles"))) if not _truthy(o.get("optional"))]
    cut, pockets = _walled_off(walk, old_walk, obst + old_obst, [*gates, *_rows_of(gates_old)],
                               [*conns, *_rows_of(conn_old)])
    if cut:
        lines.append(f"{len(cut)} floor area(s) with no way to an exit left out (no stairs, escalator or doorway "
                     "joins them to one): " + ", ".join(f"{walk[i]['name']} (level {walk[i]['level']})"
                                                        for i in sorted(cut)[:6]) + (" …" if len(cut) > 6 else ""))
        gone = {id(walk[i]["geometry"]) for i in cut}
        floors = [f for f in floors if id(f.geometry) not in gone]
        walk = [w for i, w in enumerate(walk) if i not in cut]
    if pockets:
        lines.append(f"{len(pockets)} part(s) of floor areas walled off with no door (shafts, cupboards) made "
                     "obstacles: " + ", ".join(f"{q['name']} ({q['geometry'].area:.1f} m²)" for q in pockets[:6]))
        obst += [{**q, "drawing": file} for q in pockets]

    src_old = layers.get("sources", city.layer("sources"))
    used = set(src_old["id"].astype(str)) if len(src_old) else set()
    plats = [(f, shapely.buffer(f.geometry, -SOURCE_INSET_M, join_style="mitre")) for f in floors if f.kind == "platform"]
    plats = [(f, g) for f, g in plats if not g.is_empty and g.area > 1.0]
    sources = []
    if plats and passengers > 0:
        counts = _share(passengers, np.array([g.area for _, g in plats]))
        for sid, (f, g), n in zip(_next_ids("P", used, len(plats)), plats, counts):
            sources.append({"id": sid, "count": int(n), "release_s": 0.0, "level": f.level, "name": f.name,
                            "drawing": file, "geometry": g})
        estimated.setdefault("passengers", []).extend(s["id"] for s in sources)

    specs = layer_specs()
    for name, rows in (("walkable", walk), ("obstacles", obst), ("gates", gates), ("sources", sources)):
        if rows:
            merged = _merged(layers.get(name), rows, crs, specs[name].generated_ids)
            layers[name] = check_layer(merged, name, f"{file}: {name}", crs)
    if conns or conn_old is not None:
        layers["connectors"] = _merged(conn_old, conns, crs) if conns else conn_old
    city.layers = layers
    city.__dict__.pop("_extra", None)  # the connectors read before are stale
    record = {"file": file, "passengers": int(passengers), "estimated": estimated,
              "lifts": [f.name for f in drawing.of("lift")]}
    earlier = [r for r in city.meta.get("station_drawings") or [] if not (isinstance(r, dict) and r.get("file") == file)]
    city.meta["station_drawings"] = [*earlier, record]

    if slabs:
        lines.append(f"{len(slabs)} slab(s) left out on levels with spaces (the spaces are the floor): "
                     + ", ".join(f.name for f in slabs[:5]))
    lines.append(f"station from {file}: {len(walk)} walkable areas ({len(plats)} platform(s), {len(doorways)} "
                 f"doorway(s)), "
                 f"{len(obst)} obstacles, {len(exits)} exits, {len(tickets)} ticket gates, {len(conns)} stairs and "
                 f"escalators, {len(sources)} sources with {sum(s['count'] for s in sources)} passengers")
    if not plats:
        lines.append("no platform in the drawing: no sources added; draw the platforms (kind platform), name the "
                     "areas where people appear with --drawing-platforms, or add sources")
    if not exits and not (len(gates_old) and (gates_old["kind"].astype(str) != "ticket_gate").any()):
        lines.append("no exit in the drawing or the package: draw the exits (kind gate)")
    if record["lifts"]:
        lines.append(f"{len(record['lifts'])} lifts drawn as obstacles (lifts are not simulated)")
    for what, ids in estimated.items():
        lines.append(f"estimated {ESTIMATED[what][0]}: {', '.join(ids)}")
    refusal = crowd_refusal(city)
    if refusal:
        lines.append(f"the crowd model refuses the station as drawn: {refusal}")
    return city, lines


def crowd_refusal(city) -> str:
    """Why the crowd model would refuse the station (its own check, geometry.build_station), or ''."""
    from twin.core.model_contract import validate_params

    from .geometry import build_station
    from .model import CONNECTORS, StationDispersalModel

    p = validate_params(StationDispersalModel, {}, "station drawing", None)
    p.update({k: 0.0 for k in ("share_metro", "share_bus", "share_taxi")}, share_walk=1.0)
    if not len(city.layer("walkable")):
        return ""
    try:
        build_station(city, p, city.extra_layer(CONNECTORS))
    except UserError as e:
        return str(e)
    return ""


# The station's import hook: the OSM rules of .city_import and the drawings of this module.
STATION_IMPORT_HOOK = replace(
    IMPORT_HOOK, drawing_kinds=DRAWING_KINDS, ifc_kind=ifc_kind, drawing_import=drawing_import,
    options=IMPORT_HOOK.options + (
        ImportOption("drawing_passengers", "Passengers appearing on the platforms of a station drawing (shared by "
                     "area).", DEFAULT_PASSENGERS, int),
        ImportOption("drawing_platforms", "A regular expression: a drawing's floor areas whose name (IFC: name, long "
                     "name or object type) it matches are platforms too, where the passengers appear.", "", str)))

__all__ = ["DRAWING_KINDS", "STATION_IMPORT_HOOK", "ifc_kind", "drawing_import"]
