"""Side by side: two or more variants in synchronised 3D views, one time slider, a difference layer
and the KPI table with deltas (and confidence intervals when a compare or branch folder has
replications).

Each variant is a ``SimWorker`` (a live branch, or a finished run re-run from its folder: see
``twin.runs.replay``). The views share one VTK camera object, so moving any view moves all, and the
slider picks one simulated time for every view (the live position follows the slowest variant,
so the views always show the same moment). A branch's window also follows the main window's session
(``follow``): its time slider there moves these views (docs/app_architecture.md).
"""
from __future__ import annotations

import math
import time

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QKeySequence
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDockWidget, QHBoxLayout, QHeaderView, QLabel, QMainWindow,
                               QPushButton, QSlider, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from twin.view.alerts import AlertMonitor, Places
from twin.runs.replay import replay_mismatch
from twin.core.formats import kpi_label
from twin.scenario.scenario import BASELINE

from .panels import fmt_clock, fmt_value
from twin.view.render import difference_field
from .viewport import Viewport

TICKS_PER_S = 10  # slider resolution: 0.1 simulated seconds
REFRESH_MS = 100
DELTA_COLOURS = {"better": "#2e9e4f", "worse": "#d6423a"}


class VariantPane(QWidget):
    """One variant: its name over its 3D view."""

    def __init__(self, label: str, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(2)
        self.title = QLabel(label)
        self.title.setAlignment(Qt.AlignCenter)
        f = QFont()
        f.setPointSizeF(13)
        f.setBold(True)
        self.title.setFont(f)
        self.viewport = Viewport(self)
        lay.addWidget(self.title)
        lay.addWidget(self.viewport, 1)


class Variant:
    """A variant shown in the window: its worker, the worker holding its past (a live branch's
    past is its parent run's), its source (for video export) and its alert monitor."""

    def __init__(self, label, worker, pane, source=None, past=None, monitor=None):
        self.label, self.worker, self.pane, self.source, self.past = label, worker, pane, source, past
        self.monitor = monitor
        self.frame = None

    def recorders(self):
        return [r for r in (self.worker.recorder, self.past.recorder if self.past is not None else None) if r is not None]

    def first_time(self) -> float:
        ts = [r.times()[0] for r in self.recorders() if len(r)]
        return min(ts) if ts else math.inf

    def last_time(self) -> float:
        own = self.worker.recorder
        return float(own.times()[-1]) if len(own) else -math.inf

    def frame_at(self, t: float):
        own = self.worker.recorder
        if len(own) and (t >= own.times()[0] - 1e-9 or self.past is None):
            return own[own.index_at(t)]
        if self.past is not None and len(self.past.recorder):
            return self.past.recorder[self.past.recorder.index_at(t)]
        return None


class ComparisonWindow(QMainWindow):
    closed = Signal()

    def __init__(self, city, model_cls, title: str = "Side by side", rules=(), parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"CityTwin — {title}")
        self.city, self.model_cls = city, model_cls
        self.rules = tuple(rules)
        self.places = Places(city)
        self.variants: list[Variant] = []
        self.table_stats = None  # comparison.csv of a compare/branch folder
        self.following_live = True
        self.show_difference = False
        self.dark = False
        self.scene = None
        self.follower = self.bridge = None  # following the main window's session (follow())
        self._camera = None
        self._camera_observer = None

        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        self.splitter = QSplitter(Qt.Horizontal)
        cl.addWidget(self.splitter, 1)
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 0, 6, 4)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(self._on_slider)
        self.time_label = QLabel("t = –")
        self.time_label.setMinimumWidth(200)
        self.live_btn = QPushButton("Live")
        self.live_btn.clicked.connect(self.go_live)
        self.diff_box = QCheckBox("Difference layer (variant − baseline)")
        self.diff_box.toggled.connect(self.set_difference)
        self.field_combo = QComboBox()
        self.field_combo.currentTextChanged.connect(lambda _: self.refresh(force=True))
        bar.addWidget(QLabel("Time"))
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.time_label)
        bar.addWidget(self.live_btn)
        bar.addWidget(QLabel("Field"))
        bar.addWidget(self.field_combo)
        bar.addWidget(self.diff_box)
        cl.addLayout(bar)
        self.setCentralWidget(central)

        self.kpi_table = QTableWidget(0, 0)
        self.kpi_table.verticalHeader().setVisible(False)
        self.kpi_table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        side = QWidget()
        sl = QVBoxLayout(side)
        sl.addWidget(self.kpi_table, 1)
        sl.addWidget(self.note)
        self.session_note = QLabel("")  # whether these views follow the main window's run
        self.session_note.setWordWrap(True)
        sl.addWidget(self.session_note)
        dock = QDockWidget("KPIs: values now, deltas vs baseline", self)
        dock.setObjectName("dock_compare_kpis")
        dock.setWidget(side)
        self.addDockWidget(Qt.BottomDockWidgetArea, dock)
        self.kpi_dock = dock
        self.resizeDocks([dock], [260], Qt.Vertical)

        for keys, slot in ((("D",), lambda: self.diff_box.toggle()), (("L", "End"), self.go_live),
                           (("Ctrl+Right",), lambda: self.step_slider(+1)), (("Ctrl+Left",), lambda: self.step_slider(-1)),
                           (("Home",), lambda: self.slider.setValue(self.slider.minimum())),
                           (("1",), lambda: self.camera("top")), (("2",), lambda: self.camera("oblique")),
                           (("4",), lambda: self.camera("aoi")), (("Ctrl+W",), self.close)):
            from PySide6.QtGui import QAction

            act = QAction(self)
            act.setShortcuts([QKeySequence(k) for k in keys])
            act.triggered.connect(slot)
            self.addAction(act)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        self.resize(1700, 950)

    # -- variants ------------------------------------------------------------------------------
    def add_variant(self, label: str, worker, source=None, past=None) -> Variant:
        """Show a variant driven by ``worker`` (a SimWorker: started by the caller, or by ``start``)."""
        from twin.view.scene import build_scene

        pane = VariantPane(label)
        self.splitter.addWidget(pane)
        if self.scene is None:
            self.scene = build_scene(self.city)
        vp = pane.viewport
        vp.renderer.set_city(self.city, self.scene)
        vp.renderer.set_model(self.model_cls)
        vp.renderer.set_theme(self.dark)
        if self._camera is None:
            vp.renderer.view_area_of_interest(self.model_cls)
            self._camera = vp.plotter.renderer.camera
            self._camera_observer = self._camera.AddObserver("ModifiedEvent", self._camera_moved)
        else:
            vp.plotter.renderer.camera = self._camera  # one camera object for every view
        v = Variant(label, worker, pane, source, past, AlertMonitor(self.rules, self.places))
        self.variants.append(v)
        self._build_table()
        return v

    def _camera_moved(self, *_):
        for v in self.variants:
            v.pane.viewport.request_render()

    def cameras(self):
        return [v.pane.viewport.plotter.camera for v in self.variants]

    def camera(self, preset: str) -> None:
        if self.variants:
            self.variants[0].pane.viewport.camera(preset, self.model_cls)

    def set_comparison(self, table) -> None:
        """comparison.csv of the folder these runs come from: means, CIs and deltas at the end."""
        self.table_stats = table
        self._build_table()

    # -- time ------------------------------------------------------------------------------------
    def time_range(self) -> tuple[float, float]:
        firsts = [v.first_time() for v in self.variants]
        lasts = [v.last_time() for v in self.variants]
        if not self.variants or not all(math.isfinite(x) for x in firsts + lasts):
            return (0.0, 0.0)
        return min(firsts), min(lasts)  # live: the slowest variant's latest frame, so all show one moment

    def current_time(self) -> float:
        return self.slider.value() / TICKS_PER_S

    def step_slider(self, direction: int) -> None:
        step = max(1, int(round(self._frame_step() * TICKS_PER_S)))
        self.following_live = False
        self.slider.setValue(self.slider.value() + direction * step)

    def _frame_step(self) -> float:
        for v in self.variants:
            t = v.worker.recorder.times()
            if len(t) > 1:
                return float(np.median(np.diff(t)))
        return 1.0

    def go_live(self) -> None:
        self.following_live = True
        self.refresh(force=True)

    def _on_slider(self, value: int) -> None:
        lo, hi = self.time_range()
        self.following_live = value >= int(round(hi * TICKS_PER_S))
        self.refresh(force=True, from_slider=True)

    def set_time(self, t: float) -> None:
        """Show every variant at simulated time ``t`` (the slider's position)."""
        self.following_live = False
        self.slider.setValue(int(round(t * TICKS_PER_S)))

    # -- following the main window ----------------------------------------------------------------
    def follow(self, session) -> None:
        """Follow ``session`` (the main window's) whose run is the first variant, as in a branch: a move
        in time there moves these views; when that run is cancelled, fails or is replaced, say so and
        stop following (the views keep what they have)."""
        from twin.session import RunFollower

        from .session_qt import SessionBridge

        self.bridge = SessionBridge(session, self)
        self.follower = RunFollower(session, self._session_time, self._session_detached, self.bridge.subscribe)
        self.session_note.setText("Follows the main window's time slider.")

    def _session_time(self, t: float | None) -> None:
        if t is None:
            self.go_live()
        else:
            self.set_time(t)

    def _session_detached(self, reason: str) -> None:
        self.bridge.unsubscribe_all()
        first = self.variants[0] if self.variants else None
        kept = ""
        if first is not None and math.isfinite(first.last_time()):
            kept = f"; “{first.label}” keeps its frames up to t = {fmt_clock(first.last_time())}"
        self.session_note.setText(f"<b>No longer follows the main window:</b> {reason} there{kept}.")

    # -- drawing ---------------------------------------------------------------------------------
    def set_difference(self, on: bool) -> None:
        self.show_difference = bool(on)
        if self.diff_box.isChecked() != on:
            self.diff_box.setChecked(on)
        self.refresh(force=True)

    def _tick(self) -> None:
        """The live refresh; after a slow draw the timer waits as long as it took (the window keeps
        time for input however heavy the views are)."""
        t0 = time.perf_counter()
        self.refresh()
        for v in self.variants:
            v.pane.viewport.flush_render()
        took = time.perf_counter() - t0
        self.timer.setInterval(max(REFRESH_MS, int(min(took, 2.0) * 1000)))

    def refresh(self, force: bool = False, from_slider: bool = False) -> None:
        if not self.variants:
            return
        lo, hi = self.time_range()
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
            return
        self.slider.blockSignals(True)
        self.slider.setRange(int(round(lo * TICKS_PER_S)), int(round(hi * TICKS_PER_S)))
        if self.following_live:
            self.slider.setValue(self.slider.maximum())
        self.slider.blockSignals(False)
        t = self.current_time()
        frames = [v.frame_at(t) for v in self.variants]
        if not force and all(f is v.frame for f, v in zip(frames, self.variants)):
            self._check_replays()
            return
        base = frames[0]
        names = list(base.fields) if base is not None and base.fields else []
        if [self.field_combo.itemText(i) for i in range(self.field_combo.count())] != names:
            self.field_combo.blockSignals(True)
            self.field_combo.clear()
            self.field_combo.addItems(names)
            self.field_combo.blockSignals(False)
        fname = self.field_combo.currentText() or None
        for k, (v, f) in enumerate(zip(self.variants, frames)):
            if f is None:
                continue
            v.frame = f
            diff = None
            if self.show_difference and k and fname and base is not None and fname in f.fields and fname in base.fields:
                diff = difference_field(f.fields[fname], base.fields[fname], self.model_cls.field_style(fname))
            v.pane.viewport.show_frame(f, fname, *(diff or (None, None)))
            v.monitor.update(f)
            v.pane.viewport.renderer.set_alert_markers(v.monitor.active)
        self.time_label.setText(f"t = {fmt_clock(t)}" + ("  (live)" if self.following_live else ""))
        self._fill_table(frames)
        self._check_replays()

    def _check_replays(self) -> None:
        bad = []
        for v in self.variants:
            res = v.worker.result
            if v.source is not None and v.source.summary and res is not None:
                wrong = replay_mismatch(v.source, res.summary["kpis"])
                if wrong:
                    bad.append(f"{v.label}: {', '.join(wrong)}")
        if bad:
            self.note.setText("<b>The replay differs from the saved run</b> (another version or changed inputs?): "
                              + "; ".join(bad))

    # -- the KPI table -------------------------------------------------------------------------------
    def _kpis(self) -> list:
        ks = [k for k in self.model_cls.kpis if not k.keyed]
        return sorted(ks, key=lambda k: not k.headline)

    def _build_table(self) -> None:
        labels = [v.label for v in self.variants]
        cols = ["KPI"] + [f"{lab}\nnow" for lab in labels] + [f"Δ {lab}\nnow" for lab in labels[1:]]
        if self.table_stats is not None:
            cols += [f"{lab}\nat the end, mean (95% CI)" for lab in labels]
            cols += [f"Δ {lab}\nat the end (95% CI)" for lab in labels[1:]]
        kpis = self._kpis()
        self.kpi_table.setColumnCount(len(cols))
        self.kpi_table.setRowCount(len(kpis))
        self.kpi_table.setHorizontalHeaderLabels(cols)
        self.kpi_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        for r, k in enumerate(kpis):
            item = QTableWidgetItem(kpi_label(k.name) + (f" [{k.unit}]" if k.unit and k.unit != "-" else ""))
            item.setToolTip(k.doc)
            if k.headline:
                f = QFont()
                f.setBold(True)
                item.setFont(f)
            self.kpi_table.setItem(r, 0, item)
        if self.table_stats is not None:
            self._fill_stats()
        n = len(self.variants)
        rep = ""
        if self.table_stats is not None and len(self.table_stats):
            rep = f" End-of-run columns: {int(self.table_stats['n'].max())} replication(s) per variant."
        self.note.setText(f"{n} variant(s). “now”: the value at the slider's time; Δ: variant minus the first "
                          f"({labels[0] if labels else BASELINE}).{rep}")

    def _set(self, r: int, c: int, text: str, colour: str | None = None) -> None:
        item = QTableWidgetItem(text)
        item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
        if colour:
            item.setForeground(QColor(colour))
        self.kpi_table.setItem(r, c, item)

    def _fill_table(self, frames) -> None:
        kpis = self._kpis()
        n = len(self.variants)
        base = frames[0].kpis if frames and frames[0] is not None else {}
        for r, k in enumerate(kpis):
            for i, f in enumerate(frames):
                v = f.kpis.get(k.name) if f is not None else None
                self._set(r, 1 + i, fmt_value(v) if v is not None else "–")
                if i and v is not None and isinstance(base.get(k.name), (int, float)):
                    d = float(v) - float(base[k.name])
                    self._set(r, n + i, ("+" if d > 0 else "") + fmt_value(d), DELTA_COLOURS.get(_verdict(d, k.better)))

    def _fill_stats(self) -> None:
        t = self.table_stats
        kpis = self._kpis()
        n = len(self.variants)
        first = 1 + n + (n - 1)
        for r, k in enumerate(kpis):
            for i, v in enumerate(self.variants):
                row = t[(t["variant"] == _variant_name(v)) & (t["kpi"] == k.name)]
                if not len(row):
                    continue
                row = row.iloc[0]
                self._set(r, first + i, f"{fmt_value(row['mean'])} {_ci(row['ci_low'], row['ci_high'])}")
                if i:
                    d = float(row["delta_vs_baseline"])
                    self._set(r, first + n + i - 1, f"{'+' if d > 0 else ''}{fmt_value(d)} "
                              f"{_ci(row['delta_ci_low'], row['delta_ci_high'])}",
                              DELTA_COLOURS.get(_verdict_ci(row, k.better)))

    def kpi_cell(self, kpi: str, column_title: str) -> str:
        """The text of the table's cell for a KPI in a column (tests)."""
        cols = [self.kpi_table.horizontalHeaderItem(c).text() for c in range(self.kpi_table.columnCount())]
        names = [k.name for k in self._kpis()]
        item = self.kpi_table.item(names.index(kpi), cols.index(column_title))
        return item.text() if item is not None else ""

    # -- theme, scale ----------------------------------------------------------------------------
    def set_dark(self, dark: bool) -> None:
        self.dark = dark
        for v in self.variants:
            v.pane.viewport.renderer.set_theme(dark)
            v.pane.viewport.request_render()

    def set_scale(self, s: float) -> None:
        f = QFont(self.font())
        f.setPointSizeF(10 * s)
        self.setFont(f)
        self.kpi_table.verticalHeader().setDefaultSectionSize(int(24 * s))
        for v in self.variants:
            f = v.pane.title.font()
            f.setPointSizeF(13 * s)
            v.pane.title.setFont(f)
            v.pane.viewport.renderer.set_font_scale(s)
            v.pane.viewport.renderer._markers_key = None  # alert labels at the new size
            v.frame = None
            v.pane.viewport.request_render()

    def stop_workers(self) -> None:
        for v in self.variants:
            v.worker.cancel()

    def closeEvent(self, e):
        self.timer.stop()
        if self.bridge is not None:
            self.bridge.unsubscribe_all()
        if self._camera is not None and self._camera_observer is not None:
            self._camera.RemoveObserver(self._camera_observer)
        for v in self.variants:
            v.pane.viewport.close_plotter()
        self.closed.emit()
        super().closeEvent(e)


def _variant_name(v: Variant) -> str:
    if v.source is not None and v.source.summary:
        return v.source.summary.get("variant", v.label)
    return v.label


def _ci(lo, hi) -> str:
    if not (isinstance(lo, float) and math.isfinite(lo) and math.isfinite(hi)):
        return "(n/a)"
    return f"({fmt_value(lo)} to {fmt_value(hi)})"


def _verdict(d: float, better) -> str | None:
    if not d or better not in ("lower", "higher"):
        return None
    return "better" if (d < 0) == (better == "lower") else "worse"


def _verdict_ci(row, better) -> str | None:
    lo, hi = row["delta_ci_low"], row["delta_ci_high"]
    if not (math.isfinite(lo) and math.isfinite(hi)) or (lo <= 0 <= hi):
        return None
    return _verdict(float(row["delta_vs_baseline"]), better)
