"""Running a model off the GUI thread.

``SimWorker`` lives in a QThread: it drives a ``twin.runner.Run`` (the same driver as the CLI, so
the scenario's ``[outputs]`` and state saves are honoured and the numbers are the CLI's), advances
it in short slices (adapted so each takes ~0.1 s of wall time, so pause and cancel answer within a
fraction of a second), records frames in a ``FrameRecorder`` and reports by signals. Step and
speed are in simulated seconds. It never renders: the GUI thread draws the frames.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from twin.core.grid import GridField



@dataclass
class Frame:
    time_s: float
    positions: np.ndarray  # float64 in the city CRS; the view shifts to its origin before float32
    states: np.ndarray
    fields: dict[str, GridField] = field(default_factory=dict)
    kpis: dict = field(default_factory=dict)
    ids: np.ndarray | None = None
    features: dict = field(default_factory=dict)
    clock_start_s: float | None = None  # the model's time of day at t = 0, if it keeps one
    z: np.ndarray | None = None  # height of each agent above the terrain (upper floors, stairs)

    @property
    def nbytes(self) -> int:
        return (self.positions.nbytes + self.states.nbytes + (0 if self.z is None else self.z.nbytes)
                + sum(g.values.nbytes for g in self.fields.values()))


def copy_snapshot(snap) -> Frame:
    """A frame owning its arrays (the model keeps mutating its own)."""
    from twin.core.model_contract import FeatureFrame

    fields = {n: dataclasses.replace(g, values=np.array(g.values, np.float32, copy=True), meta=dict(g.meta))
              for n, g in (snap.fields or {}).items()}
    features = {layer: FeatureFrame(np.array(f.ids, copy=True), {k: np.array(v, copy=True) for k, v in f.values.items()})
                for layer, f in (snap.features or {}).items()}
    return Frame(float(snap.time_s), np.array(snap.positions, np.float64, copy=True),
                 np.array(snap.states, np.int8, copy=True), fields, dict(snap.kpis or {}),
                 np.array(snap.ids, np.int64, copy=True), features,
                 None if getattr(snap, "z", None) is None else np.array(snap.z, np.float64, copy=True))


class FrameRecorder:
    """Frames for the time slider, within a memory budget.

    Agents are kept at every recorded frame; fields (large) only every ``field_every``-th frame,
    other frames point to the latest stored field. When the budget is exceeded, every other frame
    is dropped and the recording interval doubles.
    """

    def __init__(self, budget_bytes: int = 768 * 2**20, min_interval_s: float = 1.0):
        self.frames: list[Frame] = []
        self.budget = budget_bytes
        self.interval_s = min_interval_s
        self._lock = threading.Lock()
        self._bytes = 0
        self._last_field_t = -np.inf

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> Frame:
        with self._lock:
            return self.frames[i]

    def times(self) -> np.ndarray:
        with self._lock:
            return np.array([f.time_s for f in self.frames])

    def add(self, frame: Frame, force: bool = False) -> bool:
        with self._lock:
            if self.frames and not force and frame.time_s < self.frames[-1].time_s + self.interval_s - 1e-9:
                return False
            if self.frames and frame.fields:
                # Share unchanged-size fields between frames if recorded recently (decimation).
                prev = self.frames[-1]
                big = sum(g.values.nbytes for g in frame.fields.values()) > 4 * 2**20
                if big and frame.time_s - self._last_field_t < 10 * self.interval_s and not force:
                    frame = dataclasses.replace(frame, fields=prev.fields)
                else:
                    self._last_field_t = frame.time_s
            self.frames.append(frame)
            self._bytes += frame.nbytes
            while self._bytes > self.budget and len(self.frames) > 4:
                keep = self.frames[::2]
                if keep[-1] is not self.frames[-1]:
                    keep.append(self.frames[-1])
                self.frames = keep
                self.interval_s *= 2
                self._bytes = sum(f.nbytes for f in self.frames)
            return True

    def index_at(self, t_s: float) -> int:
        t = self.times()
        if len(t) == 0:
            return -1
        return int(np.clip(np.searchsorted(t, t_s, side="right") - 1, 0, len(t) - 1))


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
        """A worker (re-)running a ``twin.replay.RunSource``."""
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
        from twin.runner import Run

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
            self.recorder.interval_s = max(model.time_quantum_s, min(model.report_interval_s, sc.duration_s / 600))
        self.started.emit(cls)
        sent_rows = 0
        duration = model.duration_s
        slice_s = max(model.time_quantum_s, 1e-3)
        last_emit = 0.0
        wall0 = time.perf_counter()
        sim0 = model.time_s

        def emit_frame(force=False):
            nonlocal last_emit
            fr = copy_snapshot(model.snapshot())
            fr.clock_start_s = model.clock_start_s
            self.recorder.add(fr, force=force)
            now = time.perf_counter()
            if force or now - last_emit >= 1.0 / self.max_fps:
                last_emit = now
                self.frame.emit(fr)

        def emit_rows():
            nonlocal sent_rows
            if len(model._times) > sent_rows:
                rows = model.timeseries().iloc[sent_rows:].to_dict("records")
                sent_rows += len(rows)
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
                time.sleep(0.02)
                wall0, sim0 = time.perf_counter(), model.time_s
                continue
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
                self.log.emit(f"outputs written to {self.out_dir}")
            except Exception as e:
                self.log.emit(f"could not write outputs to {self.out_dir}: {e}")
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
