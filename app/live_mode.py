"""The window in live mode (Run → Live…, File → Follow a live run…): it draws what the session reads of
a live run's folder (``Session.follow_live`` / ``start_live``, ``twin.live.follow``): the "now" line
and the forecast fan on every chart, the sensors in 3D coloured by their latest reading, the forecast
alerts in the alert log, and with ``--assimilate`` the filter's pictures in an "Assimilation" dock.
Reading and deciding happen in the session; this only polls it and draws."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QInputDialog, QLabel

from twin.live.assim_report import headline_columns
from twin.live.forecast import duration_text

from .assimilation_view import AssimilationPanel
from .panels import time_label

POLL_MS = 250
MAX_SENSOR_LABELS = 24  # beyond that labels hide the city: the sensors that reported, most recent first


class LiveMode(QObject):
    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(win.session.poll_live)
        self.updates = 0  # snapshots drawn (tests wait on it)
        self.label = "live"
        self.frames = 0  # live model states drawn
        self.frame = None
        # with --assimilate: each estimated parameter and its band, one a line, under the live caption
        self.estimates = QLabel("")
        self.estimates.setVisible(False)
        win.indicators.layout().insertWidget(1, self.estimates)
        self.assimilation: AssimilationPanel | None = None  # the "Assimilation" dock, made for a run that assimilates
        for name in ("live_started", "live_changed", "live_frame", "live_stopped"):
            win.bridge.subscribe(name, getattr(self, f"_on_{name}"))

    # -- user actions ------------------------------------------------------------------------------
    def ask_follow(self):
        d = QFileDialog.getExistingDirectory(self.win, "Follow a live run (its --out folder)", self.win.last_folder())
        if d:
            self.win.session.follow_live(Path(d))

    def ask_start(self):
        s = self.win.session
        if s.scenario is None or s.scenario.path is None:
            self.win.error("Open a scenario file first: a live run runs a scenario file.")
            return
        text, ok = QInputDialog.getText(
            self.win, "Run live", "Feeds, separated by spaces (mqtt://HOST:PORT/TOPIC, "
            "gtfs-rt+http://HOST:PORT/PATH#sensor=ID, folder:PATH):", text="mqtt://127.0.0.1:1883/citytwin/#")
        if ok and text.strip():
            s.start_live(text.split(), members=int(self.win.settings.value("live/members", 10)))

    # -- session events → widgets --------------------------------------------------------------------
    def _on_live_started(self, e):
        self.updates = 0
        self.timer.start()
        self.win.time_label.setText("live")
        self.win.statusBar().showMessage(f"following the live run in {e.folder}", 10000)

    def _on_live_changed(self, e):
        snap, win = e.snapshot, self.win
        ind = win.indicators
        if snap.new_rows:
            ind.add_rows(snap.new_rows)
        ind.set_forecast(snap.now_s, snap.fans)
        clock = time_label(snap.now_s, ind.clock_start_s)
        ahead = (f"\nforecast issued at {time_label(snap.issued_at, ind.clock_start_s)} (orange: p10-p90 band, "
                 "median dashed, members)" if snap.issued_at is not None else "")
        self.label = f"live {clock}{ahead}"
        text = snap.estimates_text()  # with --assimilate: what the filter makes of its parameters
        self.estimates.setText("estimated: " + text.replace("; ", "\nestimated: ") if text else "")
        self.estimates.setVisible(bool(text))
        if snap.assimilation is not None:
            self._show_assimilation(snap.assimilation)
        win.time_label.setText(f"live {clock}")
        ind.time_label.setText(self.label)
        if snap.duration_s:
            win.progress.setValue(int(100 * min(1.0, snap.now_s / float(snap.duration_s))))
        markers = snap.sensors
        got = np.array([math.isfinite(m.value) for m in markers], bool)
        order = sorted(np.flatnonzero(got), key=lambda i: -markers[i].time_s)[:MAX_SENSOR_LABELS]
        mask = np.zeros(len(markers), bool)
        mask[order] = True
        r = win.viewport.renderer
        r.set_sensor_markers([m.sensor.x for m in markers], [m.sensor.y for m in markers],
                             [m.shade for m in markers], [m.label for m in markers], mask)
        win._show_alert_levels()  # the levels now (the session took them from the latest forecast)
        ahead = [a for a in snap.alerts if a.get("x") is not None and float(a["issued_at"]) == snap.issued_at]
        r.set_ahead_markers([a["x"] for a in ahead], [a["y"] for a in ahead],
                            [2 if a["level"] == "red" else 1 for a in ahead],
                            [f"{str(a['rule']).replace('_', ' ')} {a['key']}: {a['level']} in about "
                             f"{duration_text(float(a['lead_s']))}" for a in ahead])
        win.layers.set_layers(r.layer_names())  # the sensors and forecast alerts as layers (new names only)
        win.alerts_panel.add_forecast_alerts(snap.new_alerts)
        for line in snap.new_log:
            win.log_panel.log(f"live: {line}")
        win.viewport.request_render()
        self.updates += 1

    def _show_assimilation(self, tables) -> None:
        """The filter's estimates over time, residuals and skill in their dock (under the 3D view)."""
        win = self.win
        if self.assimilation is None:
            self.assimilation = AssimilationPanel()
            dock = win._dock("assimilation", "Assimilation", self.assimilation, Qt.BottomDockWidgetArea)
            win.splitDockWidget(win.docks["log"], dock, Qt.Horizontal)
            win.resizeDocks([win.docks["log"], dock], [260, 900], Qt.Horizontal)
            win.resizeDocks([dock], [360], Qt.Vertical)
        sc = win.session.scenario
        headline = headline_columns(sc.model_class()) if sc is not None else []
        self.assimilation.show_tables(tables, headline)
        win.docks["assimilation"].show()

    def _on_live_frame(self, e):
        """The live model as the twin last saved it: its agents, fields, per-feature values in 3D."""
        win, self.frame = self.win, e.frame
        if e.frame.fields and not win.layers.field_combo.count():
            win.layers.set_fields(list(e.frame.fields))
        win._show(e.frame)
        win.time_label.setText(f"live {time_label(e.frame.time_s, win.indicators.clock_start_s)}")
        win.indicators.time_label.setText(self.label)  # _show wrote the frame's time: say it is live
        win.viewport.request_render()
        self.frames += 1

    def _on_live_stopped(self, e):
        if self.win.session.live is None:  # a process that ended leaves its folder followed: its last state is drawn
            self.timer.stop()
        self.win.statusBar().showMessage(f"live mode: {e.reason}", 15000)
