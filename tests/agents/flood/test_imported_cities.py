"""The flood on imported real cities (issue 20): Helsinki from OpenStreetMap with a generated terrain
model, and Prague Bubeneč from its GeoPackage and 1 m terrain model.

Water bodies start within their banks; a city without shelters says so (and one with schools or
public buildings gets estimated ones, marked as such); a closed boundary that holds water is
reported; street-side exits far from the station are not station entrances."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from agents.flood.model import FloodModel
from agents.flood.terrain import polygons_mask
from tests.conftest import DATA, ROOT
from twin.gis.city_import import import_city
from twin.core.city import City


@pytest.fixture(scope="module")
def helsinki_with_terrain(tmp_path_factory):
    """Helsinki's OSM extract with a generated terrain model: a slope of 1 % to the south-east with
    hills of ±3 m; every other water body of the extract is carved 1.5 m into it (a pond in a hollow),
    the others the terrain model does not know (as a DEM from elsewhere; the old rule, the 10th
    percentile of the outline and every connected cell below it, put 64 % of this map under up to
    24 m of water)."""
    out = tmp_path_factory.mktemp("helsinki_flood") / "city"
    import_city([DATA / "city" / "helsinki_central" / "Helsinki.osm.pbf"], out)
    city = City.load(out)
    x0, y0, x1, y1 = city.bounds
    cell = 2.0
    nx, ny = int((x1 - x0) / cell) + 1, int((y1 - y0) / cell) + 1
    xs = x0 + (np.arange(nx) + 0.5) * cell
    ys = y1 - (np.arange(ny) + 0.5) * cell
    xx, yy = np.meshgrid(xs, ys)
    z = 20.0 - 0.01 * (xx - x0) + 0.01 * (yy - y0) + 3.0 * np.sin((xx - x0) / 150.0) * np.cos((yy - y0) / 200.0)
    from agents.flood.terrain import RasterGrid

    grid = RasterGrid(x0, y1, cell, ny, nx)
    z -= 1.5 * polygons_mask(city.layer("water").geometry.values[::2], grid)  # every other one: the others the DEM misses
    with rasterio.open(out / "dem.tif", "w", driver="GTiff", width=nx, height=ny, count=1, dtype="float32",
                       crs=city.crs, transform=from_origin(x0, y1, cell, cell)) as dst:
        dst.write(z.astype("float32"), 1)
    return City.load(out)


@pytest.mark.slow
def test_helsinki_water_bodies_start_within_their_banks(helsinki_with_terrain):
    city = helsinki_with_terrain
    assert len(city.layer("water")) >= 3
    model = FloodModel(city, duration_s=60, seed=1, cell_size_m=4.0, rain="none", evacuate=True)
    h = model.solver.h
    cell = model.raster.grid.cell_m
    near_water = polygons_mask(city.layer("water").buffer(1.5 * cell).geometry.values, model.raster.grid)
    assert model.water, "the carved water bodies are water at the start"
    assert float(h[~near_water].max(initial=0.0)) == 0.0, "water outside the water bodies at the start"
    lowest_bank = {}
    inner = shapely.box(*city.bounds).buffer(-2 * cell)  # where the map cuts a polygon is no bank
    for name, fid, poly in zip(city.layer("water")["name"], city.layer("water")["id"], city.layer("water").geometry):
        outline = shapely.get_coordinates(shapely.segmentize(poly.boundary, cell))
        outline = outline[shapely.contains_xy(inner, outline[:, 0], outline[:, 1])]
        bank = float(np.nanmin(city.elevation_at(outline[:, 0], outline[:, 1])))
        key = str(name or fid)
        lowest_bank[key] = max(lowest_bank.get(key, -np.inf), bank)
    for body in model.water:
        assert body.level_m <= lowest_bank[body.name] + 1e-6, body.name
    assert float(h.max()) <= 1.5 + 1e-3  # no deeper than the hollow carved for it
    k = model.final_kpis()
    assert k["max_depth_m"] == 0.0
    # Helsinki's extract tags no emergency=assembly_point: public buildings stand in, and it says so
    assert len(model.shelters) and model.shelters["estimated"].all()
    assert any("shelter(s) estimated from the public buildings" in w for w in model.warnings)
    # the walkable-area exits out in the streets are not holes into the station
    assert set(model.entrance_ids) <= set(city.layer("gates")["id"].astype(str))


def test_prague_warns_about_missing_shelters_and_the_closed_boundary(tmp_path):
    """Bubeneč from its GeoPackage (tests/data: buildings, streets, the 1 m terrain model): no shelters,
    no schools, no public buildings."""
    import_city([DATA / "city" / "prague_bubenec" / "bubenec.gpkg"], tmp_path / "prague")
    city = City.load(tmp_path / "prague")
    model = FloodModel(city, duration_s=300, seed=1, cell_size_m=10.0, boundary="closed", rain="uniform",
                       rain_mm_per_h=400.0, rain_duration_s=300.0, evacuate=True, sync_interval_s=30.0,
                       report_interval_s=60.0)
    assert any("no shelters" in w and "emergency=assembly_point" in w for w in model.warnings)
    model.advance_to(300)
    model.final_kpis()
    held = [w for w in model.warnings if "closed map edge" in w]
    assert held and "boundary = \"auto\"" in held[0]
    # the default (auto) opens the edges where the terrain model runs out of the map: no wall, no warning
    auto = FloodModel(city, duration_s=300, seed=1, cell_size_m=10.0, rain="uniform", rain_mm_per_h=400.0,
                      rain_duration_s=300.0, evacuate=False, sync_interval_s=30.0, report_interval_s=60.0)
    auto.advance_to(300)
    assert auto.final_kpis()["outflow_volume_m3"] > 0
    assert not [w for w in auto.warnings if "closed map edge" in w]


def test_station_entrances_only_at_the_station():
    from agents.flood import site

    city = City.load(ROOT / "gis_data" / "demo_city")
    ids = set(site.station_entrances(city, city.layer("gates")))
    assert {"N1", "N2", "N3", "S1", "S2"} <= ids  # the exits onto the station's forecourt
    far = city.layer("gates").copy()
    far["geometry"] = far.geometry.translate(xoff=2000.0)  # the same gates 2 km away: no longer the station's
    assert len(site.station_entrances(city, far)) == 0
