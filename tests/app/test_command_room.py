"""Command room under Xvfb: branch from now, side by side, alerts, full screen, shortcuts, video."""
import json
from pathlib import Path

import numpy as np
import pytest

from tests.factories import write_scenario
from twin.cli import main

TOY = ('[parameters]\nwalkers = 60\ndistance_m = 80.0\n\n[[interventions]]\nname = "fast"\n'
       "[interventions.parameters]\nspeed_mps = 3.0\n\n"
       "[alerts.many_done]\namber = 15\nred = 45\n")


@pytest.fixture(scope="module")
def toy_scenario(tiny_city, tmp_path_factory):
    return write_scenario(tmp_path_factory.mktemp("cr"), tiny_city, TOY, duration_s=120, seed=5)


# Condition waits only; their timeouts are ceilings for a loaded 2-core machine (a passing test
# never waits for them), so they are generous.
def wait_done(qtbot, worker, timeout=300_000):
    qtbot.waitUntil(lambda: worker.done.is_set(), timeout=timeout)


def test_a_branch_in_the_app_gives_the_kpis_of_citytwin_branch(window, toy_scenario, tmp_path, qtbot):
    w = window
    assert w.open_scenario(toy_scenario)
    w.params.duration.setValue(120)
    w.controls.speed.setCurrentIndex(w.controls.speed.findData(5.0))  # slow enough to branch mid-way
    try:
        worker = w.start_run()
        qtbot.waitUntil(lambda: worker.model is not None and worker.model.time_s >= 20, timeout=180_000)
        rec = w.branch("fast", {}, speed=0.0)
        qtbot.waitUntil(lambda: "window" in rec, timeout=120_000)
        t = rec["time_s"]
        assert 20 <= t < 120 and rec["snapshot_s"] < 5
        cw = rec["window"]
        assert [v.label for v in cw.variants] == ["baseline (continued)", "branch: fast"]
        # the branch window follows the main window's session: a move back in time there moves it too
        w.session.seek(1)
        assert not cw.following_live and cw.current_time() == pytest.approx(w.session.time_s, abs=0.1)
        w.session.go_live()
        assert cw.following_live
        branch_worker = rec["worker"]
        wait_done(qtbot, worker)
        wait_done(qtbot, branch_worker)
        qtbot.waitUntil(lambda: "copy_s" in rec, timeout=60_000)
        app_base, app_fast = worker.result.summary["kpis"], branch_worker.result.summary["kpis"]
        assert app_fast["mean_time_s"] < app_base["mean_time_s"]
        # the same branch from the command line, at the same time with the same seed
        out = tmp_path / "cli"
        assert main(["branch", str(toy_scenario), "--at", f"{t:g}", "--intervention", "fast", "--out", str(out),
                     "--quiet"]) == 0
        for folder, app in (("baseline", app_base), ("fast", app_fast)):
            cli = json.loads((out / "runs" / folder / "rep-000" / "summary.json").read_text())["kpis"]
            assert cli == json.loads(json.dumps(app)), folder
        # both futures share the past: the branch's view shows the parent's frames before t
        early = cw.variants[1].frame_at(t / 2)
        assert early is not None and early.time_s <= t
        log = w.log_panel.toPlainText()
        assert "state taken in" in log and "copy built and restored" in log
        # another run in the main window: the branch window says so and stops following
        w.start_run()
        assert "another run was started" in cw.session_note.text()
        w.cancel_run(wait_s=5)
        w.session.seek(0)
        assert cw.follower.detached == "another run was started" and cw.current_time() != pytest.approx(0.0)
        cw.close()
    finally:
        w.controls.speed.setCurrentIndex(0)


def test_the_comparison_view_opens_two_variants_with_synchronised_cameras(window, toy_scenario, tmp_path, qtbot):
    out = tmp_path / "b"
    assert main(["branch", str(toy_scenario), "--at", "30", "--intervention", "fast", "--replications", "3",
                 "--workers", "1", "--out", str(out), "--quiet"]) == 0
    cw = window.open_comparison(out)
    assert cw is not None and [v.label for v in cw.variants] == ["baseline", "fast"]
    for v in cw.variants:  # replays of the finished futures, started from the branch's state
        wait_done(qtbot, v.worker)
        assert v.worker.result.summary["kpis"] == v.source.summary["kpis"]
    qtbot.waitUntil(lambda: all(v.frame is not None for v in cw.variants), timeout=120_000)  # both drawn
    cams = cw.cameras()
    assert cams[0] is cams[1]  # one camera drives all views
    cw.camera("top")
    a, b = (v.pane.viewport.plotter.camera for v in cw.variants)
    assert a.position == b.position and a.focal_point == b.focal_point
    cams[0].azimuth = 30.0  # as a drag in one view would
    assert cw.variants[1].pane.viewport.plotter.camera.position == cams[0].position
    # one slider: both views show the same time
    cw.set_time(60.0)  # redraws at once (the slider's signal)
    ta, tb = (v.frame.time_s for v in cw.variants)
    assert ta == tb == pytest.approx(60.0, abs=1.0)
    assert not np.allclose(cw.variants[0].frame.positions, cw.variants[1].frame.positions)
    # the KPI table: the value now, the delta, and the replications' confidence intervals
    fast_now = float(cw.kpi_cell("walkers_done", "fast\nnow").replace(",", ""))
    assert fast_now == cw.variants[1].frame.kpis["walkers_done"]
    ci = cw.kpi_cell("mean_time_s", "Δ fast\nat the end (95% CI)")
    assert ci.startswith("-") and "(" in ci
    # the difference layer: the intervention's view draws (fast − baseline) with a diverging map
    cw.set_difference(True)  # redraws at once
    r1 = cw.variants[1].pane.viewport.renderer
    assert r1.field.name.startswith("Δ") and r1.field_style.kind == "difference"
    vals = r1.field.values[np.isfinite(r1.field.values)]
    assert vals.min() < 0 < vals.max()
    assert cw.variants[0].pane.viewport.renderer.field_style.kind == "heat"
    img = cw.variants[1].pane.viewport.plotter.screenshot(None, return_img=True)
    assert img.std() > 5
    cw.close()


def test_alert_tiles_change_state_when_a_threshold_is_crossed(window, toy_scenario, qtbot):
    w = window
    assert w.open_scenario(toy_scenario)
    assert [r.name for r in w.scenario.alerts] == ["many_done", "crowded_east"]
    assert w.scenario.alerts[0].amber == 15  # the scenario's [alerts] edit of the model's default
    tile = w.indicators.tiles["walkers_done"]
    w.params.duration.setValue(120)
    levels = []
    w.indicators.tiles["walkers_done"].set_level(0)
    worker = w.start_run()
    qtbot.waitUntil(lambda: (levels.append(tile.level) or worker.done.is_set()), timeout=300_000)
    # The last frames reach the window through its event loop after the worker is done, and the
    # window draws a frame only after the previous draw's cost has passed (up to 2 s on a loaded
    # machine): wait for the window to have shown the run's end, not for a fixed time.
    qtbot.waitUntil(lambda: not w.controls.cancel_btn.isEnabled(), timeout=60_000)
    qtbot.waitUntil(lambda: tile.level == 2, timeout=60_000)
    assert 0 in levels  # ok at first, red at the end (60 walkers done ≥ 45)
    rows = w.alerts_panel.log_rows()
    many = [r for r in rows if r[2] == "many done"]
    assert [r[1] for r in many][:2] == ["amber", "red"]
    times = [r[0] for r in many]
    assert times == sorted(times)
    assert w.alerts_panel.tiles["many_done"].level == 2
    # the place is marked in 3D: a beacon at the peak of the declared field
    assert "alerts" in w.viewport.renderer.actors
    # scrubbing back shows the levels then, without logging again
    w.slider.setValue(0)  # shown at once (the slider's signal)
    assert tile.level == 0 and len(w.alerts_panel.log_rows()) == len(rows)
    w.go_live()


def test_camera_tour_visits_the_hot_spots(window, qtbot):
    w = window  # after the previous test: "many done" is red, marked at the field's peak
    w.go_live()
    spots = w.hot_spots()
    assert spots and "many done" in spots[0][2]
    cam = w.viewport.plotter.camera
    w.viewport.camera("top")
    before = cam.focal_point
    assert "many done" in w.next_hot_spot()
    s = w.viewport.renderer.scene
    fx, fy = cam.focal_point[0] + s.origin[0], cam.focal_point[1] + s.origin[1]
    assert (fx, fy) == pytest.approx(spots[0][:2], abs=0.5) and cam.focal_point != before
    w.set_tour(True)
    assert w.tour.running and w.act_tour.isChecked()
    w.set_tour(False)
    assert not w.tour.running


def test_command_room_goes_full_screen_dark_and_large(window, qtbot):
    w = window
    w.set_command_room(True)
    qtbot.waitUntil(lambda: w.isFullScreen(), timeout=5000)
    screen = w.screen().geometry()
    assert (w.width(), w.height()) == (screen.width(), screen.height())
    assert w.dark and w.viewport.renderer.dark
    assert w.indicators.scale >= 1.5 and w.docks["alerts"].isVisible()
    assert w.indicators.tiles["walkers_done"].value.font().pointSizeF() >= 30
    # split across monitors: the 3D wall here, the dashboard (indicators and alerts) full screen too
    w.set_command_room(True, split=True)
    qtbot.waitUntil(lambda: w.dashboard is not None and w.dashboard.isFullScreen(), timeout=5000)
    assert w.isFullScreen() and w.indicators.isVisibleTo(w.dashboard) and w.alerts_panel.isVisibleTo(w.dashboard)
    assert not w.docks["indicators"].isVisible()
    w.set_command_room(False)
    qtbot.waitUntil(lambda: not w.isFullScreen(), timeout=5000)
    assert w.dashboard is None and w.docks["indicators"].widget() is w.indicators
    assert not w.dark and w.indicators.scale == w.ui_scale


def test_ui_scale_and_dark_theme_settings(window, qapp):
    w = window
    w.set_ui_scale(2.5)
    assert w.settings.value("ui/scale") in (2.5, "2.5") and w.indicators.scale == 2.5
    assert w.viewport.renderer.font_scale == 2.5
    w.step_ui_scale(-1)
    assert w.ui_scale == 2.0
    w.set_ui_scale(1.0)
    w.set_dark(True)
    qapp.processEvents()
    assert w.viewport.renderer.dark and w.palette().window().color().lightness() < 80
    w.set_dark(False)
    qapp.processEvents()
    assert w.palette().window().color().lightness() > 150


def test_every_operator_action_has_a_shortcut_listed_in_help(window):
    from app.dialogs import shortcut_rows

    rows = shortcut_rows(window)
    listed = {does: keys for _, does, keys in rows}
    for does in ("Run", "Pause / resume", "Step", "Cancel", "Branch from now", "Command-room mode (full screen)",
                 "Command room across two monitors (3D wall + dashboard)", "Camera tour of hot spots", "Next hot spot",
                 "Dark theme", "Larger", "Smaller", "Export video", "Export screenshot", "Keyboard shortcuts",
                 "Live (latest frame)", "Open a comparison side by side", "Top (plan)", "Model area of interest"):
        assert listed.get(does), f"{does!r} has no shortcut in Help"
    keys = [k for _, _, k in rows]
    assert len(keys) == len(set(keys)), "two actions share a shortcut"
    dlg = window.show_shortcuts()
    assert dlg.table.rowCount() == len(rows)


def test_video_export_from_the_app_and_cancel(window, toy_scenario, tmp_path, qtbot):
    import imageio_ffmpeg

    from twin.runs.replay import sources_from_scenario
    from twin.scenario.scenario import load_scenario

    sources = sources_from_scenario(load_scenario(toy_scenario), "fast")
    out = tmp_path / "app.mp4"
    job = window.export_video(out, size=(320, 180), fps=5, length_s=2, sources=sources)
    seen = []
    job.progress.connect(lambda i, n: seen.append((i, n)))
    done = []
    job.finished.connect(done.append)
    qtbot.waitUntil(lambda: bool(done) or job.done, timeout=120_000)
    assert done, window.log_panel.toPlainText()[-1500:]
    assert seen and seen[-1] == (10, 10)
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 10
    assert window.session.last_output == out  # the job reports to the session: output_ready
    # cancel: the dialog's Cancel stops the process and no file is left
    out2 = tmp_path / "cancelled.mp4"
    job2 = window.export_video(out2, size=(320, 180), fps=10, length_s=60, sources=sources)
    qtbot.waitUntil(lambda: bool(list(tmp_path.glob(".cancelled.mp4.*"))), timeout=120_000)
    cancelled = []
    job2.cancelled.connect(lambda: cancelled.append(True))
    from PySide6.QtWidgets import QPushButton

    window.video_dialog.findChild(QPushButton).click()  # the progress dialog's Cancel button
    qtbot.waitUntil(lambda: bool(cancelled), timeout=30_000)
    assert not out2.exists() and not list(tmp_path.glob(".cancelled.mp4.*"))
    assert Path(out).exists()


def test_a_video_of_the_sessions_run_starts_at_the_moment_shown(window, toy_scenario, qtbot):
    from app.video_export import session_start_s, video_sources

    window.comparisons.close_all()
    assert window.open_scenario(toy_scenario)
    window.params.duration.setValue(60)
    window.start_run()
    qtbot.waitUntil(lambda: window.session.status == "finished", timeout=120_000)
    sources, cw = video_sources(window)
    assert cw is None and [(s.label, s.variant or "baseline", s.seed) for s in sources] == [("baseline", "baseline", 5)]
    assert sources[0].scenario.duration_s == 60
    assert session_start_s(window.session) is None  # following the run: the video starts where the run does
    window.session.seek(2)
    assert session_start_s(window.session) == pytest.approx(window.session.frames[2].time_s) and \
        session_start_s(window.session) > 0


def test_the_branch_dialog_offers_the_interventions_and_returns_the_changes(window, toy_scenario):
    from app.dialogs import BranchDialog
    from twin.scenario.scenario import load_scenario

    dlg = BranchDialog(load_scenario(toy_scenario), 42.0, window)
    assert [dlg.variant.itemText(i) for i in range(dlg.variant.count())] == ["baseline", "fast"]
    assert dlg.variant.currentText() == "fast" and dlg.params.widgets["speed_mps"].value() == pytest.approx(3.0)
    dlg.params.widgets["speed_sd_mps"].setValue(0.1)
    dlg.replications.setValue(4)
    variant, changes, reps, speed = dlg.choice()
    assert (variant, changes, reps, speed) == ("fast", {"speed_sd_mps": pytest.approx(0.1)}, 4, 0.0)
    dlg.variant.setCurrentText("baseline")  # the form follows the intervention
    assert dlg.params.widgets["speed_mps"].value() == pytest.approx(1.0)
    dlg.close()


def test_a_branch_with_replications_runs_them_in_the_background_and_shows_intervals(window, toy_scenario, tmp_path,
                                                                                       qtbot):
    w = window
    assert w.open_scenario(toy_scenario)
    w.params.duration.setValue(120)
    w.controls.speed.setCurrentIndex(w.controls.speed.findData(10.0))
    try:
        worker = w.start_run()
        qtbot.waitUntil(lambda: worker.model is not None and worker.model.time_s >= 10, timeout=180_000)
        rec = w.branch("fast", {}, replications=2, speed=0.0, out_dir=tmp_path / "reps")
        qtbot.waitUntil(lambda: "result" in rec, timeout=180_000)
        assert (tmp_path / "reps" / "comparison.csv").is_file() and (tmp_path / "reps" / "report.html").is_file()
        cw = rec["window"]
        cell = cw.kpi_cell("mean_time_s", "Δ branch: fast\nat the end (95% CI)")
        assert cell.startswith("-") and "(" in cell
        wait_done(qtbot, worker)
        wait_done(qtbot, rec["worker"])
        cw.close()
    finally:
        w.controls.speed.setCurrentIndex(0)
