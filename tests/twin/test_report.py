import math
import re

import pytest

from tests.factories import write_scenario
from twin.runs.experiment import compare
from twin.core.formats import kpi_label
from twin.runs.report import clause, fmt_qty
from twin.runs.stats import Interval


def test_words_and_units():
    assert kpi_label("mean_egress_time_s") == "mean egress time"
    assert kpi_label("exited_by_gate.N1") == "exited by gate N1"
    assert kpi_label("max_density_ppm2") == "max density"
    assert fmt_qty(192.0, "s") == "3.2 min" and fmt_qty(45.0, "s") == "45.0 s"
    assert fmt_qty(2.5, "ppm2") == "2.5 persons/m²"


def test_headline_clauses_are_honest():
    d = Interval(-192.0, -216.0, -168.0, 10, 5.0)
    text = clause("mean_egress_time_s", "s", d, 900.0, "lower")
    assert text.startswith("cuts mean egress time by 3.2 min (95% CI 2.8 to 3.6 min") and "improvement" in text
    assert "worse" in clause("mean_egress_time_s", "s", Interval(30, 10, 50, 5, 1), 900, "lower")
    assert "no clear difference" in clause("x_s", "s", Interval(1.0, -2.0, 4.0, 5, 1.0), 10, None)
    assert "single replication" in clause("x_s", "s", Interval(1.0, math.nan, math.nan, 1, math.nan), 10, None)
    assert "unchanged" in clause("x_s", "s", Interval(0.0, 0.0, 0.0, 4, 0.0), 10, None)


@pytest.fixture(scope="module")
def report(tmp_path_factory, tiny_city):
    tmp = tmp_path_factory.mktemp("report")
    sc = write_scenario(tmp, tiny_city, '[parameters]\nwalkers = 30\n\n[[interventions]]\nname = "wider paths"\n'
                        "[interventions.parameters]\nspeed_mps = 1.4\n", replications=3)
    r = compare(sc, tmp / "out", workers=1, progress=False)
    return r, (tmp / "out" / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_report_holds_tables_images_and_headlines(report):
    r, html = report
    assert "<h2>Key findings</h2>" in html and "<li>“wider paths” raises walkers done by" in html
    assert "cuts mean time by" in html
    assert r.headlines and r.headlines[0] in html.replace("&quot;", '"')
    assert html.count("<table>") >= 2 and "95% CI of Δ" in html
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) >= 5 and all(len(i) > 1000 for i in imgs)  # KPI plots, keyed KPI, time series, map
    assert "<h2>Over time</h2>" in html and "<h2>Maps</h2>" in html and "paired t-interval" in html
    assert "http://" not in html and "https://" not in html  # works offline


@pytest.mark.slow
def test_one_replication_says_so(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, '[parameters]\nwalkers = 10\n\n[[interventions]]\nname = "fast"\n'
                        "[interventions.parameters]\nspeed_mps = 2.0\n", replications=1)
    r = compare(sc, tmp_path / "out", workers=1, progress=False)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "One replication per variant" in html and "single replication" in r.headlines[0]
    assert r.comparison["ci_low"].isna().all()


@pytest.mark.slow
def test_a_model_that_cannot_be_imported_leaves_a_report_that_says_so(report, monkeypatch):
    """The report is still written, without judging better from worse, and says why (it used to lose its
    colouring and verdicts silently)."""
    from twin.runs import stats
    from twin.runs.experiment import runs_table
    from twin.runs.report import write_report
    from twin.scenario.scenario import Scenario

    r, html = report
    assert "an improvement" in html and "class=warn" not in html
    runs, kpi_cols, units = runs_table(r.plan, r.out)
    table = stats.compare_table(runs, kpi_cols, "baseline", units, [v.name for v in r.plan.variants])

    def broken(self):
        raise ImportError("No module named 'agents.toy_v2'")

    monkeypatch.setattr(Scenario, "model_class", broken)
    with pytest.warns(UserWarning, match="could not be read"):
        write_report(r.plan, r.out, runs, table, kpi_cols, units)
    again = (r.out / "report.html").read_text(encoding="utf-8")
    assert "Incomplete report" in again and "agents.toy_v2" in again
    assert "an improvement" not in again
