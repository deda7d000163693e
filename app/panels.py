"""Docked panels. Forms and charts are generated from a model's declared Params and KPIs, so a new
model needs no UI code."""
from __future__ import annotations

import math
import tomllib

import numpy as np
import pyqtgraph as pg
import tomli_w
from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame,
                               QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPlainTextEdit,
                               QPushButton, QScrollArea, QSizePolicy, QSpinBox, QTableWidget, QTableWidgetItem,
                               QTabWidget, QVBoxLayout, QWidget)

from twin.core.formats import fmt_clock, time_label  # noqa: F401 - the window and the alert panel import them from here
from twin.core.formats import fmt_keyed, top_entries
from twin.core.formats import fmt_number as fmt_value
from twin.core.params import FilePath, Numbers, TimeSeries, plain_value
from twin.runs.report import kpi_label
from twin.scenario.coupling import headline_groups, member_title

from twin.view.render import layer_title

pg.setConfigOptions(antialias=True, background="w", foreground="k")


class LayersPanel(QWidget):
    toggled = Signal(str, bool)
    colouring_changed = Signal(str)
    field_changed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.boxes: dict[str, QCheckBox] = {}
        lay = QVBoxLayout(self)
        self.list_box = QVBoxLayout()
        lay.addLayout(self.list_box)
        form = QFormLayout()
        self.colouring = QComboBox()
        self.colouring.addItem("by use", "use")
        self.colouring.addItem("by height", "height")
        self.colouring.currentIndexChanged.connect(lambda _: self.colouring_changed.emit(self.colouring.currentData()))
        form.addRow("Buildings", self.colouring)
        self.field_combo = QComboBox()
        self.field_combo.currentTextChanged.connect(lambda t: t and self.field_changed.emit(t))
        form.addRow("Field", self.field_combo)
        lay.addLayout(form)
        lay.addStretch(1)

    def set_layers(self, names) -> None:
        for name in names:
            if name in self.boxes:
                continue
            cb = QCheckBox(layer_title(name))
            cb.setChecked(True)
            cb.toggled.connect(lambda on, n=name: self.toggled.emit(n, on))
            self.boxes[name] = cb
            self.list_box.addWidget(cb)

    def clear(self) -> None:
        for cb in self.boxes.values():
            cb.setParent(None)
            cb.deleteLater()
        self.boxes = {}

    def set_fields(self, names) -> None:
        names = list(names)
        if [self.field_combo.itemText(i) for i in range(self.field_combo.count())] != names:
            self.field_combo.blockSignals(True)
            cur = self.field_combo.currentText()
            self.field_combo.clear()
            self.field_combo.addItems(names)
            if cur in names:
                self.field_combo.setCurrentText(cur)
            self.field_combo.blockSignals(False)


def _decimals(p) -> int:
    vals = [abs(v) for v in (p.default, p.min, p.max) if isinstance(v, (int, float)) and v]
    if not vals:
        return 2
    smallest = min(vals)
    return int(min(4, max(1, -math.floor(math.log10(smallest)) + 2)))


class ParamForm(QWidget):
    """One widget per declared Param (the run's form, and the branch dialog's changes). A parameter
    that names features (``refers_to``) has a "Pick on map" button, one whose value may be drawn
    (``draws``) a "Draw on map" button (``map_buttons``): they ask for map clicks (``map_requested``:
    name, "pick" or "draw"; app/param_drawing.py) that write ids or WKT into the text."""

    map_requested = Signal(str, str)

    def __init__(self, parent=None, map_buttons: bool = False):
        super().__init__(parent)
        self.widgets: dict[str, QWidget] = {}
        self.specs = {}
        self.with_map_buttons = map_buttons
        self.map_buttons: dict[str, dict[str, QPushButton]] = {}
        self.form = QFormLayout(self)

    def set_params(self, params, values: dict) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.widgets = {}
        self.map_buttons = {}
        self.specs = {p.name: p for p in params}
        for p in params:
            w = self._widget_for(p)
            unit = f" [{p.unit}]" if p.unit and p.unit != "-" else ""
            label = QLabel(f"{p.name}{unit}")
            tip = p.doc + (f"\nrange: {p.describe_range()}" if p.describe_range() else "") + f"\ndefault: {p.default}"
            label.setToolTip(tip)
            w.setToolTip(tip)
            self.form.addRow(label, self._with_map_buttons(p, w))
            self.widgets[p.name] = w
        self.set_values(values)

    def _with_map_buttons(self, p, w: QWidget) -> QWidget:
        modes = [m for m, on in (("pick", p.refers_to), ("draw", getattr(p, "draws", ()))) if on]
        if not self.with_map_buttons or not modes or not isinstance(w, QLineEdit):
            return w
        box = QWidget()
        lay = QHBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(w, 1)
        self.map_buttons[p.name] = {}
        for mode in modes:
            b = QPushButton(MAP_BUTTONS[mode])
            b.setToolTip("click features on the map to add their ids" if mode == "pick" else
                         f"click on the map to draw a {' or '.join(p.draws)}; press again to finish")
            b.clicked.connect(lambda _=False, n=p.name, m=mode: self.map_requested.emit(n, m))
            lay.addWidget(b)
            self.map_buttons[p.name][mode] = b
        return box

    def _widget_for(self, p) -> QWidget:
        if p.kind is bool:
            return QCheckBox()
        if p.kind is int:
            w = QSpinBox()
            w.setRange(int(p.min) if p.min is not None else -2**31 + 1, int(p.max) if p.max is not None else 2**31 - 1)
            if p.unit and p.unit != "-":
                w.setSuffix(f" {p.unit}")
            return w
        if p.kind is float:
            w = QDoubleSpinBox()
            w.setDecimals(_decimals(p))
            w.setRange(p.min if p.min is not None else -1e12, p.max if p.max is not None else 1e12)
            w.setSingleStep(10 ** -(w.decimals() - 1) if w.decimals() > 1 else 1)
            if p.unit and p.unit != "-":
                w.setSuffix(f" {p.unit}")
            return w
        if p.kind is str and p.choices:
            w = QComboBox()
            w.addItems([str(c) for c in p.choices])
            return w
        w = QLineEdit()
        w.setPlaceholderText(PLACEHOLDERS.get(p.kind, ""))
        return w

    def set_values(self, values: dict) -> None:
        for name, v in values.items():
            w = self.widgets.get(name)
            if w is None:
                continue
            if isinstance(w, QCheckBox):
                w.setChecked(bool(v))
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                w.setValue(v)
            elif isinstance(w, QComboBox):
                w.setCurrentText(str(v))
            elif isinstance(w, QLineEdit):
                w.setText(_as_text(self.specs[name], v))

    def values(self) -> dict:
        out = {}
        for name, w in self.widgets.items():
            p = self.specs[name]
            if isinstance(w, QCheckBox):
                out[name] = w.isChecked()
            elif isinstance(w, QSpinBox):
                out[name] = int(w.value())
            elif isinstance(w, QDoubleSpinBox):
                out[name] = float(w.value())
            elif isinstance(w, QComboBox):
                out[name] = w.currentText()
            else:
                out[name] = _from_text(p, w.text())
        return out


class ParamsPanel(QWidget):
    """Scenario, intervention, seed and one widget per declared Param."""

    run_clicked = Signal()
    add_intervention_clicked = Signal()
    variant_changed = Signal(str)
    model_changed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        head = QFormLayout()
        self.scenario_label = QLabel("(no scenario: pick a model to run on this city)")
        self.scenario_label.setWordWrap(True)
        head.addRow("Scenario", self.scenario_label)
        self.model_combo = QComboBox()
        self.model_combo.currentTextChanged.connect(lambda t: t and self.model_changed.emit(t))
        head.addRow("Model", self.model_combo)
        self.variant_combo = QComboBox()
        self.variant_combo.currentTextChanged.connect(lambda t: t and self.variant_changed.emit(t))
        head.addRow("Intervention", self.variant_combo)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        head.addRow("Seed", self.seed)
        self.duration = QDoubleSpinBox()
        self.duration.setRange(1, 7 * 86400)
        self.duration.setDecimals(0)
        self.duration.setSuffix(" s")
        head.addRow("Duration", self.duration)
        outer.addLayout(head)
        self.group = QGroupBox("Parameters")
        gl = QVBoxLayout(self.group)
        self.param_form = ParamForm(map_buttons=True)
        self.baseline: dict = {}  # the form's values for the baseline: what an added intervention changes
        gl.addWidget(self.param_form)
        self.add_btn = QPushButton("Add as intervention…")
        self.add_btn.setToolTip("Write the parameters changed from the baseline (drawn places included) into the "
                                "scenario file as a new [[interventions]] table")
        self.add_btn.clicked.connect(lambda: self.add_intervention_clicked.emit())
        gl.addWidget(self.add_btn)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.group)
        scroll.setFrameShape(QFrame.NoFrame)
        outer.addWidget(scroll, 1)

    @property
    def widgets(self) -> dict:
        return self.param_form.widgets

    @property
    def specs(self) -> dict:
        return self.param_form.specs

    def set_models(self, names, current=None) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItems(list(names))
        if current:
            self.model_combo.setCurrentText(current)
        self.model_combo.blockSignals(False)

    def set_variants(self, names, current="baseline") -> None:
        self.variant_combo.blockSignals(True)
        self.variant_combo.clear()
        self.variant_combo.addItems(list(names))
        self.variant_combo.setCurrentText(current)
        self.variant_combo.blockSignals(False)

    def set_params(self, params, values: dict) -> None:
        self.param_form.set_params(params, values)
        self.baseline = self.param_form.values()

    def changed_from_baseline(self) -> dict:
        """The form's values that differ from the baseline's."""
        return {k: v for k, v in self.values().items() if self.baseline.get(k) != v}

    def set_values(self, values: dict) -> None:
        self.param_form.set_values(values)

    def values(self) -> dict:
        return self.param_form.values()


PLACEHOLDERS = {list: "comma-separated names, e.g. N1, N2", Numbers: "comma-separated numbers, e.g. 1.5, 2",
                FilePath: "a file path (relative to the scenario)",
                TimeSeries: "a CSV file, or pairs [[t_s, value], ...]"}


def _as_text(p, v) -> str:
    if p.kind is TimeSeries:
        v = plain_value(v)
        return v if isinstance(v, str) else (tomli_w.dumps({"v": v})[4:].strip() if v else "")
    return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


MAP_BUTTONS = {"pick": "Pick on map", "draw": "Draw on map"}


def split_items(text: str) -> list[str]:
    """Comma-separated items; commas inside parentheses (a WKT's coordinates) do not separate."""
    items, nesting, cur = [], 0, []
    for ch in text:
        nesting += (ch == "(") - (ch == ")")
        if ch == "," and nesting == 0:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    items.append("".join(cur))
    return [s.strip() for s in items if s.strip()]


def _from_text(p, text: str):
    """What a text field holds, as the scenario file would write it (checked later by Param.coerce)."""
    text = text.strip()
    if p.kind is list:
        return split_items(text)
    if p.kind is Numbers:
        out = []
        for s in filter(None, (s.strip() for s in text.split(","))):
            try:
                out.append(float(s))
            except ValueError:
                out.append(s)  # Param.coerce names the bad entry
        return out
    if p.kind is TimeSeries and text.startswith("["):
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text
    if p.kind is TimeSeries and not text:
        return []
    return text


LEVEL_STYLE = {  # (background, border) of a tile per alert level, light and dark theme
    False: {0: ("#ffffff", "#c8d0da"), 1: ("#fff3d6", "#ffb000"), 2: ("#ffe0e3", "#e8112d")},
    True: {0: ("#1f2732", "#3c4858"), 1: ("#4a3600", "#ffb000"), 2: ("#5a0a14", "#e8112d")},
}


class Tile(QFrame):
    """A big number for a KPI (or an alert rule); its frame turns amber or red with the alert level."""

    def __init__(self, kpi, parent=None, prefix: str = ""):
        super().__init__(parent)
        self.kpi = kpi
        self.level = 0
        self.dark = False
        self.setFrameShape(QFrame.StyledPanel)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 6)
        lay.setSpacing(0)
        self.value = QLabel("–")
        self.value.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        self.caption = QLabel(kpi_label(kpi.name.removeprefix(prefix))  # under its model's heading
                              + (f"  [{kpi.unit}]" if kpi.unit and kpi.unit != "-" else ""))
        self.caption.setWordWrap(True)
        self.setToolTip(kpi.doc)
        lay.addWidget(self.value)
        lay.addWidget(self.caption)
        self.set_scale(1.0)
        self._restyle()

    def set_level(self, level: int) -> None:
        if level != self.level:
            self.level = int(level)
            self._restyle()

    def set_dark(self, dark: bool) -> None:
        if dark != self.dark:
            self.dark = bool(dark)
            self._restyle()

    def _restyle(self) -> None:
        bg, edge = LEVEL_STYLE[self.dark][self.level]
        width = 4 if self.level else 1
        self.setStyleSheet(f"Tile {{ background: {bg}; border: {width}px solid {edge}; border-radius: 6px; }}")
        self.caption.setStyleSheet(f"color: {'#aab4c3' if self.dark else '#4a5563'};")
        self.value.setStyleSheet(f"color: {'#f0f3f7' if self.dark else '#111111'};")

    def set_scale(self, s: float) -> None:
        f = QFont()
        f.setPointSizeF(20 * s)
        f.setBold(True)
        self.value.setFont(f)
        c = QFont()
        c.setPointSizeF(9 * s)
        self.caption.setFont(c)
        # The number's full line height (ascent and descent) at this scale, whatever the panel's room:
        # a squeezed layout must never cut the tops off the digits.
        self.value.setMinimumHeight(QFontMetrics(f).height() + 4)
        self.setMinimumHeight(self.value.minimumHeight() + QFontMetrics(c).height() * 2 + 14)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)

    def set_value(self, v, names: dict | None = None) -> None:
        self.value.setText(fmt_keyed(v, names, 2) if isinstance(v, dict) else fmt_value(v))


KEYED_ROWS = 8  # entries of a keyed KPI shown in its table
KEYED_MIN_ROWS = 3  # the fewest it shows when the window is short


class KeyedTable(QTableWidget):
    """A keyed KPI (per attraction, per gate) as a table of its largest entries, by name. It asks for
    the height of the most rows it has shown (at most KEYED_ROWS entries and the "… more" line) at the
    UI scale, so a KPI of two features leaves the room to the charts and the panel does not jump back
    as entries go; it gives way down to KEYED_MIN_ROWS in a cramped window."""

    def __init__(self, kpi, parent=None, label: str = ""):
        super().__init__(0, 2, parent)
        self.kpi = kpi
        unit = f" [{kpi.unit}]" if kpi.unit and kpi.unit != "-" else ""
        self.setHorizontalHeaderLabels([label or kpi_label(kpi.name), "value" + unit])
        self.setToolTip(kpi.doc)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.NoSelection)
        self.setFocusPolicy(Qt.NoFocus)
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        self.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeToContents)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self._most = 0  # the most rows it has shown: it grows to them and does not shrink back
        self.set_scale(1.0)

    def set_scale(self, s: float) -> None:
        f = QFont()
        f.setPointSizeF(9.5 * s)
        self.setFont(f)
        self.horizontalHeader().setFont(f)
        row = QFontMetrics(f).height() + max(4, int(4 * s))
        self.verticalHeader().setMinimumSectionSize(row)
        self.verticalHeader().setDefaultSectionSize(row)
        # the header's own height in this style, with its font (not a guess from the font alone)
        header = max(self.horizontalHeader().sizeHint().height(), QFontMetrics(f).height() + 6)
        self.horizontalHeader().setFixedHeight(header)
        self._sizes = (header, row, 2 * self.frameWidth() + 2)
        self._fit()

    def _fit(self) -> None:
        header, row, frame = self._sizes
        rows = min(max(self._most, 1), KEYED_ROWS + 1)
        self._full = header + row * rows + frame
        self.setMinimumHeight(header + row * min(rows, KEYED_MIN_ROWS) + frame)
        self.setMaximumHeight(self._full)
        self.updateGeometry()

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), self._full)

    def set_value(self, value: dict, names: dict) -> None:
        rows = top_entries(value, KEYED_ROWS)
        more = len(value) - len(rows)
        self.setRowCount(len(rows) + (1 if more > 0 else 0))
        if self.rowCount() > self._most:
            self._most = self.rowCount()
            self._fit()
        for i, (key, v) in enumerate(rows):
            name = QTableWidgetItem(str(names.get(str(key), key)))
            name.setToolTip(str(key))
            num = QTableWidgetItem(fmt_value(v))
            num.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            num.setData(Qt.UserRole, float(v))
            self.setItem(i, 0, name)
            self.setItem(i, 1, num)
        if more > 0:
            self.setItem(len(rows), 0, QTableWidgetItem(f"… {more} more (largest shown)"))
            self.setItem(len(rows), 1, QTableWidgetItem(""))


class KeyedTables(QTabWidget):
    """The keyed KPIs' tables, one tab each (a tab shows once its KPI has entries), under the tiles
    and outside the charts' scroll area, so the largest entries are always in sight. Until the user
    picks a tab, the first KPI (in the model's order) with an entry above zero is shown."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tables: dict[str, KeyedTable] = {}
        self.picked = False
        self.tabBarClicked.connect(self._pick)
        self.setDocumentMode(True)
        self.setVisible(False)

    def _pick(self, index: int) -> None:
        self.picked = index >= 0

    def set_model(self, kpis, labels=None) -> None:
        self.clear()
        for t in self.tables.values():
            t.setParent(None)
        self.tables = {}
        for k, label in zip(kpis, labels or [kpi_label(k.name) for k in kpis]):
            self.tables[k.name] = KeyedTable(k, label=label)
            i = self.addTab(self.tables[k.name], label)
            self.setTabToolTip(i, k.doc)
            self.setTabVisible(i, False)
        self.reset()

    def reset(self) -> None:
        self.picked = False
        for i, t in enumerate(self.tables.values()):
            t.setRowCount(0)
            self.setTabVisible(i, False)
        self.setVisible(False)

    def set_values(self, values: dict[str, dict], names: dict) -> None:
        order = list(self.tables)
        for name, v in values.items():
            self.tables[name].set_value(v, names)
            self.setTabVisible(order.index(name), bool(v))
        shown = [i for i, n in enumerate(order) if self.isTabVisible(i)]
        self.setVisible(bool(shown))
        if not shown:
            return
        if not self.picked or self.currentIndex() not in shown:
            busy = [i for i in shown if any(_positive(self.tables[order[i]].item(r, 1))
                                            for r in range(self.tables[order[i]].rowCount()))]
            self.setCurrentIndex((busy or shown)[0])

    def set_scale(self, s: float) -> None:
        f = self.tabBar().font()
        f.setPointSizeF(9 * s)
        self.tabBar().setFont(f)
        for t in self.tables.values():
            t.set_scale(s)


def _positive(item) -> bool:
    v = item.data(Qt.UserRole) if item is not None else None
    return isinstance(v, float) and v > 0


class TileScroll(QScrollArea):
    """The tiles, whole when the panel has the room and scrolled when it has not (a coupled run's
    dozen tiles must not push the window past a 1080-line screen)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Maximum)

    def setWidget(self, widget) -> None:
        super().setWidget(widget)
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        # the tiles' layout changed (tiles added, their text or scale): the hints above change with it,
        # and the panel's layout must ask again rather than keep the hints of an empty grid
        if obj is self.widget() and event.type() == QEvent.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(obj, event)

    def sizeHint(self):
        inner = self.widget().sizeHint() if self.widget() is not None else super().sizeHint()
        return inner.grownBy(self.contentsMargins())

    def minimumSizeHint(self):
        """Room for the first row of tiles (with a coupled run's heading above it), whole: the big
        numbers are what the dock is for, so the keyed tables and the charts give way first."""
        hint = super().minimumSizeHint()
        inner = self.widget()
        grid = inner.layout() if inner is not None else None
        if not isinstance(grid, QGridLayout) or not grid.count():
            return hint.boundedTo(self.sizeHint())
        heights: dict[int, int] = {}
        first_tile_row = None
        for i in range(grid.count()):
            w = grid.itemAt(i).widget()
            if w is None:
                continue
            row = grid.getItemPosition(i)[0]
            heights[row] = max(heights.get(row, 0), w.sizeHint().height(), w.minimumHeight())
            if isinstance(w, Tile) and (first_tile_row is None or row < first_tile_row):
                first_tile_row = row
        if first_tile_row is None:
            return hint.boundedTo(self.sizeHint())
        rows = [h for r, h in heights.items() if r <= first_tile_row]
        m = grid.contentsMargins()
        need = sum(rows) + grid.verticalSpacing() * (len(rows) - 1) + m.top() + m.bottom() + 2 * self.frameWidth()
        return QSize(hint.width(), min(max(hint.height(), need), self.sizeHint().height()))


SERIES_COLOURS = ("#1f6fd1", "#f28e2b", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


class IndicatorsPanel(QWidget):
    """Big-number tiles for headline KPIs and a live chart per per-step KPI."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tiles: dict[str, Tile] = {}
        self.group_labels: list[QLabel] = []  # a coupled run's model headings over their tiles
        self.tables: dict[str, KeyedTable] = {}
        self.names: dict[str, str] = {}  # {feature id: name} for keyed KPIs and legends
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.plots: dict[str, pg.PlotWidget] = {}
        self.data: dict[str, tuple[list, list]] = {}
        self.cursor_lines: list = []
        self.forecast_items: dict[str, dict] = {}  # per chart in live mode: now-line, fan, median, members
        self.scale = 1.0
        self.clock_start_s: float | None = None
        self.dark = False
        outer = QVBoxLayout(self)
        self.time_label = QLabel("t = –")
        self.time_label.setWordWrap(True)
        outer.addWidget(self.time_label)
        self.tile_grid = QGridLayout()
        tiles = QWidget()
        tiles.setLayout(self.tile_grid)
        self.tile_scroll = TileScroll()
        self.tile_scroll.setWidget(tiles)
        outer.addWidget(self.tile_scroll)
        self.keyed = KeyedTables()
        self.tables = self.keyed.tables
        outer.addWidget(self.keyed)
        self.chart_box = QVBoxLayout()
        charts = QWidget()
        charts.setLayout(self.chart_box)
        self.chart_scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(charts)
        scroll.setFrameShape(QFrame.NoFrame)
        # the charts take what the tiles and the keyed-KPI table leave (they scroll; the table would not)
        scroll.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Ignored)
        outer.addWidget(scroll, 1)

    def set_model(self, model_cls) -> None:
        for t in list(self.tiles.values()) + self.group_labels:
            t.setParent(None)
        self.group_labels = []
        for p in self.plots.values():
            p.setParent(None)
        self.tiles, self.curves, self.plots, self.data, self.cursor_lines = {}, {}, {}, {}, []
        self.forecast_items = {}
        self.kpis = {k.name: k for k in model_cls.kpis}
        cols, row = 2, 0
        for title, prefix, heads in headline_groups(model_cls):  # a coupled run: one heading per model
            if title:
                label = QLabel(title)
                label.setStyleSheet("font-weight: bold; padding-top: 6px;")
                label.setFont(self._group_font())
                self.group_labels.append(label)
                self.tile_grid.addWidget(label, row, 0, 1, cols)
                row += 1
            for i, k in enumerate(heads):
                t = Tile(k, prefix=prefix)
                t.set_scale(self.scale)
                t.set_dark(self.dark)
                self.tiles[k.name] = t
                self.tile_grid.addWidget(t, row + i // cols, i % cols)
            row += (len(heads) + cols - 1) // cols
        self.tile_scroll.widget().adjustSize()
        self.tile_scroll.updateGeometry()
        # keyed KPIs: their largest entries by name, in tabs under the tiles
        keyed = [k for k in model_cls.kpis if k.keyed and k.name not in self.tiles]
        self.keyed.set_model(keyed, [f"{m}: {kpi_label(own)}" if m else kpi_label(own)
                                     for m, own in (member_title(model_cls, k.name) for k in keyed)])
        self.keyed.set_scale(self.scale)
        self.tables = self.keyed.tables
        for k in model_cls.kpis:
            if not k.per_step:
                continue
            pw = pg.PlotWidget()
            style_plot(pw, self.dark)
            pw.setMinimumHeight(int(130 * self.scale))
            model, own = member_title(model_cls, k.name)
            pw.setTitle((f"{model}: " if model else "") + kpi_label(own)
                        + (f" [{k.unit}]" if k.unit and k.unit != "-" else ""),
                        size=f"{int(10 * self.scale)}pt")
            pw.showGrid(x=True, y=True, alpha=0.25)
            pw.setLabel("bottom", "time", units="s")
            pw.setMouseEnabled(x=False, y=False)
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#d62728", width=1, style=Qt.DashLine))
            line.setVisible(False)
            pw.addItem(line)
            self.cursor_lines.append(line)
            self.plots[k.name] = pw
            if k.keyed:  # one line per key (a feature), added as the keys appear
                pw.addLegend(offset=(-5, 5), labelTextSize=f"{int(8 * self.scale)}pt")
            else:
                self.curves[k.name] = pw.plot([], [], pen=pg.mkPen("#1f6fd1", width=2))
                self.data[k.name] = ([], [])
            self.chart_box.addWidget(pw)
        self.time_label.setText("t = –")

    def _group_font(self) -> QFont:
        f = QFont()
        f.setPointSizeF(11 * self.scale)
        f.setBold(True)
        return f

    def set_names(self, names: dict[str, str]) -> None:
        """``{feature id: name}`` (``twin.core.features``): keyed KPIs and legends show names."""
        self.names = dict(names)

    def set_forecast(self, now_s: float | None, fans: dict) -> None:
        """Live mode: a "now" line on every chart and, ahead of it, the latest forecast of its KPI
        (``twin.live.follow.Fan``): the members' lines thin, the p10-p90 band filled, the median dashed.
        ``now_s`` None: none of it (back to a plain run)."""
        for name, pw in self.plots.items():
            items = self.forecast_items.get(name)
            if now_s is None:
                for it in (items or {}).values():
                    for i in (it if isinstance(it, list) else [it]):
                        pw.removeItem(i)
                self.forecast_items.pop(name, None)
                continue
            if items is None:
                pen = pg.mkPen(FORECAST_COLOUR, width=1)
                lo, hi = pw.plot([], [], pen=pen), pw.plot([], [], pen=pen)
                items = self.forecast_items[name] = {
                    "now": pg.InfiniteLine(angle=90, pen=pg.mkPen("#222222" if not self.dark else "#f0f0f0", width=2),
                                           label="now", labelOpts={"position": 0.92, "color": "#222222" if not self.dark
                                                                   else "#f0f0f0"}),
                    "lo": lo, "hi": hi, "fill": pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(FORECAST_FILL)),
                    "median": pw.plot([], [], pen=pg.mkPen(FORECAST_COLOUR, width=2, style=Qt.DashLine)),
                    "members": []}
                pw.addItem(items["now"])
                pw.addItem(items["fill"])
            items["now"].setValue(now_s)
            fan = fans.get(name)
            t = fan.time_s if fan is not None else np.zeros(0)
            for key, ys in (("lo", "p10"), ("hi", "p90"), ("median", "p50")):
                items[key].setData(t, getattr(fan, ys) if fan is not None else np.zeros(0))
            members = list(fan.members.values()) if fan is not None else []
            while len(items["members"]) < len(members):
                items["members"].append(pw.plot([], [], pen=pg.mkPen(FORECAST_MEMBER, width=1)))
            for k, line in enumerate(items["members"]):
                line.setData(t if k < len(members) else np.zeros(0), members[k] if k < len(members) else np.zeros(0),
                             connect="finite")

    def reset(self) -> None:
        self.set_forecast(None, {})
        for name in self.data:
            self.data[name] = ([], [])
            self.curves[name].setData([], [])
        for t in self.tiles.values():
            t.value.setText("–")
        self.keyed.reset()

    def _keyed_series(self, column: str) -> bool:
        """Add the curve of a keyed KPI's column ``kpi.key`` on first sight; False if it is not one."""
        kpi, dot, key = column.partition(".")
        k = getattr(self, "kpis", {}).get(kpi)
        if not dot or k is None or not k.keyed or kpi not in self.plots:
            return False
        n = sum(1 for c in self.curves if c.startswith(kpi + "."))
        colour = SERIES_COLOURS[n % len(SERIES_COLOURS)]
        self.curves[column] = self.plots[kpi].plot([], [], pen=pg.mkPen(colour, width=2),
                                                   name=self.names.get(key, key))
        self.data[column] = ([], [])
        return True

    def add_rows(self, rows: list[dict]) -> None:
        for row in rows:
            t = row.get("time_s")
            for name, v in row.items():
                if (name in self.data or self._keyed_series(name)) and isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                    xs, ys = self.data[name]
                    xs.append(float(t))
                    ys.append(float(v))
        for name, (xs, ys) in self.data.items():
            if xs:
                self.curves[name].setData(np.asarray(xs), np.asarray(ys))
        if rows:
            self.set_values(rows[-1])

    def set_values(self, kpis: dict, time_s: float | None = None) -> None:
        if time_s is not None:
            self.time_label.setText(time_label(time_s, self.clock_start_s))
        keyed: dict[str, dict] = {}  # a keyed KPI as a dict, or as the time series' "name.key" columns
        for name, v in kpis.items():
            base, dot, key = str(name).partition(".")
            if dot and base in self.tables and isinstance(v, (int, float, np.integer, np.floating)):
                keyed.setdefault(base, {})[key] = v
        for name, v in kpis.items():
            if name in self.tiles:
                self.tiles[name].set_value(v, self.names)
            elif name in self.tables and isinstance(v, dict):
                keyed[name] = v
        if time_s is not None:  # a frame (scrubbed to, or the latest): tables its kpis lack as of its time
            for name in self.tables:
                if name not in keyed:
                    keyed[name] = self._keyed_at(name, time_s)
            keyed = {k: v for k, v in keyed.items() if v}
        if keyed:
            self.keyed.set_values(keyed, self.names)

    def _keyed_at(self, kpi: str, time_s: float) -> dict:
        """A keyed KPI's values at ``time_s`` from its series (the latest row at or before it)."""
        out = {}
        for column, (xs, ys) in self.data.items():
            base, dot, key = column.partition(".")
            if dot and base == kpi and xs:
                i = int(np.searchsorted(np.asarray(xs), time_s + 1e-9)) - 1
                if i >= 0:
                    out[key] = ys[i]
        return out

    def set_levels(self, levels: dict[str, int]) -> None:
        """Alert levels per KPI (0 ok, 1 amber, 2 red): the tiles' colours."""
        for name, t in self.tiles.items():
            t.set_level(levels.get(name, 0))

    def set_dark(self, dark: bool) -> None:
        self.dark = bool(dark)
        for t in self.tiles.values():
            t.set_dark(dark)
        for pw in self.plots.values():
            style_plot(pw, dark)

    def set_cursor(self, time_s: float | None) -> None:
        for line in self.cursor_lines:
            line.setVisible(time_s is not None)
            if time_s is not None:
                line.setValue(time_s)

    def set_scale(self, s: float) -> None:
        self.scale = s
        for t in self.tiles.values():
            t.set_scale(s)
        for label in self.group_labels:
            label.setFont(self._group_font())
        f = self.time_label.font()
        f.setPointSizeF(11 * s)
        f.setBold(True)
        self.time_label.setFont(f)
        for name, pw in self.plots.items():
            pw.setMinimumHeight(int(130 * s))
        self.keyed.set_scale(s)


FORECAST_COLOUR = "#e6550d"  # the forecast ahead of now: orange beside the run's blue
FORECAST_FILL = (230, 85, 13, 60)
FORECAST_MEMBER = (230, 85, 13, 90)


def style_plot(pw, dark: bool) -> None:
    """A chart's background and ink for the theme."""
    ink = "#d8dee8" if dark else "k"
    pw.setBackground("#141a21" if dark else "w")
    for name in ("left", "bottom"):
        ax = pw.getAxis(name)
        ax.setPen(ink)
        ax.setTextPen(ink)
    pw.getPlotItem().titleLabel.setAttr("color", ink)


class PickPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.title = QLabel("Click a building, point of interest, feature or field cell.")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["attribute", "value"])
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        self.table.verticalHeader().setVisible(False)
        lay.addWidget(self.table)
        self.info: dict | None = None

    def show_info(self, info: dict | None) -> None:
        self.info = info
        if not info:
            self.title.setText("Nothing there.")
            self.table.setRowCount(0)
            return
        self.title.setText(f"<b>{info.get('layer', '')}</b>")
        items = [(k, v) for k, v in info.items() if k != "layer"]
        self.table.setRowCount(len(items))
        for r, (k, v) in enumerate(items):
            self.table.setItem(r, 0, QTableWidgetItem(str(k)))
            self.table.setItem(r, 1, QTableWidgetItem(fmt_value(v) if not isinstance(v, str) else v))


class LogPanel(QPlainTextEdit):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(5000)

    def log(self, text: str) -> None:
        import time as _t

        self.appendPlainText(f"[{_t.strftime('%H:%M:%S')}] {text}")


class RunControls(QWidget):
    """Run / pause / step / cancel, speed and progress (lives under the parameters)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QGridLayout(self)
        self.run_btn = QPushButton("▶ Run")
        self.pause_btn = QPushButton("⏸ Pause")
        self.pause_btn.setCheckable(True)
        self.step_btn = QPushButton("⏭ Step")
        self.cancel_btn = QPushButton("■ Cancel")
        for i, b in enumerate((self.run_btn, self.pause_btn, self.step_btn, self.cancel_btn)):
            lay.addWidget(b, 0, i)
        self.speed = QComboBox()
        for label, v in (("as fast as possible", 0.0), ("1× real time", 1.0), ("5×", 5.0), ("10×", 10.0),
                         ("30×", 30.0), ("60×", 60.0), ("300×", 300.0)):
            self.speed.addItem(label, v)
        self.speed.setToolTip("Simulated seconds per wall-clock second")
        self.step_s = QDoubleSpinBox()
        self.step_s.setRange(0.05, 3600.0)
        self.step_s.setDecimals(2)
        self.step_s.setValue(1.0)
        self.step_s.setSuffix(" s")
        self.step_s.setToolTip("Simulated seconds one Step advances (moved up to the model's own time step)")
        row = QHBoxLayout()
        row.addWidget(QLabel("Speed"))
        row.addWidget(self.speed, 1)
        row.addWidget(QLabel("Step"))
        row.addWidget(self.step_s)
        lay.addLayout(row, 1, 0, 1, 4)
        self.set_running(False)

    def set_running(self, running: bool) -> None:
        self.run_btn.setEnabled(not running)
        self.pause_btn.setEnabled(running)
        self.step_btn.setEnabled(running)
        self.cancel_btn.setEnabled(running)
        if not running:
            self.pause_btn.setChecked(False)
