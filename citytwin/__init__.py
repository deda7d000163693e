"""CityTwin from Python, for notebooks and scripts (docs/python_api.md).

    import citytwin
    sc = citytwin.load_scenario("scenarios/riverside_storm.toml").with_params(drain_capacity_factor=2.0)
    run = citytwin.run(sc)            # a progress bar; the run folder, opened
    run.kpis, run.timeseries          # pandas
    run.fields()                      # xarray (fields over time, [outputs] fields)
    run.features()                    # GeoDataFrame (per-feature values, [outputs] feature_interval_s)
    run.trajectories(level=0)         # PedPy TrajectoryData (the station, [outputs] trajectory_interval_s)
    citytwin.compare(sc).table        # every variant x replication, with confidence intervals

A thin front of ``twin.api``; never imports Qt.
"""
from twin import __version__
from twin.api import Comparison, RunFolder, Scenario, compare, load_scenario, open_run, run

__all__ = ["Comparison", "RunFolder", "Scenario", "__version__", "compare", "load_scenario", "open_run", "run"]
