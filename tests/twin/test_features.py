"""Features by id, name or selector (twin.core.features), checked for every variant before a run,
names in what people read, and a scenario run on another city (`--city DIR`)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import DATA, ROOT
from twin.core.errors import UserError
from twin.core.features import labels, resolve

GATES = [
    {"id": "N1", "name": "North", "kind": "exit", "level": 0},
    {"id": "N2", "name": "North", "kind": "exit", "level": 0},
    {"id": "T1", "name": "Ticket hall", "kind": "ticket_gate", "level": 1},
    {"id": "G7", "name": "", "kind": "entrance", "level": 0},
]


def test_ids_names_and_selectors_resolve_in_order_without_repeats():
    assert resolve(["T1"], GATES, "p", "gates") == ["T1"]
    assert resolve(["Ticket hall"], GATES, "p", "gates") == ["T1"]  # a unique name
    assert resolve(["kind=exit"], GATES, "p", "gates") == ["N1", "N2"]
    assert resolve(["kind=exit level=0", "N1", "kind=ticket_gate|entrance"], GATES, "p", "gates") == [
        "N1", "N2", "T1", "G7"]
    assert resolve(["name='Ticket hall'"], GATES, "p", "gates") == ["T1"]  # quoted: a value with a space
    conn = [{"id": "E1", "kind": "escalator", "from_level": 0, "to_level": 1}]
    assert resolve(["level=1"], conn, "p", "connectors") == ["E1"]  # level matches either end


@pytest.mark.parametrize("item, message", [
    ("X9", r'none of the gates has the id or name "X9"; the gates are: North \(N1\), North \(N2\), Ticket hall \(T1\), G7\. '
           r'Or select them by kind, level \(e\.g\. "kind=exit"\)'),  # words first, with a value they have
    ("North", r'"North" is the name of 2 gates \(N1, N2\); give their ids'),
    ("kind=escalator", r'the selector "kind=escalator" matches none of the gates of this city; the gates are: '),
    ("colour=red", r'selects by "colour", which the gates of this city do not have; they can be selected by id, '
                   r"kind, level, name"),
    ("kind=", r'"kind=" is not a selector; write key=value pairs'),
])
def test_an_item_that_matches_nothing_is_an_error_listing_what_there_is(item, message):
    with pytest.raises(UserError, match=message):
        resolve([item], GATES, "closed_gates", "gates")


def test_a_selector_that_matches_nothing_beside_others_that_do_is_an_error_too():
    """Each item must do something: a selector that matches nothing is an error even where the other
    items of the list match (the variant would not be what its name says), listing what there is."""
    with pytest.raises(UserError, match=r'parameter open_gates: the selector "kind=escalator" matches none of the '
                                        r'gates of this city \(the other items select 1\); the gates are: North \(N1\)'):
        resolve(["kind=ticket_gate", "kind=escalator"], GATES, "open_gates", "gates")
    with pytest.raises(UserError, match='the selectors "kind=lift", "kind=escalator" match none of the gates'):
        resolve(["kind=lift", "kind=escalator"], GATES, "open_gates", "gates")
    # alternatives inside one selector: a scenario for several cities names what each may have
    assert resolve(["kind=ticket_gate|escalator"], GATES, "open_gates", "gates") == ["T1"]


def test_labels_add_the_id_where_the_name_is_missing_or_shared():
    assert labels(GATES) == {"N1": "North (N1)", "N2": "North (N2)", "T1": "Ticket hall", "G7": "G7"}
    assert labels([{"id": "R1", "name": None}]) == {"R1": "R1"}


def citytwin(*args):
    return subprocess.run([sys.executable, "-m", "twin.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def helsinki(tmp_path_factory):
    from twin.gis.city_import import import_city

    out = tmp_path_factory.mktemp("helsinki_city") / "city"
    import_city([DATA / "city" / "helsinki_central" / "Helsinki.osm.pbf"], out)
    return out


@pytest.mark.slow
def test_demo_ids_on_another_city_fail_before_any_run_naming_its_attractions(tmp_path, helsinki, capsys):
    out = tmp_path / "run"
    r = citytwin("run", ROOT / "scenarios" / "holiday_tourism.toml", "--city", helsinki, "--out", out, "--quiet")
    assert r.returncode == 2, r.stderr
    assert 'intervention "extra gates"' in r.stderr and 'has the id or name "A2"' in r.stderr
    assert "Ateneum (osm_way_8033120)" in r.stderr  # names, with the ids beside them
    assert "Traceback" not in r.stderr and not out.exists()
    from twin.cli import main

    for verb in (("compare", "--replications", "1"), ("branch", "--at", "600", "--intervention", "extra gates")):
        code = main([verb[0], str(ROOT / "scenarios" / "holiday_tourism.toml"), *verb[1:], "--city", str(helsinki),
                     "--out", str(tmp_path / verb[0]), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and 'has the id or name "A2"' in err, (verb, err)
        assert not (tmp_path / verb[0]).exists()


def test_a_scenario_written_with_names_and_selectors_travels(tmp_path, helsinki):
    from twin.scenario import preflight
    from twin.core.features import check_params
    from twin.scenario.scenario import load_scenario

    text = (ROOT / "scenarios" / "holiday_tourism.toml").read_text(encoding="utf-8")
    text = text.replace('extra_gates_at = ["A2", "A5", "A7"]',
                        """extra_gates_at = ["Amos Anderson taidemuseo", "name='Suomen Pankin rahamuseo'"]""")
    text = text.replace('city = "../gis_data/demo_city"', f'city = "{ROOT / "gis_data" / "demo_city"}"')
    path = tmp_path / "travels.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match="none of the attractions has the id or name \"Amos Anderson taidemuseo\""):
        preflight.check_features(load_scenario(path), ["extra gates"])  # on its own city: not there
    sc = load_scenario(path, city=helsinki)
    assert sc.city_path == helsinki.resolve()
    preflight.check_features(sc, sc.variants())
    ids = check_params(sc.model_class(), sc.params_for("extra gates"), sc.load_city(), "x")["extra_gates_at"]
    assert ids == ["osm_node_4308913300", "osm_node_606949807"]


def test_summary_names_the_features_of_keyed_kpis(tmp_path):
    from twin.runs.runner import run_one
    from twin.scenario.scenario import load_scenario

    text = (ROOT / "scenarios" / "holiday_tourism.toml").read_text(encoding="utf-8")
    text = text.replace('city = "../gis_data/demo_city"', f'city = "{ROOT / "gis_data" / "demo_city"}"')
    text = text.replace("duration_s = 72000", "duration_s = 600")
    path = tmp_path / "short.toml"
    path.write_text(text, encoding="utf-8")
    result = run_one(load_scenario(path), "extra gates", out=tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["names"]["A1"] == "Jade River Temple"
    assert summary["names"]["A5"] == "Guild Hall"  # extra_gates_at names it
    assert set(summary["kpis"]["attraction_queue"]) <= set(summary["names"])
    assert result.summary["names"] == summary["names"]


def test_report_labels_keyed_kpis_by_the_names_the_runs_carry(tmp_path):
    from twin.runs.report import kpi_label, named_by_runs

    rep = tmp_path / "runs" / "baseline" / "rep-000"
    rep.mkdir(parents=True)
    (rep / "summary.json").write_text(json.dumps({"names": {"osm_node_60131839": "Albert Edelfelt"}}))
    with named_by_runs(tmp_path):
        assert kpi_label("attraction_queue.osm_node_60131839") == "attraction queue Albert Edelfelt"
        assert kpi_label("attraction_queue.A9") == "attraction queue A9"  # unnamed: the key
    assert kpi_label("attraction_queue.osm_node_60131839") == "attraction queue osm_node_60131839"
