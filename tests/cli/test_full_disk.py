"""A full disk while writing any output (issue 19): every writer's failure says "No space left on
device" with the file, exit 2, no traceback, and nothing half-written.

GDAL reports a full disk in its own words: the GeoPackage writer (through pyogrio) raises
``DataSourceError("Failed to commit transaction")``, a RuntimeError, and rasterio
``RasterioIOError("Write failed…")`` with no errno; Python's own writes raise OSError(ENOSPC) naming
no file. Each backend below fails the way it does on a full disk (measured on a 300 kB tmpfs), with
the file system reporting no free space; a last test fills a real tmpfs where this machine lets
the test mount one.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.cli.test_hostile_input import assert_refused, here
from tests.factories import write_scenario

FULL = SimpleNamespace(f_bavail=0, f_frsize=4096, f_blocks=1000)


@pytest.fixture(scope="module")
def flood_scenario(tmp_path_factory):
    """A flood run that writes every kind of output: CSV, Parquet, JSON, GeoTIFF, GeoPackage, a state."""
    from tests.agents.flood import towns

    root = tmp_path_factory.mktemp("disk")
    city, depth = towns.street_town(root, hollows=[(10, 53, 40, 67, 0.2)], population=(10,))
    d = towns.depth_raster(root / "depth.tif", depth, towns.STREET_CELL, towns.STREET_H)
    body = (f'[parameters]\nrain = "none"\nwarning_time_s = 0\nresponse_time_s = 0\ninitial_depth = "{d}"\n'
            "evacuate_upper_floors = true\n")
    return write_scenario(root, city, body, model="flood", name="flood", duration_s=60)


def _fail_gpkg(monkeypatch):
    import pyogrio
    from pyogrio.errors import DataSourceError

    def write_dataframe(df, path, *a, **kw):
        raise DataSourceError("Failed to commit transaction")

    monkeypatch.setattr(pyogrio, "write_dataframe", write_dataframe)
    return "impacts.gpkg"


def _fail_geotiff(monkeypatch):
    import rasterio
    from rasterio.errors import RasterioIOError

    real = rasterio.open

    def open_(path, mode="r", *a, **kw):
        if mode == "w":
            raise RasterioIOError("Write failed. See previous exception for details.")
        return real(path, mode, *a, **kw)

    monkeypatch.setattr(rasterio, "open", open_)
    return ".tif"


def _fail_parquet(monkeypatch):
    import pandas as pd
    import pyarrow.parquet as pq

    def to_parquet(self, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")  # as pyarrow's write: no file name

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    monkeypatch.setattr(pq, "write_table", to_parquet)  # the writer that keeps provenance in the metadata
    return "timeseries.parquet"


def _fail_json(monkeypatch):
    real = json.dump

    def dump(obj, f, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", dump)
    del real
    return ".json"


@pytest.mark.parametrize("fail", [_fail_gpkg, _fail_geotiff, _fail_parquet, _fail_json],
                         ids=["geopackage", "geotiff", "parquet", "json"])
def test_a_full_disk_names_the_file_for_every_writer(fail, flood_scenario, tmp_path, monkeypatch):
    from twin.core import files

    out = tmp_path / "out"
    monkeypatch.setattr(files.os, "statvfs", lambda p: FULL)
    name = fail(monkeypatch)
    r = here(["run", str(flood_scenario), "--quiet", "--out", str(out)])
    msg = assert_refused(r, ("No space left on device", "Free some disk space"))
    assert str(out) in msg and name in msg, msg  # the file as the user will look for it
    assert ".partial" not in msg
    assert not out.exists() and os.listdir(tmp_path) == []  # nothing half-written


def test_a_full_disk_while_importing_a_city_names_the_geopackage(tmp_path, monkeypatch):
    from twin.core import files

    out = tmp_path / "city"
    monkeypatch.setattr(files.os, "statvfs", lambda p: FULL)
    _fail_gpkg(monkeypatch)
    root = Path(__file__).resolve().parents[2]
    r = here(["city", "import", str(root / "gis_data" / "demo_city" / "city.gpkg"), "--out", str(out)])
    msg = assert_refused(r, ("No space left on device",))
    assert str(out / "city.gpkg") in msg
    assert not out.exists()


def test_another_writer_error_is_not_called_a_full_disk(tmp_path, monkeypatch, flood_scenario):
    """With space left, a GeoPackage error is not blamed on the disk."""
    from pyogrio.errors import DataSourceError

    from twin.core.files import disk_errors

    with pytest.raises(DataSourceError), disk_errors(tmp_path / "x.gpkg"):
        raise DataSourceError("Failed to commit transaction")


def test_a_real_full_tmpfs(flood_scenario, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("this machine does not let the test mount a small tmpfs (needs root); the tests above "
                    "cover every writer with the errors a full disk gives")
    try:
        r = here(["run", str(flood_scenario), "--quiet", "--out", str(mnt / "out")])
        assert_refused(r, ("No space left on device", str(mnt / "out")))
        assert os.listdir(mnt) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
