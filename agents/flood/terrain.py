"""The flood raster: the DEM resampled to the model's cell size, buildings as walls, and the checks
that refuse bad input before anything runs (no-data holes, a grid too big for memory, a point off
the grid, a pump inside a building)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from twin.core.errors import UserError

from . import memo

# What the solver holds per cell, in bytes: depth ×2 (float64), bed, friction, flows ×4, maxima ×2
# (float32), arrival time (float64), bed as given (float64), masks ×2; plus a fifth for row and
# block scratch and the building of the grid itself.
BYTES_PER_CELL = 2 * 8 + 2 * 4 + 4 * 4 + 2 * 4 + 8 + 8 + 2
BYTES_PER_CELL_WITH_MARGIN = int(BYTES_PER_CELL * 1.2) + 1


@dataclass(frozen=True)
class RasterGrid:
    """A north-up grid: ``x0, y0`` the top-left corner (m), square cells of ``cell_m``."""

    x0: float
    y0: float
    cell_m: float
    ny: int
    nx: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ny, self.nx)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0 - self.ny * self.cell_m, self.x0 + self.nx * self.cell_m, self.y0)

    def transform(self):
        from rasterio.transform import from_origin

        return from_origin(self.x0, self.y0, self.cell_m, self.cell_m)

    def index_of(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of points (may be off the grid: see ``inside``)."""
        col = np.floor((np.asarray(x, dtype=np.float64) - self.x0) / self.cell_m).astype(np.int64)
        row = np.floor((self.y0 - np.asarray(y, dtype=np.float64)) / self.cell_m).astype(np.int64)
        return row, col

    def inside(self, row, col) -> np.ndarray:
        return (row >= 0) & (row < self.ny) & (col >= 0) & (col < self.nx)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x of each column centre, y of each row centre."""
        return (self.x0 + (np.arange(self.nx) + 0.5) * self.cell_m,
                self.y0 - (np.arange(self.ny) + 0.5) * self.cell_m)

    def cell_of(self, x: float, y: float, what: str) -> tuple[int, int]:
        """The cell holding point (x, y), or a UserError naming ``what`` when it is off the grid."""
        r, c = self.index_of(x, y)
        if not self.inside(r, c):
            b = self.bounds
            raise UserError(f"{what} at ({x:.1f}, {y:.1f}) lies outside the flood grid "
                            f"(x {b[0]:.1f} to {b[2]:.1f}, y {b[1]:.1f} to {b[3]:.1f}); move it inside the DEM")
        return int(r), int(c)


def available_memory_bytes() -> int:
    """Memory the system can still give (MemAvailable), or total physical memory if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(width_m: float, height_m: float, cell_size_m: float, available: int | None = None) -> None:
    """Refuse a cell size whose grid would not fit in memory, saying what would."""
    available = available_memory_bytes() if available is None else int(available)
    cells = math.ceil(width_m / cell_size_m) * math.ceil(height_m / cell_size_m)
    need = cells * BYTES_PER_CELL_WITH_MARGIN
    if need > 0.8 * available:
        fit = math.sqrt(width_m * height_m * BYTES_PER_CELL_WITH_MARGIN / (0.8 * available))
        step = 10.0 ** (math.floor(math.log10(fit)) - 1)  # round up to two significant figures
        fit = round(math.ceil(fit / step) * step, 10)
        raise UserError(
            f"cell_size_m {cell_size_m:g} over {width_m:.0f} m × {height_m:.0f} m gives {cells:,} cells, which need "
            f"about {need / 2**30:.1f} GiB; this machine has {available / 2**30:.1f} GiB available. "
            f"Use cell_size_m of at least {fit:g} m.")


def resample_dem(values: np.ndarray, x0: float, y0: float, cell_m: float, cell_size_m: float,
                 name: str = "DEM", available_memory: int | None = None) -> tuple[np.ndarray, RasterGrid]:
    """The DEM (north-up, top-left corner ``x0, y0``, cells of ``cell_m``) bilinearly resampled to
    cells of ``cell_size_m`` over the same extent (the last row and column may reach a little past
    it, taking the edge value). Refuses no-data holes and grids too big for memory."""
    z = np.asarray(values, dtype=np.float64)
    if z.ndim != 2 or z.size == 0:
        raise UserError(f"{name}: expected a 2-D raster, got shape {z.shape}")
    holes = ~np.isfinite(z)
    if holes.any():
        r, c = np.argwhere(holes)[0]
        raise UserError(f"{name} has {int(holes.sum()):,} no-data cells, for example at x {x0 + (c + 0.5) * cell_m:.1f}, "
                        f"y {y0 - (r + 0.5) * cell_m:.1f}; fill the holes (e.g. gdal_fillnodata.py) and load it again")
    if not cell_size_m > 0:
        raise UserError(f"cell_size_m must be positive, got {cell_size_m}")
    height, width = z.shape[0] * cell_m, z.shape[1] * cell_m
    check_memory(width, height, cell_size_m, available_memory)
    grid = RasterGrid(float(x0), float(y0), float(cell_size_m),
                      max(1, math.ceil(height / cell_size_m - 1e-9)), max(1, math.ceil(width / cell_size_m - 1e-9)))
    xs, ys = grid.centres()
    # fractional source indices of the new centres (source centres at integer + 0.5)
    fx = np.clip((xs - x0) / cell_m - 0.5, 0.0, z.shape[1] - 1.0)
    fy = np.clip((y0 - ys) / cell_m - 0.5, 0.0, z.shape[0] - 1.0)
    c0 = np.minimum(np.floor(fx).astype(np.int64), max(z.shape[1] - 2, 0))
    r0 = np.minimum(np.floor(fy).astype(np.int64), max(z.shape[0] - 2, 0))
    c1 = np.minimum(c0 + 1, z.shape[1] - 1)
    r1 = np.minimum(r0 + 1, z.shape[0] - 1)
    wx = (fx - c0)[None, :]
    wy = (fy - r0)[:, None]
    top = z[np.ix_(r0, c0)] * (1 - wx) + z[np.ix_(r0, c1)] * wx
    bottom = z[np.ix_(r1, c0)] * (1 - wx) + z[np.ix_(r1, c1)] * wx
    return top * (1 - wy) + bottom * wy, grid


def polygons_mask(geoms, grid: RasterGrid, all_touched: bool = False) -> np.ndarray:
    """Cells whose centre lies in any of the polygons (or that they touch, with ``all_touched``)."""
    from rasterio import features

    shapes = [(g, 1) for g in geoms if g is not None and not g.is_empty]
    if not shapes:
        return np.zeros(grid.shape, bool)
    return features.rasterize(shapes, out_shape=grid.shape, transform=grid.transform(), fill=0,
                              all_touched=all_touched, dtype="uint8").astype(bool)


def check_open_cell(blocked: np.ndarray, cell: tuple[int, int], what: str) -> None:
    """Refuse a pump, drain or inflow placed in a blocked (building) cell."""
    r, c = cell
    if blocked[r, c]:
        raise UserError(f"{what} is inside a building (flood grid cell row {r}, col {c}); place it on open ground")


@dataclass
class FloodRaster:
    """The flood model's raster: bed ``z`` (m), ``blocked`` cells (buildings) and the grid."""

    z: np.ndarray
    blocked: np.ndarray
    grid: RasterGrid


def build_raster(dem_values: np.ndarray, x0: float, y0: float, dem_cell_m: float, cell_size_m: float,
                 buildings=(), name: str = "DEM", available_memory: int | None = None) -> FloodRaster:
    """Resample the DEM to ``cell_size_m`` and block the cells whose centre lies in a building."""
    def make():
        z, grid = resample_dem(dem_values, x0, y0, dem_cell_m, cell_size_m, name, available_memory)
        return z, polygons_mask(buildings, grid), grid

    key = memo.digest(np.asarray(dem_values), x0, y0, dem_cell_m, cell_size_m, list(buildings), available_memory)
    z, blocked, grid = memo.cached("raster", key, make)
    return FloodRaster(z.copy(), blocked.copy(), grid)  # barriers raise z in place


def build_raster_from_field(dem, cell_size_m: float, buildings=(), available_memory: int | None = None) -> FloodRaster:
    """``build_raster`` for a ``twin.core.grid.GridField`` (or anything with values, x0, y0, cell_m)."""
    return build_raster(dem.values, dem.x0, dem.y0, dem.cell_m, cell_size_m, buildings,
                        getattr(dem, "name", "DEM") or "DEM", available_memory)
