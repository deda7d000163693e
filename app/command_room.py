"""Command-room pieces: the dashboard window for a second monitor and the camera tour of hot spots."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

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
