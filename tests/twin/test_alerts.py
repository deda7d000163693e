"""Alert rules: the model's defaults, the scenario's [alerts] edits, and their evaluation on frames."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from tests.factories import write_scenario
from twin.scenario.alert_settings import parse_alerts
from twin.view.alerts import AlertMonitor, Places, evaluate
from twin.core.errors import UserError
from twin.core.grid import GridField
from twin.core.model_contract import AlertRule, FeatureFrame


def toy():
    from agents.registry import get_model

    return get_model("toy")


def test_levels_above_and_below():
    up = AlertRule("q", "queue", amber=10, red=20, kpi="walkers_done")
    assert [up.level(v) for v in (0, 9.9, 10, 19, 20, 99, math.nan)] == [0, 0, 1, 1, 2, 2, 0]
    down = AlertRule("p", "pumps left", amber=3, red=1, kpi="walkers_done", direction="below")
    assert [down.level(v) for v in (5, 3, 2, 1, 0)] == [0, 1, 1, 2, 2]


def test_the_alerts_table_edits_switches_off_and_adds_rules():
    cls = toy()
    rules = parse_alerts({"many_done": {"amber": 5, "red": 8}, "crowded_east": {"enabled": False},
                          "slow": {"kpi": "mean_time_s", "amber": 60, "red": 90, "doc": "slow walkers"},
                          "per_building": {"layer": "buildings", "value": "walkers_east", "amber": 1, "red": 2}},
                         "s.toml", cls)
    by = {r.name: r for r in rules}
    assert list(by) == ["many_done", "slow", "per_building"]
    assert (by["many_done"].amber, by["many_done"].red, by["many_done"].field) == (5, 8, "max_count")
    assert by["slow"].unit == "s" and by["per_building"].unit == "-"
    assert parse_alerts(None, "s.toml", cls) == tuple(r for r in parse_alerts({}, "s.toml", cls))


@pytest.mark.parametrize("table, message", [
    ({"many_done": {"ambre": 5}}, 'unknown key "ambre" (did you mean "amber"?)'),
    ({"many_done": {"amber": 50, "red": 10}}, "amber threshold (50) must come before the red one (10)"),
    ({"new": {"kpi": "walkers_gone", "amber": 1, "red": 2}}, 'kpi "walkers_gone"'),
    ({"new": {"layer": "roads", "value": "speed", "amber": 1, "red": 2}}, "is not a per-feature value"),
    ({"new": {"kpi": "walkers_done", "amber": 1}}, "needs red"),
    ({"new": {"kpi": "walkers_done", "layer": "buildings", "value": "walkers_east", "amber": 1, "red": 2}}, "not both"),
    ({"nope": {"enabled": False}}, "no rule 'nope' to switch off"),
    ({"many_done": {"direction": "up"}}, 'direction must be "above" or "below"'),
    ({"many_done": 5}, "each rule is a table"),
    ({"many_done": {"amber": "high"}}, "amber must be a finite number"),
])
def test_bad_alert_tables_name_the_rule_and_the_fix(table, message):
    with pytest.raises(UserError) as e:
        parse_alerts(table, "s.toml", toy())
    assert message in str(e.value) and "s.toml [alerts]" in str(e.value)


def test_a_scenario_file_carries_its_alerts_into_the_runs_it_resolves(tmp_path, tiny_city):
    from twin.scenario.scenario import load_scenario

    sc = load_scenario(write_scenario(tmp_path, tiny_city, "[alerts.many_done]\nred = 30\n"))
    assert {r.name: r.red for r in sc.alerts}["many_done"] == 30
    assert sc.resolved(None, 1)["alerts"] == {"many_done": {"red": 30}}
    bad = write_scenario(tmp_path, tiny_city, "[alerts.many_done]\nred = 1\n", name="bad")
    with pytest.raises(UserError, match="bad.toml"):
        load_scenario(bad)


def test_evaluate_places_features_keys_and_field_peaks(tiny_city):
    from twin.core.city import City
    from tests.factories import X0, Y0

    city = City.load(tiny_city)
    ids = city.buildings["id"].astype(str).to_numpy()
    grid = GridField("max_count", np.zeros((4, 4), np.float32), X0, Y0 + 40, 10.0)
    grid.values[2, 3] = 7.0
    rules = (AlertRule("done", "d", 10, 20, kpi="walkers_done", field="max_count"),
             AlertRule("east", "e", 1, 5, layer="buildings", value="walkers_east"),
             AlertRule("halves", "h", 3, 6, kpi="done_by_half"))
    feats = {"buildings": FeatureFrame(ids, {"walkers_east": np.array([0.0, 2.0, 9.0])})}
    out = evaluate(rules, {"walkers_done": 12, "done_by_half": {"west": 7, "east": 1}}, feats, {"max_count": grid},
                   Places(city))
    done = [a for a in out if a.rule.name == "done"][0]
    assert done.level == 1 and (done.x, done.y) == (X0 + 35.0, Y0 + 15.0)  # the field's peak cell
    east = {a.key: a.level for a in out if a.rule.name == "east"}
    assert east == dict(zip(ids, [0, 1, 2]))
    b = [a for a in out if a.rule.name == "east" and a.level == 2][0]
    centre = city.buildings.geometry.iloc[2].representative_point()
    assert (b.x, b.y) == pytest.approx((centre.x, centre.y))
    halves = {a.key: a.level for a in out if a.rule.name == "halves"}
    assert halves == {"west": 2, "east": 0}
    # the same keyed KPI as time-series columns (name.key) evaluates alike
    cols = evaluate(rules[2:], {"done_by_half.west": 7.0, "done_by_half.east": 1.0})
    assert {a.key: a.level for a in cols} == halves
    # a field with levels (one band per level): the peak of every band, placed in plan
    levels = GridField("max_count", np.zeros((2, 4, 4), np.float32), X0, Y0 + 40, 10.0)
    levels.values[1, 0, 2] = 7.0
    done = [a for a in evaluate(rules[:1], {"walkers_done": 12}, None, {"max_count": levels}) if a.rule.name == "done"][0]
    assert (done.x, done.y) == (X0 + 25.0, Y0 + 35.0)


def frame(t, v):
    return SimpleNamespace(time_s=t, kpis={"walkers_done": v}, features={}, fields={})


def test_the_monitor_logs_each_change_once_and_never_when_scrubbing_back():
    rule = AlertRule("done", "d", 10, 20, kpi="walkers_done")
    m = AlertMonitor((rule,), clear_after_s=0.0)
    log = [e for t, v in ((0, 0), (5, 12), (10, 15), (15, 25), (20, 5)) for e in m.update(frame(t, v))]
    assert [(e.time_s, e.previous, e.alert.level) for e in log] == [(5, 0, 1), (15, 1, 2), (20, 2, 0)]
    assert m.update(frame(15, 25)) == [] and m.kpi_level("walkers_done") == 2  # scrubbed back: levels only
    assert [a.level for a in m.active] == [2] and m.rule_level("done")[0] == 2
    assert len(m.log) == 3


def test_an_alert_drops_only_after_staying_below_for_the_off_delay():
    """A value hovering at the threshold neither flashes the tile nor fills the log."""
    m = AlertMonitor((AlertRule("done", "d", 10, 20, kpi="walkers_done"),), clear_after_s=30.0)
    series = [(0, 12), (10, 9), (20, 11), (30, 9), (40, 8), (50, 9), (59, 9), (61, 9), (70, 25), (80, 15)]
    levels = []
    for t, v in series:
        m.update(frame(t, v))
        levels.append(m.kpi_level("walkers_done"))
    assert levels == [1, 1, 1, 1, 1, 1, 1, 0, 2, 2]  # below from 30 s: dropped at 61 s, not before
    assert [(e.time_s, e.alert.level) for e in m.log] == [(0, 1), (61, 0), (70, 2)]
