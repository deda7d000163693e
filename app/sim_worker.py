"""Running a model off the GUI thread.

``SimWorker`` lives in a QThread: it drives a ``twin.runs.runner.Run`` (the same driver as the CLI, so
the scenario's ``[outputs]`` and state saves are honoured and the numbers are the CLI's), advances
it in short slices (adapted so each takes ~0.1 s of wall time, so pause and cancel answer within a
fraction of a second), records frames in a ``FrameRecorder`` and reports by signals. Step and
speed are in simulated seconds. It never renders: the GUI thread draws the frames.
"""
from __future__ import annotations

import threading
import time
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from twin.view.frames import FrameRecorder, RunFrames, default_frame_interval_s


class SimWorker(QObject):
    """Signals carry plain Python objects; slots are called from the GUI through the thread's queue,
    but pause/resume/cancel/speed are plain thread-safe setters (the worker loop never blocks the
    event loop of its thread for long, yet the flags must work even while it is busy)."""

    started = Signal(object)  # model class
    frame = Signal(object)  # Frame
    kpi_rows = Signal(list)  # [{time_s, kpi: value, ...}, ...]
    progress = Signal(float, float)  # simulated time, duration
    log = Signal(str)
    finished = Signal(object)  # RunResult (None when cancelled)
    failed = Signal(str)
    state_ready = Signal(bytes, float, float)  # state file bytes, its time, seconds it took (request_state)

    def __init__(self, scenario, variant=None, seed=None, overrides=None, out_dir: Path | None = None,
                 speed: float = 0.0, frame_interval_s: float | None = None, max_fps: float = 10.0,
                 step_s: float = 1.0, state=None, replication: int = 0):
        super().__init__()
        self.replication = replication  # of a run continued from ``state``: reseeded from (seed, k) when k >= 1
        self._state_request = threading.Event()
        self.build_s = None  # wall time to build the model (and restore the state)
        self.scenario = scenario
        self.variant = variant
        self.seed = seed
        self.overrides = overrides or {}
        self.out_dir = out_dir
        self.state = state  # a SavedState to continue from (branching), or None
        self.speed = speed  # simulated seconds per wall second; 0 = as fast as possible
        self.step_s = step_s  # simulated seconds per Step
        self.max_fps = max_fps
        self.recorder = FrameRecorder(min_interval_s=frame_interval_s or 1.0)
        self._frame_interval = frame_interval_s
        self._cancel = threading.Event()
        self._paused = threading.Event()
        self._step_request = threading.Event()
        self.run_driver = None
        self.model = None
        self.result = None
        self.cancelled = False
        self.done = threading.Event()
        self.holding = threading.Event()  # set while paused between two slices (the model does not move)

    # -- control (thread-safe, callable from any thread) ---------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def step_once(self) -> None:
        """Pause, then advance ``step_s`` simulated seconds."""
        self._paused.set()
        self._step_request.set()

    def request_state(self) -> None:
        """Ask for the model's complete state (``state_ready`` answers from the worker's thread, between
        two slices, so the state is never taken in the middle of a step)."""
        self._state_request.set()

    @classmethod
    def from_source(cls, source, **kw) -> "SimWorker":
        """A worker (re-)running a ``twin.runs.replay.RunSource``."""
        return cls(source.scenario, source.variant, source.seed, source.overrides, state=source.state,
                   replication=source.replication, **kw)

    def set_speed(self, sim_s_per_wall_s: float) -> None:
        self.speed = float(sim_s_per_wall_s)

    def set_step(self, sim_s: float) -> None:
        self.step_s = max(float(sim_s), 0.0)

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    # -- the loop ------------------------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # report, never crash the GUI
            self.log.emit(traceback.format_exc())
            self.failed.emit(f"{type(e).__name__}: {e}")
        finally:
            self.done.set()

    def _run(self) -> None:
        from twin.runs.runner import Run

        sc = self.scenario
        self.log.emit(f"building model {sc.model!r} (variant {self.variant or 'baseline'}, seed "
                      f"{sc.seed if self.seed is None else self.seed})")
        t_build = time.perf_counter()
        run = Run(sc, self.variant, self.seed, self.overrides, state=self.state, replication=self.replication,
                  stage_near=Path(self.out_dir).parent if self.out_dir is not None else None)
        self.build_s = time.perf_counter() - t_build
        self.run_driver = run
        model = self.model = run.model
        cls = type(model)
        if self._frame_interval is None:
            self.recorder.interval_s = default_frame_interval_s(model, sc.duration_s)
        self.started.emit(cls)
        feed = RunFrames(model, self.recorder)
        duration = model.duration_s
        slice_s = max(model.time_quantum_s, 1e-3)
        last_emit = 0.0
        wall0 = time.perf_counter()
        sim0 = model.time_s

        def emit_frame(force=False):
            nonlocal last_emit
            fr = feed.frame(force)
            now = time.perf_counter()
            if force or now - last_emit >= 1.0 / self.max_fps:
                last_emit = now
                self.frame.emit(fr)

        def emit_rows():
            rows = feed.new_rows()
            if rows:
                self.kpi_rows.emit(rows)

        run.advance(model.time_s)  # records the first row (and anything due now)
        emit_frame(force=True)
        emit_rows()
        while not run.done:
            if self._cancel.is_set():
                break
            if self._state_request.is_set():
                self._state_request.clear()
                t0 = time.perf_counter()
                data = run.state_bytes()
                self.state_ready.emit(data, model.time_s, time.perf_counter() - t0)
            if self._paused.is_set() and not self._step_request.is_set():
                self.holding.set()
                time.sleep(0.02)
                wall0, sim0 = time.perf_counter(), model.time_s
                continue
            self.holding.clear()
            single = self._step_request.is_set()
            self._step_request.clear()
            target = model.time_s + (max(self.step_s, model.time_quantum_s, 1e-6) if single else slice_s)
            if self.speed > 0 and not single:
                # Pace: do not run ahead of wall time × speed.
                allowed = sim0 + (time.perf_counter() - wall0) * self.speed
                if model.time_s >= allowed:
                    time.sleep(min(0.05, (model.time_s - allowed) / self.speed + 0.001))
                    continue
                target = min(target, max(allowed, model.time_s + model.time_quantum_s))
            t0 = time.perf_counter()
            run.advance(target)
            took = time.perf_counter() - t0
            # Adapt the slice so one slice takes ~0.1 s wall (cancel/pause answer fast).
            if took < 0.05:
                slice_s = min(slice_s * 2, max(self.recorder.interval_s, model.time_quantum_s))
            elif took > 0.15:
                slice_s = max(model.time_quantum_s, slice_s / 2)
            emit_frame(force=single)
            emit_rows()
            self.progress.emit(model.time_s, duration)
        emit_rows()
        if self._cancel.is_set():
            self.cancelled = True
            emit_frame(force=True)
            self.log.emit(f"cancelled at t = {model.time_s:.1f} s")
            self.finished.emit(None)
            return
        emit_frame(force=True)
        self.progress.emit(model.time_s, duration)
        self.result = run.result()
        if self.out_dir is not None:
            try:
                run.write(Path(self.out_dir), self.result)
            except Exception as e:  # noqa: BLE001 - the run is not "finished" if its outputs are not there
                self.log.emit(traceback.format_exc())
                self.failed.emit(f"the run reached its end, but its outputs could not be written to {self.out_dir} "
                                 f"({type(e).__name__}: {e}); nothing was saved. Free some disk space or choose "
                                 "another runs folder (Settings), and run it again.")
                return
            self.log.emit(f"outputs written to {self.out_dir}")
        self.log.emit(f"finished: {model.time_s:.0f} s simulated in {self.result.summary['wall_s']:.1f} s wall")
        self.finished.emit(self.result)


class SimController(QObject):
    """Owns the thread and the worker; the window talks to this."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.thread: QThread | None = None
        self.worker: SimWorker | None = None

    def start(self, worker: SimWorker) -> SimWorker:
        self.stop(wait_s=2.0)
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName("citytwin-sim")
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        # Direct: quit() is thread-safe, and the GUI thread may be blocked in wait() (cancel).
        worker.finished.connect(self.thread.quit, Qt.DirectConnection)
        worker.failed.connect(self.thread.quit, Qt.DirectConnection)
        self.thread.start()
        return worker

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.isRunning()

    def stop(self, wait_s: float = 1.0) -> bool:
        """Cancel and wait up to ``wait_s``; True when the thread ended."""
        if self.worker is not None:
            self.worker.cancel()
        if self.thread is not None:
            ok = self.thread.wait(int(wait_s * 1000))
            if ok:
                self.thread = None
            return ok
        return True
