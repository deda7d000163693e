"""Bad input to the flood model: a clear error naming the parameter, file or feature, before anything runs."""
from __future__ import annotations

import numpy as np
import pytest

from agents.flood.model import FloodModel
from tests.agents.flood import towns
from twin.core.city import City
from twin.core.errors import UserError


@pytest.fixture(scope="module")
def valley(tmp_path_factory):
    return City.load(towns.valley_town(tmp_path_factory.mktemp("valley")))


def build(city, **params):
    return FloodModel(city, duration_s=60, seed=1, **params)


def test_a_dem_with_no_data_holes(tmp_path):
    path = towns.valley_town(tmp_path)
    import rasterio

    with rasterio.open(path / "dem.tif", "r+") as src:
        z = src.read(1)
        z[10:12, 20:23] = np.nan
        src.write(z, 1)
    with pytest.raises(UserError, match=r"dem\.tif has 6 no-data cells, for example at x .*fill the holes"):
        build(City.load(path))


@pytest.mark.slow
@pytest.mark.parametrize("body, expected", [
    ("start_s,end_s,intensity_mm_per_h\n0,600,20\n900,1200,30\n", r"line 3: a gap between 600 s .* and 900 s"),
    ("time_s,depth_mm\n300,2\n600,-1\n", r"line 3, column 'depth_mm': -1 is negative"),
    ("time_s,depth_mm\n300,2\n600,heavy\n", r"line 3, column 'depth_mm': 'heavy' is not a number"),
    ("time_s,depth_mm\n300,2\n600,\n", r"line 3, column 'depth_mm': the value is missing"),
])
def test_a_bad_rain_record(valley, tmp_path, body, expected):
    f = tmp_path / "gauge.csv"
    f.write_text(body, encoding="utf-8")
    with pytest.raises(UserError, match=r'"rain_file": .*gauge\.csv.*' + expected):
        build(valley, rain="gauge_csv", rain_file=str(f))


def test_an_inflow_outside_the_grid(valley, tmp_path):
    f = tmp_path / "q.csv"
    f.write_text("time_s,q_m3s\n0,1\n600,1\n", encoding="utf-8")
    with pytest.raises(UserError, match=r'parameter "inflow_at" at \(499000\.0, 3400050\.0\) lies outside the flood grid'):
        build(valley, inflow_file=str(f), inflow_at="POINT (499000 3400050)")
    with pytest.raises(UserError, match='"inflow_at": "nowhere" is neither WKT'):
        build(valley, inflow_file=str(f), inflow_at="nowhere")
    with pytest.raises(UserError, match='"inflow_at": an inflow needs both'):
        build(valley, inflow_file=str(f))


def test_a_cell_size_too_fine_for_the_memory(valley):
    with pytest.raises(UserError, match=r"cell_size_m 0\.005 over 300 m × 200 m gives .* GiB.*Use cell_size_m of at least"):
        build(valley, cell_size_m=0.005)


@pytest.mark.slow
def test_a_pump_in_a_building(valley, tmp_path):
    inside_b1 = [towns.X0 + 50, towns.Y0 + 73]
    with pytest.raises(UserError, match=r'"mobile_pumps_xy" pump 1 at \(500050\.0, 3400073\.0\) lies inside building B1'):
        build(valley, mobile_pumps_xy=inside_b1)
    # a pump of the city's pois layer
    path = towns.valley_town(tmp_path)
    import geopandas as gpd

    pois = gpd.read_file(path / "city.gpkg", layer="pois")
    pois.loc[pois["id"] == "PU1", "geometry"] = gpd.points_from_xy([towns.X0 + 210], [towns.Y0 + 70])
    pois.to_file(path / "city.gpkg", layer="pois", driver="GPKG")
    with pytest.raises(UserError, match=r"layer 'pois', pump PU1 at .* lies inside building B2"):
        build(City.load(path))


@pytest.mark.parametrize("params, expected", [
    ({"closed_roads": ["R9"]}, r'closed_roads: none of the roads has the id or name "R9" \(did you mean "R\d"\?\); '
                               r'the roads are: Valley Road \(R1\)'),
    ({"closed_roads": ["kind=motorway"]}, r'closed_roads: the selector "kind=motorway" matches none of the roads'),
    ({"closed_entrances": ["N1"]}, r'closed_entrances: none of the gates of kind exit, entrance has the id or name '
                                   r'"N1"; this city has no gates of kind exit, entrance'),
    ({"barriers": ["LINESTRING (1 2"]}, r'"barriers": "LINESTRING \(1 2" is neither WKT'),
    ({"barriers": ["LINESTRING (0 0, 10 10)"]}, r'"barriers": line 1 lies outside the flood grid'),
    ({"manning_by_landuse": [0.02, 0.05]}, r'"manning_by_landuse": is given but the city has no landuse\.tif'),
    ({"rain": "hyetograph"}, r'"hyetograph": rain = "hyetograph" needs a hyetograph'),
    ({"mobile_pumps_xy": [500100.0]}, r'"mobile_pumps_xy": has 1 numbers; give x, y pairs'),
    ({"mobile_pumps_xy": [500100.0, 3400100.0, 500150.0, 3400100.0], "mobile_pump_start_s": [0, 60, 120]},
     r'"mobile_pump_start_s": has 3 values for 2 mobile pumps'),
    ({"report_interval_s": 25.0}, r'"report_interval_s": 25 s is not a multiple of sync_interval_s \(10 s\)'),
    ({"boundary": "open", "open_edges": ["up"]}, r'"open_edges": "up" is not an edge'),
    ({"cfl": 0.7}, r'"cfl": cfl 0\.7 is above the stability limit'),
])
def test_bad_parameters_name_themselves(valley, params, expected):
    with pytest.raises(UserError, match=expected):
        build(valley, **params)


@pytest.mark.slow
def test_a_landuse_class_without_a_roughness(tmp_path):
    path = towns.valley_town(tmp_path)
    towns.depth_raster(path / "landuse.tif", np.where(towns.valley_z() > 2.0, 1.0, 2.0), towns.VALLEY_CELL,
                       towns.VALLEY_H)
    city = City.load(path)
    m = build(city, manning_by_landuse=[0.1, 0.02, 0.05])  # classes 1 and 2 present
    assert set(np.unique(m.solver.gn2)) == {np.float32(9.81 * 0.02 ** 2), np.float32(9.81 * 0.05 ** 2)}
    with pytest.raises(UserError, match=r'"manning_by_landuse": .*landuse\.tif holds the class 2, which has no entry'):
        build(city, manning_by_landuse=[0.1, 0.02])


@pytest.mark.slow
def test_the_cli_says_it_in_one_paragraph(tmp_path, valley):
    from tests.factories import write_scenario
    from twin.cli import main

    sc = write_scenario(tmp_path, valley.root, '[parameters]\nmobile_pumps_xy = [500050, 3400073]\n', model="flood",
                        duration_s=60)
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "twin.cli", "run", str(sc), "--out", str(tmp_path / "o"), "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "lies inside building B1" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()
    assert main  # the same entry point the test above ran


def test_an_initial_depth_in_another_crs_is_reprojected_not_read_as_zero(tmp_path):
    """The same 0.5 m of water, written in WGS 84 degrees: it lands on the UTM grid (issue 19)."""
    import pyproj

    from agents.flood import inputs
    from agents.flood.terrain import RasterGrid
    from twin.core.files import write_geotiff
    from twin.core.grid import GridField

    grid = RasterGrid(towns.X0, towns.Y0 + 100.0, 5.0, 20, 40)
    to_deg = pyproj.Transformer.from_crs("EPSG:32650", "EPSG:4326", always_xy=True)
    (w, n), (e, s) = (to_deg.transform(towns.X0 - 50, towns.Y0 + 150), to_deg.transform(towns.X0 + 250, towns.Y0 - 50))
    cell = (e - w) / 300
    rows = int(np.ceil((n - s) / cell))
    path = tmp_path / "depth_wgs84.tif"
    write_geotiff(GridField("depth", np.full((rows, 300), 0.5, np.float32), w, n, cell), pyproj.CRS("EPSG:4326"), path)
    d = inputs.initial_depth({"initial_depth": str(path)}, towns.CRS, grid)
    assert d.shape == (20, 40) and np.allclose(d, 0.5)
