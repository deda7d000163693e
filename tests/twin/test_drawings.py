"""Stations from drawings: `citytwin city import FILE.dxf|FILE.ifc --place X,Y,ROT[,SCALE] --into DIR`.

The drawings are made here (tests/twin/drawing_samples.py): a DXF plan with ezdxf (millimetres, a
base point) and an IFC model with IfcOpenShell's API (two storeys). Each imports into a small city
package, to levels, stairs, an escalator, an exit and ticket gates, and the station model clears the
passengers through them. Bad drawings exit 2 with a message naming the file and layer."""
from __future__ import annotations

import math
import re
import shutil

import numpy as np
import pytest
import shapely

from agents.station.model import CONNECTORS, StationDispersalModel
from tests.factories import X0, Y0, make_tiny_city
from tests.twin.drawing_samples import ESCALATOR, EXIT, STAIR, write_dxf, write_ifc
from twin.cli import main
from twin.core.city import City
from twin.gis.city_info import checks_of
from twin.gis.drawings import Placement, read_drawing

WALK_ONLY = dict(share_walk=1.0, share_metro=0.0, share_bus=0.0, share_taxi=0.0)
IFC_PLACE = Placement(X0 + 140.0, Y0 + 25.0, 0.0)
DXF_PLACE = Placement(X0 + 150.0, Y0 + 30.0, 30.0)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("drawings")
    return {"dxf": write_dxf(d / "station.dxf"), "ifc": write_ifc(d / "station.ifc"), "dir": d,
            "ifc_mm": write_ifc(d / "station_mm.ifc", millimetres=True)}


@pytest.fixture
def package(tmp_path):
    """A city package (buildings, a road, a DEM) for a drawing to go into."""
    return make_tiny_city(tmp_path)


def place_arg(p: Placement) -> str:
    return ",".join(f"{v:g}" if abs(v) < 1e5 else f"{v:.1f}" for v in p.as_list())


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def run_station(city, t_max=400.0):
    m = StationDispersalModel(city, duration_s=t_max, seed=3, **WALK_ONLY)
    while not m.finished and m.time_s < t_max:
        m.advance_to(m.time_s + 10.0)
    return m.current_kpis()


# -- reading ------------------------------------------------------------------------------------------
def test_dxf_layers_units_base_point_and_placement(files):
    """Millimetres ($INSUNITS 4) from the base point ($INSBASE), rotated 30° and moved to the place."""
    d = read_drawing(files["dxf"], DXF_PLACE)
    assert d.units == "millimeters" and d.levels == {0: "0", 1: "1"}
    assert d.counts() == {"walkable": 1, "platform": 1, "obstacle": 2, "gate": 1, "ticket_gate": 1, "stairs": 1,
                          "escalator_down": 1}
    gate = d.of("gate")[0]
    want = DXF_PLACE.apply(shapely.LineString(EXIT))
    assert gate.geometry.equals_exact(want, 1e-6) and gate.geometry.length == pytest.approx(4.0)
    stair = d.of("stairs")[0]
    assert (stair.level, stair.to_level, stair.width_m) == (0, 1, pytest.approx(3.0))
    assert np.allclose(stair.geometry.coords[0], DXF_PLACE.apply(shapely.Point(STAIR[0])).coords[0])  # lower end first
    floor = d.of("walkable")[0].geometry
    assert floor.area == pytest.approx(800.0) and floor.centroid.distance(DXF_PLACE.apply(shapely.Point(20, 10))) < 1e-6
    pillar = [f for f in d.of("obstacle") if f.geometry.area < 1][0].geometry  # the CIRCLE, flattened to 2 mm
    assert pillar.area == pytest.approx(math.pi * 0.09, rel=0.02)
    assert any("text" in s for s in d.skipped) and "layer 'walkable@0': 1 HATCH (not a line or an area)" in d.skipped
    double = read_drawing(files["dxf"], Placement(0, 0, 0, 2.0))
    assert double.of("gate")[0].geometry.length == pytest.approx(8.0)
    assert double.of("stairs")[0].width_m == pytest.approx(6.0)


def test_a_dxf_without_units_is_read_as_metres_and_says_so(tmp_path):
    import ezdxf

    doc = ezdxf.new("R2010")
    doc.header["$INSUNITS"] = 0
    doc.modelspace().add_lwpolyline([(0, 0), (10, 0), (10, 5), (0, 5)], close=True, dxfattribs={"layer": "walkable@0"})
    doc.saveas(tmp_path / "plain.dxf")
    d = read_drawing(tmp_path / "plain.dxf", Placement(0, 0, 0))
    assert d.units.startswith("unitless") and d.of("walkable")[0].geometry.area == pytest.approx(50.0)
    assert any("no units" in n and "SCALE" in n for n in d.notes)


def test_ifc_storeys_become_levels_and_elements_kinds(files):
    d = read_drawing(files["ifc"], IFC_PLACE)
    assert d.levels == {0: "Concourse level", 1: "Platform level"} and d.elevations_m == {0: 0.0, 1: 6.0}
    assert d.counts() == {"walkable": 2, "platform": 1, "obstacle": 3, "gate": 1, "ticket_gate": 1, "stairs": 1,
                          "escalator_down": 1, "lift": 1, "doorway": 2}
    names = {f.kind: f.name for f in d.features if f.name != "Base slab"}
    assert names["gate"] == "Main exit"  # the outside door; the staff room door is inside
    # every door is a doorway too: the opening it fills (through the wall), else its own plan
    doorways = {f.name: f.geometry for f in d.of("doorway")}
    assert doorways["Main exit"].symmetric_difference(IFC_PLACE.apply(shapely.box(39.9, 8, 40.4, 12))).area < 1e-6
    assert doorways["Staff room door"].area == pytest.approx(0.3, rel=1e-3)
    assert names["stairs"] == "Main stair flight"  # the stair is taken by its flight, once
    assert names["ticket_gate"] == "Ticket gate line A" and names["platform"] == "Platform 1"
    east = next(f for f in d.of("obstacle") if f.name == "East wall").geometry
    assert east.area == pytest.approx(0.3 * 16.0, rel=1e-3)  # cut below the door's opening: 4 of 20 m open
    for kind, line in (("stairs", STAIR), ("escalator_down", ESCALATOR)):
        f = d.of(kind)[0]
        assert (f.level, f.to_level) == (0, 1)
        assert f.geometry.equals_exact(IFC_PLACE.apply(shapely.LineString(line)), 1e-6)  # from the low end up
    assert d.of("stairs")[0].width_m == pytest.approx(3.0) and d.of("escalator_down")[0].width_m == pytest.approx(1.0)


def test_an_ifc_file_in_millimetres_reads_the_same(files):
    m, mm = (read_drawing(files[k], IFC_PLACE) for k in ("ifc", "ifc_mm"))
    assert (m.units, mm.units) == ("metre", "millimetre") and mm.elevations_m == m.elevations_m
    assert [(f.kind, f.level, f.to_level) for f in mm.features] == [(f.kind, f.level, f.to_level) for f in m.features]
    for a, b in zip(m.features, mm.features):
        assert a.geometry.equals_exact(b.geometry, 1e-6), a.name
        assert (a.width_m is None) == (b.width_m is None) and (a.width_m or 0) == pytest.approx(b.width_m or 0)


# -- importing and running ------------------------------------------------------------------------------
def test_ifc_station_imports_and_clears(files, package, capsys):
    code, out, err = cli(capsys, "city", "import", files["ifc"], "--place", place_arg(IFC_PLACE), "--into", package,
                         "--drawing-passengers", 60)
    assert code == 0, err
    assert "levels     0: Concourse level, 1: Platform level" in out and "City check of" in out
    city = City.load(package)
    assert city.meta["level_height_m"] == {"1": 6.0} and city.level_z(1) == 6.0
    assert "1 slab(s) left out on levels with spaces" in out and "refuses" not in out
    assert sorted(zip(city.layer("walkable")["name"], city.layer("walkable")["kind"])) == [
        ("Concourse", "floor"), ("Main exit", "doorway"), ("Platform 1", "platform"), ("Staff room door", "doorway")]
    assert len(city.buildings) == 3  # the package's own layers are kept
    conn = city.extra_layer(CONNECTORS)
    assert sorted(zip(conn["id"], conn["kind"], conn["direction"])) == [("E1", "escalator", "down"),
                                                                          ("S1", "stairs", "both")]
    gates = city.layer("gates")
    assert sorted(zip(gates["id"], gates["kind"])) == [("G1", "exit"), ("T1", "ticket_gate")]
    k = run_station(city)
    print(f"IFC station: {k['agents_exited']}/{k['agents_total']} out in {k['clearance_time_s']:.0f} s, "
          f"connectors {k['passed_by_connector']}")
    assert k["agents_total"] == 60 and k["agents_exited"] == 60
    assert sum(k["passed_by_connector"].values()) == 60 and k["passed_by_connector"]["E1"] > 0
    assert k["passed_by_ticket_gate"] == {"T1": 60} and k["exited_by_gate"] == {"G1": 60}
    check = checks_of(city, "station_dispersal")[0]
    assert check.can_run
    assert any("lifts in the drawing station.ifc" in i.what and i.names == ("Lift",) for i in check.found)
    assert any(i.what.startswith("passengers per platform") and i.names == ("P1",) for i in check.estimated)


def test_dxf_station_imports_rotated_clears_and_imports_again_in_place(files, package, capsys):
    args = ["city", "import", files["dxf"], "--place", place_arg(DXF_PLACE), "--into", package,
            "--drawing-passengers", 60]
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    city = City.load(package)
    k = run_station(city)
    print(f"DXF station (30°): {k['agents_exited']}/{k['agents_total']} out in {k['clearance_time_s']:.0f} s")
    assert k["agents_exited"] == k["agents_total"] == 60 and k["exited_by_gate"] == {"G1": 60}
    assert sum(k["passed_by_connector"].values()) == 60
    # The same drawing again (a revised plan) replaces what it brought: same features, same ids.
    before = {n: sorted(city.layer(n)["id"].astype(str)) for n in ("walkable", "obstacles", "gates", "sources")}
    assert cli(capsys, *args)[0] == 0
    again = City.load(package)
    assert {n: sorted(again.layer(n)["id"].astype(str)) for n in before} == before
    assert len(again.extra_layer(CONNECTORS)) == 2 and len(again.meta["drawings"]) == 1


def test_a_drawing_the_crowd_model_refuses_is_merged_with_the_reason(files, package, capsys):
    path = write_dxf(files["dir"] / "far_exit.dxf", extra_layers={"gate@1": [(0, 30), (4, 30)]})
    code, out, err = cli(capsys, "city", "import", path, "--place", "500150,3400030,0", "--into", package)
    assert code == 0, err
    assert 'the crowd model refuses the station as drawn: layer gates: gate "G2" does not touch the walkable area' in out
    city = City.load(package)
    assert len(city.layer("gates")) == 3
    check = checks_of(city, "station_dispersal")[0]  # `city check` says it too, and that the model cannot run
    assert not check.can_run and any('gate "G2" does not touch' in i.how and i.blocking for i in check.missing)


# -- a station drawn at any angle -------------------------------------------------------------------------
def _station_turned(dxf, package, angle):
    """The DXF station placed at ``angle`` degrees and merged in memory; its crowd geometry."""
    from agents.station.drawing_import import drawing_import
    from agents.station.geometry import build_station
    from twin.core.model_contract import validate_params

    city, _ = drawing_import(City.load(package), read_drawing(dxf, Placement(X0 + 150.0, Y0 + 30.0, angle)),
                             {"drawing_passengers": 40})
    p = validate_params(StationDispersalModel, WALK_ONLY, "test", None)
    return city, build_station(city, p, city.extra_layer(CONNECTORS))


def test_a_fare_line_turned_to_any_angle_keeps_its_lanes_open_and_the_paid_area_closed(files, package):
    # Round-off once turned: a wall drawn flush to the floor's edge stops a hair short of it (the bank
    # seemed to have a way round, 137°), and a sliver of cabinet could stay across a lane's mouth.
    for angle in (0, 15, 60, 75, 100, 120, 137, 240, 285, 300):
        _, st = _station_turned(files["dxf"], package, angle)
        (bank,) = st.tickets
        assert bank.lanes == 6 and st.sources[0].must_validate, angle  # the platform is in the paid area
        c = np.asarray(bank.line.coords)[[0, -1], :2]
        u = (c[1] - c[0]) / bank.line.length
        nrm = np.array([-u[1], u[0]])
        for slot in shapely.get_parts(bank.slots):
            m = np.asarray(slot.centroid.coords)[0]
            through = shapely.LineString([m - nrm * 1.1, m + nrm * 1.1])  # along the lane, 0.5 m beyond the bank
            assert not through.intersects(st.free[0].boundary), angle


@pytest.mark.parametrize("angle", [15, 75, 100, 137, 210, 300])
def test_a_station_drawn_at_any_angle_clears_every_passenger(files, package, angle, capsys):
    code, _, err = cli(capsys, "city", "import", files["dxf"], "--place", f"{X0 + 150:g},{Y0 + 30:g},{angle}",
                       "--into", package, "--drawing-passengers", 400)
    assert code == 0, err
    k = run_station(City.load(package), t_max=600.0)
    assert k["agents_total"] == 400 and k["passed_by_ticket_gate"] == {"T1": 400}, angle
    assert k["agents_exited"] == 400, angle  # none stuck at a lane before or after the fare line


# -- bad input ----------------------------------------------------------------------------------------
def _bad_layer(layer, points):
    return lambda d: write_dxf(d / f"bad_{re.sub(r'[^a-z0-9]', '_', layer)}.dxf", extra_layers={layer: points})


BAD = {
    "missing file": (lambda d: d / "nowhere.dxf", None, ["nowhere.dxf: no such file"]),
    "unknown kind": (_bad_layer("stair@0-1", [(1, 1), (5, 1)]), None,
                     ["layer 'stair@0-1'", "unknown kind 'stair'", 'did you mean "stairs"']),
    "connector on one level": (_bad_layer("escalator_up@1", [(1, 1), (5, 1)]), None,
                               ["layer 'escalator_up@1'", "joins two levels", "escalator_up@1-2"]),
    "open area": (_bad_layer("obstacle@0", [(1, 1), (5, 1), (5, 3)]), None, ["layer 'obstacle@0'", "not closed"]),
    "bad level": (_bad_layer("gate@ground", [(1, 1), (5, 1)]), None, ["layer 'gate@ground'", "'ground' is not a level"]),
    "bad place": (lambda d: d / "station.dxf", "1,2,north", ["--place", "ROT = 'north' is not a number"]),
    "not IFC": (lambda d: (d / "plan.ifc").write_text("hello\n") and d / "plan.ifc", None,
                ["plan.ifc: not a readable IFC file"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_drawings_exit_2_naming_file_and_layer(case, files, package, capsys):
    make, place, needles = BAD[case]
    path = make(files["dir"])
    before = snapshot(package)
    code, out, err = cli(capsys, "city", "import", path, "--place", place or place_arg(IFC_PLACE), "--into", package)
    assert code == 2, out + err
    assert "Traceback" not in err and err.startswith("citytwin: error:")
    for n in needles:
        assert n in err, (n, err)
    assert snapshot(package) == before  # nothing half-merged


def test_a_drawing_needs_into_and_place_and_no_out(files, tmp_path, capsys):
    code, _, err = cli(capsys, "city", "import", files["dxf"], "--out", tmp_path / "new")
    assert code == 2 and "--into DIR" in err and not (tmp_path / "new").exists()
    code, _, err = cli(capsys, "city", "import", files["dxf"], "--into", tmp_path / "nocity", "--place", "0,0,0")
    assert code == 2 and "no such city folder" in err
    shutil.copy(files["dxf"], tmp_path / "x.dxf")
    code, _, err = cli(capsys, "city", "import", tmp_path / "x.dxf", files["ifc"], "--into", tmp_path, "--place", "0,0,0")
    assert code == 2 and "one drawing" in err


def test_a_bad_platforms_pattern_exits_2_saying_so(files, package, capsys):
    before = snapshot(package)
    code, out, err = cli(capsys, "city", "import", files["dxf"], "--place", place_arg(DXF_PLACE), "--into", package,
                         "--drawing-platforms", "([")
    assert code == 2 and "Traceback" not in err
    assert "--drawing-platforms '([' is not a regular expression" in err and snapshot(package) == before
