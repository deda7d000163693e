"""The assimilation report (twin/live/assim_report.py): a headline KPI both ensembles forecast
without error at every lead (a clearance time that stays 0 all the record) is named, not drawn as
an empty panel."""
from __future__ import annotations

import pandas as pd
import pytest

from twin.live.assim_report import write_assimilation_report


def test_a_kpi_forecast_without_error_is_named_instead_of_an_empty_panel(tmp_path):
    pd.DataFrame({"time_s": [0.0, 60.0], "parameter": "speed_mps", "mean": [1.1, 1.3], "p10": [0.9, 1.25],
                  "p50": [1.1, 1.3], "p90": [1.3, 1.35], "truth": 1.3}).to_csv(tmp_path / "parameters.csv", index=False)
    pd.DataFrame({"time_s": [60.0], "sensor": ["E1"], "observed": [10.0], "before": [7.0], "after": [9.0],
                  "fate": ["used"]}).to_csv(tmp_path / "residuals.csv", index=False)
    rows = [{"issued_at": 60.0, "lead_s": lead, "kpi": kpi, "method": method, "against": "truth", "truth": 5.0,
             "mean": 5.0, "rmse": (0.0 if kpi == "kpi.cleared_s" else err), "crps": 0.1, "coverage": 1.0}
            for lead in (60.0, 120.0) for kpi in ("kpi.done", "kpi.cleared_s")
            for method, err in (("open_loop", 3.0), ("assimilated", 1.0))]
    pd.DataFrame(rows).to_csv(tmp_path / "skill.csv", index=False)
    summary = {"scenario": "s", "method": "enkf", "members": 4, "updates": 1, "rejected": 0, "missing": 0,
               "parameters": {}}
    page = write_assimilation_report(tmp_path, summary, ["kpi.done", "kpi.cleared_s"]).read_text(encoding="utf-8")
    assert "Forecast without error by both ensembles at every lead, so not drawn: cleared_s." in page
    table = page.split("so not drawn")[1]
    assert "kpi.done" in table and "kpi.cleared_s" not in table  # the skill table holds only the drawn KPI
    assert (tmp_path / "skill.png").stat().st_size > 5000
    # when every KPI is exact, the panel still draws them (nothing else to show)
    pd.DataFrame([dict(r, rmse=0.0) for r in rows]).to_csv(tmp_path / "skill.csv", index=False)
    page = write_assimilation_report(tmp_path, summary, ["kpi.done", "kpi.cleared_s"]).read_text(encoding="utf-8")
    assert "so not drawn" not in page and "kpi.cleared_s" in page


def test_the_skill_panels_kpis_come_from_the_summary_or_the_model_it_names(tmp_path):
    """A folder written before ``headline_kpis`` was saved still draws its model's headline KPIs; a
    model no longer registered draws none (the first five scored, in the panel)."""
    import json

    from agents.registry import get_model
    from twin.live.assim_report import headline_columns, load_assimilation

    pd.DataFrame({"time_s": [0.0], "parameter": "speed_mps", "mean": [1.1], "p10": [0.9], "p50": [1.1],
                  "p90": [1.3], "truth": 1.3}).to_csv(tmp_path / "parameters.csv", index=False)
    for summary, want in (({"headline_kpis": ["kpi.a"], "model": "toy"}, ["kpi.a"]),
                          ({"model": "toy"}, headline_columns(get_model("toy"))),
                          ({"model": "no_such_model"}, []), ({}, [])):
        (tmp_path / "summary.json").write_text(json.dumps(summary))
        t = load_assimilation(tmp_path)
        assert t.headline() == want and len(t.residuals) == 0 and list(t.skill.columns)[:3] == ["issued_at", "lead_s", "kpi"]
    assert headline_columns(get_model("toy")) == ["kpi.walkers_done", "kpi.mean_time_s"]


def test_the_coverage_leaves_out_the_kpis_every_member_forecast_exactly(tmp_path):
    """A gate kept closed is 0 in the truth and in every member: its band holds the truth whatever the
    filter does, so the coverage that judges the band is over the other KPIs (both numbers kept). A KPI
    whose ensemble mean is right but whose members spread (CRPS > 0) still counts."""
    from twin.live.assim_report import coverage_by_lead, coverage_summary, kpis_forecast_exactly

    rows = []
    for lead in (60.0, 120.0):
        for method in ("open_loop", "assimilated"):
            for issued, hit in ((0.0, 1.0), (60.0, 0.0), (120.0, 1.0), (180.0, 1.0)):
                base = {"issued_at": issued, "lead_s": lead, "method": method, "against": "truth", "truth": 1.0,
                        "mean": 1.0}
                rows += [dict(base, kpi="kpi.closed_gate", rmse=0.0, crps=0.0, coverage=1.0),
                         dict(base, kpi="kpi.spread_right", rmse=0.0, crps=0.2, coverage=hit),
                         dict(base, kpi="kpi.done", rmse=2.0, crps=1.0, coverage=0.0 if method == "open_loop" else 1.0)]
    skill = pd.DataFrame(rows)
    assert kpis_forecast_exactly(skill) == ["kpi.closed_gate"]
    cov = coverage_by_lead(skill).set_index(["method", "lead_s"])
    assert cov.loc[("open_loop", 60.0), "coverage"] == pytest.approx(3 / 8)  # spread_right 3 of 4, done 0 of 4
    assert cov.loc[("open_loop", 60.0), "coverage_all"] == pytest.approx(7 / 12)
    assert cov.loc[("assimilated", 120.0), "coverage"] == pytest.approx(7 / 8)
    assert (cov["kpis"] == 2).all() and (cov["kpis_all"] == 3).all()
    assert coverage_summary(skill)["assimilated"]["120"] == {"coverage": 0.875, "kpis": 2, "coverage_all": 0.916667,
                                                            "kpis_all": 3, "coverage_kpi": 0.875}
    skill.to_csv(tmp_path / "skill.csv", index=False)
    pd.DataFrame({"time_s": [0.0], "parameter": "p", "mean": [1.0], "p10": [0.9], "p50": [1.0], "p90": [1.1],
                  "truth": 1.0}).to_csv(tmp_path / "parameters.csv", index=False)
    summary = {"scenario": "s", "method": "enkf", "members": 4, "updates": 1, "rejected": 0, "missing": 0,
               "parameters": {}}
    page = write_assimilation_report(tmp_path, summary, ["kpi.done"]).read_text(encoding="utf-8")
    assert "left out, as every member forecast them exactly at every lead: closed_gate." in page
    # an assimilation where every KPI is forecast exactly has no coverage to judge
    none = coverage_by_lead(skill[skill.kpi == "kpi.closed_gate"])
    assert none["coverage"].isna().all() and (none["kpis"] == 0).all() and (none["coverage_all"] == 1).all()
