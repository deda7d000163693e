"""The station geometry from city layers: free space, exit gates, sources and onward POIs.

Every check that a user can fix raises ``UserError`` naming the feature and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import wkt as shapely_wkt

from twin.core.errors import UserError, nearest

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
TICKET_SERVICE_S = 2.4  # s per passenger and lane: 25 passengers/min (RIS, London Underground SPSG)


@dataclass
class Gate:
    id: str
    geom: object
    kind: str
    open: bool
    width_m: float
    x: float
    y: float


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

    @property
    def capacity_pps(self) -> float:
        """Upper bound of the bank's flow if validating were all that took time."""
        return self.lanes / self.service_s if self.open else 0.0


@dataclass
class Source:
    id: str
    geom: object
    count: int
    release_s: float
    must_validate: bool = False  # inside a paid area: no exit is reachable without a ticket gate


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
    walkable: object
    free: object
    gates: list[Gate]
    sources: list[Source]
    pois: list[Poi]
    walkable_parts: list[tuple[str, object]] = field(default_factory=list)
    tickets: list[TicketBank] = field(default_factory=list)

    @property
    def gate_ids(self) -> list[str]:
        return [g.id for g in self.gates]

    def gate_index(self, gid: str) -> int:
        return self.gate_ids.index(gid)


def _polys(geom):
    return shapely.get_parts(geom)


def parse_barriers(items: list[str], obstacles) -> list:
    """Barriers: WKT polygons/lines (lines get 0.15 m thickness) in the city CRS, or the id or name
    of a feature of the obstacles layer with ``optional = true`` (switched off by default)."""
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
            out.append(g)
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
        out.extend(hit.geometry.tolist())
    return out


def _check_gate_parameters(gates_layer, p: dict) -> None:
    all_ids = [str(i) for i in gates_layer["id"]] if len(gates_layer) else []
    for key in ("open_gates", "closed_gates", "guidance_gates"):
        for gid in p.get(key, []):
            if gid not in all_ids:
                raise UserError(f'parameter {key}: there is no gate "{gid}"{nearest(gid, all_ids)}; '
                                f'the gates are: {", ".join(all_ids) or "(none)"}.')
    both = set(p.get("open_gates", [])) & set(p.get("closed_gates", []))
    if both:
        raise UserError(f'parameters open_gates and closed_gates both name gate(s) {", ".join(sorted(both))}; '
                        "list each gate in one of them only.")


def _is_open(row, p: dict) -> bool:
    gid = str(row["id"])
    if gid in p.get("open_gates", []):
        return True
    if gid in p.get("closed_gates", []):
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


def ticket_bank(row, walkable, p: dict) -> TicketBank:
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
                        "outside the walkable area. Draw it across a walkable passage (the fare line).")
    lanes = _optional_number(row, "lanes", gid, "a whole number of lanes, at least 1", integer=True)
    if lanes is None:
        lanes = int(length // LANE_PITCH_M)
    if lanes < 1 or lanes * LANE_WIDTH_M > length + 1e-9:
        raise UserError(f'layer gates: ticket gate "{gid}" is {length:.2f} m long, too short for '
                        f'{max(lanes, 1)} lane(s) of {LANE_WIDTH_M} m. Lengthen the line or lower its lanes.')
    service = _optional_number(row, "service_time_s", gid, "seconds per passenger, > 0")
    if service is None:
        service = float(p.get("ticket_service_time_s", TICKET_SERVICE_S))
    is_open = _is_open(row, p)
    band = geom.buffer(CABINET_DEPTH_M / 2, cap_style="flat")
    # The lanes exist open or closed (a closed bank is all wall): every variant numbers them alike.
    c = np.asarray(geom.coords)[[0, -1], :2]
    u = (c[1] - c[0]) / length
    nrm = np.array([-u[1], u[0]])
    pitch = length / lanes
    boxes = []
    for k in range(lanes):
        m = c[0] + u * (k + 0.5) * pitch
        h, d = u * LANE_WIDTH_M / 2, nrm * CABINET_DEPTH_M / 2
        boxes.append(shapely.Polygon([m - h - d, m + h - d, m + h + d, m - h + d]))
    slots = shapely.union_all(boxes)
    cabinets = shapely.difference(band, slots) if is_open else band
    return TicketBank(gid, geom, is_open, lanes, service, cabinets, slots)


def build_station(city, p: dict) -> StationGeometry:
    """Free space, gates (with the parameter overrides applied), ticket gates, sources and POIs;
    validated."""
    _check_gate_parameters(city.gates, p)
    walk = city.walkable
    parts = []
    for i, row in walk.reset_index(drop=True).iterrows():
        name = str(row.get("name") or "") or f"#{i + 1}"
        parts.append((name, row.geometry))
    walkable = shapely.union_all([g for _, g in parts]) if parts else shapely.Polygon()
    if walkable.is_empty or walkable.area <= 0:
        raise UserError("layer walkable: it has no area. Draw the station's walkable floor as polygons.")
    obst = city.obstacles
    fixed = obst
    if len(obst) and "optional" in obst.columns:
        fixed = obst[~obst["optional"].fillna(False).astype(bool)]
    blockers = list(fixed.geometry) + parse_barriers(list(p.get("barriers", [])), obst)
    tickets = [ticket_bank(row, walkable, p) for _, row in city.gates.iterrows()
               if str(row.get("kind") or "exit") == "ticket_gate"]
    blockers += [t.cabinets for t in tickets]
    free = walkable
    if blockers:
        free = shapely.difference(walkable, shapely.union_all(blockers))
    if free.is_empty or free.area <= 0:
        raise UserError("layers walkable/obstacles: the obstacles (and barriers) cover the whole walkable area.")

    # gates
    gates: list[Gate] = []
    gl = city.gates
    for _, row in gl.iterrows():
        gid = str(row["id"])
        kind = str(row.get("kind") or "exit")
        if kind == "ticket_gate":
            continue
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
        dist = float(walkable.distance(geom))
        if dist > GATE_TOUCH_TOL_M:
            raise UserError(f'layer gates: gate "{gid}" does not touch the walkable area: it is {dist:.1f} m '
                            "away from the nearest walkable floor. Move it onto the edge of the walkable "
                            "polygon (where people leave), or extend the walkable area to it.")
        is_open = _is_open(row, p)
        c = geom.centroid
        gates.append(Gate(gid, geom, kind, is_open, width, float(c.x), float(c.y)))
    if not gates:
        raise UserError("layer gates: there is no exit gate (kind exit or entrance). Add a gate line where "
                        "people leave the station.")
    if not any(g.open for g in gates):
        raise UserError(f'layer gates: every exit gate is closed ({", ".join(g.id for g in gates)}). '
                        "Open at least one (column open = true, or parameter open_gates).")
    for gid in p.get("guidance_gates", []):
        g = next((g for g in gates if g.id == gid), None)
        if g is None:
            raise UserError(f'parameter guidance_gates: gate "{gid}" is a ticket gate, not an exit.')
        if not g.open:
            raise UserError(f'parameter guidance_gates: gate "{gid}" is closed; open it with open_gates '
                            "or leave it out of guidance_gates.")

    # sources
    sources: list[Source] = []
    for _, row in city.sources.iterrows():
        sid = str(row["id"])
        try:
            count = int(row["count"])
        except (TypeError, ValueError):
            raise UserError(f'layer sources: source "{sid}" has count {row["count"]!r}; give a whole number.') from None
        if count < 0:
            raise UserError(f'layer sources: source "{sid}" has a negative count ({count}).')
        release = float(row.get("release_s", 0.0) or 0.0)
        inside = shapely.intersection(row.geometry, free)
        if inside.is_empty or inside.area < 0.5:
            d = float(free.distance(row.geometry))
            where = f"{d:.1f} m away from" if d > 0 else "covered by obstacles in"
            raise UserError(f'layer sources: source "{sid}" lies outside the walkable area ({where} it). '
                            "Move the polygon onto the platform or walkable floor.")
        sources.append(Source(sid, inside, count, release))

    # POIs for onward travel
    pois: list[Poi] = []
    for _, row in city.pois.iterrows():
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
    _place_tickets(free, gates, sources, tickets)
    return StationGeometry(walkable, free, gates, sources, pois, parts, tickets)


def _place_tickets(free, gates: list[Gate], sources: list[Source], tickets: list[TicketBank]) -> None:
    """Which side of each open bank the exits are on, and which sources lie in a paid area (the
    free space cut at the lanes splits into parts; a part that touches no open exit is paid)."""
    open_banks = [t for t in tickets if t.open]
    if not open_banks:
        return
    parts = list(shapely.get_parts(shapely.difference(free, shapely.union_all([t.slots for t in open_banks]))))
    exits = shapely.union_all([g.geom for g in gates if g.open])
    unpaid = [q.distance(exits) <= GATE_TOUCH_TOL_M for q in parts]

    def is_unpaid(pt) -> bool:
        d = [q.distance(pt) for q in parts]
        return unpaid[int(np.argmin(d))]

    for t in open_banks:
        c = np.asarray(t.line.coords)[[0, -1], :2]
        u = (c[1] - c[0]) / t.line.length
        nrm = np.array([-u[1], u[0]])
        mid = c.mean(axis=0)
        off = CABINET_DEPTH_M / 2 + 0.4
        side = 1.0 if is_unpaid(shapely.Point(mid + nrm * off)) else -1.0
        if is_unpaid(shapely.Point(mid - nrm * off)) == (side > 0):
            raise UserError(f'layer gates: ticket gate "{t.id}" does not separate a paid area from the exits '
                            "(there is a way round it, or exits on both sides). Draw it wall to wall across "
                            "the passage, with walls (obstacles) closing the rest of the fare line.")
        far = shapely.LineString(c + nrm * side * CABINET_DEPTH_M / 2)
        t.target = shapely.intersection(far, t.slots.buffer(1e-6))
        t.exit_point = tuple(mid + nrm * side * off)
    for src in sources:
        src.must_validate = not any(u for q, u in zip(parts, unpaid) if q.intersects(src.geom))


def check_connectivity(st: StationGeometry, nav, open_mask: np.ndarray) -> None:
    """Every source and every walkable part must reach an open exit."""
    reach = np.zeros(nav.free.shape, dtype=bool)
    for g, is_open in enumerate(open_mask):
        if is_open:
            reach |= nav.reachable(g)
    from .navigation import rasterize

    for g, gate in enumerate(st.gates):
        if open_mask[g] and not (nav.zone == g).any():
            raise UserError(f'layer gates: gate "{gate.id}" touches the walkable area only where obstacles '
                            "block it (no free floor within 0.3 m). Move it or the obstacle.")
    for src in st.sources:
        m = rasterize(src.geom, nav.x0, nav.y0, nav.cell_m, nav.free.shape) & nav.free
        if m.any() and not (m & reach).any():
            closed = [t.id for t in st.tickets if not t.open]
            hint = f" (closed ticket gates {', '.join(closed)} are walls)" if closed else ""
            raise UserError(f'layer sources: source "{src.id}" lies in a part of the walkable area from which '
                            f"no open exit can be reached{hint}. Open a gate there or connect that part.")
    for name, geom in st.walkable_parts:
        m = rasterize(geom, nav.x0, nav.y0, nav.cell_m, nav.free.shape) & nav.free
        if m.sum() > 8 and not (m & reach).any():
            raise UserError(f'layer walkable: part "{name}" is not connected to any open exit gate. '
                            "Connect it to the rest of the station, add an exit gate on its edge, or open one.")
