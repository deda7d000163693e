"""A raster in the city's metric CRS: the one shape every model, view and export shares for fields."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class GridField:
    """A north-up raster. Row 0 is the northern edge; ``x0, y0`` is the top-left corner in metres."""

    name: str
    values: np.ndarray  # (rows, cols), float32; NaN where the field is undefined
    x0: float
    y0: float
    cell_m: float
    unit: str = ""
    doc: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        rows, cols = self.values.shape
        return (self.x0, self.y0 - rows * self.cell_m, self.x0 + cols * self.cell_m, self.y0)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x of each column centre and y of each row centre."""
        rows, cols = self.values.shape
        xs = self.x0 + (np.arange(cols) + 0.5) * self.cell_m
        ys = self.y0 - (np.arange(rows) + 0.5) * self.cell_m
        return xs, ys

    def index_of(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of points (may fall outside the grid: check with ``inside``)."""
        col = np.floor((np.asarray(x) - self.x0) / self.cell_m).astype(np.int64)
        row = np.floor((self.y0 - np.asarray(y)) / self.cell_m).astype(np.int64)
        return row, col

    def inside(self, row, col) -> np.ndarray:
        rows, cols = self.values.shape
        return (row >= 0) & (row < rows) & (col >= 0) & (col < cols)

    def sample(self, x, y, outside: float = np.nan) -> np.ndarray:
        row, col = self.index_of(x, y)
        ok = self.inside(row, col)
        out = np.full(np.shape(row), outside, dtype=np.float64)
        out[ok] = self.values[row[ok], col[ok]]
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
