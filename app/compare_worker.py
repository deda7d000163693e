"""Runs `citytwin compare` from the app: the same code as the CLI, in a worker thread.

The comparison itself runs in worker processes (twin.experiment); this thread only waits for it
and reports progress by signals, so the window stays responsive and can cancel.
"""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot


class CompareWorker(QObject):
    progress = Signal(int, int)  # runs done, runs in all
    finished = Signal(object)  # twin.experiment.CompareResult
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, scenario, out: Path, replications: int | None = None, workers: int | None = None):
        super().__init__()
        self.scenario, self.out = scenario, Path(out)
        self.replications, self.workers = replications, workers
        self._stop = threading.Event()

    def cancel(self) -> None:
        self._stop.set()

    @Slot()
    def run(self) -> None:
        from twin.core.errors import UserError
        from twin.experiment import CompareCancelled, compare

        try:
            result = compare(self.scenario, self.out, replications=self.replications, workers=self.workers,
                             progress=False, on_progress=self.progress.emit, should_stop=self._stop.is_set)
        except CompareCancelled:
            self.cancelled.emit()
        except UserError as e:
            self.failed.emit(str(e))
        except Exception as e:  # shown in the run log rather than lost in a thread
            self.failed.emit(f"{type(e).__name__}: {e}")
        else:
            self.finished.emit(result)


def start_compare(worker: CompareWorker, parent=None) -> QThread:
    thread = QThread(parent)
    thread.setObjectName("citytwin-compare")
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: quit() is thread-safe, and the GUI thread may be blocked in wait() (cancel).
    for signal in (worker.finished, worker.failed, worker.cancelled):
        signal.connect(thread.quit, Qt.DirectConnection)
    thread.start()
    return thread
