"""File → Export video from the main window: what it films (the front side-by-side window's variants,
else the session's run), the options dialog, and the render in a separate process (app/video_worker.py)
behind a progress dialog whose Cancel leaves no file. The job reports to the session (``log``,
``error``, ``output_ready`` events), so the window and any other view of the session hear of it;
a video of the session's run starts at the moment the session shows when the user has moved back in
time (else where the run starts)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QProgressDialog

from twin.core.errors import UserError

from .panels import fmt_clock


def video_sources(win):
    """([RunSource], the side-by-side window filmed or None); (None, None) with nothing to film."""
    for cw in reversed(win.comparisons.windows):
        if cw.isVisible() and all(v.source is not None for v in cw.variants):
            return [v.source for v in cw.variants], cw
    src = win.session.run_source()
    return ([src], None) if src is not None else (None, None)


def session_start_s(session) -> float | None:
    """Where a video of the session's run starts: the moment shown when the user moved back in time
    (not following the run live), else None (the run's start)."""
    if session.following_live or session.time_s is None:
        return None
    return float(session.time_s)


def ask_export_video(win):
    from .dialogs import VideoDialog

    sources, cw = video_sources(win)
    if not sources:
        win.error("Run a scenario (or open a comparison) first: the video films a run.")
        return None
    what = " beside ".join(s.label for s in sources)
    start_s = session_start_s(win.session) if cw is None else None
    if start_s is not None:
        what += f", from t = {fmt_clock(start_s)} (the moment shown)"
    dlg = VideoDialog(what, win, difference_possible=len(sources) > 1)
    if dlg.exec() != dlg.DialogCode.Accepted:
        return None
    f, _ = QFileDialog.getSaveFileName(win, "Save video", str(Path(win.last_folder()) / "citytwin.mp4"),
                                       "MP4 video (*.mp4)")
    if not f:
        return None
    return export_video(win, Path(f), **dlg.options())


def export_video(win, out: Path, size=(1920, 1080), fps: float = 30.0, length_s: float = 30.0,
                 difference: bool = False, dark: bool = True, sources=None):
    """Start the render of ``out``; returns the job (``win.video_export``, its dialog ``win.video_dialog``)."""
    from twin.view.video_spec import check_video, time_span

    from .video_worker import VideoExport

    session = win.session
    start_s = None
    if sources is None:
        sources, cw = video_sources(win)
        if cw is None:
            start_s = session_start_s(session)
    else:
        cw = None
    try:
        spec = check_video(out, size, fps, length_s, None, start_s=start_s, dark=dark, difference=difference)
        starts = [float(s.state.time_s) if s.state is not None else 0.0 for s in sources]
        time_span(spec, starts, sources[0].scenario.duration_s)
    except UserError as e:
        session.error(str(e))
        return None
    view = cw.variants[0].pane.viewport if cw is not None else win.viewport
    camera = view.plotter.camera_position
    job = VideoExport(sources, out, spec, camera, win)
    dlg = QProgressDialog(f"Rendering {out.name}…", "Cancel", 0, 100, win)
    dlg.setWindowTitle("Export video")
    dlg.setMinimumDuration(0)
    dlg.setAutoClose(False)
    dlg.setAutoReset(False)
    dlg.canceled.connect(job.cancel)
    job.progress.connect(lambda i, n: (dlg.setMaximum(n), dlg.setValue(i)))
    job.finished.connect(lambda text: (dlg.close(), session.log(f"video written: {text}"), session.output_ready(out)))
    job.failed.connect(lambda m: (dlg.close(), session.error(f"video export failed: {m}")))
    job.cancelled.connect(lambda: (dlg.close(), session.log("video export cancelled; no file written")))
    win.video_export, win.video_dialog = job, dlg
    job.start()
    dlg.show()
    since = f", from t = {start_s:g} s, the moment shown" if start_s is not None else ""
    session.log(f"video export started: {out} ({spec.size[0]}×{spec.size[1]}, {fps:g} fps{since})")
    return job
