"""Edit → City in the real window (app/city_editor.py), on a small two-level station package made in
code (a concourse under a platform): draw a gate and a stair by clicking on the map, save, reopen,
run the station model on them, and undo back to the package byte for byte; reshape features by
dragging their vertex handles; unsaved edits ask before they are lost."""
import hashlib

import numpy as np
import pytest
import shapely
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from agents.registry import MODELS, get_model
from tests.agents.station.conftest import X0, Y0, two_level_city
from tests.agents.station.test_levels import WALK_ONLY
from twin.core.city import City
from twin.gis.city_edit import editable_layers


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _layers():
    """The gate-like layer (lines with ids on levels) and the layer of links between levels, by declaration."""
    layers = editable_layers()
    line = next(n for n, l in layers.items() if "LineString" in l.families and l.spec.ids_required and l.spec.levels)
    joins = next(n for n, l in layers.items() if l.families == ("LineString",) and not l.contract
                 and any(c.startswith("from_") for c in l.spec.columns))
    return line, joins


def _mouse_click(window, wx, wy, modifier=Qt.NoModifier):
    """A user's click (Qt mouse press and release on the 3D widget) at map point (wx, wy)."""
    px, py = window.viewport.renderer.world_to_display(wx, wy)
    widget = window.viewport.plotter.interactor
    ratio = widget.devicePixelRatioF()
    pos = QPoint(round(px / ratio), round(widget.height() - py / ratio))  # VTK counts from the bottom
    QTest.mousePress(widget, Qt.LeftButton, modifier, pos)
    QTest.mouseRelease(widget, Qt.LeftButton, modifier, pos)


@pytest.fixture
def station(tmp_path):
    two_level_city().save(tmp_path / "station")
    return tmp_path / "station"


def _edit(window, qtbot, folder):
    assert window.open_city(folder)
    qtbot.waitUntil(lambda: window.session.city is not None and window.session.city.root == folder, timeout=60_000)
    assert window.set_editing_city(True)
    return window.city_editor


def test_draw_a_gate_and_a_stair_save_reload_run_and_undo(window, station, qtbot):
    original = _digest(station)
    ed = _edit(window, qtbot, station)
    assert window.viewport.tool is ed and window.docks["city_editor"].isVisible()
    line, joins = _layers()
    # every declared layer is offered, with its geometry
    assert {ed.layer_combo.itemData(i) for i in range(ed.layer_combo.count())} == set(editable_layers())

    # a gate on the concourse's west edge: one click with the mouse (the real picking path: Qt event,
    # VTK's interactor, the ground under the pixel), one by map point
    ed.set_layer(line)
    assert set(editable_layers()[line].spec.columns) <= set(ed.fields)
    ed.start_draw()
    ed.fields["id"].setCurrentText("DRAWN1")
    ed.fields["kind"].setCurrentText("exit")
    x0, y0 = X0, Y0 + 16.0  # north of the platform above (the click hits the concourse's floor), 2 m from
    # its corner (a click within 1 m of a vertex lands on it)
    window.viewport.camera("top")
    _mouse_click(window, x0, y0)
    assert len(ed.points) == 1 and abs(ed.points[0][0] - x0) < 1 and abs(ed.points[0][1] - y0) < 1
    ed.points[0] = (x0, y0)  # the test's line is exact; the pixel's ground point was within 1 m
    window.viewport.tool.click(x0, y0 + 2.5)
    assert ed.finish(), ed.status.text()
    assert ed.undo_stack.count() == 1 and "DRAWN1" in set(ed.edit.frame(line)["id"])

    # a stair between the levels: drawn from its lower end to its upper end, attributes from the form
    ed.set_layer(joins)
    ed.start_draw()
    template = ed.edit.frame(joins).iloc[0]
    for c in ed.fields:
        if c != "id" and c in ed.edit.frame(joins).columns:
            ed.fields[c].setCurrentText(str(template[c]))
    assert ed.fields["kind"].currentText() == "stairs"
    ed.fields["id"].setCurrentText("DRAWN2")
    ed.fields["width_m"].setCurrentText("1")
    ed.click(X0 + 16, Y0 + 13.2)
    ed.click(X0 + 28, Y0 + 13.2)
    assert ed.finish(), ed.status.text()
    assert ed.undo_stack.count() == 2

    # a wrong attribute is refused with the reason, nothing is added
    ed.set_layer(line)
    ed.start_draw()
    ed.fields["id"].setCurrentText("DRAWN1")
    ed.click(x0 + 20, y0 + 5)
    ed.click(x0 + 24, y0 + 5)
    assert not ed.finish() and "used more than once" in ed.status.text()
    assert ed.undo_stack.count() == 2

    # a click selects the drawn gate: its attributes in the form, changed, deleted, the delete undone
    ed.cancel_draw()
    ed.click(x0 + 0.3, y0 + 2)
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
    ed.fields[flag].setCurrentText("True")
    assert ed.apply_attributes()
    assert ed.delete_selected() and "DRAWN1" not in set(ed.edit.frame(line)["id"])
    ed.undo_stack.undo()
    assert "DRAWN1" in set(ed.edit.frame(line)["id"]) and ed.undo_stack.index() == 4

    # the model that reads both layers
    name = next(m for m in MODELS if line in get_model(m).required_layers
                and any(s.name == joins for s in get_model(m).extra_layers))
    checks = ed.save()
    assert next(c for c in checks if c.model == name).can_run and ed.findings.count() >= len(checks)
    assert "city saved" in window.log_panel.toPlainText()
    named = [i for c in checks for k in ("missing", "defaulted", "estimated") for i in getattr(c, k) if i.names]
    assert bool(named) == ed.markers.shown  # the findings marked on the map
    qtbot.waitUntil(lambda: window.session.city is not None and "DRAWN1" in set(window.session.city.layer(line)["id"]),
                    timeout=60_000)
    saved = City.load(station)
    assert "DRAWN2" in set(saved.extra_layer(editable_layers()[joins].spec)["id"])
    assert bool(saved.layer(line).set_index("id").loc["DRAWN1", flag])

    # the station model runs on the saved package with the drawn gate and stair
    model = get_model(name)(City.load(station), duration_s=2.0, seed=1, demand_scale=0.05, **WALK_ONLY)
    assert "DRAWN1" in {g.id for g in model.station.gates}
    assert "DRAWN2" in {c.id for c in model.station.connectors}
    model.advance_to(1.0)
    assert model.time_s == pytest.approx(1.0)

    # undo every edit and save: the package is back byte for byte
    while ed.undo_stack.canUndo():
        ed.undo_stack.undo()
    assert ed.undo_stack.index() == 0
    ed.save()
    assert _digest(station) == original
    window.set_editing_city(False)
    assert window.viewport.tool is None


def test_drag_insert_and_delete_vertices_save_reload_and_undo(window, station, qtbot):
    """Reshape through the handles on the map: drag a vertex of an area, cut a hole in it, add a
    vertex to a line and remove one with the Delete key; each is one undo step; saved and reread;
    undone to the byte."""
    original = _digest(station)
    ed = _edit(window, qtbot, station)
    area = next(n for n, l in editable_layers().items() if l.families == ("Polygon",) and l.spec.levels
                and not l.spec.columns)
    line, _ = _layers()

    ed.set_layer(area)
    row = ed.select_at(X0 + 2, Y0 + 1)  # the concourse, outside the platform above it
    assert row is not None and ed.handles.shown
    ring = ed.edit.vertices(area, row)
    assert len(ed.handles.nodes()) == len(ring)
    assert np.allclose(ed.handles.nodes(), ring, atol=1e-6, rtol=0)
    corner = int(np.argmin([x + y for x, y in ring]))  # the south-west corner (X0, Y0)
    window.viewport.fly_to_world(*ring[corner], 60)
    target = (ring[corner][0] + 3.0, ring[corner][1] + 2.0)  # inwards: the ground ends at the city's edge
    ed.handles.drag(corner, *target)
    qtbot.waitUntil(lambda: ed.undo_stack.count() == 1, timeout=10_000)
    now = ed.edit.vertices(area, row)
    assert np.hypot(now[corner][0] - target[0], now[corner][1] - target[1]) < 0.3, (now[corner], target)
    assert [p for i, p in enumerate(now) if i != corner] == [p for i, p in enumerate(ring) if i != corner]
    assert ed.undo_stack.undoText().startswith("reshape")
    assert ed.handles.shown and np.allclose(ed.handles.nodes(), now, atol=1e-6, rtol=0)  # they follow the edit
    # validated as you go: while a handle is dragged across an edge the outline turns red and the dock says why
    crossed = list(now)
    crossed[corner], crossed[(corner + 1) % len(now)] = crossed[(corner + 1) % len(now)], crossed[corner]
    assert not ed.moving(crossed) and "Not valid here" in ed.status.text()
    ed.handles.show_valid(ed.moving(crossed))
    assert not ed.handles.valid_shown
    assert ed.moving(now)

    # a hole cut in the concourse (Cut hole, its corners clicked, Finish); one outside it is refused
    ed.hole_btn.click()
    assert ed.mode == "hole"
    for x, y in ((X0 + 3, Y0 + 15), (X0 + 6, Y0 + 15), (X0 + 6, Y0 + 18)):
        ed.click(x, y)
    assert ed.finish() and ed.undo_stack.count() == 2 and ed.mode == "select" and ed.handles.shown
    assert len(ed.edit.frame(area).geometry.iloc[row].interiors) == 1
    ed.hole_btn.click()
    for x, y in ((X0 + 30, Y0 + 30), (X0 + 33, Y0 + 30), (X0 + 33, Y0 + 33)):
        ed.click(x, y)
    assert not ed.finish() and "inside the area" in ed.status.text() and ed.undo_stack.count() == 2
    ed.cancel_draw()

    # the gate: a vertex added in its edge (Ctrl+click), then removed with the Delete key over its handle
    ed.set_layer(line)
    (ax, ay), (bx, by) = ed.edit.vertices(line, 0)[:2]
    assert ed.select_at((ax + bx) / 2, (ay + by) / 2) == 0
    window.viewport.fly_to_world(ax, ay, 60)
    _mouse_click(window, (ax + bx) / 2 + 0.2, (ay + by) / 2, Qt.ControlModifier)
    assert ed.undo_stack.count() == 3, ed.status.text()
    assert len(ed.edit.vertices(line, 0)) == 3 and len(ed.handles.nodes()) == 3
    ed.handles.press_delete(1)
    qtbot.waitUntil(lambda: ed.undo_stack.count() == 4, timeout=10_000)
    assert ed.edit.vertices(line, 0) == [(ax, ay), (bx, by)]
    ed.undo_stack.undo()  # the deleted vertex back
    assert len(ed.edit.vertices(line, 0)) == 3
    # a shape the package reader would refuse is refused; the handles go back
    n = ed.undo_stack.count()
    assert not ed.reshape_to([(ax, ay)] * 3)
    assert ed.undo_stack.count() == n and "Not changed" in ed.status.text()

    ed.save()
    saved = City.load(station)
    moved = shapely.get_coordinates(saved.layer(area).geometry.iloc[row].exterior)
    assert np.hypot(*(moved - np.asarray(now[corner])).T).min() < 1e-6
    assert len(shapely.get_coordinates(saved.layer(line).geometry.iloc[0])) == 3
    assert len(saved.layer(area).geometry.iloc[row].interiors) == 1

    while ed.undo_stack.canUndo():
        ed.undo_stack.undo()
    ed.save()
    assert _digest(station) == original
    window.set_editing_city(False)
    assert not ed.handles.shown


def test_unsaved_edits_ask_save_discard_or_cancel(window, station, tmp_path, qtbot, monkeypatch):
    two_level_city().save(tmp_path / "other")
    original = _digest(station)
    ed = _edit(window, qtbot, station)
    line, _ = _layers()
    ed.set_layer(line)
    ed.start_draw()
    ed.fields["kind"].setCurrentText("exit")
    ed.click(X0, Y0 + 16)
    ed.click(X0, Y0 + 18.5)
    assert ed.finish() and ed.unsaved
    asked, answers = [], []
    monkeypatch.delenv("CITYTWIN_NO_DIALOGS")
    monkeypatch.setattr(QMessageBox, "question", staticmethod(
        lambda parent, title, text, buttons, default: asked.append(text) or answers.pop(0)))

    # Cancel: the editor stays open, the window stays open, the other city is not opened
    answers[:] = [QMessageBox.Cancel] * 3
    assert not window.set_editing_city(False)
    assert window.act_edit_city.isChecked() and window.viewport.tool is ed and ed.unsaved
    assert not window.close() and window.isVisible()
    assert not window.open_city(tmp_path / "other")
    assert window.session.city.root == station and ed.unsaved
    assert len(asked) == 3 and all("unsaved edits" in t for t in asked)
    assert "Closing the city editor" in asked[0] and "Closing the window" in asked[1] and "other" in asked[2]
    assert _digest(station) == original

    # Save, then the other city opens (the editor closes: it edits the city it opened)
    answers[:] = [QMessageBox.Save]
    assert window.open_city(tmp_path / "other")
    assert len(asked) == 4 and window.session.city.root == tmp_path / "other"
    assert len(City.load(station).layer(line)) == len(two_level_city().layer(line)) + 1
    assert ed.edit is None and not window.act_edit_city.isChecked()

    # Discard: the edits are undone, the package stays as saved
    saved = _digest(tmp_path / "other")
    ed = _edit(window, qtbot, tmp_path / "other")
    ed.set_layer(line)
    ed.select_at(X0 + 40, Y0 + 10)
    assert ed.delete_selected() and ed.unsaved
    answers[:] = [QMessageBox.Discard]
    assert window.set_editing_city(False) and len(asked) == 5
    assert ed.edit is None and _digest(tmp_path / "other") == saved
    assert window.set_editing_city(False) and len(asked) == 5  # closed already: nothing to ask
