"""The desktop app under Xvfb: window, layers, picking, a run in the worker, the time slider, cancel."""
import json
from pathlib import Path

import numpy as np
import pytest

from tests.factories import write_scenario


@pytest.fixture(scope="module")
def scenario_file(tiny_city, tmp_path_factory):
    folder = tmp_path_factory.mktemp("scen")
    body = ('[parameters]\nwalkers = 300\nspeed_mps = 2.0\n\n[[interventions]]\nname = "slow"\n'
            "[interventions.parameters]\nspeed_mps = 0.5\n\n[outputs]\ntrajectory_interval_s = 10\n")
    return write_scenario(folder, tiny_city, body, duration_s=60, seed=3)


@pytest.fixture(scope="module")
def opened(window, scenario_file):
    assert window.open_scenario(scenario_file)
    window.viewport.render_now()
    return window


def wait_run(qtbot, w, timeout=240_000):
    qtbot.waitUntil(lambda: w.worker is not None and w.worker.done.is_set(), timeout=timeout)
    qtbot.waitUntil(lambda: not w.controller.running, timeout=30_000)
    # the worker's last signals (rows, finished) reach the window through its event loop
    qtbot.waitUntil(lambda: not w.controls.cancel_btn.isEnabled(), timeout=30_000)
    # the view draws the latest frame after a pause as long as its last draw took (up to 2 s)
    qtbot.waitUntil(lambda: not w._latest_frame_due, timeout=30_000)


def test_window_opens_and_shows_the_city(opened):
    from twin.core.city import City

    w = opened
    r = w.viewport.renderer
    assert w.isVisible()
    for layer in ("terrain", "buildings", "roads", "pois", "labels"):
        assert layer in r.actors, layer
    city = City.load(w.scenario.city_path)
    ids = np.unique(r.scene.buildings.cell_data["building_id"])
    assert len(ids) == len(city.buildings) == 3
    assert "Tiny" in w.windowTitle()
    assert set(w.layers.boxes) >= {"terrain", "buildings", "roads"}
    # The 3D view really rendered something (not a blank background).
    img = w.viewport.plotter.screenshot(None, return_img=True)
    assert img.std() > 5


def test_parameter_form_is_generated_from_the_declared_params(opened):
    from PySide6.QtWidgets import QDoubleSpinBox, QLineEdit, QSpinBox

    p = opened.params
    assert isinstance(p.widgets["walkers"], QSpinBox)
    assert p.widgets["walkers"].value() == 300
    speed = p.widgets["speed_mps"]
    assert isinstance(speed, QDoubleSpinBox) and speed.suffix() == " m/s"
    assert (speed.minimum(), speed.maximum()) == (0.1, 5.0)
    assert isinstance(p.widgets["closed_gates"], QLineEdit)
    assert [p.variant_combo.itemText(i) for i in range(p.variant_combo.count())] == ["baseline", "slow"]
    p.variant_combo.setCurrentText("slow")
    assert speed.value() == pytest.approx(0.5)
    p.variant_combo.setCurrentText("baseline")
    assert speed.value() == pytest.approx(2.0)
    p.widgets["closed_gates"].setText("N1, N2")
    assert p.values()["closed_gates"] == ["N1", "N2"]
    p.widgets["closed_gates"].setText("")
    # Indicators: one tile per headline KPI, one chart per per-step KPI.
    assert set(opened.indicators.tiles) == {"walkers_done", "mean_time_s"}
    assert set(opened.indicators.plots) == {"walkers_done", "mean_time_s", "done_by_half"}


def test_layer_toggles_hide_and_show_actors(opened):
    w = opened
    r = w.viewport.renderer
    box = w.layers.boxes["buildings"]
    box.setChecked(False)
    assert not any(a.GetVisibility() for a in r.actors["buildings"])
    box.setChecked(True)
    assert all(a.GetVisibility() for a in r.actors["buildings"])
    w.layers.boxes["roads"].setChecked(False)
    assert not r.is_layer_visible("roads")
    w.layers.boxes["roads"].setChecked(True)
    assert r.is_layer_visible("roads")


def test_picking_a_building_on_screen_reports_its_attributes(opened, qtbot):
    from tests.factories import X0, Y0

    w = opened
    w.viewport.camera("top")
    with qtbot.waitSignal(w.viewport.picked, timeout=2000) as sig:
        # The tower's roof centre: footprint (X0+60..80, Y0+10..30), 30 m tall.
        x, y = w.viewport.renderer.world_to_display(X0 + 70, Y0 + 20, z_above=30.0)
        info = w.viewport.pick_display(x, y)
    assert sig.args[0] is info
    assert info["layer"] == "buildings"
    assert info["name"] == "Tower" and info["height_m"] == 30.0 and info["use"] == "office"
    assert w.pick_panel.info is info
    assert w.pick_panel.table.rowCount() >= 4


def test_picking_by_world_point(opened):
    from tests.factories import X0, Y0

    r = opened.viewport.renderer
    assert r.pick_world(X0 + 25, Y0 + 25)["name"] == "Town hall"
    poi = r.pick_world(X0 + 71, Y0 + 35)
    assert poi["layer"] == "pois" and poi["name"] == "Tower view"
    ground = r.pick_world(X0 + 190, Y0 + 90)
    assert ground["layer"] == "terrain" and 4.5 < ground["elevation_m"] < 6.5


def test_camera_presets_and_fly_to(opened):
    w = opened
    cam = w.viewport.plotter.camera
    w.viewport.camera("top")
    assert abs(cam.GetViewPlaneNormal()[2]) > 0.99
    w.viewport.camera("oblique")
    assert abs(cam.GetViewPlaneNormal()[2]) < 0.95
    w.fly_to_poi(0)
    fx, fy, _ = cam.GetFocalPoint()
    s = w.viewport.renderer.scene
    assert (fx + s.origin[0], fy + s.origin[1]) == pytest.approx((500_070, 3_400_035), abs=0.5)
    w.viewport.camera("aoi", w.model_cls)
    w.viewport.camera("reset")


def test_a_run_from_the_gui_fills_charts_and_the_slider_scrubs_back(opened, qtbot):
    w = opened
    w.params.duration.setValue(40)
    worker = w.start_run()
    assert worker is not None
    wait_run(qtbot, w)
    assert worker.result is not None
    assert not w.controls.cancel_btn.isEnabled()
    xs, ys = w.indicators.curves["walkers_done"].getData()
    assert len(xs) >= 8 and ys[-1] == worker.result.summary["kpis"]["walkers_done"]
    assert w.indicators.tiles["walkers_done"].value.text() != "–"
    n = len(worker.recorder)
    assert n >= 10 and w.slider.maximum() == n - 1
    # Scrub back to an early frame: the agents move back to the recorded positions.
    w.slider.setValue(2)
    frame = worker.recorder[2]
    shown = w.viewport.renderer.agents.positions_world()
    assert frame.positions.dtype == np.float64  # frames keep the model's float64 positions
    # drawn in float32 only after the shift to the scene's origin: millimetres, not 0.25 m
    np.testing.assert_allclose(shown, frame.positions, atol=0.002)
    assert not np.allclose(frame.positions, worker.recorder[n - 1].positions)
    w.slider.setValue(n - 1)
    np.testing.assert_allclose(w.viewport.renderer.agents.positions_world(),
                               worker.recorder[n - 1].positions, atol=0.002)
    # The field layer is drawn and can be picked.
    assert "field" in w.viewport.renderer.actors
    # Outputs were written to the run folder.
    summary = json.loads((Path(worker.out_dir) / "summary.json").read_text())
    assert summary["model"] == "toy" and summary["seed"] == 3
    assert w.act_open_output.isEnabled()


def test_export_run_outputs_and_screenshot(opened, tmp_path):
    w = opened
    assert w.worker is not None and w.worker.result is not None
    out = w.export_run(tmp_path / "run")
    assert (out / "summary.json").is_file() and (out / "timeseries.csv").is_file()
    # the app honours the scenario's [outputs] and gives the CLI's numbers
    import pandas as pd

    from twin.runs.runner import run_one

    for folder in (out, Path(w.worker.out_dir)):
        traj = pd.read_parquet(folder / "trajectories.parquet")
        assert sorted(traj["time_s"].unique())[:3] == [0.0, 10.0, 20.0]
    cli = run_one(w.worker.scenario, w.worker.variant, w.worker.seed, w.worker.overrides)
    assert cli.summary["kpis"] == w.worker.result.summary["kpis"]
    assert {"done_by_half.west", "done_by_half.east"} <= set(w.indicators.curves)  # a line per key
    from PIL import Image

    path = w.export_screenshot(tmp_path / "big.png", 3840, 2160)
    im = Image.open(path)
    assert im.size == (3840, 2160)
    assert np.asarray(im).std() > 5


def test_cancel_stops_the_worker_within_a_second(opened, qtbot):
    w = opened
    w.params.widgets["walkers"].setValue(200_000)
    w.params.duration.setValue(100_000)
    try:
        worker = w.start_run()
        qtbot.waitUntil(lambda: len(worker.recorder) >= 3, timeout=180_000)
        assert w.cancel_run(wait_s=5.0)  # the worker checks for a cancel between ~0.1 s slices
        assert worker.cancelled and worker.done.is_set()
        assert not w.controller.running
    finally:
        w.params.widgets["walkers"].setValue(300)
        w.params.duration.setValue(60)


def test_pause_single_step_and_resume(opened, qtbot):
    w = opened
    w.params.duration.setValue(600)
    w.controls.speed.setCurrentIndex(w.controls.speed.findData(60.0))
    try:
        worker = w.start_run()
        qtbot.waitUntil(lambda: len(worker.recorder) >= 2, timeout=180_000)
        w.controls.pause_btn.setChecked(True)
        # the slice under way when Pause was pressed ends first: wait until the worker holds
        qtbot.waitUntil(worker.holding.is_set, timeout=30_000)
        t_paused = worker.model.time_s
        qtbot.wait(300)  # and it stays put (a check that something does not happen needs some time)
        assert worker.model.time_s == t_paused
        w.controls.step_s.setValue(3.0)  # Step advances simulated seconds, not model steps
        w.step_run()
        qtbot.waitUntil(lambda: worker.model.time_s > t_paused, timeout=30_000)
        assert worker.model.time_s == pytest.approx(t_paused + 3.0)
        assert worker.model.time == worker.model.time_s  # Mesa's clock, in seconds
        w.controls.pause_btn.setChecked(False)
        qtbot.waitUntil(lambda: worker.model.time_s > t_paused + 5, timeout=60_000)
        assert w.cancel_run(wait_s=1.0)
    finally:
        w.controls.speed.setCurrentIndex(0)
        w.params.duration.setValue(60)


def test_command_room_mode_and_big_fonts(opened, qtbot):
    w = opened
    w.set_command_room(True)
    qtbot.waitUntil(lambda: w.docks["indicators"].isVisible() and not w.docks["layers"].isVisible(), timeout=5000)
    assert not w.docks["log"].isVisible()
    assert w.indicators.scale > 1.0
    w.set_command_room(False)
    qtbot.waitUntil(lambda: w.docks["layers"].isVisible(), timeout=5000)
    assert w.indicators.scale == 1.0


def test_open_bad_input_reports_instead_of_crashing(window, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[scenario\n")
    assert not window.open_scenario(bad)
    assert not window.open_city(tmp_path / "nowhere")
    assert "error" in window.log_panel.toPlainText()


def test_city_only_offers_the_models_and_remembers_recent_files(window, tiny_city, qtbot):
    assert window.open_path(tiny_city)
    qtbot.waitUntil(lambda: window.scenario is not None, timeout=10_000)
    assert window.scenario.model in window.params.model_combo.currentText()
    names = [window.params.model_combo.itemText(i) for i in range(window.params.model_combo.count())]
    assert "toy" in names
    assert str(Path(tiny_city).resolve()) == window.recent_files()[0]
    assert window.recent_menu.actions()[0].text() == str(Path(tiny_city).resolve())


STATION = Path(__file__).resolve().parents[2] / "scenarios" / "station_evening_peak.toml"


@pytest.mark.slow
def test_station_model_runs_from_the_gui(window, qtbot):
    from tests.conftest import DEMO_CITY

    if not (DEMO_CITY / "city.toml").exists():
        pytest.skip("the demo city is not generated")
    w = window
    assert w.open_scenario(STATION)
    assert w.viewport.renderer.scene.views["gates"].n_cells > 0
    w.params.duration.setValue(12)
    worker = w.start_run()
    wait_run(qtbot, w, timeout=450_000)
    assert worker.result is not None, w.log_panel.toPlainText()[-2000:]
    xs, ys = w.indicators.curves["agents_total"].getData()
    assert len(xs) >= 2 and ys[-1] > 0
    r = w.viewport.renderer
    assert r.agents is not None and r.agents.n > 0
    assert "field" in r.actors
    n = len(worker.recorder)
    w.slider.setValue(1)
    np.testing.assert_allclose(r.agents.positions_world(),
                               worker.recorder[1].positions[np.isfinite(worker.recorder[1].positions).all(axis=1)],
                               atol=0.002)
    assert n >= 3
