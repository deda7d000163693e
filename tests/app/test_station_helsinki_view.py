"""The station model on Helsinki central station imported from OpenStreetMap, in the app: the gates
are labelled by name (the hall's doors, the ticket gates at the platforms), the first view frames the
station, and a short evening peak runs to the end. CITYTWIN_DOC_SCREENSHOTS=1 saves
docs/screenshot_station_helsinki.png."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA, ROOT


@pytest.fixture(scope="module")
def helsinki_station_scenario(tmp_path_factory):
    import geopandas as gpd

    from twin.gis.city_import import import_city

    folder = tmp_path_factory.mktemp("helsinki_station_view")
    city = folder / "city"
    import_city([DATA / "city" / "helsinki_central" / "Helsinki.osm.pbf"], city, walkable_around="railway_station")
    src = gpd.read_file(city / "city.gpkg", layer="sources")
    # a train at every platform found, 30 s apart, its passengers scaled to the platform (0.25 persons/m²)
    (folder / "trains.csv").write_text("platform,arrival_s,passengers\n" + "".join(
        f"{r.id},{30 * k},{max(10, int(r.geometry.area * 0.25))}\n" for k, r in enumerate(src.itertuples())))
    base = (ROOT / "scenarios" / "station_evening_peak.toml").read_text(encoding="utf-8")
    params = base[base.index("[parameters]"):base.index("[[interventions]]")]
    params = params.replace('timetable = "station_evening_peak_trains.csv"', 'timetable = "trains.csv"')
    sc = folder / "station.toml"
    sc.write_text(f'[scenario]\nname = "Evening peak at Helsinki Central"\nmodel = "station_dispersal"\n'
                  f'city = "{city.as_posix()}"\nduration_s = 150\nseed = 7\n\n{params}', encoding="utf-8")
    return sc


@pytest.fixture(scope="module")
def opened(window, helsinki_station_scenario):
    assert window.open_scenario(helsinki_station_scenario)
    window.viewport.render_now()
    return window


@pytest.mark.slow
def test_station_on_helsinki_in_the_app(opened, qtbot, qapp):
    w = opened
    r = w.viewport.renderer
    labels, _ = r.scene.view_labels["gates"]
    # the doors and ticket gates by name, with the id beside it where the name is shared
    assert any(s.startswith("main entrance") for s in labels)
    assert any(s.startswith("ticket gates, Platform ") for s in labels)
    assert not any(s.startswith("osm_") for s in labels)
    # the first view frames the station (its walkable area): all on screen, filling most of the view
    aoi = r.area_of_interest()
    ren = r.plotter.renderer
    width, height = r.plotter.window_size
    xs, ys = [], []
    for x in (aoi[0], aoi[2]):
        for y in (aoi[1], aoi[3]):
            ren.SetWorldPoint(x, y, float(r.scene.elevation(np.array([x]), np.array([y]))[0]), 1.0)
            ren.WorldToDisplay()
            dx, dy, _ = ren.GetDisplayPoint()
            xs.append(dx), ys.append(dy)
    assert min(xs) >= -2 and max(xs) <= width + 2 and min(ys) >= -2 and max(ys) <= height + 2, (xs, ys)
    assert max((max(xs) - min(xs)) / width, (max(ys) - min(ys)) / height) > 0.7
    w.start_run()
    qtbot.waitUntil(lambda: w.worker is not None and w.worker.done.is_set(), timeout=240_000)
    qtbot.waitUntil(lambda: not w.controls.cancel_btn.isEnabled(), timeout=30_000)
    assert w.worker.result is not None
    k = w.worker.result.summary["kpis"]
    assert k["agents_exited"] > 0 and k["los_seconds"]["F"] < 60
    tiles = w.indicators.tiles
    assert all(t.value.text() != "–" for t in tiles.values())
    w.viewport.render_now()
    qapp.processEvents()
    shot = Path("docs/screenshot_station_helsinki.png") if os.environ.get("CITYTWIN_DOC_SCREENSHOTS") else \
        None
    if shot is not None:
        w.resize(1920, 1080)
        qapp.processEvents()
        w.viewport.render_now()
        qapp.processEvents()
        assert w.grab().save(str(shot))
