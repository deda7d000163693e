"""A two-level station drawn in code, as an architect's DXF plan (ezdxf) and as an IFC model
(IfcOpenShell's API), for the drawing import tests.

In the drawing's own metres: a 40 x 20 m concourse (level 0) under a 40 x 10 m platform (level 1,
y 4-14, 6 m up). A stair (3 m wide, y 5-8) and an escalator running down (1 m, y 9.5-10.5) lead
from the concourse at x = 16 up to the platform at x = 28. A wall at x = 32 (y 0-14) and a line of
ticket gates (x = 32, y 14-20) close the paid area; the exit is a doorway in the east wall
(x = 40, y 8-12). A pillar stands at (8.3, 3.3); the IFC model also has a lift, an inner door and
a base slab under the concourse.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

STOREY_Z = (0.0, 6.0)
EXIT = ((40.0, 8.0), (40.0, 12.0))
TICKET_LINE = ((32.0, 14.0), (32.0, 20.0))
STAIR = ((16.0, 6.5), (28.0, 6.5))
ESCALATOR = ((16.0, 10.0), (28.0, 10.0))


def rect(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def write_dxf(path: Path, *, mm: bool = True, extra_layers: dict | None = None) -> Path:
    """The station as a DXF plan, in millimetres from a base point (1000, 2000) mm when ``mm``.
    ``extra_layers``: {layer: [(x, y), ...] lines} added as they are (drawing metres)."""
    import ezdxf

    doc = ezdxf.new("R2010")
    f, base = (1000.0, (1000.0, 2000.0)) if mm else (1.0, (0.0, 0.0))
    doc.header["$INSUNITS"] = 4 if mm else 6
    doc.header["$INSBASE"] = (base[0], base[1], 0.0)
    msp = doc.modelspace()

    def pts(points):
        return [(base[0] + f * x, base[1] + f * y) for x, y in points]

    def area(layer, points):
        msp.add_lwpolyline(pts(points), close=True, dxfattribs={"layer": layer})

    def line(layer, a, b, width=None):
        if width is None:
            msp.add_line(*pts([a, b]), dxfattribs={"layer": layer})
        else:
            msp.add_lwpolyline(pts([a, b]), dxfattribs={"layer": layer, "const_width": width * f})

    area("walkable@0", rect(0, 0, 40, 20))
    area("platform@1", rect(0, 4, 40, 14))
    area("obstacle@0", rect(31.85, 0, 32.15, 14))
    msp.add_circle(pts([(8.3, 3.3)])[0], 0.3 * f, dxfattribs={"layer": "obstacle@0"})
    line("gate@0", *EXIT)
    line("ticket_gate@0", *TICKET_LINE)
    line("stairs@0-1", *STAIR, width=3.0)
    line("escalator_down@0-1", *ESCALATOR, width=1.0)
    msp.add_text("Concourse", dxfattribs={"layer": "text", "insert": pts([(5, 15)])[0]})
    hatch = msp.add_hatch(dxfattribs={"layer": "walkable@0"})  # a fill, not an outline: skipped and listed
    hatch.paths.add_polyline_path(pts(rect(0, 0, 40, 20)), is_closed=True)
    for layer, points in (extra_layers or {}).items():
        msp.add_lwpolyline(pts(points), dxfattribs={"layer": layer})
    doc.saveas(path)
    return path


def _box(x0, y0, z0, x1, y1, z1):
    return [(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0), (x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)]


def _ramp(x0, y0, x1, y1, z0, z1, t=0.3):
    """A sloped slab t thick whose top rises from z0 at x0 to z1 at x1."""
    return [(x0, y0, z0 - t), (x1, y0, z1 - t), (x1, y1, z1 - t), (x0, y1, z0 - t),
            (x0, y0, z0), (x1, y0, z1), (x1, y1, z1), (x0, y1, z0)]


BOX_FACES = [(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]


def write_ifc(path: Path, *, millimetres: bool = False) -> Path:
    """The station as an IFC4 model in metres (or millimetres, the API's default unit): storeys, spaces, walls (the east one with a door
    opening), a column, a stair of one flight, an escalator, a lift, an outside and an inside door,
    and a proxy element named as a ticket gate line."""
    import ifcopenshell
    import ifcopenshell.api

    run = ifcopenshell.api.run
    m = ifcopenshell.file(schema="IFC4")
    project = run("root.create_entity", m, ifc_class="IfcProject", name="Test station")
    if millimetres:
        run("unit.assign_unit", m)
    else:
        run("unit.assign_unit", m, length={"is_metric": True, "raw": "METERS"})
    model_ctx = run("context.add_context", m, context_type="Model")
    body = run("context.add_context", m, context_type="Model", context_identifier="Body", target_view="MODEL_VIEW",
               parent=model_ctx)
    site = run("root.create_entity", m, ifc_class="IfcSite", name="Site")
    building = run("root.create_entity", m, ifc_class="IfcBuilding", name="Station")
    run("aggregate.assign_object", m, relating_object=project, products=[site])
    run("aggregate.assign_object", m, relating_object=site, products=[building])
    storeys = []
    for name, z in zip(("Concourse level", "Platform level"), STOREY_Z):
        s = run("root.create_entity", m, ifc_class="IfcBuildingStorey", name=name)
        s.Elevation = z * (1000.0 if millimetres else 1.0)  # in the file's unit; the API's matrices are in metres
        matrix = np.eye(4)
        matrix[2, 3] = z
        run("geometry.edit_object_placement", m, product=s, matrix=matrix)
        run("aggregate.assign_object", m, relating_object=building, products=[s])
        storeys.append(s)

    def element(ifc_class, name, verts, storey=None, parent=None, **attrs):
        el = run("root.create_entity", m, ifc_class=ifc_class, name=name, **attrs)
        run("geometry.edit_object_placement", m, product=el, matrix=np.eye(4))
        rep = run("geometry.add_mesh_representation", m, context=body, vertices=[verts], faces=[BOX_FACES])
        run("geometry.assign_representation", m, product=el, representation=rep)
        if parent is not None:
            run("aggregate.assign_object", m, relating_object=parent, products=[el])
        elif ifc_class == "IfcSpace":
            run("aggregate.assign_object", m, relating_object=storey, products=[el])
        else:
            run("spatial.assign_container", m, relating_structure=storey, products=[el])
        return el

    lo, hi = storeys
    element("IfcSpace", "Concourse", _box(0, 0, 0, 40, 20, 3), lo)
    element("IfcSpace", "Platform 1", _box(0, 4, 6, 40, 14, 9), hi)
    element("IfcSlab", "Base slab", _box(-1, -1, -0.4, 41, 21, 0), lo, predefined_type="BASESLAB")  # spaces win
    element("IfcWall", "Fare line wall", _box(31.85, 0, 0, 32.15, 14, 3), lo)
    east = element("IfcWall", "East wall", _box(40, 0, 0, 40.3, 20, 3), lo)
    opening = run("root.create_entity", m, ifc_class="IfcOpeningElement", name="Exit opening")
    run("geometry.edit_object_placement", m, product=opening, matrix=np.eye(4))
    rep = run("geometry.add_mesh_representation", m, context=body, vertices=[_box(39.9, 8, -0.1, 40.4, 12, 2.2)],
              faces=[BOX_FACES])
    run("geometry.assign_representation", m, product=opening, representation=rep)
    run("feature.add_feature", m, feature=opening, element=east)
    element("IfcColumn", "Pillar", _box(8, 3, 0, 8.6, 3.6, 3), lo)
    door = element("IfcDoor", "Main exit", _box(40, 8, 0, 40.3, 12, 2.2), lo)
    pset = run("pset.add_pset", m, product=door, name="Pset_DoorCommon")
    run("pset.edit_pset", m, pset=pset, properties={"IsExternal": True})
    run("feature.add_filling", m, opening=opening, element=door)  # the doorway: the opening it fills
    element("IfcDoor", "Staff room door", _box(10, 19.85, 0, 11, 20.15, 2.1), lo)
    element("IfcBuildingElementProxy", "Ticket gate line A", _box(31.7, 14, 0, 32.3, 20, 1.1), lo)
    stair = element("IfcStair", "Main stair", _ramp(16, 5, 28, 8, 0, 6), lo)
    element("IfcStairFlight", "Main stair flight", _ramp(16, 5, 28, 8, 0, 6), parent=stair)
    element("IfcTransportElement", "Escalator down", _ramp(16, 9.5, 28, 10.5, 0, 6), lo, predefined_type="ESCALATOR")
    element("IfcTransportElement", "Lift", _box(36, 15, 0, 38, 17, 9), lo, predefined_type="ELEVATOR")
    m.write(str(path))
    return path
