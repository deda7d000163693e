"""`citytwin city check`: each model says what it found in a city, what it took from the data, what
it estimated or defaulted and what is missing; a run says which of its inputs were not the city's."""
import json

import geopandas as gpd
import pytest
from shapely.geometry import LineString

from tests.cli.test_city_cli import citytwin_here
from tests.factories import X0, Y0, write_scenario
from tests.twin.test_city_import import imported
from twin.core.city import City
from twin.gis.city_info import city_checks
from twin.runs.report import _run_city_check, city_check_html

DEMO = "gis_data/demo_city"


@pytest.fixture(scope="module")
def demo_checks():
    return {c.model: c for c in city_checks(DEMO)}


def test_demo_city_gives_every_model_its_inputs(demo_checks):
    assert {"station_dispersal", "tourist_flow", "flood"} <= set(demo_checks)  # and the test models
    assert all(demo_checks[m].can_run for m in ("station_dispersal", "tourist_flow", "flood"))
    tourism = demo_checks["tourist_flow"]
    found = {i.what: i for i in tourism.found}
    assert found["attractions"].count == 7 and "Jade River Temple" in found["attractions"].names
    assert {i.what: i.count for i in tourism.taken}["attraction capacity"] == 7
    assert not [i for i in tourism.defaulted if i.what == "attraction capacity"]
    station = demo_checks["station_dispersal"]
    assert {i.what: i.count for i in station.found}["gates of kind ticket_gate"] == 6
    assert not station.estimated  # the demo's station is drawn, not derived
    flood = demo_checks["flood"]
    assert {i.what: i.count for i in flood.taken}["water level (level_m)"] == 3
    assert {i.what: i.count for i in flood.estimated}["residents per building"] == 4296  # no population column


def test_cli_prints_the_report_and_writes_json(tmp_path):
    r = citytwin_here("city", "check", DEMO, "--model", "tourist_flow", "--json", tmp_path / "check.json")
    assert r.returncode == 0, r.stderr
    assert "tourist_flow" in r.stdout and "Jade River Temple" in r.stdout and "flood" not in r.stdout
    data = json.loads((tmp_path / "check.json").read_text(encoding="utf-8"))
    assert [m["model"] for m in data["models"]] == ["tourist_flow"] and data["models"][0]["can_run"] is True


@pytest.mark.parametrize("args, words", [
    (["city", "check", "no/such/city"], "no such city folder"),
    (["city", "check", DEMO, "--model", "trains"], "'trains' is not a registered model"),
])
def test_cli_refuses_bad_input(args, words):
    r = citytwin_here(*args)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr


def test_reader_defaults_are_reported(tmp_path, tiny_city):
    """A column absent from the package is the layer's default, and the check says so by feature."""
    city = City.load(tiny_city)
    gates = gpd.GeoDataFrame({"id": ["G1", "G2"], "kind": ["exit", None]},
                             geometry=[LineString([(X0, Y0 + 45), (X0, Y0 + 55)]),
                                       LineString([(X0 + 200, Y0 + 45), (X0 + 200, Y0 + 55)])], crs=city.crs)
    City(city.name, city.crs, {**city.layers, "gates": gates}, city.terrain).save(tmp_path / "c")
    again = City.load(tmp_path / "c")
    assert again.defaulted["gates"]["kind"] == ["G2"] and sorted(again.defaulted["gates"]["open"]) == ["G1", "G2"]
    station = city_checks(tmp_path / "c", "station_dispersal")[0]
    defaulted = {i.what: i for i in station.defaulted}
    assert defaulted["gate kind"].count == 1 and defaulted["gate kind"].names == ("G2",)
    assert defaulted["gate open"].count == 2
    assert not station.can_run  # no walkable area, no sources
    assert {i.what for i in station.missing if i.blocking} == {"layer walkable", "layer sources"}


def test_helsinki_says_what_osm_lacks(tmp_path_factory):
    out, _ = imported("helsinki", tmp_path_factory)
    checks = {c.model: c for c in city_checks(out)}
    assert not checks["station_dispersal"].can_run  # imported without a station area
    tourism = checks["tourist_flow"]
    assert tourism.can_run
    cap = {i.what: i for i in tourism.defaulted}["attraction capacity"]  # on no footprint
    estimated = {i.what: i for i in tourism.estimated}["attraction capacity"]  # from footprints and floors
    assert cap.count + estimated.count == {i.what: i.count for i in tourism.found}["attractions"]
    assert 0 < cap.count < estimated.count and "200 persons" in cap.how and "footprint" in estimated.how
    hotel_rooms = {i.what: i.count for i in tourism.taken}.get("hotel rooms", 0)
    assert hotel_rooms < {i.what: i.count for i in tourism.found}["hotels"]  # few hotels tag their rooms
    flood = checks["flood"]
    shelters = {i.what: i for i in flood.estimated}["shelters"]
    assert shelters.count > 0 and "shelter" in shelters.how
    assert [i.blocking for i in flood.missing if i.what == "a terrain model"] == [True]  # OSM has no DEM
    assert not flood.can_run
    r = citytwin_here("city", "check", out)
    assert r.returncode == 1 and "cannot run: station_dispersal, flood" in r.stdout


def test_a_run_says_what_it_estimated(tmp_path, tiny_city):
    scenario = write_scenario(tmp_path, tiny_city, "[parameters]\ncell_size_m = 10.0\nevacuate = false\n",
                              model="flood", duration_s=60)
    r = citytwin_here("run", scenario, "--out", tmp_path / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "Inputs not from the city's data (" in r.stdout and "estimated: residents per building: 3" in r.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    estimated = summary["city_check"]["estimated"]
    assert any(e.startswith("residents per building: 3") for e in estimated), estimated
    assert not any(e.startswith("shelters") for e in estimated)  # nobody evacuates in this run


def test_the_report_names_estimated_inputs(tmp_path):
    folder = tmp_path / "runs" / "baseline" / "rep-000"
    folder.mkdir(parents=True)
    entry = {"estimated": ["shelters: 2 (School, Hall) — schools or public buildings"],
             "defaulted": ["attraction capacity: 40 — the import's default"]}
    (folder / "summary.json").write_text(json.dumps({"kpis": {}, "city_check": entry}), encoding="utf-8")
    assert _run_city_check(tmp_path) == entry
    html = city_check_html(entry)
    assert "Inputs not from the city" in html and "shelters: 2 (School, Hall)" in html and "Defaulted" in html
    assert city_check_html({}) == ""


def test_water_levels_taken_or_estimated_from_the_banks(tmp_path, tiny_city):
    from shapely.geometry import box

    city = City.load(tiny_city)
    water = gpd.GeoDataFrame({"id": ["W1", "W2"], "name": ["Pond", "Lake"], "level_m": [6.0, None]},
                             geometry=[box(X0 + 140, Y0 + 10, X0 + 160, Y0 + 30), box(X0 + 170, Y0 + 60, X0 + 190, Y0 + 90)],
                             crs=city.crs)
    City(city.name, city.crs, {**city.layers, "water": water}, city.terrain).save(tmp_path / "c")
    flood = city_checks(tmp_path / "c", "flood")[0]
    assert flood.can_run
    taken = {i.what: i for i in flood.taken}["water level (level_m)"]
    estimated = {i.what: i for i in flood.estimated}["water level"]
    assert taken.names == ("Pond",) and estimated.names == ("Lake",) and "banks" in estimated.how


def test_a_gate_off_the_station_floor_is_reported_before_a_run(tmp_path):
    """The crowd model's own geometry check runs in city check for any station, not only drawn ones:
    an exit moved off the walkable area (a slip in the city editor) makes the station model unable
    to run, with the model's reason."""
    from shapely.affinity import translate

    city = City.load(DEMO)
    gates = city.layer("gates").copy()
    k = int((gates["kind"].astype(str) == "exit").to_numpy().argmax())
    moved = translate(gates.geometry.iloc[k], xoff=400.0)
    assert not city.layer("walkable").union_all().intersects(moved)  # off the floor
    gates.loc[gates.index[k], "geometry"] = moved
    City(city.name, city.crs, {**city.layers, "gates": gates}, city.terrain, meta=city.meta).save(tmp_path / "c")
    station = city_checks(tmp_path / "c", "station_dispersal")[0]
    assert not station.can_run
    refusal = {i.what: i for i in station.missing}["a station geometry the crowd model accepts"]
    assert refusal.blocking and str(gates["id"].iloc[k]) in refusal.how
