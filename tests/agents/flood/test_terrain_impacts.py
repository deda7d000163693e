"""The flood raster from a DEM (resampling, buildings, refusals) and the feature-to-cell maps with
their per-feature reductions."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from agents.flood import impacts
from agents.flood.terrain import (BYTES_PER_CELL_WITH_MARGIN, RasterGrid, build_raster, build_raster_from_field,
                                  check_memory, check_open_cell, resample_dem)
from twin.core.errors import UserError
from twin.core.grid import GridField

X0, Y0 = 500_000.0, 3_000_400.0  # a UTM-like top-left corner


def plane(ny, nx, cell, a=0.02, b=-0.03, c=12.0):
    xs = X0 + (np.arange(nx) + 0.5) * cell
    ys = Y0 - (np.arange(ny) + 0.5) * cell
    return c + a * (xs[None, :] - X0) + b * (ys[:, None] - Y0)


def test_bilinear_resampling_reproduces_a_plane():
    dem = plane(40, 50, 5.0)
    z, grid = resample_dem(dem, X0, Y0, 5.0, 2.0)
    assert grid.shape == (100, 125) and grid.x0 == X0 and grid.y0 == Y0
    xs, ys = grid.centres()
    inside = (xs[None, :] > X0 + 2.5) & (xs[None, :] < X0 + 247.5) & (ys[:, None] < Y0 - 2.5) & (ys[:, None] > Y0 - 197.5)
    want = 12.0 + 0.02 * (xs[None, :] - X0) - 0.03 * (ys[:, None] - Y0)
    np.testing.assert_allclose(z[inside], np.broadcast_to(want, z.shape)[inside], rtol=0, atol=1e-9)


def test_gridfield_dem_and_buildings_become_blocked_cells():
    dem = GridField("dem", plane(20, 20, 10.0).astype(np.float32), X0, Y0, 10.0, "m")
    house = shapely.box(X0 + 40, Y0 - 60, X0 + 60, Y0 - 40)  # 20 m × 20 m
    r = build_raster_from_field(dem, 5.0, [house])
    assert r.z.shape == (40, 40)
    assert r.blocked.sum() == 16  # 4 × 4 cells of 5 m
    rows, cols = np.nonzero(r.blocked)
    assert rows.min() == 8 and rows.max() == 11 and cols.min() == 8 and cols.max() == 11
    with pytest.raises(UserError, match="inside a building"):
        check_open_cell(r.blocked, (9, 9), "mobile pump P2")
    check_open_cell(r.blocked, (0, 0), "mobile pump P2")


def test_dem_with_holes_is_refused_with_a_place():
    dem = plane(20, 20, 10.0)
    dem[5:7, 3] = np.nan
    with pytest.raises(UserError, match=r"2 no-data cells, for example at x 500035.0, y 3000345.0"):
        build_raster(dem, X0, Y0, 10.0, 5.0)


def test_too_fine_a_grid_is_refused_with_a_size_that_fits():
    dem = plane(20, 20, 10.0)  # 200 m × 200 m
    one_gib = 2**30
    with pytest.raises(UserError, match=r"need about .* GiB; this machine has 1.0 GiB available. Use cell_size_m of at least") as e:
        build_raster(dem, X0, Y0, 10.0, 0.01, available_memory=one_gib)  # 400 million cells
    fit = float(str(e.value).split("at least ")[1].split(" m")[0])
    check_memory(200, 200, fit, available=one_gib)  # the suggested size does fit
    assert (200 / fit) ** 2 * BYTES_PER_CELL_WITH_MARGIN <= 0.8 * one_gib
    assert (200 / (0.9 * fit)) ** 2 * BYTES_PER_CELL_WITH_MARGIN > 0.8 * one_gib  # and is close to the limit


def test_points_off_the_grid_are_refused():
    grid = RasterGrid(X0, Y0, 2.0, 100, 100)
    assert grid.cell_of(X0 + 3.0, Y0 - 1.0, "inflow") == (0, 1)
    with pytest.raises(UserError, match=r"inflow 'river' at \(500300.0, 3000300.0\) lies outside the flood grid"):
        grid.cell_of(X0 + 300, Y0 - 100, "inflow 'river'")


def test_building_cells_and_their_ring():
    grid = RasterGrid(X0, Y0, 1.0, 20, 20)
    big = shapely.box(X0 + 2, Y0 - 6, X0 + 5, Y0 - 4)  # 3 × 2 cells
    tiny = shapely.box(X0 + 10.2, Y0 - 10.8, X0 + 10.4, Y0 - 10.6)  # holds no cell centre
    indptr, cells = impacts.building_cells([big, tiny, None], grid)
    assert list(np.diff(indptr)) == [6, 1, 0]
    assert set(cells[:6]) == {r * 20 + c for r in (4, 5) for c in (2, 3, 4)}
    assert cells[6] == 10 * 20 + 10
    blocked = np.zeros(grid.shape, bool)
    blocked.ravel()[cells] = True
    ip, ring = impacts.building_cells([big], grid, blocked=blocked, ring=True)
    assert len(ring) == 5 * 4 - 6  # the 5 × 4 box around it, less the footprint
    assert not blocked.ravel()[ring].any()


def reference_line_cells(line, grid, n=20000):
    """Cells under a densely sampled line (a superset check for the exact traversal)."""
    pts = [line.interpolate(d) for d in np.linspace(0, line.length, n)]
    r, c = grid.index_of([p.x for p in pts], [p.y for p in pts])
    ok = grid.inside(r, c)
    return set((r[ok] * grid.nx + c[ok]).tolist())


@pytest.mark.slow
def test_line_cells_follow_the_line_exactly():
    grid = RasterGrid(X0, Y0, 2.0, 50, 60)
    roads = [shapely.LineString([(X0 + 1.3, Y0 - 3.7), (X0 + 77.1, Y0 - 61.9), (X0 + 90.0, Y0 - 20.2)]),
             shapely.LineString([(X0 - 20, Y0 - 50), (X0 + 40, Y0 - 50.5)]),  # starts off the grid
             shapely.MultiLineString([[(X0 + 10, Y0 - 90), (X0 + 10, Y0 - 70)], [(X0 + 100, Y0 - 2), (X0 + 104, Y0 - 2)]])]
    indptr, cells = impacts.line_cells(roads, grid)
    for k, road in enumerate(roads):
        got = set(cells[indptr[k]:indptr[k + 1]].tolist())
        parts = road.geoms if hasattr(road, "geoms") else [road]
        want = set().union(*(reference_line_cells(p, grid) for p in parts))
        assert want <= got  # every cell the line visibly crosses
        assert len(got - want) <= 2  # and at most corner touches beyond them


def test_segment_reductions_match_numpy():
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 2, 1000)
    sizes = rng.integers(0, 30, 200)
    indptr = np.concatenate([[0], np.cumsum(sizes)])
    cells = rng.integers(0, 1000, indptr[-1])
    mx = impacts.segment_max(values, indptr, cells)
    mean = impacts.segment_mean(values, indptr, cells)
    mn = impacts.segment_min(values, indptr, cells)
    for k in range(200):
        v = values[cells[indptr[k]:indptr[k + 1]]]
        if v.size == 0:
            assert np.isnan(mx[k]) and np.isnan(mean[k]) and np.isnan(mn[k])
        else:
            assert mx[k] == v.max() and mn[k] == v.min() and np.isclose(mean[k], v.mean(), rtol=1e-12)


def test_arrival_minimum_skips_cells_never_reached():
    values = np.array([np.nan, 30.0, np.nan, 12.0])
    indptr = np.array([0, 2, 3, 4])
    cells = np.array([0, 1, 2, 3])
    out = impacts.segment_min(values, indptr, cells)
    assert out[0] == 30.0 and np.isnan(out[1]) and out[2] == 12.0


def test_point_cells():
    grid = RasterGrid(X0, Y0, 2.0, 10, 10)
    assert list(impacts.point_cells([X0 + 1, X0 + 19.9, X0 + 25], [Y0 - 1, Y0 - 19.9, Y0 - 1], grid)) == [0, 99, -1]
