"""The flood through ``citytwin assimilate`` (docs/assimilation.md) on the valley town: a rain gauge and a
water-level gauge, a hidden truth with rain 1.5 × the forecast. With ``--observe-forcings`` the rain
gauge's readings are not applied as the rain but assimilated as readings of each member's own rain,
which pins the rain's scale down; applied as a forcing instead, they leave nothing to estimate."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.agents.flood import towns
from tests.factories import write_scenario
from twin.cli import main
from twin.core.city import City
from twin.core.sensors import Sensor, sensors_frame
from twin.live.synth import synth
from twin.scenario.scenario import load_scenario

TRUTH = 1.5


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("flood_assim")
    city = towns.valley_town(d)
    sensors = [Sensor("RG", "rain_gauge", towns.X0 + 150, towns.Y0 + 100, "rain_mm_per_h", "mm/h", noise_sd=2.0,
                      interval_s=120.0),
               Sensor("WL", "water_level", towns.X0 + 150, towns.Y0 + 57, "depth", "m", noise_sd=0.01, interval_s=60.0,
                      radius_m=4.0)]
    sensors_frame(sensors, City.load(city).crs).to_file(city / "sensors.geojson", driver="GeoJSON")
    scenario = write_scenario(d, city, '[parameters]\nrain = "uniform"\nrain_mm_per_h = 40\nsync_interval_s = 10\n'
                              "evacuate = false\n", model="flood", duration_s=600, seed=5)
    synth(load_scenario(scenario), {"rain_scale": TRUTH}, d / "record")
    return {"scenario": scenario, "record": d / "record"}


def _assimilate(world, out, *extra):
    return main(["assimilate", str(world["scenario"]), "--record", str(world["record"]), "--out", str(out),
                 "--members", "6", "--estimate", "rain_scale=0.5..2.5", "--forecast-interval-s", "300",
                 "--horizon-s", "120", "--no-report", *extra])


def test_observed_rain_gauges_pin_the_rain_scale_down(world, tmp_path):
    assert _assimilate(world, tmp_path / "obs", "--observe-forcings") == 0
    p = pd.read_csv(tmp_path / "obs" / "parameters.csv")
    final = p[p.parameter == "rain_scale"].iloc[-1]
    assert abs(final["mean"] - TRUTH) < 0.05 * TRUTH
    res = pd.read_csv(tmp_path / "obs" / "residuals.csv")
    rg = res[res.sensor == "RG"]
    assert len(rg) >= 4 and (rg.fate == "used").all()  # every reading assimilated
    summary = json.loads((tmp_path / "obs" / "summary.json").read_text())
    assert summary["parameters"]["rain_scale"]["final_p90"] - summary["parameters"]["rain_scale"]["final_p10"] < 0.2


def test_applied_rain_gauges_are_forcing_not_readings(world, tmp_path):
    """Without the flag the gauges' rain is what every member gets (rain_scale set back to 1): no
    rain gauge among the readings the filter weighs."""
    assert _assimilate(world, tmp_path / "apply", "--members", "3") == 0  # every reading rebuilds every member
    res = pd.read_csv(tmp_path / "apply" / "residuals.csv")
    assert set(res.sensor) == {"WL"}
