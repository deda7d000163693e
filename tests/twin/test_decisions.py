"""calibrate, sensitivity and explore (twin/runs/calibrate.py, twin/runs/sensitivity.py, twin/runs/explore.py) against
answers known in advance: analytic Sobol' indices, a planted PRIM box, a known parameter behind a
synthetic observation, and the same numbers on 1 and 2 workers and on Dask."""
import math

import numpy as np
import pandas as pd
import pytest

from tests.factories import write_scenario
from twin.core.errors import UserError

PI = math.pi
ISHIGAMI = [f"x{i}={-PI}..{PI}" for i in (1, 2, 3)]
# Ishigami & Homma (1990), a = 7, b = 0.1; e.g. Saltelli et al., Global Sensitivity Analysis (2008), 4.5
ISHIGAMI_S1 = {"x1": 0.3139, "x2": 0.4424, "x3": 0.0}
ISHIGAMI_ST = {"x1": 0.5576, "x2": 0.4424, "x3": 0.2437}


@pytest.fixture
def ishigami(tmp_path, tiny_city):
    return write_scenario(tmp_path, tiny_city, model="ishigami", duration_s=1, name="ishigami")


# --------------------------------------------------------------------------------------------
# sensitivity
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sobol_indices_of_the_ishigami_function(ishigami, tmp_path):
    from twin.runs.sensitivity import sensitivity

    res = sensitivity(ishigami, tmp_path / "sa", ISHIGAMI, samples=128, workers=1, progress=False)
    t = pd.read_csv(tmp_path / "sa" / "sensitivity.csv")
    assert list(t.columns) == ["kpi", "parameter", "S1", "S1_conf", "ST", "ST_conf"]
    assert len(res.samples) == 128 * 5
    for r in t.itertuples():
        assert abs(r.S1 - ISHIGAMI_S1[r.parameter]) <= max(r.S1_conf, 0.05), r
        assert abs(r.ST - ISHIGAMI_ST[r.parameter]) <= max(r.ST_conf, 0.05), r
    assert (tmp_path / "sa" / "sensitivity.png").stat().st_size > 1000
    assert "Sobol" in (tmp_path / "sa" / "report.html").read_text(encoding="utf-8")


def _sobol_by_quadrature(f, a, b, n=400):
    """First-order indices of f(x, y) on [a0, b0] × [a1, b1] by the midpoint rule."""
    x = a[0] + (np.arange(n) + 0.5) / n * (b[0] - a[0])
    y = a[1] + (np.arange(n) + 0.5) / n * (b[1] - a[1])
    z = np.array([[f(u, v) for v in y] for u in x])
    var = z.var()
    return z.mean(axis=1).var() / var, z.mean(axis=0).var() / var


@pytest.mark.slow
def test_sobol_indices_of_the_mmc_queue_wait_match_quadrature(tmp_path, tiny_city):
    """Mean wait of an M/M/4 queue (Erlang C) over arrival rate 0.3..0.6 /s and service time 4..6 s."""
    from tests.analytic_models import mmc_wait_s
    from twin.runs.sensitivity import sensitivity

    sc = write_scenario(tmp_path, tiny_city, "[parameters]\nservers = 4\n", model="mmc_queue", duration_s=1, name="q")
    res = sensitivity(sc, tmp_path / "sa", ["arrival_per_s=0.3..0.6", "service_s=4..6"], samples=128, workers=1,
                      progress=False)
    s_lam, s_srv = _sobol_by_quadrature(lambda u, v: mmc_wait_s(u, v, 4), (0.3, 4.0), (0.6, 6.0), n=200)
    t = res.table.set_index("parameter")
    # two inputs: ST of one = 1 − S1 of the other
    for name, s1, st in (("arrival_per_s", s_lam, 1 - s_srv), ("service_s", s_srv, 1 - s_lam)):
        assert abs(t.loc[name, "S1"] - s1) <= max(t.loc[name, "S1_conf"], 0.03), (name, t.loc[name, "S1"], s1)
        assert abs(t.loc[name, "ST"] - st) <= max(t.loc[name, "ST_conf"], 0.03), (name, t.loc[name, "ST"], st)
    # the wait explodes as the load nears 4 servers: a third of its variance is the interaction
    assert 1 - s_lam - s_srv > 0.2
    assert (t["ST"] - t["S1"] > 0.1).all()


def test_morris_ranks_the_ishigami_inputs(ishigami, tmp_path):
    from twin.runs.sensitivity import sensitivity

    res = sensitivity(ishigami, tmp_path / "m", ISHIGAMI, method="morris", samples=40, workers=1, progress=False)
    t = pd.read_csv(tmp_path / "m" / "sensitivity.csv").set_index("parameter")
    assert list(t.columns) == ["kpi", "mu_star", "mu_star_conf", "sigma", "mu"]
    assert len(res.samples) == 40 * 4
    # x2 acts alone and strongly (7 sin² x2); x3 only through its interaction with x1 (sigma large vs mu*)
    assert t.loc["x2", "mu_star"] > t.loc["x3", "mu_star"]
    assert t.loc["x2", "sigma"] < t.loc["x2", "mu_star"] * 1.5
    assert t.loc["x1", "sigma"] > 0 and t.loc["x3", "sigma"] > 0


@pytest.mark.slow
def test_sensitivity_reuses_finished_runs(ishigami, tmp_path):
    from twin.runs.sensitivity import sensitivity

    a = sensitivity(ishigami, tmp_path / "sa", ISHIGAMI, samples=8, workers=1, progress=False)
    b = sensitivity(ishigami, tmp_path / "sa", ISHIGAMI, samples=8, workers=1, progress=False)
    assert a.ran == 40 and b.ran == 0 and b.reused == 40
    pd.testing.assert_frame_equal(a.table, b.table)


# --------------------------------------------------------------------------------------------
# Bad input: one message naming the fix, before any run
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("item, match", [
    ("x9=0..1", 'no parameter "x9"'),
    ("x1=1..0", "must be less than HIGH"),
    ("x1=0..99", "out of range"),
    ("x1=a..b", "must be numbers"),
    ("x1:0..1", "NAME=LOW..HIGH"),
])
def test_bad_ranges_are_refused(ishigami, tmp_path, item, match):
    from twin.runs.sensitivity import sensitivity

    with pytest.raises(UserError, match=match):
        sensitivity(ishigami, tmp_path / "sa", [item], samples=8, progress=False)
    assert not (tmp_path / "sa").exists()


def test_a_target_on_an_unknown_kpi_is_refused(tmp_path, tiny_city):
    from twin.runs.explore import explore

    sc = write_scenario(tmp_path, tiny_city, name="t")
    with pytest.raises(UserError, match='no KPI "mean_time".*did you mean "mean_time_s"'):
        explore(sc, tmp_path / "ex", ["speed_mps=0.5..1.5"], 4, ["mean_time<=60"], progress=False)
    with pytest.raises(UserError, match="string parameter|a range needs a numeric"):
        explore(sc, tmp_path / "ex", ["stepping=0..1"], 4, progress=False)
    assert not (tmp_path / "ex").exists()


# --------------------------------------------------------------------------------------------
# explore: PRIM, robustness, identical numbers on 1, 2 and Dask workers
# --------------------------------------------------------------------------------------------
def test_prim_finds_a_planted_box():
    from twin.runs.explore import box_words, prim_box
    from twin.runs.uncertainty import Range

    rng = np.random.default_rng(5)
    x = pd.DataFrame(rng.uniform(0, 1, (600, 3)), columns=["rain", "demand", "noise"])
    y = ((x["rain"] > 0.7) & (x["demand"] < 0.4)).to_numpy()
    box = prim_box(x, y)
    assert set(box.limits) == {"rain", "demand"}
    assert box.limits["rain"][0] == pytest.approx(0.7, abs=0.05) and box.limits["rain"][1] is None
    assert box.limits["demand"][1] == pytest.approx(0.4, abs=0.05) and box.limits["demand"][0] is None
    assert box.coverage >= 0.9 and box.density >= 0.9
    words = box_words(box, [Range("rain", 0, 1, float, "mm/h"), Range("demand", 0, 1, float, "-")])
    assert words.startswith("rain > 0.7") and "demand < 0.4" in words and "mm/h" in words


TOY_PLANS = """[parameters]
walkers = 30
distance_m = 40
[[interventions]]
name = "fast"
[interventions.parameters]
speed_mps = 1.5
"""


def _explore_toy(sc, out, **kw):
    from twin.runs.explore import explore

    return explore(sc, out, ["speed_mps=0.5..1.5", "distance_m=30..60"], 10, ["mean_time_s<=50"], progress=False,
                   **kw)


@pytest.mark.slow
def test_explore_is_identical_on_1_and_2_workers_and_dask_and_resumes(tmp_path, tiny_city):
    from distributed import LocalCluster

    sc = write_scenario(tmp_path, tiny_city, TOY_PLANS, duration_s=90, name="plans")
    a = _explore_toy(sc, tmp_path / "w1", workers=1)
    b = _explore_toy(sc, tmp_path / "w2", workers=2)
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        c = _explore_toy(sc, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert a.ran == b.ran == c.ran == 20
    ref = (tmp_path / "w1" / "robustness.csv").read_text()
    assert (tmp_path / "w2" / "robustness.csv").read_text() == ref
    assert (tmp_path / "dask" / "robustness.csv").read_text() == ref
    fa = pd.read_parquet(tmp_path / "w1" / "futures.parquet")
    pd.testing.assert_frame_equal(fa, pd.read_parquet(tmp_path / "w2" / "futures.parquet"))
    pd.testing.assert_frame_equal(fa, pd.read_parquet(tmp_path / "dask" / "futures.parquet"))
    again = _explore_toy(sc, tmp_path / "w1", workers=2)
    assert again.ran == 0 and again.reused == 20
    assert (tmp_path / "w1" / "robustness.csv").read_text() == ref


@pytest.mark.slow
def test_explore_tables_follow_from_the_futures(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, TOY_PLANS, duration_s=90, name="plans")
    res = _explore_toy(sc, tmp_path / "ex", workers=1)
    fut = pd.read_parquet(tmp_path / "ex" / "futures.parquet")
    rob = pd.read_csv(tmp_path / "ex" / "robustness.csv")
    assert list(rob.columns) == ["intervention", "kpi", "mean", "p10", "p90", "max_regret", "share_meeting_target"]
    assert len(fut) == 20 and set(fut["intervention"]) == {"baseline", "fast"}
    # common random numbers: both plans of a future share its seed and its uncertain values
    g = fut.groupby("future")
    assert (g["seed"].nunique() == 1).all() and (g["distance_m"].nunique() == 1).all()
    # an intervention keeps the value it sets itself (speed_mps = 1.5 is the measure): with the same
    # distance, its time does not follow the future's speed
    from twin.scenario.scenario import load_scenario
    from twin.runs.uncertainty import overrides_for

    loaded = load_scenario(sc)
    assert overrides_for(loaded, "fast", (("speed_mps", 0.7), ("distance_m", 40.0))) == {"distance_m": 40.0}
    assert overrides_for(loaded, "baseline", (("speed_mps", 0.7),)) == {"speed_mps": 0.7}
    wide = fut.pivot(index="future", columns="intervention", values="mean_time_s")
    best = wide.min(axis=1)
    for plan in ("baseline", "fast"):
        row = rob[(rob["intervention"] == plan) & (rob["kpi"] == "mean_time_s")].iloc[0]
        assert row["max_regret"] == pytest.approx((wide[plan] - best).max())
        assert row["share_meeting_target"] == pytest.approx((wide[plan] <= 50).mean())
        assert row["p10"] <= row["mean"] <= row["p90"] or row["p10"] == row["p90"]
    # the slow baseline misses the target where the walk is long and slow: time = distance / speed
    disc = pd.read_csv(tmp_path / "ex" / "scenario_discovery.csv")
    base = disc[disc["intervention"] == "baseline"].iloc[0]
    assert base["misses"] == int((wide["baseline"] > 50).sum()) > 0
    assert "speed_mps <" in base["sentence"]
    assert any("baseline" in s for s in res.sentences)
    html = (tmp_path / "ex" / "report.html").read_text(encoding="utf-8")
    assert "Where each plan fails" in html and "data:image/png;base64" in html


# --------------------------------------------------------------------------------------------
# calibrate
# --------------------------------------------------------------------------------------------
@pytest.fixture
def arrivals(tmp_path, tiny_city):
    """A synthetic observed count of arrivals at demand_scale = 1.3 (seed 99, not the scenario's)."""
    from twin.runs.runner import run_one
    from twin.scenario.scenario import load_scenario

    sc = write_scenario(tmp_path, tiny_city, model="arrivals", duration_s=300, seed=4, name="arrivals")
    truth = run_one(load_scenario(sc), seed=99, overrides={"demand_scale": 1.3})
    obs = tmp_path / "observed.csv"
    truth.timeseries[["time_s", "arrived"]].to_csv(obs, index=False)
    return sc, obs


@pytest.mark.slow
def test_abc_recovers_a_known_demand_scale(arrivals, tmp_path):
    import tomllib

    from twin.runs.calibrate import calibrate
    from twin.scenario.scenario import load_scenario

    sc, obs = arrivals
    res = calibrate(sc, obs, ["demand_scale=0.5..2.5"], tmp_path / "c", population=40, generations=5, workers=2,
                    progress=False)
    fit = pd.read_csv(tmp_path / "c" / "fit.csv")
    assert list(fit.columns) == ["parameter", "estimate", "low", "high"]
    r = fit.iloc[0]
    assert r["low"] <= 1.3 <= r["high"], r  # the truth lies in the posterior's 90 % interval
    assert r["high"] - r["low"] < 0.3  # which narrowed from the prior's 2.0
    assert res.simulations > 5 * 40
    cal = tomllib.loads((tmp_path / "c" / "calibrated.toml").read_text(encoding="utf-8"))
    assert cal["parameters"]["demand_scale"] == pytest.approx(r["estimate"], rel=1e-5)
    # a scenario that loads from where it was written (the city path made absolute)
    assert load_scenario(tmp_path / "c" / "calibrated.toml").parameters["demand_scale"] == pytest.approx(
        r["estimate"], rel=1e-5)
    assert (tmp_path / "c" / "fit_arrived.png").stat().st_size > 1000
    assert "Fit against observation" in (tmp_path / "c" / "report.html").read_text(encoding="utf-8")
    gens = pd.read_csv(tmp_path / "c" / "generations.csv")
    assert len(gens) == 5 and gens["epsilon"].is_monotonic_decreasing


@pytest.mark.slow
def test_abc_is_the_same_on_1_and_2_workers_and_dask(arrivals, tmp_path):
    from distributed import LocalCluster

    from twin.runs.calibrate import calibrate

    sc, obs = arrivals
    kw = dict(population=20, generations=2, progress=False)
    a = calibrate(sc, obs, ["demand_scale=0.5..2.5"], tmp_path / "c1", workers=1, **kw)
    b = calibrate(sc, obs, ["demand_scale=0.5..2.5"], tmp_path / "c2", workers=2, **kw)
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        c = calibrate(sc, obs, ["demand_scale=0.5..2.5"], tmp_path / "c3", scheduler=cluster.scheduler_address, **kw)
    ref = (tmp_path / "c1" / "fit.csv").read_text()
    assert (tmp_path / "c2" / "fit.csv").read_text() == ref
    assert (tmp_path / "c3" / "fit.csv").read_text() == ref
    assert a.simulations == b.simulations == c.simulations


def test_optuna_finds_the_demand_scale(arrivals, tmp_path):
    from twin.runs.calibrate import calibrate

    sc, obs = arrivals
    res = calibrate(sc, obs, ["demand_scale=0.5..2.5"], tmp_path / "o", method="optuna", trials=32, workers=1,
                    progress=False)
    r = res.fit.iloc[0]
    assert r["estimate"] == pytest.approx(1.3, abs=0.1) and r["low"] <= r["estimate"] <= r["high"]


@pytest.mark.parametrize("text, match", [
    ("t,arrived\n0,1\n", "no time_s column"),
    ("time_s\n0\n10\n", "only a time_s column"),
    ("time_s,arrivals\n0,1\n10,2\n", 'not a KPI of model arrivals \\(did you mean "arrived"\\?\\)'),
    ("time_s,arrived\n0,x\n10,2\n", 'row 2, column "arrived"'),
    ("time_s,arrived\n0,1\n9999,2\n", "between 0 and the scenario's duration_s"),
])
def test_bad_observations_are_refused(arrivals, tmp_path, text, match):
    from twin.runs.calibrate import calibrate

    sc, _ = arrivals
    bad = tmp_path / "bad.csv"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=match):
        calibrate(sc, bad, ["demand_scale=0.5..2.5"], tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_abc_recovers_a_flood_rain_multiplier(tmp_path):
    """Depths observed under rain × 1.3 (a gauge that read low): ABC-SMC on the flood model puts 1.3
    inside the posterior's 90 % interval, which is narrower than the prior. A 40 × 40 bowl at 5 m,
    10 minutes of rain: a run takes a fifth of a second on a quiet machine (building the model most
    of it); some 60 of them take 7 s at load 3.5 on 2 cores and 68 s at load 16-20, too long for
    `make test-fast`."""
    from tests.agents.flood import towns
    from twin.runs.calibrate import calibrate
    from twin.runs.runner import run_one
    from twin.scenario.scenario import load_scenario

    city = towns.dem_only_town(tmp_path)
    body = ('[parameters]\nrain = "uniform"\nrain_mm_per_h = 60\nrain_duration_s = 600\nwarning_time_s = 0\n'
            "report_interval_s = 60\n")
    sc = write_scenario(tmp_path, city, body, model="flood", name="bowl", duration_s=600)
    truth = run_one(load_scenario(sc), overrides={"rain_scale": 1.3})
    obs = tmp_path / "gauge_depths.csv"
    truth.timeseries[["time_s", "max_depth_m"]].to_csv(obs, index=False)
    plain = run_one(load_scenario(sc))
    assert truth.summary["kpis"]["max_depth_m"] > plain.summary["kpis"]["max_depth_m"]  # the scale acts
    res = calibrate(sc, obs, ["rain_scale=0.5..2.5"], tmp_path / "c", population=10, generations=2, workers=1,
                    progress=False)
    r = res.fit.iloc[0]
    assert r["parameter"] == "rain_scale" and r["low"] <= 1.3 <= r["high"], r
    assert r["high"] - r["low"] < 1.0  # narrower than the prior's 2.0
