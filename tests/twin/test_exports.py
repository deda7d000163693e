import numpy as np
import pandas as pd
import pyogrio
import pytest

from tests.factories import write_scenario
from twin.core.errors import UserError
from twin.core.grid import GridField
from twin.runs.exports import extent_polygons
from twin.scenario.output_settings import parse_outputs
from twin.runs.runner import run_one
from twin.scenario.scenario import load_scenario

OUTPUTS = ("[outputs]\nsnapshot_times_s = [10, 40.5, 500]\ntrajectory_interval_s = 5\n"
           "extent_thresholds = { max_count = 0.5 }\n")


@pytest.mark.slow
def test_outputs_table_exports_snapshots_extents_and_trajectories(tmp_path, tiny_city):
    plain = load_scenario(write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 40\n", name="plain",
                                         duration_s=600))
    sc = load_scenario(write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 40\n\n" + OUTPUTS,
                                      name="exp", duration_s=600))
    out = tmp_path / "run"
    with_exports = run_one(sc, out=out)
    without = run_one(plain)
    # Pausing to read the model must not change a single number.
    assert with_exports.summary["kpis"] == without.summary["kpis"]
    assert with_exports.timeseries.equals(without.timeseries)
    layers = dict(pyogrio.list_layers(out / "exports.gpkg"))
    assert set(layers) == {"agents", "max_count_extent"}
    import geopandas as gpd

    agents = gpd.read_file(out / "exports.gpkg", layer="agents")
    # 500 s is after every walker finished (the run stops early): no snapshot is invented for it.
    assert sorted(set(agents["time_s"])) == [10.0, 41.0] and len(agents) == 80
    assert set(agents["state"]) <= {"walking", "done"} and agents.crs.to_epsg() == 32650
    ext = gpd.read_file(out / "exports.gpkg", layer="max_count_extent")
    assert len(ext) >= 1 and (ext["area_m2"] > 0).all() and (ext["threshold"] == 0.5).all()
    traj = pd.read_parquet(out / "trajectories.parquet")
    assert list(traj.columns) == ["time_s", "agent", "x", "y", "state", "level"]
    assert traj["level"].isna().all()  # the toy has no walkable levels
    assert np.allclose(np.sort(traj["time_s"].unique()) % 5, 0) and traj.groupby("time_s").size().eq(40).all()
    walker0 = traj[traj.agent == 0].sort_values("time_s")
    assert walker0["x"].is_monotonic_increasing  # the toy walks east
    resolved = (out / "scenario.toml").read_text()
    assert "[outputs]" in resolved and "trajectory_interval_s = 5" in resolved


def test_extent_polygons_cover_the_cells_above_threshold():
    v = np.zeros((4, 6), np.float32)
    v[1:3, 1:4] = 0.5  # 6 cells of 2 m × 2 m
    v[0, 5] = 0.2
    g = GridField("max_depth", v, 100.0, 208.0, 2.0, unit="m")
    poly = extent_polygons(g, 0.1, "EPSG:32650")
    assert round(poly["area_m2"].sum(), 6) == 28.0 and len(poly) == 2
    assert len(extent_polygons(g, 0.3, "EPSG:32650")) == 1


@pytest.mark.parametrize("table, expected", [
    ({"snapshot_time_s": [1]}, '(did you mean "snapshot_times_s"?)'),
    ({"snapshot_times_s": [-1]}, "outside the run"),
    ({"snapshot_times_s": ["10 s"]}, "list of times in seconds"),
    ({"trajectory_interval_s": 0}, "positive number of seconds"),
    ({"trajectory_interval_s": 1, "trajectory_sqlite": "no"}, "trajectory_sqlite: true"),
    ({"trajectory_sqlite": False}, "trajectory_sqlite: only with trajectory_interval_s"),
    ({"extent_thresholds": {"max_depth": "deep"}}, "extent_thresholds.max_depth"),
])
def test_bad_outputs_tables(table, expected):
    with pytest.raises(UserError) as e:
        parse_outputs(table, "s.toml", 600)
    assert expected in str(e.value) and "[outputs]" in str(e.value)


@pytest.mark.slow
def test_field_extents_at_intervals(tmp_path, tiny_city):
    """A snapshot field above a threshold every field_extent_interval_s (and at the end), in
    <model>_extent.gpkg; pausing for it changes no number."""
    import geopandas as gpd

    body = "[parameters]\nwalkers = 40\n"
    plain = run_one(load_scenario(write_scenario(tmp_path, tiny_city, body, name="plain", duration_s=600)))
    sc = load_scenario(write_scenario(tmp_path, tiny_city, body + "[outputs]\nfield_extents = { max_count = 0.5 }\n"
                                      "field_extent_interval_s = 30\n", name="ext", duration_s=600))
    out = tmp_path / "run"
    res = run_one(sc, out=out)
    assert res.summary["kpis"] == plain.summary["kpis"] and res.timeseries.equals(plain.timeseries)
    ext = gpd.read_file(out / "toy_extent.gpkg", layer="max_count")
    end = res.summary["simulated_s"]
    grid = [30.0 * k for k in range(1, int(end // 30) + 1) if 30.0 * k < end]  # at 0 s nothing is above 0.5
    assert sorted(set(ext["time_s"])) == grid + [end]
    assert (ext["threshold"] == 0.5).all() and (ext["area_m2"] > 0).all() and ext.crs.to_epsg() == 32650
    # the extent only grows: max_count is a running maximum
    area = ext.groupby("time_s")["area_m2"].sum()
    assert area.is_monotonic_increasing


def test_field_extents_need_a_declared_field_and_an_interval(tmp_path, tiny_city):
    with pytest.raises(UserError, match="field_extent_interval_s"):
        parse_outputs({"field_extents": {"depth": 0.1}}, "s.toml", 600)
    sc = load_scenario(write_scenario(tmp_path, tiny_city, "[outputs]\nfield_extents = { max_cout = 0.5 }\n"
                                      "field_extent_interval_s = 30\n"))
    with pytest.raises(UserError, match='field_extents.max_cout: model toy has no field "max_cout" '
                                        r'\(did you mean "max_count"\?\)'):
        run_one(sc, out=tmp_path / "o")


def test_unknown_raster_threshold_names_the_rasters(tmp_path, tiny_city):
    sc = load_scenario(write_scenario(tmp_path, tiny_city, "[outputs]\nextent_thresholds = { max_depth = 0.1 }\n"))
    with pytest.raises(UserError, match='no raster "max_depth".*max_count'):
        run_one(sc, out=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_trajectories_keep_utm_precision(tmp_path, tiny_city):
    """float32 would round UTM northings (~3.4e6 m) to 0.25 m; trajectories keep full precision."""
    import pandas as pd

    from tests.factories import write_scenario
    from twin.runs.runner import run_one
    from twin.scenario.scenario import load_scenario

    sc = load_scenario(write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 20\n\n[outputs]\n"
                                      "trajectory_interval_s = 5\n", duration_s=30))
    run_one(sc, out=tmp_path / "run")
    traj = pd.read_parquet(tmp_path / "run" / "trajectories.parquet")
    start = sc.load_city().bounds
    model_y = traj["y"].to_numpy()
    assert traj["y"].dtype == "float64"
    assert (model_y > start[1]).all() and (model_y < start[3]).all()
    assert not np.allclose(model_y, np.round(model_y * 4) / 4, rtol=0, atol=1e-3), "northings rounded to 0.25 m"
