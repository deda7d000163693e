"""The city's sensors layer (docs/city_package.md, "sensors"): the demo city's set, its generator, and
clear refusals of a broken layer."""
from __future__ import annotations

import json
import shutil
import sys

import pytest

from tests.conftest import DEMO_CITY, ROOT
from twin.core.city import City
from twin.core.errors import UserError
from twin.core.sensors import read_sensors


@pytest.fixture(scope="module")
def demo():
    return City.load(DEMO_CITY)


def test_demo_city_has_the_sensors_the_live_scenarios_need(demo):
    sensors = read_sensors(demo)
    kinds = {}
    for s in sensors:
        kinds.setdefault(s.kind, []).append(s)
    gate_ids = set(demo.layer("gates")["id"])
    assert {s.feature for s in kinds["gate_counter"]} == gate_ids  # every exit and ticket gate counted
    assert {s.id for s in kinds["people_counter"]} == {f"PC-{p}" for p in demo.layer("sources")["id"]}
    assert all(s.level == 1 for s in kinds["people_counter"])  # the platforms are upstairs
    assert {s.feature for s in kinds["attraction_counter"]} == set(demo.pois_of("attraction")["id"])
    assert len(kinds["rain_gauge"]) == 3 and all(s.value == "rain_mm_per_h" for s in kinds["rain_gauge"])
    gauges = kinds["water_level"]
    assert len(gauges) == 8  # pump sumps, the hollow, two drain inlets
    # the water-level gauges stand in the hollow: lower than 90 % of the city's ground
    z = demo.elevation_at([s.x for s in gauges], [s.y for s in gauges])
    import numpy as np

    assert (z < np.nanpercentile(demo.terrain.grid.values, 10)).all()


def test_committed_sensors_are_what_the_generator_makes(demo, tmp_path):
    sys.path.insert(0, str(ROOT / "gis_data"))
    try:
        import make_demo_sensors
    finally:
        sys.path.pop(0)
    copy = tmp_path / "demo"
    shutil.copytree(DEMO_CITY, copy)
    assert make_demo_sensors.main([str(copy)]) == 0
    assert (copy / "sensors.geojson").read_bytes() == (DEMO_CITY / "sensors.geojson").read_bytes()


def test_city_info_lists_the_sensors():
    from twin.gis.city_info import city_info

    text = city_info(DEMO_CITY)
    assert "Sensors   40: attraction_counter 7, gate_counter 13" in text
    assert "C-E1       gate_counter       gates/E1/exited" in text
    assert "RG2        rain_gauge         rain_mm_per_h" in text


def _layer(tmp_path, features):
    from tests.factories import make_tiny_city

    city = make_tiny_city(tmp_path)
    (city / "sensors.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32650"}},
        "features": [{"type": "Feature", "properties": p, "geometry": g or {"type": "Point", "coordinates": [500500, 3401000]}}
                     for p, g in features]}), encoding="utf-8")
    return City.load(city)


@pytest.mark.parametrize("props, geom, message", [
    ({"id": "S1", "kind": "x", "value": "depth"}, None, "column(s) unit missing"),
    ({"id": "S1", "kind": "x", "value": "depth", "unit": "m", "noise_sd": -1}, None, "noise_sd = -1.0"),
    ({"id": "S1", "kind": "x", "value": "depth", "unit": "m", "interval_s": 0}, None, "interval_s = 0.0"),
    ({"id": "S1", "kind": "x", "value": "depth", "unit": "m", "mode": "sum"}, None, "mode = 'sum'"),
    ({"id": "S1", "kind": "x", "value": "exited", "unit": "-", "layer": "gates"}, None, "give both layer and feature"),
    ({"id": "S1", "kind": "x", "value": "depth", "unit": "m"}, {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
     "must be a point"),
])
def test_a_broken_sensors_layer_is_refused_by_name(tmp_path, props, geom, message):
    city = _layer(tmp_path, [(props, geom)])
    with pytest.raises(UserError, match="sensors.geojson") as e:
        read_sensors(city)
    assert message in str(e.value)


def test_duplicate_sensor_ids_are_refused(tmp_path):
    p = {"id": "S1", "kind": "x", "value": "depth", "unit": "m"}
    with pytest.raises(UserError, match="'S1' is used twice"):
        read_sensors(_layer(tmp_path, [(p, None), (p, None)]))
