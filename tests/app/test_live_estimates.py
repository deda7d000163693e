"""The app following a live run with assimilation (File -> Follow a live run): beside the clock and
the forecast, the charts' caption gives each estimated parameter's latest estimate and its band, and
the Assimilation dock draws the estimates over time, the residuals and the skill panel."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint
import pandas as pd

from tests.factories import X0, Y0, make_tiny_city, write_scenario
from twin.core.city import City
from twin.core.sensors import Sensor, sensors_frame
from twin.live.feeds import open_feed
from twin.live.loop import LiveSettings, LiveTwin
from twin.live.synth import replay, synth
from twin.runs.uncertainty import parse_ranges
from twin.scenario.scenario import load_scenario


def test_the_window_shows_a_live_runs_estimates(window, qtbot, tmp_path):
    city = make_tiny_city(tmp_path)
    sensors = [Sensor("E2", "people_counter", X0 + 70, Y0 + 25, "walkers_east", "-", "buildings", "B00002", 3.0, 5.0)]
    sensors_frame(sensors, City.load(city).crs).to_file(city / "sensors.geojson", driver="GeoJSON")
    scenario = write_scenario(tmp_path, city, "[parameters]\nwalkers = 100\ndistance_m = 60\njitter_mps = 0.3\n",
                              duration_s=40, seed=3)
    sc = load_scenario(scenario)
    synth(sc, {"speed_mps": 1.3}, tmp_path / "record")
    drop = tmp_path / "drop"
    drop.mkdir()
    replay(tmp_path / "record", f"folder:{drop}", 0)
    settings = LiveSettings(forecast_interval_s=20.0, horizon_s=10.0, members=4, stop_when_silent_s=5.0, poll_s=0.01,
                            assimilate="pf", estimate=parse_ranges(sc, ["speed_mps=0.6..1.6"], "--estimate"))
    LiveTwin(sc, [open_feed(f"folder:{drop}")], tmp_path / "live", settings, log=None).run_until()
    assert window.open_scenario(scenario)
    assert window.follow_live(tmp_path / "live")
    qtbot.waitUntil(lambda: window.live_mode.updates > 0, timeout=60_000)
    label = window.live_mode.estimates
    snap = window.session.live_snapshot
    assert label.isVisible() and snap.estimates and label.text() == f"estimated: {snap.estimates_text()}"
    assert label.text().startswith("estimated: speed_mps ") and "p10-p90" in label.text()
    # the Assimilation dock: the filter's pictures, redrawn from the live folder's tables
    dock, panel = window.docks["assimilation"], window.live_mode.assimilation
    qtbot.waitUntil(lambda: panel.draws > 0, timeout=60_000)
    assert dock.isVisible() and panel.canvases["Estimates"] is not None
    params = pd.read_csv(tmp_path / "live" / "parameters.csv")
    mean_line = next(line for line in panel.canvases["Estimates"].figure.axes[0].get_lines()
                     if line.get_label() == "estimate (mean)")
    assert np.allclose(mean_line.get_ydata(), params["mean"])
    assert panel.kpis == ["kpi.walkers_done", "kpi.mean_time_s"]  # the scenario's model's headline KPIs
    assert "<b>speed_mps</b>" in panel.header.text()
    qtbot.wait(200)
    assert window.grab().save(os.environ.get("KEEP_WINDOW", str(tmp_path / "live_window.png")))  # the whole window, the dock under the 3D view
    shot = Path(os.environ.get("KEEP_SHOT", tmp_path / "live_estimates.png"))  # what it looks like (docs/screenshot_live_estimates.png)
    qtbot.wait(200)  # the layout fits the new caption on the next pass of the event loop
    assert window.indicators.grab().save(str(shot)) and shot.stat().st_size > 1000
    # the big numbers stay readable beside the keyed table and the charts: the first row of tiles whole
    tiles = list(window.indicators.tiles.values())
    top = min(t.geometry().y() for t in tiles)
    first_row = [t for t in tiles if t.geometry().y() == top]
    view = window.indicators.tile_scroll.viewport()
    assert view.height() >= max(t.geometry().bottom() for t in first_row) + 1, (view.height(), first_row[0].height())
    assert all(t.value.visibleRegion().boundingRect().height() == t.value.height() for t in first_row)
    chart = window.indicators.plots["walkers_done"]  # and a chart, whole, under the two-entry table
    charts = window.indicators.chart_scroll.viewport()
    top = chart.mapTo(charts, QPoint(0, 0)).y()
    assert chart.isVisible() and chart.height() >= 130 and 0 <= top and top + chart.height() <= charts.height()
