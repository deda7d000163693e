"""From a city and the flood model's parameters to the engine's inputs, with errors that name the
parameter or the feature at fault.

Every check here runs while the model is built, before the first time step: a DEM with no-data
holes, a cell size too fine for the memory, a rain record with gaps, an inflow off the grid, a pump
inside a building, an unknown road or gate id. The engine (``solver``, ``forcing``, ``terrain``)
checks the same things on its own inputs; this module says which parameter or feature they came from.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twin.core.city import fmt_bounds
from twin.core.errors import UserError, nearest

from .forcing import IDF, Hydrograph, Hyetograph, chicago_hyetograph, read_inflow_csv, read_rain_csv
from .solver import MAX_DEPTH_M, Inflow, PointSink, WaterBody
from .terrain import FloodRaster, RasterGrid, build_raster, polygons_mask

WHERE = "parameters of model flood"
# A point feature (drain, pump, entrance) whose cell is a building cell but which lies outside every
# building polygon (the footprint was rasterised by cell centres) moves to the nearest open cell
# within this many cells.
SNAP_CELLS = 2


def param_error(name: str, message: str) -> UserError:
    return UserError(f'{WHERE}: "{name}": {message}')


def reraise(name: str):
    """Context manager: a UserError from the engine, prefixed with the parameter it came from."""
    from contextlib import contextmanager

    @contextmanager
    def ctx():
        try:
            yield
        except UserError as e:
            raise param_error(name, str(e)) from None

    return ctx()


# -- the grid -------------------------------------------------------------------------------------------
def flood_raster(city, buildings, cell_size_m: float) -> FloodRaster:
    """The DEM resampled to ``cell_size_m`` (its own cell size when 0), buildings blocked. The
    engine refuses a DEM with no-data holes (naming the file) and a grid too big for the memory
    (naming ``cell_size_m`` and the smallest that fits)."""
    if city.terrain is None:
        where = city.root or city.name
        raise UserError(f"{where}: model 'flood' needs a DEM (dem.tif in the city package); this city has none. "
                        "Add one (`citytwin city import ... dem.tif`) and try again.")
    dem = city.terrain.grid
    name = f"{city.root / 'dem.tif'}" if city.root else "the DEM"
    return build_raster(dem.values, dem.x0, dem.y0, dem.cell_m, cell_size_m or dem.cell_m,
                        buildings.geometry.values, name)


def parse_lines(values, name: str, layer=None, layer_name: str = "") -> list:
    """Lines given as WKT (city CRS) or as ids of features of an extra ``layer``."""
    from shapely import wkt

    ids = {} if layer is None or not len(layer) else dict(zip(layer["id"].astype(str), layer.geometry))
    out = []
    for v in values:
        s = str(v).strip()
        if s in ids:
            out.append(ids[s])
            continue
        try:
            g = wkt.loads(s)
        except Exception:
            known = f"; the city's {layer_name} layer has: {', '.join(sorted(ids)) or 'no features'}" if layer_name else ""
            raise param_error(name, f'"{s[:60]}" is neither WKT (e.g. "LINESTRING (500400 3400600, 500600 '
                              f'3400650)") nor the id of a feature{nearest(s, ids)}{known}.') from None
        if g.geom_type not in ("LineString", "MultiLineString", "Polygon", "MultiPolygon") or g.is_empty:
            raise param_error(name, f'"{s[:60]}" is a {g.geom_type}; give a LINESTRING (or a polygon, whose outline is used).')
        out.append(g.boundary if "Polygon" in g.geom_type else g)
    return out


def raise_barriers(raster: FloodRaster, lines, height_m: float, name: str) -> np.ndarray:
    """Raise the bed by ``height_m`` on every cell the lines cross (4-connected, so water cannot
    slip between two diagonal cells). Returns the raised cells' mask."""
    from .impacts import line_cells

    grid = raster.grid
    raised = np.zeros(grid.shape, bool)
    for k, g in enumerate(lines):
        indptr, cells = line_cells([g], grid)
        if not len(cells):
            b = grid.bounds
            raise param_error(name, f"line {k + 1} lies outside the flood grid (x {b[0]:.0f} to {b[2]:.0f}, "
                              f"y {b[1]:.0f} to {b[3]:.0f}).")
        raised.ravel()[cells] = True
    raster.z[raised] += height_m
    return raised


def manning(city, p, grid: RasterGrid, landuse_path: Path | None):
    """Manning's n: one value, or one per land-use class from the city's ``landuse.tif``."""
    table = p["manning_by_landuse"]
    if not table:
        return p["manning_n"]
    if landuse_path is None:
        raise param_error("manning_by_landuse", "is given but the city has no landuse.tif raster of land-use "
                          "classes (0, 1, 2, ...); add one to the city package or leave the parameter empty.")
    classes = resample_raster(landuse_path, city.crs, grid, "nearest", "landuse.tif")
    bad = ~np.isfinite(classes) | (classes < 0) | (classes >= len(table)) | (classes != np.round(classes))
    if bad.any():
        v = classes[bad][0]
        raise param_error("manning_by_landuse", f"{landuse_path} holds the class {v:g}, which has no entry; the list "
                          f"has {len(table)} values for classes 0 to {len(table) - 1} (give one per class).")
    return np.asarray(table, dtype=np.float64)[classes.astype(np.int64)]


def resample_raster(path: Path, crs, grid: RasterGrid, how: str, what: str, fill: float = np.nan) -> np.ndarray:
    """A GeoTIFF read onto the flood grid (reprojected if needed); ``fill`` where it has no data."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioError
    from rasterio.warp import reproject

    out = np.full(grid.shape, np.nan, dtype=np.float64)
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise UserError(f"{path}: {what} has no CRS; set one (e.g. gdal_edit.py -a_srs {crs.to_string()}).")
            reproject(source=rasterio.band(src, 1), destination=out, dst_transform=grid.transform(), dst_crs=crs,
                      dst_nodata=np.nan, resampling=getattr(Resampling, how))
    except (RasterioError, OSError) as e:
        raise UserError(f"{path}: cannot read {what} as a GeoTIFF ({str(e).splitlines()[0]}).") from None
    return np.where(np.isfinite(out), out, fill)


def initial_depth(p, crs, grid: RasterGrid) -> np.ndarray | None:
    path = p["initial_depth"]
    if not path:
        return None
    with reraise("initial_depth"):
        d = resample_raster(Path(path), crs, grid, "bilinear", "the initial depth", fill=np.nan)
        if not np.isfinite(d).any():
            raise UserError(f"{path} does not overlap the flood grid (extent {fmt_bounds(grid.bounds)}): it is "
                            "off the map or in a CRS that places it elsewhere. Give a raster of this city's area.")
        d = np.where(np.isfinite(d), d, 0.0)  # no depth where the raster has none
        if (d > MAX_DEPTH_M).any():
            r, c = np.argwhere(d > MAX_DEPTH_M)[0]
            raise UserError(f"{path} holds a depth of {d[r, c]:g} m (at grid row {r}, col {c}); depths above "
                            f"{MAX_DEPTH_M:g} m are not water on a street. Mark such cells as nodata or fix the raster.")
        if (d < 0).any():
            r, c = np.argwhere(d < 0)[0]
            raise UserError(f"{path} has negative depths (e.g. {d[r, c]:g} m at grid row {r}, col {c}); depths are "
                            "0 or more.")
    return d


def water_bodies(city, p, raster: FloodRaster) -> list[WaterBody]:
    """Water bodies of the ``water`` layer at their level: the ``level_m`` column, else the lowest
    ground along the polygon's banks (``bank_level``), plus ``water_level_rise_m``. A body is its
    polygon's cells and the cells next to them (one cell: what the rasterised outline misses) that
    lie below its level; beyond that the water would be spilling over land, which a body at rest
    at its lowest bank does not do."""
    from scipy import ndimage

    water = city.layer("water")
    out = []
    if not len(water):
        return out
    grid = raster.grid
    blocked = raster.blocked
    for i in range(len(water)):
        g = water.geometry.iloc[i]
        name = str(water["name"].iloc[i] or water["id"].iloc[i])
        mask = polygons_mask([g], grid) & ~blocked
        if not mask.any():
            continue
        level = water["level_m"].iloc[i] if "level_m" in water.columns else np.nan
        if not np.isfinite(level):
            level = bank_level(city, g, grid)
        if not np.isfinite(level):  # no bank on the terrain model: nothing says how full it is
            continue
        level = float(level) + p["water_level_rise_m"]
        below = (raster.z < level) & ~blocked
        body = mask | (below & ndimage.binary_dilation(mask, iterations=1))
        out.append(WaterBody(body, level, name))
    return out


def bank_level(city, polygon, grid: RasterGrid) -> float:
    """The lowest ground along a water polygon's banks: a body full to its lowest bank, never above
    it (else the water would spill over the land at the start). The outline where the map cuts the
    polygon (within two cells of the grid's edge, where a river or the sea leaves the map) is not a
    bank; nor is ground the terrain model does not cover."""
    import shapely

    outline = shapely.segmentize(polygon.boundary, max(grid.cell_m, 0.5))
    xy = shapely.get_coordinates(outline)
    z = city.elevation_at(xy[:, 0], xy[:, 1])
    ny, nx = grid.shape
    margin = 2.0 * grid.cell_m
    inner = ((xy[:, 0] > grid.x0 + margin) & (xy[:, 0] < grid.x0 + nx * grid.cell_m - margin)
             & (xy[:, 1] < grid.y0 - margin) & (xy[:, 1] > grid.y0 - ny * grid.cell_m + margin))
    banks = z[inner & np.isfinite(z)]
    if not banks.size:  # the polygon lies along the map's edges only: its whole outline
        banks = z[np.isfinite(z)]
    return float(banks.min()) if banks.size else float("nan")


# -- rain -------------------------------------------------------------------------------------------------
def rain(p, duration_s: float) -> Hyetograph | None:
    """The rain of the parameters, every intensity × ``rain_scale``."""
    h = _rain(p, duration_s)
    if h is None or p["rain_scale"] == 1.0:
        return h
    return Hyetograph(h.edges_s, h.intensity_mm_per_h * p["rain_scale"])


def _rain(p, duration_s: float) -> Hyetograph | None:
    kind = p["rain"]
    if kind == "none":
        return None
    if kind == "uniform":
        if p["rain_mm_per_h"] <= 0:
            return None
        with reraise("rain_duration_s"):
            return Hyetograph.uniform(p["rain_mm_per_h"], p["rain_start_s"], p["rain_duration_s"])
    if kind == "hyetograph":
        series = p["hyetograph"]
        if not series:
            raise param_error("hyetograph", 'rain = "hyetograph" needs a hyetograph: [[t_s, mm_per_h], ...] or a CSV '
                              "of two columns.")
        t, v = series.arrays
        end = max(float(t[-1]), duration_s) + 1.0
        with reraise("hyetograph"):
            return Hyetograph(np.append(t, end), v)
    if kind == "gauge_csv":
        if not p["rain_file"]:
            raise param_error("rain_file", 'rain = "gauge_csv" needs rain_file, a CSV rain record (see docs/flood.md).')
        with reraise("rain_file"):
            return read_rain_csv(p["rain_file"])
    idf = IDF.from_q_form(p["idf_a"], p["idf_c"], p["idf_b_min"], p["idf_n"], name="storm formula")
    with reraise("storm_peak_ratio"):
        return chicago_hyetograph(idf, p["storm_return_period_yr"], p["storm_duration_min"], p["storm_peak_ratio"],
                                  p["storm_step_min"], p["storm_start_s"])


# -- inflows ---------------------------------------------------------------------------------------------
def inflows(city, p, raster: FloodRaster, inflow_layer) -> list[Inflow]:
    out = []
    if p["inflow_file"] or p["inflow_at"]:
        if not (p["inflow_file"] and p["inflow_at"]):
            missing = "inflow_at" if p["inflow_file"] else "inflow_file"
            raise param_error(missing, "an inflow needs both inflow_file (the hydrograph CSV) and inflow_at (where it "
                              "enters: WKT POINT or LINESTRING, or the id of a feature of the city's inflows layer).")
        with reraise("inflow_file"):
            hydro = read_inflow_csv(p["inflow_file"])
        geom = _inflow_geometry(p["inflow_at"], inflow_layer)
        out.append(Inflow(_inflow_cells(geom, raster, 'parameter "inflow_at"'), hydro, "inflow_at"))
    if p["city_inflows"] and inflow_layer is not None and len(inflow_layer):
        for i in range(len(inflow_layer)):
            fid = str(inflow_layer["id"].iloc[i])
            what = f"{city.gpkg}, layer 'inflows', feature {fid}"
            rel = str(inflow_layer["hydrograph"].iloc[i])
            path = Path(rel) if Path(rel).is_absolute() else city.root / rel
            try:
                hydro = read_inflow_csv(path)
            except UserError as e:
                raise UserError(f"{what}: {e}") from None
            out.append(Inflow(_inflow_cells(inflow_layer.geometry.iloc[i], raster, what), hydro, fid))
    return out


def _inflow_geometry(value: str, layer):
    from shapely import wkt

    ids = {} if layer is None or not len(layer) else dict(zip(layer["id"].astype(str), layer.geometry))
    s = value.strip()
    if s in ids:
        return ids[s]
    try:
        g = wkt.loads(s)
    except Exception:
        raise param_error("inflow_at", f'"{s[:60]}" is neither WKT (e.g. "POINT (500100 3400380)") nor the id of a '
                          f"feature of the city's inflows layer{nearest(s, ids)}.") from None
    if g.geom_type not in ("Point", "LineString") or g.is_empty:
        raise param_error("inflow_at", f"is a {g.geom_type}; give a POINT or a LINESTRING.")
    return g


def _inflow_cells(geom, raster: FloodRaster, what: str) -> np.ndarray:
    from .impacts import line_cells

    grid = raster.grid
    if geom.geom_type == "Point":
        r, c = grid.cell_of(geom.x, geom.y, what)
        cells = np.array([[r, c]])
    else:
        _, flat = line_cells([geom], grid)
        if not len(flat):
            b = grid.bounds
            raise UserError(f"{what}: the line lies outside the flood grid (x {b[0]:.1f} to {b[2]:.1f}, y {b[1]:.1f} "
                            f"to {b[3]:.1f}); move it inside the DEM.")
        xy = np.asarray(geom.coords)
        for x, y in (xy[0], xy[-1]):
            grid.cell_of(x, y, f"{what} (an end of the line)")
        cells = np.column_stack(np.divmod(flat, grid.nx))
    open_ = ~raster.blocked[cells[:, 0], cells[:, 1]]
    if not open_.any():
        r, c = cells[0]
        raise UserError(f"{what} lies inside a building (flood grid cell row {r}, col {c}); place it on open ground.")
    return cells[open_]


# -- point sinks ------------------------------------------------------------------------------------------
@dataclass
class Sinks:
    """Drain inlets (with the entrances into the station after them) and pumps, as the solver takes them."""

    drains: list[PointSink] = field(default_factory=list)
    pumps: list[PointSink] = field(default_factory=list)
    n_drains: int = 0  # drains[:n_drains] are the drains layer, the rest station entrances
    entrance_ids: list[str] = field(default_factory=list)
    pump_names: list[str] = field(default_factory=list)


class PointPlacer:
    """Puts point features on open cells of the flood grid, or says which building they are in."""

    def __init__(self, raster: FloodRaster, buildings):
        import shapely

        self.raster = raster
        self.geoms = buildings.geometry.values
        self.ids = buildings["id"].astype(str).to_numpy() if len(buildings) else np.zeros(0, object)
        self.tree = shapely.STRtree(self.geoms) if len(self.geoms) else None

    def cell(self, x: float, y: float, what: str) -> tuple[int, int]:
        import shapely

        grid, blocked = self.raster.grid, self.raster.blocked
        if self.tree is not None:
            hit = self.tree.query(shapely.Point(x, y), predicate="within")
            if len(hit):
                k = int(hit[0])
                raise UserError(f"{what} at ({x:.1f}, {y:.1f}) lies inside building {self.ids[k]}; place it on open "
                                "ground (a street, a yard).")
        r, c = grid.cell_of(x, y, what)
        if not blocked[r, c]:
            return r, c
        # the point is outside every footprint but its cell's centre is inside one: nearest open cell
        n = SNAP_CELLS
        r0, r1, c0, c1 = max(r - n, 0), min(r + n + 1, grid.ny), max(c - n, 0), min(c + n + 1, grid.nx)
        rr, cc = np.nonzero(~blocked[r0:r1, c0:c1])
        if not len(rr):
            raise UserError(f"{what} at ({x:.1f}, {y:.1f}) falls on building cells of the flood grid with no open cell "
                            f"within {n} cells; move it onto open ground or use a smaller cell_size_m.")
        d = (rr + r0 - r) ** 2 + (cc + c0 - c) ** 2
        k = int(np.lexsort((cc, rr, d))[0])
        return int(rr[k] + r0), int(cc[k] + c0)


def point_sinks(city, p, placer: PointPlacer, entrances, closed_entrances=()) -> Sinks:
    """Drain inlets (``drains`` layer, capacities × ``drain_capacity_factor``), the city's pumps
    (POIs of kind pump with ``capacity_m3s``), mobile pumps, and open station entrances (water that
    flows into the station until they are closed)."""
    s = Sinks()
    if p["use_drains"]:
        d = city.layer("drains")
        for i in range(len(d)):
            g = d.geometry.iloc[i]
            fid = str(d["id"].iloc[i])
            cap = float(d["capacity_m3s"].iloc[i])
            if not (math.isfinite(cap) and cap >= 0):
                raise UserError(f"{city.gpkg}, layer 'drains', feature {fid}: capacity_m3s is {cap!r}; give a number "
                                "of m³/s, 0 or more.")
            cell = placer.cell(g.x, g.y, f"{city.gpkg}, layer 'drains', feature {fid}")
            s.drains.append(PointSink(cell, cap * p["drain_capacity_factor"], name=fid))
    s.n_drains = len(s.drains)
    for fid, cell in entrances:
        stop = p["entrance_close_s"] if fid in closed_entrances else math.inf
        s.drains.append(PointSink(cell, p["entrance_inflow_m3s"], stop_s=stop, name=f"entrance {fid}"))
        s.entrance_ids.append(fid)
    if p["use_pumps"]:
        pumps = city.pois_of("pump")
        for i in range(len(pumps)):
            g = pumps.geometry.iloc[i]
            fid = str(pumps["id"].iloc[i])
            cap = float(pumps["capacity_m3s"].iloc[i]) if "capacity_m3s" in pumps.columns else np.nan
            if not np.isfinite(cap):
                cap = p["pump_capacity_m3s"]
            cell = placer.cell(g.x, g.y, f"{city.gpkg}, layer 'pois', pump {fid}")
            s.pumps.append(PointSink(cell, cap, name=fid))
            s.pump_names.append(fid)
    xy = p["mobile_pumps_xy"]
    if len(xy) % 2:
        raise param_error("mobile_pumps_xy", f"has {len(xy)} numbers; give x, y pairs (city CRS), e.g. "
                          "[500650, 3400610, 501200, 3400640].")
    n = len(xy) // 2
    caps = _per_pump(p, "mobile_pump_capacity_m3s", n)
    starts = _per_pump(p, "mobile_pump_start_s", n)
    for k in range(n):
        x, y = xy[2 * k], xy[2 * k + 1]
        cell = placer.cell(x, y, f'{WHERE}: "mobile_pumps_xy" pump {k + 1}')
        s.pumps.append(PointSink(cell, caps[k], start_s=starts[k], name=f"mobile {k + 1}"))
        s.pump_names.append(f"mobile {k + 1}")
    return s


def _per_pump(p, name: str, n: int) -> list[float]:
    values = p[name]
    if len(values) == 1:
        return list(values) * n
    if len(values) != n:
        raise param_error(name, f"has {len(values)} values for {n} mobile pumps; give one value for all of them or "
                          "one per pump.")
    return list(values)
