"""Reading real GIS files safely: every failure becomes a UserError naming the file and the fix.

Used by the city import (:mod:`twin.gis.city_import`) and by ``City.load`` (geometry repair).
"""
from __future__ import annotations

import re
import sqlite3
import warnings
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pyproj

from twin.core.errors import UserError

VECTOR_SUFFIXES = {".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "Shapefile", ".gpkg": "GeoPackage",
                   ".fgb": "FlatGeobuf", ".kml": "KML", ".gml": "GML"}
OSM_SUFFIXES = (".osm.pbf", ".pbf", ".osm")
RASTER_SUFFIXES = (".tif", ".tiff", ".geotiff", ".vrt", ".asc")


def source_kind(path: Path) -> str:
    """'osm', 'vector' or 'raster' from the file name; UserError for anything else."""
    name = path.name.lower()
    if any(name.endswith(s) for s in OSM_SUFFIXES):
        return "osm"
    if path.suffix.lower() in VECTOR_SUFFIXES:
        return "vector"
    if path.suffix.lower() in RASTER_SUFFIXES:
        return "raster"
    known = ", ".join([*OSM_SUFFIXES, *VECTOR_SUFFIXES, *RASTER_SUFFIXES])
    raise UserError(f"{path}: unknown kind of file ({path.suffix or 'no extension'}). The import reads {known}; "
                    "convert the file (e.g. with ogr2ogr or gdal_translate) or rename it with the right extension.")


def short(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


# -- geometry repair ------------------------------------------------------------------------------
def list_vector_layers(path: Path) -> list[tuple[str, str]]:
    import pyogrio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            layers = pyogrio.list_layers(path)
    except Exception as e:
        what = VECTOR_SUFFIXES.get(path.suffix.lower(), "vector data")
        raise UserError(f"{path}: cannot open it as {what} ({short(e)}). The file is corrupt or not {what}; "
                        "check that it opens in QGIS, or export it again.") from None
    return [(str(n), str(g)) for n, g in layers]


def read_vector_layer(path: Path, layer: str) -> gpd.GeoDataFrame:
    import pyogrio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return pyogrio.read_dataframe(path, layer=layer, on_invalid="fix")
    except Exception as e:
        raise UserError(f"{path}, layer {layer!r}: cannot read it ({short(e)}). Check it opens in QGIS, or "
                        "export the layer again.") from None


def gpkg_raster_tables(path: Path) -> list[tuple[str, str]]:
    """(table, data_type) of the raster layers (gridded coverages, tiles) of a GeoPackage."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT table_name, data_type FROM gpkg_contents "
                               "WHERE data_type IN ('2d-gridded-coverage', 'tiles')").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []  # not a GeoPackage raster container; the vector reader reports corrupt files
    return [(str(t), str(d)) for t, d in rows]


# -- rasters --------------------------------------------------------------------------------------
@dataclass
class DemSource:
    path: Path
    table: str | None
    crs: pyproj.CRS
    crs_note: str = ""

    @property
    def label(self) -> str:
        return f"{self.path}, raster layer {self.table!r}" if self.table else str(self.path)

    def open(self):
        import rasterio

        if self.table:
            return rasterio.open(self.path, table=self.table)
        return rasterio.open(self.path)


def resolve_raster_crs(crs_obj, where: str) -> tuple[pyproj.CRS, str]:
    """pyproj CRS of a rasterio CRS; a LOCAL_CS that only names a known CRS is looked up by name."""
    if crs_obj is None or not crs_obj.to_wkt():
        raise UserError(f"{where}: the raster has no CRS. Assign one (e.g. gdal_edit.py -a_srs EPSG:5514 FILE) "
                        "and import again.")
    crs = pyproj.CRS.from_user_input(crs_obj.to_wkt())
    if crs.is_projected or crs.is_geographic:
        return crs, ""
    # An engineering ("LOCAL_CS") CRS carries a name and units only; GeoPackages written by some tools
    # store S-JTSK / Krovak like that. Its name usually identifies the real CRS.
    name = crs.name or ""
    for candidate in (name, name.replace("_", " "), re.sub(r"_", " / ", name, count=1)):
        try:
            found = pyproj.CRS.from_user_input(candidate)
        except pyproj.exceptions.CRSError:
            continue
        if found.is_projected:
            epsg = found.to_epsg()
            label = f"EPSG:{epsg}" if epsg else found.name
            return found, f"its CRS is only named {name!r}; taken as {label} ({found.name})"
    raise UserError(f"{where}: the raster's CRS ({name or 'a local grid'}) is not a known map projection. "
                    "Assign the real one (e.g. gdal_edit.py -a_srs EPSG:... FILE) and import again.")


def dem_source(path: Path, table: str | None = None) -> DemSource:
    import rasterio
    from rasterio.errors import RasterioError

    where = f"{path}, raster layer {table!r}" if table else str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            src = rasterio.open(path, table=table) if table else rasterio.open(path)
    except (RasterioError, OSError, ValueError) as e:
        raise UserError(f"{where}: cannot open it as a raster DEM ({short(e)}). The file is corrupt or not a "
                        "GeoTIFF; check it with gdalinfo, or export it again.") from None
    with src:
        if src.count < 1:
            raise UserError(f"{where}: the raster has no bands.")
        crs, note = resolve_raster_crs(src.crs, where)
    return DemSource(path, table, crs, note)
