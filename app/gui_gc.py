"""Python's cycle collector run on the GUI thread only, while a main window is open.

A VTK object freed by the cycle collector runs VTK's own garbage collector, which takes a global
mutex. When a simulation thread set off a collection (holding the GIL) while the GUI thread was
inside a render (holding that mutex, and waiting for the GIL to run a Python observer), each
waited for the other for ever: the app froze (seen in CI, tests/app/test_command_room.py, a branch
window opening). With automatic collection off and a timer collecting on the GUI thread instead,
VTK objects are only ever freed there. The timer applies the thresholds automatic collection
would have used, so it costs no more.
"""
from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 250


class _GuiThreadCollector(QObject):
    def __init__(self):
        super().__init__()
        self.holders = 0
        self.was_enabled = True
        self.timer = QTimer(self)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self.collect)

    def hold(self) -> None:
        if self.holders == 0:
            self.was_enabled = gc.isenabled()
            gc.disable()
            self.timer.start()
        self.holders += 1

    def release(self) -> None:
        self.holders -= 1
        if self.holders == 0:
            self.timer.stop()
            gc.collect()
            if self.was_enabled:
                gc.enable()

    @staticmethod
    def collect() -> None:
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()
        if c0 > t0:
            gc.collect(2 if c2 > t2 and c1 > t1 else 1 if c1 > t1 else 0)


_collector: _GuiThreadCollector | None = None


def hold() -> None:
    """Collect cycles on the GUI thread only until the matching ``release`` (call both from it)."""
    global _collector
    if _collector is None:
        _collector = _GuiThreadCollector()
    _collector.hold()


def release() -> None:
    if _collector is not None and _collector.holders > 0:
        _collector.release()
