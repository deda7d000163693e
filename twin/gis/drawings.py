"""Building drawings into an existing city package: `citytwin city import FILE.dxf|FILE.ifc --place
X,Y,ROT[,SCALE] --into DIR` (docs/city_package.md, "Drawings").

The models say what they read from a drawing (``CityImportHook.drawing_kinds``, ``ifc_kind``,
``drawing_import``); this module only reads the file, in the drawing's own coordinates, turns them
into metres, places them in the city and hands each model the features of its kinds.

DXF (ezdxf)
    One layer per kind and level: ``<kind>@<level>`` (level 0 = street level, 1 above, -1 below;
    case does not matter, an external reference's prefix ``plan|`` or ``plan$0$`` is dropped);
    a kind that joins two levels (``DrawingKind.spans_levels``) on ``<kind>@<lower>-<upper>``.
    Areas are closed polylines (LWPOLYLINE, POLYLINE, CIRCLE, closed SPLINE/ELLIPSE; arcs are
    flattened to 2 mm); lines are LINEs and open polylines, connectors drawn from their lower end to
    their upper end. A polyline's constant width is the feature's width. Blocks (INSERT) are
    exploded; their entities on layer 0 take the INSERT's layer. Layers without ``@`` (annotations,
    the default layer 0) are skipped and listed. Units are the header's ``$INSUNITS`` (unitless:
    metres, said in the report); ``$INSBASE`` is the drawing's origin.

IFC (IfcOpenShell)
    Storeys become levels: sorted by elevation (their placement's height), level 0 is the storey
    nearest 0 m (ties: the higher), storeys less than ``SAME_LEVEL_M`` apart share a level. Their
    heights become city.toml's ``level_height_m`` table. Every product is offered to the models'
    ``ifc_kind`` with its class (and super-classes), predefined type, object type, name, long name,
    description and ``is_external`` (any property set's IsExternal), which names a kind or several
    (one feature each); an element whose parts (IfcRelAggregates) are taken is represented by its
    parts. Geometry comes from ``ifcopenshell.geom`` in world coordinates (metres):

    - an area kind: the plan of the element's faces within ``CUT_M`` of its lowest point, so a wall
      is cut below its door openings and a slab keeps its holes; an element that fills an opening
      (IfcRelFillsElement: a door) has the opening's plan, the hole through the wall;
    - a line kind: the long centre line of the element's plan (its minimum rotated rectangle), the
      short side its width; a kind that joins levels runs from the end where the element is low to
      the end where it is high, from the level of its lowest point to that of its highest (each the
      highest level at or below that height + ``LEVEL_TOLERANCE_M``).

    Other elements are its level's by their storey (the spatial container, else the storey of an
    aggregate above them). Georeferencing in the file (IfcMapConversion) is not read: ``--place``
    places the drawing.

Placement: a point (x, y) of the drawing, in metres from its origin, lands at
``(X, Y) + SCALE * R(ROT) (x, y)`` in the city CRS (ROT in degrees, counter-clockwise).

The merge is atomic (twin.core.files.atomic_dir): the layers a model changed are rewritten in a
copy of city.gpkg, city.toml gains the drawing's record (``drawings``) and level heights, and both
replace the package's files only when everything is written; ``drawing_report.json`` holds the
report.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

from twin.core.errors import UserError, nearest
from twin.core.files import json_default

SUFFIXES = (".dxf", ".ifc")
CUT_M = 1.0  # an area element's plan: its faces this close to its lowest point
LEVEL_TOLERANCE_M = 0.5
SAME_LEVEL_M = 1.0  # storeys closer than this are one level
FLATTEN_M = 0.002  # arcs and splines become segments this close to the curve (in metres)
# what a layer's lines and areas are drawn with (texts, hatches, dimensions… on it are skipped and listed)
DXF_TYPES = {"LINE", "LWPOLYLINE", "POLYLINE", "CIRCLE", "ARC", "ELLIPSE", "SPLINE"}
LAYER_RE = re.compile(r"^(?P<kind>[^@]+)@(?P<levels>.*)$")
LEVELS_RE = re.compile(r"^\s*(?P<a>-?\d+)\s*(?:-\s*(?P<b>-?\d+)\s*)?$")


# -- what a drawing holds -----------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    x: float
    y: float
    rotation_deg: float = 0.0
    scale: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "Placement":
        where = f"--place {text!r}"
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) not in (3, 4):
            raise UserError(f"{where}: give X,Y,ROT or X,Y,ROT,SCALE: where the drawing's origin lands in the city's "
                            "CRS (metres), its rotation in degrees counter-clockwise and an optional scale "
                            "(e.g. --place 385200,6672100,15).")
        vals = []
        for name, p in zip(("X", "Y", "ROT", "SCALE"), parts):
            try:
                v = float(p)
            except ValueError:
                v = float("nan")
            if not math.isfinite(v):
                raise UserError(f"{where}: {name} = {p!r} is not a number.")
            vals.append(v)
        if len(vals) == 4 and not vals[3] > 0:
            raise UserError(f"{where}: SCALE must be positive (got {vals[3]:g}).")
        return cls(*vals)

    def apply(self, geom):
        a = math.radians(self.rotation_deg)
        c, s = math.cos(a) * self.scale, math.sin(a) * self.scale

        def move(xy):
            return np.column_stack([self.x + c * xy[:, 0] - s * xy[:, 1], self.y + s * xy[:, 0] + c * xy[:, 1]])

        return shapely.transform(geom, move)

    def as_list(self) -> list[float]:
        return [self.x, self.y, self.rotation_deg, self.scale]


@dataclass
class DrawnFeature:
    kind: str
    level: int
    geometry: object  # placed: in the city's CRS
    origin: str  # "FILE, layer 'x'" or "FILE, IfcDoor #12 'Main door'": for messages
    name: str = ""
    to_level: int | None = None  # a feature that joins two levels: its upper level
    width_m: float | None = None  # a line's width when the drawing gives it
    info: dict = field(default_factory=dict)  # IFC: what ifc_kind was told


@dataclass
class Drawing:
    path: Path
    format: str  # "dxf" | "ifc"
    placement: Placement
    units: str
    features: list[DrawnFeature] = field(default_factory=list)
    levels: dict[int, str] = field(default_factory=dict)  # level -> storey or layer names
    elevations_m: dict[int, float] = field(default_factory=dict)  # IFC storeys
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of(self, *kinds: str) -> list[DrawnFeature]:
        return [f for f in self.features if f.kind in kinds]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.features:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out


def drawing_kinds() -> dict:
    """{kind name: (DrawingKind, the hook that reads it)} of every registered model (the first wins)."""
    from twin.declarations import import_hooks

    out = {}
    for hook in import_hooks():
        for k in hook.drawing_kinds:
            out.setdefault(k.name, (k, hook))
    return out


# -- DXF ----------------------------------------------------------------------------------------
def parse_layer(layer: str, kinds: dict, where: str):
    """(kind, level, upper level or None) of a DXF layer ``<kind>@<level>``; None for other layers."""
    m = LAYER_RE.match(layer)
    if not m:
        return None
    # an external reference's layers carry its name: "plan|walkable@0" (attached), "plan$0$walkable@0" (bound)
    word = re.split(r"\||\$\d+\$", m["kind"])[-1].strip().lower()
    names = list(kinds)
    if word not in kinds:
        raise UserError(f"{where}, layer {layer!r}: unknown kind {word!r}{nearest(word, names)}. The kinds are "
                        f"{', '.join(names) or 'none (no model reads drawings)'}; name layers <kind>@<level>"
                        + (f", e.g. {names[0]}@0." if names else "."))
    spec = kinds[word][0]
    lv = LEVELS_RE.match(m["levels"])
    if not lv:
        raise UserError(f"{where}, layer {layer!r}: {m['levels']!r} is not a level. Write <kind>@<level> with a whole "
                        "number (0 = street level, 1 above, -1 below)"
                        + (f", or for {word}, {word}@<lower>-<upper>." if spec.spans_levels else "."))
    a, b = int(lv["a"]), (int(lv["b"]) if lv["b"] is not None else None)
    if spec.spans_levels and b is None:
        raise UserError(f"{where}, layer {layer!r}: {word} joins two levels; name the layer {word}@<lower>-<upper> "
                        f"(e.g. {word}@{a}-{a + 1}) and draw each line from its lower end to its upper end.")
    if not spec.spans_levels and b is not None:
        raise UserError(f"{where}, layer {layer!r}: {word} lies on one level; name the layer {word}@<level> "
                        f"(e.g. {word}@{a}).")
    if b is not None and b <= a:
        raise UserError(f"{where}, layer {layer!r}: the lower level comes first ({word}@{min(a, b)}-{max(a, b)}), and "
                        "the two levels differ.")
    return word, a, b


def _dxf_entities(msp):
    """(entity, layer) of the modelspace, blocks exploded (their layer-0 entities on the INSERT's layer)."""
    def walk(entities, parent_layer, nesting):
        for e in entities:
            layer = e.dxf.get("layer", "0")
            if parent_layer is not None and layer == "0":
                layer = parent_layer
            if e.dxftype() == "INSERT" and nesting < 8:
                try:
                    yield from walk(list(e.virtual_entities()), layer, nesting + 1)
                except Exception:  # a block ezdxf cannot explode (non-uniform scaling of arcs…): skipped
                    yield e, layer
            else:
                yield e, layer

    yield from walk(msp, None, 0)


def read_dxf(path: Path, placement: Placement, kinds: dict) -> Drawing:
    import ezdxf
    from ezdxf import path as dxfpath
    from ezdxf import units as dxfunits

    try:
        doc = ezdxf.readfile(path)
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the file ({e}).") from None
    except ezdxf.DXFError as e:
        raise UserError(f"{path}: not a readable DXF drawing ({str(e).strip() or type(e).__name__}). Save it again "
                        "as DXF (R2000 or later) from your CAD program.") from None
    insunits = int(doc.header.get("$INSUNITS", 0) or 0)
    if insunits:
        try:
            factor = float(dxfunits.conversion_factor(insunits, dxfunits.M))
        except (KeyError, IndexError, ValueError, ZeroDivisionError):
            raise UserError(f"{path}: the header's $INSUNITS = {insunits} is not a length unit; set the drawing's "
                            "units (UNITS) to millimetres or metres and save again.") from None
        units = dxfunits.unit_name(insunits).lower()
    else:
        factor, units = 1.0, "unitless (read as metres)"
    base = doc.header.get("$INSBASE", (0.0, 0.0, 0.0))
    bx, by = float(base[0]), float(base[1])
    drawing = Drawing(path, "dxf", placement, units)
    ignored: dict[tuple[str, str], int] = {}
    other_layers: set[str] = set()
    counter: dict[str, int] = {}

    for e, layer in _dxf_entities(doc.modelspace()):
        parsed = parse_layer(layer, kinds, str(path))
        if parsed is None:
            other_layers.add(layer)
            continue
        kind, lo, hi = parsed
        spec = kinds[kind][0]
        where = f"{path}, layer {layer!r}, {e.dxftype()} #{e.dxf.get('handle', '?')}"
        try:
            if e.dxftype() not in DXF_TYPES:
                raise TypeError(e.dxftype())
            p = dxfpath.make_path(e)
        except (TypeError, ValueError, AttributeError):
            ignored[(layer, e.dxftype())] = ignored.get((layer, e.dxftype()), 0) + 1
            continue
        pts = np.array([(v.x, v.y) for v in p.flattening(FLATTEN_M / factor)], dtype=float)
        if len(pts) < 2:
            continue
        pts = (pts - (bx, by)) * factor
        closed = bool(p.is_closed) or bool(getattr(e, "closed", False)) or (
            e.dxftype() == "POLYLINE" and e.is_closed)
        if spec.geometry == "Polygon":
            if not closed or len(pts) < 3:
                raise UserError(f"{where}: not closed; {kind} is an area, drawn as a closed polyline (close it, e.g. "
                                "with PEDIT Close).")
            geom = shapely.make_valid(shapely.Polygon(pts))
            geom = shapely.union_all([g for g in shapely.get_parts(geom) if g.geom_type == "Polygon"] or [shapely.Polygon()])
            if geom.is_empty or geom.area <= 0:
                raise UserError(f"{where}: the closed polyline has no area; redraw it.")
        else:
            if closed and len(pts) > 2:
                raise UserError(f"{where}: a closed outline; {kind} is a line (a LINE or an open polyline"
                                + (", from its lower end to its upper end" if spec.spans_levels else "") + ").")
            geom = shapely.LineString(pts)
            if geom.length <= 0:
                raise UserError(f"{where}: the line has no length; redraw it.")
        width = None
        if e.dxftype() == "LWPOLYLINE" and float(e.dxf.get("const_width", 0) or 0) > 0:
            width = float(e.dxf.const_width) * factor * placement.scale
        counter[layer] = counter.get(layer, 0) + 1
        drawing.features.append(DrawnFeature(kind, lo, placement.apply(geom), f"{path.name}, layer {layer!r}",
                                             name=f"{layer} #{counter[layer]}", to_level=hi, width_m=width))
        for lv in (lo, hi):
            if lv is not None:
                drawing.levels.setdefault(lv, str(lv))
    for (layer, t), n in sorted(ignored.items()):
        drawing.skipped.append(f"layer {layer!r}: {n} {t} (not a line or an area)")
    if other_layers:
        drawing.skipped.append(f"{len(other_layers)} layer(s) not named <kind>@<level>: "
                               + ", ".join(sorted(other_layers)[:8]) + (" …" if len(other_layers) > 8 else ""))
    if insunits == 0:
        drawing.notes.append("the drawing has no units ($INSUNITS = 0): read as metres; give a SCALE in --place "
                             "(e.g. 0.001 for millimetres) if it is drawn in another unit")
    drawing.levels = dict(sorted(drawing.levels.items()))
    return drawing


# -- IFC ----------------------------------------------------------------------------------------
def _supertypes(model, name: str) -> tuple[str, ...]:
    import ifcopenshell.ifcopenshell_wrapper as w

    out = []
    try:
        decl = w.schema_by_name(model.schema).declaration_by_name(name)
    except (RuntimeError, IndexError, KeyError):  # a schema IfcOpenShell knows no declarations of
        return (name,)
    while decl is not None:
        out.append(decl.name())
        decl = decl.supertype()
    return tuple(out)


def _storey_of(el, storeys: set):
    import ifcopenshell.util.element as ue

    seen = 0
    cur = el
    while cur is not None and seen < 32:
        if cur.id() in storeys:
            return cur
        cur = ue.get_container(cur) or ue.get_aggregate(cur)
        seen += 1
    return None


def _levels_of_storeys(model, unit_scale: float, where: str):
    """({storey id: level}, {level: elevation m}, {level: names}) by the storeys' heights."""
    import ifcopenshell.util.placement as up

    rows = []
    for s in model.by_type("IfcBuildingStorey"):
        z = None
        if s.ObjectPlacement is not None:
            z = float(up.get_local_placement(s.ObjectPlacement)[2][3]) * unit_scale
        elif s.Elevation is not None:
            z = float(s.Elevation) * unit_scale
        rows.append((z if z is not None else 0.0, s))
    if not rows:
        raise UserError(f"{where}: the IFC file has no building storeys (IfcBuildingStorey); levels come from "
                        "storeys. Export it with its storeys.")
    rows.sort(key=lambda r: (r[0], r[1].id()))
    groups: list[list] = []
    for z, s in rows:
        if groups and z - groups[-1][-1][0] < SAME_LEVEL_M:
            groups[-1].append((z, s))
        else:
            groups.append([(z, s)])
    zs = [g[0][0] for g in groups]
    zero = min(range(len(zs)), key=lambda i: (abs(zs[i]), -zs[i]))
    of_storey, elev, names = {}, {}, {}
    for i, g in enumerate(groups):
        lv = i - zero
        elev[lv] = zs[i] - zs[zero]
        names[lv] = " + ".join(str(s.Name or f"#{s.id()}") for _, s in g)
        for _, s in g:
            of_storey[s.id()] = lv
    return of_storey, elev, names, zs[zero]


def _level_at(z: float, elevations: dict) -> int:
    below = [lv for lv, e in elevations.items() if e <= z + LEVEL_TOLERANCE_M]
    return max(below, key=lambda lv: elevations[lv]) if below else min(elevations, key=elevations.get)


def _plan(verts, faces, below=None):
    """Union of the triangles' plans (those entirely within ``below`` of the lowest point, when given)."""
    tri = verts[faces]
    if below is not None:
        tri = tri[(tri[:, :, 2] <= verts[:, 2].min() + below).all(axis=1)]
    if not len(tri):
        return shapely.Polygon()
    area = 0.5 * np.abs((tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1])
                        - (tri[:, 2, 0] - tri[:, 0, 0]) * (tri[:, 1, 1] - tri[:, 0, 1]))
    tri = tri[area > 1e-8]
    if not len(tri):
        return shapely.Polygon()
    polys = shapely.polygons(np.concatenate([tri[:, :, :2], tri[:, :1, :2]], axis=1))
    # a hair of buffer closes the cracks between triangles computed with round-off
    return shapely.union_all(shapely.buffer(polys, 1e-6, join_style="mitre")).buffer(-1e-6, join_style="mitre")


def _shape(settings, el):
    """(vertices, triangles) of an element in world coordinates; empty when IfcOpenShell cannot make it."""
    import ifcopenshell.geom

    try:
        shape = ifcopenshell.geom.create_shape(settings, el)
        return (np.asarray(shape.geometry.verts, dtype=float).reshape(-1, 3),
                np.asarray(shape.geometry.faces, dtype=np.int64).reshape(-1, 3))
    except Exception:  # an element IfcOpenShell cannot triangulate is skipped and counted
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)


def _area_plan(verts, faces):
    """An area element's plan: its faces near its lowest point (so a wall is cut below its door
    openings and a slab keeps its holes), else all its faces; polygons only."""
    geom = _plan(verts, faces, CUT_M)
    if geom.is_empty:
        geom = _plan(verts, faces)
    return shapely.union_all([g for g in shapely.get_parts(shapely.make_valid(geom)) if g.geom_type == "Polygon"]
                             or [shapely.Polygon()])


def _centre_line(plan, verts, spans: bool):
    """(line, width) of a plan's minimum rotated rectangle; with ``spans`` from the low end to the high end."""
    r = np.asarray(shapely.minimum_rotated_rectangle(plan).exterior.coords)[:4]
    if len(r) < 4:
        return None, 0.0
    e = [float(np.hypot(*(r[(k + 1) % 4] - r[k]))) for k in range(4)]
    k = int(np.argmax(e[:2]))
    a, b = (r[k] + r[(k + 3) % 4]) / 2, (r[k + 1] + r[(k + 2) % 4]) / 2
    width = e[(k + 1) % 4]
    if spans:
        axis = (b - a) / max(float(np.hypot(*(b - a))), 1e-9)
        t = (verts[:, :2] - a) @ axis
        L = float(np.hypot(*(b - a)))
        z_a = verts[t <= 0.25 * L, 2].mean() if (t <= 0.25 * L).any() else 0.0
        z_b = verts[t >= 0.75 * L, 2].mean() if (t >= 0.75 * L).any() else 0.0
        if z_a > z_b:
            a, b = b, a
    return shapely.LineString([a, b]), width


def read_ifc(path: Path, placement: Placement, kinds: dict) -> Drawing:
    import ifcopenshell
    import ifcopenshell.geom
    import ifcopenshell.util.element as ue
    import ifcopenshell.util.unit as uu

    try:
        model = ifcopenshell.open(str(path))
    except (ifcopenshell.Error, OSError, RuntimeError, ValueError, SyntaxError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not a readable IFC file ({msg}). Export it again as IFC2X3 or IFC4 (STEP, .ifc).") from None
    scale = float(uu.calculate_unit_scale(model))
    of_storey, elev, names, z0 = _levels_of_storeys(model, scale, str(path))
    unit = uu.get_project_unit(model, "LENGTHUNIT") if model.by_type("IfcUnitAssignment") else None
    drawing = Drawing(path, "ifc", placement, uu.get_full_unit_name(unit).lower() if unit is not None else "metre",
                      levels=dict(sorted(names.items())),
                      elevations_m=dict(sorted(elev.items())))
    hooks = []
    for _, hook in kinds.values():
        if hook.ifc_kind is not None and hook not in hooks:
            hooks.append(hook)
    storey_ids = set(of_storey)
    taken: dict[int, tuple[str, dict]] = {}
    for el in model.by_type("IfcProduct"):
        if el.is_a("IfcSpatialStructureElement") and not el.is_a("IfcSpace"):
            continue
        if el.is_a("IfcOpeningElement") or el.Representation is None:
            continue
        psets = ue.get_psets(el)
        external = any(bool(p.get("IsExternal")) for p in psets.values() if isinstance(p, dict))
        info = {"ifc_class": el.is_a(), "ifc_classes": _supertypes(model, el.is_a()),
                "predefined_type": str(ue.get_predefined_type(el) or ""), "object_type": str(getattr(el, "ObjectType", "") or ""),
                "name": str(el.Name or ""), "long_name": str(getattr(el, "LongName", "") or ""),
                "description": str(el.Description or ""), "is_external": external}
        for hook in hooks:
            said = hook.ifc_kind(info)
            if said is None:
                continue
            said = (said,) if isinstance(said, str) else tuple(said)
            for kind in said:
                if kind not in kinds:
                    raise UserError(f"{path}: a model maps {el.is_a()} #{el.id()} to the drawing kind {kind!r}, which "
                                    "no model declares (a model bug: declare it in drawing_kinds).")
            if said:
                taken[el.id()] = (said, info)
                break
    # an element whose parts are taken is represented by them (an assembly by its pieces)
    for eid in list(taken):
        parts = [p for rel in (model.by_id(eid).IsDecomposedBy or []) for p in rel.RelatedObjects]
        if any(p.id() in taken for p in parts):
            taken.pop(eid)
    if not taken:
        raise UserError(f"{path}: no element the models read ({', '.join(kinds) or 'none'}); the file holds "
                        + ", ".join(f"{n} {c}" for c, n in _class_counts(model)[:8]) + ".")
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    no_shape: dict[str, int] = {}
    one_level: list[str] = []
    for eid, (said, info) in sorted(taken.items()):
        el = model.by_id(eid)
        label = f"{el.is_a()} #{eid}" + (f" {info['name']!r}" if info["name"] else "")
        verts, faces = _shape(settings, el)
        if not len(verts):
            no_shape[el.is_a()] = no_shape.get(el.is_a(), 0) + 1
            continue
        verts[:, 2] -= z0
        storey = _storey_of(el, storey_ids)
        home = of_storey[storey.id()] if storey is not None else _level_at(float(verts[:, 2].min()), elev)
        for kind in said:
            spec = kinds[kind][0]
            level, to_level, width = home, None, None
            if spec.geometry == "Polygon":
                # an element that fills an opening (a door) stands for the opening: the hole through the wall
                holes = [_shape(settings, rel.RelatingOpeningElement) for rel in (getattr(el, "FillsVoids", None) or [])]
                holes = [(v - (0.0, 0.0, z0), f) for v, f in holes if len(v)]
                geom = shapely.union_all([_area_plan(v, f) for v, f in holes] or [_area_plan(verts, faces)])
                if geom.is_empty or geom.area < 1e-4:
                    no_shape[el.is_a()] = no_shape.get(el.is_a(), 0) + 1
                    continue
            else:
                geom, width = _centre_line(_plan(verts, faces), verts, spec.spans_levels)
                if geom is None or geom.length < 0.1:
                    no_shape[el.is_a()] = no_shape.get(el.is_a(), 0) + 1
                    continue
                if spec.spans_levels:
                    level = _level_at(float(verts[:, 2].min()), elev)
                    to_level = _level_at(float(verts[:, 2].max()), elev)
                    if to_level <= level:
                        one_level.append(label)
                        continue
            drawing.features.append(DrawnFeature(kind, level, placement.apply(geom), f"{path.name}, {label}",
                                                 name=_short_name(info["name"] or info["long_name"] or f"{el.is_a()} #{eid}"),
                                                 to_level=to_level,
                                                 width_m=None if width is None else width * placement.scale,
                                                 info=info | {"ifc_id": eid, "global_id": str(el.GlobalId)}))
    for cls, n in sorted(no_shape.items()):
        drawing.skipped.append(f"{n} {cls} without a usable shape")
    if one_level:
        drawing.skipped.append(f"{len(one_level)} element(s) that join no two storeys: " + ", ".join(one_level[:5]))
    drawing.notes.append("storeys → levels: " + ", ".join(f"{lv}: {names[lv]} at {elev[lv]:+.2f} m" for lv in sorted(elev)))
    return drawing


def _class_counts(model) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for el in model.by_type("IfcProduct"):
        counts[el.is_a()] = counts.get(el.is_a(), 0) + 1
    return sorted(counts.items(), key=lambda t: (-t[1], t[0]))


def read_drawing(path: Path, placement: Placement, kinds: dict | None = None) -> Drawing:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file. Check the path (relative paths are from the current folder).")
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give the drawing file (.dxf or .ifc).")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty (0 bytes). Export the drawing again.")
    kinds = drawing_kinds() if kinds is None else kinds
    suffix = path.suffix.lower()
    if suffix == ".dxf":
        drawing = read_dxf(path, placement, kinds)
    elif suffix == ".ifc":
        drawing = read_ifc(path, placement, kinds)
    else:
        raise UserError(f"{path}: a drawing is a .dxf or an .ifc file.")
    if not drawing.features:
        raise UserError(f"{path}: no feature of a kind the models read ({', '.join(kinds) or 'none'})"
                        + (f"; skipped: {'; '.join(drawing.skipped)}" if drawing.skipped else "")
                        + (". Name the DXF layers <kind>@<level>" + (f", e.g. {next(iter(kinds))}@0" if kinds else "") + "."
                           if drawing.format == "dxf" else "."))
    return drawing


def is_drawing(path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


# -- the merge ------------------------------------------------------------------------------------
def _level_heights(city, drawing: Drawing) -> tuple[dict | None, list[str]]:
    """city.toml's level_height_m with the drawing's storey heights, or None when it has none."""
    from twin.core.city import level_heights

    e = drawing.elevations_m
    if len(e) < 2:
        return None, []
    out: dict[str, float] = {}
    old = city.meta.get("level_height_m")
    notes = []
    if isinstance(old, dict):
        out.update({str(k): float(v) for k, v in old.items()})
    elif old is not None:
        notes.append(f"level heights: the drawing's storeys replace the single storey height {old} m of city.toml for "
                     "its levels")
    for lv in sorted(e):
        if lv == 0:
            continue
        nxt = lv - 1 if lv > 0 else lv + 1
        if nxt not in e:
            continue
        h = round(abs(e[lv] - e[nxt]), 3)
        out[str(lv)] = h
    level_heights(out, f"{drawing.path}: the storeys' heights (level_height_m)")
    return out, notes


def import_drawing(path, into, place: str, **model_options):
    """Read a drawing, place it and merge it into the city package ``into`` (see the module doc).
    Returns the report (twin.gis.city_import.ImportReport)."""
    from twin.core.city import City
    from twin.core.files import atomic_dir, write_gpkg_layer
    from twin.declarations import import_hooks
    from twin.gis.city_import import ImportReport, import_options

    t0 = time.perf_counter()
    path, into = Path(path), Path(into)
    placement = Placement.parse(place)
    options = {o.name: o.default for o in import_options()}
    unknown = sorted(set(model_options) - set(options))
    if unknown:
        raise UserError(f"unknown import option {unknown[0]!r}; the models' import options are: "
                        f"{', '.join(options) or 'none'}.")
    options.update({k: v for k, v in model_options.items() if v is not None})
    city = City.load(into)  # before reading: a wrong --into fails fast
    drawing = read_drawing(path, placement, drawing_kinds())
    before = dict(city.layers)
    notes = list(drawing.notes)
    heights, hnotes = _level_heights(city, drawing)
    notes += hnotes
    if heights is not None:
        city.meta["level_height_m"] = heights
    kinds = drawing_kinds()
    for hook in import_hooks():
        mine = {k.name for k in hook.drawing_kinds if kinds.get(k.name, (None, None))[1] is hook}
        if hook.drawing_import is None or not mine:
            continue
        part = Drawing(drawing.path, drawing.format, placement, drawing.units, drawing.of(*sorted(mine)),
                       drawing.levels, drawing.elevations_m)
        if part.features:
            city, lines = hook.drawing_import(city, part, options)
            notes.extend(lines)
    # a layer emptied (an earlier import of the same drawing taken out) is written empty, so nothing stale stays
    changed = {name: gdf for name, gdf in city.layers.items() if before.get(name) is not gdf
               and (len(gdf) or name in before or _has_layer(city.gpkg, name, meta_renames(city.meta)))}
    city.check_terrain_overlap(f"{path} placed with --place {place}")  # a drawing far off the DEM: refused here
    record = {"file": str(path), "format": drawing.format, "place": placement.as_list(), "units": drawing.units,
              "levels": {str(k): v for k, v in drawing.levels.items()}, "features": drawing.counts()}
    if drawing.elevations_m:
        record["elevations_m"] = {str(k): round(v, 3) for k, v in drawing.elevations_m.items()}
    meta = dict(city.meta)
    # a drawing imported again (a revised plan) replaces its earlier record, as the models replace its features
    meta["drawings"] = [*(r for r in meta.get("drawings") or []
                          if not (isinstance(r, dict) and Path(str(r.get("file", ""))).name == path.name)), record]
    report = ImportReport({
        "name": city.name, "out": str(into), "drawing": record, "layers": {k: len(v) for k, v in changed.items()},
        "skipped": drawing.skipped, "notes": notes, "wall_s": 0.0})
    renames = meta_renames(meta)
    gpkg = city.gpkg or into / "city.gpkg"
    with atomic_dir(into) as tmp:
        target = tmp / gpkg.relative_to(into) if gpkg.is_relative_to(into) else tmp / gpkg.name
        if city.gpkg is not None:
            shutil.copy2(city.gpkg, target)
        for name, gdf in changed.items():
            write_gpkg_layer(gdf.to_crs(city.crs), target, renames.get(name, name))
        import tomli_w

        (tmp / "city.toml").write_text(tomli_w.dumps({"city": _plain(meta)}), encoding="utf-8")
        report.data["wall_s"] = time.perf_counter() - t0
        (tmp / "drawing_report.json").write_text(json.dumps(report.data, indent=2, ensure_ascii=False,
                                                            default=json_default) + "\n", encoding="utf-8")
    return report


def meta_renames(meta: dict) -> dict:
    return meta.get("layers", {}) if isinstance(meta.get("layers", {}), dict) else {}


def _has_layer(gpkg, name: str, renames: dict) -> bool:
    import pyogrio

    return gpkg is not None and renames.get(name, name) in {n for n, _ in pyogrio.list_layers(gpkg)}


def _plain(value):
    """city.toml values as TOML can hold them (numpy numbers to Python's)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def report_text(report) -> str:
    d = report.data
    rec = d["drawing"]
    p = rec["place"]
    lines = [f"Drawing {rec['file']} ({rec['format'].upper()}, {rec['units']}) merged into {d['out']} in {d['wall_s']:.1f} s",
             f"  placed     origin at ({p[0]:.2f}, {p[1]:.2f}), rotated {p[2]:g}°, scale {p[3]:g}",
             "  levels     " + ", ".join(f"{k}: {v}" for k, v in rec["levels"].items()),
             "  features   " + (", ".join(f"{k} {v}" for k, v in rec["features"].items()) or "none"),
             "  layers     " + (", ".join(f"{k} {v}" for k, v in d["layers"].items()) or "none changed")]
    lines += [f"  skipped    {s}" for s in d.get("skipped", [])]
    lines += [f"  note       {s}" for s in d.get("notes", [])]
    return "\n".join(lines)


__all__ = ["Placement", "Drawing", "DrawnFeature", "drawing_kinds", "read_drawing", "read_dxf", "read_ifc",
           "import_drawing", "is_drawing", "parse_layer", "report_text"]


def _short_name(name: str) -> str:
    """A name to label a feature with. Revit names what it exports "Family:Type:…:ElementId"
    ("M_Single-Glass 1:0813 x 2420mm:0813 x 2420mm:254567"), too long for a label on the map: the
    family and the element's id say which one it is."""
    parts = [p.strip() for p in name.split(":")]
    if len(parts) >= 3 and parts[-1].isdigit() and parts[0]:
        return f"{parts[0]} #{parts[-1]}"
    return name

