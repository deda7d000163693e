"""Video export from the app: ``twin.view.video.render_video`` in a separate process (its own OpenGL
context, off screen, never competing with the window's), with progress and cancel.

The process gets a plain description of each variant (scenario text and path, variant, seed,
changes, the state's bytes for a branch), not the live objects; it re-runs them exactly.
"""
from __future__ import annotations

import multiprocessing
import queue
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal


def describe_source(src) -> dict:
    from twin.core.params import plain_value

    sc = src.scenario
    state = getattr(src, "state_data", None)
    if state is None and src.state is not None and src.state.path is not None:
        state = Path(src.state.path).read_bytes()
    return {"label": src.label, "raw": sc.raw, "path": str(sc.path) if sc.path else None,
            "city": str(sc.city_path), "duration_s": sc.duration_s, "variant": src.variant, "seed": src.seed,
            "overrides": {k: plain_value(v) for k, v in (src.overrides or {}).items()}, "state": state,
            "replication": src.replication}


def source_from_description(d: dict):
    import dataclasses

    from twin.core.state_file import state_from_bytes
    from twin.runs.replay import RunSource
    from twin.scenario.scenario import scenario_from_dict

    sc = scenario_from_dict(d["raw"], Path(d["path"]) if d["path"] else None)
    sc.city_path = Path(d["city"])
    if sc.duration_s != d["duration_s"]:
        sc = dataclasses.replace(sc, duration_s=d["duration_s"])
    state = state_from_bytes(d["state"]) if d["state"] is not None else None
    return RunSource(d["label"], sc, d["variant"], d["seed"], d["overrides"], state, d["replication"])


def _export_process(descriptions, out, spec, camera, progress_q, stop_event) -> None:
    import os

    os.environ.pop("DISPLAY", None)  # off screen through EGL: no window, no X connection
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from twin.view.video import VideoCancelled, describe, render_video

    try:
        sources = [source_from_description(d) for d in descriptions]
        result = render_video(sources, out, spec, progress=lambda i, n: progress_q.put(("progress", i, n)),
                              should_stop=stop_event.is_set, camera=camera)
        progress_q.put(("done", describe(result), result.frames, result.wall_s))
    except VideoCancelled:
        progress_q.put(("cancelled",))
    except Exception as e:  # noqa: BLE001 - sent to the window, which shows it
        import traceback

        progress_q.put(("failed", f"{type(e).__name__}: {e}", traceback.format_exc()))


class VideoExport(QObject):
    """One export in a spawned process; ``progress(i, n)``, then ``finished(text)``, ``failed(msg)`` or
    ``cancelled()``."""

    progress = Signal(int, int)
    finished = Signal(str)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, sources, out, spec, camera=None, parent=None):
        super().__init__(parent)
        ctx = multiprocessing.get_context("spawn")
        self.out = Path(out)
        self.queue = ctx.Queue()
        self.stop_event = ctx.Event()
        self.process = ctx.Process(target=_export_process, name="citytwin-video",
                                   args=([describe_source(s) for s in sources], str(out), spec,
                                         [tuple(map(float, v)) for v in camera] if camera is not None else None,
                                         self.queue, self.stop_event), daemon=True)
        self.timer = QTimer(self)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self._poll)
        self.done = False

    def start(self) -> None:
        self.process.start()
        self.timer.start()

    def cancel(self) -> None:
        self.stop_event.set()
        QTimer.singleShot(15_000, self._kill)  # a frame of 4K takes a few seconds at most

    def _kill(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
            for p in self.out.parent.glob(f".{self.out.name}.*.partial"):
                p.unlink(missing_ok=True)
            self._end()
            self.cancelled.emit()

    def _poll(self) -> None:
        while True:
            try:
                msg = self.queue.get_nowait()
            except queue.Empty:
                break
            kind = msg[0]
            if kind == "progress":
                self.progress.emit(msg[1], msg[2])
            elif kind == "done":
                self._end()
                self.finished.emit(msg[1])
            elif kind == "cancelled":
                self._end()
                self.cancelled.emit()
            elif kind == "failed":
                self._end()
                self.failed.emit(msg[1])
        if not self.done and not self.process.is_alive() and self.queue.empty():
            self._end()
            self.failed.emit(f"the video process ended unexpectedly (exit code {self.process.exitcode})")

    def _end(self) -> None:
        if not self.done:
            self.done = True
            self.timer.stop()
            self.process.join(5)

    def wait(self, timeout_s: float) -> bool:
        self.process.join(timeout_s)
        return not self.process.is_alive()
