"""The tourist model's import on real data: central Helsinki from OpenStreetMap (tests/data/city).

What the extract holds (checked with GDAL's OSM driver): museums (Ateneum, Kiasma, Amos Rex, Amos
Anderson, Suomen Pankin rahamuseo, Päivälehden museo), seven galleries, named parks (Esplanadinpuisto,
Kaisaniemen puisto, ...), the botanic garden, the cathedral; 29 memorials and monuments, 62 artworks and
a tomb; two bus stations (Elielinaukio, Rautatientori) and no stop tagged coach=yes.
"""
import math

import pytest

from tests.conftest import DATA
from twin.core.city import City
from twin.core.errors import UserError
from twin.gis.city_import import import_city

PBF = DATA / "city" / "helsinki_central" / "Helsinki.osm.pbf"


@pytest.fixture(scope="module")
def wednesday(tmp_path_factory):
    out = tmp_path_factory.mktemp("helsinki_tourism") / "city"
    report = import_city([PBF], out)  # the default opening_date, 2026-06-17, a Wednesday
    return City.load(out), report


@pytest.fixture(scope="module")
def monday_with_memorials(tmp_path_factory):
    out = tmp_path_factory.mktemp("helsinki_tourism_monday") / "city"
    import_city([PBF], out, include_sights="memorial,grave", opening_date="2026-06-15")
    return City.load(out)


def attractions(city):
    p = city.pois
    return p[p["kind"] == "attraction"].set_index("name")


def test_attractions_by_class_not_memorials_artworks_or_graves(wednesday):
    city, report = wednesday
    a = attractions(city)
    assert {"Ateneum", "Kiasma", "Amos Rex", "Amos Anderson taidemuseo"} <= set(a.index[a["class"] == "museum"])
    assert {"Esplanadinpuisto", "Kaisaniemen puisto", "Töölönlahden puisto"} <= set(a.index[a["class"] == "park"])
    assert a.loc["Kaisaniemen kasvitieteellinen puutarha", "class"] == "garden"
    assert not {"memorial", "artwork", "grave"} & set(a["class"])
    assert "Valon tuoja - Talvisodan kansallinen muistomerkki" not in a.index  # historic=monument: a memorial
    assert (a.index.str.strip() != "").all()  # names everywhere
    note = next(n for n in report["notes"] if n.startswith("tourism: attractions"))
    assert "left out" in note and "memorial" in note and "artwork" in note and "--include-sights" in note
    # parks have no ticket desk; museums keep the kind's entry time
    assert a.loc["Esplanadinpuisto", "service_time_s"] == 0 and a.loc["Ateneum", "service_time_s"] == 20


def test_memorials_and_graves_when_asked(monday_with_memorials):
    a = attractions(monday_with_memorials)
    assert (a["class"] == "memorial").sum() >= 20 and (a["class"] == "grave").sum() == 1
    assert a.loc["Valon tuoja - Talvisodan kansallinen muistomerkki", "class"] == "memorial"
    assert "artwork" not in set(a["class"])  # not asked for


def test_capacity_from_footprint_and_floors_marked_estimated(wednesday):
    from agents.registry import get_model

    city, _ = wednesday
    a = attractions(city)
    b = city.buildings.set_index("id")
    ateneum = a.loc["Ateneum"]
    floor_area = b.loc[ateneum["id"]].geometry.area * 3.5  # building:levels=3.5
    assert ateneum["capacity_source"] == "footprint_floors"
    assert ateneum["capacity"] == round(floor_area / 10.0)
    park = a.loc["Esplanadinpuisto"]
    assert park["capacity_source"] == "area" and park["capacity"] == round(park["area_m2"] / 25.0)
    assert a.loc["Päivälehden museo", "capacity_source"] == "default"  # stands in no building
    estimated = a["capacity_source"].isin(["footprint_floors", "footprint", "area"])
    assert estimated.sum() >= 20
    check = get_model("tourist_flow").check_city(city)
    cap = {i.what: i for i in check.estimated}["attraction capacity"]
    assert cap.count == estimated.sum() and "footprint" in cap.how
    assert {i.what: i.count for i in check.defaulted}["attraction capacity"] == (~estimated).sum()


def test_opening_hours_parsed_for_the_day(wednesday, monday_with_memorials):
    city, report = wednesday
    a = attractions(city)
    # Kiasma: "Tu 10:00-17:00; We-Fr 10:00-20:30; ..."; the cathedral: "Jun-Aug: Su-Sa 09:00-24:00; ..."
    assert (a.loc["Kiasma", "open_s"], a.loc["Kiasma", "close_s"]) == (36000, 73800)
    assert (a.loc["Amos Rex", "open_s"], a.loc["Amos Rex", "close_s"]) == (39600, 72000)
    assert (a.loc["Helsingin tuomiokirkko", "open_s"], a.loc["Helsingin tuomiokirkko", "close_s"]) == (32400, 86400)
    tagged = a["opening_hours"].fillna("") != ""
    assert tagged.sum() >= 7 and a.loc[tagged, "open_s"].notna().all()
    assert a.loc[~tagged, "open_s"].isna().all()  # no tag: open all day (the scenario's opening_hours_s)
    assert any(n.startswith("tourism: opening hours for 2026-06-17") for n in report["notes"])
    # on a Monday Ateneum ("Tu, Fr ...; We-Th ...; Sa-Su ...") is closed: nobody plans a visit
    monday = attractions(monday_with_memorials)
    assert monday.loc["Ateneum", "popularity"] == 0 and math.isnan(a.loc["Ateneum", "popularity"])
    assert monday.loc["Kiasma", "popularity"] == 0  # no Monday in its hours either
    assert (monday.loc["Amos Rex", "open_s"], monday.loc["Amos Rex", "close_s"]) == (39600, 64800)  # "Mo,Fr 11:00-18:00"


def test_coach_stops_at_the_bus_stations(wednesday):
    city, report = wednesday
    p = city.pois
    coach = p[p["kind"] == "coach_stop"]
    assert sorted(coach["name"]) == ["Elielinaukio", "Rautatientori"]  # amenity=bus_station; no coach=yes here
    # the bus stations stay bus stops for the other models; the coach stop stands beside each
    for pid in coach["id"]:
        assert pid.endswith("_coach") and pid.removesuffix("_coach") in set(p["id"])
    assert "tourism: coach stops 2 (Elielinaukio, Rautatientori)" in report["notes"]


def test_tourists_keep_to_the_opening_hours(wednesday):
    from agents.registry import get_model

    city, _ = wednesday
    model = get_model("tourist_flow")(city, duration_s=5400, seed=2, day_start_s=8 * 3600.0,
                                      arrival_rate_per_h=400.0)
    model.advance_to(5400)  # 09:30: Kiasma and Ateneum open at 10:00, the parks are always open
    k = model.current_kpis()
    ids = attractions(city)["id"]
    assert k["attraction_occupancy"][ids["Kiasma"]] == 0 and k["attraction_occupancy"][ids["Ateneum"]] == 0
    parks = attractions(city).index[attractions(city)["class"] == "park"]
    assert sum(k["attraction_occupancy"][ids[n]] for n in parks) > 0


def test_bad_import_options(wednesday):
    from agents.tourism.city_import import derive

    city, _ = wednesday
    with pytest.raises(UserError, match="--include-sights: 'statue' is not a minor sight"):
        derive(city, {"include_sights": "statue"})
    with pytest.raises(UserError, match="--opening-date: 'June' is not a date"):
        derive(city, {"opening_date": "June"})


def test_a_scenario_selects_attractions_by_class(wednesday):
    from agents.registry import get_model
    from twin.core.features import check_params

    city, _ = wednesday
    ids = check_params(get_model("tourist_flow"), {"extra_gates_at": ["class=museum"]}, city, "x")["extra_gates_at"]
    a = attractions(city)
    assert sorted(ids) == sorted(a.loc[a["class"] == "museum", "id"]) and len(ids) == 6


def test_a_package_imported_again_keeps_its_attractions_and_coach_stops(wednesday, tmp_path):
    city, _ = wednesday
    import_city([city.root / "city.gpkg"], tmp_path / "again")
    again = City.load(tmp_path / "again").pois
    p = city.pois
    assert sorted(again["id"]) == sorted(p["id"]) and again["id"].is_unique
    a, b = attractions(city), again[again["kind"] == "attraction"].set_index("name")
    assert (b.loc[a.index, "capacity"] == a["capacity"]).all()
    assert (b.loc[a.index, "capacity_source"] == a["capacity_source"]).all()


def test_every_tourism_place_has_a_name(wednesday):
    city, _ = wednesday
    p = city.pois
    mine = p[p["kind"].isin(["attraction", "hotel", "coach_stop"])]
    assert len(mine) > 50 and (mine["name"].fillna("").str.strip() != "").all()
