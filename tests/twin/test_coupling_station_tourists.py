"""Station to tourists (docs/coupling.md): passengers who are tourists leave the station through its
exits and arrive in the tourist model at that exit. A short station + tourists run on the demo city."""
import numpy as np
import pandas as pd
import pytest

from tests.conftest import DEMO_CITY
from twin.core.state_file import state_from_bytes
from twin.runs.runner import Run, run_one
from twin.scenario.scenario import load_scenario

DURATION_S = 150
SAVE_AT = 90.0  # while tourists are still leaving the station
SYNC_S = 10.0  # as with a flood in the run
MODELS = {
    "station_dispersal": "trains = [\"P1 0 300\", \"P2 0 200\"]\nrelease_spread_s = 20\ntourist_share = 0.3\n",
    "tourist_flow": "day_start_s = 63000\narrival_rate_per_h = 300\n",
}


def _scenario(folder, coupling=True):
    body = "".join(f"[parameters.{m}]\n{t}" for m, t in MODELS.items())
    path = folder / f"station_tourists_{coupling}.toml"
    path.write_text(f'[scenario]\nname = "tourists off the trains"\nmodels = {list(MODELS)!r}\ncity = "{DEMO_CITY}"\n'
                    f"duration_s = {DURATION_S}\nseed = 5\n\n[coupling]\nenabled = {str(coupling).lower()}\n"
                    f"interval_s = {SYNC_S}\n{body}",
                    encoding="utf-8")
    return load_scenario(path)


def _alone(folder, model):
    path = folder / f"{model}.toml"
    path.write_text(f'[scenario]\nname = "alone"\nmodel = "{model}"\ncity = "{DEMO_CITY}"\nduration_s = {DURATION_S}\n'
                    f"seed = 5\n[parameters]\n{MODELS[model]}", encoding="utf-8")
    return load_scenario(path)


@pytest.fixture(scope="module")
def coupled(tmp_path_factory):
    """The coupled run in sync-interval slices: at each, what the station published (tourists out
    per exit so far) and what the tourist model took."""
    sc = _scenario(tmp_path_factory.mktemp("station_tourists"))
    run = Run(sc, save_state_at=(SAVE_AT,))
    m = run.model
    st, tf = m.members["station_dispersal"], m.members["tourist_flow"]
    slices = []
    while not run.done:
        run.advance(m.time_s + m.time_quantum_s)
        out = st.publish("station_exit__tourists_left")
        slices.append((m.time_s, dict(zip(out.ids, out.values["tourists_left"])),
                       dict(zip(tf.arrival_ids, tf.handed_over.tolist()))))
    return sc, run.result(), st, tf, slices


def test_tourists_leaving_the_station_arrive_in_the_city_at_their_exit(coupled):
    from agents.tourism import layout as L

    _, result, st, tf, slices = coupled
    # at every sync point, the tourists who arrived at each exit are those who left through it
    for t, published, taken in slices:
        assert published == pytest.approx(taken), t
    kpis = result.summary["kpis"]
    left = kpis["station_dispersal.tourists_exited"]
    assert left > 20 and kpis["tourist_flow.tourists_from_station"] == left
    assert left == int((st.is_tourist & np.isfinite(st.t_exit)).sum())
    # people are conserved: the groups handed over hold exactly them, each at the exit it came out of
    w = tf.engine.world
    handed = w.gi[tf.engine.n_drawn:]
    assert handed[:, L.G_SIZE].sum() == left
    exit_of_entry = np.array(tf.engine.entry_ids, dtype=object)[handed[:, L.G_ENTRY]]
    per_exit = pd.Series(handed[:, L.G_SIZE]).groupby(exit_of_entry).sum().to_dict()
    gates = [g.id for g in st.station.gates]
    by_gate = np.bincount(st.gate_of[st.is_tourist & (st.gate_of >= 0)], minlength=len(gates))
    assert per_exit == {g: n for g, n in zip(gates, by_gate.tolist()) if n}
    # they are in the tourist model's totals, and arrived at the first sync point after leaving
    assert kpis["tourist_flow.tourists_total"] >= left
    assert (handed[:, L.G_STATE] != L.NOT_ARRIVED).all()
    arrive = w.gf[tf.engine.n_drawn:, L.F_ARRIVE] - tf.start_s
    first_out = np.nanmin(st.t_exit[st.is_tourist])
    assert first_out - 1e-6 <= arrive.min() <= first_out + SYNC_S + 1e-6
    assert np.allclose(arrive / SYNC_S, np.round(arrive / SYNC_S))


def test_a_state_with_handed_over_tourists_continues_exactly_like_the_uninterrupted_run(coupled):
    sc, result, *_ = coupled
    (t, data), = result.states.items()
    assert t == pytest.approx(SAVE_AT)
    state = state_from_bytes(data, f"coupled state at {t:g} s")
    handed = state.meta["model"]["members"]["tourist_flow"]
    assert "tourist_flow.handed_over" in state.arrays and state.arrays["tourist_flow.handed_over"].sum() > 0
    assert handed["time_s"] == pytest.approx(SAVE_AT)
    run = Run(sc, state=state)
    run.run_to_end()
    again = run.result()
    assert again.summary["kpis"] == result.summary["kpis"]
    pd.testing.assert_frame_equal(again.timeseries, result.timeseries)


def test_without_the_coupling_the_station_and_the_tourists_run_as_alone(coupled, tmp_path):
    _, on, *_ = coupled
    off = run_one(_scenario(tmp_path, coupling=False))
    for model in MODELS:
        alone = run_one(_alone(tmp_path, model))
        mine = {k[len(model) + 1:]: v for k, v in off.summary["kpis"].items() if k.startswith(model + ".")}
        assert mine == alone.summary["kpis"], model
    assert off.summary["kpis"]["tourist_flow.tourists_from_station"] == 0
    assert on.summary["kpis"]["tourist_flow.tourists_total"] > off.summary["kpis"]["tourist_flow.tourists_total"]
    # the station does not listen to the tourists: its numbers are the same either way
    assert {k: v for k, v in off.summary["kpis"].items() if k.startswith("station_dispersal.")} == \
        {k: v for k, v in on.summary["kpis"].items() if k.startswith("station_dispersal.")}


@pytest.mark.parametrize("edit, words", [
    (lambda a: a.update({"tourist_flow.engine_state.gf": a["tourist_flow.engine_state.gf"][:-1]}),
     "'engine_state.gf' does not have the rows"),
    (lambda a: a["tourist_flow.engine_state.gi"].__setitem__((-1, 0), 0), "are not_arrived"),
    (lambda a: a.update({"tourist_flow.handed_over": a["tourist_flow.handed_over"][:-1]}), "'handed_over' has shape"),
], ids=["a_group_table_short", "a_handed_over_group_not_arrived", "counts_of_fewer_exits"])
def test_a_state_whose_handed_over_groups_do_not_add_up_is_refused(coupled, edit, words):
    from twin.core.errors import UserError

    sc, result, *_ = coupled
    (_, data), = result.states.items()
    state = state_from_bytes(data, "coupled state")
    arrays = {k: v.copy() for k, v in state.arrays.items()}
    edit(arrays)
    with pytest.raises(UserError) as e:
        Run(sc).model.set_state(arrays, state.meta["model"], "edited state")
    assert words in str(e.value) and "edited state" in str(e.value)
