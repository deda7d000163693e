"""`citytwin city import`: real GIS data to a city package (CONTRACT §1).

Sources
-------
- OpenStreetMap ``.osm.pbf`` / ``.osm`` (GDAL's OSM driver with our own osmconf.ini, so every tag
  used below is a column).
- GeoJSON, Shapefile, GeoPackage, FlatGeobuf (any CRS). Layers are matched by name
  (``buildings``/``building``/``bldg``…, ``roads``/``streets``/``highways``…, ``pois``, and the
  layers the models define by the names they declare, ``LayerSpec.aliases``: the station's
  ``walkable``, ``obstacles``, ``gates``…): a GeoPackage whose layers are named
  like the contract's is taken as-is. A single-layer file with another name is classified by its
  geometry (polygons → buildings, lines → roads, points → pois). Other layers of a multi-layer file
  (e.g. Prague's ``tessellation`` and ``plots``) are skipped and listed in the report.
- A DEM: a GeoTIFF, or a raster layer (2-D gridded coverage) inside a GeoPackage such as Prague's
  ``dtm``. It is reprojected to the city CRS with bilinear resampling onto north-up square cells (the
  native cell size when the DEM is already projected), clipped to the extent of the vector layers plus
  a 50 m margin, and written as ``dem.tif``. A DEM that does not overlap the vectors is an error.

CRS
---
``--crs`` when given (must be projected). Otherwise the projected CRS of the vector data is kept
(the one with most features). Web Mercator (EPSG:3857) does not count as projected here: its "metres"
are stretched by 1/cos(latitude) (×1.56 in Prague). When the vectors are geographic or Web Mercator,
the DEM's projected CRS is used if there is one, else the WGS 84 UTM zone of the data's centre
(e.g. EPSG:32635 for Helsinki).

Building heights (column ``height_m``; ``height_source`` says which rule gave it)
--------------------------------------------------------------------------------
1. ``height`` (OSM tag, or a ``height_m``/``height`` column): "12", "12.5 m", "12,5", "40'" and
   "40 ft" (feet) are understood → ``height_source = "height"``.
2. else ``building:levels`` (or a ``levels``/``floors`` column) × ``--level-height-m`` (3 m)
   → ``"levels"``; "5;6" or "2-3" take the largest number.
3. else ``--default-height-m`` (10 m) → ``"default"``.
The report and ``import_report.json`` count each.

Building use (OSM ``building`` value): apartments/residential/house → residential,
commercial/retail/kiosk/supermarket → commercial, office → office, industrial/warehouse →
industrial, public/civic/school/hospital/university/government → public, the values the models
declare (``CityModel.building_uses``: e.g. the station's train_station → station), anything else
→ other.

Roads (OSM ways with ``highway``): ``kind`` = the highway value, ``speed_kmh`` = ``maxspeed``
("50", "30 mph", "FI:urban" = 50, "walk" = 5) else the default of the kind: motorway 100, trunk 80,
primary/secondary 50, tertiary 40, residential/unclassified 30, living_street/service 20, cycleway
and track 20, pedestrian/footway/path/platform/corridor 5, steps 3, others 30 (``_link`` as its road).
The tags a model's import hook names in ``road_columns`` are kept as columns.

POIs (OSM nodes, and a point inside each tagged area): the models' import hooks give the kind
(``CityImportHook.poi_kind``, asked in registry order; the first kind wins; each hook's module doc
lists its rules) and the kind's declaration (``PoiKind``) the defaults of capacity, gates and service
time. A ``capacity`` tag (or the kind's ``capacity_tag``, e.g. ``rooms`` for hotels) overrides the
default capacity, and ``capacity_source`` says which. Ids are ``osm_node_<id>``, ``osm_way_<id>`` or
``osm_relation_<id>``; ``osm_tags`` keeps the tags that decided the kind; ``area_m2`` the size of a POI
drawn as an area (empty for nodes); the tags a hook names in ``poi_columns`` are kept as columns.

Walkable (into the layer a hook names, ``CityImportHook.walkable_layer``): pedestrian areas
(highway=pedestrian areas), place=square and amenity=marketplace, ``kind`` "pedestrian", and the
areas the models' import hooks declare (``CityImportHook.walkable_areas``) with their kinds. The models' area layers: the OSM areas with
the tags a hook declares (``CityImportHook.osm_areas``; each hook's module doc lists them), with
their OSM ids and the declared tags as columns.

Geometry
--------
Invalid geometries are repaired with ``make_valid`` (polygon layers keep their polygonal parts);
null, empty or unusable ones (e.g. OSM ways cut by the extract boundary) are dropped; both are
counted in the report.

Model import hooks
------------------
After the city is built, every registered model's ``CityImportHook.derive`` is called with the
import options (the keywords of :func:`import_city` beyond its own; `citytwin city import` offers
each hook's ``ImportOption`` as a flag): the station model, given ``walkable_around`` (a POI kind
such as ``railway_station`` or a name) and ``walkable_radius_m``, builds ``walkable``, ``gates`` and
``sources`` for its crowd around that station. The lines a hook returns go into the report's notes.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj

from twin.core.city import (LAYERS, City, all_layers, layer_specs, Terrain, check_extra_layer, check_layer, check_layer_crs, fmt_bounds,
                        parse_projected_crs)
from twin.core.errors import UserError
from twin.core.grid import GridField
from twin.core.vocabulary import OTHER_USE
from twin.core.geometry import geometry_family, repair_geometries
from twin.gis.readers import (DemSource, dem_source, gpkg_raster_tables, list_vector_layers, read_vector_layer, short,
                     source_kind)
from twin.gis.osm import default_speed_kmh, osm_layers, parse_height_m, parse_levels, parse_maxspeed, read_osm
from twin.core.files import json_default
from twin.declarations import import_hooks

OSM_ATTRIBUTION = "© OpenStreetMap contributors, ODbL 1.0 (https://www.openstreetmap.org/copyright)"
DEM_MARGIN_M = 50.0

# Layer names (lower case, non-alphanumerics removed) recognised for each of the platform's layers;
# a model's layers (LayerSpec.aliases) add theirs: layer_aliases().
LAYER_ALIASES = {
    "buildings": ("buildings", "building", "bldg", "bldgs", "footprints", "buildingfootprints", "houses"),
    "roads": ("roads", "road", "streets", "street", "highways", "highway", "edges", "streetnetwork", "network"),
    "pois": ("pois", "poi", "pointsofinterest", "points", "places"),
}
HEIGHT_COLUMNS = ("height_m", "height", "building:height", "building_height", "bldg_height", "hgt")
LEVEL_COLUMNS = ("building:levels", "building_levels", "levels", "floors", "storeys", "stories", "num_floors")
KIND_COLUMNS = ("kind", "highway", "fclass", "class", "type", "road_type")
SPEED_COLUMNS = ("speed_kmh", "maxspeed", "max_speed", "speed", "speed_limit")
NAME_COLUMNS = ("name", "NAME", "Name", "nazev", "label")
ID_COLUMNS = ("id", "ID", "Id")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def layer_aliases() -> dict[str, tuple[str, ...]]:
    out = dict(LAYER_ALIASES)
    for name, spec in layer_specs().items():
        if name not in out and spec.aliases:
            out[name] = spec.aliases
    return out


def contract_layer_for(name: str) -> str | None:
    n = _norm(name)
    aliases_of = layer_aliases()
    for layer, aliases in aliases_of.items():
        if n in aliases:
            return layer
    for layer, aliases in aliases_of.items():  # "city_buildings", "osm_roads_2024"…
        if any(a in n for a in aliases if len(a) >= 5):
            return layer
    return None


def _col(gdf, names) -> str | None:
    lower = {c.lower(): c for c in gdf.columns}
    for n in names:
        if n in gdf.columns:
            return n
        if n.lower() in lower:
            return lower[n.lower()]
    return None


# -- the report -----------------------------------------------------------------------------------
@dataclass
class ImportReport:
    data: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.data[key]

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, ensure_ascii=False, default=json_default) + "\n"

    def text(self) -> str:
        d = self.data
        lines = [f"City {d['name']!r} written to {d['out']} in {d['wall_s']:.1f} s",
                 f"  CRS        {d['crs']} ({d['crs_name']}): {d['crs_reason']}",
                 f"  extent     {fmt_bounds(d['extent'])}  ({d['size_km'][0]:.2f} × {d['size_km'][1]:.2f} km)"]
        lines.append("  layers     " + ", ".join(f"{k} {v}" for k, v in d["layers"].items()))
        h = d.get("heights")
        if h:
            lines.append(f"  heights    {h['total']} buildings: {h['height']} from height, {h['levels']} from levels "
                         f"× {h['level_height_m']:g} m, {h['default']} default {h['default_height_m']:g} m "
                         f"(filled: {h['levels'] + h['default']})")
        rep = {k: v for k, v in d["repaired"].items() if v}
        drop = {k: v for k, v in d["dropped"].items() if v}
        lines.append("  geometry   repaired " + (", ".join(f"{k} {v}" for k, v in rep.items()) or "none")
                     + "; dropped " + (", ".join(f"{k} {v}" for k, v in drop.items()) or "none")
                     + " (null, empty or unusable)")
        dem = d.get("dem")
        if dem:
            lines.append(f"  DEM        {dem['source']}: {dem['cols']} × {dem['rows']} cells of {dem['resolution_m']:g} m, "
                         f"elevation {dem['min_m']:.1f}–{dem['max_m']:.1f} m, {dem['coverage'] * 100:.0f}% of cells valid")
            if dem.get("crs_note"):
                lines.append(f"             ({dem['crs_note']})")
        else:
            lines.append("  DEM        none (flat ground)")
        for s in d.get("skipped", []):
            lines.append(f"  skipped    {s}")
        for s in d.get("notes", []):
            lines.append(f"  note       {s}")
        return "\n".join(lines)


def import_options() -> list:
    """The options of every registered model's import hook (``ImportOption``), in registry order."""
    return [o for hook in import_hooks() for o in hook.options]


def model_layers() -> dict:
    """The extra vector layers the installed models read (``LayerSpec``: connectors, barriers, …), by
    name: a layer of that exact name is imported as it is, so a package CityTwin wrote imports back."""
    global _MODEL_LAYERS
    if _MODEL_LAYERS is None:
        from agents.registry import MODELS, get_model

        _MODEL_LAYERS = {}
        for m in MODELS:
            for spec in get_model(m).extra_layers:
                if spec.kind == "vector":
                    _MODEL_LAYERS.setdefault(spec.name, spec)
    return _MODEL_LAYERS


_MODEL_LAYERS = None


@dataclass
class _Part:
    layer: str  # contract layer
    gdf: gpd.GeoDataFrame
    origin: str  # "file, layer 'x'"
    osm: bool = False


# -- reading the sources --------------------------------------------------------------------------
def _read_sources(sources: list[Path], level_height_m: float, default_height_m: float):
    parts: list[_Part] = []
    dems: list[DemSource] = []
    skipped: list[str] = []
    attribution: list[str] = []
    for path in sources:
        if not path.exists():
            raise UserError(f"{path}: no such file. Check the path (relative paths are from the current folder).")
        kind = source_kind(path)
        if path.is_dir():
            raise UserError(f"{path}: is a folder; give the data files inside it (e.g. {path}/*.gpkg).")
        if path.stat().st_size == 0:
            raise UserError(f"{path}: the file is empty (0 bytes). Download or export it again.")
        if kind == "osm":
            raw = read_osm(path)
            for name, gdf in osm_layers(raw, level_height_m, default_height_m).items():
                parts.append(_Part(name, gdf, f"{path} (OpenStreetMap)", osm=True))
            if OSM_ATTRIBUTION not in attribution:
                attribution.append(OSM_ATTRIBUTION)
        elif kind == "raster":
            dems.append(dem_source(path))
        else:
            found = _read_vector_file(path, parts, dems, skipped)
            if not found:
                raise UserError(f"{path}: no usable layer in it (all layers are empty or unrecognised: "
                                f"{'; '.join(s for s in skipped if str(path) in s) or 'none'}). Name the layers like "
                                "the contract's (buildings, roads, pois, …) or give single-layer files.")
    return parts, dems, skipped, attribution


def _read_vector_file(path: Path, parts: list, dems: list, skipped: list) -> int:
    rasters = gpkg_raster_tables(path) if path.suffix.lower() == ".gpkg" else []
    raster_names = {t for t, _ in rasters}
    found = 0
    for table, dtype in rasters:
        if dtype == "2d-gridded-coverage":
            dems.append(dem_source(path, table))
            found += 1
        else:
            skipped.append(f"{path}, raster layer {table!r} (image tiles, not elevation)")
    layers = [(n, g) for n, g in list_vector_layers(path) if n not in raster_names]
    for name, _ in layers:
        target = contract_layer_for(name) if name in all_layers() or name not in model_layers() else name
        where = f"{path}, layer {name!r}"
        if target is None and len(layers) > 1:
            skipped.append(f"{where} (not a city layer name)")
            continue
        gdf = read_vector_layer(path, name)
        if gdf.crs is None:
            raise UserError(f"{where}: the layer has no CRS, so its coordinates cannot be placed. Assign one in "
                            "your GIS or with `ogr2ogr -a_srs EPSG:XXXX out.gpkg in.shp` (a Shapefile needs its .prj), "
                            "then import again.")
        check_layer_crs(gdf.crs, where)  # GeoPackage srs_id -1 / 0, local grids
        fam = geometry_family(gdf)
        if not len(gdf) or fam is None:
            if len(layers) == 1:
                raise UserError(f"{where}: the layer is empty (no features with geometry). Export the data again, "
                                "or leave the file out.")
            skipped.append(f"{where} (empty)")
            continue
        if target is None:
            target = {"Polygon": "buildings", "LineString": "roads", "Point": "pois"}[fam]
        want = all_layers()[target][0] if target in all_layers() else model_layers()[target].geometry
        if want != "any" and fam != want:
            raise UserError(f"{where}: looks like the {target!r} layer but holds {fam}s; {target} must be "
                            f"{want}s. Rename the layer or convert its geometry.")
        parts.append(_Part(target, gdf, where))
        found += 1
    return found


# -- CRS ------------------------------------------------------------------------------------------
def is_web_mercator(crs: pyproj.CRS) -> bool:
    return crs.to_epsg() in (3857, 3785, 900913, 102100, 102113) or "pseudo-mercator" in crs.name.lower() or (
        crs.coordinate_operation is not None and "pseudo mercator" in crs.coordinate_operation.method_name.lower())


def _crs_label(crs: pyproj.CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def utm_crs_for(lon: float, lat: float) -> pyproj.CRS:
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    infos = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))
    if infos:
        return pyproj.CRS.from_authority(infos[0].auth_name, infos[0].code)
    zone = int((lon + 180) // 6) + 1
    return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def choose_crs(crs_arg, parts: list[_Part], dems: list[DemSource]) -> tuple[pyproj.CRS, str]:
    if crs_arg:
        return parse_projected_crs(crs_arg, "--crs"), "given with --crs"
    counts: dict[str, tuple[pyproj.CRS, int]] = {}
    geographic, webmerc = False, False
    for p in parts:
        crs = pyproj.CRS.from_user_input(p.gdf.crs)
        if crs.is_projected and not is_web_mercator(crs):
            key = crs.to_wkt()
            counts[key] = (crs, counts.get(key, (crs, 0))[1] + len(p.gdf))
        elif is_web_mercator(crs):
            webmerc = True
        else:
            geographic = True
    if counts:
        crs = max(counts.values(), key=lambda t: t[1])[0]
        why = "the vector data is already in this projected CRS; kept"
        if len(counts) > 1:
            why += f" (the CRS of most features; {len(counts) - 1} other CRS reprojected)"
        return crs, why
    what = "in Web Mercator (EPSG:3857), whose metres are stretched by 1/cos(latitude)" if webmerc and not geographic \
        else "geographic (degrees)"
    for d in dems:
        if d.crs.is_projected and not is_web_mercator(d.crs):
            return d.crs, f"the vector data is {what}; using the projected CRS of the DEM ({d.label})"
    lon, lat = _centre_lonlat(parts, dems)
    crs = utm_crs_for(lon, lat)
    return crs, f"the data is {what}; chose the UTM zone of its centre ({lon:.4f}°, {lat:.4f}°)"


def _centre_lonlat(parts, dems) -> tuple[float, float]:
    boxes = []
    for p in parts:
        if len(p.gdf):
            b = p.gdf.to_crs(4326).total_bounds
            if np.all(np.isfinite(b)):
                boxes.append(b)
    if not boxes:
        raise UserError("the input files hold no vector features to place the city; give buildings, roads or POIs.")
    b = np.array(boxes)
    return float((b[:, 0].min() + b[:, 2].max()) / 2), float((b[:, 1].min() + b[:, 3].max()) / 2)


# -- per-layer normalisation ----------------------------------------------------------------------
def _buildings(gdf, osm: bool, level_height_m, default_height_m):
    if osm:
        return gdf
    out = gdf.copy()
    hcol, lcol = _col(gdf, HEIGHT_COLUMNS), _col(gdf, LEVEL_COLUMNS)
    hs = gdf[hcol] if hcol else pd.Series([None] * len(gdf), index=gdf.index)
    ls = gdf[lcol] if lcol else pd.Series([None] * len(gdf), index=gdf.index)
    keep_source = "height_source" in gdf.columns and hcol == "height_m"
    heights, sources = [], []
    for i, (h, lv) in enumerate(zip(hs, ls)):
        hm = parse_height_m(h)
        if hm is not None:
            heights.append(hm)
            prev = gdf["height_source"].iloc[i] if keep_source else None
            sources.append(prev if prev in ("height", "levels", "default") else "height")
        elif (n := parse_levels(lv)) is not None:
            heights.append(n * level_height_m), sources.append("levels")
        else:
            heights.append(default_height_m), sources.append("default")
    out["height_m"] = np.asarray(heights, dtype=float)
    out["height_source"] = sources
    ncol = _col(gdf, NAME_COLUMNS)
    out["name"] = gdf[ncol].fillna("").astype(str) if ncol else ""
    ucol = _col(gdf, ("use", "building", "usage", "type"))
    if ucol:
        from twin.declarations import building_uses, osm_building_uses

        uses, osm = building_uses(), osm_building_uses()
        out["use"] = [u if u in uses else osm.get(str(u), OTHER_USE) for u in gdf[ucol]]
    return out


def _roads(gdf, osm: bool):
    if osm:
        return gdf
    out = gdf.copy()
    kcol, scol, ncol = _col(gdf, KIND_COLUMNS), _col(gdf, SPEED_COLUMNS), _col(gdf, NAME_COLUMNS)
    kinds = gdf[kcol].fillna("street").astype(str) if kcol else pd.Series("street", index=gdf.index)
    speeds = [parse_maxspeed(v) for v in gdf[scol]] if scol else [None] * len(gdf)
    out["kind"] = kinds.to_numpy()
    out["speed_kmh"] = [s if s is not None else default_speed_kmh(k) for k, s in zip(kinds, speeds)]
    out["name"] = gdf[ncol].fillna("").astype(str).to_numpy() if ncol else ""
    return out


def _ids(gdf, layer: str, where: str):
    icol = _col(gdf, ID_COLUMNS)
    if icol and icol != "id":
        gdf = gdf.rename(columns={icol: "id"})
    spec = layer_specs()[layer]
    if "id" not in gdf.columns:
        if spec.ids_required:
            raise UserError(f"{where}: the column 'id' is missing; every {layer[:-1]} needs a unique id "
                            "(scenarios refer to them by id). Add an id column.")
        prefix = "poi" if layer == "pois" else spec.id_prefix or layer
        gdf = gdf.copy()
        gdf["id"] = [f"{prefix}_{i + 1}" for i in range(len(gdf))]
    else:
        missing = gdf["id"].isna() | (gdf["id"].astype(str).str.strip() == "")
        if missing.any():
            raise UserError(f"{where}: feature {int(np.flatnonzero(missing.to_numpy())[0])} has no id; "
                            "give every feature a unique id.")
    return gdf


# -- DEM --------------------------------------------------------------------------------------------
def warp_dem(dem: DemSource, crs: pyproj.CRS, extent, margin_m: float = DEM_MARGIN_M) -> tuple[GridField, dict]:
    """The DEM on north-up square cells in ``crs`` over ``extent`` + margin (bilinear)."""
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds
    from rasterio.windows import Window, from_bounds

    dst_crs = rasterio.crs.CRS.from_wkt(crs.to_wkt())
    src_crs = rasterio.crs.CRS.from_wkt(dem.crs.to_wkt())
    try:
        with dem.open() as src:
            sb = transform_bounds(src_crs, dst_crs, *src.bounds, densify_pts=21)
            minx, miny, maxx, maxy = extent
            if sb[0] > maxx or sb[2] < minx or sb[1] > maxy or sb[3] < miny:
                raise UserError(
                    f"{dem.label}: the DEM (extent {fmt_bounds(sb)} in {_crs_label(crs)}) does not overlap the city's "
                    f"vector data (extent {fmt_bounds(extent)}). Give a DEM of the same area (check its CRS), or "
                    "leave it out for flat ground.")
            same = pyproj.CRS.from_user_input(dem.crs) == crs
            if dem.crs.is_projected:
                unit = dem.crs.axis_info[0].unit_conversion_factor or 1.0
                res = max(abs(src.res[0]), abs(src.res[1])) * unit
            else:
                t, _, _ = calculate_default_transform(src_crs, dst_crs, src.width, src.height, *src.bounds)
                res = max(abs(t.a), abs(t.e))
            box = (max(minx - margin_m, sb[0]), max(miny - margin_m, sb[1]),
                   min(maxx + margin_m, sb[2]), min(maxy + margin_m, sb[3]))
            ox, oy = (src.transform.c, src.transform.f) if same else (0.0, 0.0)
            x0 = ox + math.floor((box[0] - ox) / res) * res
            y1 = oy + math.ceil((box[3] - oy) / res) * res
            cols = max(1, int(math.ceil((box[2] - x0) / res - 1e-9)))
            rows = max(1, int(math.ceil((y1 - box[1]) / res - 1e-9)))
            if rows * cols > 60_000_000:
                raise UserError(f"{dem.label}: the DEM over the city would be {cols} × {rows} cells of {res:g} m; "
                                "resample it to a coarser grid first (gdalwarp -tr 2 2 …).")
            # Read only the part of the source under the city (plus a few cells).
            sbox = transform_bounds(dst_crs, src_crs, x0, y1 - rows * res, x0 + cols * res, y1, densify_pts=21)
            win = from_bounds(*sbox, transform=src.transform)
            c0, r0 = math.floor(win.col_off) - 2, math.floor(win.row_off) - 2
            win = Window(c0, r0, math.ceil(win.col_off + win.width) + 2 - c0, math.ceil(win.row_off + win.height) + 2 - r0)
            win = win.intersection(Window(0, 0, src.width, src.height))
            data = src.read(1, window=win, masked=True).astype(np.float64).filled(np.nan)
            src_t = src.window_transform(win)
    except UserError:
        raise
    except (RasterioError, OSError, ValueError) as e:
        raise UserError(f"{dem.label}: cannot read the DEM ({short(e)}). Check it with gdalinfo, or export it again.") from None
    dst_t = rasterio.transform.from_origin(x0, y1, res, res)
    out = np.full((rows, cols), np.nan, dtype=np.float64)
    reproject(data, out, src_transform=src_t, src_crs=src_crs, src_nodata=np.nan, dst_transform=dst_t,
              dst_crs=dst_crs, dst_nodata=np.nan, resampling=Resampling.bilinear)
    out = out.astype(np.float32)
    finite = np.isfinite(out)
    if not finite.any():
        raise UserError(f"{dem.label}: the DEM holds no valid elevation over the city (all cells are nodata there).")
    grid = GridField("elevation", out, float(x0), float(y1), float(res), unit="m")
    info = {"source": dem.label, "rows": rows, "cols": cols, "resolution_m": float(res),
            "min_m": float(np.nanmin(out)), "max_m": float(np.nanmax(out)), "coverage": float(finite.mean()),
            "bounds": [float(v) for v in grid.bounds], "crs_note": dem.crs_note}
    return grid, info


# -- the import -------------------------------------------------------------------------------------
def import_city(sources: list[Path], out: Path, name: str | None = None, crs: str | None = None,
                default_height_m: float = 10.0, level_height_m: float = 3.0,
                **model_options) -> ImportReport:
    """Build a city package in ``out`` from real GIS data; see the module docstring for every rule.
    ``model_options`` are the options the models' import hooks read (``import_options()``)."""
    t0 = time.perf_counter()
    sources = [Path(s) for s in sources]
    out = Path(out)
    if not sources:
        raise UserError("give at least one source file (OSM .osm.pbf, GeoJSON, Shapefile, GeoPackage or GeoTIFF).")
    for value, opt in ((default_height_m, "--default-height-m"), (level_height_m, "--level-height-m")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value < 1000):
            raise UserError(f"{opt} must be a positive number of metres (got {value}).")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; give --out a folder for the city package.")
    crs_given = parse_projected_crs(crs, "--crs") if crs else None
    options = {o.name: o.default for o in import_options()}
    unknown = sorted(set(model_options) - set(options))
    if unknown:
        raise UserError(f"unknown import option {unknown[0]!r}; the models' import options are: "
                        f"{', '.join(options) or 'none'}.")
    options.update(model_options)

    parts, dems, skipped, attribution = _read_sources(sources, level_height_m, default_height_m)
    if not any(len(p.gdf) for p in parts):
        raise UserError("the input files hold no vector features (buildings, roads, POIs, …); a city needs some. "
                        "Check the files cover your area.")
    if len(dems) > 1:
        raise UserError("more than one DEM given (" + "; ".join(d.label for d in dems) + "); merge them first "
                        "(gdal_merge.py or gdalbuildvrt) and give one.")
    city_crs, why = (crs_given, "given with --crs") if crs_given else choose_crs(None, parts, dems)

    repaired: dict[str, int] = {}
    dropped: dict[str, int] = {}
    merged: dict[str, list[gpd.GeoDataFrame]] = {}
    extras: dict[str, list[gpd.GeoDataFrame]] = {}
    for p in parts:
        gdf = p.gdf
        if not len(gdf):
            continue
        gdf = gdf.to_crs(city_crs)
        if p.layer not in all_layers():  # a model's extra layer: checked as the model reads it
            extras.setdefault(p.layer, []).append(check_extra_layer(gdf, model_layers()[p.layer], p.origin, city_crs))
            continue
        family = all_layers()[p.layer][0]
        gdf, n_rep, n_drop = repair_geometries(gdf, family)
        repaired[p.layer] = repaired.get(p.layer, 0) + n_rep
        dropped[p.layer] = dropped.get(p.layer, 0) + n_drop
        if p.layer == "roads" and len(gdf):  # one feature per line
            gdf = gdf.explode(index_parts=False).reset_index(drop=True)
        if p.layer == "buildings":
            gdf = _buildings(gdf, p.osm, level_height_m, default_height_m)
        elif p.layer == "roads":
            gdf = _roads(gdf, p.osm)
        elif p.layer == "pois" or (p.layer not in LAYERS and not layer_specs()[p.layer].generated_ids):
            gdf = _ids(gdf, p.layer, p.origin)  # the models' layers have ids (else the package reader numbers them)
        if not p.osm:
            ncol = _col(gdf, NAME_COLUMNS)
            if ncol and ncol != "name" and "name" not in gdf.columns:
                gdf = gdf.rename(columns={ncol: "name"})
        if len(gdf):
            merged.setdefault(p.layer, []).append(gdf)
    layers = {}
    for lname, frames in merged.items():
        gdf = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        gdf = gpd.GeoDataFrame(gdf, geometry=gdf.geometry.name, crs=city_crs)
        gdf = _drop_unwritable(gdf)
        layers[lname] = check_layer(gdf, lname, f"{lname} (from {', '.join(sorted({p.origin for p in parts if p.layer == lname}))})", city_crs)
        layers[lname].attrs.pop("defaulted", None)  # the reader's record of its defaults: read back by City.load
    if not any(len(g) for g in layers.values()):
        raise UserError("after dropping empty and unusable geometries no features are left; check the input files.")
    for lname, frames in extras.items():
        layers[lname] = _drop_unwritable(gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=city_crs))

    extent = _bounds(layers)
    terrain, dem_info = None, None
    if dems:
        grid, dem_info = warp_dem(dems[0], city_crs, extent)
        terrain = Terrain(grid)

    city_name = name or out.name
    city = City(name=city_name, crs=city_crs, layers=layers, terrain=terrain, attribution="; ".join(attribution),
                meta={"imported_from": [str(s) for s in sources], "default_height_m": float(default_height_m),
                      "level_height_m": float(level_height_m)})
    notes = []
    for hook in import_hooks():
        if hook.derive is not None:
            city, lines = hook.derive(city, options)
            notes.extend(lines)

    b = layers.get("buildings")
    heights = None
    if b is not None and len(b):
        vc = b["height_source"].value_counts() if "height_source" in b.columns else pd.Series(dtype=int)
        heights = {"total": len(b), "height": int(vc.get("height", 0)), "levels": int(vc.get("levels", 0)),
                   "default": int(vc.get("default", 0)), "level_height_m": float(level_height_m),
                   "default_height_m": float(default_height_m), "min_m": float(b["height_m"].min()),
                   "median_m": float(b["height_m"].median()), "max_m": float(b["height_m"].max())}
    ext = _bounds(city.layers)
    report = ImportReport({
        "name": city_name, "out": str(out), "crs": _crs_label(city_crs), "crs_name": city_crs.name,
        "crs_reason": why, "input_files": [str(s) for s in sources],
        "layers": {k: len(city.layers[k]) for k in [*all_layers(), *(k for k in city.layers if k not in all_layers())]
                   if k in city.layers and len(city.layers[k])},
        "heights": heights, "repaired": repaired, "dropped": dropped, "skipped": skipped, "notes": notes,
        "extent": [float(v) for v in ext], "size_km": [(ext[2] - ext[0]) / 1000.0, (ext[3] - ext[1]) / 1000.0],
        "dem": dem_info, "attribution": city.attribution, "wall_s": 0.0,
    })
    report.data["wall_s"] = time.perf_counter() - t0
    city.save(out, extra_files={"import_report.json": report.to_json()})
    report.data["wall_s"] = time.perf_counter() - t0
    return report


def _bounds(layers) -> tuple[float, float, float, float]:
    boxes = np.array([g.total_bounds for g in layers.values() if len(g)])
    return (float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max()))


def _drop_unwritable(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns GeoPackage cannot hold (lists, dicts, mixed objects) become text."""
    for c in gdf.columns:
        if c == gdf.geometry.name:
            continue
        s = gdf[c]
        if s.dtype == object:
            types = {type(v) for v in s.dropna()}
            if types - {str} and not types <= {int, float, bool}:
                gdf[c] = s.map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return gdf


__all__ = ["import_city", "ImportReport", "warp_dem", "choose_crs", "utm_crs_for", "contract_layer_for"]
