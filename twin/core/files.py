"""Writing run outputs so that nothing is ever left half-written.

Everything goes to a temporary sibling first and is moved into place with ``os.replace``; an
interrupted write leaves the old file (or nothing), never a truncated one.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .grid import GridField


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private files (0600/0700); outputs get the usual permissions instead.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


LOW_SPACE_BYTES = 64 * 2**20  # a write that fails with less free than this failed for want of space


def _nearly_full(path: Path) -> bool:
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    return free < min(LOW_SPACE_BYTES, max(total // 100, 1)) or free == 0


@contextlib.contextmanager
def disk_errors(path: Path):
    """Writing ``path``: a full disk becomes ``OSError(ENOSPC, …, path)`` whatever the library says.

    GDAL's GeoPackage writer (through pyogrio) reports a full disk as "Failed to commit transaction"
    (a RuntimeError), rasterio as "Write failed", and a plain ``write`` names no file; the CLI turns
    an OSError into "PATH: No space left on device. Free some disk space…"."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT) and not e.filename:
            raise OSError(e.errno, os.strerror(e.errno), str(path)) from None
        if e.errno is None and _nearly_full(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        raise
    except Exception:  # noqa: BLE001 - re-raised unless the disk is full
        if _nearly_full(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        raise


def write_gpkg_layer(gdf, path: Path, layer: str, provenance: dict | None = None) -> None:
    """One layer of a GeoPackage (inside a folder that ``atomic_dir`` moves into place).

    ``provenance`` (a run's) becomes the layer's metadata, keys ``citytwin_<key>``: GDAL keeps it in
    the GeoPackage metadata extension (``gpkg_metadata``, referenced from ``gpkg_metadata_reference``
    with scope ``table``), where ``ogrinfo``, ``pyogrio.read_info(...)["layer_metadata"]`` and QGIS's
    layer information read it."""
    meta = {f"citytwin_{k}": str(v) for k, v in (provenance or {}).items()}
    with disk_errors(path):
        gdf.to_file(path, layer=layer, driver="GPKG", **({"layer_metadata": meta} if meta else {}))


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w", **kw):
    """Open a temporary file beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, FILE_MODE)
    try:
        with disk_errors(path):
            if mode == "path":
                yield Path(tmp)
            else:
                with open(tmp, mode, **kw) as f:
                    yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: Path):
    """Build a folder in a temporary sibling; on success its files move into ``path``.

    Files already in ``path`` that the new run does not write are kept (a run folder may hold
    the user's notes); files it writes are replaced one by one with ``os.replace``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    os.chmod(tmp, DIR_MODE)
    try:
        yield tmp
        # One commit at a time: two writers forced together must not mix their files (or race for
        # the first os.replace).
        from .locks import commit

        with commit(path):
            if not path.exists():
                os.replace(tmp, path)
                return
            # summary.json last, as in a fresh folder: its presence marks a finished run.
            for src in sorted(tmp.rglob("*"), key=lambda q: (q.name == "summary.json", str(q))):
                dst = path / src.relative_to(tmp)
                if src.is_dir():
                    dst.mkdir(parents=True, exist_ok=True)
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
    except OSError as e:  # name the file as the user will look for it, not its temporary twin
        if e.filename and str(e.filename).startswith(str(tmp)):
            raise OSError(e.errno, e.strerror, str(path / Path(e.filename).relative_to(tmp))) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(obj, path: Path) -> None:
    with atomic_file(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=json_default)
        f.write("\n")


def json_default(o):
    """numpy scalars and arrays, paths and CRSs as plain JSON values."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path) or hasattr(o, "to_wkt"):  # a pyproj CRS prints as its authority code
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def write_table(df, stem: Path, formats=("csv", "parquet"), metadata: dict | None = None) -> list[Path]:
    """Write a DataFrame as ``stem.csv`` and ``stem.parquet`` (with ``metadata``, {key: JSON value},
    in the Parquet file's key/value metadata)."""
    written = []
    for fmt in formats:
        target = Path(f"{stem}.{fmt}")
        with atomic_file(target, "path") as tmp:
            if fmt == "csv":
                df.to_csv(tmp, index=False)
            elif metadata:
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(df, preserve_index=False)
                extra = {k.encode(): json.dumps(v, default=json_default).encode() for k, v in metadata.items()}
                pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **extra}), tmp)
            else:
                df.to_parquet(tmp, index=False)
        written.append(target)
    return written


def write_parquet(df, path: Path) -> None:
    """``df`` as the Parquet file ``path``, written atomically."""
    write_table(df, Path(path).with_suffix(""), ("parquet",))


def write_csv(df, path: Path) -> None:
    """``df`` as the CSV file ``path``, written atomically."""
    write_table(df, Path(path).with_suffix(""), ("csv",))


def write_geotiff(grid: GridField, crs, path: Path, tags: dict | None = None) -> None:
    """A float32 GeoTIFF in ``crs``, NaN as nodata, compressed: one band, or one per band of a
    multi-band field (each band described by its name, with its height above ground as a tag);
    ``tags`` become dataset tags (the run's provenance)."""
    import rasterio

    values = np.asarray(grid.values, dtype=np.float32)
    if values.ndim == 2:
        values = values[None]
    count = values.shape[0]
    profile = dict(
        driver="GTiff", height=values.shape[1], width=values.shape[2], count=count, dtype="float32",
        crs=crs.to_wkt() if hasattr(crs, "to_wkt") else crs, transform=grid.transform(),
        nodata=np.nan, compress="deflate",
    )
    rows, cols = values.shape[1:]
    if rows >= 16 and cols >= 16:
        profile.update(tiled=True, blockxsize=256 if cols >= 256 else 16, blockysize=256 if rows >= 256 else 16)
    with atomic_file(path, "path") as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(values)
            if tags:
                dst.update_tags(**{f"citytwin_{k}": str(v) for k, v in tags.items()})
            for k in range(count):
                tags = {"name": grid.name}
                if grid.unit:
                    tags["unit"] = grid.unit
                if k < len(grid.band_names):
                    dst.set_band_description(k + 1, grid.band_names[k])
                if k < len(grid.band_z_m):
                    tags["height_above_ground_m"] = f"{grid.band_z_m[k]:g}"
                if grid.unit or count > 1:
                    dst.update_tags(k + 1, **tags)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
