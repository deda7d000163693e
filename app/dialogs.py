"""Dialogs: branch from now, video export, keyboard shortcuts."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout,
                               QHeaderView, QLabel, QScrollArea, QSpinBox, QTableWidget, QTableWidgetItem,
                               QVBoxLayout)

from twin.core.params import plain_value

from .panels import ParamForm, fmt_clock

SPEEDS = (("as fast as possible", 0.0), ("300×", 300.0), ("60×", 60.0), ("30×", 30.0), ("10×", 10.0),
          ("5×", 5.0), ("1× real time", 1.0))


class BranchDialog(QDialog):
    """Run → Branch from now: the second future's intervention and parameter changes."""

    def __init__(self, scenario, t_s: float, parent=None, map_window=None):
        super().__init__(parent)
        self.setWindowTitle(f"Branch from t = {fmt_clock(t_s)}")
        self.scenario = scenario
        lay = QVBoxLayout(self)
        head = QLabel(f"The run is paused at <b>{fmt_clock(t_s)}</b>. Its complete state is copied; the current run "
                      "goes on as one future, a copy with the changes below as the other. Both run ahead side by side.")
        head.setWordWrap(True)  # the dialog keeps its size (it stands beside the map while drawing)
        lay.addWidget(head)
        form = QFormLayout()
        self.variant = QComboBox()
        self.variant.addItems(scenario.variants())
        names = scenario.variants()
        self.variant.setCurrentIndex(1 if len(names) > 1 else 0)
        form.addRow("Intervention", self.variant)
        self.replications = QSpinBox()
        self.replications.setRange(1, 1000)
        self.replications.setToolTip("More than 1 also runs the replications of both futures in the background "
                                     "(the same as `citytwin branch`), for confidence intervals.")
        form.addRow("Replications", self.replications)
        self.speed = QComboBox()
        for label, v in SPEEDS:
            self.speed.addItem(label, v)
        form.addRow("Speed of both futures", self.speed)
        lay.addLayout(form)
        note = QLabel("Parameters of the branch (change any; a place may be drawn or picked on the map while this "
                      "dialog is open):" if map_window is not None else "Parameters of the branch (change any):")
        note.setWordWrap(True)
        lay.addWidget(note)
        self.params = ParamForm(map_buttons=map_window is not None)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.params)
        lay.addWidget(scroll, 1)
        cls = scenario.model_class()
        self.params.set_params(cls.params, scenario.params_for(self.variant.currentText()))
        self.variant.currentTextChanged.connect(lambda v: self.params.set_values(scenario.params_for(v)))
        self.map_tool = None
        if map_window is not None:  # the map buttons draw on the window's map, as in the scenario form
            from .param_drawing import ParamMapTool

            self.map_tool = ParamMapTool(map_window, self.params)
            self.finished.connect(lambda _: self.map_tool.release())
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Branch")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(560, 640)

    def choice(self) -> tuple[str, dict, int, float]:
        """(intervention, changed parameters, replications, speed)."""
        variant = self.variant.currentText()
        preset = {k: plain_value(v) for k, v in self.scenario.params_for(variant).items()}
        changes = {k: v for k, v in self.params.values().items() if plain_value(v) != preset.get(k)}
        return variant, changes, int(self.replications.value()), float(self.speed.currentData())


class VideoDialog(QDialog):
    """File → Export video: size, frame rate, length."""

    SIZES = (("1920 × 1080 (1080p)", (1920, 1080)), ("3840 × 2160 (4K)", (3840, 2160)),
             ("1280 × 720 (720p)", (1280, 720)))

    def __init__(self, what: str, parent=None, difference_possible: bool = False):
        super().__init__(parent)
        self.setWindowTitle("Export video")
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Film <b>{what}</b> as an MP4 with the time and the headline tiles burnt in. The "
                             "runs are computed again off screen (the same numbers)."))
        form = QFormLayout()
        self.size = QComboBox()
        for label, wh in self.SIZES:
            self.size.addItem(label, wh)
        self.fps = QSpinBox()
        self.fps.setRange(1, 120)
        self.fps.setValue(30)
        self.length = QDoubleSpinBox()
        self.length.setRange(1, 3600)
        self.length.setValue(30)
        self.length.setSuffix(" s")
        self.difference = QCheckBox("draw the difference from the baseline")
        self.difference.setEnabled(difference_possible)
        self.dark = QCheckBox("dark background")
        self.dark.setChecked(True)
        form.addRow("Size", self.size)
        form.addRow("Frames per second", self.fps)
        form.addRow("Length of the video", self.length)
        form.addRow("", self.difference)
        form.addRow("", self.dark)
        lay.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def options(self) -> dict:
        return {"size": self.size.currentData(), "fps": float(self.fps.value()), "length_s": float(self.length.value()),
                "difference": self.difference.isChecked(), "dark": self.dark.isChecked()}


def shortcut_rows(window) -> list[tuple[str, str, str]]:
    """(menu, action, keys) of every action with a shortcut in the window's menus and the window itself."""
    rows = []

    def walk(menu, path):
        for act in menu.actions():
            if act.menu() is not None:
                walk(act.menu(), path + [act.menu().title().replace("&", "")])
            elif act.shortcuts():
                keys = ", ".join(k.toString(QKeySequence.NativeText) for k in act.shortcuts())
                rows.append((" → ".join(path), act.text().replace("&", "").rstrip("…").strip(), keys))

    for top in window.menuBar().actions():
        if top.menu() is not None:
            walk(top.menu(), [top.menu().title().replace("&", "")])
    for act in getattr(window, "extra_shortcuts", []):
        keys = ", ".join(k.toString(QKeySequence.NativeText) for k in act.shortcuts())
        rows.append(("(anywhere)", act.text(), keys))
    return rows


class ShortcutsDialog(QDialog):
    """Help → Keyboard shortcuts: generated from the actions, so it never goes out of date."""

    def __init__(self, window, parent=None):
        super().__init__(parent or window)
        self.setWindowTitle("Keyboard shortcuts")
        lay = QVBoxLayout(self)
        rows = shortcut_rows(window)
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["menu", "does", "keys"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                if c == 2:
                    item.setTextAlignment(Qt.AlignCenter)
                self.table.setItem(r, c, item)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.Stretch)
        lay.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(720, 640)


def open_results_window(parent, folder, load, make):
    """A results folder (``load(folder)``, a UserError where it is none) in its own window
    (``make(data, parent)``), kept alive beside ``parent``; the error in ``parent``'s message box, or
    raised where there is no parent to show it."""
    from twin.core.errors import UserError

    try:
        data = load(folder)
    except UserError as e:
        if hasattr(parent, "error"):
            parent.error(str(e))
            return None
        raise
    win = make(data, parent)
    win.show()
    if parent is not None:
        parent._results_windows = [*getattr(parent, "_results_windows", []), win]
    return win
