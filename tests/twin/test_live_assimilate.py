"""``citytwin live --assimilate`` (docs/assimilation.md, "In live mode"): the live twin keeps a filtered
ensemble beside its run; readings from a feed correct it, the forecasts start from it and are scored as
``assimilated``, and the estimates, updates and residuals are written as the twin goes."""
from __future__ import annotations

import pandas as pd
import pytest

from tests.factories import X0, Y0, make_tiny_city, write_scenario
from twin.cli import main
from twin.core.city import City
from twin.core.sensors import Sensor, sensors_frame
from twin.live.follow import LiveFolder
from twin.live.synth import replay, synth
from twin.scenario.scenario import load_scenario

TRUTH = 1.3  # the hidden walkers' speed; the scenario plans the toy's default (1.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("live_assim")
    city = make_tiny_city(d)
    sensors = [Sensor("E1", "people_counter", X0 + 25, Y0 + 25, "walkers_east", "-", "buildings", "B00001", 3.0, 5.0),
               Sensor("E2", "people_counter", X0 + 70, Y0 + 25, "walkers_east", "-", "buildings", "B00002", 3.0, 5.0)]
    sensors_frame(sensors, City.load(city).crs).to_file(city / "sensors.geojson", driver="GeoJSON")
    scenario = write_scenario(d, city, "[parameters]\nwalkers = 300\ndistance_m = 60\njitter_mps = 0.3\n",
                              duration_s=70, seed=3)
    synth(load_scenario(scenario), {"speed_mps": TRUTH}, d / "record")
    drop = d / "drop"
    drop.mkdir()
    replay(d / "record", f"folder:{drop}", 0)
    return {"dir": d, "scenario": scenario, "drop": drop}


def _live(world, out, *extra):
    return main(["live", str(world["scenario"]), "--feed", f"folder:{world['drop']}", "--out", str(out),
                 "--members", "6", "--forecast-interval-s", "20", "--horizon-s", "20", "--stop-when-silent-s", "10",
                 *extra])


def test_live_assimilation_estimates_the_hidden_speed_and_its_forecasts_beat_the_plain_twin(world, tmp_path):
    assert _live(world, tmp_path / "off") == 0
    assert _live(world, tmp_path / "pf", "--assimilate", "pf", "--estimate", "speed_mps=0.6..1.6") == 0
    params = pd.read_csv(tmp_path / "pf" / "parameters.csv")
    prior, final = params.iloc[0], params.iloc[-1]
    assert prior.time_s == 0 and final.time_s > 40
    assert abs(final["mean"] - TRUTH) < abs(prior["mean"] - TRUTH)
    updates = pd.read_csv(tmp_path / "pf" / "updates.csv")
    assert len(updates) >= 8 and (updates.used > 0).all()
    res = pd.read_csv(tmp_path / "pf" / "residuals.csv")
    assert set(res.sensor) == {"E1", "E2"}
    skill = {k: pd.read_csv(tmp_path / k / "skill.csv") for k in ("off", "pf")}
    assert set(skill["off"].method) == {"open_loop"} and set(skill["pf"].method) == {"assimilated"}

    def rmse(s):
        s = s[s.kpi == "sensor.E2"]
        return float((s.rmse ** 2).mean() ** 0.5)

    assert rmse(skill["pf"]) < rmse(skill["off"])  # the counters' forecasts from the corrected ensemble are better
    # what a viewer following the folder shows: the latest estimate with its band
    snap = LiveFolder(tmp_path / "pf").read()
    (est,) = snap.estimates
    assert est["parameter"] == "speed_mps" and est["mean"] == pytest.approx(final["mean"])
    assert snap.estimates_text().startswith("speed_mps ") and "p10-p90" in snap.estimates_text()
    assert LiveFolder(tmp_path / "off").read().estimates == []


def test_live_assimilation_refuses_bad_input(world, tmp_path, capsys):
    assert _live(world, tmp_path / "a", "--estimate", "speed_mps=0.6..1.6") == 2
    assert "--assimilate" in capsys.readouterr().err
    assert _live(world, tmp_path / "b", "--assimilate", "pf", "--members", "1") == 2
    assert "at least 2 members" in capsys.readouterr().err
