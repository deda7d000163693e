"""Demand that travels with the scenario: a timetable CSV, inline trains, a GTFS feed and a demand
scale replace the city's source counts; a timetable naming a missing platform is a clear error."""
from __future__ import annotations

import numpy as np
import pytest

from agents.station.model import StationDispersalModel
from twin.core.errors import UserError

from .conftest import make_city

WALK_ONLY = dict(share_walk=1.0, share_metro=0.0, share_bus=0.0, share_taxi=0.0)


def model(**params):
    return StationDispersalModel(make_city(), duration_s=600, seed=1, **(WALK_ONLY | params))


@pytest.mark.slow
def test_timetable_replaces_the_source_counts(tmp_path):
    csv = tmp_path / "trains.csv"
    csv.write_text("# two trains\npassengers,platform,arrival_s\n40,P2,10\n20,P1,30\n", encoding="utf-8")
    m = model(timetable=str(csv), release_spread_s=10.0)
    assert m.N == 60  # not the city's 150 + 150
    assert sorted(zip(m.block_source, [b - a for a, b in m.src_ranges])) == [(0, 20), (1, 40)]
    assert m.release_t.min() == pytest.approx(10 + 0.5 / 40 * 10)  # spread evenly over 10 s from the arrival
    m.advance_to(25)
    assert m.current_kpis()["agents_total"] == 40  # only the train at P2 so far
    m.advance_to(45)
    assert m.current_kpis()["agents_total"] == 60


@pytest.mark.slow
def test_inline_trains_and_demand_scale():
    m = model(trains=["P1 0 100", "P2, 60, 30"], demand_scale=0.5)
    assert m.N == 65 and [m.block_source[k] for k in range(2)] == [0, 1]
    assert model(demand_scale=2.0).N == 600  # no trains: the sources' counts, scaled
    assert model(demand_scale=0.0).N == 0


def test_gtfs_stop_times(tmp_path):
    feed = tmp_path / "stop_times.txt"
    feed.write_text(
        "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
        "t1,17:00:30,17:01:00,STN,3\n"
        "t2,17:02:00,17:02:30,P2,5\n"
        "t3,16:59:00,16:59:30,STN,2\n"  # before the start
        "t4,17:03:00,17:03:30,OTHER,1\n"  # another station
        "t5,17:30:00,17:31:00,STN,4\n",  # after the end (600 s)
        encoding="utf-8")
    m = model(gtfs_stop_times=str(feed), gtfs_stop_ids=["STN", "P2"], gtfs_start_time="17:00:00",
              passengers_per_train=50, release_spread_s=0.0)
    assert m.N == 100
    assert [t.arrival_s for t in m.trains] == [30.0, 120.0]
    assert [t.source for t in m.trains] == [0, 1]  # STN -> the platforms in turn; P2 is a platform id


@pytest.mark.parametrize("params,message", [
    (dict(trains=["P7 0 100"]), 'parameter trains, entry 1 ("P7 0 100"): platform "P7" does not exist '
                                '(did you mean "P2"?); the platforms (sources) of this city are P1, P2'),
    (dict(trains=["P1 zero 100"]), "must be numbers"),
    (dict(trains=["P1 0"]), 'write "platform arrival_s passengers"'),
    (dict(trains=["P1 0 -5"]), "give a whole number >= 0"),
    (dict(gtfs_stop_ids=["STN"]), "need gtfs_stop_times"),
])
def test_bad_demand_names_the_train(params, message):
    with pytest.raises(UserError) as e:
        model(**params)
    assert message in str(e.value)


def test_timetable_naming_a_missing_platform(tmp_path):
    csv = tmp_path / "trains.csv"
    csv.write_text("platform,arrival_s,passengers\nP1,0,10\nP9,60,10\n", encoding="utf-8")
    with pytest.raises(UserError, match=r'timetable: .*trains.csv, line 3: platform "P9" does not exist'):
        model(timetable=str(csv))
    csv.write_text("platform,time,passengers\nP1,0,10\n", encoding="utf-8")
    with pytest.raises(UserError, match="the header row lacks arrival_s"):
        model(timetable=str(csv))


def test_stagger_spaces_trains_in_arrival_order():
    m = model(trains=["P2 100 10", "P1 0 10"], stagger_releases_s=50.0, release_spread_s=0.0)
    first = {src: m.release_t[a] for src, (a, _) in zip(m.block_source, m.src_ranges)}
    assert first[0] == 0.0 and first[1] == 150.0
    assert np.isfinite(m.release_t).all()


def test_max_per_train_fits_a_timetable_to_the_platforms():
    """A source's max_per_train caps each train at that platform (a timetable written for another
    station's longer platforms), before demand_scale; the run warns which trains were cut. A source
    without it takes any train."""
    from twin.core.city import City

    city = make_city()
    src = city.layers["sources"].copy()
    src["max_per_train"] = [50.0, float("nan")]
    city = City(city.name, crs=city.crs, layers={**city.layers, "sources": src}, meta=city.meta)
    m = StationDispersalModel(city, duration_s=600, seed=1, trains=["P1 0 80", "P1 60 30", "P2 0 300"],
                              demand_scale=2.0, **WALK_ONLY)
    assert [t.passengers for t in m.trains] == [100, 60, 600]  # 80 -> 50, then x 2
    assert m.warnings == ["1 of 3 trains carry more passengers than their platform takes (max_per_train of the "
                          "sources: P1 at 0 s: 80 -> 50); each was cut down to it, before demand_scale"]
    src["max_per_train"] = [0.5, float("nan")]
    bad = City(city.name, crs=city.crs, layers={**city.layers, "sources": src}, meta=city.meta)
    with pytest.raises(UserError, match='source "P1" has max_per_train 0.5; give the most passengers one train'):
        StationDispersalModel(bad, duration_s=60, seed=1, **WALK_ONLY)
