"""A real building from its IFC file: buildingSMART's Duplex Apartment (gis_data/samples/duplex_apartment,
CC BY 4.0), exported from Revit: four storeys (a foundation level, two floors, a roof), 21 spaces
bounded by walls 4 to 42 cm thick, 14 doors that fill openings in them, two stair flights, shafts
walled off inside rooms. It imports to levels with their heights, stairs between the floors, the
outside doors as exits and every door as a doorway, and the station model clears the people from
the upstairs bedrooms through the doors and down the stairs."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agents.station.model import CONNECTORS
from tests.factories import X0, Y0, make_tiny_city
from tests.twin.test_drawings import cli, run_station
from twin.core.city import City

SAMPLE = Path(__file__).resolve().parents[2] / "gis_data" / "samples" / "duplex_apartment"
IFC = SAMPLE / "Duplex_A_20110907.ifc"
SHA256 = "b347a2c8aa8fff6db896a4417a9c50c22ac0ccd7c5cfc22b99b8d29336c606ed"  # the source's Git LFS object


def test_the_sample_is_the_published_file_with_its_licence():
    assert hashlib.sha256(IFC.read_bytes()).hexdigest() == SHA256
    note = (SAMPLE / "SOURCE.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in note and SHA256 in note and "buildingsmart-community/Community-Sample-Test-Files" in note


def test_the_duplex_imports_to_levels_stairs_doors_and_clears(tmp_path, capsys):
    # the bedrooms upstairs (A202, A203, B202, B203) are named the platforms where 40 people appear
    duplex = make_tiny_city(tmp_path)
    code, out, err = cli(capsys, "city", "import", IFC, "--place", f"{X0 + 140:g},{Y0 + 40:g},0", "--into", duplex,
                         "--drawing-platforms", "^[AB]20[23]$", "--drawing-passengers", 40)
    assert code == 0, err
    assert "levels     -1: T/FDN, 0: Level 1, 1: Level 2, 2: Roof" in out
    # the roof storey's space has no stair to it: left out; the shafts walled off in rooms become obstacles
    assert "1 floor area(s) with no way to an exit left out" in out and "R301 (level 2)" in out
    assert "4 part(s) of floor areas walled off with no door" in out and "refuses" not in out
    city = City.load(duplex)
    assert city.meta["level_height_m"] == pytest.approx({"-1": 1.25, "1": 3.1, "2": 2.9})
    w = city.layer("walkable")
    assert sorted(w.loc[w["kind"] == "platform", "name"]) == ["A202", "A203", "B202", "B203"]
    assert (w["kind"] == "doorway").sum() == 14 and set(w["level"]) == {0, 1}
    gates = city.layer("gates")
    assert sorted(zip(gates["id"], gates["kind"])) == [(f"G{i}", "exit") for i in range(1, 5)]
    assert set(gates["level"]) == {0}
    conn = city.extra_layer(CONNECTORS)
    assert sorted(conn["id"]) == ["S1", "S2"] and set(conn["kind"]) == {"stairs"}
    assert set(zip(conn["from_level"], conn["to_level"])) == {(0, 1)}
    assert conn["width_m"].tolist() == pytest.approx([0.914, 0.914], abs=1e-3)  # the flights' own width
    k = run_station(city, t_max=200.0)
    assert k["agents_total"] == 40 and k["agents_exited"] == 40, k
    assert sum(k["passed_by_connector"].values()) == 40 and min(k["passed_by_connector"].values()) > 0
    assert k["clearance_time_s"] < 150.0
