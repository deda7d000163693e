"""`citytwin branch`: the baseline to T once, two futures from that state, compared from T."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.factories import write_scenario
from twin.cli import main
from twin.runs.stats import COLUMNS

TOY = ('[parameters]\nwalkers = 60\ndistance_m = 80.0\n\n[[interventions]]\nname = "fast"\n'
       "[interventions.parameters]\nspeed_mps = 3.0\n")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "twin.cli", *map(str, args)], capture_output=True, text=True)


def kpis(folder):
    return json.loads((folder / "summary.json").read_text())["kpis"]


@pytest.mark.slow
def test_branch_writes_the_comparison_of_two_futures_from_t(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, TOY, duration_s=120)
    out = tmp_path / "b"
    assert main(["branch", str(sc), "--at", "30", "--intervention", "fast", "--replications", "2", "--workers", "1",
                 "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert list(table.columns) == COLUMNS + ["unit"]
    assert set(table["variant"]) == {"baseline", "fast"} and (table["n"] == 2).all()
    fast = table[(table.variant == "fast") & (table.kpi == "mean_time_s")].iloc[0]
    assert fast.delta_vs_baseline < 0  # walking faster from 30 s on gets walkers there sooner
    assert (out / "states" / "state_t000030.npz").is_file()
    record = json.loads((out / "branch.json").read_text())
    assert record["at_s"] == 30.0 and record["state"] == "states/state_t000030.npz"
    report = (out / "report.html").read_text()
    words = " ".join(report.split())  # HTML: runs of spaces read as one
    assert "two futures from t = 0:00:30 (30 s)" in words and "Charts over time start at T" in words
    # both futures restored the same state: their series are identical up to T and part after it
    a = pd.read_csv(out / "runs" / "baseline" / "rep-000" / "timeseries.csv")
    b = pd.read_csv(out / "runs" / "fast" / "rep-000" / "timeseries.csv")
    assert a[a.time_s <= 30].equals(b[b.time_s <= 30])
    assert not a[a.time_s > 30].equals(b[b.time_s > 30])
    bundle = json.loads((out / "runs" / "fast" / "rep-001" / "bundle.json").read_text())
    assert bundle["from_state"]["time_s"] == 30.0 and bundle["from_state"]["replication"] == 1
    assert len(bundle["from_state"]["sha256"]) == 64


@pytest.mark.slow
def test_replication_0_of_the_baseline_future_is_the_uninterrupted_run(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, TOY.replace("distance_m = 80.0", "distance_m = 80.0\njitter_mps = 0.5"),
                        duration_s=120)
    full, out = tmp_path / "full", tmp_path / "b"
    assert main(["run", str(sc), "--out", str(full), "--quiet"]) == 0
    assert main(["branch", str(sc), "--at", "41.5", "--intervention", "fast", "--replications", "3", "--out", str(out),
                 "--workers", "2", "--quiet"]) == 0
    rep0 = out / "runs" / "baseline" / "rep-000"
    assert kpis(rep0) == kpis(full)
    assert pd.read_csv(rep0 / "timeseries.csv").equals(pd.read_csv(full / "timeseries.csv"))
    assert (out / "states" / "state_t000042.npz").is_file()  # 41.5 s moved up onto the 1 s step
    # with draws during the run (jitter), replications k >= 1 are reseeded: other futures, same past
    times = [kpis(out / "runs" / "baseline" / f"rep-{k:03d}")["mean_time_s"] for k in range(3)]
    assert len(set(times)) == 3
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs["seed"]) == {1} and sorted(runs["replication"].unique()) == [0, 1, 2]


def test_replication_k_reseeds_both_futures_alike(tmp_path, tiny_city):
    """Common random numbers from T on: after the restore, both variants of replication k hold the same
    generator state, derived from (seed, k); replication 0 keeps the saved one."""
    from twin.core.state_file import state_from_bytes
    from twin.runs.runner import Run
    from twin.scenario.scenario import load_scenario

    sc = load_scenario(write_scenario(tmp_path, tiny_city, TOY, duration_s=120))
    stem = Run(sc)
    stem.advance(20)
    saved = stem.model.rng.bit_generator.state
    state = state_from_bytes(stem.state_bytes())
    runs = {(v, k): Run(sc, v, state=state, replication=k) for v in ("baseline", "fast") for k in (0, 1, 2)}
    assert runs["baseline", 0].model.rng.bit_generator.state == saved
    for k in (1, 2):
        a, b = runs["baseline", k].model, runs["fast", k].model
        assert a.rng.bit_generator.state == b.rng.bit_generator.state != saved
        assert a.random.getstate() == b.random.getstate()
        assert a.rng.random() == b.rng.random()
    assert runs["baseline", 1].model.rng.random() != runs["baseline", 2].model.rng.random()


@pytest.mark.slow
def test_an_interrupted_branch_resumes_and_set_changes_make_the_variant(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, TOY, duration_s=90)
    out = tmp_path / "b"
    args = ["branch", str(sc), "--at", "20", "--intervention", "fast", "--set", "speed_sd_mps=0.0", "--out", str(out)]
    r = cli(*args, "--replications", "2", "--workers", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "4 run now, 0 reused" in r.stdout
    variant = "fast + speed_sd_mps=0.0"
    assert set(pd.read_csv(out / "comparison.csv")["variant"]) == {"baseline", variant}
    shutil_rm = out / "runs" / "fast-speed_sd_mps-0.0" / "rep-001"
    assert shutil_rm.is_dir()
    (shutil_rm / "summary.json").unlink()  # as if killed before the last write
    r = cli(*args, "--replications", "2", "--workers", "1", "--quiet")
    assert r.returncode == 0 and "state reused" in r.stdout and "1 run now, 3 reused" in r.stdout, r.stdout
    s = json.loads((shutil_rm / "summary.json").read_text())
    assert s["variant"] == variant and s["replication"] == 1 and s["from_state"]["time_s"] == 20.0


@pytest.mark.slow
@pytest.mark.parametrize("case", ["at zero", "at the end", "past the end", "unknown intervention", "no intervention",
                                  "replications", "out is a file", "finished before T"])
def test_bad_branches_exit_2_before_anything_is_written(case, tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, TOY, duration_s=60)
    out = tmp_path / "out"
    extra = ["--intervention", "fast"]
    at = "30"
    expect = ""
    if case == "at zero":
        at, expect = "0", "inside the run"
    elif case == "at the end":
        at, expect = "60", "inside the run"
    elif case == "past the end":
        at, expect = "75", "duration_s = 60"
    elif case == "unknown intervention":
        extra, expect = ["--intervention", "fats"], 'no intervention named "fats"'
    elif case == "no intervention":
        extra, expect = [], "needs --intervention NAME"
    elif case == "replications":
        extra, expect = extra + ["--replications", "0"], "--replications = 0 is out of range"
    elif case == "out is a file":
        out.write_text("x")
        expect = "not a folder"
    else:  # every walker is done long before 55 s: nothing left to branch
        sc = write_scenario(tmp_path, tiny_city, TOY.replace("distance_m = 80.0", "distance_m = 5.0"), duration_s=60,
                            name="short")
        at, expect = "55", "finished"
    r = cli("branch", sc, "--at", at, *extra, "--out", out, "--quiet")
    assert r.returncode == 2, r.stderr
    assert expect in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() or out.is_file()


@pytest.mark.slow
def test_evening_peak_branch(tmp_path):
    """The station: a branch of the evening peak (shortened to 150 s) at 60 s, opening more gates."""
    text = (ROOT / "scenarios" / "station_evening_peak.toml").read_text()
    text = text.replace("duration_s = 1800", "duration_s = 150").replace('city = "../gis_data/demo_city"',
                                                                        f'city = "{ROOT / "gis_data" / "demo_city"}"')
    sc = tmp_path / "peak.toml"
    sc.write_text(text)
    shutil.copy(ROOT / "scenarios" / "station_evening_peak_trains.csv", tmp_path)  # its timetable, beside it
    full, out = tmp_path / "full", tmp_path / "b"
    assert main(["run", str(sc), "--out", str(full), "--quiet"]) == 0
    assert main(["branch", str(sc), "--at", "60", "--intervention", "open more gates", "--out", str(out),
                 "--workers", "2", "--quiet"]) == 0
    assert kpis(out / "runs" / "baseline" / "rep-000") == kpis(full)
    gates = kpis(out / "runs" / "open-more-gates" / "rep-000")
    base = kpis(full)
    assert gates["agents_total"] == base["agents_total"]  # the same passengers were released
    assert gates != base
    table = pd.read_csv(out / "comparison.csv")
    assert {"agents_exited", "max_density_ppm2"} <= set(table["kpi"])
    with np.load(out / "states" / "state_t000060.npz", allow_pickle=False) as z:
        assert "crowd.x" in z.files
