"""Walls thinner than the navigation cells, as drawn buildings have them (5-15 cm partitions): the
floor fields go round them, not through them; an exit's zone stays on its side of the wall beside it;
next to a thin wall the desired direction runs along it; nobody is released where no exit can be
reached (a shaft walled off inside a room)."""
from __future__ import annotations

import numpy as np
import shapely

from agents.station.navigation import UNREACHABLE, build_navigation

# Two rooms 6 x 4 m side by side (x 0-6, 6.05-12), parted by a 5 cm wall at x 6-6.05 with a 1 m door
# at its north end (y 3-4); the exit is on the west room's south edge, next to the wall.
ROOMS = shapely.box(0, 0, 12, 4)
PARTITION = shapely.box(6.0, 0, 6.05, 3.0)
EXIT = shapely.LineString([(5.0, 0.0), (6.0, 0.0)])


def nav_of(free, gates, cell_m=0.25):
    return build_navigation(free, gates, cell_m=cell_m, cache=False)


def test_a_field_goes_round_a_thin_wall_through_the_door():
    nav = nav_of(shapely.difference(ROOMS, PARTITION), [("exit", EXIT)])
    east = np.array([6.4]), np.array([0.6])  # just across the wall from the exit
    d = float(nav.sample(nav.floor[0], *east)[0])
    assert d > 2 * 2.4  # up to the door (2.4 m) and back down, not 0.6 m through the wall
    # and the way there leads north to the door, not west into the wall
    dx, dy = float(nav.sample(nav.dir_x[0], *east)[0]), float(nav.sample(nav.dir_y[0], *east)[0])
    assert dy > 0.8 and abs(dx) < 0.6


def test_an_exits_zone_stays_on_its_side_of_the_wall_beside_it():
    nav = nav_of(shapely.difference(ROOMS, PARTITION), [("exit", EXIT)])
    xs, ys = nav.cell_centres()
    rr, cc = np.nonzero(nav.zone == 0)
    assert len(rr) and xs[cc].max() < 6.0  # within 0.3 m of the exit, but none in the east room


def test_a_room_walled_off_by_thin_walls_is_unreachable():
    shaft = shapely.box(2, 1, 3, 2)
    ring = shapely.difference(shaft.buffer(0.04, join_style="mitre"), shaft)  # 4 cm walls all round
    nav = nav_of(shapely.difference(shapely.box(0, 0, 6, 4), ring), [("exit", EXIT)])
    inside = float(nav.sample(nav.floor[0], np.array([2.5]), np.array([1.5]))[0])
    outside = float(nav.sample(nav.floor[0], np.array([4.5]), np.array([1.5]))[0])
    assert inside >= UNREACHABLE * 0.5 and outside < 10.0


def test_nobody_is_released_in_a_room_with_no_way_out(tmp_path):
    import geopandas as gpd

    from agents.station.model import StationDispersalModel
    from tests.factories import CRS, X0, Y0
    from twin.core.city import City

    def at(g):
        return shapely.affinity.translate(g, X0, Y0)

    shaft = shapely.box(2, 1, 3.5, 2.5)
    walls = shapely.difference(shaft.buffer(0.3, join_style="mitre"), shaft)  # a closed ring, no door
    layers = {
        "walkable": gpd.GeoDataFrame({"name": ["room"]}, geometry=[at(shapely.box(0, 0, 10, 4))], crs=CRS),
        "obstacles": gpd.GeoDataFrame({"name": ["shaft walls"]}, geometry=[at(walls)], crs=CRS),
        "gates": gpd.GeoDataFrame({"id": ["G1"], "kind": ["exit"], "open": [True]},
                                  geometry=[at(shapely.LineString([(10, 1), (10, 3)]))], crs=CRS),
        "sources": gpd.GeoDataFrame({"id": ["P1"], "count": [30], "release_s": [0.0]},
                                    geometry=[at(shapely.box(0.5, 0.5, 4.5, 3.5))], crs=CRS),  # over the shaft
    }
    m = StationDispersalModel(City("Room", CRS, layers), duration_s=120, seed=1, share_walk=1.0, share_metro=0.0,
                              share_bus=0.0, share_taxi=0.0)
    cells = m.src_cells[0]
    assert len(cells) and not shapely.contains_xy(at(shaft), cells[:, 0], cells[:, 1]).any()
    while not m.finished and m.time_s < 120:
        m.advance_to(m.time_s + 10.0)
    assert m.current_kpis()["agents_exited"] == 30
