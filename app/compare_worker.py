"""Runs `citytwin compare` from the app: the same code as the CLI, in a worker thread.

The comparison itself runs in worker processes (twin.runs.experiment); this thread only waits for it
and reports progress by signals, so the window stays responsive and can cancel.
"""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot


class _ExperimentWorker(QObject):
    """Runs ``work()`` (a comparison or a branch, in worker processes) in a QThread and reports
    through signals; ``cancel()`` stops it after the runs under way."""

    progress = Signal(int, int)  # runs done, runs in all
    finished = Signal(object)  # the result: twin.runs.experiment.CompareResult or twin.runs.branch.BranchResult
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self):
        super().__init__()
        self._stop = threading.Event()

    def cancel(self) -> None:
        self._stop.set()

    def work(self):
        raise NotImplementedError

    @Slot()
    def run(self) -> None:
        from twin.core.errors import UserError
        from twin.runs.experiment import CompareCancelled

        try:
            result = self.work()
        except CompareCancelled:
            self.cancelled.emit()
        except UserError as e:
            self.failed.emit(str(e))
        except Exception as e:  # shown in the run log rather than lost in a thread
            self.failed.emit(f"{type(e).__name__}: {e}")
        else:
            self.finished.emit(result)


class CompareWorker(_ExperimentWorker):
    def __init__(self, scenario, out: Path, replications: int | None = None, workers: int | None = None,
                 report: bool = True):
        super().__init__()
        self.scenario, self.out = scenario, Path(out)
        self.replications, self.workers, self.report = replications, workers, report

    def work(self):
        from twin.runs.experiment import compare

        return compare(self.scenario, self.out, replications=self.replications, workers=self.workers,
                       progress=False, report=self.report, on_progress=self.progress.emit,
                       should_stop=self._stop.is_set)


def start_compare(worker, parent=None) -> QThread:
    thread = QThread(parent)
    thread.setObjectName("citytwin-compare")
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: quit() is thread-safe, and the GUI thread may be blocked in wait() (cancel).
    for signal in (worker.finished, worker.failed, worker.cancelled):
        signal.connect(thread.quit, Qt.DirectConnection)
    thread.start()
    return thread


class BranchReplicationsWorker(_ExperimentWorker):
    """The replications of a branch taken in the app, in worker processes: the same code as
    `citytwin branch` (``twin.runs.branch.branch``) from the state taken in memory."""

    def __init__(self, plan, out: Path, state_bytes: bytes, workers: int | None = None):
        super().__init__()
        self.plan, self.out, self.state_bytes, self.workers = plan, Path(out), state_bytes, workers

    def work(self):
        from twin.runs.branch import branch

        return branch(self.plan, self.out, workers=self.workers, progress=False, on_progress=self.progress.emit,
                      should_stop=self._stop.is_set, state_bytes=self.state_bytes)
