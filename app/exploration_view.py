"""File → Open exploration results…: a finished `citytwin explore` folder in a window.

Left: the robustness table (intervention × KPI: mean, p10, p90, max regret, share meeting the
target) and, under it, where each plan fails (PRIM's boxes in words). Right: the futures as points
on two uncertainties chosen in the combo boxes, coloured by the intervention that is best in that
future. Everything is read from the folder (``twin.runs.explore.load_exploration``); nothing is re-run.
"""
from __future__ import annotations

import html
import math
from pathlib import Path

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QMainWindow, QSplitter,
                               QTableWidget, QTableWidgetItem, QTextBrowser, QVBoxLayout, QWidget)

from twin.core.formats import fmt_number
from twin.runs.explore import Exploration, load_exploration
from twin.runs.report import COLORS

from .dialogs import open_results_window

COLUMNS = [("intervention", "Intervention"), ("kpi", "KPI"), ("mean", "Mean"), ("p10", "p10"), ("p90", "p90"),
           ("max_regret", "Max regret"), ("share_meeting_target", "Meets target")]


def _cell(col: str, v) -> str:
    """A table cell: numbers as everywhere else in the app (fmt_number), the share as a percentage."""
    if col == "share_meeting_target" and isinstance(v, float) and math.isfinite(v):
        return f"{v:.0%}"
    return fmt_number(v) if isinstance(v, float) else str(v)


class ExplorationWindow(QMainWindow):
    def __init__(self, ex: Exploration, parent=None):
        super().__init__(parent)
        self.ex = ex
        self.setWindowTitle(f"Exploration — {ex.meta.get('scenario', ex.folder.name)}")
        split = QSplitter(Qt.Horizontal)
        left = QWidget()
        lv = QVBoxLayout(left)
        n_fut = ex.meta.get("futures", ex.futures["future"].nunique())
        targets = ", ".join(f"{t['kpi']} {t['op']} {t['value']:g}" for t in ex.meta.get("targets", []))
        lv.addWidget(QLabel(f"<b>{len(ex.meta['interventions'])} plans in {n_fut} futures</b>"
                            + (f" — target {html.escape(targets)}" if targets else "")))
        self.table = QTableWidget(len(ex.robustness), len(COLUMNS))
        self.table.setHorizontalHeaderLabels([h for _, h in COLUMNS])
        for i, row in enumerate(ex.robustness.itertuples(index=False)):
            for j, (col, _) in enumerate(COLUMNS):
                item = QTableWidgetItem(_cell(col, getattr(row, col)))
                if j >= 2:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(i, j, item)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        lv.addWidget(self.table, 3)
        self.findings = QTextBrowser()
        sentences = [s for s in ex.discovery.get("sentence", []) if isinstance(s, str)]
        self.findings.setHtml("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>" if sentences else
                              "<i>No target given: run explore with --target KPI&lt;=VALUE to see where each plan "
                              "fails.</i>")
        lv.addWidget(QLabel("<b>Where each plan fails</b> (PRIM)"))
        lv.addWidget(self.findings, 1)
        split.addWidget(left)
        right = QWidget()
        rv = QVBoxLayout(right)
        pick = QHBoxLayout()
        self.x_combo, self.y_combo = QComboBox(), QComboBox()
        names = ex.uncertainties
        for combo, default in ((self.x_combo, 0), (self.y_combo, min(1, len(names) - 1))):
            combo.addItems(names)
            combo.setCurrentIndex(default)
            combo.currentIndexChanged.connect(self.redraw)
        pick.addWidget(QLabel("x:"))
        pick.addWidget(self.x_combo, 1)
        pick.addWidget(QLabel("y:"))
        pick.addWidget(self.y_combo, 1)
        rv.addLayout(pick)
        self.figure = Figure(figsize=(6, 5), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        rv.addWidget(self.canvas, 1)
        split.addWidget(right)
        split.setSizes([700, 600])
        self.setCentralWidget(split)
        self.resize(1400, 800)
        self.redraw()

    def redraw(self) -> None:
        """The futures on the chosen uncertainties, each coloured by its best intervention."""
        x, y = self.x_combo.currentText(), self.y_combo.currentText()
        one = self.ex.by_future()
        self.figure.clear()
        ax = self.figure.add_subplot()
        plans = self.ex.meta["interventions"]
        self.drawn = {}
        for i, plan in enumerate(plans):
            sel = one["best_intervention"] == plan
            if sel.any():
                ax.scatter(one.loc[sel, x], one.loc[sel, y], s=22, color=COLORS[i % len(COLORS)], label=plan[:40])
                self.drawn[plan] = int(sel.sum())
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(f"Best plan in each future (by {self.ex.meta.get('best_by', '')})")
        ax.legend(fontsize=8, loc="best")
        self.canvas.draw_idle()


def ask_open_exploration(parent) -> ExplorationWindow | None:
    """The File-menu action: choose a folder, open it, or say why it cannot be opened."""
    folder = QFileDialog.getExistingDirectory(parent, "Open exploration results (an explore --out folder)")
    if not folder:
        return None
    return open_exploration(parent, Path(folder))


def open_exploration(parent, folder: Path) -> ExplorationWindow | None:
    return open_results_window(parent, folder, load_exploration, ExplorationWindow)


def main(argv=None) -> int:
    """``python -m app.exploration_view FOLDER [--screenshot PNG] [--x NAME --y NAME]``: the window
    on its own (the docs' screenshot is taken this way, under Xvfb)."""
    import argparse

    from PySide6.QtWidgets import QApplication

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--screenshot", type=Path)
    ap.add_argument("--x")
    ap.add_argument("--y")
    args = ap.parse_args(argv)
    app = QApplication.instance() or QApplication([])
    win = open_exploration(None, args.folder)
    if args.x:
        win.x_combo.setCurrentText(args.x)
    if args.y:
        win.y_combo.setCurrentText(args.y)
    if args.screenshot is None:
        return app.exec()
    app.processEvents()
    win.canvas.draw()
    app.processEvents()
    return 0 if win.grab().save(str(args.screenshot)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
