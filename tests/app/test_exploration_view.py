"""File → Open exploration results…: the robustness table and the futures coloured by the best plan."""
import numpy as np
import pandas as pd
import pytest

from tests.factories import write_scenario

PLANS = """[parameters]
walkers = 20
distance_m = 40
[[interventions]]
name = "fast"
[interventions.parameters]
speed_mps = 1.5
"""


@pytest.fixture(scope="module")
def explored(tmp_path_factory, tiny_city):
    from twin.runs.explore import explore

    tmp = tmp_path_factory.mktemp("explored")
    sc = write_scenario(tmp, tiny_city, PLANS, duration_s=80, name="plans")
    explore(sc, tmp / "ex", ["speed_mps=0.5..1.5", "distance_m=30..60", "speed_sd_mps=0..0.3"], 8,
            ["mean_time_s<=50"], workers=1, progress=False)
    return tmp / "ex"


def test_the_window_shows_the_table_and_the_futures_by_best_plan(qapp, qtbot, explored, tmp_path):
    from app.exploration_view import open_exploration

    win = open_exploration(None, explored)
    qtbot.addWidget(win)
    rob = pd.read_csv(explored / "robustness.csv")
    assert win.table.rowCount() == len(rob) and win.table.item(0, 0).text() == rob["intervention"][0]
    fut = pd.read_parquet(explored / "futures.parquet").drop_duplicates("future")
    assert win.drawn == fut["best_intervention"].value_counts().to_dict()
    text = win.findings.toPlainText()
    assert ("fails mean_time_s <= 50" in text or "meets mean_time_s <= 50" in text), text  # "<=" shown, not eaten
    win.y_combo.setCurrentText("speed_sd_mps")  # another pair of uncertainties: redrawn on those
    ax = win.figure.axes[0]
    assert ax.get_ylabel() == "speed_sd_mps" and ax.get_xlabel() == "speed_mps"
    points = np.vstack([c.get_offsets() for c in ax.collections])
    assert sorted(points[:, 1]) == pytest.approx(sorted(fut["speed_sd_mps"]))
    qapp.processEvents()
    img = win.grab().toImage()
    assert img.width() > 600 and len({img.pixel(x, 400) for x in range(0, img.width(), 7)}) > 5  # drawn, not blank


def test_a_folder_that_is_no_exploration_is_refused(qapp, tmp_path):
    from app.exploration_view import open_exploration
    from twin.core.errors import UserError

    seen = []

    class Parent:
        def error(self, text):
            seen.append(text)

    assert open_exploration(Parent(), tmp_path) is None
    assert "not a finished exploration" in seen[0] and "explore.json" in seen[0]
    with pytest.raises(UserError):
        open_exploration(None, tmp_path)


def test_the_file_menu_has_the_action(window):
    names = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "Open e&xploration results…" in names
