"""(i) Bad geometry and bad parameters give a UserError naming the feature."""
from __future__ import annotations

import pytest
import shapely

from agents.station.model import StationDispersalModel
from twin.core.errors import UserError

from .conftest import X0, Y0, make_city


def line(*pts):
    return shapely.LineString([(X0 + x, Y0 + y) for x, y in pts])


def build(**kw):
    params = kw.pop("params", {})
    return StationDispersalModel(make_city(**kw), duration_s=10, seed=1, **params)


def gates(*extra, n1=True):
    return [{"id": "N1", "kind": "exit", "open": n1, "geometry": line((10, 30), (14, 30))}, *extra]


def test_gate_far_from_walkable():
    g = gates({"id": "Z9", "kind": "exit", "open": True, "geometry": line((10, 40), (14, 40))})
    with pytest.raises(UserError, match=r'gate "Z9" does not touch the walkable area: it is 10.0 m'):
        build(gates=g)


def test_zero_width_gate():
    g = gates({"id": "Z0", "kind": "exit", "open": True, "geometry": line((20, 30), (20, 30.0001))})
    with pytest.raises(UserError, match=r'gate "Z0" is 0.00 m wide'):
        build(gates=g)


def test_source_outside_walkable():
    src = [{"id": "P7", "count": 10, "release_s": 0.0,
            "geometry": shapely.box(X0 + 70, Y0 + 5, X0 + 80, Y0 + 9)}]
    with pytest.raises(UserError, match=r'source "P7" lies outside the walkable area \(10.0 m away'):
        build(sources=src)


def test_no_open_exit():
    with pytest.raises(UserError, match="every exit gate is closed"):
        build(gates=gates(n1=False))


def test_disconnected_part_without_exit():
    walk = [{"name": "hall", "geometry": shapely.box(X0, Y0, X0 + 60, Y0 + 30)},
            {"name": "island", "geometry": shapely.box(X0 + 100, Y0, X0 + 110, Y0 + 10)}]
    with pytest.raises(UserError, match='part "island" is not connected'):
        build(walkable=walk, gates=gates())


def test_source_in_part_without_exit():
    walk = [{"name": "hall", "geometry": shapely.box(X0, Y0, X0 + 60, Y0 + 30)},
            {"name": "island", "geometry": shapely.box(X0 + 100, Y0, X0 + 110, Y0 + 10)}]
    src = [{"id": "P9", "count": 10, "release_s": 0.0, "geometry": shapely.box(X0 + 102, Y0 + 2, X0 + 108, Y0 + 8)}]
    with pytest.raises(UserError, match='source "P9" lies in a part of the walkable area from which no open exit'):
        build(walkable=walk, gates=gates(), sources=src)


@pytest.mark.parametrize("key", ["open_gates", "closed_gates", "guidance_gates"])
def test_unknown_gate_ids(key):
    with pytest.raises(UserError, match=rf'{key}: none of the gates has the id or name "N4" \(did you mean .*the gates are: N1, N2'):
        build(params={key: ["N4"]})


def test_guidance_to_closed_gate():
    with pytest.raises(UserError, match='gate "W1" is closed'):
        build(params={"guidance_gates": ["W1"]})


def test_shares_must_sum_to_one():
    with pytest.raises(UserError, match="must sum to 1"):
        build(params={"share_metro": 0.9})


def test_missing_poi_kind():
    with pytest.raises(UserError, match='share_taxi = 0.05 but the city has no POI of kind "taxi_rank"'):
        build(pois=[{"id": "M1", "kind": "metro", "capacity": 0, "geometry": shapely.Point(X0, Y0 + 40)},
                    {"id": "B1", "kind": "bus_stop", "capacity": 0, "geometry": shapely.Point(X0, Y0 + 40)}])


def test_bad_barrier():
    with pytest.raises(UserError, match="barriers"):
        build(params={"barriers": ["POLYGON ((1 2, 3"]})
    with pytest.raises(UserError, match="neither WKT nor an obstacle"):
        build(params={"barriers": ["wall-7"]})


@pytest.mark.slow
def test_barrier_blocks_gate():
    wkt = f"POLYGON (({X0 + 8} {Y0 + 27}, {X0 + 16} {Y0 + 27}, {X0 + 16} {Y0 + 30}, {X0 + 8} {Y0 + 30}, {X0 + 8} {Y0 + 27}))"
    m = StationDispersalModel(make_city(), duration_s=10, seed=1, barriers=[wkt], closed_gates=["N1"])
    assert not m.station.free[0].contains(shapely.Point(X0 + 12, Y0 + 29))


def test_unknown_parameter():
    with pytest.raises(UserError, match="unknown parameter"):
        build(params={"desired_sped_mps": 1.0})
