"""City → Check: what each model found in the open city, took from its data, estimated, defaulted and
misses (the same report as `citytwin city check`; the models say it, twin.core.city_check)."""
from __future__ import annotations

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout

from twin.core.city_check import KINDS
from twin.gis.city_info import checks_of

LABELS = {"found": "Found", "taken": "Taken from the data", "estimated": "Estimated", "defaulted": "Defaulted",
          "missing": "Missing"}
COLOURS = {"estimated": "#b86e00", "defaulted": "#7a6a00", "missing": "#8e5a9e", "blocking": "#c0392b"}
ALL = "every model"


class CityCheckDialog(QDialog):
    """A tree per model: the five lists, each item with its count, a few names and how / what to add."""

    def __init__(self, city, models: list[str], current: str | None = None, parent=None):
        super().__init__(parent)
        self.city, self.models = city, list(models)
        self.setWindowTitle(f"City check — {city.name}")
        self.resize(1400, 760)
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Model:"))
        self.model = QComboBox()
        self.model.addItems([ALL, *models])
        if current in models:
            self.model.setCurrentText(current)
        top.addWidget(self.model, 1)
        lay.addLayout(top)
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        lay.addWidget(self.verdict)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["What", "Count", "Names", "How / what to add"])
        self.tree.setAlternatingRowColors(True)
        self.tree.setWordWrap(True)  # "how / what to add" is a sentence: wrapped in the last column
        self.tree.header().setStretchLastSection(True)
        lay.addWidget(self.tree, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.model.currentTextChanged.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        name = self.model.currentText()
        self.checks = [c for m in (self.models if name == ALL else [name]) for c in checks_of(self.city, m)]
        self.tree.clear()
        for check in self.checks:
            top = QTreeWidgetItem([f"{check.model} — {check.title}", "", "",
                                   "can run" if check.can_run else "cannot run: add what is missing"])
            if not check.can_run:
                top.setForeground(3, QBrush(QColor(COLOURS["blocking"])))
            self.tree.addTopLevelItem(top)
            for kind in KINDS:
                items = getattr(check, kind)
                if not items:
                    continue
                group = QTreeWidgetItem(top, [LABELS[kind], str(len(items))])
                for i in items:
                    row = QTreeWidgetItem(group, [("! " if i.blocking else "") + i.what, str(i.count or ""),
                                                  ", ".join(i.names), i.how])
                    row.setToolTip(2, ", ".join(i.names))
                    row.setToolTip(3, i.how)
                    colour = COLOURS["blocking"] if i.blocking else COLOURS.get(kind)
                    if colour:
                        row.setForeground(0, QBrush(QColor(colour)))
                group.setExpanded(kind != "found")
            top.setExpanded(True)
        for c in range(2):
            self.tree.resizeColumnToContents(c)
        self.tree.setColumnWidth(2, 380)
        blocked = [c.model for c in self.checks if not c.can_run]
        noted = sum(len(c.estimated) + len(c.defaulted) for c in self.checks)
        self.verdict.setText((f"<b>Cannot run:</b> {', '.join(blocked)}. " if blocked else "<b>Every model shown can run.</b> ")
                             + (f"{noted} kind(s) of input are estimated or defaulted: runs will say so in their "
                                "summary and report." if noted else "Every input is the city's own."))


def show_city_check(win) -> CityCheckDialog | None:
    """City → Check for the window's open city (None, with a message, when no city is open)."""
    from twin.declarations import model_classes

    if win.city is None:
        win.statusBar().showMessage("Open a city or scenario first (File → Open).", 5000)
        return None
    current = win.model_cls.name if win.model_cls is not None else None
    dlg = CityCheckDialog(win.city, [c.name for c in model_classes()], current, win)
    win.city_check_dialog = dlg
    dlg.show()
    return dlg
