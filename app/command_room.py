"""Command-room pieces: the mode itself (the main window full screen, dark and large, optionally with
a dashboard on a second monitor), the dashboard window and the camera tour of hot spots."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from .theme import auto_scale

TOUR_INTERVAL_MS = 6000  # time on each hot spot: long enough to read its labels from the back of the room


class DashboardWindow(QWidget):
    """The indicators and the alerts on a monitor of their own (split mode)."""

    def __init__(self, title: str = "CityTwin — dashboard"):
        super().__init__(None, Qt.Window)
        self.setWindowTitle(title)
        self.setObjectName("dashboard")
        outer = QVBoxLayout(self)
        self.clock = QLabel("")
        outer.addWidget(self.clock)
        self.row = QHBoxLayout()
        outer.addLayout(self.row, 1)
        self.held: list[tuple[QWidget, object]] = []  # (panel, the dock it came from)

    def hold(self, widget: QWidget, dock) -> None:
        """Show a dock's panel here (it goes back with ``release``)."""
        self.held.append((widget, dock))
        self.row.addWidget(widget, 1)
        widget.show()

    def release(self) -> None:
        for widget, dock in self.held:
            dock.setWidget(widget)
        self.held = []


class CameraTour(QObject):
    """Flies the view from hot spot to hot spot (current alerts, worst first), one every few seconds;
    with no alert it shows the area of interest. ``hot_spots()`` returns [(x, y, label)] in the city CRS."""

    moved = Signal(str)  # what it shows now

    def __init__(self, hot_spots, fly_to, overview, parent=None, interval_ms: int = TOUR_INTERVAL_MS):
        super().__init__(parent)
        self.hot_spots, self.fly_to, self.overview = hot_spots, fly_to, overview
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.next)
        self.index = -1
        self.current = ""

    @property
    def running(self) -> bool:
        return self.timer.isActive()

    def start(self) -> None:
        self.index = -1
        self.next()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def next(self) -> str:
        """Go to the next hot spot (or the overview) and say which."""
        spots = list(self.hot_spots())
        if not spots:
            self.index = -1
            self.overview()
            self.current = "overview (no alerts)"
        else:
            self.index = (self.index + 1) % len(spots)
            x, y, label = spots[self.index]
            self.fly_to(x, y)
            self.current = label
        self.moved.emit(self.current)
        return self.current


def command_room_screens(win, split: bool):
    """(screen of the 3D wall, screen of the dashboard or None): the chosen monitor, and for a split
    the next one (the same one when there is only one)."""
    screens = QGuiApplication.screens()
    i = min(int(win.settings.value("command_room/screen", 0)), len(screens) - 1)
    wall = screens[max(i, 0)]
    if not split:
        return wall, None
    others = [sc for sc in screens if sc is not wall]
    return wall, (others[0] if others else wall)


def enter_command_room(win, split: bool) -> None:
    """The main window ``win`` full screen on the chosen monitor, dark, at the wall's UI scale, with the
    indicators and alerts docked beside the 3D view, or (``split``) on a dashboard on the next monitor."""
    win._saved_state = win.saveState()
    win._was_dark = win.dark
    wall, board = command_room_screens(win, split)
    scale = float(win.settings.value("command_room/scale", 0) or 0) or auto_scale(wall.geometry().height())
    win.set_dark(True)
    for key, d in win.docks.items():
        d.setVisible(key in ("indicators", "alerts") and not split)
    if not split:
        win.docks["indicators"].setMinimumWidth(int(340 * max(scale, 1.5)))
    if win.windowHandle() is not None:
        win.windowHandle().setScreen(wall)
    win.setGeometry(wall.geometry())
    win.set_font_scale(max(scale, 1.5))
    win.showFullScreen()
    if not split:
        return
    win.dashboard = dash = DashboardWindow()
    for key in ("indicators", "alerts"):
        dash.hold(win.docks[key].widget(), win.docks[key])
    dash.setPalette(win.palette())
    f = QFont(win.font())
    f.setPointSizeF(14 * max(scale, 1.5))
    dash.clock.setFont(f)
    dash.show()
    if dash.windowHandle() is not None:
        dash.windowHandle().setScreen(board)
    dash.setGeometry(board.geometry())
    dash.showFullScreen()
    if board is wall:
        win.log_panel.log("command room: one monitor only, so the dashboard is a window over the 3D "
                          "view (attach a second monitor for the split)")


def leave_command_room(win) -> None:
    """Back to the window's own layout, theme and UI scale."""
    if win.dashboard is not None:
        win.dashboard.release()
        win.dashboard.close()
        win.dashboard = None
    win.showNormal()
    win.docks["indicators"].setMinimumWidth(0)
    if win._saved_state is not None:
        win.restoreState(win._saved_state)
    win.set_font_scale(win.ui_scale)
    win.set_dark(getattr(win, "_was_dark", False))
