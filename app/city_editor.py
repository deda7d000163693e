"""Edit → City: draw and edit the features of the layers the models declare, on the 3D map
(docs/city_editor.md). The edits themselves are twin.gis.city_edit's (Qt-free, checked as the package
reader checks); here they become QUndoCommands, the map's clicks become points (app/map_tools.py), and
a layer's declared columns become a form. Save writes the package atomically, reopens it, and shows
every model's city check in the list and on the map."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import shapely
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (QApplication, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QMessageBox, QPushButton, QVBoxLayout, QWidget)

from twin.core.errors import UserError
from twin.gis.city_edit import SNAP_M, CityEdit

from .map_tools import FeatureOverlay, FindingMarkers, MapSketch, MapTool, VertexHandles

FAMILY_WORDS = {"Point": "point", "LineString": "line", "Polygon": "area"}
FINDING_COLOURS = {"missing": "#c0392b", "defaulted": "#7a6a00", "estimated": "#b86e00"}
MAX_CHOICES = 12  # a column with at most this many values already is offered as a list


class EditCommand(QUndoCommand):
    """One ``twin.gis.city_edit.Edit`` on the undo stack."""

    def __init__(self, editor: "CityEditor", edit):
        super().__init__(edit.text)
        self.editor, self.edit = editor, edit

    def redo(self):
        self.editor.edit.apply(self.edit)
        self.editor.changed(self.edit.layer)

    def undo(self):
        self.editor.edit.revert(self.edit)
        self.editor.changed(self.edit.layer)


class CityEditor(QWidget, MapTool):
    """The editor dock: layer, geometry, draw / select, the attribute form, undo, save, the findings."""

    saved = Signal(object)  # the checks after a save

    def __init__(self, window):
        QWidget.__init__(self)
        self.window, self.viewport = window, window.viewport
        self.edit: CityEdit | None = None
        self.undo_stack = QUndoStack(self)
        self.mode = "select"  # or "draw", or "hole" (cut in the selected area)
        self.points: list[tuple[float, float]] = []
        self.selected: int | None = None
        self.checks: list = []
        self.sketch = MapSketch(self.viewport)
        self.overlay = FeatureOverlay(self.viewport)
        self.markers = FindingMarkers(self.viewport)
        self.handles = VertexHandles(self.viewport, self.reshape_to, self.moving)
        self._build()

    # -- widgets ----------------------------------------------------------------------------------------
    def _build(self):
        lay = QVBoxLayout(self)
        head = QFormLayout()
        self.layer_combo = QComboBox()
        self.layer_combo.currentIndexChanged.connect(lambda _: self.set_layer(self.layer_combo.currentData()))
        head.addRow("Layer", self.layer_combo)
        self.family_combo = QComboBox()
        head.addRow("Draw as", self.family_combo)
        self.doc = QLabel()
        self.doc.setWordWrap(True)
        head.addRow(self.doc)
        lay.addLayout(head)
        row = QHBoxLayout()
        self.draw_btn = QPushButton("Draw")
        self.draw_btn.setCheckable(True)
        self.draw_btn.setToolTip(f"Click on the map to place points (snapped to vertices within {SNAP_M:g} m); "
                                 "Finish adds the feature with the form's attributes")
        self.draw_btn.toggled.connect(lambda on: self.start_draw() if on else self.cancel_draw())
        self.hole_btn = QPushButton("Cut hole")
        self.hole_btn.setCheckable(True)
        self.hole_btn.setToolTip("With an area selected: click the corners of a hole inside it; Finish cuts it")
        self.hole_btn.toggled.connect(lambda on: self.start_hole() if on else self.cancel_draw())
        self.finish_btn = QPushButton("Finish")
        self.finish_btn.clicked.connect(self.finish)
        self.delete_btn = QPushButton("Delete")
        self.delete_btn.clicked.connect(self.delete_selected)
        self.apply_btn = QPushButton("Apply attributes")
        self.apply_btn.clicked.connect(self.apply_attributes)
        for b in (self.draw_btn, self.hole_btn, self.finish_btn, self.delete_btn, self.apply_btn):
            row.addWidget(b)
        lay.addLayout(row)
        self.form_box = QGroupBox("Attributes")
        self.form = QFormLayout(self.form_box)
        self.fields: dict[str, QComboBox] = {}
        lay.addWidget(self.form_box)
        row2 = QHBoxLayout()
        self.undo_btn = QPushButton("Undo")
        self.undo_btn.clicked.connect(self.undo_stack.undo)
        self.redo_btn = QPushButton("Redo")
        self.redo_btn.clicked.connect(self.undo_stack.redo)
        self.undo_stack.canUndoChanged.connect(self.undo_btn.setEnabled)
        self.undo_stack.canRedoChanged.connect(self.redo_btn.setEnabled)
        self.undo_btn.setEnabled(False)
        self.redo_btn.setEnabled(False)
        self.save_btn = QPushButton("Save and check")
        self.save_btn.clicked.connect(self.save)
        for b in (self.undo_btn, self.redo_btn, self.save_btn):
            row2.addWidget(b)
        lay.addLayout(row2)
        self.status = QLabel("Edit → City opens the city on screen for editing.")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        lay.addWidget(QLabel("City check after the last save:"))
        self.findings = QListWidget()
        self.findings.setWordWrap(True)
        lay.addWidget(self.findings, 1)

    # -- opening ----------------------------------------------------------------------------------------
    def open(self, root=None) -> bool:
        """Edit the package at ``root`` (default: the open city's); the map's clicks come here."""
        city = self.window.session.city
        root = root or (city.root if city is not None else None)
        if root is None:
            self.window.error("Open a city first (File → Open city folder).")
            return False
        try:
            self.edit = CityEdit.open(root)
        except UserError as e:
            self.window.error(str(e))
            return False
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        for name, layer in self.edit.layers.items():
            kinds = "/".join(FAMILY_WORDS[f] for f in layer.families)
            self.layer_combo.addItem(f"{name} ({kinds}s, {len(self.edit.frame(name))})", name)
        self.layer_combo.blockSignals(False)
        self.viewport.set_tool(self)
        self.set_layer(self.layer_combo.itemData(0))
        self.status.setText(f"Editing {self.edit.root}: pick a layer, then Draw, or click a feature to select it.")
        return True

    @property
    def unsaved(self) -> bool:
        """Edits since the last save (or since opening)."""
        return self.edit is not None and not self.undo_stack.isClean()

    def may_leave(self, what: str) -> bool:
        """Before the edits would be lost (``what`` says why): True to go on. Unsaved edits ask Save /
        Discard / Cancel: Save writes them first (refused: stay), Discard undoes them, Cancel stays."""
        if not self.unsaved:
            return True
        answer = self.ask_unsaved(what)
        if answer == "save":
            self.save()
            return not self.unsaved
        if answer == "discard":
            if self.undo_stack.cleanIndex() >= 0:
                self.undo_stack.setIndex(self.undo_stack.cleanIndex())
            else:  # the saved state is no longer on the stack
                self.undo_stack.clear()
            return True
        return False

    def ask_unsaved(self, what: str) -> str:
        """"save", "discard" or "cancel" from a message box (without dialogs, as in scripts: discard)."""
        n = self.undo_stack.index() - max(self.undo_stack.cleanIndex(), 0)
        if os.environ.get("CITYTWIN_NO_DIALOGS"):
            return "discard"
        box = QMessageBox
        answer = box.question(
            self.window, "Unsaved city edits",
            f"{what}\nThe city {self.edit.root.name} has unsaved edits ({abs(n)} step(s) in the undo list). "
            "Save them to the package?", box.Save | box.Discard | box.Cancel, box.Save)
        return {box.Save: "save", box.Discard: "discard"}.get(answer, "cancel")

    def close_editor(self) -> None:
        """Stop editing (unsaved edits are dropped with the undo stack: ``may_leave`` asks first)."""
        self.cancel_draw()
        self.edit = None
        self.undo_stack.clear()
        self.overlay.clear()
        self.markers.clear()
        self.handles.clear()
        if self.viewport.tool is self:
            self.viewport.set_tool(None)

    @property
    def layer(self) -> str | None:
        return self.layer_combo.currentData()

    def set_layer(self, name: str | None) -> None:
        if self.edit is None or name is None:
            return
        if self.layer_combo.currentData() != name:
            self.layer_combo.setCurrentIndex(self.layer_combo.findData(name))  # comes back here
            return
        layer = self.edit.editable(name)
        self.family_combo.clear()
        for f in layer.families:
            self.family_combo.addItem(FAMILY_WORDS[f], f)
        self.doc.setText(layer.spec.doc)
        self.points, self.selected = [], None
        self.sketch.clear()
        self.handles.clear()
        self._build_form(name)
        self.overlay.show(self.edit.frame(name))

    def _build_form(self, name: str) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = {}
        frame = self.edit.frame(name)
        layer = self.edit.editable(name)
        defaults = dict(layer.spec.defaults)
        for col in layer.columns(frame):
            w = QComboBox()
            w.setEditable(True)
            values = frame[col].dropna().astype(str).unique() if col in frame.columns else []
            if 0 < len(values) <= MAX_CHOICES and col != "id":
                w.addItems(sorted(values))
            w.setCurrentText("" if col == "id" else str(defaults.get(col, "")))
            required = col in layer.spec.columns
            label = QLabel(f"{col}{' *' if required else ''}")
            label.setToolTip("required by the layer's declaration" if required else
                             f"optional (default {defaults[col]!r})" if col in defaults else "optional")
            self.form.addRow(label, w)
            self.fields[col] = w
        self.fields.get("id", QComboBox()).setPlaceholderText("(new id)")

    def form_values(self) -> dict:
        return {c: w.currentText() for c, w in self.fields.items()}

    def set_form(self, values: dict) -> None:
        for c, v in values.items():
            if c in self.fields:
                self.fields[c].setCurrentText("" if v is None or (isinstance(v, float) and v != v) else str(v))

    # -- the map's clicks (MapTool) ------------------------------------------------------------------
    def click(self, wx: float, wy: float) -> None:
        if self.edit is None or self.layer is None:
            return
        if self.mode in ("draw", "hole"):
            x, y = self.edit.snap(wx, wy)
            self.points.append((x, y))
            family = self.family_combo.currentData() if self.mode == "draw" else "Polygon"
            if family == "Point":
                self.finish()
                return
            self.sketch.show(self.points, closed=family == "Polygon", level=self._level())
            self.status.setText(f"{len(self.points)} point(s); Finish adds the {FAMILY_WORDS[family]}.")
        elif self.selected is not None and QApplication.keyboardModifiers() & Qt.ControlModifier:
            self.insert_vertex_at(wx, wy)
        else:
            self.select_at(wx, wy)

    def deactivate(self) -> None:
        self.cancel_draw()
        self.handles.clear()  # another tool has the map: no dragging this feature under it

    def _level(self) -> int:
        try:
            return int(float(self.form_values().get("level") or 0))
        except ValueError:
            return 0

    def start_draw(self) -> None:
        self.mode, self.points, self.selected = "draw", [], None
        if not self.draw_btn.isChecked():
            self.draw_btn.setChecked(True)
        self.fields.get("id", QComboBox()).setCurrentText("")
        self.handles.clear()
        self.overlay.show(self.edit.frame(self.layer) if self.edit else None)
        self.status.setText("Drawing: click on the map.")

    def start_hole(self) -> bool:
        """Cut a hole in the selected area: its corners are clicked next, Finish cuts it."""
        frame = self.edit.frame(self.layer) if self.edit is not None and self.layer else None
        if frame is None or self.selected is None or not frame.geometry.iloc[self.selected].geom_type.endswith("Polygon"):
            self.status.setText("Select an area first (click it), then Cut hole.")
            self.hole_btn.setChecked(False)
            return False
        self.mode, self.points = "hole", []
        if not self.hole_btn.isChecked():
            self.hole_btn.setChecked(True)
        self.handles.clear()
        self.status.setText("Cutting a hole: click its corners inside the selected area, then Finish.")
        return True

    def cancel_draw(self) -> None:
        self.mode, self.points = "select", []
        for b in (self.draw_btn, self.hole_btn):
            if b.isChecked():
                b.setChecked(False)
        self.sketch.clear()

    def finish(self) -> bool:
        """Add the drawn feature with the form's attributes, or cut the drawn hole in the selected area
        (refused with the reason when it is wrong)."""
        if self.edit is None or not self.points:
            return False
        if self.mode == "hole":
            try:
                edit = self.edit.add_hole(self.layer, self.selected, self.points)
            except UserError as e:
                self.status.setText(f"Not cut: {e}")
                return False
            self.cancel_draw()  # before the edit shows: the selected area's handles come back
            self.undo_stack.push(EditCommand(self, edit))
            self.status.setText(f"{edit.text}; Save writes it to the package.")
            return True
        family = self.family_combo.currentData()
        try:
            geometry = self.edit.geometry_from(self.layer, self.points, family)
            edit = self.edit.add(self.layer, geometry, self.form_values())
        except UserError as e:
            self.status.setText(f"Not added: {e}")
            return False
        self.undo_stack.push(EditCommand(self, edit))
        self.cancel_draw()
        self.status.setText(f"{edit.text}; Save writes it to the package.")
        return True

    def select_at(self, wx: float, wy: float) -> int | None:
        view = self.window.viewport.renderer
        radius = max(2.0, 0.004 * (view.scene.bounds_local[2] - view.scene.bounds_local[0])) if view.scene else 3.0
        self.selected = self.edit.feature_at(self.layer, wx, wy, radius)
        frame = self.edit.frame(self.layer)
        if self.selected is not None:
            row = frame.iloc[self.selected]
            self.set_form({c: row[c] for c in self.fields if c in frame.columns})
            self.status.setText(f"Selected feature {self.selected} of {self.layer}: drag its vertices (Ctrl+click "
                                "on an edge adds one, the Delete key over one removes it), Delete it, or change "
                                "the form and Apply attributes.")
        else:
            self.status.setText(f"No feature of {self.layer} within {radius:.0f} m.")
        self.overlay.show(frame, self.selected)
        self._show_handles()
        return self.selected

    # -- reshaping the selected feature (its vertices as handles: app/map_tools.py VertexHandles) ---------
    def _show_handles(self) -> None:
        if self.edit is None or self.selected is None or self.mode != "select":
            self.handles.clear()
            return
        try:
            points = self.edit.vertices(self.layer, self.selected)
        except UserError as e:
            self.handles.clear()
            self.status.setText(str(e))
            return
        frame = self.edit.frame(self.layer)
        g = frame.geometry.iloc[self.selected]
        level = frame["level"].iloc[self.selected] if "level" in frame.columns else 0
        self.handles.show(points, closed=g.geom_type.endswith("Polygon"), level=0 if pd.isna(level) else level)

    def moving(self, points) -> bool:
        """While a handle is dragged: is the shape valid as it stands? (The dock says why not; the full
        check runs when the drag ends.)"""
        if self.edit is None or self.selected is None:
            return True
        family = self.edit.frame(self.layer).geometry.iloc[self.selected].geom_type.replace("Multi", "")
        try:
            g = self.edit.geometry_from(self.layer, points, family)
        except UserError as e:
            self.status.setText(f"Not valid here: {e}")
            return False
        if not g.is_valid:
            self.status.setText(f"Not valid here: {shapely.is_valid_reason(g)}; the edges must not cross.")
            return False
        self.status.setText("Moving a vertex: release to apply it.")
        return True

    def reshape_to(self, points) -> bool:
        """The handles moved: the selected feature with these vertices, as one checked edit (a single
        moved vertex snapped as a drawn point is). Refused: the handles go back, the dock says why."""
        if self.edit is None or self.selected is None:
            return False
        old = self.edit.vertices(self.layer, self.selected)
        moved = [i for i, (p, o) in enumerate(zip(points, old)) if np.hypot(p[0] - o[0], p[1] - o[1]) > 1e-6]
        if len(points) == len(old) and not moved:
            return False
        try:
            if len(points) == len(old) and len(moved) == 1:
                edit = self.edit.move_vertex(self.layer, self.selected, moved[0], *points[moved[0]])
            else:
                edit = self.edit.reshape(self.layer, self.selected, points)
        except UserError as e:
            self.status.setText(f"Not changed: {e}")
            self._show_handles()
            return False
        self.undo_stack.push(EditCommand(self, edit))
        self.status.setText(f"{edit.text}; Save writes it to the package.")
        return True

    def insert_vertex_at(self, wx: float, wy: float) -> bool:
        """A vertex added to the selected feature's nearest edge at the map point (Ctrl+click)."""
        if self.edit is None or self.selected is None:
            return False
        try:
            edit = self.edit.insert_vertex(self.layer, self.selected, wx, wy)
        except UserError as e:
            self.status.setText(f"Not changed: {e}")
            return False
        self.undo_stack.push(EditCommand(self, edit))
        return True

    def delete_selected(self) -> bool:
        if self.edit is None or self.selected is None:
            return False
        edit = self.edit.delete(self.layer, self.selected)
        self.selected = None  # before the edit shows: its handles go
        self.undo_stack.push(EditCommand(self, edit))
        return True

    def apply_attributes(self) -> bool:
        if self.edit is None or self.selected is None:
            return False
        frame = self.edit.frame(self.layer)
        row = frame.iloc[self.selected]
        changed = {c: v for c, v in self.form_values().items()
                   if _text(row[c] if c in frame.columns else None) != v.strip()}
        if not changed:
            return False
        try:
            edit = self.edit.set_attributes(self.layer, self.selected, changed)
        except UserError as e:
            self.status.setText(f"Not changed: {e}")
            return False
        self.undo_stack.push(EditCommand(self, edit))
        return True

    def changed(self, layer: str) -> None:
        """After an edit, its undo or its redo: the overlay and the layer's count."""
        if layer != self.layer:
            self.set_layer(layer)
        frame = self.edit.frame(layer)
        if self.selected is not None and self.selected >= len(frame):
            self.selected = None
        i = self.layer_combo.findData(layer)
        text = self.layer_combo.itemText(i)
        self.layer_combo.setItemText(i, text[:text.rfind(",") + 2] + f"{len(frame)})")
        self.overlay.show(frame, self.selected)
        self._show_handles()

    # -- saving --------------------------------------------------------------------------------------
    def save(self) -> list:
        """Write the package, reopen it in the window, run every model's city check and show it."""
        if self.edit is None:
            return []
        try:
            self.edit.save()
            checks = self.edit.check()
        except (UserError, OSError) as e:
            self.window.error(f"The city was not saved: {e}")
            return []
        self.undo_stack.setClean()
        self._reopen()
        self.show_checks(checks)
        self.window.session.log(f"city saved: {self.edit.gpkg}; city check: " + "; ".join(
            f"{c.model} {'can run' if c.can_run else 'CANNOT RUN'} ({len(c.missing)} missing)" for c in checks))
        self.saved.emit(checks)
        return checks

    def _reopen(self) -> None:
        """The saved package back in the window (its scenario, or the city and the model chosen)."""
        s = self.window.session
        sc, model = s.scenario, s.model_name
        layer = self.layer
        if sc is not None and sc.path is not None:
            s.open_scenario(sc.path)
        else:
            s.open_city(self.edit.root)
            if model:
                s.choose_model(model)
        self.viewport.set_tool(self)
        self.set_layer(layer)

    def show_checks(self, checks) -> None:
        self.checks = list(checks)
        self.findings.clear()
        places = []
        for check in checks:
            head = QListWidgetItem(f"{check.model}: {'can run' if check.can_run else 'CANNOT RUN'}")
            if not check.can_run:
                head.setForeground(QBrush(QColor(FINDING_COLOURS["missing"])))
            self.findings.addItem(head)
            for kind in ("missing", "defaulted", "estimated"):
                for item in getattr(check, kind):
                    li = QListWidgetItem(f"  {kind}: {item.text()}")
                    li.setForeground(QBrush(QColor(FINDING_COLOURS[kind])))
                    self.findings.addItem(li)
                    places += self._places(item, kind)
        self.markers.show(places[:60])
        n = sum(len(c.missing) for c in checks)
        self.status.setText(f"Saved {self.edit.gpkg}. City check: {n} missing item(s); "
                            f"{'every model can run' if all(c.can_run for c in checks) else 'a model cannot run'}.")

    def _places(self, item, kind: str) -> list[tuple[float, float, str]]:
        """Where the features a finding names are (by id or name, in any editable layer)."""
        out = []
        wanted = {n.rsplit(" (", 1)[-1].rstrip(")") for n in item.names} | set(item.names)
        if not wanted:
            return out
        for name in self.edit.layers:
            frame = self.edit.frame(name)
            if not len(frame):
                continue
            hit = np.zeros(len(frame), bool)
            for col in ("id", "name"):
                if col in frame.columns:
                    hit |= frame[col].astype(str).isin(wanted).to_numpy()
            for i in np.flatnonzero(hit)[:10]:
                c = frame.geometry.iloc[i].representative_point()
                out.append((c.x, c.y, f"{kind}: {item.what}"))
        return out


def _text(v) -> str:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return ""
    return str(v)
