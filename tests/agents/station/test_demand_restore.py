"""A run continued with another demand_scale (the particle filter's parameter moves, docs/assimilation.md):
those already released keep their state, the passengers yet to come are the new demand's, and the
continued run is itself saved and restored exactly."""
from __future__ import annotations

import numpy as np
import pytest

from agents.station.model import StationDispersalModel
from twin.core.errors import UserError
from twin.core.state_file import restore_state, state_bytes, state_from_bytes

from tests.factories import state_context

from .conftest import make_city

WALK_ONLY = dict(share_walk=1.0, share_metro=0.0, share_bus=0.0, share_taxi=0.0, release_spread_s=20.0)
CITY = make_city()  # sources P1 (150 at 0 s) and P2 (150 at 20 s)


def model(**params):
    return StationDispersalModel(CITY, duration_s=90, seed=1, **(WALK_ONLY | params))


def saved(m):
    return state_from_bytes(state_bytes(m, state_context(m)))


def restored(state, **params):
    m = model(**params)
    restore_state(m, state)
    return m


def reseeded_copies(state, n):
    """Replications 1..n of ``state``, as a branch's or a particle filter's copies are made."""
    out = []
    for k in range(1, n + 1):
        r = restored(state)
        r.reseed((1, k))
        out.append(r)
    return out


def test_a_run_continues_with_more_or_less_demand_for_the_passengers_yet_to_come():
    m = model()
    m.advance_to(25)  # P1's train has arrived (150), P2's is arriving
    before = m.current_kpis()["agents_total"]
    assert 150 < before < 300
    state = saved(m)
    more, less = restored(state, demand_scale=1.5), restored(state, demand_scale=0.5)
    for r in (more, less):
        assert r.time_s == m.time_s and r.current_kpis()["agents_total"] == before
        assert r.src_sizes[0] == 150  # P1 released them all: a lower demand cannot take them back
        # P2 is releasing: its passengers are on the platform, on its schedule (no burst of a new demand)
        assert r.src_sizes[1] == 150 and np.array_equal(r.release_t, m.release_t)
    # the walkers are where they were
    n = m.crowd.n
    assert more.crowd.n == n and np.array_equal(more.crowd.x[:n], m.crowd.x[:n])
    for r in (m, more, less):
        r.advance_to(45)  # every train has released everyone by 40 s
    assert [r.current_kpis()["agents_total"] for r in (less, m, more)] == [300, 300, 300]
    early = model()
    early.advance_to(10)  # P2's train is yet to come: it takes the new demand
    for scale, p2 in ((1.5, 225), (0.5, 75)):
        r = restored(saved(early), demand_scale=scale)
        assert r.src_sizes == [150, p2]
        r.advance_to(45)
        assert r.current_kpis()["agents_total"] == 150 + p2


def test_passengers_keep_their_draws_when_the_run_continues_with_another_demand():
    """A passenger's speed, mode, destination and route taste are drawn from their own train's
    streams: walkers already in the station do not change their minds when the demand changes, and
    the passengers of a train yet to come keep theirs where the train keeps them."""
    mixed = dict(share_walk=0.4, share_metro=0.3, share_bus=0.2, share_taxi=0.1)
    early = model(**mixed)
    early.advance_to(10)  # P1 releasing, P2 yet to come
    r = restored(saved(early), demand_scale=1.5, **mixed)
    assert r.src_sizes == [150, 225]
    for name in ("v0", "mode", "dest", "route_noise", "guided", "walks_escalator"):
        a, b = getattr(early, name), getattr(r, name)
        assert np.array_equal(a[:150], b[:150]), name  # P1's, all of them
        assert np.array_equal(a[150:300], b[150:300]), name  # P2's first 150 of 225
    assert len(set(r.mode[:150].tolist())) > 2  # the draws are really mixed


def test_a_continued_run_with_its_new_demand_is_saved_and_restored_exactly():
    m = model()
    m.advance_to(10)
    first = restored(saved(m), demand_scale=1.3)
    first.advance_to(40)
    again = restored(saved(first), demand_scale=1.3)
    first.advance_to(60)
    again.advance_to(60)
    assert again.current_kpis() == first.current_kpis()
    assert again.timeseries().equals(first.timeseries())


def test_a_damaged_passenger_count_is_refused_naming_it():
    m = model()
    m.advance_to(25)
    state = saved(m)
    state.meta["model"]["attrs"]["src_sizes"] = [150, -3]
    with pytest.raises(UserError, match="src_sizes"):
        restored(state)


def test_a_state_saved_with_a_timetable_in_another_folder_continues_as_the_same_run(tmp_path):
    """The timetable parameter holds the file's absolute path; a state saved from a scenario in one
    folder continues from a copy of it in another (same file content) exactly as it would there."""
    rows = "platform,arrival_s,passengers\nP1,0,120\nP2,15,120\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "trains.csv").write_text(rows)
    m = model(timetable=str(tmp_path / "a" / "trains.csv"))
    m.advance_to(25)
    state = saved(m)
    here = restored(state, timetable=str(tmp_path / "a" / "trains.csv"))
    there = restored(state, timetable=str(tmp_path / "b" / "trains.csv"))
    assert there.same_params(state.meta["model"]["params"])
    (tmp_path / "b" / "trains.csv").write_text(rows.replace("120", "121"))
    assert not there.same_params(state.meta["model"]["params"])  # another file's content: another run
    for r in (here, there):
        r.advance_to(50)
    assert here.current_kpis() == there.current_kpis()
    assert np.array_equal(here.crowd.tgt[: here.crowd.n], there.crowd.tgt[: there.crowd.n])


def test_replications_of_one_state_walk_their_own_way_and_each_restores_exactly():
    """Reseeded copies of a state (a particle filter's resampled members, a forecast's members) get a
    heading noise of their own: they do not walk alike step for step. A reseeded run's own state
    continues exactly."""
    m = model()
    m.advance_to(25)
    state = saved(m)
    copies = reseeded_copies(state, 2)
    assert copies[0].crowd.noise_key != copies[1].crowd.noise_key
    for r in copies:
        r.advance_to(35)
    n = min(r.crowd.n for r in copies)
    assert not np.array_equal(copies[0].crowd.x[:n], copies[1].crowd.x[:n])
    again = restored(saved(copies[0]))
    assert again.crowd.noise_key == copies[0].crowd.noise_key
    for r in (copies[0], again):
        r.advance_to(45)
    assert np.array_equal(again.crowd.x[: again.crowd.n], copies[0].crowd.x[: copies[0].crowd.n])
    old = saved(m)  # a state without the key (saved by a version before it) is refused, naming it
    del old.meta["model"]["attrs"]["crowd.noise_key"]
    with pytest.raises(UserError, match="noise_key"):
        restored(old)


def test_replications_of_one_state_draw_the_passengers_yet_to_come_anew_and_keep_those_released():
    """No two particles share a future (issue 24): reseeded copies of a state keep the released
    passengers' speeds and routes but draw the trains yet to come afresh, each copy its own; a
    copy saved and restored (a resampled child's child) keeps its draws; a state saved before trains
    had keys restores with the model's own draws."""
    m = model()
    m.advance_to(10)  # P1 releasing, P2 yet to come
    (a1, b1), (a2, b2) = m.src_ranges
    state = saved(m)
    copies = reseeded_copies(state, 2)
    for r in copies:
        assert r.train_keys[0] == 0 and r.train_keys[1] > 0  # P1 has begun releasing: it keeps its draws
        assert np.array_equal(r.v0[a1:b1], m.v0[a1:b1]) and np.array_equal(r.route_noise[a1:b1], m.route_noise[a1:b1])
        assert not np.array_equal(r.v0[a2:b2], m.v0[a2:b2])
    assert copies[0].train_keys[1] != copies[1].train_keys[1]
    assert not np.array_equal(copies[0].v0[a2:b2], copies[1].v0[a2:b2])
    for r in copies:
        r.advance_to(30)
    child = restored(saved(copies[0]))
    assert child.train_keys == copies[0].train_keys and np.array_equal(child.v0, copies[0].v0)
    assert np.array_equal(child.route_noise, copies[0].route_noise) and np.array_equal(child.dest, copies[0].dest)
    for r in (copies[0], child):
        r.advance_to(60)
    assert child.current_kpis() == copies[0].current_kpis()
    # with another demand too: the released keep their keyed draws
    more = restored(saved(copies[0]), demand_scale=1.5)
    assert more.train_keys == copies[0].train_keys and np.array_equal(more.v0[a2:b2], copies[0].v0[a2:b2])
    old = saved(m)  # a state saved before trains had keys
    del old.meta["model"]["attrs"]["train_keys"]
    r = restored(old)
    assert r.train_keys == [0, 0] and np.array_equal(r.v0, m.v0)


def test_a_continued_run_counts_as_its_parent_with_the_same_demand_and_never_fewer_with_more():
    """What a particle filter's resampled child must be: restored with its parent's demand it counts at
    the gates exactly what the parent counts; with a higher demand never fewer, in any window, than
    with a lower one (docs/assimilation.md, the station's twin experiment)."""
    parent = model()
    parent.advance_to(10)  # P1 releasing, P2 yet to come
    state = saved(parent)
    less, same, more = (restored(state, demand_scale=d) for d in (0.5, 1.0, 1.5))
    counts = []
    for t in range(15, 91, 5):
        for r in (parent, less, same, more):
            r.advance_to(t)
        counts.append([int(r.exited_by_gate.sum()) for r in (parent, less, same, more)])
    c = np.array(counts)
    assert np.array_equal(c[:, 0], c[:, 2])  # the same demand: the parent's counts, window by window
    assert (np.diff(c[:, 1:], axis=1) >= 0).all()  # less <= same <= more at every window
    assert c[-1, 1] == 150 + 75 and c[-1, 3] == 150 + 225  # and at the end the yet-to-come train's share


def test_a_delay_reported_mid_run_continues_as_a_run_that_knew_it_from_the_start(monkeypatch):
    """A live twin (and each member of a filter) continues from its state when a feed reports a delay:
    the walkers already in the station keep their routes (nobody chooses again, as in the truth, which
    knew nothing to choose by), so the continued run is the run that had the delay from the start,
    count for count. Another variant (other guidance) does make everyone choose again."""
    mixed = dict(share_walk=0.4, share_metro=0.3, share_bus=0.2, share_taxi=0.1)
    delay = dict(train_delays=["P2 30 10"])
    knew = model(**mixed, **delay)
    plain = model(**mixed)
    plain.advance_to(10)
    forced = []
    reroute = StationDispersalModel._reroute
    monkeypatch.setattr(StationDispersalModel, "_reroute",
                        lambda self, force: (forced.append(force), reroute(self, force))[1])
    told = restored(saved(plain), **mixed, **delay)
    assert True not in forced
    restored(saved(plain), **mixed, guidance_share=0.5)
    assert forced[-1] is True
    for t in range(15, 91, 5):
        knew.advance_to(t)
        told.advance_to(t)
        assert told.exited_by_gate.tolist() == knew.exited_by_gate.tolist(), t
        assert np.array_equal(told.crowd.tgt[:told.crowd.n], knew.crowd.tgt[:knew.crowd.n]), t
    assert knew.exited_by_gate.sum() > 0 and knew.release_t[150] >= 50  # P2's train came 30 s late
