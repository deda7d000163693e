"""Take the documentation screenshots of the full window (run under Xvfb at 1920 × 1080):

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m app.screenshots --scenario TOML [--name NAME]

Writes docs/screenshot_city.png (the scenario's city on open, or ``--city``) and
docs/screenshot_NAME.png (the scenario running; NAME defaults to the scenario file's name).
``--help`` for the rest: the simulated time, the window size and a camera on a POI (the command
behind each screenshot in docs/ is written beside it in the docs, and in the README).
``--live DIR --name live`` instead shows the window following the live run in DIR (a
``citytwin live --out``; docs/live.md, "The app in live mode"). ``--exploration DIR --name
exploration [--x NAME --y NAME]`` shows the window of a finished ``citytwin explore --out DIR``
(File → Open exploration results…; docs/decisions.md), the futures on the uncertainties x and y.
``--edit-layer LAYER --points "x,y;x,y"`` instead shows Edit → City with a feature drawn there on a
copy of the city (docs/screenshot_city_editor.png); ``--draw-param NAME --points ...`` the scenario
form drawing that parameter on the map (docs/screenshot_drawn_intervention.png) (docs/city_editor.md).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _wait(app, cond, timeout_s):
    t0 = time.time()
    while not cond() and time.time() - t0 < timeout_s:
        app.processEvents()
        time.sleep(0.02)


def save_small(widget, path: Path, colours: int = 256) -> None:
    """Grab a widget and write it as a palette PNG (small, still sharp for UI)."""
    from PIL import Image

    img = widget.grab().toImage()
    tmp = Path(tempfile.mkdtemp()) / "grab.png"
    img.save(str(tmp))
    im = Image.open(tmp).convert("RGB")
    im.save(path, optimize=True)
    if path.stat().st_size > 900 * 1024:
        # Octree keeps small saturated areas (legend swatches) that median cut merges away.
        im.quantize(colors=colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", type=Path, help="the scenario to run")
    ap.add_argument("--live", type=Path, help="instead: follow this live run's folder (citytwin live --out)")
    ap.add_argument("--exploration", type=Path, help="instead: the window of this explore folder (citytwin explore --out)")
    ap.add_argument("--x", help="with --exploration: the uncertainty on the x axis (default: the first)")
    ap.add_argument("--y", help="with --exploration: the uncertainty on the y axis (default: the second)")
    ap.add_argument("--charts", default="", help="with --live: scroll the charts to this KPI's (comma: the first found)")
    ap.add_argument("--city", type=Path, help="the city of the first screenshot (default: the scenario's)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--run-s", type=float, default=420.0, help="simulated seconds before the run's screenshot")
    ap.add_argument("--name", help="the run's screenshot is docs/screenshot_NAME.png (default: the scenario's file name)")
    ap.add_argument("--no-city", action="store_true", help="skip the screenshot of the city on open")
    ap.add_argument("--size", default="1920x1080", help="window size WxH")
    ap.add_argument("--fly-to", metavar="POI_ID", help="look at this POI instead of the area of interest")
    ap.add_argument("--distance", type=float, default=250.0, help="camera distance for --fly-to, m")
    ap.add_argument("--edit-layer", help="instead: the city editor drawing a feature of this layer at --points")
    ap.add_argument("--draw-param", help="instead: the scenario form drawing this parameter at --points")
    ap.add_argument("--points", default="", help='map points for --edit-layer / --draw-param: "x,y;x,y;..."')
    ap.add_argument("--attrs", default="", help='with --edit-layer: the form\'s attributes, "column=value;..."')
    ap.add_argument("--branch", action="store_true", help="with --draw-param: drawn in Run → Branch's dialog after "
                    "--run-s simulated seconds")
    args = ap.parse_args()
    if args.live is not None:
        return live_screenshot(args)
    if args.exploration is not None:
        return exploration_screenshot(args)
    if args.edit_layer or args.draw_param:
        return drawing_screenshot(args)
    if args.scenario is None or not args.scenario.is_file():
        ap.error(f"{args.scenario}: no such scenario file")
    args.name = args.name or args.scenario.stem
    if args.city is None:
        from twin.scenario.scenario import load_scenario

        args.city = load_scenario(args.scenario).city_path
    app, w, tmp = _window(args)
    args.out.mkdir(parents=True, exist_ok=True)

    shots = []
    if not args.no_city:
        w.open_city(args.city)
        _wait(app, lambda: w.scenario is not None, 20)
        w.viewport.render_now()
        app.processEvents()
        save_small(w, args.out / "screenshot_city.png")
        shots.append("screenshot_city.png")

    scenario = args.scenario
    assert w.open_scenario(scenario), f"cannot open {scenario}"
    w.viewport.camera("aoi", w.model_cls)
    if args.fly_to:
        poi = w.city.pois[w.city.pois["id"] == args.fly_to]
        assert len(poi), f"no POI {args.fly_to} in the city"
        w.viewport.fly_to_world(poi.geometry.x.iloc[0], poi.geometry.y.iloc[0], args.distance)
    worker = w.start_run()
    _wait(app, lambda: worker.model is not None and worker.model.time_s >= args.run_s or worker.done.is_set(), 900)
    worker.pause()
    time.sleep(0.3)
    # Show the frame at --run-s (a fast model may have run on before the pause) and the charts.
    _wait(app, lambda: False, 0.5)
    w.go_live()
    n = len(worker.recorder)
    if n:
        times = worker.recorder.times()
        i = int(np.searchsorted(times, args.run_s - 1e-6)) if times[-1] >= args.run_s else n - 1
        w.session.seek(min(i, n - 1))
    w.viewport.render_now()
    app.processEvents()
    save_small(w, args.out / f"screenshot_{args.name}.png")
    shots.append(f"screenshot_{args.name}.png")
    w.cancel_run(wait_s=3)
    w.close()
    for name in shots:
        p = args.out / name
        print(f"{p}: {p.stat().st_size / 1024:.0f} KiB")
    return 0


def _save_and_close(window, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_small(window, path)
    window.close()
    print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")
    return 0


def _window(args):
    width, height = (int(v) for v in args.size.lower().split("x"))
    os.environ.setdefault("CITYTWIN_NO_DIALOGS", "1")
    from PySide6.QtCore import QSettings

    from .main import make_app
    from .main_window import MainWindow

    app = make_app()
    tmp = Path(tempfile.mkdtemp())
    os.environ.setdefault("CITYTWIN_RUNS_DIR", str(tmp / "runs"))
    w = MainWindow(QSettings(str(tmp / "s.ini"), QSettings.IniFormat))
    w.resize(width, height)
    w.show()
    app.processEvents()
    return app, w, tmp


def drawing_screenshot(args) -> int:
    """Edit → City with a feature drawn (on a copy of the city), or a parameter drawn on the map."""
    import shutil

    points = [tuple(float(v) for v in p.split(",")) for p in args.points.split(";") if p.strip()]
    if not points:
        raise SystemExit("--points: give the map points as x,y;x,y;...")
    app, w, tmp = _window(args)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.edit_layer:
        from twin.scenario.scenario import load_scenario

        city = args.city or load_scenario(args.scenario).city_path
        shutil.copytree(city, tmp / "city")  # the shipped city stays as it is
        assert w.open_city(tmp / "city")
        _wait(app, lambda: w.scenario is not None, 60)
        assert w.set_editing_city(True)
        ed = w.city_editor
        ed.set_layer(args.edit_layer)
        ed.start_draw()
        for kv in filter(None, args.attrs.split(";")):
            k, _, v = kv.partition("=")
            ed.fields[k.strip()].setCurrentText(v.strip())
        for x, y in points:
            ed.click(x, y)
        assert ed.finish(), ed.status.text()
        ed.save()
        w.viewport.fly_to_world(*points[0], args.distance)  # after the save: the reopened city resets the camera
        ed.set_layer(args.edit_layer)
        import shapely

        centre = shapely.MultiPoint(points).centroid
        ed.select_at(centre.x, centre.y)  # selected: its vertices as handles
        n = ed.undo_stack.count()
        x, y = points[-1]
        ed.handles.drag(len(points) - 1, x - 2.0, y + 2.0)  # one handle dragged: a reshape on the undo list
        _wait(app, lambda: ed.undo_stack.count() > n, 10)
        path = args.out / "screenshot_city_editor.png"
    elif args.branch:
        return _branch_drawing(args, app, w, points)
    else:
        assert w.open_scenario(args.scenario), f"cannot open {args.scenario}"
        tool, form = w.param_drawing, w.params.param_form
        button = form.map_buttons[args.draw_param]["draw"]
        button.click()
        for x, y in points:
            tool.click(x, y)
        button.click()  # finished: its WKT is in the form
        w.viewport.fly_to_world(*points[len(points) // 2], args.distance)
        button.click()  # and drawn again, under way, to show it on the map
        for x, y in points:
            tool.click(x, y)
        form.widgets[args.draw_param].setCursorPosition(0)
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QScrollArea

        w.resizeDocks([w.docks["params"]], [int(w.width() * 0.3)], Qt.Horizontal)
        _wait(app, lambda: False, 0.3)
        w.params.findChild(QScrollArea).ensureWidgetVisible(form.widgets[args.draw_param], 50, 200)
        path = args.out / "screenshot_drawn_intervention.png"
    _wait(app, lambda: False, 0.5)
    w.viewport.render_now()
    app.processEvents()
    return _save_and_close(w, path)


def _branch_drawing(args, app, w, points) -> int:
    """Run → Branch from now with --draw-param drawn in the dialog's own form: the window with the
    dialog over its right-hand panels (docs/screenshot_branch_drawn.png)."""
    from PySide6.QtGui import QPainter
    from PySide6.QtWidgets import QScrollArea

    assert w.open_scenario(args.scenario), f"cannot open {args.scenario}"
    w.controls.speed.setCurrentIndex(w.controls.speed.findData(60.0))
    run = w.start_run()
    _wait(app, lambda: run.model is not None and run.model.time_s >= args.run_s, 600)
    dlg = w.branching.ask()
    dlg.variant.setCurrentText("baseline")
    dlg.move(w.geometry().right() - dlg.width() - 20, w.geometry().top() + 60)
    form, tool = dlg.params, dlg.map_tool
    button = form.map_buttons[args.draw_param]["draw"]
    button.click()
    for x, y in points:
        tool.click(x, y)
    button.click()  # finished: its WKT in the dialog's form
    w.viewport.fly_to_world(*points[len(points) // 2], args.distance)
    button.click()  # and drawn again, under way, to show it on the map
    for x, y in points:
        tool.click(x, y)
    form.widgets[args.draw_param].setCursorPosition(0)
    dlg.findChild(QScrollArea).ensureWidgetVisible(form.widgets[args.draw_param], 50, 200)
    _wait(app, lambda: False, 0.5)
    w.viewport.render_now()
    app.processEvents()
    shot = w.grab()
    painter = QPainter(shot)  # the dialog is a window of its own: painted where it stands over the window
    painter.drawPixmap(dlg.geometry().topLeft() - w.geometry().topLeft(), dlg.grab())
    painter.end()
    path = args.out / "screenshot_branch_drawn.png"
    tmp = Path(tempfile.mkdtemp()) / "grab.png"
    shot.save(str(tmp))
    from PIL import Image

    Image.open(tmp).convert("RGB").save(path, optimize=True)
    dlg.reject()
    w.cancel_run(wait_s=5)
    w.close()
    print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")
    return 0


def live_screenshot(args) -> int:
    """The window following a live run's folder: charts with the now-line and the forecast fan, the
    sensors in 3D, the forecast alerts."""
    from PySide6.QtCore import Qt

    width, height = (int(v) for v in args.size.lower().split("x"))
    app, w, tmp = _window(args)
    assert w.follow_live(args.live), f"cannot follow {args.live}"
    _wait(app, lambda: w.live_mode.updates > 0 and w.live_mode.frames > 0, 300)  # and the live model drawn
    w.viewport.camera("aoi", w.model_cls)
    if args.fly_to:
        poi = w.city.pois[w.city.pois["id"] == args.fly_to]
        w.viewport.fly_to_world(poi.geometry.x.iloc[0], poi.geometry.y.iloc[0], args.distance)
    w.docks["alerts"].raise_()
    # the charts (now-line, fan) need the height: the indicators take most of the right column
    w.resizeDocks([w.docks["indicators"], w.docks["alerts"]], [int(height * 0.62), int(height * 0.3)], Qt.Vertical)
    w.resizeDocks([w.docks["indicators"], w.docks["layers"]], [int(width * 0.3), int(width * 0.15)], Qt.Horizontal)
    from PySide6.QtWidgets import QScrollArea

    charts = w.indicators.findChild(QScrollArea)
    first = next((w.indicators.plots[k] for k in args.charts.split(",") if k in w.indicators.plots), None)
    if charts is not None and first is not None:  # the charts named first, past the keyed tables
        _wait(app, lambda: False, 0.3)
        charts.verticalScrollBar().setValue(first.y())
    _wait(app, lambda: False, 1.0)
    w.alerts_panel.log.scrollToBottom()  # the latest forecast alerts
    w.viewport.render_now()
    app.processEvents()
    return _save_and_close(w, args.out / f"screenshot_{args.name or 'live'}.png")


def exploration_screenshot(args) -> int:
    """The window of a finished exploration: the robustness table, where each plan fails, and the
    futures coloured by the best plan."""
    width, height = (int(v) for v in args.size.lower().split("x"))
    from .exploration_view import open_exploration
    from .main import make_app

    app = make_app()
    win = open_exploration(None, args.exploration)
    win.resize(width, height)
    for combo, name in ((win.x_combo, args.x), (win.y_combo, args.y)):
        if name:
            assert combo.findText(name) >= 0, f"{name}: not an uncertainty of {args.exploration} ({win.ex.uncertainties})"
            combo.setCurrentText(name)
    _wait(app, lambda: False, 0.5)
    win.canvas.draw()
    app.processEvents()
    return _save_and_close(win, args.out / f"screenshot_{args.name or 'exploration'}.png")


if __name__ == "__main__":
    raise SystemExit(main())
