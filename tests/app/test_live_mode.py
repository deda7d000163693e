"""The app in live mode, for real: the window starts a `citytwin live` process on a scenario, a
`citytwin feed replay` process plays a recorded truth into its CSV-folder feed, and the window
follows the run's folder: the "now" line and the forecast fan on the charts, the sensors in 3D
coloured by their latest reading, the forecast alerts in the alert log."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.twin.test_live_follow import live_world
from twin.core.formats import fmt_number


@pytest.mark.slow  # two real processes (the live twin and the replay) besides the window: 5 s idle, 14 s under load
def test_the_window_follows_a_live_run_fed_by_a_replay(window, qtbot, tmp_path):
    scenario, record = live_world(tmp_path)
    drop, out = tmp_path / "drop", tmp_path / "live"
    drop.mkdir()
    assert window.open_scenario(scenario)
    nows = []
    window.session.events.live_changed.connect(lambda e: nows.append(e.snapshot.now_s))
    assert window.start_live([f"folder:{drop}"], out, members=3, forecast_interval_s=20, horizon_s=30, until=120,
                             stop_when_silent_s=60)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    replay = subprocess.Popen([sys.executable, "-m", "twin.cli", "feed", "replay", str(record), "--speed", "60",
                               "--to", f"folder:{drop}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        qtbot.waitUntil(lambda: window.session.live_process is None, timeout=180_000)  # the twin reached --until
    finally:
        replay.wait(60)
    assert replay.returncode == 0, replay.stderr.read().decode()[-2000:]
    s = window.session  # the last saved state restored and drawn
    qtbot.waitUntil(lambda: window.live_mode.frames > 0 and s._live_restore is None and not s._live_dirty,
                    timeout=60_000)
    assert window.live_mode.frame.time_s == 120.0
    assert len(set(nows)) >= 2 and nows[-1] == 120.0  # it followed the run as it went, to its end

    # the charts: the now-line at the twin's clock, the latest forecast's fan and members beyond it
    items = window.indicators.forecast_items["walkers_done"]
    assert items["now"].value() == 120.0
    q = pd.read_parquet(out / "forecasts.parquet")
    last = q[(q.issued_at == q.issued_at.max()) & (q.name == "kpi.walkers_done")].sort_values("lead_s")
    t, p90 = items["hi"].getData()
    np.testing.assert_array_equal(t, last.issued_at + last.lead_s)
    np.testing.assert_array_equal(p90, last.p90)
    assert len([m for m in items["members"] if m.getData()[0] is not None and len(m.getData()[0])]) == 3
    # the sensors in 3D: one column each, coloured by the latest reading among its kind, labelled
    r = window.viewport.renderer
    assert "sensors" in r.actors and r.is_layer_visible("sensors")
    snap = window.session.live_snapshot
    shades = r.actors["sensors"][0].GetMapper().GetInput().cell_data["shade"]
    cells = len(shades) // len(snap.sensors)
    np.testing.assert_allclose(shades[::cells], [m.shade for m in snap.sensors])
    obs = pd.read_parquet(out / "observations.parquet")
    e1 = obs[(obs.sensor == "E1") & (obs.fate == "used")].sort_values("time_s").value.iloc[-1]
    marker = next(m for m in snap.sensors if m.sensor.id == "E1")
    assert marker.value == e1 and marker.label.startswith(f"E1: {fmt_number(e1)}"), marker.label
    # the live model as the twin saved it: its walkers in 3D
    assert "agents" in r.actors and window.session.frame is None  # drawn, not a run of the session's
    assert window.viewport.renderer.agents.n == len(window.live_mode.frame.positions) > 0
    # the forecast alerts, in the alert log and the run log
    alerts = pd.read_csv(out / "alerts.csv")
    assert len(alerts)
    rows = window.alerts_panel.log_rows()
    ahead = [r for r in range(len(rows)) if rows[r][1].endswith("ahead")]
    assert [rows[r][2].split(" in about ")[0] for r in ahead] == [m.split(" reaches ")[0] for m in alerts.message]
    assert [window.alerts_panel.log.item(r, 2).toolTip() for r in ahead] == alerts.message.tolist()
    assert "forecast alert at" in window.log_panel.toPlainText()
    # the latest forecast's alerts where they will happen (none at 100 s here: its walkers are past them)
    ahead = [a for a in snap.alerts if a.get("x") is not None and float(a["issued_at"]) == snap.issued_at]
    assert ("alerts_ahead" in r.actors) == bool(ahead)
    # the levels now (from the latest forecast's start): the rule's tile and the KPI's tile
    level = window.session.alerts.rule_level("many_done")[0]
    assert level > 0 and window.alerts_panel.tiles["many_done"].level == level
    assert window.indicators.tiles["walkers_done"].level == level


def test_forecast_alerts_ahead_are_rings_in_their_levels_colour(window, tiny_city):
    """What live mode draws for the latest forecast's alerts that have a place (a gate, a building)."""
    from tests.factories import X0, Y0
    from twin.view.render import ALERT_COLOURS

    assert window.open_city(tiny_city)
    r = window.viewport.renderer
    r.set_ahead_markers([X0 + 25, X0 + 70], [Y0 + 25, Y0 + 20], [1, 2], ["B1: amber in about 65 s", "B2: red in about 3 min"])
    rings, labels = r.actors["alerts_ahead"]
    levels = rings.mapper.dataset.cell_data["level"]
    assert sorted(set(levels.tolist())) == [1, 2] and r.is_layer_visible("alerts_ahead")
    lut = rings.mapper.GetLookupTable()
    assert [tuple(round(c * 255) for c in lut.GetTableValue(k)[:3]) for k in (1, 2)] == [
        tuple(int(ALERT_COLOURS[k][i:i + 2], 16) for i in (1, 3, 5)) for k in (1, 2)]
    r.set_ahead_markers([], [], [], [])
    assert "alerts_ahead" not in r.actors
