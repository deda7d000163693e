"""The session model (``twin.session``) in Qt: its run on the simulation thread, its events on the GUI thread.

``QtRun`` is the session's run driver in the app: a ``SimWorker`` in a ``SimController``'s QThread.
The worker's signals are delivered to this object, which lives on the GUI thread, so they arrive
there queued and become the session's ``report_*`` calls on the GUI thread.

``SessionBridge`` subscribes Qt code to session events. A handler always runs on the GUI thread: at
once when the event was emitted there (the app's case: every session method is called there, so
a widget updates before the method returns, as the tests expect), queued through a signal when it
was emitted from another thread (a live feed, a headless driver in a thread).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from .sim_worker import SimController, SimWorker


class QtRun(QObject):
    """A session's run on the simulation thread (``twin.session.RunHandle``)."""

    def __init__(self, session, scenario, variant, seed, overrides, out_dir, speed, step_s):
        super().__init__()
        self.session = session
        self.worker = w = SimWorker(scenario, variant, seed, overrides, out_dir=out_dir, speed=speed, step_s=step_s)
        self.controller = SimController(self)
        # Bound slots of this GUI-thread object, not lambdas: a lambda would run in the worker's thread.
        w.frame.connect(self._frame)
        w.kpi_rows.connect(self._rows)
        w.progress.connect(self._progress)
        w.log.connect(self._log)
        w.finished.connect(self._finished)
        w.failed.connect(self._failed)

    # -- RunHandle -----------------------------------------------------------------------------------
    @property
    def recorder(self):
        return self.worker.recorder

    @property
    def result(self):
        return self.worker.result

    @property
    def out_dir(self) -> Path | None:
        return self.worker.out_dir

    @property
    def running(self) -> bool:
        return self.controller.running

    def start(self) -> None:
        self.controller.start(self.worker)

    def pause(self) -> None:
        self.worker.pause()

    def resume(self) -> None:
        self.worker.resume()

    def step_once(self) -> None:
        self.worker.step_once()

    def set_speed(self, sim_s_per_wall_s: float) -> None:
        self.worker.set_speed(sim_s_per_wall_s)

    def set_step(self, sim_s: float) -> None:
        self.worker.set_step(sim_s)

    def cancel(self, wait_s: float = 1.0) -> bool:
        return self.controller.stop(wait_s)

    def write(self, out: Path) -> None:
        self.worker.run_driver.write(Path(out), self.worker.result)  # the CLI's writer, [outputs] included

    # -- the worker's signals, on the GUI thread ---------------------------------------------------------
    @Slot(object)
    def _frame(self, frame):
        self.session.report_frame(self, frame)

    @Slot(list)
    def _rows(self, rows):
        self.session.report_rows(self, rows)

    @Slot(float, float)
    def _progress(self, t, total):
        self.session.report_progress(self, t, total)

    @Slot(str)
    def _log(self, text):
        self.session.report_log(self, text)

    @Slot(object)
    def _finished(self, result):
        self.session.report_finished(self, result)

    @Slot(str)
    def _failed(self, message):
        self.session.report_failed(self, message)


class SessionBridge(QObject):
    """Session events to handlers on the GUI thread (the thread this object lives in)."""

    _queued = Signal(object, object)  # handler, event

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self._relays: list = []
        self._queued.connect(self._deliver, Qt.QueuedConnection)

    def subscribe(self, name: str, handler) -> None:
        """Call ``handler(event)`` on the GUI thread for each session event ``name``."""
        def relay(event, handler=handler):
            if QThread.currentThread() == self.thread():
                handler(event)
            else:
                self._queued.emit(handler, event)

        getattr(self.session.events, name).connect(relay)
        self._relays.append((name, relay))

    def unsubscribe_all(self) -> None:
        for name, relay in self._relays:
            getattr(self.session.events, name).disconnect(relay)
        self._relays.clear()

    @Slot(object, object)
    def _deliver(self, handler, event):
        handler(event)
