"""The command room's documentation screenshots, on a 4K screen (run under Xvfb at 3840 × 2160):

    xvfb-run -a -s "-screen 0 3840x2160x24" .venv/bin/python -m app.command_room_screenshots \
        --scenario SCENARIO.toml --intervention "NAME OF AN INTERVENTION"

Runs the scenario, branches at ``--branch-at`` seconds into the intervention (default: the
scenario's first), lets both futures
run ``--ahead`` seconds, then writes docs/screenshot_command_room.png (the main window in command-room
mode: 3D wall, tiles, alerts and their log) and docs/screenshot_side_by_side.png (the two futures in
synchronised views with the difference layer and the KPI table). Prints the time to branch.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from .screenshots import ROOT, _wait, save_small


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", type=Path, required=True, help="the scenario to run")
    ap.add_argument("--intervention", help="the future to branch into (default: the scenario's first intervention)")
    ap.add_argument("--branch-at", type=float, default=240.0)
    ap.add_argument("--ahead", type=float, default=180.0)
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    if args.intervention is None:
        from twin.scenario.scenario import load_scenario

        ivs = load_scenario(args.scenario).interventions
        if not ivs:
            ap.error(f"{args.scenario}: the scenario has no intervention to branch into")
        args.intervention = ivs[0].name
    os.environ.setdefault("CITYTWIN_NO_DIALOGS", "1")
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtGui import QGuiApplication

    from .main import make_app
    from .main_window import MainWindow

    app = make_app()
    tmp = Path(tempfile.mkdtemp())
    os.environ.setdefault("CITYTWIN_RUNS_DIR", str(tmp / "runs"))
    w = MainWindow(QSettings(str(tmp / "s.ini"), QSettings.IniFormat))
    screen = QGuiApplication.primaryScreen().geometry()
    w.resize(screen.width(), screen.height())
    w.show()
    app.processEvents()
    assert w.open_scenario(args.scenario), f"cannot open {args.scenario}"
    worker = w.start_run()
    _wait(app, lambda: worker.model is not None and worker.model.time_s >= args.branch_at, 3600)
    # how responsive the window stays: the largest gap between ticks of a 50 ms timer in the GUI thread
    from PySide6.QtCore import QTimer

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    rec = w.branch(args.intervention, {}, speed=0.0)
    _wait(app, lambda: "copy_s" in rec, 600)
    timer.start()  # from here both futures run
    print(f"branch at {rec['time_s']:g} s: snapshot {rec['snapshot_s']:.3f} s ({rec['state_mb']:.1f} MB), "
          f"copy {rec['copy_s']:.2f} s, total {rec['branch_s']:.2f} s", flush=True)
    until = rec["time_s"] + args.ahead
    bw = rec["worker"]

    def hold() -> None:  # pause each future when it gets there (a thread: the window may be busy drawing)
        while not all(wk.paused for wk in (worker, bw)):
            for wk in (worker, bw):
                if wk.model.time_s >= until:
                    wk.pause()
            time.sleep(0.005)

    watcher = threading.Thread(target=hold, daemon=True)
    watcher.start()
    _wait(app, lambda: not watcher.is_alive(), 3600)
    timer.stop()
    gaps = sorted(b - a for a, b in zip(ticks, ticks[1:]))
    if gaps:
        print(f"GUI timer while both futures ran ({len(ticks)} ticks over {ticks[-1] - ticks[0]:.0f} s): median gap "
              f"{gaps[len(gaps) // 2] * 1000:.0f} ms, 99th percentile {gaps[int(len(gaps) * 0.99)] * 1000:.0f} ms, "
              f"largest {gaps[-1] * 1000:.0f} ms (50 ms asked)", flush=True)
    time.sleep(0.5)
    _wait(app, lambda: False, 1.0)
    cw = rec["window"]
    args.out.mkdir(parents=True, exist_ok=True)

    # 1. command room: full screen, dark, large; the wall shows the continued run with its alerts
    w.set_command_room(True)
    _wait(app, lambda: False, 1.0)
    w.go_live()
    w.viewport.camera("aoi", w.model_cls)
    w.viewport.plotter.camera.zoom(1.3)
    _wait(app, lambda: False, 1.0)
    w.viewport.render_now()
    app.processEvents()
    save_small(w, args.out / "screenshot_command_room.png")
    w.set_command_room(False)

    # 2. side by side: the two futures at the same moment, the difference layer on
    w.set_dark(True)  # the app's theme: the side-by-side window follows it
    cw.set_scale(2.0)
    cw.setGeometry(screen)
    cw.showFullScreen()
    _wait(app, lambda: False, 1.0)
    cw.resizeDocks([cw.kpi_dock], [int(screen.height() * 0.27)], Qt.Vertical)
    cw.set_time(min(worker.model.time_s, bw.model.time_s))
    cw.set_difference(True)
    cw.camera("aoi")
    cw.variants[0].pane.viewport.plotter.camera.zoom(1.5)  # the area of interest fills the views
    _wait(app, lambda: False, 1.5)
    for v in cw.variants:
        v.pane.viewport.render_now()
    app.processEvents()
    save_small(cw, args.out / "screenshot_side_by_side.png")
    for name in ("screenshot_command_room.png", "screenshot_side_by_side.png"):
        p = args.out / name
        print(f"{p}: {p.stat().st_size / 1024:.0f} KiB", flush=True)
    worker.cancel()
    bw.cancel()
    cw.close()
    w.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
