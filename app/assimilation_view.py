"""What a user sees of an assimilation (docs/assimilation.md, "In the app"): the estimated parameters
over time with their p10-p90 band, each sensor's residual before and after the updates, and the skill
panel (open loop against assimilated by lead, and the band's coverage). The pictures are the report's
(``twin.live.assim_report``), drawn live on canvases.

Two ways in: File → Open assimilation results… (a ``citytwin assimilate --out`` folder, in a window of
its own), and the "Assimilation" dock of live mode, redrawn whenever a followed ``citytwin live
--assimilate`` run writes new tables (``app.live_mode``).
"""
from __future__ import annotations

import html
from pathlib import Path

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QTabWidget, QVBoxLayout, QWidget

from twin.core.formats import fmt_number
from twin.live.assim_report import (AssimilationTables, load_assimilation, parameters_figure, residuals_figure,
                                    skill_figure, skill_kpis)

from .dialogs import open_results_window

TABS = ("Estimates", "Residuals", "Skill")
# the report's figures are drawn for a page; on a screen (a command room's too) their text is set at
# this many dots per inch so that a 7-point label stays readable from a few metres
SCREEN_DPI = 130
EMPTY = {"Estimates": "No update yet: the estimates appear after the filter's first update.",
         "Residuals": "No reading used yet: each sensor's residuals appear after the first update.",
         "Skill": "No forecast scored yet: a forecast is scored once its horizon has passed."}


class AssimilationPanel(QWidget):
    """The three pictures in tabs, under a line that says what the filter estimates now."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.header = QLabel("")
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.RichText)
        font = self.header.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)  # the estimate now: the line read from across a room
        self.header.setFont(font)
        lay.addWidget(self.header)
        self.tabs = QTabWidget()
        self.pages: dict[str, QVBoxLayout] = {}
        self.canvases: dict[str, FigureCanvasQTAgg | None] = {}
        for name in TABS:
            page = QWidget()
            self.pages[name] = QVBoxLayout(page)
            self.pages[name].setContentsMargins(0, 0, 0, 0)
            self.canvases[name] = None
            self.tabs.addTab(page, name)
        lay.addWidget(self.tabs, 1)
        self.draws = 0  # tables drawn (tests wait on it)
        self.kpis: list[str] = []

    def show_tables(self, t: AssimilationTables, headline: list[str]) -> None:
        """Draw ``t``; ``headline``: the skill columns of the model's headline KPIs (the skill panels)."""
        self.header.setText(header_text(t))
        self.kpis, exact = skill_kpis(t.skill, headline or t.headline())
        scored = t.skill[t.skill.lead_s > 0] if len(t.skill) else t.skill
        self._put("Estimates", parameters_figure(t.parameters) if len(t.parameters) else None)
        used = t.residuals[t.residuals.fate == "used"] if len(t.residuals) else t.residuals
        self._put("Residuals", residuals_figure(t.residuals) if len(used) else None)
        self._put("Skill", skill_figure(t.skill, self.kpis) if len(scored) else None,
                  "Forecast without error by both ensembles at every lead, so not drawn: "
                  + ", ".join(k.split(".", 1)[-1] for k in exact) if exact and self.kpis != exact else "")
        self.draws += 1

    def _put(self, tab: str, fig, note: str = "") -> None:
        page = self.pages[tab]
        while page.count():  # the previous picture (or message) goes
            w = page.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.canvases[tab] = None
        if fig is None:
            msg = QLabel(EMPTY[tab])
            msg.setAlignment(Qt.AlignCenter)
            msg.setWordWrap(True)
            page.addWidget(msg)
            return
        fig.set_dpi(SCREEN_DPI)
        fig.set_layout_engine("tight")  # refitted to whatever size the dock or window gives it
        canvas = FigureCanvasQTAgg(fig)
        page.addWidget(canvas, 1)
        if note:
            page.addWidget(QLabel(note))
        self.canvases[tab] = canvas


def header_text(t: AssimilationTables) -> str:
    """One line per estimated parameter: its estimate now with the band (and the truth of a twin
    experiment), after what ran: the method, members and updates when the folder says."""
    s = t.summary
    what = ", ".join(str(x) for x in (s.get("method"), f"{s['members']} members" if "members" in s else None,
                                       f"{s['updates']} updates" if "updates" in s else None) if x)
    lines = []
    for row in t.latest_estimates().itertuples(index=False):
        truth = f"; truth {fmt_number(row.truth)}" if row.truth == row.truth else ""
        lines.append(f"<b>{html.escape(str(row.parameter))}</b> {fmt_number(row.mean)} (p10-p90 "
                     f"{fmt_number(row.p10)}-{fmt_number(row.p90)}{truth}) at t = {row.time_s:g} s")
    return (f"<i>{html.escape(what)}</i><br>" if what else "") + "<br>".join(lines)


class AssimilationWindow(QMainWindow):
    def __init__(self, t: AssimilationTables, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Assimilation — {t.summary.get('scenario') or t.folder.name}")
        self.panel = AssimilationPanel()
        self.panel.show_tables(t, t.headline())
        self.setCentralWidget(self.panel)
        self.resize(1300, 850)


def ask_open_assimilation(parent) -> AssimilationWindow | None:
    """The File-menu action: choose a folder, open it, or say why it cannot be opened."""
    folder = QFileDialog.getExistingDirectory(parent, "Open assimilation results (an assimilate --out folder)")
    return open_assimilation(parent, Path(folder)) if folder else None


def open_assimilation(parent, folder: Path) -> AssimilationWindow | None:
    return open_results_window(parent, folder, load_assimilation, AssimilationWindow)


def main(argv=None) -> int:
    """``python -m app.assimilation_view FOLDER [--tab Estimates|Residuals|Skill] [--screenshot PNG]``:
    the window on its own (the docs' screenshots are taken this way, under Xvfb)."""
    import argparse

    from PySide6.QtWidgets import QApplication

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--tab", choices=TABS, default=TABS[0])
    ap.add_argument("--screenshot", type=Path)
    args = ap.parse_args(argv)
    app = QApplication.instance() or QApplication([])
    win = open_assimilation(None, args.folder)
    win.panel.tabs.setCurrentIndex(TABS.index(args.tab))
    if args.screenshot is None:
        return app.exec()
    app.processEvents()
    canvas = win.panel.canvases[args.tab]
    if canvas is not None:
        canvas.draw()
    app.processEvents()
    return 0 if win.grab().save(str(args.screenshot)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
