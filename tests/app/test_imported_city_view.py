"""The view of an imported city (issue 20 point 5): the tourist model on central Helsinki imported from
OpenStreetMap. The first view frames the attractions, the tiles keep whole numbers at any UI scale,
keyed KPIs are a table of the largest entries by name, and labels carry names, not OSM ids."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import DATA


@pytest.fixture(scope="module")
def helsinki_tourism(tmp_path_factory):
    from twin.gis.city_import import import_city

    folder = tmp_path_factory.mktemp("helsinki_view")
    import_city([DATA / "city" / "helsinki_central" / "Helsinki.osm.pbf"], folder / "city")
    sc = folder / "tourism.toml"
    sc.write_text(f'[scenario]\nname = "Holiday morning in central Helsinki"\nmodel = "tourist_flow"\n'
                  f'city = "{(folder / "city").as_posix()}"\nduration_s = 600\nseed = 11\n\n[parameters]\n'
                  "day_start_s = 32400\narrival_profile = [[32400, 3000], [36000, 3000]]\n", encoding="utf-8")
    return sc


@pytest.fixture(scope="module")
def opened(window, helsinki_tourism):
    assert window.open_scenario(helsinki_tourism)
    window.viewport.render_now()
    return window


def test_first_view_frames_the_attractions(opened):
    """The attractions' box fills the view: all of it on screen, and across most of the width or height."""
    r = opened.viewport.renderer
    aoi = r.area_of_interest()
    assert aoi is not None
    ren = r.plotter.renderer
    width, height = r.plotter.window_size
    xs, ys = [], []
    for x in (aoi[0], aoi[2]):
        for y in (aoi[1], aoi[3]):
            z = float(r.scene.elevation(np.array([x]), np.array([y]))[0])
            ren.SetWorldPoint(x, y, z, 1.0)
            ren.WorldToDisplay()
            dx, dy, _ = ren.GetDisplayPoint()
            xs.append(dx)
            ys.append(dy)
    assert min(xs) >= -2 and max(xs) <= width + 2 and min(ys) >= -2 and max(ys) <= height + 2, (xs, ys)
    assert max((max(xs) - min(xs)) / width, (max(ys) - min(ys)) / height) > 0.7, (xs, ys, width, height)


def test_labels_are_names(opened):
    scene = opened.viewport.renderer.scene
    city = opened.city
    named = city.pois["name"].fillna("").astype(str).str.len() > 0
    first = city.pois[named].iloc[0]
    assert scene.poi_labels[int(named.to_numpy().nonzero()[0][0])].startswith(str(first["name"]))
    # a POI without a name shows its id
    unnamed = (~named).to_numpy().nonzero()[0]
    assert len(unnamed)
    assert scene.poi_labels[unnamed[0]] == str(city.pois["id"].iloc[unnamed[0]])


def test_tiles_keep_their_numbers_whole_and_keyed_kpis_are_a_table(opened, qapp):
    from PySide6.QtGui import QFontMetrics

    w = opened
    ind = w.indicators
    attractions = w.city.pois[w.city.pois["kind"] == "attraction"]
    ids = attractions["id"].astype(str).tolist()
    queue = {fid: float(i % 7) * 3.0 for i, fid in enumerate(ids)}  # 40 attractions: no wall of text
    w.resize(1280, 600)  # a cramped window: the panel cannot give every widget what it asks for
    for scale in (1.0, 1.6, 2.2):
        ind.set_scale(scale)
        ind.set_values({**{name: 123456.0 + i for i, name in enumerate(ind.tiles)}, "attraction_queue": queue},
                       time_s=1800)
        qapp.processEvents()
        for name, tile in ind.tiles.items():
            need = QFontMetrics(tile.value.font()).height()
            assert tile.value.height() >= need, f"the number on the {name} tile is cut at UI scale {scale}"
            assert tile.value.text() != "–"
    table = ind.tables["attraction_queue"]
    assert table.isVisible()
    shown = [table.item(r, 0).text() for r in range(table.rowCount() - 1)]
    values = [float(table.item(r, 1).text()) for r in range(table.rowCount() - 1)]
    assert len(shown) == 8 and values == sorted(values, reverse=True)
    names = ind.names
    assert all(not s.startswith("osm_") or s == names.get(s, s) for s in shown)  # names where OSM has one
    top = min(queue, key=lambda k: (-queue[k], k))  # largest first, ties by id
    assert shown[0] == names.get(top, top)
    assert table.item(table.rowCount() - 1, 0).text().startswith(f"… {len(ids) - 8} more")
    # from the time series too, where a keyed KPI is one column per key ("attraction_queue.<id>")
    ind.reset()
    assert not table.isVisible()
    ind.add_rows([{"time_s": 60.0, **{f"attraction_queue.{k}": v for k, v in queue.items()}}])
    assert table.isVisible() and table.item(0, 0).text() == names.get(top, top)
    # scrubbed back to a frame whose own kpis lack the table: its values as of that frame's time
    later = {k: 100.0 - v for k, v in queue.items()}
    ind.add_rows([{"time_s": 120.0, **{f"attraction_queue.{k}": v for k, v in later.items()}}])
    first_later = min(later, key=lambda k: (-later[k], k))
    assert table.item(0, 0).text() == names.get(first_later, first_later)
    ind.set_values({}, time_s=90.0)
    assert table.item(0, 0).text() == names.get(top, top)
    assert float(table.item(0, 1).text()) == queue[top]
    ind.set_scale(1.0)


def test_keyed_kpi_table_shows_its_top_entries_on_a_big_screen(opened, qapp):
    """At 1920 × 1080 the keyed KPI's table shows its 8 largest entries and the "… more" line whole,
    under tiles whose numbers are whole (it once showed 2 rows in the charts' scroll area)."""
    from PySide6.QtGui import QFontMetrics

    w = opened
    w.resize(1920, 1080)
    ind = w.indicators
    ind.set_scale(1.0)
    ids = w.city.pois.loc[w.city.pois["kind"] == "attraction", "id"].astype(str).tolist()
    queue = {fid: float(len(ids) - i) for i, fid in enumerate(ids)}
    ind.set_values({**{name: 1234.5 for name in ind.tiles}, "attraction_queue": queue,
                    "attraction_occupancy": dict.fromkeys(ids, 0.0)}, time_s=600)
    for _ in range(5):
        qapp.processEvents()
    table = ind.tables["attraction_queue"]
    assert table.isVisible() and ind.keyed.currentWidget() is table  # the busy one, not the all-zero one
    assert table.rowCount() == 9
    seen = table.visibleRegion().boundingRect()
    assert seen.height() >= table.height() - 2, "the table is cut by the panel"
    for r in range(table.rowCount()):
        cell = table.visualRect(table.model().index(r, 0))
        assert table.viewport().rect().contains(cell), f"row {r} is not whole"
        assert cell.height() >= QFontMetrics(table.font()).height()
    assert table.item(0, 0).text() == ind.names.get(ids[0], ids[0])
    for name, tile in ind.tiles.items():
        assert tile.value.visibleRegion().boundingRect().height() >= QFontMetrics(tile.value.font()).height(), name
