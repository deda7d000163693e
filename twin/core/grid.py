"""A raster in the city's metric CRS: the one shape every model, view and export shares for fields."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class GridField:
    """A north-up raster. Row 0 is the northern edge; ``x0, y0`` is the top-left corner in metres.

    ``values`` is (rows, cols), or (bands, rows, cols) for a field with one band per floor level
    (a station's platforms above its concourse): ``band_names`` name the bands and ``band_z_m``
    is each band's height above the ground, where the view draws it. ``plane()`` folds the bands
    into one plan raster (the highest value at each cell) for consumers that draw one map.
    """

    name: str
    values: np.ndarray  # (rows, cols) or (bands, rows, cols), float32; NaN where the field is undefined
    x0: float
    y0: float
    cell_m: float
    unit: str = ""
    doc: str = ""
    meta: dict = field(default_factory=dict)
    band_names: tuple[str, ...] = ()
    band_z_m: tuple[float, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of one band."""
        return self.values.shape[-2:]

    @property
    def n_bands(self) -> int:
        return 1 if self.values.ndim == 2 else self.values.shape[0]

    def bands(self) -> list[np.ndarray]:
        """The bands as 2-D arrays (one for a plain raster)."""
        return [self.values] if self.values.ndim == 2 else list(self.values)

    def band_z(self, k: int) -> float:
        return float(self.band_z_m[k]) if k < len(self.band_z_m) else 0.0

    def plane(self) -> np.ndarray:
        """One plan raster: the values, or for several bands the highest defined value per cell."""
        if self.values.ndim == 2:
            return self.values
        v = np.asarray(self.values, dtype=np.float32)
        out = np.full(v.shape[1:], np.nan, dtype=np.float32)
        for b in v:
            out = np.where(np.isnan(out) | (b > out), b, out)
        return out

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        rows, cols = self.shape
        return (self.x0, self.y0 - rows * self.cell_m, self.x0 + cols * self.cell_m, self.y0)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x of each column centre and y of each row centre."""
        rows, cols = self.shape
        xs = self.x0 + (np.arange(cols) + 0.5) * self.cell_m
        ys = self.y0 - (np.arange(rows) + 0.5) * self.cell_m
        return xs, ys

    def index_of(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of points (may fall outside the grid: check with ``inside``)."""
        col = np.floor((np.asarray(x) - self.x0) / self.cell_m).astype(np.int64)
        row = np.floor((self.y0 - np.asarray(y)) / self.cell_m).astype(np.int64)
        return row, col

    def inside(self, row, col) -> np.ndarray:
        rows, cols = self.shape
        return (row >= 0) & (row < rows) & (col >= 0) & (col < cols)

    def sample(self, x, y, outside: float = np.nan, band: int | None = None) -> np.ndarray:
        """Values at points (of ``band``; by default of ``plane()``)."""
        row, col = self.index_of(x, y)
        ok = self.inside(row, col)
        out = np.full(np.shape(row), outside, dtype=np.float64)
        values = self.plane() if band is None else self.bands()[band]
        out[ok] = values[row[ok], col[ok]]
        return out

    def sample_near(self, x, y, radius_m: float, empty: float = 0.0) -> np.ndarray:
        """The highest value within ``radius_m`` (a square window, at least the cell itself) of each
        point, ignoring NaN (the value beside a door that lies on a building's edge); ``empty`` where
        the window holds no value."""
        values = self.plane()
        rows, cols = values.shape
        row, col = self.index_of(np.atleast_1d(x), np.atleast_1d(y))
        k = max(0, int(np.ceil(radius_m / self.cell_m)))
        out = np.full(row.shape, empty, dtype=np.float64)
        for i, (r, c) in enumerate(zip(row, col)):
            win = values[max(r - k, 0):min(r + k + 1, rows), max(c - k, 0):min(c + k + 1, cols)]
            if win.size and np.isfinite(win).any():
                out[i] = float(np.nanmax(win))
        return out

    def transform(self):
        from rasterio.transform import from_origin

        return from_origin(self.x0, self.y0, self.cell_m, self.cell_m)

    @classmethod
    def empty(cls, name: str, bounds, cell_m: float, fill: float = 0.0, unit: str = "") -> "GridField":
        """A grid covering ``bounds`` (minx, miny, maxx, maxy), snapped outward to whole cells."""
        minx, miny, maxx, maxy = bounds
        cols = max(1, int(np.ceil((maxx - minx) / cell_m)))
        rows = max(1, int(np.ceil((maxy - miny) / cell_m)))
        values = np.full((rows, cols), fill, dtype=np.float32)
        return cls(name, values, float(minx), float(miny + rows * cell_m), float(cell_m), unit)
