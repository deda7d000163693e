"""The city package (CONTRACT §1): a folder with city.toml, city.gpkg and an optional dem.tif.

``City`` is the one object models and the view ask for layers and terrain. Every layer is in the
city's projected CRS (metres); absent layers come back as empty GeoDataFrames so callers need no
special cases, and ``require`` turns a missing layer a model needs into a clear error.
"""
from __future__ import annotations

import importlib
import tomllib
import warnings
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj

from .errors import UserError, nearest
from .geometry import repair_geometries
from .grid import GridField
from .model_contract import LayerSpec

# The platform's own layers; the models add theirs (``CityModel.city_layers``) and columns of these
# (a model's POI columns): ``layer_specs()`` merges them. Numbers in ``numbers`` must be numbers; in ``counts``, finite
# and 0 or more.
BASE_LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("buildings", "vector", "building footprints", "Polygon", ("height_m",),
              defaults=(("name", ""), ("use", "other")), numbers=("height_m",), generated_ids="B"),
    LayerSpec("roads", "vector", "the road network", "LineString",
              defaults=(("name", ""), ("kind", "street"), ("speed_kmh", 30.0)), numbers=("speed_kmh",),
              counts=("speed_kmh",), generated_ids="R"),
    LayerSpec("pois", "vector", "points of interest", "Point", ("id", "kind"), defaults=(("name", ""),)),
)
LAYERS: dict[str, tuple[str, tuple[str, ...]]] = {s.name: (s.geometry, s.columns) for s in BASE_LAYERS}


@cache
def layer_specs() -> dict[str, LayerSpec]:
    """Every layer of a city package: the platform's, then the registered models' (registry order;
    a model's spec for a layer already known adds its columns' defaults and checks to it)."""
    # The registry is found by name, as it finds the models: the package format is the platform's,
    # the layer names are the models' words (docs/models.md, "Declarations").
    declared = importlib.import_module("agents.registry").declared_city_layers()
    specs = {s.name: s for s in BASE_LAYERS}
    for spec in declared:
        have = specs.get(spec.name)
        if have is None:
            specs[spec.name] = spec
        else:
            specs[spec.name] = replace(have, defaults=have.defaults + tuple(d for d in spec.defaults
                                                                            if d[0] not in dict(have.defaults)),
                                       numbers=tuple(dict.fromkeys(have.numbers + spec.numbers)),
                                       counts=tuple(dict.fromkeys(have.counts + spec.counts)))
    return specs


def all_layers() -> dict[str, tuple[str, tuple[str, ...]]]:
    """{layer: (geometry family, columns it must have)} of every layer (``layer_specs``)."""
    return {n: (s.geometry, s.columns) for n, s in layer_specs().items()}


def column_defaults(name: str) -> dict[str, object]:
    return dict(layer_specs()[name].defaults)


# Buildings whose height_m is missing, zero or negative get this height when a package is loaded.
DEFAULT_BUILDING_HEIGHT_M = 10.0

# Floors of multi-level places (a floor above another): the optional integer
# ``level`` column of the layers whose spec says ``levels`` (0 = street level, 1 above, -1 below);
# city.toml's ``level_height_m`` gives the storey height (default below).
DEFAULT_LEVEL_HEIGHT_M = 6.0


MIN_ELEVATION_M, MAX_ELEVATION_M = -11_000.0, 9_000.0  # the deepest sea floor to above Everest
MIN_DEM_COVER = 0.5  # share of the layers' extent a DEM must cover (the rest is extrapolated from its edge)


@dataclass
class Terrain:
    """Elevation in metres on a north-up grid in the city CRS."""

    grid: GridField

    @classmethod
    def read(cls, path: Path, crs: pyproj.CRS) -> "Terrain":
        import rasterio
        from rasterio.errors import RasterioError, RasterioIOError

        try:
            with rasterio.open(path) as src:
                if src.crs is None:
                    raise UserError(f"{path}: the DEM has no CRS. Set one (e.g. gdal_edit.py -a_srs EPSG:...) and try again.")
                if pyproj.CRS.from_user_input(src.crs.to_wkt()) != crs:
                    raise UserError(
                        f"{path}: the DEM is in {src.crs.to_string()} but city.toml says {crs.to_string()}. "
                        "Re-import the city with `citytwin city import`, which reprojects the DEM."
                    )
                t = src.transform
                if abs(t.a + t.e) > 1e-6 * abs(t.a) or t.b or t.d:
                    raise UserError(f"{path}: the DEM must be north-up with square cells; re-import it with `citytwin city import`.")
                z = src.read(1, masked=True).astype(np.float32).filled(np.nan)
        except (RasterioIOError, RasterioError, OSError, ValueError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{path}: cannot read the DEM as a GeoTIFF ({msg}). Replace it (re-import the city with "
                            "`citytwin city import`) or remove it to use flat ground.") from None
        if not np.isfinite(z).any():
            raise UserError(f"{path}: the DEM holds no valid elevation (all cells are nodata).")
        bad = np.isfinite(z) & ((z < MIN_ELEVATION_M) | (z > MAX_ELEVATION_M))
        if bad.any():
            r, c = (int(i) for i in np.argwhere(bad)[0])
            raise UserError(f"{path}: the DEM holds {float(z[r, c]):g} m at row {r}, column {c} (x = "
                            f"{t.c + (c + 0.5) * t.a:.1f}, y = {t.f + (r + 0.5) * t.e:.1f}), outside the elevations on "
                            f"Earth ({MIN_ELEVATION_M:g} to {MAX_ELEVATION_M:g} m); {int(bad.sum()):,} cell(s) in all. "
                            "Mark such cells as nodata (gdal_edit.py -a_nodata VALUE) or fix the DEM.")
        return cls(GridField("elevation", z, t.c, t.f, abs(t.a), unit="m"))

    def sample(self, x, y) -> np.ndarray:
        """Elevation at points, bilinear; nearest valid value outside the grid or on nodata."""
        g = self.grid
        z = g.values
        fx = (np.asarray(x, dtype=np.float64) - g.x0) / g.cell_m - 0.5
        fy = (g.y0 - np.asarray(y, dtype=np.float64)) / g.cell_m - 0.5
        rows, cols = z.shape
        fx = np.clip(fx, 0, cols - 1)
        fy = np.clip(fy, 0, rows - 1)
        c0 = np.floor(fx).astype(np.int64)
        r0 = np.floor(fy).astype(np.int64)
        c1 = np.minimum(c0 + 1, cols - 1)
        r1 = np.minimum(r0 + 1, rows - 1)
        wx = fx - c0
        wy = fy - r0
        filled = self._filled()
        top = filled[r0, c0] * (1 - wx) + filled[r0, c1] * wx
        bottom = filled[r1, c0] * (1 - wx) + filled[r1, c1] * wx
        return top * (1 - wy) + bottom * wy

    def _filled(self) -> np.ndarray:
        if not hasattr(self, "_filled_cache"):
            z = self.grid.values.astype(np.float64)
            bad = ~np.isfinite(z)
            if bad.any():
                from scipy import ndimage

                idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
                z = z[tuple(idx)]
            self._filled_cache = z
        return self._filled_cache


@dataclass
class City:
    name: str
    crs: pyproj.CRS
    layers: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)
    terrain: Terrain | None = None
    root: Path | None = None
    attribution: str = ""
    meta: dict = field(default_factory=dict)
    gpkg: Path | None = None
    defaulted: dict = field(default_factory=dict)  # {layer: {column: [ids the reader filled with its default]}}

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "City":
        root = Path(path)
        if root.is_file() and root.name == "city.toml":
            root = root.parent
        toml_path = root / "city.toml"
        _refuse_broken_link(root, "the city folder")
        _refuse_broken_link(toml_path, "city.toml")
        if not root.is_dir():
            raise UserError(f"{root}: no such city folder. A city package is a folder with city.toml and city.gpkg; "
                            "make one with `citytwin city import`.")
        if not toml_path.is_file():
            raise UserError(f"{root}: city.toml is missing. A city package needs city.toml (name, crs) and city.gpkg; "
                            "make one with `citytwin city import`.")
        try:
            meta = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{toml_path}: not valid TOML ({e}).") from None
        except RecursionError:
            raise UserError(f"{toml_path}: tables are nested too deeply to read; city.toml holds a [city] table "
                            "with name and crs.") from None
        section = meta.get("city", meta)
        if not isinstance(section, dict):
            raise UserError(f'{toml_path}: [city] must be a table with name and crs (e.g. name = "My city", crs = "EPSG:32650").')
        for key in ("name", "crs"):
            if key not in section:
                raise UserError(f'{toml_path}: the key "{key}" is missing (e.g. name = "My city", crs = "EPSG:32650").')
        crs = parse_projected_crs(section["crs"], f"{toml_path}: crs")
        files = section.get("files", {})
        if not isinstance(files, dict) or not isinstance(section.get("layers", {}), dict):
            raise UserError(f"{toml_path}: [city.files] and [city.layers] must be tables "
                            '(e.g. [city.layers]\nbuildings = "bldg").')
        gpkg = root / files.get("vector", "city.gpkg")
        dem_path = root / files.get("dem", "dem.tif")
        city = cls(name=str(section["name"]), crs=crs, root=root,
                   attribution=str(section.get("attribution", "")), meta=section)
        level_heights(section.get("level_height_m"), f"{toml_path}: level_height_m")
        _refuse_broken_link(gpkg, "the city's GeoPackage")
        _refuse_broken_link(dem_path, "the city's DEM")
        city.gpkg = gpkg if gpkg.exists() else None
        if gpkg.exists():
            city.layers = read_layers(gpkg, crs, section.get("layers", {}))
            # which features' columns the reader filled with a default, kept off the frames (copied with them)
            city.defaulted = {name: gdf.attrs.pop("defaulted", {}) for name, gdf in city.layers.items()}
        if dem_path.exists():
            city.terrain = Terrain.read(dem_path, crs)
            city.check_terrain_overlap(dem_path)
        return city

    def check_terrain_overlap(self, where) -> None:
        if self.terrain is None or not any(len(g) for g in self.layers.values()):
            return
        a = self.vector_bounds()
        b = self.terrain.grid.bounds
        if a[0] > b[2] or a[2] < b[0] or a[1] > b[3] or a[3] < b[1]:
            raise UserError(
                f"{where}: the DEM (extent {fmt_bounds(b)}) does not overlap the city's layers "
                f"(extent {fmt_bounds(a)}). Use a DEM of the same area, or remove it for flat ground."
            )
        rows, cols = self.terrain.grid.values.shape
        covered = ((min(a[2], b[2]) - max(a[0], b[0])) * (min(a[3], b[3]) - max(a[1], b[1]))
                   / max((a[2] - a[0]) * (a[3] - a[1]), 1e-9))
        if rows < 2 or cols < 2 or covered < MIN_DEM_COVER:
            raise UserError(
                f"{where}: the DEM ({rows} x {cols} cells, extent {fmt_bounds(b)}) covers {covered:.0%} of the city's "
                f"layers (extent {fmt_bounds(a)}); a DEM must have at least 2 x 2 cells and cover at least "
                f"{MIN_DEM_COVER:.0%} of them, or ground elsewhere would be made up. Use a DEM of the whole area, or "
                "remove it for flat ground."
            )

    # -- layers ----------------------------------------------------------------------------
    def layer(self, name: str) -> gpd.GeoDataFrame:
        specs = layer_specs()
        if name not in specs:
            raise KeyError(f"unknown layer {name!r}{nearest(name, specs)}")
        gdf = self.layers.get(name)
        if gdf is None:
            cols = list(specs[name].columns) + [c for c, _ in specs[name].defaults]
            gdf = gpd.GeoDataFrame({c: [] for c in cols}, geometry=[], crs=self.crs)
        return gdf

    def has(self, name: str) -> bool:
        return name in self.layers and len(self.layers[name]) > 0

    # -- layers and rasters a model declares (LayerSpec), beyond the contract's ------------------
    def extra_layer(self, spec) -> gpd.GeoDataFrame | None:
        """A vector layer a model declared (``LayerSpec``), read on first use; None when absent.
        A city built in memory may hold it in ``layers`` (it is then checked the same way)."""
        cache = self.__dict__.setdefault("_extra", {})
        if spec.name not in cache:
            if spec.name in self.layers and spec.name not in layer_specs():
                cache[spec.name] = check_extra_layer(self.layers[spec.name], spec, f"{self.name}, layer {spec.name!r}",
                                                self.crs)
            else:
                cache[spec.name] = _read_extra_layer(self, spec)
        return cache[spec.name]

    def raster_path(self, name: str) -> Path | None:
        """``<city>/<name>.tif``, or the file ``[city.files] <name>`` names; None when absent."""
        if self.root is None:
            return None
        files = self.meta.get("files", {}) if isinstance(self.meta.get("files", {}), dict) else {}
        path = self.root / str(files.get(name, f"{name}.tif"))
        return path if path.is_file() else None

    def require_extra(self, specs, model: str = "") -> None:
        for spec in specs:
            if not spec.required:
                continue
            found = self.raster_path(spec.name) if spec.kind == "raster" else self.extra_layer(spec)
            if found is None or (spec.kind != "raster" and not len(found)):
                where = self.root or self.name
                what = f"the raster {spec.name}.tif" if spec.kind == "raster" else f"the layer {spec.name} in city.gpkg"
                raise UserError(f"{where}: model {model!r} needs {what} ({spec.doc}), which this city lacks. "
                                "Add it and try again.")

    def fingerprint(self) -> str:
        """SHA-256 over the package's files (city.toml, the GeoPackage, the DEM): a saved state is
        only valid on the same city data."""
        import hashlib

        h = hashlib.sha256()
        if self.root is not None:
            for path in sorted(p for p in self.root.iterdir() if p.is_file() and p.suffix in (".toml", ".gpkg", ".tif")):
                h.update(path.name.encode())
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
        return h.hexdigest()

    def road_graph(self):
        """The road network as a graph (``twin.core.roads.RoadGraph``), built once per city."""
        if "_roads" not in self.__dict__:
            from .roads import RoadGraph

            self.__dict__["_roads"] = RoadGraph.from_city(self)
        return self.__dict__["_roads"]

    def require(self, names, model: str = "") -> None:
        missing = [n for n in names if not self.has(n)]
        if missing:
            where = self.root or self.name
            raise UserError(
                f"{where}: model {model!r} needs the layer(s) {', '.join(missing)} in city.gpkg, "
                f"which this city lacks or has empty. Add them (see CONTRACT §1) and try again."
            )

    buildings = property(lambda self: self.layer("buildings"))
    roads = property(lambda self: self.layer("roads"))
    pois = property(lambda self: self.layer("pois"))

    def pois_of(self, *kinds: str) -> gpd.GeoDataFrame:
        p = self.pois
        return p[p["kind"].isin(kinds)]

    # -- geometry and terrain --------------------------------------------------------------
    def vector_bounds(self) -> tuple[float, float, float, float]:
        boxes = [g.total_bounds for g in self.layers.values() if len(g)]
        if not boxes:
            if self.terrain is not None:
                return self.terrain.grid.bounds
            return (0.0, 0.0, 0.0, 0.0)
        b = np.array(boxes)
        return (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Extent of layers and terrain together (minx, miny, maxx, maxy)."""
        b = list(self.vector_bounds())
        if self.terrain is not None:
            t = self.terrain.grid.bounds
            if b[2] <= b[0]:
                return t
            b = [min(b[0], t[0]), min(b[1], t[1]), max(b[2], t[2]), max(b[3], t[3])]
        return tuple(b)

    def elevation_at(self, x, y) -> np.ndarray:
        if self.terrain is None:
            return np.zeros(np.shape(x), dtype=np.float64)
        return self.terrain.sample(x, y)

    def level_z(self, level: int) -> float:
        """Height (m) of floor ``level`` above level 0 (the ground). city.toml's ``level_height_m``
        is a number (every storey) or a table of storey heights by level, e.g.
        ``[city.level_height_m]`` ``"1" = 6.5``, ``"-1" = 5.0`` (the storey between that level and
        the next one towards 0); storeys not listed are ``DEFAULT_LEVEL_HEIGHT_M`` (6 m) high."""
        heights = level_heights(self.meta.get("level_height_m"), "city.toml: level_height_m")
        level = int(level)
        step = 1 if level > 0 else -1
        return float(step * sum(heights.get(k, heights.get("*", DEFAULT_LEVEL_HEIGHT_M))
                                for k in range(step, level + step, step))) if level else 0.0

    def terrain_grid(self, cell_m: float, bounds=None) -> GridField:
        """Terrain sampled at cell centres on a grid of ``cell_m`` over ``bounds`` (default: the city)."""
        g = GridField.empty("elevation", bounds or self.bounds, cell_m, unit="m")
        xs, ys = g.cell_centres()
        X, Y = np.meshgrid(xs, ys)
        g.values = self.elevation_at(X, Y).astype(np.float32)
        return g

    # -- writing ---------------------------------------------------------------------------
    def save(self, path: str | Path, extra_files: dict[str, str | bytes] | None = None) -> None:
        """Write this city as a package (atomically: a half-written folder is never left).

        ``extra_files`` ({name: text or bytes}) are written into the package in the same step
        (the import uses it for ``import_report.json``).
        """
        from .files import atomic_dir, write_gpkg_layer

        import tomli_w

        with atomic_dir(Path(path)) as tmp:
            _chmod_like_mkdir(tmp)  # mkdtemp makes it private (0700); a package is an ordinary folder
            meta = {"name": self.name, "crs": self.crs.to_string(), "attribution": self.attribution}
            meta.update({k: v for k, v in self.meta.items() if k not in meta and k != "files"})
            (tmp / "city.toml").write_text(tomli_w.dumps({"city": meta}), encoding="utf-8")
            for name, gdf in self.layers.items():
                if len(gdf):
                    write_gpkg_layer(gdf.to_crs(self.crs), tmp / "city.gpkg", name)
            if self.terrain is not None:
                from .files import write_geotiff

                write_geotiff(self.terrain.grid, self.crs, tmp / "dem.tif")
            for fname, content in (extra_files or {}).items():
                target = tmp / fname
                if isinstance(content, bytes):
                    target.write_bytes(content)
                else:
                    target.write_text(content, encoding="utf-8")


def level_heights(value, where: str) -> dict:
    """city.toml's ``level_height_m`` as {level: storey height, "*": every storey}; checked."""
    if value is None:
        return {}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not (np.isfinite(value) and 1.0 <= value <= 50.0):
            raise UserError(f"{where} = {value!r}: a storey height is 1 to 50 metres.")
        return {"*": float(value)}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            try:
                lv = int(str(k))
            except ValueError:
                raise UserError(f'{where}: key "{k}" is not a level number; write e.g. "1" = 6.5.') from None
            if lv == 0:
                raise UserError(f'{where}: level 0 is the ground; give the storey heights of the other levels.')
            out[lv] = level_heights(v, f'{where}."{k}"')["*"]
        return out
    raise UserError(f'{where} = {value!r}: write a number of metres (every storey) or a table such as '
                    '[city.level_height_m] "1" = 6.5.')


def _chmod_like_mkdir(folder: Path) -> None:
    import os

    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(folder, 0o777 & ~mask)
    except OSError:
        pass


def _id_text(v) -> str:
    """Ids as text; 3.0 read from a float column becomes "3", not "3.0"."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def fmt_bounds(b) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in b) + ")"


def parse_projected_crs(value, where: str) -> pyproj.CRS:
    try:
        crs = pyproj.CRS.from_user_input(value)
    except pyproj.exceptions.CRSError:
        raise UserError(f'{where}: "{value}" is not a CRS pyproj knows; use e.g. "EPSG:32650".') from None
    if not crs.is_projected:
        raise UserError(f'{where}: {value} is geographic (degrees); a city needs a projected CRS in metres, e.g. its UTM zone.')
    return crs


def read_layers(gpkg: Path, crs: pyproj.CRS, renames: dict | None = None) -> dict[str, gpd.GeoDataFrame]:
    """Read the contract layers from a GeoPackage, checked and reprojected to ``crs``."""
    import pyogrio

    try:
        available = {name for name, _ in pyogrio.list_layers(gpkg)}
    except Exception as e:  # pyogrio raises DataSourceError and others for corrupt files
        raise UserError(f"{gpkg}: cannot open as a GeoPackage ({e}). Rebuild it with `citytwin city import`.") from None
    renames = renames or {}
    names = layer_specs()
    unknown = [k for k in renames if k not in names]
    if unknown:
        raise UserError(f"{gpkg.parent / 'city.toml'}: [city.layers] names an unknown layer {unknown[0]!r}"
                        f"{nearest(unknown[0], names)}; the layers are {', '.join(names)}.")
    for name, source in renames.items():
        if source not in available:
            raise UserError(f"{gpkg.parent / 'city.toml'}: [city.layers] maps {name} to {source!r}, but {gpkg.name} "
                            f"has no such layer (it has: {', '.join(sorted(available)) or 'none'}).")
    layers = {}
    for name in names:
        source = renames.get(name, name)
        if source not in available:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                gdf = gpd.read_file(gpkg, layer=source, on_invalid="fix")
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{gpkg}: layer {source!r} cannot be read ({msg}). Rebuild the package with "
                            "`citytwin city import`.") from None
        layers[name] = check_layer(gdf, name, f"{gpkg}, layer {source!r}", crs)
    return layers


def _read_extra_layer(city: "City", spec) -> gpd.GeoDataFrame | None:
    import pyogrio

    gpkg = getattr(city, "gpkg", None)
    if gpkg is None or spec.name not in {n for n, _ in pyogrio.list_layers(gpkg)}:
        return None
    where = f"{gpkg}, layer {spec.name!r}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gdf = gpd.read_file(gpkg, layer=spec.name, on_invalid="fix")
    except Exception as e:
        raise UserError(f"{where}: cannot be read ({str(e).strip().splitlines()[0] if str(e).strip() else e}).") from None
    return check_extra_layer(gdf, spec, where, city.crs)


def check_extra_layer(gdf: gpd.GeoDataFrame, spec, where: str, crs) -> gpd.GeoDataFrame:
    if gdf.crs is None:
        raise UserError(f"{where}: the layer has no CRS. Assign one in your GIS.")
    gdf = gdf.to_crs(crs) if gdf.crs != crs else gdf
    missing = [c for c in spec.columns if c not in gdf.columns]
    if missing:
        raise UserError(f"{where}: column(s) {', '.join(missing)} missing; {spec.doc}")
    if spec.geometry != "any" and len(gdf):
        bad = ~gdf.geom_type.fillna("").str.contains(spec.geometry)
        if bad.any():
            raise UserError(f"{where}: feature {int(np.flatnonzero(bad.to_numpy())[0])} is a "
                            f"{gdf.geom_type[bad].iloc[0]}; this layer holds {spec.geometry}s only.")
    return gdf.reset_index(drop=True)


def _refuse_split_polygons(gdf: gpd.GeoDataFrame, where: str, layer: str) -> None:
    """A polygon of a ``whole_polygons`` layer (a floor) that crosses itself (a bow-tie) would be
    repaired into separate pieces, and the error would surface later at whatever lies off them (a
    gate, a stair): name the polygon now."""
    import shapely

    geoms = gdf.geometry.values
    present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    invalid = present & ~shapely.is_valid(geoms)
    for i in np.flatnonzero(invalid):
        g = geoms[i]
        fixed = shapely.make_valid(g)
        polys = [p for p in shapely.get_parts(fixed) if p.geom_type == "Polygon" and p.area > 0]
        if len(polys) > len([p for p in shapely.get_parts(g) if p.geom_type == "Polygon"]):
            fid = gdf["id"].iloc[i] if "id" in gdf.columns else gdf["name"].iloc[i] if "name" in gdf.columns else i
            raise UserError(f"{where}: {layer} polygon {fid!r} crosses itself ({shapely.is_valid_reason(g)}), so it "
                            f"falls apart into {len(polys)} pieces that touch at single points and nothing could "
                            "pass between them. Redraw its outline so that it does not cross itself.")


def _refuse_broken_link(path: Path, what: str) -> None:
    """A symbolic link that leads nowhere would read as "no such file" (a city without layers): say what it is."""
    import errno
    import os

    if not os.path.islink(path):
        parent = path.parent
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:  # a loop further up the path
                raise UserError(f"{path}: {what} lies under a loop of symbolic links ({parent}); fix the links.") from None
        return
    try:
        os.stat(path)
    except OSError as e:
        why = ("a loop of symbolic links" if e.errno == errno.ELOOP
               else f"a symbolic link to {os.readlink(path)}, which does not exist")
        raise UserError(f"{path}: {what} is {why}. Point the link at the real file, or replace it with the file.") from None


def _refuse_non_finite_coordinates(gdf: gpd.GeoDataFrame, where: str, placed: bool = False) -> None:
    """A point at NaN (or infinite) coordinates cannot be placed on the map: name the feature.
    ``placed``: every feature must have a location (a POI written at NaN comes back from a
    GeoPackage as an empty point; a shelter or an attraction without a place is an error, not a drop)."""
    import shapely

    if not len(gdf):
        return
    if placed:
        nowhere = shapely.is_missing(gdf.geometry.values) | shapely.is_empty(gdf.geometry.values)
        if nowhere.any():
            i = int(np.flatnonzero(nowhere)[0])
            fid = gdf["id"].iloc[i] if "id" in gdf.columns else f"number {i}"
            raise UserError(f"{where}: feature {fid!r} has no location (empty, or NaN coordinates); place it in "
                            "your GIS or delete it.")
    xy, index = shapely.get_coordinates(gdf.geometry.values, return_index=True)
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        i = int(index[np.argmax(bad)])
        fid = gdf["id"].iloc[i] if "id" in gdf.columns else f"number {i}"
        raise UserError(f"{where}: feature {fid!r} has coordinates {tuple(float(v) for v in xy[np.argmax(bad)])}, "
                        "which are not on the map. Place it again in your GIS or delete it.")


# GeoPackage's two reserved "undefined" CRSs (OGC 12-128r18, table 6): srs_id -1 and 0. GDAL reads
# them as these names; coordinates in them cannot be placed on the map, and reprojecting them fails
# (-1) or silently turns every coordinate into garbage that is then dropped (0).
UNDEFINED_CRS_NAMES = {"Undefined Cartesian SRS": "srs_id -1, undefined Cartesian",
                       "Undefined geographic SRS": "srs_id 0, undefined geographic"}


def check_layer_crs(layer_crs, where: str, fix_crs: pyproj.CRS | None = None) -> None:
    """UserError naming the layer when its CRS is missing, undefined or a local grid (no map position)."""
    hint = ""
    if fix_crs is not None:
        hint = f" If its coordinates are already in {_epsg_label(fix_crs)} (the city's CRS), assign that one."
    how = ("Assign the real CRS in your GIS, or with `ogr2ogr -a_srs EPSG:XXXX fixed.gpkg original.gpkg`, then try "
           f"again.{hint}")
    if layer_crs is None:
        raise UserError(f"{where}: the layer has no CRS, so its coordinates cannot be placed. {how}")
    name = getattr(layer_crs, "name", "") or ""
    if name in UNDEFINED_CRS_NAMES:
        raise UserError(f"{where}: the layer's CRS is undefined (GeoPackage {UNDEFINED_CRS_NAMES[name]}), so its "
                        f"coordinates cannot be placed. {how}")
    if getattr(layer_crs, "is_engineering", False):
        raise UserError(f"{where}: the layer's CRS is a local grid ({name or 'unnamed'}) with no position on the "
                        f"earth, so it cannot be placed. {how}")


def _epsg_label(crs: pyproj.CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def check_layer(gdf: gpd.GeoDataFrame, name: str, where: str, crs: pyproj.CRS) -> gpd.GeoDataFrame:
    """Reproject, fill optional columns, and reject what a model could not use."""
    check_layer_crs(gdf.crs, where, crs)
    if gdf.crs != crs:
        gdf = gdf.to_crs(crs)
    spec = layer_specs()[name]
    family, required = spec.geometry, spec.columns
    missing = [c for c in required if c not in gdf.columns]
    if missing:
        raise UserError(f"{where}: column(s) {', '.join(missing)} missing; layer {name!r} needs {', '.join(required)}. "
                        f"Add the column in your GIS and give every feature a value"
                        f"{' (unique ids such as G1, G2, …)' if 'id' in missing else ''}.")
    if family != "any" and len(gdf):
        present = gdf.geometry.notna() & ~gdf.geometry.is_empty
        bad = present & ~gdf.geom_type.fillna("").str.contains(family)
        if bad.any():
            kinds = ", ".join(sorted(set(gdf.geom_type[bad])))
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(f"{where}: {int(bad.sum())} feature(s) are {kinds} (the first is feature {first}); "
                            f"layer {name!r} holds {family}s only. Move them to the right layer or convert them.")
    _refuse_non_finite_coordinates(gdf, where, placed=name == "pois")
    if spec.whole_polygons:
        _refuse_split_polygons(gdf, where, name)
    gdf, repaired, dropped = repair_geometries(gdf, family if family != "any" else "")
    if repaired:
        gdf.attrs["repaired"] = repaired
    if dropped:
        gdf.attrs["dropped"] = dropped
    filled = {}  # column -> rows filled with the default (``city check`` reports them, twin.core.city_check)
    for col, default in spec.defaults:
        if col not in gdf.columns:
            gdf[col] = default
            filled[col] = np.arange(len(gdf))
        else:
            filled[col] = np.flatnonzero(gdf[col].isna().to_numpy())
            gdf[col] = gdf[col].fillna(default)
    if "id" not in gdf.columns and spec.generated_ids:
        width = max(5, len(str(len(gdf))))
        gdf["id"] = [f"{spec.generated_ids}{i + 1:0{width}d}" for i in range(len(gdf))]
    if "id" in gdf.columns:
        missing = gdf["id"].isna() | (gdf["id"].astype(str).str.strip() == "")
        if missing.any():
            raise UserError(f"{where}: feature {int(np.flatnonzero(missing.to_numpy())[0])} has no id; "
                            "give every feature a unique id.")
        gdf["id"] = gdf["id"].map(_id_text)
        dup = gdf["id"][gdf["id"].duplicated()]
        if len(dup):
            rows = np.flatnonzero((gdf["id"] == dup.iloc[0]).to_numpy()).tolist()
            raise UserError(f"{where}: id {dup.iloc[0]!r} is used more than once (features {rows[:5]}); "
                            "ids must be unique. Rename the duplicates.")
    keys = gdf["id"].astype(str).to_numpy() if "id" in gdf.columns else np.arange(len(gdf)).astype(str)
    gdf.attrs["defaulted"] = {c: keys[rows].tolist() for c, rows in filled.items() if len(rows)}
    numbers = {c: None for s in layer_specs().values() for c in s.numbers}
    counts = {c: None for s in layer_specs().values() for c in s.counts}
    for col in numbers:
        if col in gdf.columns and len(gdf):
            values = pd.to_numeric(gdf[col], errors="coerce")
            bad = values.isna() & gdf[col].notna()
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise UserError(f"{where}: column {col!r} of feature {i} is {gdf[col].iloc[i]!r}, not a number.")
            gdf[col] = values
    for col in counts:
        if col in gdf.columns and len(gdf):
            values = pd.to_numeric(gdf[col], errors="coerce")
            bad = values.notna() & ~(np.isfinite(values) & (values >= 0))
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                fid = gdf["id"].iloc[i] if "id" in gdf.columns else i
                raise UserError(f"{where}: feature {fid!r} has {col} = {float(values.iloc[i]):g}; it must be a finite "
                                "number, 0 or more. Fix the value in your GIS.")
    if spec.levels and len(gdf):
        values = pd.to_numeric(gdf["level"], errors="coerce")
        bad = ~(np.isfinite(values) & (values == np.round(values)))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            fid = gdf["id"].iloc[i] if "id" in gdf.columns else gdf["name"].iloc[i] if "name" in gdf.columns else i
            raise UserError(f"{where}: feature {fid!r} has level {gdf['level'].iloc[i]!r}; a level is a whole number "
                            "(0 = street level, 1 the floor above, -1 the one below).")
        gdf["level"] = values.astype("int64")
    if name == "buildings" and len(gdf):
        bad = ~(gdf["height_m"] > 0)  # NaN, 0 or negative
        if bad.any():
            gdf.loc[bad, "height_m"] = DEFAULT_BUILDING_HEIGHT_M
            gdf.attrs["heights_filled"] = int(bad.sum())
            gdf.attrs["defaulted"]["height_m"] = gdf["id"].astype(str)[bad].tolist() if "id" in gdf.columns else \
                np.flatnonzero(bad.to_numpy()).astype(str).tolist()
    return gdf.reset_index(drop=True)
