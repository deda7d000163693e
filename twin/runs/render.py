"""`citytwin render`: a run, or variants side by side, as an MP4. The runs are found or re-run here
(:mod:`twin.runs.replay`); the frames are drawn by :mod:`twin.view.video`, the same renderer the app's
video export uses, so the CLI never reaches into ``app/``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

from tqdm import tqdm

from twin.runs.replay import sources_from_folder, sources_from_scenario
from twin.scenario import preflight
from twin.view.video import VideoCancelled, VideoResult, render_video  # pyvista and VTK load only when a video is drawn
from twin.view.video_spec import check_video, time_span


def render_command(target, out, intervention=None, replication: int = 0, size="1920x1080", fps: float = 30.0,
                   length_s=None, speed=None, start_s=None, end_s=None, difference=False, light=False,
                   quiet=False) -> VideoResult:
    """`citytwin render`: check everything, then render with a progress bar."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")  # no display: EGL, quietly

    spec = check_video(out, size, fps, length_s, speed, start_s, end_s, dark=not light, difference=difference)
    target = Path(target)
    if target.is_dir():
        sources = sources_from_folder(target, intervention, replication)
    else:
        sources = sources_from_scenario(preflight.check_scenario(target), intervention)
    sc0 = sources[0].scenario
    starts = [float(s.state.time_s) if s.state is not None else 0.0 for s in sources]
    start, end = time_span(spec, starts, sc0.duration_s)
    n = spec.n_frames(start, end)
    bar = tqdm(total=n, unit="frame", desc=f"video {spec.size[0]}x{spec.size[1]}", disable=quiet, dynamic_ncols=True)
    interrupted = threading.Event()
    try:
        with _ctrl_c_sets(interrupted):
            result = render_video(sources, out, spec, progress=lambda i, total: bar.update(i - bar.n),
                                  should_stop=interrupted.is_set)
    except VideoCancelled:
        raise KeyboardInterrupt from None  # the CLI says "interrupted" and exits 130
    finally:
        bar.close()
    return result


@contextlib.contextmanager
def _ctrl_c_sets(event: threading.Event):
    """Ctrl-C sets ``event`` (the render loop stops before its next frame, and the partial file is
    removed) instead of raising KeyboardInterrupt wherever the main thread happens to be: inside VTK,
    a Python callback that VTK calls would swallow the exception and the video would run to its end.
    A second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield  # not ours to handle (a worker thread; a background job that ignores Ctrl-C)
        return

    def handler(signum, frame):
        if event.is_set():
            raise KeyboardInterrupt
        event.set()

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
