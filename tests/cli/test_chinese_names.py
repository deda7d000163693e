"""A scenario named in Chinese end to end (issue 10): Chinese station, gate, platform, scenario and
intervention names, in a folder with a Chinese name, through `run`, `compare` and report.html, with
no matplotlib glyph warnings and the glyphs really drawn."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import shapely

SCENARIO = '''[scenario]
name = "东站晚高峰"
model = "station_dispersal"
city = "东站"
duration_s = 120
seed = 3
replications = 2

[parameters]
release_spread_s = 10

[[interventions]]
name = "开放西门"
[interventions.parameters]
open_gates = ["西门"]
'''


@pytest.fixture(scope="module")
def chinese_station(tmp_path_factory):
    from tests.agents.station.conftest import X0, Y0, make_city

    def line(*pts):
        return shapely.LineString([(X0 + x, Y0 + y) for x, y in pts])

    def box(a, b, c, d):
        return shapely.box(X0 + a, Y0 + b, X0 + c, Y0 + d)

    gates = [{"id": "北门1", "kind": "exit", "open": True, "geometry": line((10, 30), (14, 30))},
             {"id": "北门2", "kind": "exit", "open": True, "geometry": line((40, 30), (44, 30))},
             {"id": "南门", "kind": "exit", "open": True, "geometry": line((28, 0), (32, 0))},
             {"id": "东门", "kind": "exit", "open": True, "geometry": line((60, 12), (60, 18))},
             {"id": "西门", "kind": "exit", "open": False, "geometry": line((0, 12), (0, 16))}]
    sources = [{"id": "一站台", "count": 100, "release_s": 0.0, "geometry": box(5, 5, 25, 9)},
               {"id": "二站台", "count": 100, "release_s": 10.0, "geometry": box(35, 20, 55, 24)}]
    folder = tmp_path_factory.mktemp("chinese") / "项目"
    folder.mkdir()
    city = make_city(gates=gates, sources=sources)
    city.name = "东站"
    city.save(folder / "东站")
    (folder / "东站晚高峰.toml").write_text(SCENARIO, encoding="utf-8")
    return folder


def citytwin(folder, *args):
    env = {**os.environ, "CITYTWIN_CACHE_DIR": str(folder.parent / "cache")}
    return subprocess.run([sys.executable, "-m", "twin.cli", *map(str, args)], cwd=folder, capture_output=True,
                          text=True, env=env)


@pytest.mark.slow
def test_run_compare_and_report_with_chinese_names(chinese_station):
    r = citytwin(chinese_station, "run", "东站晚高峰.toml", "--intervention", "开放西门", "--quiet", "--out", "运行")
    assert r.returncode == 0, r.stderr
    summary = json.loads((chinese_station / "运行" / "summary.json").read_text(encoding="utf-8"))
    assert summary["scenario"] == "东站晚高峰" and summary["variant"] == "开放西门"
    by_gate = summary["kpis"]["exited_by_gate"]
    assert set(by_gate) == {"北门1", "北门2", "南门", "东门", "西门"} and by_gate["西门"] > 0  # opened
    assert "西门" in r.stdout

    c = citytwin(chinese_station, "compare", "东站晚高峰.toml", "--workers", "2", "--out", "比较")
    assert c.returncode == 0, c.stderr
    assert "missing from font" not in c.stderr and "Glyph" not in c.stderr, c.stderr
    assert "东站晚高峰: 2 variants × 2 replications" in c.stdout and "开放西门" in c.stdout
    table = pd.read_csv(chinese_station / "比较" / "comparison.csv")
    assert set(table["variant"]) == {"baseline", "开放西门"}
    assert {"exited_by_gate.西门", "exited_by_gate.北门1"} <= set(table["kpi"])
    report = (chinese_station / "比较" / "report.html").read_text(encoding="utf-8")
    assert "东站晚高峰" in report and "开放西门" in report and "北门1" in report
    assert len(re.findall(r"data:image/png;base64,", report)) >= 3

    # The same run again in the comparison is reused: names in Chinese do not disturb the hashes.
    again = citytwin(chinese_station, "compare", "东站晚高峰.toml", "--workers", "2", "--quiet", "--out", "比较")
    assert again.returncode == 0 and "(0 run now, 4 reused)" in again.stdout


def test_matplotlib_draws_chinese_glyphs_without_warnings(tmp_path):
    import warnings

    from matplotlib.figure import Figure

    from twin.view.fonts import cjk_font_file, use_cjk_fallback

    if cjk_font_file() is None:
        pytest.fail("no CJK font on this system: install fonts-wqy-microhei (scripts/setup.sh lists it)")
    assert use_cjk_fallback()

    def image(text):
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = Figure(figsize=(1, 1))
        fig.text(0.2, 0.3, text, fontsize=30)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., 0].copy()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        north, gate = image("北"), image("门")
    assert not [w for w in caught if "missing from font" in str(w.message)]
    # A font without the glyphs draws the same box for both; real glyphs differ.
    assert (north < 128).any() and (north != gate).sum() > 50


def test_fonts_are_only_swapped_for_text_that_needs_them():
    from twin.view.fonts import label_font_file, needs_cjk

    assert not needs_cjk(["N1", "Hlavní nádraží", "Αθήνα", "Москва"])
    assert needs_cjk(["N1", "北门"]) and needs_cjk(["東京駅"]) and needs_cjk(["서울역"])
    assert label_font_file(["N1", "Bubeneč"]) is None  # the view keeps VTK's own font (reference images)
    assert label_font_file(["北门"]).endswith((".ttc", ".ttf", ".otf"))

