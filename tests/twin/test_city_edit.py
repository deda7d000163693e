"""Editing a city package without Qt (twin.gis.city_edit): declared layers, checked edits, undo
snapshots, atomic saves that restore the package byte for byte, and `city check` after a save."""
import hashlib
import shutil

import pytest
import shapely

from tests.conftest import DEMO_CITY
from twin.core.city import City, layer_specs
from twin.core.errors import UserError
from twin.declarations import model_classes
from twin.gis.city_edit import CityEdit, editable_layers


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def demo(tmp_path):
    shutil.copytree(DEMO_CITY, tmp_path / "city")
    return tmp_path / "city"


def test_the_editable_layers_are_the_declared_ones():
    layers = editable_layers()
    declared = {s.name for s in layer_specs().values() if s.kind == "vector"}
    declared |= {s.name for cls in model_classes() for s in cls.extra_layers if s.kind == "vector"}
    assert set(layers) == declared
    for name, layer in layers.items():
        spec = layer.spec
        assert set(spec.columns) <= set(layer.columns())
        assert spec.geometry == "any" or layer.families == (spec.geometry,)
        assert ("level" in layer.columns()) == spec.levels or "level" in spec.columns


def _line_layer_with_levels():
    """A line layer with ids and levels, and a line layer that joins levels (columns from the declarations)."""
    layers = editable_layers()
    ids_line = next(n for n, l in layers.items() if "LineString" in l.families and l.spec.ids_required and l.spec.levels)
    joins = next(n for n, l in layers.items() if l.families == ("LineString",) and not l.contract
                 and any(c.startswith("from_") for c in l.spec.columns))
    return ids_line, joins


def test_add_save_reload_undo_restores_the_package_byte_for_byte(demo):
    before = _digest(demo)
    e = CityEdit.open(demo)
    line, joins = _line_layer_with_levels()
    n_line, n_joins = len(e.frame(line)), len(e.frame(joins))
    add = e.add(line, [(500400, 3401480), (500405, 3401480.2)], {"id": "NEW1"})
    e.apply(add)
    spec = editable_layers()[joins].spec
    attrs = {c: "1" for c in spec.columns if c != "id"}
    attrs.update({c: "0" for c in spec.columns if c.startswith("from_")})
    kinds = sorted(set(e.frame(joins)["kind"].astype(str))) if "kind" in spec.columns else []
    if kinds:
        attrs["kind"] = kinds[-1]
    link = e.add(joins, [(500562, 3401330), (500550, 3401330)], attrs)
    e.apply(link)
    assert e.dirty
    e.save()
    assert _digest(demo)["city.gpkg"] != before["city.gpkg"] and e.dirty is False
    city = City.load(demo)  # the package reader takes the saved package
    assert "NEW1" in set(city.layer(line)["id"])
    assert len(city.layer(line)) == n_line + 1
    reread = CityEdit.open(demo)
    assert len(reread.frame(joins)) == n_joins + 1
    got = reread.frame(joins).iloc[-1]
    assert got.geometry.equals(shapely.LineString([(500562, 3401330), (500550, 3401330)]))
    assert all(str(got[c]) in ("0", "1", "1.0", "0.0") for c in spec.columns if c.endswith("_level"))
    e.revert(link)
    e.revert(add)
    e.save()
    assert _digest(demo) == before


def test_edits_are_checked_as_the_package_reader_checks(demo):
    e = CityEdit.open(demo)
    line, _ = _line_layer_with_levels()
    taken = str(e.frame(line)["id"].iloc[0])
    with pytest.raises(UserError, match="used more than once"):
        e.add(line, [(500400, 3401480), (500405, 3401480)], {"id": taken})
    with pytest.raises(UserError, match="at least 2 point"):
        e.add(line, [(500400, 3401480)])
    area = next(n for n, l in editable_layers().items() if l.families == ("Polygon",) and l.spec.counts)
    col = editable_layers()[area].spec.counts[0]
    with pytest.raises(UserError, match="not a number"):
        e.add(area, [(0, 0), (10, 0), (10, 10)], {col: "many"})
    with pytest.raises(UserError, match="not a valid shape"):
        e.add(area, [(500400, 3401400), (500410, 3401410), (500410, 3401400), (500400, 3401410)])
    with pytest.raises(UserError, match="not a layer a model declares"):
        e.add("no_such_layer", [(0, 0)])
    assert not e.dirty  # nothing refused changed anything


def test_delete_and_set_attributes_then_undo(demo):
    e = CityEdit.open(demo)
    line, _ = _line_layer_with_levels()
    first = e.frame(line).copy()
    edit = e.set_attributes(line, 0, {"level": "1"})
    e.apply(edit)
    assert int(e.frame(line)["level"].iloc[0]) == 1
    gone = e.delete(line, 1)
    e.apply(gone)
    assert len(e.frame(line)) == len(first) - 1
    e.revert(gone)
    e.revert(edit)
    assert e.frame(line).equals(first)
    with pytest.raises(UserError, match="whole number"):
        e.set_attributes(line, 0, {"level": "1.5"})


def test_clicks_snap_to_existing_vertices(demo):
    e = CityEdit.open(demo)
    line, _ = _line_layer_with_levels()
    x, y = shapely.get_coordinates(e.frame(line).geometry.iloc[0])[0]
    assert e.snap(x + 0.4, y - 0.3) == (x, y)
    assert e.snap(x + 5, y) == (x + 5, y)
    i = e.feature_at(line, x + 0.5, y)
    assert i is not None and e.frame(line).geometry.iloc[i].distance(shapely.Point(x, y)) == 0


def test_the_models_check_the_saved_package(demo):
    e = CityEdit.open(demo)
    checks = e.check()
    assert checks and all(c.can_run for c in checks)
    # remove every feature of a layer some model cannot run without: its check says so after the save
    need = next(s for s in layer_specs().values() if s.ids_required and s.levels)
    frame = e.frame(need.name)
    for _ in range(len(frame)):
        e.apply(e.delete(need.name, 0))
    e.save()
    assert not all(c.can_run for c in e.check())


def test_a_layer_the_package_lacks_is_made_and_unmade(demo):
    before = _digest(demo)
    e = CityEdit.open(demo)
    name, layer = next((n, l) for n, l in editable_layers().items() if n not in e.frames and l.spec.columns)
    points = {"Point": [(500400, 3401400)], "LineString": [(500400, 3401400), (500410, 3401400)],
              "Polygon": [(500400, 3401400), (500410, 3401400), (500410, 3401410)]}[layer.families[0]]
    attrs = {c: "1" for c in layer.spec.columns if c != "id"}
    edit = e.add(name, points, attrs)
    assert edit.before is None
    e.apply(edit)
    e.save()
    again = CityEdit.open(demo)
    assert len(again.frame(name)) == 1 and again.frame(name)["id"].iloc[0] == e.frame(name)["id"].iloc[0]
    e.revert(edit)
    assert name not in e.frames
    e.save()
    assert _digest(demo) == before


def _area_layer_with_levels():
    return next(n for n, l in editable_layers().items() if l.families == ("Polygon",) and l.spec.levels
                and not l.spec.columns)


def test_vertices_move_insert_and_delete_with_undo_to_the_byte(tmp_path):
    from tests.agents.station.conftest import make_city

    demo = tmp_path / "hall"
    make_city().save(demo)  # a small station hall: five gates
    before = _digest(demo)
    e = CityEdit.open(demo)
    area = _area_layer_with_levels()
    line, _ = _line_layer_with_levels()
    ring = e.vertices(area, 0)
    assert len(ring) >= 3 and shapely.Polygon(ring).equals(e.frame(area).geometry.iloc[0])
    x, y = ring[1]
    done = []

    def apply(edit):
        e.apply(edit)
        done.append(edit)
        return edit

    moved = apply(e.move_vertex(area, 0, 1, x + 2.0, y - 1.5))
    assert e.vertices(area, 0)[1] == (x + 2.0, y - 1.5) and len(e.vertices(area, 0)) == len(ring)
    assert moved.text.startswith("reshape") and moved.after.drop(columns="geometry").equals(
        moved.before.drop(columns="geometry"))  # the attributes stay
    # a vertex moved near another feature's vertex lands on it
    tx, ty = e.vertices(line, 0)[0]
    apply(e.move_vertex(line, 1, 0, tx + 0.5, ty + 0.4))
    assert e.vertices(line, 1)[0] == (tx, ty)
    # a vertex added in the nearest edge, then removed
    (ax, ay), (bx, by) = e.vertices(line, 2)[:2]
    apply(e.insert_vertex(line, 2, (ax + bx) / 2 + 0.01, (ay + by) / 2))
    assert len(e.vertices(line, 2)) == 3 and e.vertices(line, 2)[1][0] == pytest.approx((ax + bx) / 2 + 0.01)
    apply(e.delete_vertex(line, 2, 1))
    assert e.vertices(line, 2) == [(ax, ay), (bx, by)]
    # refused: a line of one point, an area that crosses itself; nothing changes
    with pytest.raises(UserError, match="at least 2 point"):
        e.delete_vertex(line, 2, 0)
    r = e.vertices(area, 0)
    with pytest.raises(UserError, match="not a valid shape"):
        e.reshape(area, 0, [r[0], r[2], r[1], *r[3:]] if len(r) > 3 else [r[0], r[1], r[2], r[1]])
    e.save()
    again = CityEdit.open(demo)
    assert again.vertices(area, 0)[1] == (x + 2.0, y - 1.5) and again.vertices(line, 1)[0] == (tx, ty)
    assert City.load(demo).layer(line).geometry.iloc[1].coords[0] == (tx, ty)
    # undo back to the opened package: byte for byte
    for edit in reversed(done):
        e.revert(edit)
    e.save()
    assert _digest(demo) == before


def test_a_hole_cut_in_an_area_is_checked_saved_and_undone(tmp_path):
    from tests.agents.station.conftest import make_city

    folder = tmp_path / "hall"
    make_city().save(folder)
    before = _digest(folder)
    e = CityEdit.open(folder)
    area = _area_layer_with_levels()
    (minx, miny, maxx, maxy) = e.frame(area).geometry.iloc[0].bounds
    hole = [(minx + 2, miny + 2), (minx + 6, miny + 2), (minx + 6, miny + 5), (minx + 2, miny + 5)]
    edit = e.add_hole(area, 0, hole)
    e.apply(edit)
    g = e.frame(area).geometry.iloc[0]
    assert len(g.interiors) == 1 and g.area == pytest.approx(shapely.Polygon(g.exterior).area - 12.0)
    # reshaping the outline keeps the hole
    e.apply(e.move_vertex(area, 0, 0, *e.vertices(area, 0)[0]))
    assert len(e.frame(area).geometry.iloc[0].interiors) == 1
    with pytest.raises(UserError, match="inside the area"):
        e.add_hole(area, 0, [(minx - 5, miny), (minx - 1, miny), (minx - 1, miny + 3)])
    with pytest.raises(UserError, match="not a valid shape"):  # over the first hole
        e.add_hole(area, 0, [(minx + 3, miny + 3), (minx + 8, miny + 3), (minx + 8, miny + 8)])
    e.save()
    assert len(CityEdit.open(folder).frame(area).geometry.iloc[0].interiors) == 1
    e.revert(edit)
    e.save()
    assert _digest(folder) == before
