"""The main window: 3D view in the middle, docked panels around it, menus for files and views.

The window is a view of a ``twin.session.Session`` (``self.session``): what is open, what runs, the
moment shown, the selection and the alerts live there. The window's actions call session methods;
its widgets change only in the handlers of session events (``_on_*`` below, subscribed through
``app.session_qt.SessionBridge``, so on the GUI thread). What stays here is the window's own: its
layout, menus (app/window_menus.py), dialogs, theme, UI scale and command-room mode, and the
launchers of other windows (side by side: app/comparisons.py; branches: app/branch_from_now.py;
video). See docs/app_architecture.md.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QFont
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QPushButton, QSlider, QVBoxLayout, QWidget)

from twin.core.errors import UserError
from twin.core.features import name_table
from twin.session import PAUSED, RUNNING, Session, default_runs_dir

from . import gui_gc, video_export
from .alert_panel import AlertsPanel
from .branch_from_now import Branching
from .city_editor import CityEditor
from .command_room import CameraTour, DashboardWindow, enter_command_room, leave_command_room
from .comparisons import Comparisons
from .live_mode import LiveMode
from .param_drawing import ParamMapTool
from .panels import IndicatorsPanel, LayersPanel, LogPanel, ParamsPanel, PickPanel, RunControls, fmt_clock, time_label
from .session_qt import QtRun, SessionBridge
from .theme import SCALES, apply_theme
from .viewport import Viewport
from .window_menus import build_menus, rebuild_recent

DEMO_CITY = Path(__file__).resolve().parent.parent / "gis_data" / "demo_city"
MAX_RECENT = 8


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, session: Session | None = None):
        super().__init__()
        gui_gc.hold()  # VTK objects must be freed on this thread (app/gui_gc.py); released on close
        self._gc_held = True
        self.settings = settings or QSettings()
        self.session = session or Session(QtRun, Path(self.settings.value("runs_dir", str(default_runs_dir()))))
        self.setWindowTitle("CityTwin")
        self.setAcceptDrops(True)
        # the window's own state: how it shows the session
        self.field_name: str | None = None
        self.command_room = False
        self.split = False
        self._saved_state = None
        self.dark = False
        self.ui_scale = float(self.settings.value("ui/scale", 1.0))
        self.dashboard: DashboardWindow | None = None
        self.video_export = None
        self.extra_shortcuts: list[QAction] = []
        self._latest_frame_due = False
        self._frame_cost_s = 0.0

        self.viewport = Viewport(self)
        self._build_central()
        self._build_docks()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(320)
        self.progress.setFormat("%p%")
        self.statusBar().addPermanentWidget(self.progress)

        self.comparisons = Comparisons(self)
        self.branching = Branching(self)
        self.param_drawing = ParamMapTool(self)
        self.tour = CameraTour(self.hot_spots, self.viewport.fly_to_world,
                               lambda: self.viewport.camera("aoi", self.model_cls), self)
        self.tour.moved.connect(lambda what: self.statusBar().showMessage(f"camera tour: {what}", 6000))
        build_menus(self)
        self._connect_widgets()
        self._subscribe()
        self.live_mode = LiveMode(self)
        self._restore_settings()
        if self.ui_scale != 1.0:
            self.set_font_scale(self.ui_scale)

    # -- construction ----------------------------------------------------------------------------
    def _build_central(self):
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(2)
        cl.addWidget(self.viewport, 1)
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 0, 6, 4)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.time_label = QLabel("no run")
        self.time_label.setMinimumWidth(180)
        self.live_btn = QPushButton("Live")
        self.live_btn.setToolTip("Follow the latest frame")
        bar.addWidget(QLabel("Time"))
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.time_label)
        bar.addWidget(self.live_btn)
        cl.addLayout(bar)
        self.setCentralWidget(central)

    def _build_docks(self):
        self.layers = LayersPanel()
        self.params = ParamsPanel()
        self.controls = RunControls()
        self.indicators = IndicatorsPanel()
        self.pick_panel = PickPanel()
        self.log_panel = LogPanel()
        self.alerts_panel = AlertsPanel()
        pw = QWidget()
        pl = QVBoxLayout(pw)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.params, 1)
        pl.addWidget(self.controls)
        self.docks = {}
        # the right column (indicators, alerts) runs the window's full height: docks added below the
        # 3D view (the log, live mode's assimilation) do not take it from the big numbers
        self.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)
        self.city_editor = CityEditor(self)
        self._dock("layers", "Layers", self.layers, Qt.LeftDockWidgetArea)
        self._dock("params", "Scenario && parameters", pw, Qt.LeftDockWidgetArea)
        self._dock("indicators", "Indicators", self.indicators, Qt.RightDockWidgetArea)
        self._dock("selection", "Selection", self.pick_panel, Qt.RightDockWidgetArea)
        self._dock("alerts", "Alerts", self.alerts_panel, Qt.RightDockWidgetArea)
        self._dock("log", "Run log", self.log_panel, Qt.BottomDockWidgetArea)
        self._dock("city_editor", "City editor", self.city_editor, Qt.LeftDockWidgetArea)
        self.tabifyDockWidget(self.docks["params"], self.docks["city_editor"])
        # closed through Edit → City only, which asks about unsaved edits
        self.docks["city_editor"].setFeatures(self.docks["city_editor"].features() & ~QDockWidget.DockWidgetClosable)
        self.docks["city_editor"].hide()
        # right: the indicators above, the alerts (tabbed with the selection) below
        self.splitDockWidget(self.docks["indicators"], self.docks["alerts"], Qt.Vertical)
        self.tabifyDockWidget(self.docks["alerts"], self.docks["selection"])
        self.docks["alerts"].raise_()
        self.resizeDocks([self.docks["layers"], self.docks["params"]], [260, 520], Qt.Vertical)
        self.resizeDocks([self.docks["layers"], self.docks["indicators"]], [330, 430], Qt.Horizontal)
        self.resizeDocks([self.docks["log"]], [110], Qt.Vertical)
        # the indicators' tiles and keyed-KPI table get most of the right column
        self.resizeDocks([self.docks["indicators"], self.docks["alerts"]], [640, 220], Qt.Vertical)

    def _dock(self, key, title, widget, area):
        d = QDockWidget(title, self)
        d.setObjectName(f"dock_{key}")
        d.setWidget(widget)
        self.addDockWidget(area, d)
        self.docks[key] = d
        return d

    def _connect_widgets(self):
        """User input → session methods (and the view's own settings)."""
        s = self.session
        self.slider.valueChanged.connect(s.seek)
        self.live_btn.clicked.connect(self.go_live)
        self.layers.toggled.connect(self.viewport.set_layer_visible)
        self.layers.colouring_changed.connect(self._set_colouring)
        self.layers.field_changed.connect(self._set_field)
        self.viewport.picked.connect(s.select)
        self.params.variant_changed.connect(s.choose_variant)
        self.params.model_changed.connect(self.on_model_chosen)
        self.controls.run_btn.clicked.connect(self.start_run)
        self.controls.pause_btn.toggled.connect(s.set_paused)
        self.controls.step_btn.clicked.connect(self.step_run)
        self.controls.cancel_btn.clicked.connect(self.cancel_run)
        self.controls.speed.currentIndexChanged.connect(lambda _: s.set_speed(self.controls.speed.currentData()))
        self.controls.step_s.valueChanged.connect(s.set_step)
        self.alerts_panel.fly_to.connect(self.viewport.fly_to_world)

    def _subscribe(self):
        """Session events → widgets, always on the GUI thread."""
        self.bridge = SessionBridge(self.session, self)
        for name in ("city_opened", "scenario_changed", "variant_changed", "timeline_reset", "run_started", "run_status",
                     "progress", "kpi_rows", "frames_changed", "time_changed", "alerts_changed", "run_finished",
                     "output_ready", "selection_changed", "log", "error"):
            self.bridge.subscribe(name, getattr(self, f"_on_{name}"))

    def _restore_settings(self):
        geo = self.settings.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(1600, 950)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        rebuild_recent(self)

    # -- the session's state, read by tests, tools and other windows ---------------------------------
    city = property(lambda self: self.session.city)
    scenario = property(lambda self: self.session.scenario)
    model_cls = property(lambda self: self.session.model_cls)
    alert_monitor = property(lambda self: self.session.alerts)
    last_output = property(lambda self: self.session.last_output)
    load_seconds = property(lambda self: self.session.load_s)
    following_live = property(lambda self: self.session.following_live)

    @property
    def worker(self):
        """The current run's SimWorker, or None."""
        return self.session.run.worker if self.session.run is not None else None

    @property
    def controller(self):
        """The current run's SimController, or None."""
        return self.session.run.controller if self.session.run is not None else None

    # -- session events → widgets ----------------------------------------------------------------------
    def _on_city_opened(self, e):
        city = e.city
        editing = self.city_editor.edit
        if editing is not None and Path(city.root or e.path).resolve() != editing.root.resolve():
            self.set_editing_city(False)  # the editor edits the city it opened, not another one
        self.layers.clear()
        self.viewport.set_city(city)
        self.layers.set_layers(self.viewport.renderer.layer_names())
        self.layers.set_fields([])
        self.field_name = None
        self.poi_combo.clear()
        pois = city.pois
        for i in range(len(pois)):
            g = pois.geometry.iloc[i].centroid
            self.poi_combo.addItem(f"{pois['name'].iloc[i] or pois['id'].iloc[i]} ({pois['kind'].iloc[i]})", (g.x, g.y))
        if e.scenario is None:
            self.params.scenario_label.setText("(none: pick a model to run on this city)")
            names = list(e.models)
            current = self.settings.value("last_model", names[0] if names else "")
            self.params.set_models(names, current if current in names else (names[0] if names else None))
            if names:
                # After the city is on screen: importing a model (Mesa, Numba) takes a moment.
                QTimer.singleShot(0, self._choose_default_model)
        self.setWindowTitle(f"CityTwin — {city.name}")

    def _on_scenario_changed(self, e):
        sc, cls = e.scenario, e.model_cls
        self.viewport.renderer.set_model(cls)
        if sc.path is not None:
            self.params.scenario_label.setText(sc.name + f"  ({sc.path.name})")
        self.params.set_models(e.models, sc.model)
        self.params.model_combo.setEnabled(e.editable)
        self.params.set_variants(e.variants)
        self.params.seed.setValue(sc.seed)
        self.params.duration.setValue(sc.duration_s)
        self.params.set_params(cls.params, e.params)
        self.indicators.set_model(cls)
        self.indicators.set_names(name_table(self.session.city, cls) if self.session.city is not None else {})
        self.alerts_panel.set_rules(sc.alerts)

    def _on_variant_changed(self, e):
        self.params.set_values(e.params)

    def _on_timeline_reset(self, e):
        self.slider.blockSignals(True)
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.slider.blockSignals(False)
        self.time_label.setText("no run")
        self.progress.setValue(0)
        self.indicators.reset()
        self.indicators.set_cursor(None)
        self.alerts_panel.clear_log()

    def _on_run_started(self, e):
        self.viewport.renderer.set_model(self.session.model_cls)

    def _on_run_status(self, e):
        self.controls.set_running(e.status in (RUNNING, PAUSED))
        btn = self.controls.pause_btn
        if btn.isChecked() != (e.status == PAUSED) and e.status in (RUNNING, PAUSED):
            btn.blockSignals(True)
            btn.setChecked(e.status == PAUSED)
            btn.blockSignals(False)

    def _on_progress(self, e):
        self.progress.setValue(int(100 * e.time_s / e.duration_s) if e.duration_s else 0)

    def _on_kpi_rows(self, e):
        self.indicators.add_rows(e.rows)

    def _on_frames_changed(self, e):
        """A new frame of the run. The view draws only the latest: frames that arrive while it is busy
        are skipped (they stay in the recorder; the session's alerts saw each), and after a slow draw
        the next one waits as long as that draw took, so the window keeps time for input."""
        if not self._latest_frame_due:
            self._latest_frame_due = True
            QTimer.singleShot(int(1000 * self._frame_cost_s), self._apply_latest_frame)

    def _apply_latest_frame(self):
        self._latest_frame_due = False
        rec = self.session.frames
        if rec is None or len(rec) == 0:
            return
        t0 = time.perf_counter()
        n = len(rec)
        self.slider.blockSignals(True)
        self.slider.setEnabled(n > 1)
        self.slider.setRange(0, max(0, n - 1))
        if self.session.following_live:
            self.slider.setValue(max(0, n - 1))
        self.slider.blockSignals(False)
        latest = rec[n - 1]
        if latest.fields:
            self.layers.set_fields(list(latest.fields))
        if self.session.following_live and self.session.frame is not None:
            self._show(self.session.frame)
        self.viewport.flush_render()
        self._frame_cost_s = min(time.perf_counter() - t0, 2.0)

    def _on_time_changed(self, e):
        if e.by == "run":
            return  # drawn by _apply_latest_frame, at the pace the view can keep
        self.slider.blockSignals(True)
        self.slider.setValue(e.index)
        self.slider.blockSignals(False)
        self._show(e.frame)
        self.indicators.set_cursor(None if e.live else e.time_s)

    def _show(self, frame):
        first = "agents" not in self.viewport.renderer.actors
        self.viewport.show_frame(frame, self.layers.field_combo.currentText() or None)
        if first:
            self.layers.set_layers(self.viewport.renderer.layer_names())
        self.indicators.clock_start_s = getattr(frame, "clock_start_s", None)
        self.time_label.setText(time_label(frame.time_s, self.indicators.clock_start_s))
        self.indicators.set_values(frame.kpis, frame.time_s)
        self._show_alert_levels()
        if self.dashboard is not None:
            self.dashboard.clock.setText(f"<b>{time_label(frame.time_s, self.indicators.clock_start_s)}</b>")

    def _on_alerts_changed(self, e):
        """Log every change of level at once; the tiles and markers follow the frame drawn (_show)."""
        self.alerts_panel.add_events(e.events)
        for a in e.events:
            if a.rising:
                self.log_panel.log(f"alert at {fmt_clock(a.time_s)}: {a.alert.text()}")

    def _show_alert_levels(self):
        m = self.session.alerts
        self.indicators.set_levels({k: m.kpi_level(k) for k in self.indicators.tiles})
        self.alerts_panel.show_levels(m)
        self.viewport.renderer.set_alert_markers(m.active)

    def _on_run_finished(self, e):
        n = len(self.session.frames) if self.session.frames is not None else 0
        if e.result is not None:
            self.indicators.set_values(e.result.summary["kpis"])
            self.statusBar().showMessage(f"run finished; outputs in {e.out_dir}", 20000)
            self.progress.setValue(100)
        if n:
            self.slider.setEnabled(n > 1)
            self.slider.setRange(0, n - 1)

    def _on_output_ready(self, e):
        self.act_open_output.setEnabled(True)

    def _on_selection_changed(self, e):
        self.pick_panel.show_info(e.info)
        self.docks["selection"].raise_()

    def _on_log(self, e):
        self.log_panel.log(e.text)

    def _on_error(self, e):
        self.error(e.message)

    def error(self, text: str):
        self.log_panel.log(f"error: {text}")
        self.statusBar().showMessage(text, 15000)
        if not os.environ.get("CITYTWIN_NO_DIALOGS"):
            QMessageBox.warning(self, "CityTwin", text)

    # -- files -------------------------------------------------------------------------------------
    def last_folder(self) -> str:
        return str(self.settings.value("last_folder", str(Path.cwd())))

    def _remember(self, path: Path):
        path = Path(path).resolve()
        self.settings.setValue("last_folder", str(path.parent))
        recent = [p for p in self.recent_files() if p != str(path)]
        recent.insert(0, str(path))
        self.settings.setValue("recent", recent[:MAX_RECENT])
        rebuild_recent(self)

    def recent_files(self) -> list[str]:
        r = self.settings.value("recent", []) or []
        return [r] if isinstance(r, str) else list(r)

    def ask_open_city(self):
        d = QFileDialog.getExistingDirectory(self, "Open city folder", self.last_folder())
        if d:
            self.open_city(Path(d))

    def ask_open_scenario(self):
        f, _ = QFileDialog.getOpenFileName(self, "Open scenario", self.last_folder(), "Scenario (*.toml)")
        if f:
            self.open_scenario(Path(f))

    def open_path(self, path: Path) -> bool:
        path = Path(path)
        if path.is_dir() or path.name == "city.toml":
            return self.open_city(path)
        return self.open_scenario(path) if path.suffix.lower() == ".toml" else self.session.open_path(path)

    def open_city(self, path: Path) -> bool:
        if not self._may_open_city(path):
            return False
        ok = self.session.open_city(path)
        if ok:
            self._remember(path)
        return ok

    def open_scenario(self, path: Path) -> bool:
        if self.city_editor.unsaved:
            from twin.scenario.scenario import load_scenario

            try:
                city = load_scenario(path).city_path
            except (UserError, OSError):
                city = None  # the session says what is wrong with it, and nothing is opened
            if city is not None and not self._may_open_city(city):
                return False
        if not self.session.open_scenario(path):
            return False
        self._remember(path)
        self.viewport.camera("aoi", self.model_cls)
        return True

    def _may_open_city(self, path) -> bool:
        """Opening another city than the one being edited: unsaved edits first (Save / Discard / Cancel)."""
        editing = self.city_editor.edit
        path = Path(path)
        root = path.parent if path.name == "city.toml" else path
        if editing is None or root.resolve() == editing.root.resolve():
            return True
        return self.city_editor.may_leave(f"Opening {root.name} closes the city editor.")

    def _choose_default_model(self):
        combo = self.params.model_combo
        for name in [combo.currentText()] + [combo.itemText(i) for i in range(combo.count())]:
            if self.on_model_chosen(name):
                return

    def on_model_chosen(self, name: str) -> bool:
        ok = self.session.choose_model(name)
        if ok:
            self.settings.setValue("last_model", name)
        return ok

    def dragEnterEvent(self, e):
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e):
        for url in e.mimeData().urls():
            if url.isLocalFile():
                self.open_path(Path(url.toLocalFile()))
                break

    # -- Edit → City (app/city_editor.py) ----------------------------------------------------------------
    def set_editing_city(self, on: bool) -> bool:
        """Show the city editor on the open city (its clicks draw on the map), or stop editing."""
        dock = self.docks["city_editor"]
        if on:
            if not self.city_editor.open():
                self.act_edit_city.setChecked(False)
                return False
            dock.show()
            dock.raise_()
        else:
            if not self.city_editor.may_leave("Closing the city editor."):
                self.act_edit_city.blockSignals(True)  # still editing
                self.act_edit_city.setChecked(True)
                self.act_edit_city.blockSignals(False)
                return False
            self.city_editor.close_editor()
            dock.hide()
        if self.act_edit_city.isChecked() != on:
            self.act_edit_city.setChecked(on)
        return True

    # -- running -----------------------------------------------------------------------------------
    def start_run(self, out_dir: Path | None = None):
        """Run the open scenario with the form's variant, parameters, seed and duration; returns the
        run's SimWorker (None when nothing can run)."""
        run = self.session.start_run(self.params.variant_combo.currentText() or None, self.params.values(),
                                     int(self.params.seed.value()), float(self.params.duration.value()),
                                     out_dir if isinstance(out_dir, (str, Path)) else None,
                                     float(self.controls.speed.currentData()), float(self.controls.step_s.value()))
        return run.worker if run is not None else None

    def step_run(self):
        self.session.step()

    def cancel_run(self, wait_s: float = 1.0) -> bool:
        return self.session.cancel_run(wait_s)

    def step_slider(self, direction: int):
        if self.slider.isEnabled():
            self.session.step_time(direction)

    def follow_live(self, folder: Path) -> bool:
        """Live mode on the live run writing ``folder`` (app/live_mode.py draws it)."""
        return self.session.follow_live(folder)

    def start_live(self, feeds: list[str], out_dir: Path | None = None, **options) -> bool:
        """Start ``citytwin live`` on the open scenario with ``feeds`` and follow it."""
        return self.session.start_live(feeds, out_dir, **options)

    def go_live(self):
        if self.session.run is None:
            return
        self.session.go_live()
        self.indicators.set_cursor(None)

    # -- alerts and the camera tour --------------------------------------------------------------------
    def hot_spots(self) -> list[tuple[float, float, str]]:
        """The places of the current alerts, worst first (the camera tour's stops)."""
        return self.session.hot_spots()

    def set_tour(self, on: bool):
        (self.tour.start if on else self.tour.stop)()
        if self.act_tour.isChecked() != on:
            self.act_tour.setChecked(on)

    def next_hot_spot(self):
        return self.tour.next()

    # -- exports -----------------------------------------------------------------------------------
    def ask_screenshot(self):
        sizes = ["window", "1920 × 1080", "2560 × 1440", "3840 × 2160", "7680 × 4320"]
        choice, ok = QInputDialog.getItem(self, "Export screenshot", "Resolution", sizes, 3, False)
        if not ok:
            return
        f, _ = QFileDialog.getSaveFileName(self, "Save screenshot", str(Path(self.last_folder()) / "citytwin.png"),
                                           "PNG (*.png)")
        if not f:
            return
        if choice == "window":
            self.export_screenshot(Path(f))
        else:
            w, h = (int(x) for x in choice.split(" × "))
            self.export_screenshot(Path(f), w, h)

    def export_screenshot(self, path: Path, width: int | None = None, height: int | None = None) -> Path:
        self.viewport.screenshot(path, width, height)
        self.log_panel.log(f"screenshot saved: {path}")
        return path

    def ask_export_run(self):
        if self.session.result is None:
            self.error("No finished run to export yet.")
            return
        d = QFileDialog.getExistingDirectory(self, "Export run outputs to", self.last_folder())
        if d:
            self.export_run(Path(d))

    def export_run(self, out: Path) -> Path:
        return self.session.export_run(out)

    def open_output_folder(self):
        if self.last_output is not None and Path(self.last_output).exists():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.last_output)))

    # -- side by side, comparisons and branches (app/comparisons.py, app/branch_from_now.py) -------------
    def open_comparison(self, folder: Path, intervention: str | None = None, replication: int = 0):
        return self.comparisons.open(folder, intervention, replication)

    def start_compare(self, out_dir: Path | None = None, replications: int | None = None, workers: int | None = None,
                      report: bool = True):
        return self.comparisons.start(out_dir if isinstance(out_dir, (str, Path)) else None, replications, workers,
                                      report)

    def cancel_compare(self, wait_s: float = 5.0) -> bool:
        return self.comparisons.cancel(wait_s)

    def branch(self, variant: str | None, changes: dict | None = None, replications: int = 1, speed: float = 0.0,
               out_dir: Path | None = None) -> dict | None:
        return self.branching.branch(variant, changes, replications, speed, out_dir)

    # -- video (app/video_export.py) ----------------------------------------------------------------
    def export_video(self, out: Path, size=(1920, 1080), fps: float = 30.0, length_s: float = 30.0,
                     difference: bool = False, dark: bool = True, sources=None):
        """Render in a separate process with a progress dialog; cancel leaves no file."""
        return video_export.export_video(self, out, size, fps, length_s, difference, dark, sources)

    # -- view ------------------------------------------------------------------------------------
    def _set_colouring(self, mode):
        self.viewport.renderer.set_building_colouring(mode)
        self.viewport.request_render()

    def _set_field(self, name):
        self.field_name = name
        if self.session.frame is not None:
            self._show(self.session.frame)

    def fly_to_poi(self, index: int):
        xy = self.poi_combo.itemData(index)
        if xy is not None:
            self.viewport.fly_to_world(*xy)

    # -- theme, scale, command room -----------------------------------------------------------------
    def set_font_scale(self, s: float):
        """Type, tiles, charts and 3D labels at ``s`` times their size (the current view only)."""
        f = QFont(self.font())
        f.setPointSizeF(10 * s)
        self.setFont(f)
        self.indicators.set_scale(s)
        self.alerts_panel.set_scale(s)
        self.viewport.renderer.set_font_scale(s)
        self.viewport.renderer._markers_key = None  # marker labels at the new size
        self.viewport.renderer.set_alert_markers(self.session.alerts.active)
        for cw in self.comparisons:
            cw.set_scale(s)
        self.viewport.request_render()

    def set_ui_scale(self, s: float):
        """The UI scale setting (View → UI scale), remembered; the command room may use its own."""
        self.ui_scale = float(s)
        self.settings.setValue("ui/scale", self.ui_scale)
        for sf, a in self.scale_actions.items():
            a.setChecked(abs(sf - s) < 1e-6)
        self.set_font_scale(s)

    def step_ui_scale(self, direction: int):
        i = min(range(len(SCALES)), key=lambda k: abs(SCALES[k] - self.ui_scale))
        self.set_ui_scale(SCALES[max(0, min(len(SCALES) - 1, i + direction))])

    def set_dark(self, on: bool):
        self.dark = bool(on)
        apply_theme(self.dark)
        self.viewport.renderer.set_theme(self.dark)
        self.indicators.set_dark(self.dark)
        self.alerts_panel.set_dark(self.dark)
        for cw in self.comparisons:
            cw.set_dark(self.dark)
        if self.act_dark.isChecked() != on:
            self.act_dark.setChecked(on)
        self.viewport.request_render()

    def set_command_room(self, on: bool, split: bool = False):
        """Full screen on the chosen monitor with the indicators and alerts, dark, at the wall's UI scale;
        ``split``: the 3D view alone on that monitor and the dashboard full screen on the next one
        (app/command_room.py)."""
        if on == self.command_room and (not on or split == self.split):
            return
        if on and self.command_room:
            self.set_command_room(False)
        self.command_room, self.split = on, split and on
        (enter_command_room(self, split) if on else leave_command_room(self))
        for act, want in ((self.act_command_room, on and not split), (self.act_split, on and split)):
            if act.isChecked() != want:
                act.blockSignals(True)
                act.setChecked(want)
                act.blockSignals(False)

    def show_shortcuts(self):
        from .dialogs import ShortcutsDialog

        dlg = ShortcutsDialog(self)
        if os.environ.get("CITYTWIN_NO_DIALOGS"):
            return dlg
        dlg.exec()
        return dlg

    def closeEvent(self, e):
        if not self.city_editor.may_leave("Closing the window."):
            e.ignore()
            return
        self.cancel_run(wait_s=2.0)
        self.session.stop_live("the window closed")
        self.tour.stop()
        self.branching.stop()
        self.comparisons.close_all()
        if self.video_export is not None and not self.video_export.done:
            self.video_export.cancel()
            self.video_export.wait(10)
        if self.command_room:
            self.set_command_room(False)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        self.bridge.unsubscribe_all()
        self.viewport.close_plotter()
        super().closeEvent(e)
        if self._gc_held:
            self._gc_held = False
            gui_gc.release()
