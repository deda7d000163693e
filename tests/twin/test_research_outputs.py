"""Research outputs (docs/outputs.md): fields over time as CF NetCDF and Zarr, feature values as
GeoParquet, provenance in every file; on the toy model (fast). PedPy on the station: tests/agents/
station/test_trajectory_files.py."""
import json
import os
import sqlite3
import threading

import h5netcdf
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

from tests.factories import write_scenario
from twin.core.errors import UserError
from twin.scenario.output_settings import parse_outputs
from twin.runs.runner import Run, load_state_run, run_one
from twin.scenario.scenario import load_scenario

BODY = "[parameters]\nwalkers = 40\n"


def _run(tmp_path, tiny_city, outputs: str, name="fields", duration_s=120, **kw):
    sc = load_scenario(write_scenario(tmp_path, tiny_city, BODY + outputs, name=name, duration_s=duration_s))
    out = tmp_path / name
    return sc, run_one(sc, out=out, **kw), out


def test_fields_over_time_in_netcdf_read_by_xarray_and_gdal(tmp_path, tiny_city):
    sc, res, out = _run(tmp_path, tiny_city, '[outputs]\nfields = ["max_count"]\nfield_interval_s = 30\n'
                                             'start_time = "2026-07-15T17:30:00"\n')
    assert (out / "fields.nc").is_file() and not list(tmp_path.glob(".citytwin-streams.*"))  # staging removed
    # the raw file: grid_mapping is an attribute of the variable (the xarray encoding pitfall drops it)
    with h5netcdf.File(out / "fields.nc", "r") as f:
        assert f.variables["max_count"].attrs["grid_mapping"] == "spatial_ref"
        assert "crs_wkt" in f.variables["spatial_ref"].attrs and f.attrs["Conventions"] == "CF-1.8"
        assert f.variables["time"].attrs["units"] == "seconds since 2026-07-15 17:30:00"
    ds = xr.open_dataset(out / "fields.nc", engine="h5netcdf", decode_coords="all")
    assert ds.rio.crs.to_epsg() == 32650
    assert ds["max_count"].encoding["grid_mapping"] == "spatial_ref"
    # every 30 s from 0 to the end (the toy stops when everyone is done, not on the grid) and at the end
    end = res.summary["simulated_s"]
    expected = sorted({*np.arange(0, end + 1e-9, 30.0), end})
    got = (ds.time.values - np.datetime64("2026-07-15T17:30:00")) / np.timedelta64(1, "s")
    assert list(got) == expected
    assert ds["max_count"].attrs["long_name"] == "most walkers seen in a cell" and ds["max_count"].attrs["units"] == "1"
    # the last frame is the raster written at the end (the toy's field is its running maximum)
    with rasterio.open(out / "max_count.tif") as tif, rasterio.open(f"netcdf:{out / 'fields.nc'}:max_count") as nc:
        assert nc.crs == tif.crs and nc.transform.almost_equals(tif.transform) and nc.shape == tif.shape
        assert nc.count == len(expected)
        assert np.array_equal(nc.read(nc.count), tif.read(1), equal_nan=True)
    assert np.array_equal(ds["max_count"].isel(time=-1).values, res.rasters["max_count"].values, equal_nan=True)
    # provenance: enough to remake the run
    assert ds.attrs["seed"] == 1 and ds.attrs["variant"] == "baseline" and ds.attrs["model"] == "toy"
    assert ds.attrs["scenario_toml"] == (out / "scenario.toml").read_text()
    assert json.loads(ds.attrs["parameters"])["walkers"] == 40
    assert ds.attrs["run_hash"] == json.loads((out / "bundle.json").read_text())["hash"]


def test_zarr_round_trip(tmp_path, tiny_city):
    _, res, out = _run(tmp_path, tiny_city, '[outputs]\nfields = ["max_count"]\nfield_interval_s = 20\n'
                                            'format = "zarr"\n', name="zarr")
    assert (out / "fields.zarr").is_dir() and not (out / "fields.nc").exists()
    ds = xr.open_zarr(out / "fields.zarr", decode_coords="all")
    assert ds.rio.crs.to_epsg() == 32650 and ds["max_count"].encoding["grid_mapping"] == "spatial_ref"
    # default start: an arbitrary day (the toy has no time of day)
    assert ds.time.values[1] == np.datetime64("2000-01-01T00:00:20")
    assert np.array_equal(ds["max_count"].isel(time=-1).values, res.rasters["max_count"].values, equal_nan=True)
    with rasterio.open(f'ZARR:"{out / "fields.zarr"}":/max_count') as z, rasterio.open(out / "max_count.tif") as tif:
        assert z.crs == tif.crs and z.transform.almost_equals(tif.transform)
    assert ds.attrs["seed"] == 1 and "scenario_toml" in ds.attrs


def test_feature_values_as_geoparquet(tmp_path, tiny_city):
    import geopandas as gpd
    import pyarrow.parquet as pq

    _, res, out = _run(tmp_path, tiny_city, "[outputs]\nfeature_interval_s = 10\n", name="features")
    gdf = gpd.read_parquet(out / "features.parquet")
    assert list(gdf.columns) == ["layer", "feature", "name", "unit", "time_s", "value", "geometry"]
    assert gdf.crs.to_epsg() == 32650 and set(gdf["layer"]) == {"buildings"} and set(gdf["name"]) == {"walkers_east"}
    from twin.core.city import City

    buildings = City.load(tiny_city).layer("buildings")
    assert gdf["feature"].nunique() == len(buildings) and gdf.geometry.notna().all()
    # geometry is the building's own; the value at the end is that of the model's last snapshot
    first = gdf[gdf.feature == str(buildings["id"].iloc[0])]
    assert first.geometry.iloc[0].equals(buildings.geometry.iloc[0])
    end = gdf[gdf.time_s == gdf.time_s.max()].sort_values("feature")
    last = res.model.snapshot().features["buildings"]
    assert np.array_equal(end["value"].to_numpy(), np.asarray(last.values["walkers_east"])[np.argsort(last.ids)])
    assert sorted(gdf.time_s.unique())[:3] == [0.0, 10.0, 20.0]
    meta = json.loads(pq.read_schema(out / "features.parquet").metadata[b"citytwin"])
    assert meta["seed"] == 1 and meta["scenario_sha256"] and "walkers = 40" in meta["scenario_toml"]


def test_provenance_in_every_file(tmp_path, tiny_city):
    """Every file of the run folder says how to remake it, in the place its format keeps metadata;
    the CSV (no such place, docs/outputs.md) has the same table in the Parquet beside it."""
    import pyarrow.parquet as pq
    import pyogrio

    _, _, out = _run(tmp_path, tiny_city, "[outputs]\ntrajectory_interval_s = 10\nfeature_interval_s = 60\n"
                                          'fields = ["max_count"]\nfield_interval_s = 60\nsnapshot_times_s = [60]\n'
                                          "extent_thresholds = { max_count = 0.5 }\n"
                                          "field_extents = { max_count = 0.5 }\nfield_extent_interval_s = 60\n",
                     name="prov")
    toml = (out / "scenario.toml").read_text()
    run_hash = json.loads((out / "bundle.json").read_text())["hash"]
    seen = set()
    for path in sorted(out.iterdir()):
        if path.suffix == ".parquet":
            meta = json.loads(pq.read_schema(path).metadata[b"citytwin"])
        elif path.suffix == ".tif":
            with rasterio.open(path) as tif:
                meta = {k.removeprefix("citytwin_"): v for k, v in tif.tags().items()}
        elif path.suffix == ".nc":
            with h5netcdf.File(path, "r") as f:
                meta = dict(f.attrs)
        elif path.suffix == ".gpkg":
            layers = [name for name, _ in pyogrio.list_layers(path)]
            metas = [pyogrio.read_info(path, layer=layer)["layer_metadata"] or {} for layer in layers]
            assert len(layers) and all(m.get("citytwin_run_hash") == run_hash for m in metas), path.name
            meta = {k.removeprefix("citytwin_"): v for k, v in metas[0].items()}
        elif path.name in ("scenario.toml", "bundle.json", "summary.json", "timeseries.csv"):
            continue  # the provenance itself; the CSV's twin is timeseries.parquet
        else:
            raise AssertionError(f"{path.name}: a file this test does not know how to read provenance from")
        assert str(meta["seed"]) == "1" and meta["variant"] == "baseline" and meta["citytwin_version"], path.name
        assert meta["scenario_toml"] == toml and meta["run_hash"] == run_hash, path.name
        seen.add(path.suffix)
    assert seen == {".parquet", ".tif", ".nc", ".gpkg"}
    assert {"exports.gpkg", "toy_extent.gpkg"} <= {p.name for p in out.glob("*.gpkg")}
    assert "walkers = 40" in toml


def test_fields_and_trajectories_of_a_continued_run_start_at_the_state(tmp_path, tiny_city):
    outputs = '[outputs]\nfields = ["max_count"]\nfield_interval_s = 20\ntrajectory_interval_s = 10\nstate_times_s = [50]\n'
    sc, full, out = _run(tmp_path, tiny_city, outputs, name="full", duration_s=200)
    state_file = next((out / "states").glob("*.npz"))
    sc2, state, variant, overrides = load_state_run(state_file)
    rest = tmp_path / "rest"
    run_one(sc2, variant, int(state.meta["seed"]), overrides, out=rest, state=state)
    a = xr.open_dataset(out / "fields.nc", engine="h5netcdf")
    b = xr.open_dataset(rest / "fields.nc", engine="h5netcdf")
    assert b.time.values[0] == a.time.values[3]  # 60 s: the first frame on the grid after the state (50 s)
    # same numbers as the uninterrupted run, frame for frame
    assert np.array_equal(a["max_count"].values[3:], b["max_count"].values, equal_nan=True)
    assert b.attrs["from_state_time_s"] == 50.0
    ta, tb = pd.read_parquet(out / "trajectories.parquet"), pd.read_parquet(rest / "trajectories.parquet")
    assert tb.time_s.min() == 50.0
    pd.testing.assert_frame_equal(ta[ta.time_s >= 50].reset_index(drop=True), tb.reset_index(drop=True))


def test_exports_do_not_change_the_numbers(tmp_path, tiny_city):
    plain = run_one(load_scenario(write_scenario(tmp_path, tiny_city, BODY, name="plain", duration_s=120)))
    _, res, _ = _run(tmp_path, tiny_city, '[outputs]\nfields = ["max_count"]\nfield_interval_s = 7\n'
                                          "feature_interval_s = 3\ntrajectory_interval_s = 2\n", name="all")
    assert res.summary["kpis"] == plain.summary["kpis"] and res.timeseries.equals(plain.timeseries)


@pytest.mark.slow
def test_an_unfinished_run_leaves_no_files(tmp_path, tiny_city):
    sc = load_scenario(write_scenario(tmp_path, tiny_city, BODY + '[outputs]\nfields = ["max_count"]\n'
                                      "field_interval_s = 10\n", name="cut", duration_s=120))
    run = Run(sc, stage_near=tmp_path)
    run.advance(30)
    staging = run.streams.dir
    assert (staging / "fields.nc").is_file()  # written while the run goes
    del run
    import gc

    gc.collect()
    assert not staging.exists() and [p.name for p in tmp_path.iterdir()] == ["cut.toml"]


@pytest.mark.parametrize("table, expected", [
    ({"fields": ["max_count"]}, "field_interval_s"),
    ({"fields": "max_count", "field_interval_s": -1}, "positive number"),
    ({"fields": [1], "field_interval_s": 10}, "list of field names"),
    ({"format": "hdf"}, '"netcdf" (fields.nc) or "zarr"'),
    ({"feature_interval_s": "often"}, "feature_interval_s"),
    ({"start_time": "yesterday"}, "start_time"),
])
def test_bad_research_outputs(table, expected):
    with pytest.raises(UserError) as e:
        parse_outputs(table, "s.toml", 600)
    assert expected in str(e.value) and "[outputs]" in str(e.value)


def test_a_field_the_model_does_not_declare(tmp_path, tiny_city):
    sc = load_scenario(write_scenario(tmp_path, tiny_city, BODY + '[outputs]\nfields = ["max_cont"]\n'
                                      "field_interval_s = 10\n", name="typo"))
    with pytest.raises(UserError) as e:
        Run(sc)
    assert 'fields: max_cont' in str(e.value) and 'did you mean "max_count"' in str(e.value)


def test_sqlite_needs_walkable_areas(tmp_path, tiny_city):
    """The toy declares no walkable areas: Parquet trajectories only, no JuPedSim files."""
    _, _, out = _run(tmp_path, tiny_city, "[outputs]\ntrajectory_interval_s = 10\n", name="nosql")
    assert (out / "trajectories.parquet").is_file() and not list(out.glob("*.sqlite"))
    assert sqlite3  # the station test reads them


def test_trajectory_sqlite_false_in_a_scenario_writes_no_jupedsim_files(tmp_path, tiny_city, monkeypatch):
    """A model with walkable levels (the toy given one here) writes a JuPedSim file per level unless
    the scenario says trajectory_sqlite = false; the Parquet file is the same either way."""
    from shapely.geometry import box

    from tests.toy_model import ToyModel

    monkeypatch.setattr(ToyModel, "walkable_areas", lambda self: {0: box(*self.city.bounds)})
    _, _, yes = _run(tmp_path, tiny_city, "[outputs]\ntrajectory_interval_s = 10\n", name="yes")
    _, _, no = _run(tmp_path, tiny_city, "[outputs]\ntrajectory_interval_s = 10\ntrajectory_sqlite = false\n",
                    name="no")
    assert (yes / "trajectories_level0.sqlite").is_file() and not list(no.glob("*.sqlite"))
    a, b = pd.read_parquet(yes / "trajectories.parquet"), pd.read_parquet(no / "trajectories.parquet")
    assert len(a) == 40 * 13  # every walker at 0, 10, ..., 120 s
    pd.testing.assert_frame_equal(a, b)


def _write_walk(folder, row_group_rows, monkeypatch, sqlite=True):
    """Three people over six frames on two levels: 1 walks east on level 0, 2 stands on level 1,
    3 walks north on level 0, takes the stairs (no level) and goes on on level 1."""
    from shapely.geometry import box

    from twin.runs import trajectory_files

    monkeypatch.setattr(trajectory_files, "ROW_GROUP_ROWS", row_group_rows)
    w = trajectory_files.TrajectoryWriter(folder, 0.5, {0: box(0, 0, 10, 10), 1: box(0, 0, 10, 10)}, ("walking",),
                                          {"seed": 5}, sqlite=sqlite)
    for f in range(6):
        level3 = 0 if f < 2 else (-1 if f < 4 else 1)
        w.append(f * 0.5, [3, 1, 2], [[5, f], [f, 1], [2, 2]], [0, 0, 0], ("walking",), [level3, 0, 1])
    return w.close()


def test_sqlite_rows_by_frame_and_id_across_row_groups(tmp_path, monkeypatch):
    """Rows by frame and id, each level in its own file, also across a row group's end and a change
    of level; flushing every 4 rows writes the same files."""
    one, many = tmp_path / "one", tmp_path / "many"
    one.mkdir(), many.mkdir()
    _write_walk(one, 10**6, monkeypatch)
    _write_walk(many, 4, monkeypatch)
    tables = {}
    for folder in (one, many):
        with sqlite3.connect(folder / "trajectories_level0.sqlite") as db:
            rows = db.execute("SELECT frame, id, pos_x, pos_y FROM trajectory_data").fetchall()
            meta = dict(db.execute("SELECT key, value FROM metadata"))
            frames = [r[0] for r in db.execute("SELECT frame FROM frame_data")]
            cols = [r[1] for r in db.execute("PRAGMA table_info(trajectory_data)")]
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        with sqlite3.connect(folder / "trajectories_level1.sqlite") as db:
            rows1 = db.execute("SELECT frame, id, pos_x, pos_y FROM trajectory_data").fetchall()
        tables[folder.name] = (rows, rows1, frames)
    assert tables["one"] == tables["many"]
    rows, rows1, frames = tables["one"]
    assert frames == list(range(6)) and meta["version"] == "3" and meta["fps"] == "2.0"
    assert cols == ["frame", "id", "pos_x", "pos_y"]  # JuPedSim's version 3: no orientation
    assert (meta["xmin"], meta["ymax"], meta["citytwin_seed"]) == ("0.0", "10.0", "5")
    assert [r[:2] for r in rows] == [(0, 1), (0, 3), (1, 1), (1, 3)] + [(f, 1) for f in range(2, 6)]
    assert rows[:4] == [(0, 1, 0.0, 1.0), (0, 3, 5.0, 0.0), (1, 1, 1.0, 1.0), (1, 3, 5.0, 1.0)]
    # person 3 reaches level 1 at frame 4 (frames 2-3 on the stairs: in neither file); person 2 stays there
    assert [r for r in rows1 if r[1] == 3] == [(4, 3, 5.0, 4.0), (5, 3, 5.0, 5.0)]
    assert {r[2:] for r in rows1 if r[1] == 2} == {(2.0, 2.0)}
    pq = pd.read_parquet(one / "trajectories.parquet")
    assert len(pq) == 18 and pq.level.isna().sum() == 2
    pd.testing.assert_frame_equal(pq, pd.read_parquet(many / "trajectories.parquet"))


def test_trajectory_sqlite_false_writes_the_same_parquet_only(tmp_path, monkeypatch):
    """[outputs] trajectory_sqlite = false: no JuPedSim files, and trajectories.parquet (levels
    included) exactly as with them."""
    both, parquet = tmp_path / "both", tmp_path / "parquet"
    both.mkdir(), parquet.mkdir()
    _write_walk(both, 4, monkeypatch)
    assert [p.name for p in _write_walk(parquet, 4, monkeypatch, sqlite=False)] == ["trajectories.parquet"]
    assert sorted(p.name for p in parquet.iterdir()) == ["trajectories.parquet"]
    pq = pd.read_parquet(parquet / "trajectories.parquet")
    pd.testing.assert_frame_equal(pq, pd.read_parquet(both / "trajectories.parquet"))
    assert sorted(pq.level.dropna().unique()) == [0, 1]
    # PedPy from the Parquet file as docs/outputs.md shows it: the same as from the SQLite file
    import pedpy

    t = pd.read_parquet(parquet / "trajectories.parquet", filters=[("level", "==", 0)])
    traj = pedpy.TrajectoryData(data=pd.DataFrame({"id": t.agent, "frame": (t.time_s / 0.5).round().astype(int),
                                                   "x": t.x, "y": t.y}), frame_rate=2.0)
    ref = pedpy.load_trajectory_from_jupedsim_sqlite(trajectory_file=both / "trajectories_level0.sqlite")
    cols = ["id", "frame", "x", "y"]
    a, b = (d.data[cols].sort_values(["frame", "id"]).reset_index(drop=True) for d in (traj, ref))
    assert len(a) == 8  # person 1 in six frames, person 3 in two (then the stairs)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


@pytest.mark.parametrize("step", [1, 1000])  # ids dense like a model's agent numbers, or far apart
def test_sqlite_rows_by_id_whatever_order_the_model_hands_them(tmp_path, monkeypatch, step):
    """Agents handed over in any order land in the table by frame and id, each with its own position;
    the writer's threads run at the lowest priority (they take the time the run leaves idle) and count
    their CPU time per file."""
    from shapely.geometry import box

    from twin.runs import trajectory_files

    monkeypatch.setattr(trajectory_files, "ROW_GROUP_ROWS", 5)
    rng = np.random.default_rng(1)
    w = trajectory_files.TrajectoryWriter(tmp_path, 1.0, {0: box(0, 0, 99, 99), 1: box(0, 0, 99, 99)}, ("walking",),
                                          {"seed": 1})
    ids = np.arange(6) * step + 7
    for f in range(4):
        o = rng.permutation(6)
        # agent i stands at (i, f): walks north by 1 per frame; odd agents on level 1
        w.append(float(f), ids[o], np.column_stack([o, np.full(6, f)]), np.zeros(6), ("walking",), o % 2)
        if f == 1:
            nice = w._pool.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
    assert nice == 19
    w.close()
    assert {"frames", "trajectories.parquet", "trajectories_level0.sqlite", "trajectories_level1.sqlite"} <= set(w.cpu_s)
    for level in (0, 1):
        with sqlite3.connect(tmp_path / f"trajectories_level{level}.sqlite") as db:
            rows = db.execute("SELECT frame, id, pos_x, pos_y FROM trajectory_data").fetchall()
        want = [(f, int(ids[i]), float(i), float(f)) for f in range(4) for i in range(level, 6, 2)]
        assert rows == want


def test_a_replay_or_a_study_point_writes_no_research_outputs(tmp_path, tiny_city, monkeypatch):
    """A replay shows a finished run again and a study keeps only KPIs: neither stages the [outputs]
    files (they would be thrown away), and the numbers are the run's."""
    from twin.runs import exports
    from twin.runs.replay import replay_mismatch, source_from_run_folder
    from twin.runs.uncertainty import run_point

    sc, res, out = _run(tmp_path, tiny_city, "[outputs]\ntrajectory_interval_s = 5\n", name="orig")
    staged = []
    monkeypatch.setattr(exports.Streams, "__init__", lambda self, *a, **k: staged.append(a))
    source = source_from_run_folder(out)
    run = source.make_run()
    assert run.streams is None and not run.settings
    run.run_to_end()
    assert replay_mismatch(source, run.model.final_kpis()) == [] and source.summary["kpis"]
    assert run_point(sc, "baseline", {}, 1)["kpis"]
    assert staged == []
