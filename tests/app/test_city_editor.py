"""Edit → City in the real window (app/city_editor.py): draw a line feature and a link between
levels on the demo city by clicking on the map, save, reopen, run the model that needs them, and
undo back to the package byte for byte."""
import hashlib
import shutil

import numpy as np
import pytest
import shapely

from agents.registry import MODELS, get_model
from tests.conftest import DEMO_CITY
from twin.core.city import City
from twin.gis.city_edit import editable_layers


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _layers():
    layers = editable_layers()
    line = next(n for n, l in layers.items() if "LineString" in l.families and l.spec.ids_required and l.spec.levels)
    joins = next(n for n, l in layers.items() if l.families == ("LineString",) and not l.contract
                 and any(c.startswith("from_") for c in l.spec.columns))
    return line, joins


@pytest.fixture
def demo(tmp_path):
    shutil.copytree(DEMO_CITY, tmp_path / "city")
    return tmp_path / "city"


@pytest.mark.slow  # the demo city opened and reopened twice, and the model built on it: 49 s on a loaded 2-core machine
def test_draw_save_reload_run_and_undo(window, demo, qtbot):
    original = _digest(demo)
    assert window.open_city(demo)
    qtbot.waitUntil(lambda: window.session.city is not None and window.session.city.root == demo, timeout=60_000)
    assert window.set_editing_city(True)
    ed = window.city_editor
    assert window.viewport.tool is ed and window.docks["city_editor"].isVisible()
    line, joins = _layers()
    # every declared layer is offered, with its geometry
    assert {ed.layer_combo.itemData(i) for i in range(ed.layer_combo.count())} == set(editable_layers())

    # a line feature: one click through the real picking path (display pixel -> ground), one by world point
    ed.set_layer(line)
    assert set(editable_layers()[line].spec.columns) <= set(ed.fields)
    ed.start_draw()
    ed.fields["id"].setCurrentText("DRAWN1")
    x0, y0 = 500520.0, 3401480.0  # on the edge of a walkable area, as the model wants
    window.viewport.camera("top")
    px, py = window.viewport.renderer.world_to_display(x0, y0)
    window.viewport.click_display(px, py)
    assert len(ed.points) == 1 and abs(ed.points[0][0] - x0) < 5 and abs(ed.points[0][1] - y0) < 5
    ed.points[0] = (x0, y0)  # the test's line is exact; the pixel's ground point was within 5 m
    window.viewport.tool.click(x0 + 5, y0)
    assert ed.finish(), ed.status.text()
    assert ed.undo_stack.count() == 1 and "DRAWN1" in set(ed.edit.frame(line)["id"])

    # a link between levels: drawn from the lower end to the upper end, attributes from the form
    ed.set_layer(joins)
    ed.start_draw()
    frame = ed.edit.frame(joins)
    template = frame.iloc[0]
    for c in ed.fields:
        if c != "id" and c in frame.columns:
            ed.fields[c].setCurrentText(str(template[c]))
    ed.fields["id"].setCurrentText("DRAWN2")
    a, b = shapely.get_coordinates(template.geometry)[[0, -1]]
    dy = 30.0  # beside the first one, same floors
    ed.click(a[0], a[1] + dy)
    ed.click(b[0], b[1] + dy)
    assert ed.finish(), ed.status.text()
    assert ed.undo_stack.count() == 2

    # a wrong attribute is refused with the reason, nothing is added
    ed.set_layer(line)
    ed.start_draw()
    ed.fields["id"].setCurrentText("DRAWN1")
    ed.click(x0, y0 + 20)
    ed.click(x0 + 5, y0 + 20)
    assert not ed.finish() and "used more than once" in ed.status.text()
    assert ed.undo_stack.count() == 2

    # a click selects the drawn feature: its attributes in the form, changed, deleted, the delete undone
    ed.cancel_draw()
    ed.click(x0 + 2.5, y0 + 0.5)
    row = ed.selected
    assert row is not None and ed.edit.frame(line)["id"].iloc[row] == "DRAWN1"
    assert ed.fields["id"].currentText() == "DRAWN1"
    ed.fields["level"].setCurrentText("1.5")
    assert not ed.apply_attributes() and "whole number" in ed.status.text()
    ed.fields["level"].setCurrentText("0")
    flag = next(c for c, v in editable_layers()[line].spec.defaults if isinstance(v, bool))
    ed.fields[flag].setCurrentText("False")
    assert ed.apply_attributes()
    assert not bool(ed.edit.frame(line)[flag].iloc[row])
    assert ed.delete_selected() and "DRAWN1" not in set(ed.edit.frame(line)["id"])
    ed.undo_stack.undo()
    assert "DRAWN1" in set(ed.edit.frame(line)["id"]) and ed.undo_stack.index() == 3

    checks = ed.save()
    assert checks and all(c.can_run for c in checks) and ed.findings.count() >= len(checks)
    assert "city saved" in window.log_panel.toPlainText()
    named = [i for c in checks for k in ("missing", "defaulted", "estimated") for i in getattr(c, k) if i.names]
    assert bool(named) == ed.markers.shown  # the findings marked on the map
    qtbot.waitUntil(lambda: window.session.city is not None and "DRAWN1" in set(window.session.city.layer(line)["id"]),
                    timeout=60_000)
    saved = City.load(demo)
    assert "DRAWN2" in set(saved.extra_layer(editable_layers()[joins].spec)["id"])
    assert not bool(saved.layer(line).set_index("id").loc["DRAWN1", flag])

    # the model that needs both layers runs on the saved package with them
    name = next(m for m in MODELS if line in get_model(m).required_layers
                and any(s.name == joins for s in get_model(m).extra_layers))
    model = get_model(name)(City.load(demo), duration_s=2.0, seed=1, demand_scale=0.01)
    assert "DRAWN1" in {g.id for g in model.station.gates}
    assert "DRAWN2" in {c.id for c in model.station.connectors}
    model.advance_to(1.0)
    assert model.time_s == pytest.approx(1.0)

    # undo every edit and save: the package is back byte for byte
    while ed.undo_stack.canUndo():
        ed.undo_stack.undo()
    assert ed.undo_stack.index() == 0
    ed.save()
    assert _digest(demo) == original
    window.set_editing_city(False)
    assert window.viewport.tool is None


def test_drag_insert_and_delete_vertices_save_reload_and_undo(window, demo, qtbot):
    """Reshape through the handles on the map: drag a vertex of an area (and one onto another
    feature's vertex: it snaps), add a vertex to a line with Ctrl+click, remove one with the Delete
    key; each is one undo step; saved and reread; undone to the byte."""
    original = _digest(demo)
    assert window.open_city(demo)
    qtbot.waitUntil(lambda: window.session.city is not None and window.session.city.root == demo, timeout=60_000)
    assert window.set_editing_city(True)
    ed = window.city_editor
    area = next(n for n, l in editable_layers().items() if l.families == ("Polygon",) and l.spec.levels
                and not l.spec.columns)
    line, _ = _layers()

    ed.set_layer(area)
    frame = ed.edit.frame(area)
    inside = frame.geometry.iloc[0].representative_point()
    row = ed.select_at(inside.x, inside.y)
    assert row is not None and ed.handles.shown
    ring = ed.edit.vertices(area, row)
    assert len(ed.handles.nodes()) == len(ring)
    assert max(abs(a - b) for p, q in zip(ed.handles.nodes(), ring) for a, b in zip(p, q)) < 1e-6
    window.viewport.fly_to_world(*ring[1], 120)
    target = (ring[1][0] + 3.0, ring[1][1] - 2.0)
    ed.handles.drag(1, *target)
    qtbot.waitUntil(lambda: ed.undo_stack.count() == 1, timeout=10_000)
    now = ed.edit.vertices(area, row)
    assert np.hypot(now[1][0] - target[0], now[1][1] - target[1]) < 0.5, (now[1], target)
    assert now[:1] + now[2:] == ring[:1] + ring[2:] and ed.undo_stack.undoText().startswith("reshape")
    assert ed.handles.shown and np.allclose(ed.handles.nodes(), now)  # the handles follow the edit

    # a line: Ctrl+click on its edge adds a vertex, the Delete key over it removes it
    ed.set_layer(line)
    (ax, ay), (bx, by) = ed.edit.vertices(line, 0)[:2]
    assert ed.select_at((ax + bx) / 2, (ay + by) / 2) == 0
    window.viewport.fly_to_world(ax, ay, 120)
    ed.insert_vertex_at((ax + bx) / 2 + 0.2, (ay + by) / 2 + 0.2)
    assert ed.undo_stack.count() == 2 and len(ed.edit.vertices(line, 0)) == 3 and len(ed.handles.nodes()) == 3
    ed.handles.press_delete(1)
    qtbot.waitUntil(lambda: ed.undo_stack.count() == 3, timeout=10_000)
    assert ed.edit.vertices(line, 0)[:2] == [(ax, ay), (bx, by)]
    ed.undo_stack.undo()  # the deleted vertex back
    assert len(ed.edit.vertices(line, 0)) == 3
    # a drag that would leave a line of two equal points is refused; the handles go back
    n = ed.undo_stack.count()
    ed.reshape_to([(ax, ay)] * 3)
    assert ed.undo_stack.count() == n and "Not changed" in ed.status.text()

    ed.save()
    qtbot.waitUntil(lambda: window.session.city is not None, timeout=60_000)
    saved = City.load(demo)
    moved = shapely.get_coordinates(saved.layer(area).geometry.iloc[row].exterior)[1]
    assert np.hypot(*(moved - now[1])) < 1e-6
    assert len(shapely.get_coordinates(saved.layer(line).geometry.iloc[0])) == 3

    while ed.undo_stack.canUndo():
        ed.undo_stack.undo()
    ed.save()
    assert _digest(demo) == original
    window.set_editing_city(False)
    assert not ed.handles.shown
