"""City → Check in the app: the models' report on the open city (issue 20 point 1), on central Helsinki
imported from OpenStreetMap. CITYTWIN_DOC_SCREENSHOTS=1 saves docs/screenshot_city_check.png."""
from __future__ import annotations

import os
from pathlib import Path

from tests.twin.test_city_import import imported


def _rows(dialog) -> list[list[str]]:
    out = []

    def walk(item, path):
        texts = [item.text(c) for c in range(4)]
        out.append(path + texts)
        for k in range(item.childCount()):
            walk(item.child(k), path + [texts[0]])

    for i in range(dialog.tree.topLevelItemCount()):
        walk(dialog.tree.topLevelItem(i), [])
    return out


def test_city_menu_checks_the_open_city(window, qtbot, tiny_city):
    assert window.open_city(tiny_city)
    window.act_city_check.trigger()
    dialog = window.city_check_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=10_000)
    assert dialog.city is window.city
    rows = _rows(dialog)
    tops = [r[0] for r in rows if len(r) == 4]
    assert any(t.startswith("flood") for t in tops) and any(t.startswith("tourist_flow") for t in tops)
    # the tiny city has one attraction and no entry point: the tourists cannot run there
    tourism = next(r for r in rows if len(r) == 4 and r[0].startswith("tourist_flow"))
    assert tourism[3].startswith("cannot run") and "tourist_flow" in dialog.verdict.text()
    dialog.close()


def test_city_check_panel_on_helsinki(qapp, qtbot, tmp_path_factory):
    from app.city_check_dialog import ALL, CityCheckDialog
    from twin.core.city import City

    out, _ = imported("helsinki", tmp_path_factory)
    dialog = CityCheckDialog(City.load(out), ["station_dispersal", "tourist_flow", "flood"], "tourist_flow")
    qtbot.addWidget(dialog)
    dialog.show()
    rows = _rows(dialog)
    assert rows[0][0].startswith("tourist_flow") and rows[0][3] == "can run"
    capacity = [r for r in rows if r[:2] == ["tourist_flow — Tourist flow", "Defaulted"] and r[2] == "attraction capacity"]
    assert capacity and int(capacity[0][3]) > 0 and "200 persons" in capacity[0][5]
    dialog.model.setCurrentText("station_dispersal")
    rows = _rows(dialog)
    assert rows[0][3].startswith("cannot run") and any(r[2] == "! layer gates" for r in rows)
    assert "Cannot run" in dialog.verdict.text()
    dialog.model.setCurrentText(ALL)
    assert [c.model for c in dialog.checks] == ["station_dispersal", "tourist_flow", "flood"]
    dialog.model.setCurrentText("flood")
    rows = _rows(dialog)
    assert any(r[1] == "Estimated" and r[2] == "shelters" and int(r[3]) > 0 for r in rows)
    dialog.model.setCurrentText(ALL)
    dialog.resize(1500, 1000)
    qapp.processEvents()
    shot = Path("docs/screenshot_city_check.png") if os.environ.get("CITYTWIN_DOC_SCREENSHOTS") else \
        tmp_path_factory.mktemp("shot") / "city_check.png"
    assert dialog.grab().save(str(shot))
