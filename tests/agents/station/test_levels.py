"""Levels, stairs and escalators: RiMEA tests 2 and 3 (speed on stairs), stair flow against width,
escalator capacity, people conserved across levels, interventions and selectors, and clear errors
for connectors drawn wrongly. Figures are printed (``pytest -s``)."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from agents.station.model import CHANGING_LEVEL, WALKING, StationDispersalModel
from twin.core.errors import UserError

from .conftest import X0, Y0, two_level_city

WALK_ONLY = dict(share_walk=1.0, share_metro=0.0, share_bus=0.0, share_taxi=0.0)


def box(a, b, c, d):
    return shapely.box(X0 + a, Y0 + b, X0 + c, Y0 + d)


def line(*pts):
    return shapely.LineString([(X0 + x, Y0 + y) for x, y in pts])


def stair(cid="S1", width=3.0, direction="both", kind="stairs", y=6.5, speed=None, x0=16.0, x1=28.0, **kw):
    return {"id": cid, "kind": kind, "from_level": 0, "to_level": 1, "width_m": width, "direction": direction,
            "speed_mps": speed, "geometry": line((x0, y), (x1, y)), **kw}


def run(m, t_max=1200):
    while not m.finished and m.time_s < t_max:
        m.advance_to(m.time_s + 10)
    return m


# -- RiMEA tests 2 and 3 -------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("up", [True, False])
def test_rimea_2_3_one_person_on_stairs(up):
    """RiMEA test 2 (up) and 3 (down): one person on a stair 10 m long along the slope (8 m in plan,
    6 m rise) keeps the stair speed assigned to her: Weidmann's 0.61 m/s up and 0.694 m/s down
    (horizontal, for the mean free speed 1.34 m/s), i.e. 13.1 s up and 11.5 s down. She is drawn on
    the slope in between."""
    src_level, exit_level = (0, 1) if up else (1, 0)
    walkable = [{"name": "lower hall", "level": 0, "geometry": box(0, 0, 20, 6)},
                {"name": "upper hall", "level": 1, "geometry": box(8, 0, 30, 6)}]
    city = two_level_city(
        walkable=walkable, connectors=[stair(width=2.0, y=3.0, x0=12.0, x1=20.0)],
        sources=[{"id": "A", "count": 1, "release_s": 0.0, "level": src_level,
                  "geometry": box(1, 2, 3, 4) if up else box(26, 2, 28, 4)}],
        gates=[{"id": "X", "kind": "exit", "open": True, "level": exit_level,
                "geometry": line((30, 1), (30, 5)) if up else line((0, 1), (0, 5))}])
    m = StationDispersalModel(city, duration_s=120, seed=1, desired_speed_sd_mps=0.0, **WALK_ONLY)
    zs = []
    while not m.finished and m.time_s < 120:
        m.advance_to(m.time_s + 1)
        snap = m.snapshot()
        on = snap.states == CHANGING_LEVEL
        if on.any():
            zs.append(float(snap.z[on][0]))
            x = snap.positions[on][0, 0] - X0
            assert 12.0 - 1e-6 <= x <= 20.0 + 1e-6  # on the stair, in plan
    t_stair = float(m.t_off[0] - m.t_on[0])
    expect = 8.0 / (0.61 if up else 0.694)
    print(f"RiMEA {'2 (up)' if up else '3 (down)'}: {t_stair:.2f} s on a 10 m stair (expected {expect:.2f} s, "
          f"{10.0 / t_stair:.3f} m/s along the slope)")
    assert t_stair == pytest.approx(expect, rel=1e-9)
    assert m.current_kpis()["agents_exited"] == 1
    assert 0.0 <= min(zs) and max(zs) <= 6.0 and len(zs) >= 10
    assert (np.diff(zs) > 0).all() if up else (np.diff(zs) < 0).all()


# -- stair flow against width, escalator capacity --------------------------------------------------
def saturated_flow(city, count=300, **params) -> tuple[float, StationDispersalModel]:
    """Passengers per second onto the connector(s) while a queue stands at the foot (10-90 %)."""
    m = run(StationDispersalModel(city, duration_s=1500, seed=2, release_spread_s=0.0, **(WALK_ONLY | params)), 1500)
    k = m.current_kpis()
    assert k["agents_exited"] == count and sum(k["passed_by_connector"].values()) == count
    t = np.sort(m.t_on)
    a, b = int(0.1 * count), int(0.9 * count)
    return (b - a) / (t[b] - t[a]), m


@pytest.mark.slow
def test_stair_flow_grows_with_width_within_published_ranges():
    """Flow down a stair: at most 1.01 persons/s per metre of effective width (width - 0.3 m;
    SFPE Handbook, Nelson & Mowrer) and within the published range of 0.6-1.1 persons/(m s) of
    nominal width (Fruin: 0.93 at LOS E; Hankin & Wright)."""
    widths = [1.2, 2.0, 3.0]
    flows = []
    for w in widths:
        city = two_level_city(connectors=[stair(width=w, y=4.5 + w / 2)],
                              sources=[{"id": "P1", "count": 300, "release_s": 0.0, "level": 1,
                                        "geometry": box(30, 5, 39, 13)}])
        flows.append(saturated_flow(city)[0])
    per_m = np.array(flows) / widths
    print(f"stair flow vs width {widths} m: {np.round(flows, 2)} p/s = {np.round(per_m, 2)} p/(m s) "
          f"(capacity {[round(1.01 * (w - 0.3), 2) for w in widths]} p/s)")
    assert np.all(np.diff(flows) > 0)
    assert np.all((0.6 <= per_m) & (per_m <= 1.1))
    for w, f in zip(widths, flows):
        assert f <= 1.01 * (w - 0.3) * 1.02  # never above the stair's capacity
        assert f >= 0.85 * 1.01 * (w - 0.3)  # the queue keeps it busy


@pytest.mark.slow
def test_escalator_throughput_matches_its_capacity():
    """A 1 m escalator at 0.5 m/s with a standing queue at its head carries its practical capacity:
    EN 115's 150 persons/min theoretical x 0.73 = 110/min (observed 100-120/min); within 15 %."""
    city = two_level_city(connectors=[stair("E1", width=1.0, direction="down", kind="escalator", y=9.0, speed=0.5)],
                          sources=[{"id": "P1", "count": 300, "release_s": 0.0, "level": 1,
                                    "geometry": box(30, 5, 39, 13)}])
    flow, m = saturated_flow(city)
    per_min = 60 * flow
    print(f"escalator 1.0 m at 0.5 m/s: {per_min:.1f} persons/min (documented capacity 100-120, EN 115 theoretical 150)")
    assert abs(per_min / 110.0 - 1) <= 0.15
    # standing riders take slope / belt speed; walkers less
    ride = m.t_off - m.t_on
    slope = float(np.hypot(12.0, 6.0))
    assert ride.max() == pytest.approx(slope / 0.5, rel=1e-9) and ride.min() < 0.7 * slope / 0.5


# -- conservation and interventions ------------------------------------------------------------------
@pytest.mark.slow
def test_everyone_conserved_across_levels_and_nobody_ends_between_them():
    m = StationDispersalModel(two_level_city(), duration_s=900, seed=3, **WALK_ONLY)
    free = [m.station.free[lv] for lv in m.station.levels]
    seen_on = 0
    while not m.finished and m.time_s < 900:
        m.advance_to(m.time_s + 5)
        c = m.counts()
        assert c["released"] == c["walking"] + c["changing_level"] + c["exited"] + c["queueing"] + c["onward"] + \
            c["boarded"]
        assert c["walking"] == m.crowd.n and c["changing_level"] == m.n_transit == m.conn_load.sum()
        seen_on = max(seen_on, c["changing_level"])
        cr = m.crowd
        for L, poly in enumerate(free):
            on = cr.lv[:cr.n] == L
            pts = shapely.points(cr.x[:cr.n][on], cr.y[:cr.n][on])
            assert shapely.covers(poly.buffer(0.05), pts).all(), f"someone walks off level {m.station.levels[L]}"
    k = m.final_kpis()
    assert m.finished and k["agents_exited"] == k["agents_total"] == 200 and seen_on > 0
    assert m.counts()["changing_level"] == 0 and np.isfinite(m.t_off[np.isfinite(m.t_on)]).all()
    assert sum(k["passed_by_connector"].values()) == 200 and k["passed_by_connector"]["U1"] == 0
    assert k["max_density_by_level"]["1"] > 0 and k["max_density_by_level"]["0"] > 0


@pytest.mark.slow
def test_density_and_max_density_have_a_band_per_level():
    m = StationDispersalModel(two_level_city(), duration_s=60, seed=1, **WALK_ONLY)
    m.advance_to(40)
    d = m.snapshot().fields["density"]
    assert d.values.shape[0] == 2 and d.band_z_m == (0.0, 6.0) and d.band_names == ("level 0", "level 1")
    assert np.nanmax(d.values[1]) > 0  # people on the platform
    r = m.rasters()["max_density"]
    assert np.nanmax(r.values) == pytest.approx(m.max_density)
    snap = m.snapshot()
    walking = snap.states == WALKING
    assert set(np.unique(snap.z[walking])) <= {0.0, 6.0}


def test_level_height_from_city_toml():
    m = StationDispersalModel(two_level_city(level_height_m={"1": 4.5}), duration_s=30, seed=1, **WALK_ONLY)
    assert m.level_z.tolist() == [0.0, 4.5]
    assert m.conn_slope_m[0] == pytest.approx(np.hypot(12.0, 4.5))


@pytest.mark.slow
def test_reversing_and_closing_connectors():
    city = two_level_city()
    base = run(StationDispersalModel(city, duration_s=900, seed=4, **WALK_ONLY)).final_kpis()
    rev = run(StationDispersalModel(city, duration_s=900, seed=4, reverse_connectors=["kind=escalator direction=up"],
                                    **WALK_ONLY)).final_kpis()
    shut = run(StationDispersalModel(city, duration_s=900, seed=4, closed_connectors=["S1"], **WALK_ONLY)).final_kpis()
    print(f"connector use: base {base['passed_by_connector']}, U1 reversed {rev['passed_by_connector']}, "
          f"S1 closed {shut['passed_by_connector']}")
    assert base["passed_by_connector"]["U1"] == 0 and rev["passed_by_connector"]["U1"] > 0
    assert shut["passed_by_connector"]["S1"] == 0 and shut["agents_exited"] == 200
    assert shut["station_clearance_time_s"] > base["station_clearance_time_s"]


@pytest.mark.slow
def test_spare_stairs_closed_in_the_layer_open_by_selector():
    city = two_level_city(connectors=[stair("S1", width=1.2, y=5.6), stair("S2", width=2.5, y=8.5, open=False)])
    shut = run(StationDispersalModel(city, duration_s=900, seed=5, **WALK_ONLY)).final_kpis()
    opened = run(StationDispersalModel(city, duration_s=900, seed=5, open_connectors=["kind=stairs"],
                                       **WALK_ONLY)).final_kpis()
    assert shut["passed_by_connector"]["S2"] == 0 and opened["passed_by_connector"]["S2"] > 0
    assert opened["station_clearance_time_s"] < shut["station_clearance_time_s"]


# -- bad input -----------------------------------------------------------------------------------
def test_connector_end_off_its_level():
    bad = stair("S9", y=30.0)
    with pytest.raises(UserError, match=r'connector "S9" \(stairs\): its lower end .* is 10\.0 m away from the '
                                        r"walkable area of level 0"):
        StationDispersalModel(two_level_city(connectors=[bad]), duration_s=10, seed=1, **WALK_ONLY)


def test_level_with_sources_and_no_way_out():
    only_up = [stair("U1", width=1.0, direction="up", kind="escalator", y=10.0, speed=0.5)]
    with pytest.raises(UserError, match='source "P1" on level 1 has no way to an open exit'):
        StationDispersalModel(two_level_city(connectors=only_up), duration_s=10, seed=1, **WALK_ONLY)
    # the same once the escalator is reversed
    m = StationDispersalModel(two_level_city(connectors=only_up), duration_s=10, seed=1, reverse_connectors=["U1"],
                              **WALK_ONLY)
    assert m.t_open[m.E0 + 1] and not m.t_open[m.E0]


@pytest.mark.parametrize("conn,message", [
    (stair(kind="ramp"), 'has kind "ramp".*use stairs, escalator or lift'),
    (stair(kind="escalator", direction="both", width=1.0, speed=0.5), "an escalator runs up or down"),
    (stair(kind="escalator", width=2.5, direction="up", speed=0.5), "escalator steps are"),
    (stair(width=0.3), "narrower than one person"),
    ({**stair(), "from_level": 1, "to_level": 0}, "from_level below to_level"),
    ({**stair(), "to_level": 2}, "leads to level 2, which has no walkable area"),
])
def test_bad_connectors_name_the_feature(conn, message):
    with pytest.raises(UserError, match=message):
        StationDispersalModel(two_level_city(connectors=[conn]), duration_s=10, seed=1, **WALK_ONLY)


def test_selectors_name_unknown_ids_and_keys():
    city = two_level_city()
    with pytest.raises(UserError, match='none of the connectors has the id or name "S7" \\(did you mean "S1"\\?\\)'):
        StationDispersalModel(city, duration_s=10, seed=1, closed_connectors=["S7"], **WALK_ONLY)
    with pytest.raises(UserError, match='selects by "colour"'):
        StationDispersalModel(city, duration_s=10, seed=1, closed_connectors=["colour=red"], **WALK_ONLY)
    # a selector that matches nothing is an error listing the gates: it would run as a silent no-op
    with pytest.raises(UserError, match='"kind=ticket_gate level=0" matches none of the gates.*the gates are: '):
        StationDispersalModel(city, duration_s=10, seed=1, closed_gates=["kind=ticket_gate level=0"], **WALK_ONLY)


# -- lifts -------------------------------------------------------------------------------------------
def test_lift_throughput_is_its_capacity_per_cycle():
    """A lift (kind lift: capacity persons per trip, a round trip every cycle_s) with a queue at its
    upper door carries capacity / cycle_s: 6 persons every 15 s = 0.4 persons/s. Everyone leaves
    on a departure (the upper door's at 7.5, 22.5, 37.5 ... s: half a cycle after the lower door's),
    at most 6 at a time, and rides half a cycle; the queue waits in the lobby at the door."""
    lift = {"id": "L1", "kind": "lift", "from_level": 0, "to_level": 1, "width_m": 1.2, "direction": "both",
            "capacity": 6, "cycle_s": 15.0, "geometry": line((22, 9.0), (24, 9.0))}
    city = two_level_city(connectors=[lift], sources=[{"id": "P1", "count": 60, "release_s": 0.0, "level": 1,
                                                       "geometry": box(30, 5, 39, 13)}])
    m = run(StationDispersalModel(city, duration_s=400, seed=2, release_spread_s=0.0, lift_share=0.2, **WALK_ONLY), 400)
    k = m.current_kpis()  # the only way down: everyone takes it (lift_share: where there are others)
    assert k["agents_exited"] == 60 and k["passed_by_connector"] == {"L1": 60}
    t_on = np.sort(m.t_on)
    trips, per_trip = np.unique(np.round(t_on, 6), return_counts=True)
    dt = m.dt_s
    # departures on the upper door's schedule (a boarding is seen at the end of the step it falls in)
    assert np.all(np.abs((trips - 7.5) / 15.0 - np.round((trips - 7.5) / 15.0)) * 15.0 <= dt + 1e-9), trips
    assert per_trip.max() == 6 and len(trips) == 10 and (per_trip == 6).all(), per_trip  # 60 = 10 full trips
    flow = per_trip[1:].sum() / (trips[-1] - trips[0])  # while the queue stands
    assert flow == pytest.approx(6 / 15.0, rel=0.02)
    assert np.allclose(m.t_off - m.t_on, 7.5)
    # with stairs beside it, only the lift_share take the lift; with lift_share 1, a route counts the
    # wait and the car's trip, and many still take the stairs
    stairs = stair("S1", width=2.0, y=13.0)
    city2 = two_level_city(connectors=[lift, stairs])
    both = run(StationDispersalModel(city2, duration_s=400, seed=2, lift_share=0.1, **WALK_ONLY),
               400).current_kpis()["passed_by_connector"]
    assert 5 <= both["L1"] <= 40 and both["L1"] + both["S1"] == 200, both  # 200 × 0.1 = 20 expected
    everyone = run(StationDispersalModel(city2, duration_s=400, seed=2, lift_share=1.0, **WALK_ONLY),
                   400).current_kpis()["passed_by_connector"]
    assert everyone["L1"] > both["L1"] and everyone["S1"] > 0, everyone


@pytest.mark.parametrize("bad, message", [
    ({"capacity": 0}, r'connector "L1": capacity is 0; give a positive number'),
    ({"capacity": 2.5}, r"capacity is 2.5; give the persons a trip takes, a whole number from 1 to 100"),
    ({"cycle_s": 1.0}, r"cycle_s is 1 s; a lift's round trip takes 5 to 900 s"),
])
def test_bad_lifts_name_the_column(bad, message):
    lift = {"id": "L1", "kind": "lift", "from_level": 0, "to_level": 1, "width_m": 1.2, "direction": "both",
            "geometry": line((22, 9.0), (24, 9.0)), **bad}
    with pytest.raises(UserError, match=message):
        StationDispersalModel(two_level_city(connectors=[lift]), duration_s=10, seed=1, **WALK_ONLY)
