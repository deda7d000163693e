"""The platform learns the models' layers, import options and views from their declarations."""
import pytest
from click.testing import CliRunner

from twin.core.city import LAYERS, column_defaults, layer_specs
from twin.core.errors import UserError


def test_the_package_reader_merges_the_models_layers_with_the_platforms():
    specs = layer_specs()
    assert list(specs)[:len(LAYERS)] == list(LAYERS)  # the platform's first, then the models' in registry order
    assert {"gates", "sources", "drains"} <= set(specs) and not {"gates", "sources", "drains"} & set(LAYERS)
    assert specs["gates"].levels and specs["gates"].ids_required and specs["sources"].columns == ("id", "count")
    assert column_defaults("gates") == {"kind": "exit", "open": True, "level": 0}
    # the tourists and the flood add columns to the platform's POIs; the first default given wins
    assert column_defaults("pois") == {"name": "", "capacity": 0, "gates": 1, "service_time_s": 0.0}
    assert {"capacity", "capacity_m3s", "gates", "service_time_s"} <= set(specs["pois"].counts)


def test_the_import_offers_each_hooks_options():
    from twin.gis.city_import import import_city, import_options
    from twin.cli import cli

    assert [o.name for o in import_options()] == ["walkable_around", "walkable_radius_m", "drawing_passengers",
                                                  "drawing_platforms", "include_sights", "opening_date"]
    out = CliRunner().invoke(cli, ["city", "import", "--help"])
    assert out.exit_code == 0 and "--walkable-around" in out.output and "--walkable-radius-m" in out.output
    with pytest.raises(UserError, match="unknown import option 'walkable_arround'.*walkable_around"):
        import_city(["x.geojson"], "out", walkable_arround="railway_station")


def test_the_view_draws_a_models_layer_as_it_declares(tmp_path):
    import geopandas as gpd
    import numpy as np
    from shapely.geometry import LineString

    from twin.core.city import City, check_layer
    from twin.declarations import layer_views
    from twin.view.scene import build_scene

    assert layer_views()["gates"].state_column == "open" and layer_views()["gates"].label == "id"
    gates = gpd.GeoDataFrame({"id": ["A", "B"], "open": [True, False]},
                             geometry=[LineString([(0, 0), (10, 0)]), LineString([(0, 20), (10, 20)])], crs="EPSG:32650")
    city = City("t", gates.crs, {"gates": check_layer(gates, "gates", "t", gates.crs)})
    s = build_scene(city)
    assert set(s.views) == {"gates"} and s.view_labels["gates"][0] == ["A", "B"]
    assert sorted(np.unique(s.mesh("gates").cell_data["open"]).tolist()) == [0, 1]
    assert "gates" in s.meshes()


def test_a_field_style_of_a_kind_the_view_does_not_draw_is_refused_by_name():
    from twin.core.model_contract import FIELD_KINDS, FieldStyle

    assert {FieldStyle("x", "m", "", kind=k).kind for k in FIELD_KINDS} == set(FIELD_KINDS)
    with pytest.raises(UserError, match=r'FieldStyle "depth": kind "depht".* use one of scalar, heat, surface, difference'):
        FieldStyle("depth", "m", "water depth", kind="depht")
