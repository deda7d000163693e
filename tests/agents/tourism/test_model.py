"""The tourist_flow model on the platform: places on the road graph, positions along the routes,
accounting, state, and the input errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from shapely.geometry import LineString

from agents.registry import get_model
from agents.tourism.layout import CHECKED_IN, G_SIZE, G_STATE, LEFT
from agents.tourism.model import VIEW_STATES, TouristFlowModel
from agents.tourism.view import MEMBER_SCALE_M
from tests.conftest import DEMO_CITY
from tests.factories import X0, Y0, state_context
from twin.core.city import City
from twin.core.errors import UserError
from twin.core.state_file import read_state, state_bytes, write_state_bytes

from .cities import ATTRACTION, STATION, make_city, poi

WALK = 1.34


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    return City.load(make_city(tmp_path_factory.mktemp("mini")))


@pytest.fixture(scope="module")
def demo():
    return City.load(DEMO_CITY)


def day(city, hours=3.0, **params):
    return TouristFlowModel(city, duration_s=hours * 3600.0, seed=5, **params)


def test_registered():
    assert get_model("tourist_flow") is TouristFlowModel


# -- the smallest city: roads, one station, one attraction ---------------------------------------
def test_a_city_of_roads_a_station_and_an_attraction_runs(mini):
    m = day(mini, hours=12.0, arrival_profile=[[21600, 400], [36000, 0]], time_budget_s=2 * 3600.0,
            dwell_mean_s=1800.0)
    # travel time: the access walks (straight) plus 1200 m of street, on foot
    access = math.hypot(*STATION[2]) + math.hypot(1200 - ATTRACTION[2][0], ATTRACTION[2][1])
    assert m.net.T.shape == (1, 2, 2)
    assert m.net.T[0, 0, 1] == pytest.approx((access + 1200.0) / WALK)
    assert m.net.T[0, 1, 0] == pytest.approx(m.net.T[0, 0, 1])
    m.run_to_end()
    k = m.final_kpis()
    assert k["tourists_total"] > 1200 and k["visits_completed"] > 0.8 * k["tourists_total"]
    assert k["mean_room_search_s"] == 0.0 and k["room_search_failed"] == 0.0  # no hotels: day visitors only
    by_state = k["tourists_by_state"]
    assert sum(by_state.values()) == k["tourists_total"]
    assert set(by_state) == set(VIEW_STATES) | {"checked_in", "left"}
    assert m.finished and by_state["left"] == k["tourists_total"]  # everybody went home, and the run stopped
    assert m.time_s < 12 * 3600.0
    assert set(k["attraction_queue"]) == {"A"}


def test_travellers_walk_along_the_streets(mini):
    m = day(mini, hours=2.0, arrival_rate_per_h=600.0)
    streets = shapely.union_all([LineString([(X0 + a[0], Y0 + a[1]), (X0 + b[0], Y0 + b[1])])
                                 for a, b in [((0, 0), (1200, 0))]])
    seen = 0
    for t in np.arange(300.0, 7200.0, 300.0):
        m.advance_to(t)
        ppl = m.people()
        on_road = ppl["road"] >= 0
        seen += on_road.sum()
        # a person on a road segment is within a group's spread of the street (members stand a step apart)
        d = shapely.distance(streets, shapely.points(ppl["positions"][on_road]))
        assert (d < MEMBER_SCALE_M * math.sqrt(8) + 1e-6).all()
    assert seen > 100


# -- routes on the demo city -----------------------------------------------------------------------
@pytest.mark.slow
def test_positions_follow_the_route_polylines(demo):
    """Routes.locate (one searchsorted for everybody) against shapely's interpolation along each
    route's polyline: on foot, time along the route is distance / walking speed."""
    m = day(demo, hours=0.1)
    net, R = m.net, m.net.routes
    rng = np.random.default_rng(3)
    P = net.P
    a, b = rng.integers(0, P, 300), rng.integers(0, P, 300)
    route = a * P + b
    frac = rng.uniform(-0.1, 1.1, 300)
    xy, road = R.locate(route, frac * R.total[route])
    for k in range(300):
        verts = R.xy[R.start[route[k]]:R.end[route[k]]]
        total = R.total[route[k]]
        assert total == pytest.approx(net.T[0, a[k], b[k]])
        if a[k] == b[k]:
            assert np.allclose(xy[k], net.xy[a[k]])
            continue
        line = LineString(verts)
        assert line.length / WALK == pytest.approx(total, rel=1e-9)
        ref = line.interpolate(min(max(frac[k], 0.0), 1.0) * line.length)
        assert np.hypot(xy[k, 0] - ref.x, xy[k, 1] - ref.y) < 1e-6
    # a route starts and ends at its POIs, its inner vertices are road nodes
    k = 7 * P + 20
    verts = R.xy[R.start[k]:R.end[k]]
    assert np.allclose(verts[0], net.xy[7]) and np.allclose(verts[-1], net.xy[20])
    assert np.isin(R.road[R.start[k] + 1:R.end[k] - 2], np.arange(len(demo.roads))).all()
    # walking is symmetric, never faster than the straight line, and the shuttle is off by default
    assert np.allclose(net.T[0], net.T[0].T)
    straight = np.hypot(*(net.xy[:, None] - net.xy[None]).transpose(2, 0, 1)) / WALK
    assert (net.T[0] >= straight - 1e-9).all() and net.T.shape[0] == 1


def test_shuttle_runs_between_the_stops_on_roads_open_to_it(demo):
    m = day(demo, hours=0.1, shuttle_share=0.5, shuttle_stops=["ST", "A1", "A7", "CS2"])
    T = m.net.T
    assert T.shape[0] == 2
    ids = m.place_ids
    stops = [ids.index(s) for s in ("ST", "A1", "A7", "CS2")]
    finite = np.isfinite(T[1])
    assert finite[np.ix_(stops, stops)].all() and finite.sum() == len(stops) ** 2
    assert T[1][ids.index("ST"), ids.index("A1")] < T[0][ids.index("ST"), ids.index("A1")]
    # no shuttle segment uses a footway
    R = m.net.routes
    P = m.net.P
    k = P * P + ids.index("ST") * P + ids.index("A7")
    roads = R.road[R.start[k]:R.end[k]]
    kinds = demo.roads["kind"].to_numpy()[roads[roads >= 0]]
    assert len(kinds) and "footway" not in set(kinds)


# -- the demo city ---------------------------------------------------------------------------------
def test_demo_city_short_day_accounts_for_everybody(demo):
    m = day(demo, hours=4.0, arrival_rate_per_h=3000.0, time_budget_s=2.5 * 3600, overnight_share=0.4,
            opening_hours_s=[25200, 32400])
    w = m.engine.world
    for t in np.arange(1200.0, 4 * 3600.0 + 1, 1200.0):
        m.advance_to(t)
        k = m.current_kpis()
        snap = m.snapshot()
        by_state = k["tourists_by_state"]
        assert sum(by_state.values()) == k["tourists_total"]
        # the snapshot draws every tourist who is in the city, once, with a stable id
        in_city = k["tourists_total"] - by_state["checked_in"] - by_state["left"]
        assert len(snap.ids) == in_city == k["tourists_in_city"] and len(np.unique(snap.ids)) == len(snap.ids)
        counts = np.bincount(snap.states, minlength=len(VIEW_STATES))
        assert counts.tolist() == [by_state[s] for s in VIEW_STATES]
        # the same person keeps the same id: ids are first-member id + member number, within the groups' range
        assert snap.ids.max() < w.gi[:, G_SIZE].sum()
        # queues in the features are the keyed KPIs; road counts are the tourists on road segments
        q = dict(zip(snap.features["pois"].ids, snap.features["pois"].values["queue"]))
        assert all(q[a] == v for a, v in k["attraction_queue"].items())
        on_roads = snap.features["roads"].values["tourists"].sum()
        assert 0 < on_roads <= by_state["travelling"] + by_state["searching_room"]
        crowd = snap.fields["crowding"]
        assert crowd.values.sum() * crowd.cell_m ** 2 == pytest.approx(len(snap.ids), rel=1e-5)
        assert (snap.features["pois"].values["occupancy_ratio"] <= 1.0).all()
    assert k["visits_completed"] > 0 and k["mean_entry_wait_s"] > 0 and k["mean_room_search_s"] > 0
    # everybody who arrived is in exactly one state
    n = int(w.ctr[2])
    assert w.gi[:n, G_SIZE].sum() == k["tourists_total"]
    done = np.isin(w.gi[:n, G_STATE], (CHECKED_IN, LEFT))
    assert w.gi[:n, G_SIZE][done].sum() == by_state["checked_in"] + by_state["left"]


@pytest.mark.slow
def test_same_seed_same_day_other_seed_another(demo):
    def run(seed):
        m = TouristFlowModel(demo, duration_s=3 * 3600.0, seed=seed, arrival_rate_per_h=2000.0)
        m.run_to_end()
        return m.final_kpis(), m.timeseries(), m.snapshot()

    a, b, c = run(1), run(1), run(2)
    assert a[0] == b[0] and a[1].equals(b[1]) and np.array_equal(a[2].positions, b[2].positions)
    assert a[0] != c[0]


@pytest.mark.slow
def test_state_round_trip_mid_day_and_a_variant_from_there(demo, tmp_path):
    kw = dict(arrival_rate_per_h=2500.0, overnight_share=0.5, time_budget_s=2 * 3600.0)
    straight = day(demo, hours=5.0, **kw)
    straight.run_to_end()
    first = day(demo, hours=5.0, **kw)
    first.advance_to(2 * 3600.0 + 17.0)  # between report rows and between events
    path = tmp_path / "tourism.npz"
    write_state_bytes(state_bytes(first, state_context(first)), path)
    saved = read_state(path)
    again = day(demo, hours=5.0, **kw)
    again.set_state(saved.arrays, saved.meta["model"])
    again.run_to_end()
    assert again.final_kpis() == straight.final_kpis()
    assert again.timeseries().equals(straight.timeseries())
    assert np.array_equal(again.snapshot().positions, straight.snapshot().positions)
    # continued as the platform variant: those who arrive from now on book on the platform in 10 s
    platform = day(demo, hours=5.0, room_platform_share=1.0, reservation_share=0.5, **kw)
    platform.set_state(saved.arrays, saved.meta["model"])
    platform.run_to_end()
    kp, kb = platform.final_kpis(), straight.final_kpis()
    assert kp["tourists_total"] == kb["tourists_total"]
    assert kp["mean_room_search_s"] < 0.8 * kb["mean_room_search_s"]
    assert platform.engine.world.slots.shape[1] > 1  # the booking table of the variant


# -- bad input -------------------------------------------------------------------------------------
def city_with(tmp_path, pois, name="bad"):
    return City.load(make_city(tmp_path, pois, name))


def test_attraction_with_zero_gates(tmp_path):
    c = city_with(tmp_path, [poi(*STATION), poi("Museum", "attraction", (1194, -8), gates=0, capacity=100,
                                                service_time_s=5.0)])
    with pytest.raises(UserError, match=r'attraction "Museum" has gates = 0; it must be a whole number >= 1\. An '
                                        r"attraction needs at least 1 entry gate: set its gates column"):
        day(c)


def test_attraction_without_capacity(tmp_path):
    c = city_with(tmp_path, [poi(*STATION), poi("Museum", "attraction", (1194, -8), gates=1)])
    with pytest.raises(UserError, match=r'attraction "Museum" has capacity = 0.*Set its capacity column'):
        day(c)


def test_negative_rates(mini):
    with pytest.raises(UserError, match=r'"arrival_rate_per_h" = -5.0 in persons/h is out of range'):
        day(mini, arrival_rate_per_h=-5.0)
    with pytest.raises(UserError, match=r'"arrival_profile": "value at t = 25200 s" = -10.0 in persons/h is out'):
        day(mini, arrival_profile=[[21600, 100], [25200, -10]])


def test_profile_that_does_not_cover_the_run(mini):
    with pytest.raises(UserError, match=r'"arrival_profile" starts at 07:00 \(t_s = 25200\) but the run starts at '
                                        r"06:00 \(day_start_s = 21600\); the profile must cover the whole run"):
        day(mini, arrival_profile=[[25200, 100], [36000, 0]])
    day(mini, arrival_profile=[[0, 100], [36000, 0]])  # from midnight: fine


def test_station_far_from_the_roads(tmp_path):
    c = city_with(tmp_path, [poi("ST", "railway_station", (-400, 300)), poi(*ATTRACTION, capacity=50)])
    with pytest.raises(UserError, match=r'farther than max_snap_m = 250 m from the road network.*"ST" \(500 m\).*'
                                        r'move POI "ST" next to a road'):
        day(c)
    day(c, max_snap_m=600.0)  # allowed when the limit says so


def test_no_entry_point_or_no_attraction(tmp_path):
    c = city_with(tmp_path, [poi("H", "hotel", (600, 10), capacity=20), poi(*ATTRACTION, capacity=50)], "no_entry")
    with pytest.raises(UserError, match=r"needs an entry point where tourists arrive: a POI of kind station, "
                                        r"railway_station, coach_stop\. This city has none \(its POI kinds: "
                                        r"attraction, hotel\)"):
        day(c)
    c = city_with(tmp_path, [poi(*STATION), poi("H", "hotel", (600, 10), capacity=20)], "no_attraction")
    with pytest.raises(UserError, match=r"needs at least one POI of kind attraction"):
        day(c)


def test_unknown_ids_and_bad_hours(mini):
    with pytest.raises(UserError, match=r'extra_gates_at: none of the attractions has the id or name "B"; the attractions are: A\.'):
        day(mini, extra_gates=1, extra_gates_at=["B"])
    with pytest.raises(UserError, match=r'"opening_hours_s" = \[64800.0, 28800.0\]; give \[open_s, close_s\]'):
        day(mini, opening_hours_s=[64800, 28800])


def test_hotel_without_desks_and_a_column_that_is_not_a_number(tmp_path):
    c = city_with(tmp_path, [poi(*STATION), poi(*ATTRACTION, capacity=50),
                             poi("Inn", "hotel", (600, 10), capacity=20, gates=0)], "no_desk")
    with pytest.raises(UserError, match=r'hotel "Inn" has gates = 0; it must be a whole number >= 1\. A hotel\'s gates '
                                        r"column is its number of front-desk servers"):
        day(c)
    c = city_with(tmp_path, [poi(*STATION), poi(*ATTRACTION, capacity=50, popularity="many")], "text")
    with pytest.raises(UserError, match=r'attraction "A" has popularity = \'many\', which is not a number'):
        day(c)


def test_unknown_shuttle_stop(mini):
    with pytest.raises(UserError, match=r'shuttle_stops: none of the stations or .* has the id or name "ST2" \(did you mean "ST"'):
        day(mini, shuttle_share=0.5, shuttle_stops=["ST2"])


def test_uncertainty_multipliers_scale_demand_take_up_and_entry_time(mini):
    """arrival_scale, compliance and service_time_scale (citytwin explore / calibrate) act as documented."""
    base = dict(arrival_process="deterministic", arrival_rate_per_h=600.0, time_budget_s=3600.0)

    def ran(**p):
        m = day(mini, hours=2.0, **base, **p)
        m.run_to_end()
        return m.final_kpis()

    one, more = ran(), ran(arrival_scale=1.5)
    assert more["tourists_total"] == pytest.approx(1.5 * one["tourists_total"], rel=0.05)
    # compliance 0: nobody follows the online check-in, as if it did not exist
    assert ran(online_checkin_share=1.0, compliance=0.0) == ran()
    # a slower gate by the scale is a slower gate by entry_time_factor: the same run
    assert ran(service_time_scale=2.0) == ran(entry_time_factor=2.0)


def _water_over(city, xy, depth_m, radius_m=40.0, cell_m=10.0):
    """A depth grid over the city: ``depth_m`` within ``radius_m`` of ``xy``, dry elsewhere."""
    from twin.core.grid import GridField

    x0, y0, x1, y1 = city.roads.total_bounds
    cols, rows = int((x1 - x0) // cell_m) + 2, int((y1 - y0) // cell_m) + 2
    cx = x0 + (np.arange(cols) + 0.5) * cell_m
    cy = y1 + cell_m - (np.arange(rows) + 0.5) * cell_m
    near = np.hypot(cx[None, :] - xy[0], cy[:, None] - xy[1]) <= radius_m
    return GridField("surface_water__depth", np.where(near, depth_m, 0.0).astype(np.float32), x0, y1 + cell_m, cell_m)


@pytest.mark.parametrize("vehicle_limit_m, rerouted", [(0.3, True), (1.0, False)])
def test_the_shuttle_routes_round_roads_too_deep_for_vehicles(demo, vehicle_limit_m, rerouted):
    m = day(demo, hours=0.1, shuttle_share=0.5, shuttle_stops=["ST", "A1", "A7", "CS2"],
            flood_vehicle_closed_depth_m=vehicle_limit_m)
    ids, P, R = m.place_ids, m.net.P, m.net.routes
    a, b = ids.index("ST"), ids.index("A7")
    k = P * P + a * P + b
    before = m.net.T[1][a, b]
    road_xy = R.xy[R.start[k]:R.end[k]][1:-1]
    mid = road_xy[len(road_xy) // 2]  # a crossing halfway along the shuttle's route
    m.accept("surface_water__depth", _water_over(demo, mid, 0.4))
    T, R = m.net.T, m.net.routes
    assert np.array_equal(T, m.engine.world.T)  # the engine routes by the same times
    if not rerouted:  # 0.4 m is passable by a vehicle with a 1 m limit (walkers, at 0.3 m, are not)
        assert T[1][a, b] == before and m._closed_edges.any() and not m._closed_to_vehicles.any()
        return
    assert m._closed_to_vehicles.any()
    assert T[1][a, b] > before  # a detour, or no shuttle at all (inf)
    if np.isfinite(T[1][a, b]):
        new_xy = R.xy[R.start[k]:R.end[k]][1:-1]
        assert np.min(np.hypot(*(new_xy - mid).T)) > 1.0  # the ride avoids the flooded crossing


def test_a_flooded_hotel_lets_no_more_rooms(demo):
    from agents.tourism import layout as L

    m = day(demo, hours=2.0, arrival_rate_per_h=3000.0, overnight_share=0.8, rooms_free_share=1.0)
    w = m.engine.world
    nearest = w.hotel_order[:, 0]  # the hotel every searcher asks first
    h = int(np.bincount(nearest).argmax())
    xy = m.place_xy[m.hotel_place[h]]
    m.advance_to(1800.0)
    closed_at = float(w.now[0])
    m.accept("surface_water__max_depth", _water_over(demo, xy, 1.0, radius_m=15.0))
    assert m.hotel_flood_closed_at[h] == closed_at and w.hf[h, L.H_LET_UNTIL] == closed_at
    taken = int((w.gi[:, L.G_HOTEL] == h).sum())
    m.advance_to(m.duration_s)
    assert int((w.gi[:, L.G_HOTEL] == h).sum()) == taken  # nobody got a room there afterwards
    others = (w.gi[:, L.G_HOTEL] >= 0) & (w.gi[:, L.G_HOTEL] != h)
    assert (w.gf[others, L.F_SEARCH_END] > closed_at).any()  # while the other hotels went on letting


def test_coaches_still_to_come_stop_at_a_dry_coach_stop(demo):
    from agents.tourism import layout as L

    m = day(demo, hours=1.0, arrival_rate_per_h=2000.0, coach_share=1.0)
    w = m.engine.world
    cs1, cs2 = m.place_ids.index("CS1"), m.place_ids.index("CS2")
    m.advance_to(600.0)
    first = int(w.ctr[L.C_NEXT_ARR])
    to_come = w.gi[first:int(w.ctr[L.C_N_DRAWN]), L.G_ENTRY]
    n1, n2 = int((to_come == cs1).sum()), int((to_come == cs2).sum())
    assert n1 > 0 and n2 > 0
    arrived = w.gi[:first, L.G_ENTRY].copy()
    flood = _water_over(demo, m.place_xy[cs1], 0.5, radius_m=20.0)
    m.accept("surface_water__depth", flood)
    to_come = w.gi[first:int(w.ctr[L.C_N_DRAWN]), L.G_ENTRY]
    assert (to_come != cs1).all() and int((to_come == cs2).sum()) == n1 + n2  # all to the dry stop
    assert np.array_equal(w.gi[:first, L.G_ENTRY], arrived)  # those already in town keep theirs
    m.accept("surface_water__depth", flood)  # handed again (a restore): nobody diverted twice
    assert int((w.gi[first:int(w.ctr[L.C_N_DRAWN]), L.G_ENTRY] == cs2).sum()) == n1 + n2
    m.advance_to(m.duration_s)
    later = np.arange(int(w.ctr[L.C_N_DRAWN])) >= first  # arrived after the water came
    assert int(w.ctr[L.C_NEXT_ARR]) > first and (w.gi[later, L.G_ENTRY] != cs1).all()
    came = later & (w.gi[:len(later), L.G_STATE] != L.NOT_ARRIVED)
    assert came.any() and (w.gi[came, L.G_PLACE] != m.place_ids.index("CS1")).all()
