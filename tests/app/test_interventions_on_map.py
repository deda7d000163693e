"""Interventions drawn on the map (app/param_drawing.py): the scenario form's "Pick on map" and
"Draw on map" buttons write ids and WKT into the parameters; "Add as intervention" writes them into
the scenario file; the comparison and a branch run the drawn intervention."""
import tomllib

import numpy as np
import pandas as pd
import pytest
import shapely

from tests.agents.flood import towns
from tests.factories import write_scenario
from twin.core.params import Numbers

X0, Y0 = towns.X0, towns.Y0


@pytest.fixture
def valley_scenario(tmp_path):
    city = towns.valley_town(tmp_path)
    # a short heavy shower: enough water in four minutes for a drawn line to hold some back
    return write_scenario(tmp_path, city, '[parameters]\nrain = "uniform"\nrain_mm_per_h = 200.0\n', model="flood",
                          name="valley", duration_s=240, replications=1)


def _params(window, declared):
    """The form's parameters with map buttons, by what they declare (no model's names)."""
    specs = window.params.specs
    return [n for n, p in specs.items() if declared(p) and n in window.params.param_form.map_buttons]


def test_pick_and_draw_into_the_scenario_file(window, valley_scenario, tmp_path, qtbot):
    w = window
    assert w.open_scenario(valley_scenario)
    form = w.params.param_form
    tool = w.param_drawing
    # every parameter that names features or may be drawn has its button, and only those
    for name, buttons in form.map_buttons.items():
        p = form.specs[name]
        assert ("pick" in buttons) == bool(p.refers_to) and ("draw" in buttons) == bool(p.draws)
    picked = next(n for n in _params(w, lambda p: p.refers_to and not p.draws)
                  if w.session.city.has(form.specs[n].refers_to.split(":")[0]))
    line = _params(w, lambda p: p.kind is list and "LineString" in p.draws)[0]
    points = _params(w, lambda p: p.kind is Numbers and p.draws == ("Point",))[0]

    # pick: a click on a feature adds its id once; a click far from any adds nothing
    form.map_buttons[picked]["pick"].click()
    assert w.viewport.tool is tool and form.map_buttons[picked]["pick"].text() == "Done picking"
    tool.click(X0 + 100, Y0 + 61)
    tool.click(X0 + 101, Y0 + 61)
    tool.click(X0 + 5, Y0 + 5)
    form.map_buttons[picked]["pick"].click()
    assert w.viewport.tool is None and form.widgets[picked].text() == "R1"

    # draw a line: its WKT goes into the text, as one item of the list
    form.map_buttons[line]["draw"].click()
    tool.click(X0 + 30, Y0 + 40)
    tool.click(X0 + 30, Y0 + 100)
    form.map_buttons[line]["draw"].click()
    wkt = "LINESTRING (500030 3400040, 500030 3400100)"
    assert w.params.values()[line] == [wkt]

    # draw points: each click an x, y pair
    form.map_buttons[points]["draw"].click()
    tool.click(X0 + 100, Y0 + 50)
    form.map_buttons[points]["draw"].click()
    assert w.params.values()[points] == [X0 + 100, Y0 + 50]

    # into the scenario file, as text; the file keeps its lines
    before = valley_scenario.read_text()
    assert tool.add_intervention("drawn on the map") == "drawn on the map"
    text = valley_scenario.read_text()
    assert text.startswith(before.rstrip("\n")) and wkt in text
    ivs = tomllib.loads(text)["interventions"]
    assert ivs[-1] == {"name": "drawn on the map",
                       "parameters": {picked: ["R1"], line: [wkt], points: [X0 + 100, Y0 + 50]}}
    assert "drawn on the map" in w.session.scenario.variants()
    assert w.params.variant_combo.currentText() == "drawn on the map"
    assert tool.add_intervention("drawn on the map") is None  # a name twice is refused, the file unchanged
    assert valley_scenario.read_text() == text


def _draw_line_intervention(w, valley_scenario, name):
    """A line drawn for the form's first line parameter, added to the scenario as ``name``."""
    assert w.open_scenario(valley_scenario)
    form = w.params.param_form
    line = _params(w, lambda p: p.kind is list and "LineString" in p.draws)[0]
    form.map_buttons[line]["draw"].click()
    w.param_drawing.click(X0 + 30, Y0 + 40)
    w.param_drawing.click(X0 + 30, Y0 + 100)
    form.map_buttons[line]["draw"].click()
    assert w.param_drawing.add_intervention(name) == name
    return line, "LINESTRING (500030 3400040, 500030 3400100)"


@pytest.mark.slow  # a run and its branch, both to the end: 5 s at load 11, 13-16 s at load 18 (2 cores)
def test_the_branch_dialog_draws_a_barrier_and_the_branch_differs_where_it_should(window, valley_scenario, qtbot):
    """Run → Branch from now with a line drawn in the dialog's own form: the branch runs with it, the
    continued run without; the water differs, most near the drawn line."""
    w = window
    assert w.open_scenario(valley_scenario)
    line = _params(w, lambda p: p.kind is list and "LineString" in p.draws)[0]
    wkt = "LINESTRING (500030 3400040, 500030 3400100)"
    w.controls.speed.setCurrentIndex(w.controls.speed.findData(10.0))
    w.params.duration.setValue(240)
    try:
        run = w.start_run()
        qtbot.waitUntil(lambda: run.model is not None and run.model.time_s >= 20, timeout=180_000)
        dlg = w.branching.ask()
        assert dlg is not None and not dlg.isModal() and line in dlg.params.map_buttons
        assert w.branching.ask() is dlg  # asked again while it is open: the same dialog
        dlg.variant.setCurrentText("baseline")
        button = dlg.params.map_buttons[line]["draw"]
        button.click()
        assert w.viewport.tool is dlg.map_tool and button.text() == "Finish drawing"
        dlg.map_tool.click(X0 + 30, Y0 + 40)
        dlg.map_tool.click(X0 + 30, Y0 + 100)
        button.click()
        assert w.viewport.tool is None and dlg.params.values()[line] == [wkt]
        assert w.params.values()[line] == []  # the scenario form is not touched
        log = w.log_panel.toPlainText
        errors = log().count("error:")
        dlg.accept()
        rec = dlg.record
        assert rec is not None and rec["changes"] == {line: [wkt]}
        qtbot.waitUntil(lambda: "copy_s" in rec or log().count("error:") > errors, timeout=120_000)
        assert "copy_s" in rec, log()[-2000:]  # the copy is built and running
        branch = rec["worker"].model
        assert branch.p[line] == [wkt] and run.model.p[line] == []
        qtbot.waitUntil(lambda: run.done.is_set() and rec["worker"].done.is_set(), timeout=180_000)
        assert branch.time_s == pytest.approx(run.model.time_s)
        # where it should: the cells the line crosses are raised in the branch only; the valley drains
        # west, so the branch holds more water just behind the line (east of it: the most anywhere along
        # the valley floor) and less below it (west)
        assert branch.barrier_cells.any() and not run.model.barrier_cells.any()
        g = branch.raster.grid
        diff = (branch.solver.h - run.model.solver.h).reshape(g.shape)
        floor = np.abs(g.y0 - (np.arange(g.ny) + 0.5) * g.cell_m - Y0 - 60) < 20  # rows of the valley floor
        along = diff[floor].mean(axis=0)  # per column, west to east
        x = g.x0 + (np.arange(g.nx) + 0.5) * g.cell_m - X0  # metres from the town's west edge
        behind, below = along[(x > 35) & (x < 60)].mean(), along[x < 25].mean()
        assert behind > 2e-3 and below < -2e-3, (behind, below)
        assert 35 < x[np.argmax(along)] < 60, np.round(along * 1000, 1)
        rec["window"].close()
    finally:
        w.controls.speed.setCurrentIndex(0)
        w.cancel_run(wait_s=5)


def test_draw_a_barrier_intervention_and_run_the_comparison(window, valley_scenario, tmp_path, qtbot):
    w = window
    _draw_line_intervention(w, valley_scenario, "barrier drawn")
    out = tmp_path / "cmp"
    done = []
    # in this process and without the HTML report (its figures are tested with the comparison's own)
    worker = w.start_compare(out_dir=out, replications=1, workers=1, report=False)
    worker.finished.connect(done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=300_000)
    table = pd.read_csv(out / "comparison.csv")
    assert set(table.variant) == {"baseline", "barrier drawn"}
    summaries = [p.read_text() for p in out.rglob("summary.json")]
    assert any('"barrier drawn"' in t for t in summaries), sorted(map(str, out.rglob("*")))[:40]
    # the line holds water back: less leaves the valley at its low (west) end, more stays in the town
    delta = table.set_index(["variant", "kpi"])["delta_vs_baseline"]
    assert delta["barrier drawn", "outflow_volume_m3"] < -1.0 and delta["barrier drawn", "stored_volume_m3"] > 1.0
    assert not (out / "report.html").exists()
