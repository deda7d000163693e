"""The main window's menus and toolbar: every action, its shortcut, and the window method it calls
(Help → Keyboard shortcuts lists them from here, app/dialogs.py)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QToolBar

from . import video_export
from .city_check_dialog import show_city_check
from .assimilation_view import ask_open_assimilation
from .exploration_view import ask_open_exploration
from .theme import SCALES

CAMERAS = (("top", "Top (plan)", "Top", "1"), ("oblique", "Oblique", "Oblique", "2"),
           ("north_up", "North up", "North up", "3"), ("aoi", "Model area of interest", "Area of interest", "4"),
           ("reset", "Reset camera", "Reset", "0"))


def build_menus(win) -> None:
    """File, View, Run and Help menus and the view toolbar of ``win`` (a MainWindow); the actions a
    window changes later are kept on it (``act_*``, ``recent_menu``, ``monitor_menu``, ``poi_combo``)."""
    mb = win.menuBar()
    f = mb.addMenu("&File")
    win.act_open_city = f.addAction("Open &city folder…", win.ask_open_city, QKeySequence("Ctrl+O"))
    win.act_open_scenario = f.addAction("Open &scenario…", win.ask_open_scenario, QKeySequence("Ctrl+Shift+O"))
    f.addAction("Open a &comparison side by side…", win.comparisons.ask_open, QKeySequence("Ctrl+Shift+C"))
    f.addAction("Open e&xploration results…", lambda: ask_open_exploration(win))  # `citytwin explore` folders
    f.addAction("Open &assimilation results…", lambda: ask_open_assimilation(win))  # `citytwin assimilate` folders
    f.addAction("Follow a &live run…", lambda: win.live_mode.ask_follow())  # a `citytwin live --out` folder
    win.recent_menu = f.addMenu("&Recent")
    f.addSeparator()
    f.addAction("Export &screenshot…", win.ask_screenshot, QKeySequence("Ctrl+P"))
    f.addAction("Export &video…", lambda: video_export.ask_export_video(win), QKeySequence("Ctrl+Shift+E"))
    f.addAction("Export run &outputs…", win.ask_export_run)
    win.act_open_output = f.addAction("Open run output &folder", win.open_output_folder)
    win.act_open_output.setEnabled(False)
    f.addSeparator()
    f.addAction("&Quit", win.close, QKeySequence.Quit)

    e = mb.addMenu("&Edit")
    win.act_edit_city = QAction("&City (draw and edit layers)", win, checkable=True)
    win.act_edit_city.setShortcut(QKeySequence("Ctrl+Shift+M"))
    win.act_edit_city.setStatusTip("Draw and edit the features of the layers the models declare; save and check")
    win.act_edit_city.toggled.connect(win.set_editing_city)
    e.addAction(win.act_edit_city)
    undo = win.city_editor.undo_stack.createUndoAction(win, "&Undo")
    undo.setShortcut(QKeySequence.Undo)
    redo = win.city_editor.undo_stack.createRedoAction(win, "&Redo")
    redo.setShortcut(QKeySequence.Redo)
    e.addAction(undo)
    e.addAction(redo)

    v = mb.addMenu("&View")
    for key, label, _, sc in CAMERAS:
        v.addAction(label, lambda k=key: win.viewport.camera(k, win.model_cls), QKeySequence(sc))
    win.act_tour = QAction("Camera &tour of hot spots", win, checkable=True)
    win.act_tour.setShortcut(QKeySequence("T"))
    win.act_tour.toggled.connect(win.set_tour)
    v.addAction(win.act_tour)
    v.addAction("&Next hot spot", win.next_hot_spot, QKeySequence("N"))
    v.addSeparator()
    win.act_command_room = QAction("Command-room mode (full screen)", win, checkable=True)
    win.act_command_room.setShortcut(QKeySequence("F11"))
    win.act_command_room.toggled.connect(win.set_command_room)
    v.addAction(win.act_command_room)
    win.act_split = QAction("Command room across two monitors (3D wall + dashboard)", win, checkable=True)
    win.act_split.setShortcut(QKeySequence("Shift+F11"))
    win.act_split.toggled.connect(lambda on: win.set_command_room(on, split=True))
    v.addAction(win.act_split)
    win.monitor_menu = v.addMenu("Command-room &monitor")
    win.monitor_menu.aboutToShow.connect(lambda: rebuild_monitor_menu(win))
    rebuild_monitor_menu(win)
    win.act_dark = QAction("&Dark theme", win, checkable=True)
    win.act_dark.setShortcut(QKeySequence("Ctrl+Shift+D"))
    win.act_dark.toggled.connect(win.set_dark)
    v.addAction(win.act_dark)
    scale = v.addMenu("&UI scale")
    group = QActionGroup(win)
    win.scale_actions = {}
    for sf in SCALES:
        a = QAction(f"{sf:g}×", win, checkable=True)
        a.setChecked(abs(sf - win.ui_scale) < 1e-6)
        a.triggered.connect(lambda _=False, x=sf: win.set_ui_scale(x))
        group.addAction(a)
        scale.addAction(a)
        win.scale_actions[sf] = a
    scale.addSeparator()
    scale.addAction("Larger", lambda: win.step_ui_scale(+1), QKeySequence("Ctrl+="))
    scale.addAction("Smaller", lambda: win.step_ui_scale(-1), QKeySequence("Ctrl+-"))
    v.addSeparator()
    for d in win.docks.values():
        v.addAction(d.toggleViewAction())

    c = mb.addMenu("&City")
    win.act_city_check = c.addAction("&Check…", lambda: show_city_check(win), QKeySequence("Ctrl+Shift+K"))
    win.act_city_check.setStatusTip("What each model found in the city, took from its data, estimated, defaulted, "
                                    "and what is missing")

    r = mb.addMenu("&Run")
    r.addAction("&Run", win.start_run, QKeySequence("Ctrl+R"))
    r.addAction("&Pause / resume", lambda: win.controls.pause_btn.toggle(), QKeySequence("Space"))
    r.addAction("&Step", win.step_run, QKeySequence("."))
    r.addAction("&Cancel", win.cancel_run, QKeySequence("Ctrl+."))
    r.addAction("&Live (latest frame)", win.go_live, QKeySequence("L"))
    r.addAction("Frame &back", lambda: win.step_slider(-1), QKeySequence("Ctrl+Left"))
    r.addAction("Frame &forward", lambda: win.step_slider(+1), QKeySequence("Ctrl+Right"))
    r.addSeparator()
    win.act_branch = r.addAction("&Branch from now…", win.branching.ask, QKeySequence("Ctrl+B"))
    win.act_compare = r.addAction("Co&mpare interventions…", win.start_compare, QKeySequence("Ctrl+Shift+R"))
    win.act_cancel_compare = r.addAction("Cancel comparison", win.cancel_compare, QKeySequence("Ctrl+Shift+."))
    win.act_cancel_compare.setEnabled(False)
    r.addSeparator()
    r.addAction("Run li&ve from feeds…", lambda: win.live_mode.ask_start(), QKeySequence("Ctrl+Shift+L"))
    r.addAction("Stop live", lambda: win.session.stop_live())

    h = mb.addMenu("&Help")
    h.addAction("&Keyboard shortcuts", win.show_shortcuts, QKeySequence("F1"))

    tb = QToolBar("View")
    tb.setObjectName("toolbar_view")
    win.addToolBar(tb)
    for key, _, label, _ in CAMERAS:
        tb.addAction(label, lambda k=key: win.viewport.camera(k, win.model_cls))
    tb.addSeparator()
    tb.addWidget(QLabel(" Fly to: "))
    win.poi_combo = QComboBox()
    win.poi_combo.setMinimumWidth(220)
    win.poi_combo.activated.connect(win.fly_to_poi)
    tb.addWidget(win.poi_combo)
    tb.addSeparator()
    tb.addAction("Branch", win.branching.ask)
    tb.addAction(win.act_tour)
    tb.addAction(win.act_command_room)


def rebuild_monitor_menu(win) -> None:
    """View → Command-room monitor: one entry per screen, the chosen one checked."""
    win.monitor_menu.clear()
    chosen = int(win.settings.value("command_room/screen", 0))
    for i, sc in enumerate(QGuiApplication.screens()):
        g = sc.geometry()
        a = win.monitor_menu.addAction(f"{i + 1}: {sc.name()} ({g.width()} × {g.height()})",
                                       lambda i=i: win.settings.setValue("command_room/screen", i))
        a.setCheckable(True)
        a.setChecked(i == chosen)


def rebuild_recent(win) -> None:
    """File → Recent from the remembered files."""
    win.recent_menu.clear()
    for p in win.recent_files():
        win.recent_menu.addAction(p, lambda p=p: win.open_path(Path(p)))
    win.recent_menu.setEnabled(bool(win.recent_files()))
