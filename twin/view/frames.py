"""Frames of a run for the time slider: a ``Frame`` owns a copy of a model's snapshot, a
``FrameRecorder`` keeps frames within a memory budget. Qt-free: the app's simulation thread, the
session model (``twin.session``) and the side-by-side view share them.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

import numpy as np

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
    z: np.ndarray | None = None  # height of each agent above the terrain (upper floors, connectors)

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


def default_frame_interval_s(model, duration_s: float) -> float:
    """Simulated seconds between recorded frames when the caller does not choose: the model's
    reporting interval, at most 1/600 of the run (never under its time quantum)."""
    return max(model.time_quantum_s, min(model.report_interval_s, duration_s / 600))


class RunFrames:
    """What a view takes from a running model after each advance: its frame (a copy, recorded in
    ``recorder``) and the KPI rows it has not had yet. One per run; the app's simulation thread and
    the session's headless driver both use it."""

    def __init__(self, model, recorder: FrameRecorder):
        self.model, self.recorder = model, recorder
        self._sent_rows = 0

    def frame(self, force: bool = False) -> Frame:
        fr = copy_snapshot(self.model.snapshot())
        fr.clock_start_s = self.model.clock_start_s
        self.recorder.add(fr, force=force)
        return fr

    def new_rows(self) -> list[dict]:
        model = self.model
        if model.rows_recorded <= self._sent_rows:
            return []
        rows = model.timeseries().iloc[self._sent_rows:].to_dict("records")
        self._sent_rows += len(rows)
        return rows
