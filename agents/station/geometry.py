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
class Source:
    id: str
    geom: object
    count: int
    release_s: float


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


def build_station(city, p: dict) -> StationGeometry:
    """Free space, gates (with the parameter overrides applied), sources and POIs; validated."""
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
    free = walkable
    if blockers:
        free = shapely.difference(walkable, shapely.union_all(blockers))
    if free.is_empty or free.area <= 0:
        raise UserError("layers walkable/obstacles: the obstacles (and barriers) cover the whole walkable area.")

    # gates
    gates: list[Gate] = []
    gl = city.gates
    all_ids = [str(i) for i in gl["id"]] if len(gl) else []
    for key in ("open_gates", "closed_gates", "guidance_gates"):
        for gid in p.get(key, []):
            if gid not in all_ids:
                raise UserError(f'parameter {key}: there is no gate "{gid}"{nearest(gid, all_ids)}; '
                                f'the gates are: {", ".join(all_ids) or "(none)"}.')
    both = set(p.get("open_gates", [])) & set(p.get("closed_gates", []))
    if both:
        raise UserError(f'parameters open_gates and closed_gates both name gate(s) {", ".join(sorted(both))}; '
                        "list each gate in one of them only.")
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
        is_open = bool(row.get("open", True))
        if gid in p.get("open_gates", []):
            is_open = True
        if gid in p.get("closed_gates", []):
            is_open = False
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
    return StationGeometry(walkable, free, gates, sources, pois, parts)


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
            raise UserError(f'layer sources: source "{src.id}" lies in a part of the walkable area from which '
                            "no open exit can be reached. Open a gate there or connect that part.")
    for name, geom in st.walkable_parts:
        m = rasterize(geom, nav.x0, nav.y0, nav.cell_m, nav.free.shape) & nav.free
        if m.sum() > 8 and not (m & reach).any():
            raise UserError(f'layer walkable: part "{name}" is not connected to any open exit gate. '
                            "Connect it to the rest of the station, add an exit gate on its edge, or open one.")
