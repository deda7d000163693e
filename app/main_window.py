"""The main window: 3D view in the middle, docked panels around it, menus for files and views."""
from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QSettings, Qt, QTimer, QUrl, Slot
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QFont, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QComboBox, QDockWidget, QFileDialog, QHBoxLayout, QInputDialog, QLabel,
                               QMainWindow, QMessageBox, QProgressBar, QProgressDialog, QPushButton, QSlider,
                               QToolBar, QVBoxLayout, QWidget)

from twin.alerts import AlertMonitor, Places
from twin.core.errors import UserError

from . import gui_gc
from .alert_panel import AlertsPanel
from .command_room import CameraTour, DashboardWindow
from .exploration_view import ask_open_exploration
from .panels import (IndicatorsPanel, LayersPanel, LogPanel, ParamsPanel, PickPanel, RunControls, fmt_clock,
                     time_label)
from .sim_worker import SimController, SimWorker
from .theme import SCALES, apply_theme, auto_scale
from .viewport import Viewport

DEMO_CITY = Path(__file__).resolve().parent.parent / "gis_data" / "demo_city"
MAX_RECENT = 8


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


class BranchRelay(QObject):
    """Receives a branch's signals in the GUI thread (a lambda connected to a worker's signal would run
    in the worker's thread and touch widgets there)."""

    def __init__(self, window, rec: dict):
        super().__init__(window)
        self.window, self.rec = window, rec

    @Slot(bytes, float, float)
    def state(self, data, t, took):
        self.rec["source_worker"].state_ready.disconnect(self.state)
        self.window._on_branch_state(self.rec, data, t, took)

    @Slot(object)
    def started(self, _cls):
        self.window._branch_started(self.rec, self.rec["worker"])

    @Slot(str)
    def failed(self, message):
        self.window.error(f"the branch failed: {message}")

    @Slot(object)
    def replications_done(self, result):
        self.window._branch_replications_done(self.rec, result)

    @Slot(str)
    def replications_failed(self, message):
        self.window.error(f"branch replications failed: {message}")


def default_runs_dir() -> Path:
    return Path(os.environ.get("CITYTWIN_RUNS_DIR", Path.home() / "CityTwin" / "runs"))


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        gui_gc.hold()  # VTK objects must be freed on this thread (app/gui_gc.py); released on close
        self._gc_held = True
        self.settings = settings or QSettings()
        self.setWindowTitle("CityTwin")
        self.setAcceptDrops(True)
        self.city = None
        self.scenario = None
        self.model_cls = None
        self.worker: SimWorker | None = None
        self.controller = SimController(self)
        self.last_output: Path | None = None
        self.following_live = True
        self.field_name: str | None = None
        self.command_room = False
        self.split = False
        self._saved_state = None
        self.load_seconds = None
        self.dark = False
        self.ui_scale = float(self.settings.value("ui/scale", 1.0))
        self.alert_monitor = AlertMonitor(())
        self.dashboard: DashboardWindow | None = None
        self.comparisons: list = []  # open side-by-side windows
        self.branches: list = []  # live branches: {"time_s", "worker", "controller", "window", ...}
        self.video_export = None
        self.extra_shortcuts: list[QAction] = []

        self.viewport = Viewport(self)
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
        self.slider.valueChanged.connect(self.on_slider)
        self.time_label = QLabel("no run")
        self.time_label.setMinimumWidth(180)
        self.live_btn = QPushButton("Live")
        self.live_btn.setToolTip("Follow the latest frame")
        self.live_btn.clicked.connect(self.go_live)
        bar.addWidget(QLabel("Time"))
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.time_label)
        bar.addWidget(self.live_btn)
        cl.addLayout(bar)
        self.setCentralWidget(central)

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
        self._dock("layers", "Layers", self.layers, Qt.LeftDockWidgetArea)
        self._dock("params", "Scenario && parameters", pw, Qt.LeftDockWidgetArea)
        self._dock("indicators", "Indicators", self.indicators, Qt.RightDockWidgetArea)
        self._dock("selection", "Selection", self.pick_panel, Qt.RightDockWidgetArea)
        self._dock("alerts", "Alerts", self.alerts_panel, Qt.RightDockWidgetArea)
        self._dock("log", "Run log", self.log_panel, Qt.BottomDockWidgetArea)
        # right: the indicators above, the alerts (tabbed with the selection) below
        self.splitDockWidget(self.docks["indicators"], self.docks["alerts"], Qt.Vertical)
        self.tabifyDockWidget(self.docks["alerts"], self.docks["selection"])
        self.docks["alerts"].raise_()
        self.resizeDocks([self.docks["layers"], self.docks["params"]], [260, 520], Qt.Vertical)
        self.resizeDocks([self.docks["layers"], self.docks["indicators"]], [330, 430], Qt.Horizontal)
        self.resizeDocks([self.docks["log"]], [110], Qt.Vertical)

        self.progress = QProgressBar()
        self.progress.setMaximumWidth(320)
        self.progress.setFormat("%p%")
        self.statusBar().addPermanentWidget(self.progress)

        self.tour = CameraTour(self.hot_spots, self.viewport.fly_to_world, lambda: self.viewport.camera("aoi", self.model_cls),
                               self)
        self.tour.moved.connect(lambda what: self.statusBar().showMessage(f"camera tour: {what}", 6000))
        self._build_menus()
        self._connect()
        self._restore_settings()
        if self.ui_scale != 1.0:
            self.set_font_scale(self.ui_scale)

    # -- construction ----------------------------------------------------------------------------
    def _dock(self, key, title, widget, area):
        d = QDockWidget(title, self)
        d.setObjectName(f"dock_{key}")
        d.setWidget(widget)
        self.addDockWidget(area, d)
        self.docks[key] = d
        return d

    def _build_menus(self):
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.act_open_city = f.addAction("Open &city folder…", self.ask_open_city, QKeySequence("Ctrl+O"))
        self.act_open_scenario = f.addAction("Open &scenario…", self.ask_open_scenario, QKeySequence("Ctrl+Shift+O"))
        f.addAction("Open a &comparison side by side…", self.ask_open_comparison, QKeySequence("Ctrl+Shift+C"))
        f.addAction("Open e&xploration results…", lambda: ask_open_exploration(self))  # `citytwin explore` folders
        self.recent_menu = f.addMenu("&Recent")
        f.addSeparator()
        f.addAction("Export &screenshot…", self.ask_screenshot, QKeySequence("Ctrl+P"))
        f.addAction("Export &video…", self.ask_export_video, QKeySequence("Ctrl+Shift+E"))
        f.addAction("Export run &outputs…", self.ask_export_run)
        self.act_open_output = f.addAction("Open run output &folder", self.open_output_folder)
        self.act_open_output.setEnabled(False)
        f.addSeparator()
        f.addAction("&Quit", self.close, QKeySequence.Quit)

        v = mb.addMenu("&View")
        for key, label, sc in (("top", "Top (plan)", "1"), ("oblique", "Oblique", "2"), ("north_up", "North up", "3"),
                               ("aoi", "Model area of interest", "4"), ("reset", "Reset camera", "0")):
            v.addAction(label, lambda k=key: self.viewport.camera(k, self.model_cls), QKeySequence(sc))
        self.act_tour = QAction("Camera &tour of hot spots", self, checkable=True)
        self.act_tour.setShortcut(QKeySequence("T"))
        self.act_tour.toggled.connect(self.set_tour)
        v.addAction(self.act_tour)
        v.addAction("&Next hot spot", self.next_hot_spot, QKeySequence("N"))
        v.addSeparator()
        self.act_command_room = QAction("Command-room mode (full screen)", self, checkable=True)
        self.act_command_room.setShortcut(QKeySequence("F11"))
        self.act_command_room.toggled.connect(self.set_command_room)
        v.addAction(self.act_command_room)
        self.act_split = QAction("Command room across two monitors (3D wall + dashboard)", self, checkable=True)
        self.act_split.setShortcut(QKeySequence("Shift+F11"))
        self.act_split.toggled.connect(lambda on: self.set_command_room(on, split=True))
        v.addAction(self.act_split)
        self.monitor_menu = v.addMenu("Command-room &monitor")
        self.monitor_menu.aboutToShow.connect(self._rebuild_monitor_menu)
        self._rebuild_monitor_menu()
        self.act_dark = QAction("&Dark theme", self, checkable=True)
        self.act_dark.setShortcut(QKeySequence("Ctrl+Shift+D"))
        self.act_dark.toggled.connect(self.set_dark)
        v.addAction(self.act_dark)
        scale = v.addMenu("&UI scale")
        group = QActionGroup(self)
        self.scale_actions = {}
        for sf in SCALES:
            a = QAction(f"{sf:g}×", self, checkable=True)
            a.setChecked(abs(sf - self.ui_scale) < 1e-6)
            a.triggered.connect(lambda _=False, x=sf: self.set_ui_scale(x))
            group.addAction(a)
            scale.addAction(a)
            self.scale_actions[sf] = a
        scale.addSeparator()
        scale.addAction("Larger", lambda: self.step_ui_scale(+1), QKeySequence("Ctrl+="))
        scale.addAction("Smaller", lambda: self.step_ui_scale(-1), QKeySequence("Ctrl+-"))
        v.addSeparator()
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())

        r = mb.addMenu("&Run")
        r.addAction("&Run", self.start_run, QKeySequence("Ctrl+R"))
        r.addAction("&Pause / resume", lambda: self.controls.pause_btn.toggle(), QKeySequence("Space"))
        r.addAction("&Step", self.step_run, QKeySequence("."))
        r.addAction("&Cancel", self.cancel_run, QKeySequence("Ctrl+."))
        r.addAction("&Live (latest frame)", self.go_live, QKeySequence("L"))
        r.addAction("Frame &back", lambda: self.step_slider(-1), QKeySequence("Ctrl+Left"))
        r.addAction("Frame &forward", lambda: self.step_slider(+1), QKeySequence("Ctrl+Right"))
        r.addSeparator()
        self.act_branch = r.addAction("&Branch from now…", self.ask_branch, QKeySequence("Ctrl+B"))
        self.act_compare = r.addAction("Co&mpare interventions…", self.start_compare, QKeySequence("Ctrl+Shift+R"))
        self.act_cancel_compare = r.addAction("Cancel comparison", self.cancel_compare, QKeySequence("Ctrl+Shift+."))
        self.act_cancel_compare.setEnabled(False)

        h = mb.addMenu("&Help")
        h.addAction("&Keyboard shortcuts", self.show_shortcuts, QKeySequence("F1"))

        tb = QToolBar("View")
        tb.setObjectName("toolbar_view")
        self.addToolBar(tb)
        for key, label in (("top", "Top"), ("oblique", "Oblique"), ("north_up", "North up"),
                           ("aoi", "Area of interest"), ("reset", "Reset")):
            tb.addAction(label, lambda k=key: self.viewport.camera(k, self.model_cls))
        tb.addSeparator()
        tb.addWidget(QLabel(" Fly to: "))
        self.poi_combo = QComboBox()
        self.poi_combo.setMinimumWidth(220)
        self.poi_combo.activated.connect(self.fly_to_poi)
        tb.addWidget(self.poi_combo)
        tb.addSeparator()
        tb.addAction("Branch", self.ask_branch)
        tb.addAction(self.act_tour)
        tb.addAction(self.act_command_room)

    def _rebuild_monitor_menu(self):
        self.monitor_menu.clear()
        chosen = int(self.settings.value("command_room/screen", 0))
        for i, sc in enumerate(QGuiApplication.screens()):
            g = sc.geometry()
            a = self.monitor_menu.addAction(f"{i + 1}: {sc.name()} ({g.width()} × {g.height()})",
                                            lambda i=i: self.settings.setValue("command_room/screen", i))
            a.setCheckable(True)
            a.setChecked(i == chosen)

    def _connect(self):
        self.layers.toggled.connect(self.viewport.set_layer_visible)
        self.layers.colouring_changed.connect(self._set_colouring)
        self.layers.field_changed.connect(self._set_field)
        self.viewport.picked.connect(self.on_picked)
        self.params.variant_changed.connect(self.on_variant)
        self.params.model_changed.connect(self.on_model_chosen)
        self.controls.run_btn.clicked.connect(self.start_run)
        self.controls.pause_btn.toggled.connect(self.set_paused)
        self.controls.step_btn.clicked.connect(self.step_run)
        self.controls.cancel_btn.clicked.connect(self.cancel_run)
        self.controls.speed.currentIndexChanged.connect(
            lambda _: self.worker and self.worker.set_speed(self.controls.speed.currentData()))
        self.controls.step_s.valueChanged.connect(lambda v: self.worker and self.worker.set_step(v))
        self.alerts_panel.fly_to.connect(self.viewport.fly_to_world)

    def _restore_settings(self):
        geo = self.settings.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(1600, 950)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        self._rebuild_recent()

    # -- files -------------------------------------------------------------------------------------
    def last_folder(self) -> str:
        return str(self.settings.value("last_folder", str(Path.cwd())))

    def _remember(self, path: Path):
        path = Path(path).resolve()
        self.settings.setValue("last_folder", str(path.parent))
        recent = [p for p in (self.settings.value("recent", []) or []) if p != str(path)]
        if isinstance(recent, str):
            recent = [recent]
        recent.insert(0, str(path))
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self._rebuild_recent()

    def recent_files(self) -> list[str]:
        r = self.settings.value("recent", []) or []
        return [r] if isinstance(r, str) else list(r)

    def _rebuild_recent(self):
        self.recent_menu.clear()
        for p in self.recent_files():
            self.recent_menu.addAction(p, lambda p=p: self.open_path(Path(p)))
        self.recent_menu.setEnabled(bool(self.recent_files()))

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
        if path.suffix.lower() == ".toml":
            return self.open_scenario(path)
        self.error(f"{path}: drop a city folder or a scenario (.toml) file.")
        return False

    def error(self, text: str):
        self.log_panel.log(f"error: {text}")
        self.statusBar().showMessage(text, 15000)
        if not os.environ.get("CITYTWIN_NO_DIALOGS"):
            QMessageBox.warning(self, "CityTwin", text)

    def open_city(self, path: Path, scenario=None) -> bool:
        from twin.core.city import City

        t0 = time.perf_counter()
        try:
            city = scenario.load_city() if scenario is not None else City.load(path)
        except UserError as e:
            self.error(str(e))
            return False
        self.cancel_run()
        self.city = city
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
        self._reset_run_view()
        if scenario is None:
            self.scenario = None
            self._remember(path)
            self.params.scenario_label.setText("(none: pick a model to run on this city)")
            from agents.registry import model_names

            names = model_names()
            current = self.settings.value("last_model", names[0] if names else "")
            self.params.set_models(names, current if current in names else (names[0] if names else None))
            if names:
                # After the city is on screen: importing a model (Mesa, Numba) takes a moment.
                QTimer.singleShot(0, self._choose_default_model)
        self.load_seconds = time.perf_counter() - t0
        nb = len(city.buildings)
        self.setWindowTitle(f"CityTwin — {city.name}")
        self.log_panel.log(f"opened city {city.name!r} ({nb} buildings, {len(city.roads)} roads) in "
                           f"{self.load_seconds:.2f} s")
        return True

    def open_scenario(self, path: Path) -> bool:
        from twin.scenario import load_scenario

        try:
            sc = load_scenario(path)
            sc.model_class()
        except UserError as e:
            self.error(str(e))
            return False
        except ImportError as e:
            self.error(f"{path}: the model {e.name or ''} cannot be loaded ({e}).")
            return False
        if not self.open_city(sc.city_path, scenario=sc):
            return False
        self._remember(path)
        self._set_scenario(sc)
        self.viewport.camera("aoi", self.model_cls)
        return True

    def _set_scenario(self, sc):
        self.scenario = sc
        cls = sc.model_class()
        self.model_cls = cls
        self.viewport.renderer.set_model(cls)
        label = sc.name + (f"  ({sc.path.name})" if sc.path else "")
        if sc.path is not None:
            self.params.scenario_label.setText(label)
        self.params.set_models([sc.model], sc.model)
        self.params.model_combo.setEnabled(sc.path is None)
        if sc.path is None:
            from agents.registry import model_names

            self.params.set_models(model_names(), sc.model)
        self.params.set_variants(sc.variants())
        self.params.seed.setValue(sc.seed)
        self.params.duration.setValue(sc.duration_s)
        self.params.set_params(cls.params, sc.params_for(None))
        self.indicators.set_model(cls)
        self.alert_monitor = AlertMonitor(tuple(sc.alerts), Places(sc.load_city()))
        self.alerts_panel.set_rules(sc.alerts)

    def _choose_default_model(self):
        first = self.params.model_combo.currentText()
        names = [first] + [self.params.model_combo.itemText(i) for i in range(self.params.model_combo.count())]
        for name in names:
            if self.on_model_chosen(name):
                return

    def on_model_chosen(self, name: str) -> bool:
        if self.city is None or (self.scenario is not None and self.scenario.path is not None) or not name:
            return False
        from twin.scenario import scenario_from_dict

        try:
            sc = scenario_from_dict({"scenario": {"name": f"{name} on {self.city.name}", "model": name,
                                                  "city": str(Path(self.city.root).resolve()), "duration_s": 600,
                                                  "seed": 1}, "parameters": {}})
            sc._city = self.city
            sc.model_class()
        except (UserError, ImportError) as e:
            self.log_panel.log(f"model {name!r} unavailable: {e}")
            return False
        self.settings.setValue("last_model", name)
        self._set_scenario(sc)
        return True

    def on_variant(self, variant: str):
        if self.scenario is None:
            return
        try:
            self.params.set_values(self.scenario.params_for(variant))
        except UserError as e:
            self.error(str(e))

    def model_name(self) -> str | None:
        return self.scenario.model if self.scenario is not None else None

    # -- drag and drop ---------------------------------------------------------------------------
    def dragEnterEvent(self, e):
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e):
        for url in e.mimeData().urls():
            if url.isLocalFile():
                self.open_path(Path(url.toLocalFile()))
                break

    # -- running ---------------------------------------------------------------------------------
    def _reset_run_view(self):
        self.slider.blockSignals(True)
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.slider.blockSignals(False)
        self.time_label.setText("no run")
        self.progress.setValue(0)
        self.following_live = True
        self.indicators.reset()
        self.indicators.set_cursor(None)
        self.alert_monitor.reset()
        self.alerts_panel.clear_log()

    def run_overrides(self) -> dict:
        return self.params.values()

    def start_run(self, out_dir: Path | None = None) -> SimWorker | None:
        if self.scenario is None:
            self.error("Open a scenario (or a city and pick a model) first.")
            return None
        if self.controller.running:
            return self.worker
        sc = self.scenario
        duration = float(self.params.duration.value())
        if duration != sc.duration_s:
            city = sc.load_city()
            sc = dataclasses.replace(sc, duration_s=duration)
            sc._city = city
        variant = self.params.variant_combo.currentText() or None
        overrides = self.run_overrides()
        try:
            sc.params_for(variant, overrides)
        except UserError as e:
            self.error(str(e))
            return None
        if not isinstance(out_dir, (str, Path)):
            stamp = time.strftime("%Y%m%d-%H%M%S")
            safe = _slug(f"{sc.name}_{variant or 'baseline'}")
            out_dir = Path(self.settings.value("runs_dir", str(default_runs_dir()))) / f"{safe}_{stamp}"
        self._reset_run_view()
        self.viewport.renderer.set_model(self.model_cls)
        w = SimWorker(sc, variant, int(self.params.seed.value()), overrides, out_dir=Path(out_dir),
                      speed=float(self.controls.speed.currentData()), step_s=float(self.controls.step_s.value()))
        w.frame.connect(self.on_frame)
        w.kpi_rows.connect(self.indicators.add_rows)
        w.progress.connect(self.on_progress)
        w.log.connect(self.log_panel.log)
        w.finished.connect(self.on_finished)
        w.failed.connect(self.on_failed)
        self.worker = w
        self.controls.set_running(True)
        self.log_panel.log(f"run started: {sc.name} [{variant or 'baseline'}] → {out_dir}")
        self.controller.start(w)
        return w

    def set_paused(self, paused: bool):
        if self.worker is None:
            return
        (self.worker.pause if paused else self.worker.resume)()
        self.log_panel.log("paused" if paused else "resumed")

    def step_run(self):
        if self.worker is not None and self.controller.running:
            self.controls.pause_btn.blockSignals(True)
            self.controls.pause_btn.setChecked(True)
            self.controls.pause_btn.blockSignals(False)
            self.worker.step_once()

    def cancel_run(self, wait_s: float = 1.0) -> bool:
        if self.worker is None:
            return True
        ok = self.controller.stop(wait_s)
        self.controls.set_running(False)
        return ok

    def on_frame(self, frame):
        """A new frame from the worker. Only the latest is drawn: frames that arrive while the view is
        busy are skipped (they stay in the recorder, and the alerts still see each of them), and after
        a slow draw the next one waits as long as that draw took, so the window keeps time for input."""
        if self.worker is None:
            return
        self._latest_frame = frame
        if not getattr(self, "_frame_scheduled", False):
            self._frame_scheduled = True
            QTimer.singleShot(int(1000 * getattr(self, "_frame_cost_s", 0.0)), self._apply_latest_frame)

    def _apply_latest_frame(self):
        self._frame_scheduled = False
        if self.worker is None:
            return
        t0 = time.perf_counter()
        self._apply_frame(self._latest_frame)
        self.viewport.flush_render()
        self._frame_cost_s = min(time.perf_counter() - t0, 2.0)

    def _apply_frame(self, frame):
        n = len(self.worker.recorder)
        self.slider.blockSignals(True)
        self.slider.setEnabled(n > 1)
        self.slider.setRange(0, max(0, n - 1))
        if self.following_live:
            self.slider.setValue(max(0, n - 1))
        self.slider.blockSignals(False)
        if frame.fields:
            self.layers.set_fields(list(frame.fields))
        if self.following_live:
            self._show(frame)

    def _show(self, frame):
        first = "agents" not in self.viewport.renderer.actors
        self.viewport.show_frame(frame, self.layers.field_combo.currentText() or None)
        if first:
            self.layers.set_layers(self.viewport.renderer.layer_names())
        self.indicators.clock_start_s = getattr(frame, "clock_start_s", None)
        self.time_label.setText(time_label(frame.time_s, self.indicators.clock_start_s))
        self.indicators.set_values(frame.kpis, frame.time_s)
        self._show_alerts(frame)
        if self.dashboard is not None:
            self.dashboard.clock.setText(f"<b>{time_label(frame.time_s, self.indicators.clock_start_s)}</b>")

    def _show_alerts(self, frame):
        """Tiles, markers and the log for a frame (a scrubbed-back frame shows its levels, logs nothing).

        Live, every recorded frame since the last one shown is evaluated first (the view draws at most
        ~10 frames a second and skips the rest), so the log misses no change of level."""
        m = self.alert_monitor
        events = []
        rec = self.worker.recorder if self.worker is not None else None
        if rec is not None and frame.time_s > m._last_t:
            times = rec.times()
            for i in np.flatnonzero((times > m._last_t) & (times < frame.time_s)):
                events += m.update(rec[int(i)])
        events += m.update(frame)
        self.indicators.set_levels({k: m.kpi_level(k) for k in self.indicators.tiles})
        self.alerts_panel.show_levels(m)
        self.alerts_panel.add_events(events)
        self.viewport.renderer.set_alert_markers(m.active)
        for e in events:
            if e.rising:
                self.log_panel.log(f"alert at {fmt_clock(e.time_s)}: {e.alert.text()}")

    def hot_spots(self) -> list[tuple[float, float, str]]:
        """The places of the current alerts, worst first (the camera tour's stops)."""
        return [(a.x, a.y, a.text()) for a in self.alert_monitor.active if a.x is not None]

    def set_tour(self, on: bool):
        (self.tour.start if on else self.tour.stop)()
        if self.act_tour.isChecked() != on:
            self.act_tour.setChecked(on)

    def next_hot_spot(self):
        return self.tour.next()

    def step_slider(self, direction: int):
        if self.slider.isEnabled():
            self.following_live = False
            self.slider.setValue(self.slider.value() + direction)

    def on_slider(self, value: int):
        if self.worker is None or len(self.worker.recorder) == 0:
            return
        n = len(self.worker.recorder)
        self.following_live = value >= n - 1 and self.controller.running
        frame = self.worker.recorder[min(value, n - 1)]
        self._show(frame)
        self.indicators.set_cursor(None if self.following_live else frame.time_s)

    def go_live(self):
        if self.worker is None:
            return
        self.following_live = True
        self.slider.setValue(self.slider.maximum())
        self.indicators.set_cursor(None)

    def on_progress(self, t, total):
        self.progress.setValue(int(100 * t / total) if total else 0)

    def on_finished(self, result):
        self.controls.set_running(False)
        w = self.worker
        if result is not None and w is not None:
            self.last_output = w.out_dir
            self.act_open_output.setEnabled(True)
            self.indicators.set_values(result.summary["kpis"])
            self.statusBar().showMessage(f"run finished; outputs in {w.out_dir}", 20000)
            self.progress.setValue(100)
        n = len(w.recorder) if w else 0
        if n:
            self.slider.setEnabled(n > 1)
            self.slider.setRange(0, n - 1)

    def on_failed(self, message):
        self.controls.set_running(False)
        self.error(f"the run failed: {message}")

    # -- exports ---------------------------------------------------------------------------------
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
        if self.worker is None or self.worker.result is None:
            self.error("No finished run to export yet.")
            return
        d = QFileDialog.getExistingDirectory(self, "Export run outputs to", self.last_folder())
        if d:
            self.export_run(Path(d))

    def export_run(self, out: Path) -> Path:
        w = self.worker
        w.run_driver.write(Path(out), w.result)  # the same writer as the CLI, [outputs] included
        self.last_output = Path(out)
        self.act_open_output.setEnabled(True)
        self.log_panel.log(f"run outputs written to {out}")
        return Path(out)

    # -- comparisons (the same code as `citytwin compare`) -------------------------------------
    def start_compare(self, out_dir: Path | None = None, replications: int | None = None):
        """Baseline and every intervention × replications, in worker processes; opens report.html."""
        from .compare_worker import CompareWorker, start_compare

        if self.scenario is None:
            self.error("Open a scenario with interventions first (File → Open scenario).")
            return None
        if getattr(self, "compare_thread", None) is not None and self.compare_thread.isRunning():
            self.error("A comparison is already running.")
            return None
        sc = self.scenario
        if replications is None:
            replications = sc.replications
            if not os.environ.get("CITYTWIN_NO_DIALOGS"):
                replications, ok = QInputDialog.getInt(
                    self, "Compare interventions",
                    f"Replications per variant ({len(sc.variants())} variants):", sc.replications, 1, 1000)
                if not ok:
                    return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path(out_dir) if out_dir else default_runs_dir() / f"compare_{_slug(sc.name)}_{stamp}"
        self.compare_worker = CompareWorker(sc, out, replications=replications)
        w = self.compare_worker
        w.progress.connect(self._on_compare_progress)
        w.finished.connect(self._on_compare_finished)
        # Bound methods, not lambdas: a lambda would run in the worker's thread and touch widgets.
        w.failed.connect(self._on_compare_failed)
        w.cancelled.connect(self._on_compare_cancelled)
        self.log_panel.log(f"comparison started: {len(sc.variants())} variants × {replications} replications → {out}")
        self.progress.setValue(0)
        self.act_compare.setEnabled(False)
        self.act_cancel_compare.setEnabled(True)
        self.compare_thread = start_compare(w, self)
        return w

    def cancel_compare(self, wait_s: float = 5.0) -> bool:
        if getattr(self, "compare_thread", None) is None:
            return True
        self.compare_worker.cancel()
        return self.compare_thread.wait(int(wait_s * 1000))

    def _on_compare_progress(self, done: int, total: int):
        self.progress.setValue(int(100 * done / total) if total else 0)
        self.statusBar().showMessage(f"comparison: {done} of {total} runs done", 5000)

    def _on_compare_finished(self, result):
        self._compare_done()
        self.last_output = Path(self.compare_worker.out)
        report = self.last_output / "report.html"
        self.log_panel.log(f"comparison finished: report in {report}")
        self.progress.setValue(100)
        if report.exists() and not os.environ.get("CITYTWIN_NO_DIALOGS"):
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(report)))

    def _on_compare_failed(self, message: str):
        self._compare_done()
        self.error(f"comparison failed: {message}")

    def _on_compare_cancelled(self):
        self._compare_done()
        self.log_panel.log(f"comparison cancelled; finished runs kept in {self.compare_worker.out}")

    def _compare_done(self):
        self.act_compare.setEnabled(True)
        self.act_cancel_compare.setEnabled(False)

    def open_output_folder(self):
        if self.last_output is not None and Path(self.last_output).exists():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.last_output)))

    # -- view ------------------------------------------------------------------------------------
    def _set_colouring(self, mode):
        self.viewport.renderer.set_building_colouring(mode)
        self.viewport.request_render()

    def _set_field(self, name):
        self.field_name = name
        if self.worker is not None and len(self.worker.recorder):
            self._show(self.worker.recorder[self.slider.value()])

    def on_picked(self, info):
        self.pick_panel.show_info(info)
        self.docks["selection"].raise_()

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
        self._redraw_alerts()
        for cw in self.comparisons:
            cw.set_scale(s)
        self.viewport.request_render()

    def _redraw_alerts(self):
        self.viewport.renderer.set_alert_markers(self.alert_monitor.active)

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

    def command_room_screens(self, split: bool):
        """(screen of the 3D wall, screen of the dashboard or None): the chosen monitor, and for a split
        the next one (the same one when there is only one)."""
        screens = QGuiApplication.screens()
        i = min(int(self.settings.value("command_room/screen", 0)), len(screens) - 1)
        wall = screens[max(i, 0)]
        if not split:
            return wall, None
        others = [sc for sc in screens if sc is not wall]
        return wall, (others[0] if others else wall)

    def set_command_room(self, on: bool, split: bool = False):
        """Full screen on the chosen monitor with the indicators and alerts, dark, at the wall's UI scale;
        ``split``: the 3D view alone on that monitor and the dashboard full screen on the next one."""
        if on == self.command_room and (not on or split == self.split):
            return
        if on and self.command_room:
            self.set_command_room(False)
        self.command_room, self.split = on, split and on
        if on:
            self._saved_state = self.saveState()
            self._was_dark = self.dark
            wall, board = self.command_room_screens(split)
            scale = float(self.settings.value("command_room/scale", 0) or 0) or auto_scale(wall.geometry().height())
            self.set_dark(True)
            for key, d in self.docks.items():
                d.setVisible(key in ("indicators", "alerts") and not split)
            if not split:
                self.docks["indicators"].setMinimumWidth(int(340 * max(scale, 1.5)))
            if self.windowHandle() is not None:
                self.windowHandle().setScreen(wall)
            self.setGeometry(wall.geometry())
            self.set_font_scale(max(scale, 1.5))
            self.showFullScreen()
            if split:
                self.dashboard = DashboardWindow()
                for key in ("indicators", "alerts"):
                    self.dashboard.hold(self.docks[key].widget(), self.docks[key])
                self.dashboard.setPalette(self.palette())
                f = QFont(self.font())
                f.setPointSizeF(14 * max(scale, 1.5))
                self.dashboard.clock.setFont(f)
                self.dashboard.show()
                if self.dashboard.windowHandle() is not None:
                    self.dashboard.windowHandle().setScreen(board)
                self.dashboard.setGeometry(board.geometry())
                self.dashboard.showFullScreen()
                if board is wall:
                    self.log_panel.log("command room: one monitor only, so the dashboard is a window over the 3D "
                                       "view (attach a second monitor for the split)")
        else:
            if self.dashboard is not None:
                self.dashboard.release()
                self.dashboard.close()
                self.dashboard = None
            self.showNormal()
            self.docks["indicators"].setMinimumWidth(0)
            if self._saved_state is not None:
                self.restoreState(self._saved_state)
            self.set_font_scale(self.ui_scale)
            self.set_dark(getattr(self, "_was_dark", False))
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

    # -- branch from now ---------------------------------------------------------------------------
    def ask_branch(self):
        """Run → Branch from now: pause, ask for the branch's changes, then branch."""
        from .dialogs import BranchDialog

        w = self.worker
        if w is None or not self.controller.running or w.model is None:
            self.error("Start a run first: a branch continues the running simulation from the moment you pause it.")
            return None
        self.controls.pause_btn.setChecked(True)
        dlg = BranchDialog(w.scenario, w.model.time_s, self)
        if dlg.exec() != dlg.DialogCode.Accepted:
            return None
        variant, changes, replications, speed = dlg.choice()
        return self.branch(variant, changes, replications=replications, speed=speed)

    def branch(self, variant: str | None, changes: dict | None = None, replications: int = 1, speed: float = 0.0,
               out_dir: Path | None = None) -> dict | None:
        """Branch the running run now: its complete state is taken between two steps (``state_bytes``);
        the run goes on as one future and a copy with ``variant`` and ``changes`` as the other, both at
        ``speed`` (0: as fast as possible), side by side. Returns the branch's record (filled in as it
        goes: ``time_s``, ``snapshot_s``, ``worker``, ``window``, ``copy_s``)."""
        w = self.worker
        if w is None or not self.controller.running or w.model is None:
            self.error("Start a run first: a branch continues the running simulation.")
            return None
        try:
            w.scenario.params_for(variant, changes)
        except UserError as e:
            self.error(str(e))
            return None
        w.pause()
        self.controls.pause_btn.blockSignals(True)
        self.controls.pause_btn.setChecked(True)
        self.controls.pause_btn.blockSignals(False)
        rec = {"variant": variant or "baseline", "changes": dict(changes or {}), "replications": int(replications),
               "speed": float(speed), "out": out_dir, "requested": time.perf_counter(), "source_worker": w}
        rec["relay"] = relay = BranchRelay(self, rec)
        self.branches.append(rec)
        w.state_ready.connect(relay.state)
        w.request_state()
        self.log_panel.log(f"branching: taking the state of the run (paused at t = {w.model.time_s:.1f} s)")
        return rec

    def _on_branch_state(self, rec: dict, data: bytes, t: float, took: float):
        from twin.core.state_file import state_from_bytes
        from twin.replay import RunSource

        from .compare_view import ComparisonWindow

        w = self.worker
        rec.update(time_s=t, snapshot_s=took, state_mb=len(data) / 1e6)
        state = state_from_bytes(data)
        label = rec["variant"] + (" + " + ", ".join(f"{k}={v}" for k, v in rec["changes"].items()) if rec["changes"] else "")
        nw = SimWorker(w.scenario, rec["variant"], w.seed, rec["changes"], speed=rec["speed"], state=state)
        nw.log.connect(self.log_panel.log)
        nw.failed.connect(rec["relay"].failed)
        nw.started.connect(rec["relay"].started)
        controller = SimController(self)
        rec.update(worker=nw, controller=controller, label=label)
        base_src = RunSource(w.variant or "baseline", w.scenario, w.variant, w.seed, w.overrides)
        branch_src = RunSource(label, w.scenario, rec["variant"], w.seed, rec["changes"], state, 0, state_data=data)
        cw = ComparisonWindow(self.city, self.model_cls, f"branch at {fmt_clock(t)}", self.scenario.alerts if
                              self.scenario is not None else ())
        cw.add_variant(f"{w.variant or 'baseline'} (continued)", w, base_src)
        cw.add_variant(f"branch: {label}", nw, branch_src, past=w)
        cw.set_dark(self.dark)
        if self.ui_scale != 1.0:
            cw.set_scale(self.ui_scale)
        cw.closed.connect(lambda cw=cw: self.comparisons.remove(cw) if cw in self.comparisons else None)
        self.comparisons.append(cw)
        rec["window"] = cw
        controller.start(nw)
        w.set_speed(rec["speed"])
        self.controls.speed.setCurrentIndex(max(0, self.controls.speed.findData(rec["speed"])))
        self.controls.pause_btn.setChecked(False)
        w.resume()
        cw.show()
        self.log_panel.log(f"branch at t = {t:g} s: state taken in {took:.3f} s ({len(data) / 1e6:.1f} MB); "
                           f"'{label}' runs beside the continued run")
        if rec["replications"] > 1:
            self._branch_replications(rec, data)

    def _branch_started(self, rec: dict, nw):
        rec["copy_s"] = nw.build_s
        rec["branch_s"] = rec["snapshot_s"] + nw.build_s
        self.log_panel.log(f"branch copy built and restored in {nw.build_s:.2f} s (time to branch: snapshot "
                           f"{rec['snapshot_s']:.3f} s + copy {nw.build_s:.2f} s)")

    def _branch_replications(self, rec: dict, data: bytes):
        """More than one replication: the same as `citytwin branch` from this state, in the background."""
        from twin.branch import check_branch

        from .compare_worker import BranchReplicationsWorker, start_compare

        w = self.worker
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path(rec["out"]) if rec["out"] else default_runs_dir() / f"branch_{_slug(w.scenario.name)}_{stamp}"
        try:
            plan = check_branch(w.scenario, rec["time_s"], rec["variant"], rec["replications"], None, out, w.seed,
                                rec["changes"] or None)
        except UserError as e:
            self.error(str(e))
            return
        job = BranchReplicationsWorker(plan, out, data)
        job.finished.connect(rec["relay"].replications_done)
        job.failed.connect(rec["relay"].replications_failed)
        job.progress.connect(self._on_compare_progress)
        rec.update(job=job, job_thread=start_compare(job, self), folder=out)
        self.log_panel.log(f"branch replications: 2 futures × {rec['replications']} in the background → {out}")

    def _branch_replications_done(self, rec: dict, result):
        rec["result"] = result
        self.last_output = result.out
        self.log_panel.log(f"branch replications finished: {result.out / 'comparison.csv'}")
        cw = rec.get("window")
        if cw is not None and cw in self.comparisons:
            names = {"baseline": cw.variants[0].label, result.plan.intervention: cw.variants[1].label}
            cw.set_comparison(result.comparison.replace({"variant": names}))

    # -- side by side from a folder ----------------------------------------------------------------
    def ask_open_comparison(self):
        d = QFileDialog.getExistingDirectory(self, "Open a compare or branch folder (or one run)", self.last_folder())
        if not d:
            return None
        intervention = None
        try:
            from twin.replay import variant_folders

            names = [v for v in variant_folders(Path(d)) if v != "baseline"] if (Path(d) / "runs").is_dir() else []
        except UserError as e:
            self.error(str(e))
            return None
        if len(names) > 1:
            intervention, ok = QInputDialog.getItem(self, "Side by side", "Beside the baseline:", names, 0, False)
            if not ok:
                return None
        return self.open_comparison(Path(d), intervention)

    def open_comparison(self, folder: Path, intervention: str | None = None, replication: int = 0):
        """Finished runs side by side: each is re-run from its folder (twin.replay) in a worker."""
        from twin.replay import comparison_table, sources_from_folder

        from .compare_view import ComparisonWindow

        try:
            sources = sources_from_folder(Path(folder), intervention, replication)
            cls = sources[0].scenario.model_class()
            city = sources[0].scenario.load_city()
        except UserError as e:
            self.error(str(e))
            return None
        cw = ComparisonWindow(city, cls, f"{sources[0].scenario.name}: {Path(folder).name}", sources[0].scenario.alerts)
        cw.controllers = []
        for src in sources:
            wk = SimWorker.from_source(src)
            wk.log.connect(self.log_panel.log)
            cw.add_variant(src.label, wk, src)
            c = SimController(self)
            c.start(wk)
            cw.controllers.append(c)
        table = comparison_table(Path(folder))
        if table is not None:
            cw.set_comparison(table)
        cw.set_dark(self.dark)
        cw.closed.connect(lambda cw=cw: [c.stop(2.0) for c in cw.controllers])
        cw.closed.connect(lambda cw=cw: self.comparisons.remove(cw) if cw in self.comparisons else None)
        self.comparisons.append(cw)
        cw.show()
        self.log_panel.log(f"side by side: {', '.join(s.label for s in sources)} from {folder} (re-run to replay)")
        return cw

    # -- video -------------------------------------------------------------------------------------
    def video_sources(self):
        """What File → Export video films: the front side-by-side window's variants, else the current run."""
        from twin.replay import RunSource

        for cw in reversed(self.comparisons):
            if cw.isVisible() and all(v.source is not None for v in cw.variants):
                return [v.source for v in cw.variants], cw
        w = self.worker
        if w is None:
            return None, None
        return [RunSource(w.variant or "baseline", w.scenario, w.variant, w.seed, w.overrides)], None

    def ask_export_video(self):
        from .dialogs import VideoDialog

        sources, cw = self.video_sources()
        if not sources:
            self.error("Run a scenario (or open a comparison) first: the video films a run.")
            return None
        dlg = VideoDialog(" beside ".join(s.label for s in sources), self, difference_possible=len(sources) > 1)
        if dlg.exec() != dlg.DialogCode.Accepted:
            return None
        f, _ = QFileDialog.getSaveFileName(self, "Save video", str(Path(self.last_folder()) / "citytwin.mp4"),
                                           "MP4 video (*.mp4)")
        if not f:
            return None
        return self.export_video(Path(f), **dlg.options())

    def export_video(self, out: Path, size=(1920, 1080), fps: float = 30.0, length_s: float = 30.0,
                     difference: bool = False, dark: bool = True, sources=None):
        """Render in a separate process with a progress dialog; cancel leaves no file."""
        from twin.video_spec import check_video, time_span

        from .video_worker import VideoExport

        if sources is None:
            sources, cw = self.video_sources()
        else:
            cw = None
        try:
            spec = check_video(out, size, fps, length_s, None, dark=dark, difference=difference)
            starts = [float(s.state.time_s) if s.state is not None else 0.0 for s in sources]
            time_span(spec, starts, sources[0].scenario.duration_s)
        except UserError as e:
            self.error(str(e))
            return None
        view = cw.variants[0].pane.viewport if cw is not None else self.viewport
        camera = view.plotter.camera_position
        job = VideoExport(sources, out, spec, camera, self)
        dlg = QProgressDialog(f"Rendering {out.name}…", "Cancel", 0, 100, self)
        dlg.setWindowTitle("Export video")
        dlg.setMinimumDuration(0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.canceled.connect(job.cancel)
        job.progress.connect(lambda i, n: (dlg.setMaximum(n), dlg.setValue(i)))
        job.finished.connect(lambda text: (dlg.close(), self.log_panel.log(f"video written: {text}")))
        job.failed.connect(lambda m: (dlg.close(), self.error(f"video export failed: {m}")))
        job.cancelled.connect(lambda: (dlg.close(), self.log_panel.log("video export cancelled; no file written")))
        self.video_export, self.video_dialog = job, dlg
        job.start()
        dlg.show()
        self.log_panel.log(f"video export started: {out} ({spec.size[0]}×{spec.size[1]}, {fps:g} fps)")
        return job

    def closeEvent(self, e):
        self.cancel_run(wait_s=2.0)
        self.cancel_compare(wait_s=5.0)
        self.tour.stop()
        for rec in self.branches:
            if rec.get("controller") is not None:
                rec["controller"].stop(2.0)
            if rec.get("job") is not None:
                rec["job"].cancel()
                rec["job_thread"].wait(5000)
        for cw in list(self.comparisons):
            cw.close()
        if self.video_export is not None and not self.video_export.done:
            self.video_export.cancel()
            self.video_export.wait(10)
        if self.command_room:
            self.set_command_room(False)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        self.viewport.close_plotter()
        super().closeEvent(e)
        if self._gc_held:
            self._gc_held = False
            gui_gc.release()
