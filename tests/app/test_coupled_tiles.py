"""A coupled run's tiles stand under one heading per model, each captioned without the model prefix."""
from agents.registry import get_model
from twin.scenario.coupling import coupled_class, headline_groups

NAMES = ("flood", "station_dispersal", "tourist_flow")


def test_headline_tiles_are_grouped_by_model():
    cls = coupled_class(NAMES)
    groups = headline_groups(cls)
    assert [(title, prefix) for title, prefix, _ in groups] == [
        (get_model(n).title or n, n + ".") for n in NAMES]
    for (_, prefix, kpis), n in zip(groups, NAMES):
        own = [k for k in get_model(n).kpis if k.headline] or list(get_model(n).kpis)[:4]
        assert [k.name for k in kpis] == [prefix + k.name for k in own]
    single = headline_groups(get_model("flood"))
    assert len(single) == 1 and single[0][:2] == ("", "")


def test_the_indicator_panel_shows_a_heading_per_model(qapp, qtbot, tmp_path):
    from app.panels import IndicatorsPanel

    panel = IndicatorsPanel()
    qtbot.addWidget(panel)
    panel.resize(520, 1000)
    panel.set_model(coupled_class(NAMES))
    panel.show()
    qtbot.waitExposed(panel)
    assert [lab.text() for lab in panel.group_labels] == [get_model(n).title or n for n in NAMES]
    heads = {k for _, _, ks in headline_groups(coupled_class(NAMES)) for k in ks}
    assert set(panel.tiles) == {k.name for k in heads}
    for name, tile in panel.tiles.items():
        assert not tile.caption.text().startswith(name.split(".")[0]), tile.caption.text()
    # a dozen tiles scroll rather than push the window past a 1080-line screen; with room they show whole
    assert panel.minimumSizeHint().height() < 500
    assert panel.tile_scroll.sizeHint().height() >= max(t.geometry().bottom() for t in panel.tiles.values())
    # headings sit above their tiles, in model order
    ys = [lab.geometry().y() for lab in panel.group_labels]
    assert ys == sorted(ys)
    first_flood_tile = min(t.geometry().y() for n, t in panel.tiles.items() if n.startswith("flood."))
    assert ys[0] < first_flood_tile < ys[1]
    assert panel.plots["flood.max_depth_m"].plotItem.titleLabel.text.startswith(f"{get_model('flood').title}: max depth")
    panel.set_model(get_model("flood"))  # back to one model: no headings left
    assert panel.group_labels == [] and all(n.count(".") == 0 for n in panel.tiles)
    panel.set_model(coupled_class(NAMES))
    panel.set_values({k: 12.5 for k in panel.tiles})
    qtbot.waitUntil(lambda: all(t.isVisible() for t in panel.tiles.values()))  # shown on the next event loop turn
    panel.grab().save(str(tmp_path / "tiles.png"))
    import os, shutil
    if os.environ.get("KEEP_SHOT"):
        shutil.copy(tmp_path / "tiles.png", os.environ["KEEP_SHOT"])
