"""Fields over time: ``fields.nc`` (CF-1.8 NetCDF) or ``fields.zarr``, written frame by frame.

Each frame (every ``[outputs] field_interval_s``) is one ``xarray.Dataset`` built by
``frame_dataset``: the chosen fields of the model's snapshot on ``x``/``y`` cell centres in the
city CRS (``y`` from north to south, as in the GeoTIFFs), a ``level`` dimension (height above the
ground, ``axis = "Z"``) for a field with one band per floor level, ``time`` as CF time since the
scenario's start, and the units and long names the model declares (its ``FieldStyle``). The CRS is
written by rioxarray as the grid-mapping variable ``spatial_ref`` (CF parameters, ``crs_wkt``,
``spatial_ref`` and ``GeoTransform``, which GDAL and QGIS read).

The xarray pitfall: rioxarray records ``grid_mapping`` in a variable's ``encoding``, not its
``attrs``, and most operations on a DataArray drop the encoding, so a file written after them has
no ``grid_mapping`` and GDAL sees no CRS. ``frame_dataset`` therefore sets it last, and the NetCDF
writer copies it explicitly into each variable's attributes (tests/twin/test_research_outputs.py
reads it back with h5netcdf, xarray and GDAL).

Nothing is held in memory beyond one frame: the NetCDF file (h5netcdf) grows along an unlimited
``time`` dimension; the Zarr store is appended to along ``time``. Both are chunked one frame by
at most 512 x 512 cells and compressed (zlib level 1 with shuffle for NetCDF: level 4 took 1.5 times
as long for files 8 % smaller, on a synthetic 1100 x 1100 depth field; Zarr's default Zstandard),
so the dry land and the empty concourse cost almost nothing.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

CHUNK_CELLS = 512
GRID_MAPPING = "spatial_ref"
# Mantissa bits kept (of float32's 23): values are rounded to a relative precision of 2^-13 (1.2e-4,
# a quarter of a millimetre in 2 m) so that the trailing noise bits, which no compressor
# can shrink, are zeros. Integers up to 8192 (counts) stay exact.
KEEP_BITS = 12


def start_datetime(start_time: str | None, clock_start_s: float | None) -> dt.datetime:
    """t = 0 of the run: ``[outputs] start_time``, or an arbitrary day plus the model's time of day."""
    from twin.scenario.output_settings import DEFAULT_START

    if start_time:
        return dt.datetime.fromisoformat(start_time)
    return dt.datetime.fromisoformat(DEFAULT_START) + dt.timedelta(seconds=float(clock_start_s or 0.0))


def time_units(start: dt.datetime) -> str:
    return f"seconds since {start.isoformat(sep=' ')}"


def frame_dataset(time_s: float, grids: dict, styles: dict, crs, start: dt.datetime, attrs: dict):
    """One frame: ``grids`` ({name: GridField}) as an ``xarray.Dataset`` with CF metadata and the CRS."""
    import rioxarray  # noqa: F401 - registers the .rio accessor
    import xarray as xr

    data, coords = {}, {}
    for name, g in grids.items():
        xs, ys = g.cell_centres()
        dims = ("y", "x")
        coords.setdefault("x", ("x", xs, {"standard_name": "projection_x_coordinate", "long_name": "x coordinate of "
                                                  "projection (cell centre)", "units": "m", "axis": "X"}))
        coords.setdefault("y", ("y", ys, {"standard_name": "projection_y_coordinate", "long_name": "y coordinate of "
                                                  "projection (cell centre)", "units": "m", "axis": "Y"}))
        _check_same_grid(name, coords, xs, ys)
        values = bitround(np.asarray(g.values, dtype=np.float32))
        if values.ndim == 3:
            dims = ("level", "y", "x")
            z = np.array([g.band_z(k) for k in range(g.n_bands)], dtype=np.float64)
            coords.setdefault("level", ("level", z, {
                "long_name": "floor level: height above the ground", "standard_name": "height", "units": "m",
                "positive": "up", "axis": "Z", "level_names": ", ".join(g.band_names)}))
        style = styles.get(name)
        unit = (style.unit if style else "") or g.unit or "1"
        data[name] = xr.Variable(("time",) + dims, values[None], {
            "long_name": (style.doc if style else "") or g.doc or name, "units": _cf_unit(unit)})
    ds = xr.Dataset(data, coords={k: xr.Variable((v[0],), v[1], v[2]) for k, v in coords.items()})
    ds = ds.assign_coords(time=("time", np.array([time_s], dtype=np.float64), {
        "standard_name": "time", "long_name": "time", "axis": "T", "units": time_units(start),
        "calendar": "proleptic_gregorian"}))
    first = next(iter(grids.values()))
    ds = ds.rio.write_crs(crs.to_wkt() if hasattr(crs, "to_wkt") else crs, grid_mapping_name=GRID_MAPPING)
    ds = ds.rio.write_transform(first.transform(), grid_mapping_name=GRID_MAPPING)
    for name in grids:  # last: nothing after this may drop the encoding (see the module docstring)
        ds[name].encoding["grid_mapping"] = GRID_MAPPING
    ds.attrs.update({"Conventions": "CF-1.8", "title": attrs.get("title", "CityTwin fields over time"),
                     "institution": "CityTwin", "source": f"CityTwin {attrs.get('citytwin_version', '')}".strip(),
                     "history": f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} written by "
                                "CityTwin", **attrs})
    return ds


def bitround(values: np.ndarray, keep: int = KEEP_BITS) -> np.ndarray:
    """float32 values rounded (to nearest) to ``keep`` mantissa bits (numcodecs' BitRound)."""
    from numcodecs import BitRound

    out = BitRound(keep).encode(np.ascontiguousarray(values, dtype=np.float32))
    return np.asarray(out).view(np.float32).reshape(values.shape)


def _cf_unit(unit: str) -> str:
    """The models' units in UDUNITS spelling (persons are counts: dimensionless '1' per area)."""
    return {"persons/m2": "m-2", "m/s": "m s-1", "-": "1", "persons": "1"}.get(unit, unit)


def _check_same_grid(name, coords, xs, ys) -> None:
    if len(coords["x"][1]) != len(xs) or len(coords["y"][1]) != len(ys) or not (
            np.allclose(coords["x"][1], xs) and np.allclose(coords["y"][1], ys)):
        raise ValueError(f"field {name!r} lies on another grid than the model's other fields; write it separately")


class FieldSeriesWriter:
    """Appends one frame per call to ``path`` (a NetCDF file or a Zarr folder); ``close()`` finishes it."""

    def __init__(self, path: Path, fmt: str, styles: dict, crs, start: dt.datetime, attrs: dict):
        self.path, self.fmt, self.styles, self.crs, self.start, self.attrs = Path(path), fmt, styles, crs, start, attrs
        self.frames = 0
        self._nc = None

    def append(self, time_s: float, grids: dict) -> None:
        if self.fmt == "netcdf" and self._nc is not None:
            self._append_netcdf_values(time_s, grids)  # the file has the coordinates and attributes already
        else:
            ds = frame_dataset(time_s, grids, self.styles, self.crs, self.start, self.attrs)
            if self.fmt == "zarr":
                self._append_zarr(ds)
            else:
                self._append_netcdf(ds)
        self.frames += 1

    # -- Zarr: xarray appends along time ------------------------------------------------------------
    def _append_zarr(self, ds) -> None:
        if self.frames == 0:
            enc = {name: {"chunks": _chunks(ds[name].shape)} for name in ds.data_vars}
            enc["time"] = {"units": ds.time.attrs["units"], "calendar": ds.time.attrs["calendar"], "dtype": "f8",
                           "chunks": (1024,)}
            self._datetimes(ds).to_zarr(self.path, mode="w", encoding=enc, consolidated=True, zarr_format=2)
        else:
            self._datetimes(ds).to_zarr(self.path, append_dim="time", consolidated=True)

    def _datetimes(self, ds):
        """Time as datetimes, which xarray encodes with the units and calendar given on first write."""
        import xarray as xr

        t = ds.time
        when = np.datetime64(self.start, "ns") + np.round(t.values * 1e9).astype("timedelta64[ns]")
        attrs = {k: v for k, v in t.attrs.items() if k not in ("units", "calendar")}
        ds = ds.assign_coords(time=xr.Variable(("time",), when, attrs))
        for name in ds.data_vars:  # an explicit encoding= replaces the variables' own: keep it as an attribute
            ds[name].attrs["grid_mapping"] = ds[name].encoding.pop("grid_mapping", GRID_MAPPING)
        return ds

    # -- NetCDF: h5netcdf with an unlimited time dimension -------------------------------------------
    def _append_netcdf(self, ds) -> None:
        if self._nc is None:
            self._nc = self._create_netcdf(ds)
        f, n = self._nc, self.frames
        f.resize_dimension("time", n + 1)
        f.variables["time"][n] = float(ds.time.values[0])
        for name in ds.data_vars:
            f.variables[name][n, ...] = ds[name].values[0]

    def _append_netcdf_values(self, time_s: float, grids: dict) -> None:
        """A frame after the first: only the values (building the Dataset again, with rioxarray's copies,
        cost about as much as compressing the frame)."""
        f, n = self._nc, self.frames
        shapes = {name: f.variables[name].shape[1:] for name in grids}
        for name, g in grids.items():
            if tuple(np.shape(g.values)) != shapes[name]:
                raise ValueError(f"field {name}: a frame of shape {np.shape(g.values)}, the file's are {shapes[name]}")
        f.resize_dimension("time", n + 1)
        f.variables["time"][n] = float(time_s)
        for name, g in grids.items():
            f.variables[name][n, ...] = bitround(np.asarray(g.values, dtype=np.float32))

    def _create_netcdf(self, ds):
        import h5netcdf

        f = h5netcdf.File(self.path, "w")
        dims = {"time": None}
        dims.update({d: ds.sizes[d] for d in ds.dims if d != "time"})
        f.dimensions = dims
        for name in list(ds.coords):
            c = ds[name]
            if name == GRID_MAPPING:
                v = f.create_variable(name, (), "i4")
            elif name == "time":
                v = f.create_variable(name, ("time",), "f8", chunks=(1024,))
            else:
                v = f.create_variable(name, c.dims, c.dtype, data=c.values)
            v.attrs.update({k: _attr(a) for k, a in c.attrs.items()})
        for name in ds.data_vars:
            var = ds[name]
            v = f.create_variable(name, var.dims, "f4", chunks=_chunks(var.shape), compression="gzip",
                                  compression_opts=1, shuffle=True, fillvalue=np.float32(np.nan))
            v.attrs.update({k: _attr(a) for k, a in var.attrs.items()})
            v.attrs["grid_mapping"] = var.encoding.get("grid_mapping") or var.attrs.get("grid_mapping") or GRID_MAPPING
            v.attrs["comment"] = f"float32 rounded to {KEEP_BITS} mantissa bits (relative precision 2^-{KEEP_BITS + 1})"
        f.attrs.update({k: _attr(a) for k, a in ds.attrs.items()})
        return f

    def close(self) -> None:
        if self._nc is not None:
            self._nc.close()
            self._nc = None


def _chunks(shape) -> tuple[int, ...]:
    """One frame (and one level) per chunk, at most CHUNK_CELLS x CHUNK_CELLS cells."""
    return (1,) + tuple(1 for _ in shape[1:-2]) + tuple(min(s, CHUNK_CELLS) for s in shape[-2:])


def _attr(a):
    return a if isinstance(a, (str, int, float, np.number, np.ndarray)) else str(a)
