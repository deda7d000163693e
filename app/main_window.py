"""The main window: 3D view in the middle, docked panels around it, menus for files and views."""
from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QFont, QKeySequence
from PySide6.QtWidgets import (QComboBox, QDockWidget, QFileDialog, QHBoxLayout, QInputDialog, QLabel,
                               QMainWindow, QMessageBox, QProgressBar, QPushButton, QSlider, QToolBar,
                               QVBoxLayout, QWidget)

from twin.core.errors import UserError

from .panels import (IndicatorsPanel, LayersPanel, LogPanel, ParamsPanel, PickPanel, RunControls, fmt_clock)
from .sim_worker import SimController, SimWorker
from .viewport import Viewport

DEMO_CITY = Path(__file__).resolve().parent.parent / "gis_data" / "demo_city"
MAX_RECENT = 8


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def default_runs_dir() -> Path:
    return Path(os.environ.get("CITYTWIN_RUNS_DIR", Path.home() / "CityTwin" / "runs"))


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None):
        super().__init__()
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
        self._saved_state = None
        self.load_seconds = None

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
        self._dock("log", "Run log", self.log_panel, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.docks["indicators"], self.docks["selection"])
        self.docks["indicators"].raise_()
        self.resizeDocks([self.docks["layers"], self.docks["params"]], [260, 520], Qt.Vertical)
        self.resizeDocks([self.docks["layers"], self.docks["indicators"]], [330, 430], Qt.Horizontal)
        self.resizeDocks([self.docks["log"]], [110], Qt.Vertical)

        self.progress = QProgressBar()
        self.progress.setMaximumWidth(320)
        self.progress.setFormat("%p%")
        self.statusBar().addPermanentWidget(self.progress)

        self._build_menus()
        self._connect()
        self._restore_settings()

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
        self.recent_menu = f.addMenu("&Recent")
        f.addSeparator()
        f.addAction("Export &screenshot…", self.ask_screenshot, QKeySequence("Ctrl+P"))
        f.addAction("Export run &outputs…", self.ask_export_run)
        self.act_open_output = f.addAction("Open run output &folder", self.open_output_folder)
        self.act_open_output.setEnabled(False)
        f.addSeparator()
        f.addAction("&Quit", self.close, QKeySequence.Quit)

        v = mb.addMenu("&View")
        for key, label, sc in (("top", "Top (plan)", "1"), ("oblique", "Oblique", "2"), ("north_up", "North up", "3"),
                               ("aoi", "Model area of interest", "4"), ("reset", "Reset camera", "0")):
            v.addAction(label, lambda k=key: self.viewport.camera(k, self.model_cls), QKeySequence(sc))
        v.addSeparator()
        self.act_command_room = QAction("Command-room mode", self, checkable=True)
        self.act_command_room.setShortcut(QKeySequence("F11"))
        self.act_command_room.toggled.connect(self.set_command_room)
        v.addAction(self.act_command_room)
        self.act_big_fonts = QAction("Big fonts", self, checkable=True)
        self.act_big_fonts.toggled.connect(lambda on: self.set_font_scale(1.6 if on else 1.0))
        v.addAction(self.act_big_fonts)
        v.addSeparator()
        for d in self.docks.values():
            v.addAction(d.toggleViewAction())

        r = mb.addMenu("&Run")
        r.addAction("&Run", self.start_run, QKeySequence("Ctrl+R"))
        r.addAction("&Pause / resume", lambda: self.controls.pause_btn.toggle(), QKeySequence("Space"))
        r.addAction("&Step", self.step_run)
        r.addAction("&Cancel", self.cancel_run, QKeySequence("Ctrl+."))
        r.addSeparator()
        self.act_compare = r.addAction("Co&mpare interventions…", self.start_compare, QKeySequence("Ctrl+Shift+R"))
        self.act_cancel_compare = r.addAction("Cancel comparison", self.cancel_compare)
        self.act_cancel_compare.setEnabled(False)

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
        if self.worker is None:
            return
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
        self.time_label.setText(fmt_clock(frame.time_s, self.indicators.clock_start_s))
        self.indicators.set_values(frame.kpis, frame.time_s)

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

    def set_font_scale(self, s: float):
        f = QFont(self.font())
        f.setPointSizeF(10 * s)
        self.setFont(f)
        self.indicators.set_scale(s)
        self.viewport.renderer.set_font_scale(s)
        self.viewport.request_render()

    def set_command_room(self, on: bool):
        if on == self.command_room:
            return
        self.command_room = on
        if on:
            self._saved_state = self.saveState()
            for key, d in self.docks.items():
                d.setVisible(key == "indicators")
            self.docks["indicators"].setMinimumWidth(520)
            self.menuBar().setVisible(True)
            self.set_font_scale(1.6)
            self.showFullScreen()
        else:
            self.showNormal()
            self.docks["indicators"].setMinimumWidth(0)
            if self._saved_state is not None:
                self.restoreState(self._saved_state)
            self.set_font_scale(1.6 if self.act_big_fonts.isChecked() else 1.0)
        if self.act_command_room.isChecked() != on:
            self.act_command_room.setChecked(on)

    def closeEvent(self, e):
        self.cancel_run(wait_s=2.0)
        self.cancel_compare(wait_s=5.0)
        if self.command_room:
            self.set_command_room(False)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        self.viewport.close_plotter()
        super().closeEvent(e)
