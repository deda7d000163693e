"""The holiday scenario through the CLI: a full day, a shortened one, a saved state continued as
the Haikou platform, and a comparison of two variants."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import tomli_w

from tests.conftest import DEMO_CITY, ROOT
from twin.cli import main

SCENARIO = ROOT / "scenarios" / "holiday_tourism.toml"
CONTRACT = {"tourists_total", "visits_completed", "mean_entry_wait_s", "p95_entry_wait_s", "mean_room_search_s",
            "mean_checkin_s", "queue_hours_total", "peak_occupancy_ratio"}
MORNING = "arrival_profile=[[21600, 2000], [28800, 1000], [32400, 0]]"  # 3 h of arrivals, ~5,000 tourists


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_the_scenario_is_a_holiday_day_with_the_interventions_asked_for():
    raw = tomllib.loads(SCENARIO.read_text())
    assert raw["scenario"]["model"] == "tourist_flow"
    names = [iv["name"] for iv in raw["interventions"]]
    assert len(names) >= 4 and "the Haikou platform" in names
    haikou = raw["interventions"][names.index("the Haikou platform")]["parameters"]
    assert haikou["platform_search_s"] == 10 and haikou["online_checkin_s"] == 30 and haikou["entry_time_factor"] < 1
    levers = {k for iv in raw["interventions"] for k in iv["parameters"]}
    assert {"reservation_share", "recommend_share", "extra_gates", "capacity_cap_share", "shuttle_share"} <= levers


@pytest.mark.slow
def test_the_whole_day_runs_from_the_cli(tmp_path):
    out = tmp_path / "day"
    assert main(["run", str(SCENARIO), "--out", str(out), "--quiet"]) == 0
    s = summary(out)
    k = s["kpis"]
    assert CONTRACT <= set(k) and s["model"] == "tourist_flow"
    assert k["tourists_total"] >= 20_000
    assert k["tourists_in_city"] == 0 and k["tourists_by_state"]["checked_in"] + k["tourists_by_state"]["left"] == \
        k["tourists_total"]  # every tourist accounted for: in a hotel or gone home
    assert k["visits_completed"] > 1.5 * k["tourists_total"]
    assert k["mean_entry_wait_s"] > 60 and k["mean_room_search_s"] > 60 and k["queue_hours_total"] > 100
    ts = pd.read_csv(out / "timeseries.csv")
    assert {f"attraction_queue.A{i}" for i in range(1, 8)} <= set(ts.columns)
    assert ts["attraction_queue.A2"].max() > 0 and ts["tourists_total"].is_monotonic_increasing


@pytest.mark.slow
def test_a_shortened_day_and_a_state_continued_as_the_haikou_platform(tmp_path):
    base = tmp_path / "base"
    assert main(["run", str(SCENARIO), "--set", MORNING, "--save-state-at", "5400", "--out", str(base),
                 "--quiet"]) == 0
    kb = summary(base)["kpis"]
    assert 4000 < kb["tourists_total"] < 6000 and kb["tourists_in_city"] == 0
    state = next((base / "states").glob("*.npz"))
    branch = tmp_path / "branch"
    assert main(["run", "--from-state", str(state), "--intervention", "the Haikou platform", "--set", MORNING,
                 "--out", str(branch), "--quiet"]) == 0
    s = summary(branch)
    kh = s["kpis"]
    assert s["variant"] == "the Haikou platform" and s["from_state"]["time_s"] == 5400
    assert kh["tourists_total"] == kb["tourists_total"]  # the same tourists
    assert kh["mean_room_search_s"] < kb["mean_room_search_s"] and kh["mean_checkin_s"] < kb["mean_checkin_s"]
    # continued unchanged, the run ends exactly as the one that never stopped
    again = tmp_path / "again"
    assert main(["run", "--from-state", str(state), "--out", str(again), "--quiet"]) == 0
    assert summary(again)["kpis"] == kb


@pytest.mark.slow
def test_compare_two_variants(tmp_path):
    raw = tomllib.loads(SCENARIO.read_text())
    raw["scenario"]["city"] = str(DEMO_CITY)
    raw["scenario"]["duration_s"] = 6 * 3600
    raw["parameters"]["arrival_profile"] = [[21600, 2000], [28800, 0]]
    raw["parameters"]["time_budget_s"] = 3 * 3600
    raw["interventions"] = [iv for iv in raw["interventions"] if iv["name"] == "the Haikou platform"]
    sc = tmp_path / "short.toml"
    sc.write_text(tomli_w.dumps(raw), encoding="utf-8")
    out = tmp_path / "cmp"
    assert main(["compare", str(sc), "--replications", "2", "--workers", "1", "--quiet", "--out", str(out)]) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["variant"]) == {"baseline", "the Haikou platform"}
    runs = {p.parent.parent.name + "/" + p.parent.name: summary(p.parent) for p in out.glob("runs/*/rep-*/summary.json")}
    assert len(runs) == 4
    for name, s in runs.items():
        k = s["kpis"]
        if s["variant"] == "the Haikou platform":  # the promises that are the platform's own doing
            assert k["mean_room_search_s"] == pytest.approx(10.0) and k["mean_checkin_s"] == pytest.approx(30.0)
        else:
            assert k["mean_room_search_s"] > 60.0
    row = table[(table["variant"] == "the Haikou platform") & (table["kpi"] == "mean_room_search_s")]
    assert len(row) == 1
