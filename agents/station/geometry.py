"""The station geometry from city layers: levels, free space, exit gates, ticket gates, stairs and
escalators (connectors), sources and onward POIs.

A station has one or more levels (the ``level`` column of walkable, obstacles, gates and sources;
0 when absent). Connectors (the ``connectors`` layer) join two levels: each is a line drawn from
its lower end (on ``from_level``) to its upper end (on ``to_level``), ``width_m`` wide. Its
footprint is not walkable on either level (the stair well above, the space under the stair
below); passengers queue at the foot line of the end they enter and appear beyond the other end.

Gate and connector parameters (``open_gates``, ``closed_connectors``, ...) take ids or
*selectors*: ``"kind=ticket_gate level=0"`` selects every ticket gate on level 0, so that an
intervention written for one station applies to another. Every id, name or selector must match a
feature of this station (twin.core.features), so an intervention never runs as a silent no-op.

Every check that a user can fix raises ``UserError`` naming the feature and the fix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.cluster.hierarchy import DisjointSet
import shapely
from shapely import wkt as shapely_wkt

from twin.core.errors import UserError, nearest
from twin.core.features import resolve

from .demand import MAX_STATION_PASSENGERS

ONWARD_KINDS = {"metro": "metro", "bus": "bus_stop", "taxi": "taxi_rank"}
MODES = ("walk", "metro", "bus", "taxi")  # mode index order
MIN_GATE_WIDTH_M = 0.3
GATE_TOUCH_TOL_M = 0.5
# ticket gates (fare barriers): a line of lanes across a passage; each lane is a clear slot
# between cabinets. 0.6 m lanes on a 0.9 m pitch and 1.2 m deep cabinets are typical of
# wing-gate arrays; a closed bank is a wall.
LANE_WIDTH_M = 0.6
LANE_PITCH_M = 0.9
CABINET_DEPTH_M = 1.2
LANE_CUT_M = 0.01
TICKET_SERVICE_S = 2.4  # s per passenger and lane: 25 passengers/min (RIS, London Underground SPSG)
SEAM_M, SLIVER_M2 = 1e-6, 1e-4  # round-off: the floor a bank cuts is shrunk this much, slivers this small dropped
# connectors
CONNECTOR_KINDS = ("stairs", "escalator", "lift")
DIRECTIONS = ("both", "up", "down")
CONNECTOR_END_TOL_M = 0.5  # an end must lie this close to the walkable area of its level
MIN_STAIR_WIDTH_M = 0.6
ESCALATOR_WIDTH_M = (0.55, 1.1)  # nominal step widths of EN 115 escalators (0.6, 0.8, 1.0 m)
ESCALATOR_SPEED_MPS = (0.2, 1.0)
LANDING_M = (0.25, 1.75)  # arrivals appear this far beyond the end of a connector
# lifts: a 1,000 kg car takes 13 persons (EN 81-20, Table 6); a round trip between two floors
# (doors opening, boarding and closing at both, the ride) takes about a minute
LIFT_CAPACITY = 13
LIFT_CYCLE_S = 60.0
LIFT_CYCLE_RANGE_S = (5.0, 900.0)
LIFT_LOBBY_M = 1.5


@dataclass
class Gate:
    id: str
    geom: object
    kind: str
    open: bool
    width_m: float
    x: float
    y: float
    level: int = 0


@dataclass
class TicketBank:
    id: str
    line: object
    open: bool
    lanes: int
    service_s: float
    cabinets: object  # polygon: what blocks walking (the whole bank when closed)
    slots: object  # polygon: the lanes, where a passenger stops to validate (walls too while closed)
    target: object = None  # the lanes' far ends (on the exits' side): where walking to the bank leads
    exit_point: tuple = (0.0, 0.0)  # just beyond the bank on the exits' side
    level: int = 0

    @property
    def capacity_pps(self) -> float:
        """Upper bound of the bank's flow if validating were all that took time."""
        return self.lanes / self.service_s if self.open else 0.0


@dataclass
class Connector:
    """Stairs, an escalator or a lift between two levels, drawn from the lower end to the upper end
    (a lift: from its door on the lower level to its door on the upper one, through the car)."""

    id: str
    kind: str
    from_level: int
    to_level: int
    width_m: float
    direction: str  # after reverse_connectors: both, up or down
    open: bool
    speed_mps: float  # escalators: belt speed along the slope
    line: object
    lower: tuple
    upper: tuple
    axis: tuple  # unit vector from the lower end to the upper end, in plan
    length_m: float  # horizontal length (plan)
    capacity: int = 0  # lifts: persons per trip
    cycle_s: float = 0.0  # lifts: a round trip; the car leaves the lower door every cycle_s, the upper one half a cycle later

    @property
    def footprint(self):
        return shapely.buffer(self.line, self.width_m / 2, cap_style="flat", join_style="mitre")

    def end(self, upper: bool) -> tuple:
        return self.upper if upper else self.lower

    def end_line(self, upper: bool):
        """The line across the connector at one end: where passengers step on or off."""
        (px, py), (ux, uy) = self.end(upper), self.axis
        h = self.width_m / 2
        return shapely.LineString([(px - uy * h, py + ux * h), (px + uy * h, py - ux * h)])

    def entry_zone(self, upper: bool):
        """Where passengers entering at one end are seen to have arrived: the line across that end; at
        a lift, the lobby in front of its door (LIFT_LOBBY_M deep, half a metre wider each side), where
        the people waiting for the car stand."""
        if self.kind != "lift":
            return self.end_line(upper)
        (px, py), (ux, uy) = self.end(upper), self.axis
        sgn = 1.0 if upper else -1.0
        h = self.width_m / 2 + 0.5
        return shapely.Polygon([(px + sgn * ux * d - uy * w, py + sgn * uy * d + ux * w)
                                for d, w in ((0.0, -h), (LIFT_LOBBY_M, -h), (LIFT_LOBBY_M, h), (0.0, h))])

    def landing(self, upper: bool):
        """Where passengers leaving at one end appear: a box beyond that end."""
        (px, py), (ux, uy) = self.end(upper), self.axis
        sgn = 1.0 if upper else -1.0
        a, b = LANDING_M
        h = self.width_m / 2
        corners = [(px + sgn * ux * d - uy * w, py + sgn * uy * d + ux * w) for d, w in ((a, -h), (b, -h), (b, h), (a, h))]
        return shapely.Polygon(corners)

    def runs(self, up: bool) -> bool:
        """Whether passengers may use it in this direction (upwards: entering at the lower end)."""
        return self.open and self.direction in ("both", "up" if up else "down")


@dataclass
class Source:
    id: str
    geom: object
    count: int
    release_s: float
    must_validate: bool = False  # inside a paid area: no exit is reachable without a ticket gate
    level: int = 0
    max_per_train: float = math.nan  # the most passengers one train unloads here (NaN: no limit)


@dataclass
class Poi:
    id: str
    kind: str
    name: str
    x: float
    y: float
    capacity: int


@dataclass
class StationGeometry:
    levels: list[int]  # the city's level numbers, increasing
    walkable: dict  # level -> polygon
    free: dict  # level -> walkable minus obstacles, ticket cabinets and connector footprints
    gates: list[Gate]
    sources: list[Source]
    pois: list[Poi]
    walkable_parts: list[tuple[str, object, int]] = field(default_factory=list)
    tickets: list[TicketBank] = field(default_factory=list)
    connectors: list[Connector] = field(default_factory=list)

    @property
    def gate_ids(self) -> list[str]:
        return [g.id for g in self.gates]

    def gate_index(self, gid: str) -> int:
        return self.gate_ids.index(gid)

    def level_index(self, level: int) -> int:
        return self.levels.index(level)


def _polys(geom):
    return shapely.get_parts(geom)


def _int_level(value, where: str) -> int:
    if value is None or (isinstance(value, float) and value != value):
        return 0
    try:
        f = float(value)
    except (TypeError, ValueError):
        f = float("nan")
    if not math.isfinite(f) or f != int(f):
        raise UserError(f"{where} has level {value!r}; give a whole number (0 = street level, 1 above, -1 below).")
    return int(f)


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def _rows(gdf):
    return [row for _, row in gdf.iterrows()] if gdf is not None and len(gdf) else []


# -- selectors -----------------------------------------------------------------------------------
def select_ids(items, features: list[dict], layer: str, param: str) -> list[str]:
    """Ids named in ``items``: ids, unique names or selectors such as ``"kind=ticket_gate level=0"``
    (twin.core.features); an item that matches nothing is an error listing the features."""
    return resolve(items, features, param, layer)


def parse_barriers(items: list[str], obstacles) -> list:
    """Barriers: WKT polygons/lines (lines get 0.15 m thickness) in the city CRS on level 0, or the
    id or name of a feature of the obstacles layer with ``optional = true`` (switched off by
    default; on its own level). Returns (geometry, level) pairs."""
    out = []
    for item in items:
        s = item.strip()
        if s.split("(")[0].strip().upper() in {"POLYGON", "MULTIPOLYGON", "LINESTRING", "MULTILINESTRING"}:
            try:
                g = shapely_wkt.loads(s)
            except Exception as e:  # shapely raises GEOSException with a parse message
                raise UserError(f'barriers: "{s[:60]}" is not valid WKT ({e}). Write e.g. '
                                '"POLYGON ((x1 y1, x2 y2, x3 y3, x1 y1))" in the city CRS (metres).') from None
            if g.geom_type.endswith("LineString"):
                g = g.buffer(0.15, cap_style="flat")
            if not g.is_valid:
                g = shapely.make_valid(g)
            out.append((g, 0))
            continue
        keys = []
        if len(obstacles):
            for col in ("id", "name"):
                if col in obstacles.columns:
                    keys.append(obstacles[col].astype(str))
        hit = None
        for k in keys:
            m = k == s
            if m.any():
                hit = obstacles[m]
                break
        if hit is None:
            names = sorted(set().union(*[set(k) for k in keys])) if keys else []
            raise UserError(f'barriers: "{s}" is neither WKT nor an obstacle id/name{nearest(s, names)}. '
                            'Give a polygon as WKT in the city CRS or the id of an obstacle with optional = true.')
        for _, row in hit.iterrows():
            out.append((row.geometry, _int_level(row.get("level"), f'layer obstacles: obstacle "{s}"')))
    return out


def _gate_features(gates_layer) -> list[dict]:
    return [{"id": str(r["id"]), "name": _text(r.get("name")), "kind": str(r.get("kind") or "exit"),
             "level": _int_level(r.get("level"), f'layer gates: gate "{r["id"]}"')} for r in _rows(gates_layer)]


def _resolve_gate_parameters(gates_layer, p: dict) -> dict[str, set]:
    feats = _gate_features(gates_layer)
    sel = {key: set(select_ids(p.get(key, []), feats, "gates", key)) for key in ("open_gates", "closed_gates",
                                                                                   "guidance_gates")}
    both = sel["open_gates"] & sel["closed_gates"]
    if both:
        raise UserError(f'parameters open_gates and closed_gates both name gate(s) {", ".join(sorted(both))}; '
                        "list (or select) each gate in one of them only.")
    return sel


def _is_open(row, sel: dict) -> bool:
    gid = str(row["id"])
    if gid in sel["open_gates"]:
        return True
    if gid in sel["closed_gates"]:
        return False
    v = row.get("open", True)
    return True if v is None or v != v else bool(v)  # missing (None/NaN) means open


def _optional_number(row, col: str, gid: str, what: str, integer: bool = False):
    v = row.get(col)
    if v is None or (isinstance(v, float) and v != v):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if not f > 0 or (integer and f != int(f)):
        raise UserError(f'layer gates: ticket gate "{gid}" has {col} = {v!r}; give {what}.')
    return int(f) if integer else f


def ticket_bank(row, walkable, p: dict, sel: dict, level: int = 0) -> TicketBank:
    """A ticket gate feature as lanes and cabinets. The line runs across the passage, wall to
    wall; ``lanes`` (optional column) lanes are spread evenly along it, else one per 0.9 m;
    ``service_time_s`` (optional column) overrides the parameter ticket_service_time_s."""
    gid = str(row["id"])
    geom = row.geometry
    if geom.geom_type.endswith("Polygon"):  # a drawn box: its long centre line
        r = np.asarray(geom.minimum_rotated_rectangle.exterior.coords)[:4]
        e = [np.hypot(*(r[(k + 1) % 4] - r[k])) for k in range(4)]
        k = int(np.argmax(e[:2]))
        a, b = (r[k] + r[(k + 3) % 4]) / 2, (r[k + 1] + r[(k + 2) % 4]) / 2
        geom = shapely.LineString([a, b])
    elif geom.geom_type == "MultiLineString":
        geom = shapely.line_merge(geom)
    if geom.geom_type != "LineString":
        raise UserError(f'layer gates: ticket gate "{gid}" is a {geom.geom_type}; draw it as one straight '
                        "line across the passage, wall to wall.")
    length = float(geom.length)
    inside = float(shapely.intersection(geom, walkable).length)
    if inside < 0.9 * length:
        raise UserError(f'layer gates: ticket gate "{gid}" lies {100 * (1 - inside / max(length, 1e-9)):.0f}% '
                        f"outside the walkable area{_on_level(level)}. Draw it across a walkable passage (the fare "
                        "line).")
    lanes = _optional_number(row, "lanes", gid, "a whole number of lanes, at least 1", integer=True)
    if lanes is None:
        lanes = int(length // LANE_PITCH_M)
    if lanes < 1 or lanes * LANE_WIDTH_M > length + 1e-9:
        raise UserError(f'layer gates: ticket gate "{gid}" is {length:.2f} m long, too short for '
                        f'{max(lanes, 1)} lane(s) of {LANE_WIDTH_M} m. Lengthen the line or lower its lanes.')
    service = _optional_number(row, "service_time_s", gid, "seconds per passenger, > 0")
    if service is None:
        service = float(p.get("ticket_service_time_s", TICKET_SERVICE_S))
    is_open = _is_open(row, sel)
    band = geom.buffer(CABINET_DEPTH_M / 2, cap_style="flat")
    # The lanes exist open or closed (a closed bank is all wall): every variant numbers them alike.
    c = np.asarray(geom.coords)[[0, -1], :2]
    u = (c[1] - c[0]) / length
    nrm = np.array([-u[1], u[0]])
    pitch = length / lanes
    boxes, cuts = [], []
    for k in range(lanes):
        m = c[0] + u * (k + 0.5) * pitch
        h = u * LANE_WIDTH_M / 2
        for out, depth in ((boxes, CABINET_DEPTH_M / 2), (cuts, CABINET_DEPTH_M / 2 + LANE_CUT_M)):
            d = nrm * depth
            out.append(shapely.Polygon([m - h - d, m + h - d, m + h + d, m - h + d]))
    slots = shapely.union_all(boxes)
    # the lanes are cut out of the band a little beyond it: cut flush, a bank turned to an odd angle
    # may keep a sliver of round-off across a lane's mouth, a wall there to the walking crowd
    cabinets = shapely.difference(band, shapely.union_all(cuts)) if is_open else band
    return TicketBank(gid, geom, is_open, lanes, service, cabinets, slots, level=level)


def _on_level(level: int, levels=None) -> str:
    return f" of level {level}" if level != 0 or (levels and len(levels) > 1) else ""


# -- connectors ----------------------------------------------------------------------------------
def _connector_features(layer) -> list[dict]:
    out = []
    for r in _rows(layer):
        cid = str(r["id"])
        out.append({"id": cid, "name": _text(r.get("name")), "kind": str(r.get("kind")),
                    "direction": str(r.get("direction") or "both"),
                    "from_level": _int_level(r.get("from_level"), f'layer connectors: connector "{cid}"'),
                    "to_level": _int_level(r.get("to_level"), f'layer connectors: connector "{cid}"')})
    return out


def connectors_from_layer(layer, walkable: dict, p: dict) -> list[Connector]:
    """The connectors layer checked, with ``closed_connectors``, ``open_connectors`` and
    ``reverse_connectors`` applied."""
    feats = _connector_features(layer)
    closed = set(select_ids(p.get("closed_connectors", []), feats, "connectors", "closed_connectors"))
    opened = set(select_ids(p.get("open_connectors", []), feats, "connectors", "open_connectors"))
    both = closed & opened
    if both:
        raise UserError(f'parameters open_connectors and closed_connectors both name connector(s) '
                        f'{", ".join(sorted(both))}; list (or select) each in one of them only.')
    reverse = set(select_ids(p.get("reverse_connectors", []), feats, "connectors", "reverse_connectors"))
    out = []
    seen = set()
    for row, f in zip(_rows(layer), feats):
        cid, kind = f["id"], f["kind"]
        what = f'layer connectors: connector "{cid}"'
        if cid in seen:
            raise UserError(f"{what}: the id is used twice; give every connector its own id.")
        seen.add(cid)
        if kind not in CONNECTOR_KINDS:
            raise UserError(f'{what} has kind "{kind}"{nearest(kind, CONNECTOR_KINDS)}; use stairs, escalator or lift.')
        lo, hi = f["from_level"], f["to_level"]
        if lo >= hi:
            raise UserError(f"{what} goes from level {lo} to level {hi}; draw it from its lower end (from_level) "
                            "to its upper end (to_level), with from_level below to_level.")
        for lv in (lo, hi):
            if lv not in walkable:
                raise UserError(f"{what} leads to level {lv}, which has no walkable area; the levels are "
                                f"{', '.join(map(str, sorted(walkable)))}.")
        direction = f["direction"]
        if direction not in DIRECTIONS:
            raise UserError(f'{what} has direction "{direction}"{nearest(direction, DIRECTIONS)}; use both, up or down.')
        width = _positive(row.get("width_m"), f"{what}: width_m")
        speed = 0.0
        if kind == "escalator":
            if direction == "both":
                raise UserError(f"{what} is an escalator with direction both; an escalator runs up or down.")
            lo_w, hi_w = ESCALATOR_WIDTH_M
            if not lo_w <= width <= hi_w:
                raise UserError(f"{what} is {width:g} m wide; escalator steps are {lo_w}-{hi_w} m wide (EN 115: 0.6, "
                                "0.8 or 1.0 m).")
            v = row.get("speed_mps")
            speed = 0.5 if v is None or (isinstance(v, float) and v != v) else _positive(v, f"{what}: speed_mps")
            if not ESCALATOR_SPEED_MPS[0] <= speed <= ESCALATOR_SPEED_MPS[1]:
                raise UserError(f"{what} runs at {speed:g} m/s; escalators run at 0.5-0.75 m/s (EN 115), give a "
                                f"speed_mps between {ESCALATOR_SPEED_MPS[0]} and {ESCALATOR_SPEED_MPS[1]}.")
        elif kind == "lift":
            capacity, cycle = _lift_numbers(row, what)
        elif width < MIN_STAIR_WIDTH_M:
            raise UserError(f"{what} is {width:g} m wide, narrower than one person ({MIN_STAIR_WIDTH_M} m).")
        if cid in reverse:
            direction = {"up": "down", "down": "up", "both": "both"}[direction]
        v = row.get("open", True)
        is_open = True if v is None or v != v else bool(v)
        is_open = (is_open or cid in opened) and cid not in closed
        geom = row.geometry
        if geom is not None and geom.geom_type == "MultiLineString":
            geom = shapely.line_merge(geom)
        if geom is None or geom.geom_type != "LineString" or geom.length < 1.0:
            raise UserError(f"{what} must be one line at least 1 m long, drawn from its lower end to its upper end.")
        c = np.asarray(geom.coords)[:, :2]
        lower, upper = tuple(c[0]), tuple(c[-1])
        axis = (c[-1] - c[0]) / max(float(np.hypot(*(c[-1] - c[0]))), 1e-9)
        for end, lv, name in ((lower, lo, "lower"), (upper, hi, "upper")):
            d = float(walkable[lv].distance(shapely.Point(end)))
            if d > CONNECTOR_END_TOL_M:
                raise UserError(f"{what} ({kind}): its {name} end ({end[0]:.1f}, {end[1]:.1f}) is {d:.1f} m away from "
                                f"the walkable area of level {lv}. The line runs from the lower end (on from_level) to "
                                "the upper end (on to_level); move that end onto the floor of its level.")
        c = Connector(cid, kind, lo, hi, width, direction, is_open, speed, geom, lower, upper,
                      (float(axis[0]), float(axis[1])), float(geom.length))
        if kind == "lift":
            c.capacity, c.cycle_s = capacity, cycle
        out.append(c)
    return out


def _lift_numbers(row, what: str) -> tuple[int, float]:
    """A lift's persons per trip (``capacity``) and round-trip time (``cycle_s``), defaults where empty."""
    def value(col, default):
        v = row.get(col)
        return default if v is None or (isinstance(v, float) and v != v) else v

    cap = _positive(value("capacity", LIFT_CAPACITY), f"{what}: capacity")
    if cap != int(cap) or cap > 100:
        raise UserError(f"{what}: capacity is {cap:g}; give the persons a trip takes, a whole number from 1 to 100 "
                        f"(a 1,000 kg car: {LIFT_CAPACITY}).")
    cycle = _positive(value("cycle_s", LIFT_CYCLE_S), f"{what}: cycle_s")
    lo, hi = LIFT_CYCLE_RANGE_S
    if not lo <= cycle <= hi:
        raise UserError(f"{what}: cycle_s is {cycle:g} s; a lift's round trip takes {lo:g} to {hi:g} s "
                        f"(about {LIFT_CYCLE_S:g} s between two floors).")
    return int(cap), float(cycle)


def _positive(value, what: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        f = float("nan")
    if not (math.isfinite(f) and f > 0):
        raise UserError(f"{what} is {value!r}; give a positive number.")
    return f


# -- the station ---------------------------------------------------------------------------------
def build_station(city, p: dict, connectors_layer=None) -> StationGeometry:
    """Levels, free space, gates (with the parameter overrides applied), ticket gates,
    connectors, sources and POIs; validated."""
    sel = _resolve_gate_parameters(city.layer("gates"), p)
    parts = []
    for i, row in city.layer("walkable").reset_index(drop=True).iterrows():
        name = str(row.get("name") or "") or f"#{i + 1}"
        parts.append((name, row.geometry, _int_level(row.get("level"), f'layer walkable: area "{name}"')))
    levels = sorted({lv for _, _, lv in parts})
    walkable = {lv: shapely.union_all([g for _, g, l2 in parts if l2 == lv]) for lv in levels}
    if not parts or sum(w.area for w in walkable.values()) <= 0:
        raise UserError("layer walkable: it has no area. Draw the station's walkable floor as polygons.")
    for name, kind, lv in [(str(r["id"]), "gate", r.get("level")) for r in _rows(city.layer("gates"))] + \
            [(str(r["id"]), "source", r.get("level")) for r in _rows(city.layer("sources"))]:
        lvl = _int_level(lv, f"layer {kind}s: {kind} \"{name}\"")
        if lvl not in walkable:
            raise UserError(f'layer {kind}s: {kind} "{name}" is on level {lvl}, which has no walkable area; the '
                            f"levels with walkable areas are {', '.join(map(str, levels))}.")
    connectors = connectors_from_layer(connectors_layer, walkable, p)

    obst = city.layer("obstacles")
    fixed = obst
    if len(obst) and "optional" in obst.columns:
        fixed = obst[~obst["optional"].fillna(False).astype(bool)]
    blockers = [(row.geometry, _int_level(row.get("level"), f'layer obstacles: obstacle "{row.get("name") or i}"'))
                for i, row in enumerate(_rows(fixed))]
    blockers += parse_barriers(list(p.get("barriers", [])), obst)
    tickets = []
    for row in _rows(city.layer("gates")):
        if str(row.get("kind") or "exit") == "ticket_gate":
            lv = _int_level(row.get("level"), f'layer gates: gate "{row["id"]}"')
            tickets.append(ticket_bank(row, walkable[lv], p, sel, lv))
    blockers += [(t.cabinets, t.level) for t in tickets]
    for c in connectors:
        blockers += [(c.footprint, c.from_level), (c.footprint, c.to_level)]
    free = {}
    for lv in levels:
        mine = [g for g, l2 in blockers if l2 == lv]
        free[lv] = shapely.difference(walkable[lv], shapely.union_all(mine)) if mine else walkable[lv]
        if free[lv].is_empty or free[lv].area <= 0:
            raise UserError(f"layers walkable/obstacles: the obstacles (and barriers) cover the whole walkable area"
                            f"{_on_level(lv, levels)}.")

    gates: list[Gate] = []
    for row in _rows(city.layer("gates")):
        gid = str(row["id"])
        kind = str(row.get("kind") or "exit")
        if kind == "ticket_gate":
            continue
        lv = _int_level(row.get("level"), f'layer gates: gate "{gid}"')
        geom = row.geometry
        if geom.geom_type.endswith("Polygon"):
            r = geom.minimum_rotated_rectangle
            c = np.asarray(r.exterior.coords)
            edges = np.hypot(*np.diff(c, axis=0).T) if len(c) > 2 else np.array([0.0])
            width = float(edges.max())
        else:
            width = float(geom.length)
        if width < MIN_GATE_WIDTH_M:
            raise UserError(f'layer gates: gate "{gid}" is {width:.2f} m wide, narrower than one person '
                            f'({MIN_GATE_WIDTH_M} m). Draw it as a line across the whole doorway.')
        dist = float(walkable[lv].distance(geom))
        if dist > GATE_TOUCH_TOL_M:
            raise UserError(f'layer gates: gate "{gid}" does not touch the walkable area{_on_level(lv, levels)}: it is '
                            f"{dist:.1f} m away from the nearest walkable floor. Move it onto the edge of the walkable "
                            "polygon (where people leave), or extend the walkable area to it.")
        c = geom.centroid
        gates.append(Gate(gid, geom, kind, _is_open(row, sel), width, float(c.x), float(c.y), lv))
    if not gates:
        raise UserError("layer gates: there is no exit gate (kind exit or entrance). Add a gate line where "
                        "people leave the station.")
    if not any(g.open for g in gates):
        raise UserError(f'layer gates: every exit gate is closed ({", ".join(g.id for g in gates)}). '
                        "Open at least one (column open = true, or parameter open_gates).")
    for gid in sel["guidance_gates"]:
        g = next((g for g in gates if g.id == gid), None)
        if g is None:
            if gid in p.get("guidance_gates", []):
                raise UserError(f'parameter guidance_gates: gate "{gid}" is a ticket gate, not an exit.')
            continue
        if not g.open and gid in p.get("guidance_gates", []):
            raise UserError(f'parameter guidance_gates: gate "{gid}" is closed; open it with open_gates '
                            "or leave it out of guidance_gates.")

    sources: list[Source] = []
    for row in _rows(city.layer("sources")):
        sid = str(row["id"])
        try:
            count = int(row["count"])
        except (TypeError, ValueError, OverflowError):
            raise UserError(f'layer sources: source "{sid}" has count {row["count"]!r}; give a whole number.') from None
        if count < 0:
            raise UserError(f'layer sources: source "{sid}" has a negative count ({count}).')
        if count > MAX_STATION_PASSENGERS:
            raise UserError(f'layer sources: source "{sid}" has count {count:.3g}; a station run simulates at most '
                            f"{MAX_STATION_PASSENGERS:,} passengers.")
        lv = _int_level(row.get("level"), f'layer sources: source "{sid}"')
        release = float(row.get("release_s", 0.0) or 0.0)
        inside = shapely.intersection(row.geometry, free[lv])
        if inside.is_empty or inside.area < 0.5:
            d = float(free[lv].distance(row.geometry))
            where = f"{d:.1f} m away from" if d > 0 else "covered by obstacles in"
            raise UserError(f'layer sources: source "{sid}" lies outside the walkable area{_on_level(lv, levels)} '
                            f"({where} it). Move the polygon onto the platform or walkable floor.")
        cap = row.get("max_per_train")
        try:
            cap = math.nan if cap is None else float(cap)
        except (TypeError, ValueError):
            cap = -1.0
        if not (cap != cap or cap >= 1):
            raise UserError(f'layer sources: source "{sid}" has max_per_train {row.get("max_per_train")!r}; give the '
                            "most passengers one train unloads there (a whole number >= 1), or leave it empty.")
        sources.append(Source(sid, inside, count, release, level=lv, max_per_train=cap))

    pois: list[Poi] = []
    for row in _rows(city.pois):
        kind = str(row["kind"])
        if kind not in ONWARD_KINDS.values():
            continue
        cap = int(row.get("capacity", 0) or 0)
        pt = row.geometry
        pois.append(Poi(str(row["id"]), kind, str(row.get("name") or ""), float(pt.x), float(pt.y), cap))
    for mode, kind in ONWARD_KINDS.items():
        if p.get(f"share_{mode}", 0.0) > 0 and not any(q.kind == kind for q in pois):
            raise UserError(f'parameter share_{mode} = {p[f"share_{mode}"]} but the city has no POI of kind '
                            f'"{kind}". Add one to the pois layer or set share_{mode} = 0 (and raise share_walk).')
    st = StationGeometry(levels, walkable, free, gates, sources, pois, parts, tickets, connectors)
    _place_tickets(st)
    return st


def _place_tickets(st: StationGeometry) -> None:
    """Which side of each open bank the exits are on, and which sources lie in a paid area. The
    free space of every level is cut at the open lanes; pieces joined by an open connector
    belong together; a group of pieces that holds no open exit is paid."""
    open_banks = [t for t in st.tickets if t.open]
    if not open_banks:
        return
    pieces: list[tuple[int, object]] = []
    for lv in st.levels:
        slots = [t.slots for t in open_banks if t.level == lv]
        cut = shapely.difference(st.free[lv], shapely.union_all(slots)) if slots else st.free[lv]
        # A drawing turned to an odd angle leaves cracks of round-off (a wall drawn flush to the floor's
        # edge stops a hair short of it once turned), through which the two sides of a bank would seem
        # joined: the pieces are shrunk a hair, which opens every crack, and slivers are dropped.
        parts = shapely.get_parts(shapely.buffer(cut, -SEAM_M, join_style="mitre")) if slots else [cut]
        pieces += [(lv, q) for q in parts if q.area > SLIVER_M2 or not slots]
    pieces_joined = DisjointSet(range(len(pieces)))  # pieces a connector joins are one area
    find = pieces_joined.__getitem__

    def piece_at(lv, pt) -> int:
        d = [q.distance(pt) if plv == lv else np.inf for plv, q in pieces]
        return int(np.argmin(d))

    for c in st.connectors:
        if c.open:
            a = piece_at(c.from_level, shapely.Point(c.lower))
            b = piece_at(c.to_level, shapely.Point(c.upper))
            pieces_joined.merge(a, b)
    exits = [g for g in st.gates if g.open]
    unpaid_roots = {find(k) for k, (lv, q) in enumerate(pieces)
                    if any(g.level == lv and q.distance(g.geom) <= GATE_TOUCH_TOL_M for g in exits)}

    def is_unpaid(lv, pt) -> bool:
        return find(piece_at(lv, pt)) in unpaid_roots

    for t in open_banks:
        c = np.asarray(t.line.coords)[[0, -1], :2]
        u = (c[1] - c[0]) / t.line.length
        nrm = np.array([-u[1], u[0]])
        mid = c.mean(axis=0)
        off = CABINET_DEPTH_M / 2 + 0.4
        side = 1.0 if is_unpaid(t.level, shapely.Point(mid + nrm * off)) else -1.0
        if is_unpaid(t.level, shapely.Point(mid - nrm * off)) == (side > 0):
            raise UserError(f'layer gates: ticket gate "{t.id}" does not separate a paid area from the exits '
                            "(there is a way round it, or exits on both sides). Draw it wall to wall across "
                            "the passage, with walls (obstacles) closing the rest of the fare line.")
        far = shapely.LineString(c + nrm * side * CABINET_DEPTH_M / 2)
        t.target = shapely.intersection(far, t.slots.buffer(1e-6))
        t.exit_point = tuple(mid + nrm * side * off)
    for src in st.sources:
        src.must_validate = not any(find(k) in unpaid_roots for k, (lv, q) in enumerate(pieces)
                                    if lv == src.level and q.intersects(src.geom))
