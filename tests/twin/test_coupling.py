"""Coupled scenarios (docs/coupling.md): several models on one clock, values handed over by their
declarations. One short flood + station run on the demo city: water poured beside exit S1 from
120 s closes it while passengers are leaving."""
import math

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DEMO_CITY
from twin.core.errors import UserError
from twin.core.state_file import state_from_bytes
from twin.runs.runner import Run, run_one, write_run
from twin.scenario.scenario import load_scenario

DURATION_S = 200
SAVE_AT = (100.0, 160.0)  # before and after the water closes S1
STATION = """
[parameters.station_dispersal]
trains = ["P1 0 500", "P2 0 300"]
release_spread_s = 20
flood_close_depth_m = 0.05
"""
FLOOD = """
[parameters.flood]
cell_size_m = 10.0
rain = "none"
inflow_file = "inflow.csv"
inflow_at = "POINT (500565 3401250)"
"""


def _scenario(folder, models=("flood", "station_dispersal"), coupling=True, extra=""):
    (folder / "inflow.csv").write_text("time_s,q_m3s\n0,0\n120,0\n130,5\n3600,5\n", encoding="utf-8")
    head = (f'[scenario]\nname = "storm at the station"\nmodels = {list(models)!r}\ncity = "{DEMO_CITY}"\n'
            f"duration_s = {DURATION_S}\nseed = 3\n\n[coupling]\nenabled = {str(coupling).lower()}\n")
    body = "".join(t for m, t in (("flood", FLOOD), ("station_dispersal", STATION)) if m in models)
    path = folder / f"{'_'.join(models)}_{coupling}.toml"
    path.write_text(head + body + extra, encoding="utf-8")
    return load_scenario(path)


def _alone(folder, model: str):
    table = {"flood": FLOOD, "station_dispersal": STATION}[model].replace(f"[parameters.{model}]", "[parameters]")
    (folder / "inflow.csv").write_text("time_s,q_m3s\n0,0\n120,0\n130,5\n3600,5\n", encoding="utf-8")
    path = folder / f"{model}.toml"
    path.write_text(f'[scenario]\nname = "alone"\nmodel = "{model}"\ncity = "{DEMO_CITY}"\nduration_s = {DURATION_S}\n'
                    f"seed = 3\n{table}", encoding="utf-8")
    return load_scenario(path)


@pytest.fixture(scope="module")
def coupled(tmp_path_factory):
    """The coupled run in sync-interval slices: when S1 closed and how many had left through it then."""
    folder = tmp_path_factory.mktemp("coupled")
    sc = _scenario(folder)
    run = Run(sc, save_state_at=SAVE_AT)
    m = run.model
    st = m.members["station_dispersal"]
    s1 = [g.id for g in st.station.gates].index("S1")
    closed_at = exited_then = None
    while not run.done:
        run.advance(m.time_s + m.time_quantum_s)
        if closed_at is None and not st.gate_open[s1]:
            closed_at, exited_then = m.time_s, int(st.exited_by_gate[s1])
    return sc, run.result(), closed_at, exited_then, folder


def test_an_exit_the_water_closes_lets_nobody_out_afterwards(coupled):
    sc, result, closed_at, exited_then, _ = coupled
    assert closed_at is not None and 120 < closed_at < DURATION_S, closed_at
    ts = result.timeseries
    by_s1 = ts["station_dispersal.exited_by_gate.S1"]
    assert exited_then > 0  # passengers were leaving through S1 when the water came
    assert (by_s1[ts.time_s >= closed_at] == exited_then).all()
    assert result.summary["kpis"]["station_dispersal.exited_by_gate"]["S1"] == exited_then
    # they left by the other exits instead: S2 took more after the closure than before
    s2 = ts["station_dispersal.exited_by_gate.S2"]
    assert s2.iloc[-1] - s2[ts.time_s <= closed_at].iloc[-1] > 0
    # nobody is lost when an exit closes under them: every passenger released is somewhere, at every row
    st = "station_dispersal."
    where = sum(ts[st + k] for k in ("agents_in_station", "agents_changing_level", "agents_waiting_onward",
                                     "agents_done"))
    assert (where == ts[st + "agents_total"]).all() and ts[st + "agents_total"].iloc[-1] == 800
    exits = ts[[c for c in ts if c.startswith(st + "exited_by_gate.")]].sum(axis=1)
    assert (exits == ts[st + "agents_exited"]).all()


def test_kpis_and_series_are_named_model_dot_kpi(coupled):
    _, result, *_ = coupled
    kpis = result.summary["kpis"]
    assert {"flood.max_depth_m", "station_dispersal.agents_exited"} <= set(kpis)
    assert all(k.split(".", 1)[0] in ("flood", "station_dispersal") for k in kpis)
    assert all(c == "time_s" or c.split(".", 1)[0] in ("flood", "station_dispersal") for c in result.timeseries)
    assert kpis["flood.max_depth_m"] > 0.05


def test_coupling_off_gives_each_model_its_own_numbers_bit_for_bit(coupled, tmp_path):
    sc, on, *_ = coupled
    off = run_one(_scenario(tmp_path, coupling=False))
    for model in ("flood", "station_dispersal"):
        alone = run_one(_alone(tmp_path, model))
        mine = {k[len(model) + 1:]: v for k, v in off.summary["kpis"].items() if k.startswith(model + ".")}
        assert mine == alone.summary["kpis"], model
        cols = [c for c in off.timeseries if c.startswith(model + ".")]
        merged = off.timeseries[["time_s", *cols]].rename(columns=lambda c: c.split(".", 1)[1] if c != "time_s" else c)
        rows = merged[merged.time_s.isin(alone.timeseries.time_s)].reset_index(drop=True)
        pd.testing.assert_frame_equal(rows[list(alone.timeseries.columns)], alone.timeseries, check_dtype=False)
    # and the coupling made a difference: with it on, nobody left through S1 after the water came
    assert (off.summary["kpis"]["station_dispersal.exited_by_gate"]["S1"]
            > on.summary["kpis"]["station_dispersal.exited_by_gate"]["S1"])
    # the flood does not listen to the station: its numbers are the same either way
    assert {k: v for k, v in off.summary["kpis"].items() if k.startswith("flood.")} == \
        {k: v for k, v in on.summary["kpis"].items() if k.startswith("flood.")}


@pytest.mark.parametrize("t", SAVE_AT)
def test_a_coupled_state_continued_ends_like_the_uninterrupted_run(coupled, t):
    sc, result, closed_at, *_ = coupled
    state = state_from_bytes(result.states[t], f"coupled state at {t:g} s")
    assert state.meta["model_name"] == "flood+station_dispersal"
    run = Run(sc, state=state)
    run.run_to_end()
    again = run.result()
    assert again.summary["kpis"] == result.summary["kpis"]
    pd.testing.assert_frame_equal(again.timeseries, result.timeseries)


def test_a_coupled_scenario_writes_one_run_folder(coupled, tmp_path):
    sc, result, *_ = coupled
    out = tmp_path / "run"
    write_run(result, sc, "baseline", sc.seed, {}, out)
    names = {p.name for p in out.iterdir()}
    assert {"flood.max_depth.tif", "station_dispersal.max_density.tif", "flood.impacts.gpkg", "summary.json",
            "timeseries.csv", "scenario.toml"} <= names
    # the resolved scenario it writes runs again as the same coupled scenario
    again = load_scenario(out / "scenario.toml")
    assert again.models == ("flood", "station_dispersal") and again.params_for(None) == sc.params_for(None)


def test_interventions_set_any_models_parameters_and_name_a_department(tmp_path):
    sc = _scenario(tmp_path, extra='\n[[interventions]]\nname = "pumps"\ndepartment = "emergency"\n'
                                   '[interventions.parameters]\n"flood.mobile_pumps_xy" = [500565, 3401250]\n'
                                   '"station_dispersal.closed_gates" = ["S2"]\n')
    iv = sc.intervention("pumps")
    assert iv.department == "emergency"
    p = sc.params_for("pumps")
    assert p["flood.mobile_pumps_xy"] == [500565.0, 3401250.0] and p["station_dispersal.closed_gates"] == ["S2"]
    assert p["coupling.enabled"] is True


@pytest.mark.parametrize("body, words", [
    ('[scenario]\nname = "x"\nmodels = ["flood", "flood"]\ncity = "C"\nduration_s = 60\n', "distinct"),
    ('[scenario]\nname = "x"\nmodels = ["flod"]\ncity = "C"\nduration_s = 60\n', 'unknown model "flod"'),
    ('[scenario]\nname = "x"\nmodels = ["flood"]\nmodel = "flood"\ncity = "C"\nduration_s = 60\n', "both model"),
    ('[scenario]\nname = "x"\nmodels = ["flood"]\ncity = "C"\nduration_s = 60\n[parameters]\ncell_size_m = 5\n',
     '"cell_size_m" is not one of the models'),
    ('[scenario]\nname = "x"\nmodels = ["flood"]\ncity = "C"\nduration_s = 60\n[parameters.flood]\ncel_size_m = 5\n',
     'unknown parameter "flood.cel_size_m"'),
    ('[scenario]\nname = "x"\nmodel = "flood"\ncity = "C"\nduration_s = 60\n[coupling]\nenabled = false\n',
     "[coupling] belongs to a coupled scenario"),
    ('[scenario]\nname = "x"\nmodels = ["flood"]\ncity = "C"\nduration_s = 60\n[coupling]\nenabeld = false\n',
     'unknown parameter "coupling.enabeld"'),
])
def test_bad_coupled_scenarios_are_clear_errors(tmp_path, body, words):
    path = tmp_path / "bad.toml"
    path.write_text(body.replace('"C"', f'"{DEMO_CITY}"'), encoding="utf-8")
    with pytest.raises(UserError) as e:
        load_scenario(path)
    assert words in str(e.value) and str(path) in str(e.value)


def test_the_sync_interval_is_the_least_common_multiple_of_the_time_steps():
    from twin.scenario.coupling import _lcm

    assert _lcm([10.0, 0.05]) == 10.0
    assert _lcm([0.4, 0.6]) == pytest.approx(1.2)
    assert math.isclose(_lcm([3.0, 4.0, 0.5]), 12.0)
    assert np.isfinite(_lcm([1 / 3, 0.25]))


# -- flood to tourists ---------------------------------------------------------------------------------
TOURISTS = """
[parameters.flood]
cell_size_m = 16.0
rain = "uniform"
rain_mm_per_h = 400
[parameters.tourist_flow]
day_start_s = 36000
arrival_rate_per_h = 2000
opening_hours_s = [28800, 64800]
flood_road_closed_depth_m = 0.1
flood_close_depth_m = 0.05
"""


@pytest.fixture(scope="module")
def flooded_tourists(tmp_path_factory):
    """Flood + tourists in 60 s slices: the walking routes and the attractions' closing after each."""
    folder = tmp_path_factory.mktemp("tourists")
    path = folder / "tourists.toml"
    path.write_text(f'[scenario]\nname = "wet day"\nmodels = ["flood", "tourist_flow"]\ncity = "{DEMO_CITY}"\n'
                    f"duration_s = 600\nseed = 5\n{TOURISTS}", encoding="utf-8")
    sc = load_scenario(path)
    run = Run(sc)
    m = run.model
    tf = m.members["tourist_flow"]
    checks = []
    while not run.done:
        run.advance(m.time_s + 60)
        checks.append((m.time_s, tf._closed_edges.copy(), tf.net.T[0].copy(), tf.net.routes))
    return sc, run, tf, checks


def test_no_walking_route_uses_a_road_while_the_water_on_it_is_too_deep(flooded_tourists):
    _, _, tf, checks = flooded_tourists
    g = tf.net.graph
    node_at = {tuple(np.round(xy, 6)): k for k, xy in enumerate(g.node_xy)}
    assert any(closed.any() for _, closed, _, _ in checks)  # the water closed roads
    assert np.isinf(checks[-1][2]).any() or (checks[-1][2] > checks[0][2] + 1e-9).any()  # and lengthened walks
    for t, closed, T, routes in checks:
        shut = {frozenset((int(g.edge_u[e]), int(g.edge_v[e]))) for e in np.flatnonzero(closed)}
        open_edges = {frozenset((int(u), int(v))) for u, v, c in zip(g.edge_u, g.edge_v, closed) if not c}
        P = tf.net.P
        for k in np.flatnonzero(np.isfinite(T.ravel())):
            a, b = divmod(int(k), P)
            if a == b:
                continue
            xy = routes.xy[routes.start[k]:routes.end[k]][1:-1]  # the road nodes between the access walks
            nodes = [node_at[tuple(np.round(p, 6))] for p in xy]
            for u, v in zip(nodes, nodes[1:]):
                pair = frozenset((u, v))
                assert pair not in shut or pair in open_edges, (t, a, b)  # a parallel open edge may join them


def test_attractions_the_water_reaches_close_and_admit_nobody_afterwards(flooded_tourists):
    from agents.tourism import layout as L

    _, run, tf, _ = flooded_tourists
    w = tf.engine.world
    closed = np.flatnonzero(~np.isnan(tf.flood_closed_at))
    assert len(closed) > 0
    n = int(w.ctr[L.C_NVISITS])
    vi, vf = w.vi[:n], w.vf[:n]
    for a in closed:
        entered = vf[vi[:, L.V_ATTR] == a, L.V_START]
        entered = entered[np.isfinite(entered)]
        assert (entered <= tf.flood_closed_at[a] + 1e-9).all(), a
    kpis = run.result().summary["kpis"]
    assert set(kpis["tourist_flow.people_in_water"]) == {"H1", "H2", "H3", "H4", "H5", "H6"}
    assert sum(kpis["tourist_flow.people_in_water"].values()) > 0


def test_hazard_classes_follow_the_aidr_limits():
    from agents.water_hazard import hazard_class

    d = np.array([0.0, 0.2, 0.2, 0.4, 0.2, 1.0, 1.0, 1.5, 3.0, 3.0, 5.0, np.nan])
    v = np.array([0.0, 1.0, 1.9, 1.0, 2.5, 0.5, 0.7, 0.5, 1.0, 1.5, 0.1, 1.0])
    # dry, H1, H2 (d·v 0.38), H2, H5 (v > 2), H3, H4 (d·v 0.7), H4, H5, H6 (d·v 4.5), H6 (d > 4), dry
    assert hazard_class(d, v).tolist() == [0, 1, 2, 2, 5, 3, 4, 4, 5, 6, 6, 0]


# -- the platform with a coupled scenario of two small models ------------------------------------------
def _toy_pair(folder, city, replications=2):
    path = folder / "pair.toml"
    path.write_text(f'[scenario]\nname = "pair"\nmodels = ["toy", "arrivals"]\ncity = "{city}"\nduration_s = 10\n'
                    f"seed = 4\nreplications = {replications}\n\n[parameters.toy]\nwalkers = 10\n"
                    '\n[[interventions]]\nname = "police: faster"\ndepartment = "police"\n[interventions.parameters]\n'
                    '"toy.speed_mps" = 2.0\n'
                    '\n[[interventions]]\nname = "transport: more"\ndepartment = "transport"\n[interventions.parameters]\n'
                    '"arrivals.demand_scale" = 2.0\n'
                    '\n[[interventions]]\nname = "together"\ndepartment = "all"\n[interventions.parameters]\n'
                    '"toy.speed_mps" = 2.0\n"arrivals.demand_scale" = 2.0\n', encoding="utf-8")
    return path


def test_compare_takes_a_coupled_scenario(tmp_path, tiny_city, capsys):
    from twin.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", str(_toy_pair(tmp_path, tiny_city)), "--workers", "1", "--quiet", "--out", str(out)]) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["variant"]) == {"baseline", "police: faster", "transport: more", "together"}
    assert (table["n"] == 2).all() and {"toy.walkers_done", "arrivals.arrived"} <= set(table["kpi"])
    assert all(k.split(".", 1)[0] in ("toy", "arrivals") for k in table["kpi"])
    assert (out / "report.html").is_file()
    # departments alone and together: these two models do not talk to each other, so acting together
    # is exactly the sum of acting alone (an interaction of zero), and each effect is there
    together = pd.read_csv(out / "together.csv").set_index("kpi")
    assert together.loc["arrivals.arrived", "together"] > 0
    assert together.loc["arrivals.arrived", "together"] == pytest.approx(together.loc["arrivals.arrived", "sum_alone"])
    assert together["interaction"].abs().max() < 1e-9 and (together["n"] == 2).all()


def test_the_session_runs_a_coupled_scenario_and_shows_every_models_agents(tmp_path, tiny_city):
    from twin.session import Session

    s = Session(runs_dir=tmp_path / "runs")
    assert s.open_scenario(_toy_pair(tmp_path, tiny_city))
    run = s.start_run()
    run.advance()
    frame = s.frame
    names = {s.model_cls.state_names[k] for k in np.unique(frame.states)}
    assert names and all(n.startswith(("toy.", "arrivals.")) for n in names)
    assert len(np.unique(frame.ids)) == len(frame.ids)
    assert s.result.summary["model"] == "toy+arrivals"
    assert {"toy.walkers_done", "arrivals.arrived"} <= set(s.result.summary["kpis"])


@pytest.mark.slow  # about 10 s, mostly the branch report's plots; the coupled state it branches from is tested above
def test_branch_takes_a_coupled_scenario(tmp_path, tiny_city):
    from twin.cli import main

    path = _toy_pair(tmp_path, tiny_city)
    path.write_text(path.read_text().replace("duration_s = 10", "duration_s = 30"), encoding="utf-8")
    out = tmp_path / "branch"
    assert main(["branch", str(path), "--at", "10", "--intervention", "together", "--replications", "2",
                 "--out", str(out)]) == 0
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["variant"]) == {"baseline", "together"}
    row = table[(table.variant == "together") & (table.kpi == "arrivals.arrived")].iloc[0]
    assert row["delta_vs_baseline"] > 0 and row["unit"] == "persons"
    assert table.loc[table.kpi == "toy.done_by_half.west", "unit"].eq("-").all()  # a keyed KPI's unit
