"""Comparing interventions from the app: the same experiment code as `citytwin compare`."""
import pandas as pd

from tests.factories import write_scenario

BODY = ("[parameters]\nwalkers = 40\n\n[[interventions]]\nname = \"faster\"\n"
        "[interventions.parameters]\nspeed_mps = 1.5\n")


def test_compare_button_writes_the_report(window, tiny_city, tmp_path, qtbot):
    sc = write_scenario(tmp_path, tiny_city, BODY, replications=2)
    assert window.open_scenario(sc)
    out = tmp_path / "cmp"
    done = []
    worker = window.start_compare(out_dir=out, replications=2)
    worker.finished.connect(done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=180_000)
    table = pd.read_csv(out / "comparison.csv")
    faster = table[(table.variant == "faster") & (table.kpi == "mean_time_s")].iloc[0]
    assert faster.n == 2 and faster.delta_vs_baseline < 0  # walking faster takes less time
    assert (out / "report.html").stat().st_size > 10_000
    assert window.progress.value() == 100 and "report" in window.log_panel.toPlainText()
    assert window.act_compare.isEnabled()


def test_cancelling_a_comparison_keeps_finished_runs(window, tiny_city, tmp_path, qtbot):
    # 2 variants x 30 long runs: far more work than any machine finishes between the first
    # completed run and the cancel, so the cancel always lands mid-comparison.
    sc = write_scenario(tmp_path, tiny_city, BODY.replace("walkers = 40", "walkers = 40\ndistance_m = 10000\nspeed_sd_mps = 0.0"),
                        name="long", replications=30)
    assert window.open_scenario(sc)
    cancelled, done = [], []
    out = tmp_path / "cmp"
    worker = window.start_compare(out_dir=out, replications=30)
    worker.cancelled.connect(lambda: cancelled.append(True))
    worker.progress.connect(lambda n, total: done.append(n))
    qtbot.waitUntil(lambda: bool(done) and done[-1] >= 1, timeout=120_000)
    assert window.cancel_compare(wait_s=10.0)
    log = window.log_panel.toPlainText
    ended = (f"cancelled; finished runs kept in {out}", f"report in {out}", "comparison failed")
    qtbot.waitUntil(lambda: any(e in log() for e in ended), timeout=15_000)
    assert cancelled and ended[0] in log(), log()
    assert window.act_compare.isEnabled() and not window.act_cancel_compare.isEnabled()
    assert not (out / "comparison.csv").exists()
