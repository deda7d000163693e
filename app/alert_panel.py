"""The alert tiles and the alert log (command room). Rules come from the model's declarations and
the scenario's ``[alerts]`` table; ``twin.view.alerts.AlertMonitor`` says what is amber or red."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (QGridLayout, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from twin.live.forecast import duration_text
from twin.view.alerts import fmt
from twin.core.model_contract import ALERT_LEVELS

from .panels import Tile, fmt_clock

LOG_COLOURS = {0: "#2ca02c", 1: "#b07800", 2: "#e8112d"}


class RuleCaption:
    """What a rule tile shows under its number (a Tile wants a KPI-like object)."""

    def __init__(self, rule):
        self.name = rule.name
        self.unit = rule.unit
        direction = "≥" if rule.direction == "above" else "≤"
        self.doc = (f"{rule.doc}\n{rule.source}: amber {direction} {rule.amber:g}, red {direction} {rule.red:g} "
                    f"{rule.unit}").strip()


class AlertsPanel(QWidget):
    """One tile per rule (its worst item now) and the log of every change of level, with times.
    Clicking a log row asks the view to fly there."""

    fly_to = Signal(float, float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tiles: dict[str, Tile] = {}
        self.rules: dict = {}
        self.scale = 1.0
        self.dark = False
        lay = QVBoxLayout(self)
        self.summary = QLabel("no alert rules")
        lay.addWidget(self.summary)
        self.grid = QGridLayout()
        lay.addLayout(self.grid)
        self.log = QTableWidget(0, 4)
        self.log.setHorizontalHeaderLabels(["time", "level", "where", "value"])
        for c in (0, 1, 3):
            self.log.horizontalHeader().setSectionResizeMode(c, QHeaderView.ResizeToContents)
        self.log.horizontalHeader().setSectionResizeMode(2, QHeaderView.Stretch)
        self.log.verticalHeader().setVisible(False)
        self.log.setEditTriggers(QTableWidget.NoEditTriggers)
        self.log.cellDoubleClicked.connect(self._clicked)
        self.log.cellClicked.connect(self._clicked)
        lay.addWidget(self.log, 1)
        self._places: list = []

    def set_rules(self, rules) -> None:
        for t in self.tiles.values():
            t.setParent(None)
        self.tiles, self.rules = {}, {r.name: r for r in rules}
        for i, r in enumerate(rules):
            t = Tile(RuleCaption(r))
            t.set_scale(self.scale * 0.8)
            t.set_dark(self.dark)
            t.value.setText("ok")
            self.tiles[r.name] = t
            self.grid.addWidget(t, i // 2, i % 2)
        self.clear_log()
        self.summary.setText(f"{len(rules)} alert rule(s)" if rules else "no alert rules (the model declares none)")

    def clear_log(self) -> None:
        self.log.setRowCount(0)
        self._places = []

    def show_levels(self, monitor) -> None:
        """Each rule's tile: its worst item now."""
        reds = ambers = 0
        for name, tile in self.tiles.items():
            level, worst = monitor.rule_level(name)
            tile.set_level(level)
            if worst is None or level == 0:
                tile.value.setText("ok")
            else:
                unit = f" {worst.rule.unit}" if worst.rule.unit and worst.rule.unit != "-" else ""
                tile.value.setText(f"{worst.key + ': ' if worst.key else ''}{fmt(worst.value)}{unit}")
        for a in monitor.active:
            reds += a.level == 2
            ambers += a.level == 1
        self.summary.setText("no alerts" if not (reds or ambers) else f"<b>{reds} red, {ambers} amber</b>")

    def add_events(self, events) -> None:
        for e in events:
            a = e.alert
            r = self.log.rowCount()
            self.log.insertRow(r)
            word = ALERT_LEVELS[a.level] if a.level else f"cleared ({ALERT_LEVELS[e.previous]})"
            cells = [fmt_clock(e.time_s), word, a.label, fmt(a.value) + (f" {a.rule.unit}" if a.rule.unit not in ("", "-") else "")]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 1:
                    item.setForeground(QColor(LOG_COLOURS[a.level]))
                    f = QFont()
                    f.setBold(a.level > 0)
                    item.setFont(f)
                self.log.setItem(r, c, item)
            self._places.append((a.x, a.y))
        if events:
            self.log.scrollToBottom()

    def add_forecast_alerts(self, alerts) -> None:
        """Live mode: forecast alerts (``alerts.csv`` rows, with ``x``, ``y`` where the session placed
        them): when issued, the level foreseen, the message, how many members."""
        for a in alerts:
            r = self.log.rowCount()
            self.log.insertRow(r)
            level = ALERT_LEVELS.index(a["level"]) if a["level"] in ALERT_LEVELS else 1
            when = duration_text(float(a["lead_s"]))
            what = f"{str(a['rule']).replace('_', ' ')} {a['key']}".strip()
            cells = [fmt_clock(float(a["issued_at"])), f"{a['level']} ahead", f"{what} in about {when}",
                     f"{a['members']}/{a['of']}"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(a["message"])
                if c == 1:
                    item.setForeground(QColor(LOG_COLOURS[level]))
                    f = QFont()
                    f.setBold(True)
                    item.setFont(f)
                self.log.setItem(r, c, item)
            self._places.append((a.get("x"), a.get("y")))
        if alerts:
            self.log.scrollToBottom()

    def log_rows(self) -> list[list[str]]:
        return [[self.log.item(r, c).text() for c in range(self.log.columnCount())] for r in range(self.log.rowCount())]

    def _clicked(self, row: int, _col: int) -> None:
        if 0 <= row < len(self._places) and self._places[row][0] is not None:
            self.fly_to.emit(*self._places[row])

    def set_scale(self, s: float) -> None:
        self.scale = s
        for t in self.tiles.values():
            t.set_scale(s * 0.8)
        f = self.summary.font()
        f.setPointSizeF(11 * s)
        self.summary.setFont(f)
        lf = self.log.font()
        lf.setPointSizeF(9 * s)
        self.log.setFont(lf)
        self.log.verticalHeader().setDefaultSectionSize(int(22 * s))

    def set_dark(self, dark: bool) -> None:
        self.dark = dark
        for t in self.tiles.values():
            t.set_dark(dark)

