"""File → Open assimilation results…: a `citytwin assimilate` folder in a window: the estimate over
time with its band, each sensor's residuals before and after the updates, the skill panel."""
import json

import numpy as np
import pandas as pd
import pytest

from tests.factories import make_toy_twin_experiment
from twin.cli import main

TRUTH = 1.3


class Parent:
    """A window's stand-in that keeps the messages it is given."""

    def __init__(self):
        self.seen = []

    def error(self, text):
        self.seen.append(text)


@pytest.fixture(scope="module")
def assimilated(tmp_path_factory):
    world = make_toy_twin_experiment(tmp_path_factory.mktemp("assim_view"), TRUTH)
    out = world["dir"] / "out"
    assert main(["assimilate", str(world["scenario"]), "--record", str(world["record"]), "--out", str(out),
                 "--members", "8", "--estimate", "speed_mps=0.6..1.6", "--forecast-interval-s", "20",
                 "--horizon-s", "20", "--method", "pf", "--no-report"]) == 0
    return out


def test_the_window_draws_the_estimates_residuals_and_skill(qapp, qtbot, assimilated, tmp_path):
    from app.assimilation_view import TABS, open_assimilation

    win = open_assimilation(None, assimilated)
    qtbot.addWidget(win)
    panel = win.panel
    assert [panel.tabs.tabText(i) for i in range(panel.tabs.count())] == list(TABS)
    params = pd.read_csv(assimilated / "parameters.csv")
    last = params.iloc[-1]
    header = panel.header.text()
    assert "pf, 8 members" in header and "<b>speed_mps</b>" in header and "truth 1.3" in header
    assert f"at t = {last.time_s:g} s" in header
    # the estimate over time: the mean as drawn is parameters.csv's, the truth dashed
    ax = panel.canvases["Estimates"].figure.axes[0]
    mean_line = next(line for line in ax.get_lines() if line.get_label() == "estimate (mean)")
    assert np.allclose(mean_line.get_ydata(), params["mean"]) and ax.get_ylabel() == "speed_mps"
    assert any(line.get_label() == "truth" and line.get_ydata()[0] == TRUTH for line in ax.get_lines())
    # a panel per sensor that had readings used, each with its points before and after
    res = pd.read_csv(assimilated / "residuals.csv")
    drawn = [a for a in panel.canvases["Residuals"].figure.axes if a.get_visible()]
    assert sorted(a.get_title() for a in drawn) == sorted(res.loc[res.fate == "used", "sensor"].unique())
    e2 = next(a for a in drawn if a.get_title() == "E2")
    used = res[(res.sensor == "E2") & (res.fate == "used")]
    before = next(line for line in e2.get_lines() if line.get_label() == "before")
    assert np.allclose(before.get_ydata(), used.observed - used.before)
    # the skill panel: the toy's headline KPI, open loop and assimilated, and the band's coverage
    skill_axes = [a for a in panel.canvases["Skill"].figure.axes if a.get_visible()]
    summary = json.loads((assimilated / "summary.json").read_text())
    assert panel.kpis == summary["headline_kpis"] == ["kpi.walkers_done", "kpi.mean_time_s"]
    assert [a.get_title() for a in skill_axes][:2] == ["walkers_done", "mean_time_s"]
    assert skill_axes[2].get_title().startswith("p10-p90 coverage")
    drawn_cov = next(line for line in skill_axes[2].get_lines() if line.get_label() == "assimilated")
    want = summary["coverage"]["assimilated"]  # the band's coverage as the summary has it, by lead
    assert np.allclose(drawn_cov.get_ydata(), [want[k]["coverage"] for k in sorted(want, key=float)])
    assert {line.get_label() for line in skill_axes[0].get_lines()} == {"open loop", "assimilated"}
    for i, name in enumerate(TABS):  # each tab drawn on screen, not blank
        panel.tabs.setCurrentIndex(i)
        qapp.processEvents()
        panel.canvases[name].draw()
        img = win.grab().toImage()
        assert len({img.pixel(x, img.height() // 2) for x in range(0, img.width(), 5)}) > 4, name
        assert win.grab().save(str(tmp_path / f"assimilation_{name.lower()}.png"))


def test_a_folder_that_is_no_assimilation_is_refused(qapp, tmp_path):
    from app.assimilation_view import open_assimilation

    parent = Parent()
    assert open_assimilation(parent, tmp_path) is None
    assert str(tmp_path) in parent.seen[0] and "parameters.csv" in parent.seen[0] and "citytwin assimilate" in parent.seen[0]


def test_a_table_of_another_form_is_named(qapp, tmp_path, assimilated):
    from app.assimilation_view import open_assimilation

    pd.DataFrame({"time_s": [0.0], "parameter": ["x"]}).to_csv(tmp_path / "parameters.csv", index=False)
    parent = Parent()
    assert open_assimilation(parent, tmp_path) is None
    assert "parameters.csv" in parent.seen[0] and "mean" in parent.seen[0] and "run it again" in parent.seen[0]
