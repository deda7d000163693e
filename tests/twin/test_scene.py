"""Scene meshes (twin/view/scene.py): built headless, vectorised, updated in place."""

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point, Polygon, box

from tests.factories import CRS, X0, Y0
from twin.core.city import City, check_layer
from twin.core.grid import GridField
from twin.view.scene import AgentCloud, FieldSurface, build_scene


@pytest.fixture(scope="module")
def city(tiny_city):
    return City.load(tiny_city)


def test_buildings_are_one_mesh_with_ids_heights_and_uses(city):
    s = build_scene(city)
    b = s.buildings
    ids = b.cell_data["building_id"]
    assert set(np.unique(ids)) == set(range(len(city.buildings)))
    for i, row in city.buildings.iterrows():
        cells = ids == i
        assert np.all(b.cell_data["height_m"][cells] == row["height_m"])
        # Base on the terrain (lowest footprint vertex), roof at base + height.
        pts = b.extract_cells(np.flatnonzero(cells)).points
        minx, miny, maxx, maxy = row.geometry.bounds
        corners_z = city.elevation_at(np.array([minx, maxx]), np.array([miny, maxy]))
        assert pts[:, 2].min() == pytest.approx(corners_z.min(), abs=1e-6)
        assert pts[:, 2].max() - pts[:, 2].min() == pytest.approx(row["height_m"])
    # 4 walls + 2 roof triangles per box.
    assert b.n_cells == 3 * (4 + 2)
    from twin.view.scene import use_codes

    USE_CODES = use_codes()

    assert set(b.cell_data["use_code"]) == {USE_CODES["public"], USE_CODES["office"], USE_CODES["other"]}


def test_local_origin_keeps_coordinates_small(city):
    s = build_scene(city)
    assert s.origin == pytest.approx((X0, Y0))
    assert np.abs(s.buildings.points[:, :2]).max() < 1000
    wx, wy = s.to_world(*s.to_local(X0 + 5, Y0 + 7))
    assert (wx, wy) == pytest.approx((X0 + 5, Y0 + 7))


def test_terrain_follows_the_dem_with_normals(city):
    s = build_scene(city)
    t = s.terrain
    assert t.n_points == 20 * 40
    z = t.points[:, 2]
    assert z.min() == pytest.approx(5.0) and z.max() == pytest.approx(10.0)
    # Every grid point sits on the DEM (point order matches the arrays).
    p = t.points
    np.testing.assert_allclose(z, city.elevation_at(p[:, 0] + s.origin[0], p[:, 1] + s.origin[1]), atol=1e-4)
    np.testing.assert_allclose(t.point_data["elevation_m"], z)
    n = t.point_data["Normals"]
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0)
    assert (n[:, 0] > 0).all() and (n[:, 2] > 0.99).all()  # slopes down to the east: normals lean east


@pytest.mark.slow
def test_flat_plane_without_dem_and_all_layers(tmp_path):
    poly = box(X0, Y0, X0 + 50, Y0 + 40)
    layers = {
        "buildings": gpd.GeoDataFrame({"height_m": [10.0], "name": ["L"], "use": ["residential"]},
                                      geometry=[Polygon([(X0, Y0), (X0 + 20, Y0), (X0 + 20, Y0 + 5), (X0 + 5, Y0 + 5),
                                                         (X0 + 5, Y0 + 20), (X0, Y0 + 20)])], crs=CRS),
        "walkable": gpd.GeoDataFrame({"name": ["hall"]}, geometry=[poly.difference(box(X0 + 20, Y0 + 20, X0 + 25, Y0 + 25))], crs=CRS),
        "gates": gpd.GeoDataFrame({"id": ["N1", "S1"], "kind": ["exit", "exit"], "open": [True, False]},
                                  geometry=[LineString([(X0 + 10, Y0 + 40), (X0 + 14, Y0 + 40)]),
                                            LineString([(X0 + 10, Y0), (X0 + 14, Y0)])], crs=CRS),
        "water": gpd.GeoDataFrame({"name": ["pond"]}, geometry=[Point(X0 + 40, Y0 + 30).buffer(5)], crs=CRS),
        "pois": gpd.GeoDataFrame({"id": ["M"], "kind": ["metro"], "name": ["Metro"]}, geometry=[Point(X0 + 30, Y0 + 10)], crs=CRS),
    }
    City("Flat", CRS, layers).save(tmp_path / "flat")
    c = City.load(tmp_path / "flat")
    s = build_scene(c)
    assert s.terrain.n_points == 4 and np.all(s.terrain.points[:, 2] == 0)
    # L-shaped (concave) footprint: roof area equals the footprint area.
    roof = s.buildings.extract_cells(np.flatnonzero(np.isclose(s.buildings.cell_centers().points[:, 2], 10.0)))
    assert roof.area == pytest.approx(c.buildings.geometry.iloc[0].area)
    # The walkable hole is respected.
    assert s.views["walkable"].area == pytest.approx(c.layer("walkable").geometry.iloc[0].area)
    assert s.views["gates"].n_cells > 0 and set(s.views["gates"].cell_data["open"]) == {0, 1}
    assert s.view_labels["gates"][0] == ["N1", "S1"]
    assert s.views["water"].area == pytest.approx(c.layer("water").geometry.iloc[0].area, rel=1e-6)
    assert np.allclose(s.views["water"].points[:, 2], 0.25)  # the flood's LayerView: draped 0.25 m above the ground
    assert s.pois.n_points == 1 and s.poi_labels == ["Metro"]


def test_thousands_of_buildings_build_into_one_mesh(city):
    """(How fast: benchmarks/bench_view.py, 'build meshes + first render'.)"""
    rng = np.random.default_rng(0)
    n = 2500
    x, y = rng.uniform(0, 2000, n) + X0, rng.uniform(0, 2000, n) + Y0
    geoms = shapely.buffer(shapely.box(x, y, x + 15, y + 20), 2, quad_segs=2)
    c = City("Big", CRS, {"buildings": gpd.GeoDataFrame({"height_m": rng.uniform(5, 60, n), "use": "retail", "name": ""},
                                                         geometry=geoms, crs=CRS)}, city.terrain)
    s = build_scene(c)
    assert len(np.unique(s.buildings.cell_data["building_id"])) == n


def test_field_surface_updates_in_place(city):
    s = build_scene(city)
    g = GridField.empty("density", city.bounds, 5.0, unit="1/m2")
    fs = FieldSurface(g, s)
    mesh, arr_ptr = fs.mesh, fs.mesh.point_data.GetArray("value")
    assert mesh.n_points == g.values.size
    g2 = GridField(g.name, np.random.default_rng(1).random(g.shape).astype(np.float32), g.x0, g.y0, g.cell_m, g.unit)
    assert fs.update(g2) is True
    assert fs.mesh is mesh and fs.mesh.point_data.GetArray("value") is arr_ptr
    np.testing.assert_array_equal(fs.values, g2.values.ravel())
    # Draped above the terrain.
    xs, ys = g.cell_centres()
    z0 = city.elevation_at(np.array([xs[3]]), np.array([ys[2]]))[0]
    assert mesh.points[2 * g.shape[1] + 3, 2] == pytest.approx(z0 + 0.6)
    # The value at a point is the grid's value there.
    assert fs.value_at(xs[3] - s.origin[0], ys[2] - s.origin[1]) == pytest.approx(g2.values[2, 3])
    # A different grid shape rebuilds the geometry but keeps the same mesh object.
    g3 = GridField.empty("density", city.bounds, 10.0)
    assert fs.update(g3) is False and fs.mesh is mesh and mesh.n_points == g3.values.size


def test_agent_cloud_updates_in_place(city):
    s = build_scene(city)
    ac = AgentCloud(s)
    rng = np.random.default_rng(2)
    pos = np.column_stack([rng.uniform(X0, X0 + 200, 500), rng.uniform(Y0, Y0 + 100, 500)])
    ac.update(pos, np.zeros(500))
    mesh = ac.mesh
    pos2 = pos + 1.0
    ac.update(pos2, np.ones(500))
    assert ac.mesh is mesh and mesh.n_points == 500
    np.testing.assert_allclose(ac.positions_world(), pos2)
    z = city.elevation_at(pos2[:, 0], pos2[:, 1]) + 1.0
    np.testing.assert_allclose(mesh.points[:, 2], z)
    assert (mesh.point_data["state"] == 1).all()
    # Agents without a position (NaN: left the area) are not drawn.
    pos2[:100] = np.nan
    ac.update(pos2, np.ones(500))
    assert ac.n == 400 and ac.mesh is mesh


def test_agents_drawn_at_their_height_above_ground(city):
    s = build_scene(city)
    ac = AgentCloud(s)
    pos = np.array([[X0 + 50.0, Y0 + 50.0], [X0 + 60.0, Y0 + 50.0]])
    ac.update(pos, np.zeros(2), z=np.array([0.0, 6.0]))
    ground = city.elevation_at(pos[:, 0], pos[:, 1]) + 1.0
    np.testing.assert_allclose(ac.mesh.points[:, 2], ground + [0.0, 6.0])


def test_levels_stack_walkable_obstacles_gates_and_field_bands(tmp_path):
    """Features with a level column are lifted by the level's height (city.toml level_height_m);
    a field with one band per level draws each band at its own height."""
    walk = gpd.GeoDataFrame({"name": ["hall", "deck"], "level": [0, 1]},
                            geometry=[box(X0, Y0, X0 + 40, Y0 + 40), box(X0 + 10, Y0 + 10, X0 + 30, Y0 + 30)], crs=CRS)
    obst = gpd.GeoDataFrame({"name": ["pillar"], "level": [1]}, geometry=[box(X0 + 12, Y0 + 12, X0 + 13, Y0 + 13)],
                            crs=CRS)
    gates = gpd.GeoDataFrame({"id": ["G"], "kind": ["exit"], "open": [True], "level": [1]},
                             geometry=[shapely.LineString([(X0 + 30, Y0 + 15), (X0 + 30, Y0 + 20)])], crs=CRS)
    c = City("levels", crs=CRS, layers={"walkable": check_layer(walk, "walkable", "t", CRS),
                                        "obstacles": check_layer(obst, "obstacles", "t", CRS),
                                        "gates": check_layer(gates, "gates", "t", CRS)},
             meta={"level_height_m": 5.0})
    s = build_scene(c)
    deck = s.views["walkable"].extract_cells(np.flatnonzero(s.views["walkable"].cell_data["feature_id"] == 1))
    hall = s.views["walkable"].extract_cells(np.flatnonzero(s.views["walkable"].cell_data["feature_id"] == 0))
    assert deck.points[:, 2].min() == pytest.approx(hall.points[:, 2].max() + 5.0)
    pillar = s.views["obstacles"]  # the station's LayerView: a block 1.2 m tall on its floor, picked by feature
    assert pillar.points[:, 2].min() == pytest.approx(5.0) and pillar.points[:, 2].max() == pytest.approx(6.2)
    assert set(pillar.cell_data["feature_id"]) == {0}
    assert s.views["gates"].points[:, 2].min() > 5.0 and s.view_labels["gates"][1][0, 2] > 5.0
    g = GridField("density", np.zeros((2, 4, 4), np.float32), X0, Y0 + 40, 10.0, band_z_m=(0.0, 5.0),
                  band_names=("level 0", "level 1"))
    g.values[1, 2, 2] = 3.0
    fs = FieldSurface(g, s)
    assert fs.mesh.n_points == 32
    z = fs.mesh.points[:, 2]
    assert z[16:].min() == pytest.approx(z[:16].min() + 5.0)
    assert fs.values[16 + 2 * 4 + 2] == 3.0
    g.values[0, 0, 0] = 1.0
    assert fs.update(g) and fs.values[0] == 1.0


def test_only_roofs_over_a_see_through_layer_are_flagged(tmp_path):
    """The station's floor (``roofs_see_through``) shows through the hall over it; a building over
    another model's area (the flood's water) or over nothing stays solid."""
    hall, shed, boathouse = box(X0, Y0, X0 + 30, Y0 + 20), box(X0 + 60, Y0, X0 + 70, Y0 + 10), box(X0 + 100, Y0, X0 + 110, Y0 + 10)
    layers = {
        "buildings": gpd.GeoDataFrame({"height_m": [12.0, 4.0, 4.0], "use": ["station", "other", "other"]},
                                      geometry=[hall, shed, boathouse], crs=CRS),
        "walkable": gpd.GeoDataFrame({"name": ["concourse"]}, geometry=[box(X0 - 5, Y0 - 5, X0 + 35, Y0 + 25)], crs=CRS),
        "water": gpd.GeoDataFrame({"name": ["dock"]}, geometry=[box(X0 + 95, Y0 - 5, X0 + 115, Y0 + 15)], crs=CRS),
    }
    City("Roofs", CRS, layers).save(tmp_path / "roofs")
    s = build_scene(City.load(tmp_path / "roofs"))
    roof = np.asarray(s.buildings.cell_data["roof"])
    owner = np.asarray(s.buildings.cell_data["building_id"])
    assert roof[owner == 0].all() and not roof[owner == 1].any() and not roof[owner == 2].any()


def test_multi_band_geotiff(tmp_path):
    import rasterio

    from twin.core.files import write_geotiff

    g = GridField("max_density", np.arange(2 * 20 * 20, dtype=np.float32).reshape(2, 20, 20), X0, Y0 + 20, 1.0,
                  unit="persons/m2", band_names=("level 0", "level 1"), band_z_m=(0.0, 6.0))
    write_geotiff(g, CRS, tmp_path / "m.tif")
    with rasterio.open(tmp_path / "m.tif") as r:
        assert r.count == 2 and r.descriptions == ("level 0", "level 1")
        np.testing.assert_array_equal(r.read(), g.values)
        assert r.tags(2)["height_above_ground_m"] == "6" and r.tags(1)["unit"] == "persons/m2"
    np.testing.assert_array_equal(g.plane(), g.values[1])  # the plan view: the higher value per cell


def test_scene_module_has_no_qt():
    import ast
    from pathlib import Path

    import twin.view.scene

    tree = ast.parse(Path(twin.view.scene.__file__).read_text())
    mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m.split(".")[0] in ("PySide6", "pyvistaqt", "app") for m in mods)
