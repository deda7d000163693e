"""`citytwin city import` and `city info` through the real console entry point, good and bad input."""
import os
import re
import subprocess
import warnings
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import LineString, Polygon, box

from tests.twin.test_city_import import HELSINKI, PRAGUE, imported
from twin.core.city import City

LON, LAT = 14.40, 50.10  # Prague: UTM 33N


def citytwin(*args):
    return subprocess.run([sys.executable, "-m", "twin.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


# The commands below run in their own process, as a user would run them. Starting Python with
# geopandas takes seconds on a busy 2-core machine, so the session runs them all at once up front
# (CASES builds each one's input files) and the tests then check the results one by one. Cases marked
# in_process (variants of a check already made in a subprocess) call the same entry point,
# twin.cli.main, in this process.
CASES = {}
IN_PROCESS = set()


def case(fn=None, *, in_process=False):
    def register(f):
        CASES[f.__name__] = f
        if in_process:
            IN_PROCESS.add(f.__name__)
        return f
    return register(fn) if fn is not None else register


def citytwin_here(*args):
    """twin.cli.main in this process, with its output captured like a subprocess's."""
    import contextlib
    import io

    from twin.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def user_out(folder: Path) -> Path:
    """An existing --out folder with a file of the user's, which a failed import must leave as it was."""
    d = folder / "out"
    d.mkdir()
    (d / "notes.txt").write_text("mine\n")
    return d


def assert_user_error(result, phrases, out=None, before=None):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    msg = " ".join(result.stderr.split())
    for p in phrases:
        assert p in msg, msg
    if out is not None:
        assert snapshot(out) == before
        assert not [p for p in out.parent.iterdir() if p.name.endswith(".partial")]


def good_buildings(folder: Path) -> Path:
    g = gpd.GeoDataFrame({"name": ["A", "B"], "height": [12.0, None]},
                         geometry=[box(LON, LAT, LON + 0.0003, LAT + 0.0002),
                                   box(LON + 0.001, LAT, LON + 0.0013, LAT + 0.0002)], crs="EPSG:4326")
    path = folder / "buildings.geojson"
    g.to_file(path, driver="GeoJSON")
    return path


# -- real cities ----------------------------------------------------------------------------------
@case
def import_prague(tmp, real):
    return ["city", "import", PRAGUE, "--out", tmp / "prague", "--name", "Bubeneč"], tmp / "prague"


@case
def info_helsinki(tmp, real):
    return ["city", "info", real["helsinki"][0]], real["helsinki"]


@case
def info_prague(tmp, real):
    return ["city", "info", real["prague"][0]], real["prague"]


@case
def import_repairs_geometry(tmp, real):
    bowtie = Polygon([(LON, LAT), (LON + 0.001, LAT + 0.001), (LON + 0.001, LAT), (LON, LAT + 0.001), (LON, LAT)])
    gpd.GeoDataFrame({"height": [9.0]}, geometry=[bowtie], crs="EPSG:4326").to_file(tmp / "b.geojson", driver="GeoJSON")
    return ["city", "import", tmp / "b.geojson", "--out", tmp / "city"], None


# Every test here reads ``runs``, which imports two real cities and runs every command (about a minute on
# 2 cores): the module is left out of `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Build every case's input, then run all the commands in parallel: {case: (result, data, out, before)}."""
    from concurrent.futures import ThreadPoolExecutor

    real = {"helsinki": imported("helsinki", tmp_path_factory), "prague": imported("prague", tmp_path_factory)}
    jobs = {}
    for name, build in CASES.items():
        tmp = tmp_path_factory.mktemp(name)
        args, data = build(tmp, real)
        out = data if name.startswith("bad_import") else None
        jobs[name] = (args, data, out, snapshot(out) if out is not None else None)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(citytwin, *job[0]) for name, job in jobs.items() if name not in IN_PROCESS}
        results = {name: citytwin_here(*jobs[name][0]) for name in jobs if name in IN_PROCESS}
        results.update({name: f.result() for name, f in futures.items()})
    return {name: (results[name], *jobs[name][1:]) for name in jobs}


def test_cli_imports_prague(runs):
    r, out, _, _ = runs["import_prague"]
    assert r.returncode == 0, r.stderr
    assert "EPSG:5514" in r.stdout and "buildings 144" in r.stdout and "roads 35" in r.stdout
    assert "144 default 10 m" in r.stdout and "DEM" in r.stdout and "of 1 m" in r.stdout
    assert (out / "import_report.json").is_file()
    assert City.load(out).name == "Bubeneč"


def test_cli_info_helsinki(runs):
    r, (pkg, report), _, _ = runs["info_helsinki"]
    assert r.returncode == 0, r.stderr
    text = r.stdout
    city = City.load(pkg)
    assert "EPSG:32635" in text and "km)" in text
    assert f"Imported  from {HELSINKI.name};" in text  # import_report.json's input_files
    assert re.search(rf"buildings +{len(city.buildings)} ", text)
    hs = city.buildings["height_m"]
    assert f"min {hs.min():.1f} / median {hs.median():.1f} / max {hs.max():.1f} m" in text
    h = report["heights"]
    assert f"from height {h['height']}, levels {h['levels']}, default {h['default']}" in text
    assert "railway_station" in text and "metro" in text and "OpenStreetMap" in text
    assert "DEM       none" in text


def test_cli_info_prague(runs):
    r = runs["info_prague"][0]
    assert r.returncode == 0, r.stderr
    assert "EPSG:5514" in r.stdout and re.search(r"buildings +144 ", r.stdout) and re.search(r"roads +35 ", r.stdout)
    assert "min 10.0 / median 10.0 / max 10.0 m" in r.stdout and "default 144 (filled 144)" in r.stdout
    assert "592 × 647 cells of 1 m" in r.stdout and "elevation 188" in r.stdout


def test_cli_reports_repaired_geometry(runs):
    r = runs["import_repairs_geometry"][0]
    assert r.returncode == 0, r.stderr
    assert "repaired buildings 1" in r.stdout and "EPSG:32633" in r.stdout and "UTM" in r.stdout


# -- bad input: import (each returns its command, and the --out folder that must stay untouched) ----
@case
def bad_import_missing_source(tmp, real):
    return ["city", "import", tmp / "nowhere.osm.pbf", "--out", user_out(tmp)], user_out_of(tmp)


def user_out_of(tmp):
    return tmp / "out"


@case
def bad_import_unknown_extension(tmp, real):
    (tmp / "data.xyz").write_text("hello")
    return ["city", "import", tmp / "data.xyz", "--out", user_out(tmp)], user_out_of(tmp)


def _garbage(tmp, name):
    (tmp / name).write_bytes(np.random.default_rng(len(name)).bytes(4096))
    return ["city", "import", tmp / name, "--out", user_out(tmp)], user_out_of(tmp)


@case
def bad_import_corrupt_gpkg(tmp, real):
    return _garbage(tmp, "broken.gpkg")


@case
def bad_import_corrupt_pbf(tmp, real):
    return _garbage(tmp, "broken.osm.pbf")


@case(in_process=True)
def bad_import_corrupt_geojson(tmp, real):
    return _garbage(tmp, "broken.geojson")


@case
def bad_import_corrupt_geotiff(tmp, real):
    (tmp / "dem.tif").write_bytes(b"II*\x00" + np.random.default_rng(1).bytes(2048))
    return ["city", "import", good_buildings(tmp), tmp / "dem.tif", "--out", user_out(tmp)], user_out_of(tmp)


@case
def bad_import_layer_without_crs(tmp, real):
    g = gpd.GeoDataFrame({"height": [10.0]}, geometry=[box(0, 0, 10, 10)], crs="EPSG:32633")
    g.to_file(tmp / "houses.shp")
    (tmp / "houses.prj").unlink()
    return ["city", "import", tmp / "houses.shp", "--out", user_out(tmp)], user_out_of(tmp)


@case
def bad_import_empty_layer(tmp, real):
    (tmp / "empty.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    return ["city", "import", tmp / "empty.geojson", "--out", user_out(tmp)], user_out_of(tmp)


@case
def bad_import_dem_not_overlapping(tmp, real):
    with rasterio.open(tmp / "far.tif", "w", driver="GTiff", width=20, height=20, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(LON + 2, LAT + 2, 0.001, 0.001)) as dst:
        dst.write(np.full((20, 20), 300, np.float32), 1)
    return ["city", "import", good_buildings(tmp), tmp / "far.tif", "--out", user_out(tmp)], user_out_of(tmp)


@case(in_process=True)
def bad_import_gates_without_id(tmp, real):
    g = gpd.GeoDataFrame({"kind": ["exit"]}, geometry=[LineString([(0, 0), (0, 5)])], crs="EPSG:32633")
    g.to_file(tmp / "station.gpkg", layer="gates", driver="GPKG")
    return ["city", "import", tmp / "station.gpkg", "--out", user_out(tmp)], user_out_of(tmp)


@case
def bad_import_duplicated_ids(tmp, real):
    g = gpd.GeoDataFrame({"id": ["G1", "G1"]}, geometry=[LineString([(0, 0), (0, 5)]), LineString([(9, 0), (9, 5)])],
                         crs="EPSG:32633")
    g.to_file(tmp / "station.gpkg", layer="gates", driver="GPKG")
    return ["city", "import", tmp / "station.gpkg", "--out", user_out(tmp)], user_out_of(tmp)


@case(in_process=True)
def bad_import_geographic_crs_option(tmp, real):
    return ["city", "import", good_buildings(tmp), "--out", user_out(tmp), "--crs", "EPSG:4326"], user_out_of(tmp)


# -- bad input: city packages (City.load, through `city info`) -------------------------------------
def make_package(folder: Path, toml: str | None = None, **layers) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "city.toml").write_text(toml or '[city]\nname = "T"\ncrs = "EPSG:32633"\n')
    for name, gdf in layers.items():
        gdf.to_file(folder / "city.gpkg", layer=name, driver="GPKG")
    return folder


def gate_lines(ids):
    cols = {"id": ids} if ids is not None else {"kind": ["exit"]}
    return gpd.GeoDataFrame(cols, geometry=[LineString([(i * 10, 0), (i * 10, 5)]) for i in range(len(ids or [0]))],
                            crs="EPSG:32633")


def one_building(crs="EPSG:32633", geom=None):
    return gpd.GeoDataFrame({"height_m": [5.0]}, geometry=[geom or box(0, 0, 5, 5)], crs=crs)


@case(in_process=True)
def bad_info_missing_folder(tmp, real):
    return ["city", "info", tmp / "nope"], None


@case
def bad_info_geographic_crs(tmp, real):
    return ["city", "info", make_package(tmp / "c", '[city]\nname = "T"\ncrs = "EPSG:4326"\n')], None


@case
def bad_info_gates_without_id(tmp, real):
    return ["city", "info", make_package(tmp / "c", gates=gate_lines(None))], None


@case
def bad_info_duplicated_ids(tmp, real):
    return ["city", "info", make_package(tmp / "c", gates=gate_lines(["N1", "N2", "N1"]))], None


@case(in_process=True)
def bad_info_layer_without_crs(tmp, real):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "'crs' was not provided": that is the point
        pkg = make_package(tmp / "c", buildings=one_building(crs=None))
    return ["city", "info", pkg], None


@case(in_process=True)
def bad_info_corrupt_gpkg(tmp, real):
    pkg = make_package(tmp / "c")
    (pkg / "city.gpkg").write_bytes(np.random.default_rng(2).bytes(5000))
    return ["city", "info", pkg], None


@case
def bad_info_corrupt_dem(tmp, real):
    pkg = make_package(tmp / "c", buildings=one_building())
    (pkg / "dem.tif").write_bytes(np.random.default_rng(3).bytes(3000))
    return ["city", "info", pkg], None


@case(in_process=True)
def bad_info_dem_not_overlapping(tmp, real):
    pkg = make_package(tmp / "c", buildings=one_building())
    with rasterio.open(pkg / "dem.tif", "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(90_000, 90_000, 1, 1)) as dst:
        dst.write(np.ones((4, 4), np.float32), 1)
    return ["city", "info", pkg], None


@case(in_process=True)
def info_repairs_invalid_geometry(tmp, real):
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10), (0, 0)])
    pkg = make_package(tmp / "c", buildings=one_building(geom=bowtie))
    return ["city", "info", pkg], pkg


EXPECTED = {
    "bad_import_missing_source": ["nowhere.osm.pbf: no such file"],
    "bad_import_unknown_extension": ["data.xyz: unknown kind of file (.xyz)", ".gpkg"],
    "bad_import_corrupt_gpkg": ["broken.gpkg: cannot open it as GeoPackage", "QGIS"],
    "bad_import_corrupt_pbf": ["broken.osm.pbf: cannot read it as OpenStreetMap data"],
    "bad_import_corrupt_geojson": ["broken.geojson: cannot open it as GeoJSON"],
    "bad_import_corrupt_geotiff": ["dem.tif: cannot open it as a raster DEM", "gdalinfo"],
    "bad_import_layer_without_crs": ["houses.shp, layer 'houses': the layer has no CRS", "-a_srs"],
    "bad_import_empty_layer": ["empty.geojson", "the layer is empty"],
    "bad_import_dem_not_overlapping": ["far.tif: the DEM", "does not overlap the city's vector data"],
    "bad_import_gates_without_id": ["station.gpkg, layer 'gates': the column 'id' is missing"],
    "bad_import_duplicated_ids": ["id 'G1' is used more than once"],
    "bad_import_geographic_crs_option": ["--crs: EPSG:4326 is geographic"],
    "bad_info_missing_folder": ["nope: no such city folder", "city import"],
    "bad_info_geographic_crs": ["city.toml: crs: EPSG:4326 is geographic", "UTM"],
    "bad_info_gates_without_id": ["city.gpkg, layer 'gates': column(s) id missing", "unique ids such as G1"],
    "bad_info_duplicated_ids": ["layer 'gates': id 'N1' is used more than once", "features [0, 2]"],
    "bad_info_layer_without_crs": ["layer 'buildings': the layer has no CRS"],
    "bad_info_corrupt_gpkg": ["city.gpkg: cannot open as a GeoPackage"],
    "bad_info_corrupt_dem": ["dem.tif: cannot read the DEM as a GeoTIFF"],
    "bad_info_dem_not_overlapping": ["does not overlap the city's layers"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_exits_2_with_a_clear_message(runs, name):
    result, _, out, before = runs[name]
    assert_user_error(result, EXPECTED[name], out=out, before=before)
    if out is not None:
        assert snapshot(out) == {"notes.txt": b"mine\n"}


def test_every_bad_case_is_checked():
    assert {n for n in CASES if n.startswith("bad_")} == set(EXPECTED)


def test_info_repairs_invalid_geometry(runs):
    r, pkg, _, _ = runs["info_repairs_invalid_geometry"]
    assert r.returncode == 0, r.stderr
    city = City.load(pkg)
    assert city.buildings.is_valid.all() and city.buildings.attrs.get("repaired") == 1


def test_the_demo_citys_own_geopackage_imports_back(tmp_path):
    """A package CityTwin wrote imports back (issue 19), with the models' extra layers (connectors,
    barriers) kept by name instead of being mistaken for contract layers ("barriers" for obstacles)."""
    root = Path(__file__).resolve().parents[2] / "gis_data" / "demo_city"
    out = tmp_path / "again"
    r = citytwin("city", "import", root / "city.gpkg", root / "dem.tif", "--out", out)
    assert r.returncode == 0, r.stderr
    a, b = City.load(root), City.load(out)
    for name in ("buildings", "roads", "walkable", "obstacles", "gates", "sources", "pois", "water", "drains"):
        assert len(b.layers[name]) == len(a.layers[name]), name
    from agents.registry import get_model

    for model, layer in (("station_dispersal", "connectors"), ("flood", "barriers")):
        spec = next(s for s in get_model(model).extra_layers if s.name == layer)
        assert len(b.extra_layer(spec)) == len(a.extra_layer(spec)) > 0, layer
    assert "connectors" in r.stdout and "barriers" in r.stdout
