"""Interventions drawn on the map: the "Pick on map" and "Draw on map" buttons of the scenario form
and of the Branch dialog (app/panels.py ParamForm) hand the map's clicks to a ``ParamMapTool``, which writes what was picked
(the ids of a layer's features, as ``Param.refers_to`` declares) or drawn (WKT in the city CRS, or
x, y pairs, as ``Param.draws`` declares) into the parameter's text, as a user would type it.
"Add as intervention" then writes it into the scenario file (twin.scenario.intervention_file)."""
from __future__ import annotations

import os

import numpy as np
import shapely
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QInputDialog

from twin.core.errors import UserError
from twin.core.features import layer_frame, split_ref
from twin.core.params import Numbers
from twin.scenario.intervention_file import add_intervention

from .map_tools import MapSketch, MapTool
from .panels import MAP_BUTTONS, split_items

PICK_RADIUS_M = 8.0  # a click this close to a feature picks it (inside an area: always)
FINISH = {"pick": "Done picking", "draw": "Finish drawing"}
SHAPES = {"Point": "points", "LineString": "a line", "Polygon": "an area"}


class ParamMapTool(QObject, MapTool):
    """Map clicks for one parameter of a parameter form (the scenario form's by default; the Branch
    dialog has its own): pick features or draw a shape on the window's map."""

    def __init__(self, window, form=None):
        QObject.__init__(self, form or window)
        self.window = window
        self.form = form or window.params.param_form
        self.name: str | None = None
        self.mode = ""
        self.points: list[tuple[float, float]] = []
        self.sketch = MapSketch(window.viewport, name="param_sketch", colour="#9467bd")
        self.form.map_requested.connect(self.toggle)
        if form is None:  # the scenario form's drawings may go into the scenario file
            window.params.add_intervention_clicked.connect(self.ask_add_intervention)

    def release(self) -> None:
        """Give the map's clicks back if this tool has them (its form closes)."""
        if self.window.viewport.tool is self:
            self.window.viewport.set_tool(None)

    @property
    def param(self):
        return self.form.specs.get(self.name) if self.name else None

    # -- starting and ending ---------------------------------------------------------------------------
    def toggle(self, name: str, mode: str) -> None:
        """A map button: start, or (pressed again) finish."""
        if self.name == name and self.mode == mode:
            self.finish()
        else:
            self.start(name, mode)

    def start(self, name: str, mode: str) -> None:
        if self.window.session.city is None or name not in self.form.specs:
            return
        self.window.viewport.set_tool(None)  # ends another tool (the city editor's, another parameter's)
        self.name, self.mode, self.points = name, mode, []
        self.form.map_buttons[name][mode].setText(FINISH[mode])
        self.window.viewport.set_tool(self)
        p = self.param
        what = (f"features of {split_ref(p.refers_to)[0]}" if mode == "pick"
                else " or ".join(SHAPES[d] for d in p.draws) + (" (each click adds one)" if p.draws[0] == "Point" else ""))
        self.window.statusBar().showMessage(f"{name}: click on the map to add {what}; press "
                                            f"“{FINISH[mode]}” when done.")

    def finish(self) -> None:
        """Write the drawn shape (if any) and give the clicks back."""
        if self.mode == "draw" and self.points:
            family = self._family()
            try:
                g = (shapely.LineString(self.points) if family == "LineString" else
                     shapely.Polygon(self.points) if family == "Polygon" else None)
            except (ValueError, shapely.errors.GEOSException):
                g = None
            if g is None or g.is_empty or not g.is_valid:
                self.window.error(f"{self.name}: a {family} needs at least {2 if family == 'LineString' else 3} "
                                  "points that do not cross; nothing was written.")
            else:
                self._append(shapely.to_wkt(g, rounding_precision=2))
        self.window.viewport.set_tool(None)

    def deactivate(self) -> None:
        if self.name in self.form.map_buttons and self.mode in self.form.map_buttons[self.name]:
            self.form.map_buttons[self.name][self.mode].setText(MAP_BUTTONS[self.mode])
        self.sketch.clear()
        self.name, self.mode, self.points = None, "", []
        self.window.statusBar().clearMessage()

    def _family(self) -> str:
        draws = self.param.draws
        return "LineString" if len(self.points) == 2 and "LineString" in draws else draws[0]

    # -- clicks ----------------------------------------------------------------------------------------
    def click(self, wx: float, wy: float) -> None:
        p = self.param
        if p is None:
            return
        if self.mode == "pick":
            fid = self.feature_at(wx, wy)
            if fid is None:
                self.window.statusBar().showMessage(f"{self.name}: no feature of {split_ref(p.refers_to)[0]} within "
                                                    f"{PICK_RADIUS_M:g} m of the click.", 6000)
            else:
                self._append(fid)
            return
        if p.draws[0] == "Point":
            self._append(f"{wx:.2f}, {wy:.2f}" if p.kind is Numbers else f"POINT ({wx:.2f} {wy:.2f})")
            return
        self.points.append((float(wx), float(wy)))
        self.sketch.show(self.points, closed="Polygon" in p.draws and len(self.points) > 2)

    def feature_at(self, wx: float, wy: float) -> str | None:
        """The id of the declared layer's feature (of the declared kinds) nearest the click."""
        layer, kinds = split_ref(self.param.refers_to)
        gdf = layer_frame(self.window.session.city, layer, self.window.session.model_cls)
        if gdf is None or not len(gdf) or "id" not in gdf.columns:
            return None
        if kinds and "kind" in gdf.columns:
            gdf = gdf[gdf["kind"].astype(str).isin(kinds)]
        if not len(gdf):
            return None
        d = gdf.geometry.distance(shapely.Point(wx, wy)).to_numpy()
        i = int(np.argmin(d))
        return str(gdf["id"].iloc[i]) if d[i] <= PICK_RADIUS_M else None

    def _append(self, item: str) -> None:
        """Add ``item`` to the parameter's text (a single text parameter: replace it)."""
        w = self.form.widgets[self.name]
        p = self.param
        if p.kind is str:
            w.setText(item)
            return
        items = split_items(w.text())
        if p.kind is list and item in items:
            return
        w.setText(", ".join([*items, item]))

    # -- into the scenario file --------------------------------------------------------------------------
    def ask_add_intervention(self) -> str | None:
        sc = self.window.session.scenario
        if sc is None or sc.path is None:
            self.window.error("Open a scenario file first: an intervention is written into it "
                              "(File → Open scenario).")
            return None
        n = len(sc.variants())
        name = f"drawn {n}"
        if not os.environ.get("CITYTWIN_NO_DIALOGS"):
            name, ok = QInputDialog.getText(self.window, "Add as intervention", "Name of the intervention:",
                                            text=name)
            if not ok:
                return None
        return self.add_intervention(name)

    def add_intervention(self, name: str) -> str | None:
        """Write the form's changes from the baseline into the scenario file as intervention ``name``,
        reopen the scenario and show that intervention."""
        s = self.window.session
        sc = s.scenario
        try:
            add_intervention(sc.path, name, self.window.params.changed_from_baseline())
        except UserError as e:
            self.window.error(str(e))
            return None
        if not s.open_scenario(sc.path):
            return None
        self.window.params.variant_combo.setCurrentText(name)
        s.log(f"intervention {name!r} added to {sc.path}")
        return name
