"""A model's polygon layer from its declarations (CityImportHook.osm_areas, LayerSpec aliases and
generated_ids, LayerView drawing "area"): the flood's ``water`` layer, and one declared here."""
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Polygon, box

import twin.declarations
from twin.core.city import City
from twin.core.errors import UserError
from twin.core.model_contract import CityImportHook, LayerView, OsmAreas
from twin.gis.city_import import import_city
from twin.gis.osm import osm_layers, read_osm

LON, LAT = 24.94, 60.17


def osm_xml(areas) -> str:
    """An OpenStreetMap file of closed ways (ids 100, 101, …), each ``(tags, (lon, lat) corners)``."""
    nodes, ways, nid = [], [], 1
    for wid, (tags, corners) in enumerate(areas, start=100):
        refs = []
        for lon, lat in corners:
            nodes.append(f'<node id="{nid}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>')
            refs.append(nid)
            nid += 1
        nd = "".join(f'<nd ref="{r}"/>' for r in [*refs, refs[0]])
        tg = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
        ways.append(f'<way id="{wid}" version="1">{nd}{tg}</way>')
    return '<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6">' + "".join(nodes + ways) + "</osm>"


def square(i: int, d: float = 0.001):
    x, y = LON + 0.002 * i, LAT
    return [(x, y), (x + d, y), (x + d, y + d), (x, y + d)]


@pytest.fixture
def osm_file(tmp_path) -> Path:
    path = tmp_path / "town.osm"
    path.write_text(osm_xml([
        ({"natural": "water", "name": "Pond"}, square(0)),
        ({"waterway": "riverbank"}, square(1)),
        ({"water": "river", "name": "River"}, square(2)),
        ({"natural": "wood", "name": "Wood"}, square(3)),
        ({"leisure": "park", "name": "Park"}, square(4)),
        ({"landuse": "grass"}, square(5)),
        ({"building": "yes", "name": "Hall"}, square(6, 0.0003)),
    ]), encoding="utf-8")
    return path


def test_the_flood_water_layer_arrives_from_osm(osm_file, tmp_path):
    import_city([osm_file], tmp_path / "town")
    city = City.load(tmp_path / "town")
    water = city.layer("water")
    assert list(water["id"]) == ["osm_way_100", "osm_way_101", "osm_way_102"]  # not the wood, park or hall
    assert list(water["name"]) == ["Pond", "", "River"]
    assert (water.geom_type.str.contains("Polygon")).all() and city.crs.is_projected
    assert list(city.buildings["name"]) == ["Hall"]


def test_a_model_declared_area_layer_from_osm_tags(osm_file, monkeypatch):
    """A hook's OsmAreas: areas with any of its tags (key=value or any value of a key) become its
    layer with their OSM ids and the declared tags as columns; two declarations of a layer join."""
    hooks = twin.declarations.import_hooks()
    extra = (CityImportHook(osm_areas=(OsmAreas("green", ("leisure=park",), ("name", "leisure")),)),
             CityImportHook(osm_areas=(OsmAreas("green", ("landuse",), ("landuse",)),)))
    monkeypatch.setattr(twin.declarations, "import_hooks", lambda: (*hooks, *extra))
    layers = osm_layers(read_osm(osm_file), 3.0, 10.0)
    green = layers["green"]
    assert list(green["id"]) == ["osm_way_104", "osm_way_105"]
    assert list(green["name"]) == ["Park", ""] and list(green["leisure"]) == ["park", ""]
    assert list(green["landuse"]) == ["", "grass"]
    assert len(layers["water"]) == 3  # the flood's declaration still applies


def test_osm_areas_and_layer_views_refuse_what_they_cannot_mean():
    with pytest.raises(UserError, match='"key=value" or "key"'):
        OsmAreas("green", ("leisure=",))
    with pytest.raises(UserError, match='"key=value" or "key"'):
        OsmAreas("green", ())
    with pytest.raises(UserError, match='drawing "aera".*did you mean "area"'):
        LayerView("green", "Green", drawing="aera")


def test_gis_layer_named_like_the_declared_aliases_gets_generated_ids(tmp_path):
    """A GeoPackage layer "Lakes" (an alias the flood declares) without ids: the water layer, W00001…"""
    crs = "EPSG:32635"
    x0, y0 = 385000.0, 6672000.0
    src = tmp_path / "town.gpkg"
    gpd.GeoDataFrame({"height_m": [12.0]}, geometry=[box(x0, y0, x0 + 20, y0 + 20)], crs=crs).to_file(
        src, layer="buildings")
    gpd.GeoDataFrame({"NAME": ["North lake", "South lake"]},
                     geometry=[box(x0 + 50, y0, x0 + 90, y0 + 30), Polygon([(x0, y0 - 60), (x0 + 40, y0 - 60),
                                                                            (x0 + 20, y0 - 30)])],
                     crs=crs).to_file(src, layer="Lakes")
    import_city([src], tmp_path / "town")
    water = City.load(tmp_path / "town").layer("water")
    assert list(water["id"]) == ["W00001", "W00002"] and list(water["name"]) == ["North lake", "South lake"]


def test_an_area_view_drapes_polygons_above_the_ground(tmp_path):
    """The flood's LayerView for water: filled, 0.25 m above the terrain, picked as its row."""
    from twin.declarations import layer_views
    from twin.view.scene import build_layer_view

    view = layer_views()["water"]
    assert view.drawing == "area" and view.colours[-1] == "#5b9bd5" and view.legend == ("water",)
    gdf = gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=[box(0, 0, 10, 10), box(20, 0, 30, 5)], crs="EPSG:32635")
    mesh = build_layer_view(gdf, (0.0, 0.0), lambda x, y: np.full(np.shape(x), 5.0), view)
    assert mesh.area == pytest.approx(150.0) and np.allclose(mesh.points[:, 2], 5.25)
    assert set(mesh.cell_data["feature_id"]) == {0, 1}
    higher = build_layer_view(gdf, (0.0, 0.0), lambda x, y: np.zeros(np.shape(x)), replace(view, lift_m=2.0))
    assert np.allclose(higher.points[:, 2], 2.0)


def test_the_view_draws_water_blue_with_its_legend_and_picks_it():
    """The renderer draws the flood's water layer from its LayerView: blue, in the legend, and a
    click on a pond says which pond it is."""
    import pyvista as pv

    from twin.view.render import SceneRenderer

    crs = "EPSG:32635"
    x0, y0 = 385000.0, 6672000.0
    city = City("Ponds", crs, {
        "buildings": gpd.GeoDataFrame({"height_m": [8.0]}, geometry=[box(x0, y0, x0 + 20, y0 + 20)], crs=crs),
        "water": gpd.GeoDataFrame({"id": ["W1"], "name": ["Pond"]}, geometry=[box(x0 + 60, y0 + 60, x0 + 120, y0 + 120)],
                                  crs=crs),
    })
    p = pv.Plotter(off_screen=True, window_size=(400, 300))
    try:
        r = SceneRenderer(p)
        r.set_city(city)
        actor = r.actors["water"][0]
        assert pv.Color(actor.prop.color).hex_rgb == "#5b9bd5"
        words = [leg.GetEntryString(i).strip() for leg in r._legend for i in range(leg.GetNumberOfEntries())]
        assert "water" in words
        r.camera_preset("top")
        p.render()
        info = r.pick_display(*r.world_to_display(x0 + 90, y0 + 90, 0.25))
        assert info["layer"] == "water" and info["name"] == "Pond" and info["id"] == "W1"
    finally:
        p.close()


def test_every_declared_osm_area_layer_is_a_polygon_layer_of_the_package():
    """What a hook's OsmAreas fill must be a layer the package reader knows (a model's LayerSpec)
    holding polygons, and what a LayerView draws as areas too."""
    from twin.core.city import layer_specs
    from twin.declarations import layer_views

    specs = layer_specs()
    named = {a.layer for hook in twin.declarations.import_hooks() for a in hook.osm_areas}
    named |= {v.layer for v in layer_views().values() if v.drawing == "area"}
    assert "water" in named
    for layer in named:
        assert layer in specs and specs[layer].geometry == "Polygon", layer
