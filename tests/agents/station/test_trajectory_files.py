"""The station's trajectories in JuPedSim's SQLite format, one file per level, read by PedPy: the
flow PedPy counts at a line across the concourse equals the passengers the model let out."""
import sqlite3

import numpy as np
import pandas as pd
import pedpy
import pytest
import shapely

from tests.agents.station.conftest import X0, Y0, two_level_city
from tests.factories import write_scenario
from twin.api import open_run
from twin.runs.runner import run_one
from twin.scenario.scenario import load_scenario

WALK = "share_walk = 1.0\nshare_metro = 0.0\nshare_bus = 0.0\nshare_taxi = 0.0\n"


@pytest.mark.slow
def test_pedpy_flow_at_a_line_equals_the_passengers_out(tmp_path):
    city = tmp_path / "station"
    two_level_city().save(city)
    sc = load_scenario(write_scenario(tmp_path, city, f"[parameters]\n{WALK}\n[outputs]\ntrajectory_interval_s = 0.25\n",
                                      model="station_dispersal", name="peak", duration_s=300, seed=3))
    out = tmp_path / "run"
    res = run_one(sc, out=out)
    kpis = res.summary["kpis"]
    assert kpis["agents_exited"] == kpis["agents_total"] == 200  # everyone out through gate E

    files = sorted(p.name for p in out.glob("*.sqlite"))
    assert files == ["trajectories_level0.sqlite", "trajectories_level1.sqlite"]
    with sqlite3.connect(out / "trajectories_level0.sqlite") as db:
        meta = dict(db.execute("SELECT key, value FROM metadata"))
        cols = [r[1] for r in db.execute("PRAGMA table_info(trajectory_data)")]
        assert db.execute("SELECT count(*) FROM frame_data").fetchone()[0] > 0
    assert meta["version"] == "3" and float(meta["fps"]) == 4.0 and meta["citytwin_seed"] == "3"
    assert cols == ["frame", "id", "pos_x", "pos_y"]

    traj = pedpy.load_trajectory_from_jupedsim_sqlite(trajectory_file=out / "trajectories_level0.sqlite")
    area = open_run(out).walkable_area(0)
    assert traj.frame_rate == 4.0
    assert area.polygon.area == res.model.walkable_areas()[0].area
    # every point of the level-0 file lies on the concourse (people on the stairs are in neither file)
    pts = shapely.points(traj.data["x"].to_numpy(), traj.data["y"].to_numpy())
    assert shapely.covered_by(pts, shapely.buffer(area.polygon, 1e-6)).all()

    # a line across the concourse between the foot of the stairs (x = 16) and the exit (x = 40)
    line = pedpy.MeasurementLine([(X0 + 34, Y0 + 20), (X0 + 34, Y0 + 0)])
    n_t, crossing = pedpy.compute_n_t(traj_data=traj, measurement_line=line)
    assert int(n_t["cumulative_pedestrians"].iloc[-1]) == kpis["exited_by_gate"]["E"] == 200
    # PedPy's flow and speed at the line in 10 s windows: people walking out at walking speed
    speed = pedpy.compute_individual_speed(traj_data=traj, frame_step=4,
                                           speed_calculation=pedpy.SpeedCalculation.BORDER_SINGLE_SIDED)
    flow = pedpy.compute_flow(nt=n_t, crossing_frames=crossing, individual_speed=speed, delta_frame=40,
                              frame_rate=traj.frame_rate)
    assert len(flow) and (flow["flow"] > 0).all() and flow["flow"].max() < 4.0 * 1.5  # persons/s over a 4 m gate
    assert 0.3 < flow["mean_speed"].mean() < 2.0  # m/s

    # the Parquet file holds the same samples, with the level
    pq = pd.read_parquet(out / "trajectories.parquet")
    lv0 = pq[pq.level == 0]
    assert len(lv0) == len(traj.data) and set(pq.level.dropna().unique()) == {0, 1}
    assert np.allclose(np.sort(lv0.x.to_numpy()), np.sort(traj.data["x"].to_numpy()))
    platform = pedpy.load_trajectory_from_jupedsim_sqlite(trajectory_file=out / "trajectories_level1.sqlite")
    assert platform.data["id"].nunique() == 200  # everybody started on the platform
