"""The session model without Qt: what is open, a run driven headless, time, selection, alerts, events."""
import json
from pathlib import Path

import numpy as np
import pytest

from tests.factories import write_scenario
from twin.session import CANCELLED, EVENTS, FINISHED, PAUSED, RUNNING, Session

BODY = ('[parameters]\nwalkers = 60\ndistance_m = 80.0\n\n[[interventions]]\nname = "fast"\n'
        "[interventions.parameters]\nspeed_mps = 3.0\n\n[alerts.many_done]\namber = 15\nred = 45\n")


@pytest.fixture(scope="module")
def scenario_file(tiny_city, tmp_path_factory):
    return write_scenario(tmp_path_factory.mktemp("session"), tiny_city, BODY, duration_s=120, seed=5)


@pytest.fixture
def session(tmp_path):
    s = Session(runs_dir=tmp_path / "runs")
    s.seen = []
    s.events.connect(s.seen.append)
    return s


def types(events) -> list[str]:
    return [e.type for e in events]


def test_every_event_has_an_emitter_and_a_documented_payload():
    s = Session()
    for name, payload in EVENTS.items():
        assert getattr(s.events, name).name == name and payload


def test_open_a_scenario_then_its_city_model_parameters_and_alerts(session, scenario_file):
    assert session.open_scenario(scenario_file)
    assert types(session.seen) == ["city_opened", "timeline_reset", "log", "scenario_changed"]
    opened, changed = session.seen[0], session.seen[-1]
    assert opened.city is session.city and opened.city.name == "Tiny" and opened.scenario is session.scenario
    assert opened.models == ()  # a scenario names its model: nothing to choose
    assert opened.load_s >= 0 and session.seen[2].text.startswith("opened city 'Tiny' (3 buildings")
    assert changed.model_cls.name == "toy" and changed.model_cls is session.model_cls
    assert changed.variants == ["baseline", "fast"] and not changed.editable and changed.models == ["toy"]
    assert changed.params["walkers"] == 60 and changed.params["speed_mps"] == 1.0
    assert [r.name for r in session.alerts.rules] == ["many_done", "crowded_east"]
    assert session.alerts.rules[0].amber == 15  # the scenario's [alerts] edit of the model's default
    assert session.model_name == "toy" and session.status == "idle"


def test_a_variant_shows_its_parameters(session, scenario_file):
    session.open_scenario(scenario_file)
    session.seen.clear()
    assert session.choose_variant("fast")
    (e,) = session.seen
    assert e.type == "variant_changed" and e.variant == "fast" and e.params["speed_mps"] == 3.0
    assert session.variant == "fast" and session.params["speed_mps"] == 3.0
    assert session.choose_variant("baseline") and session.variant is None and session.params["speed_mps"] == 1.0
    session.seen.clear()
    assert not session.choose_variant("nope")
    assert types(session.seen) == ["error"] and "nope" in session.seen[0].message


def test_a_city_alone_offers_the_models_and_a_choice_makes_a_scenario(session, tiny_city):
    assert session.open_path(tiny_city)
    opened = session.seen[0]
    assert opened.type == "city_opened" and opened.scenario is None and "toy" in opened.models
    assert session.scenario is None and session.model_cls is None
    assert not session.choose_model("no_such_model")
    assert session.seen[-1].type == "log" and "unavailable" in session.seen[-1].text
    session.seen.clear()
    assert session.choose_model("toy")
    (e,) = session.seen
    assert e.type == "scenario_changed" and e.editable and "toy" in e.models
    assert session.scenario.name == "toy on Tiny" and session.scenario.load_city() is session.city


def test_bad_input_is_an_error_event_and_changes_nothing(session, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[scenario\n")
    assert not session.open_scenario(bad)
    assert not session.open_city(tmp_path / "nowhere")
    assert not session.open_path(tmp_path / "x.txt")
    assert types(session.seen) == ["error"] * 3
    assert str(bad) in session.seen[0].message and "x.txt" in session.seen[2].message
    assert session.city is None and session.scenario is None
    assert session.start_run() is None and "Open a scenario" in session.seen[-1].message


def test_a_headless_run_reports_frames_rows_progress_and_gives_the_cli_numbers(session, scenario_file, tmp_path):
    from twin.runs.runner import run_one

    session.open_scenario(scenario_file)
    session.seen.clear()
    run = session.start_run(params={"walkers": 40}, duration_s=60, seed=7, out_dir=tmp_path / "out")
    assert run is session.run and session.status == RUNNING and session.running
    first = types(session.seen)
    assert first[:4] == ["timeline_reset", "run_started", "run_status", "log"]
    started = session.seen[1]
    assert started.seed == 7 and started.params == {"walkers": 40} and started.out_dir == tmp_path / "out"
    assert started.scenario.duration_s == 60
    # starting reports the first frame: the timeline grows, the view follows it live
    assert first[4:] == ["frames_changed", "alerts_changed", "time_changed", "kpi_rows", "progress"]
    t = session.seen[6]
    assert (t.index, t.time_s, t.live, t.by) == (0, 0.0, True, "run") and t.frame is session.frame

    session.seen.clear()
    run.advance(20.0)
    assert run.model.time_s == pytest.approx(20.0) and session.time_s == pytest.approx(20.0)
    counts = [e.count for e in session.seen if e.type == "frames_changed"]
    assert counts == sorted(counts) and counts[-1] == len(run.recorder) == session.index + 1
    shown = [e for e in session.seen if e.type == "time_changed"]
    assert all(e.live and e.by == "run" for e in shown)
    assert [e.time_s for e in shown] == sorted(e.time_s for e in shown)
    progress = [e for e in session.seen if e.type == "progress"]
    assert progress[-1].time_s == pytest.approx(20.0) and progress[-1].duration_s == 60.0
    rows = [r for e in session.seen if e.type == "kpi_rows" for r in e.rows]
    assert [r["time_s"] for r in rows] == [5.0, 10.0, 15.0, 20.0]  # report_interval_s = 5

    # pause: nothing advances; a step advances step_s simulated seconds and stays paused
    session.set_paused(True)
    assert session.status == PAUSED and session.seen[-2].type == "run_status" and session.seen[-1].text == "paused"
    run.advance(40.0)
    assert run.model.time_s == pytest.approx(20.0)
    session.set_step(3.0)
    session.step()
    assert run.model.time_s == pytest.approx(23.0) and session.status == PAUSED
    session.set_paused(False)
    assert session.status == RUNNING
    session.seen.clear()
    run.advance()
    assert not session.running and session.status == FINISHED
    order = [n for n in types(session.seen) if n in ("run_status", "run_finished", "output_ready")]
    assert order == ["run_status", "run_finished", "output_ready"]
    done = next(e for e in session.seen if e.type == "run_finished")
    assert done.result is run.result is session.result and done.out_dir == tmp_path / "out"
    assert session.last_output == tmp_path / "out"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["seed"] == 7 and summary["kpis"] == json.loads(json.dumps(run.result.summary["kpis"]))
    # the same numbers as the command line (a pause and a step change nothing)
    cli = run_one(started.scenario, None, 7, {"walkers": 40})
    assert cli.summary["kpis"] == run.result.summary["kpis"]
    # and an export writes them again
    out = session.export_run(tmp_path / "export")
    assert (out / "timeseries.csv").is_file() and session.last_output == out


def test_seek_steps_and_live_and_alerts_scrubbed_back_log_nothing(session, scenario_file):
    session.open_scenario(scenario_file)
    run = session.start_run(duration_s=120)
    run.advance(100.0)  # 60 walkers, 80 m at about 1 m/s
    n = len(run.recorder)
    logged = [ev for e in session.seen if e.type == "alerts_changed" for ev in e.events]
    many = [ev for ev in logged if ev.alert.rule.name == "many_done"]
    assert [ev.alert.level for ev in many][:2] == [1, 2]  # amber at 15 walkers done, red at 45
    assert [ev.time_s for ev in logged] == sorted(ev.time_s for ev in logged)
    assert session.alerts.kpi_level("walkers_done") == 2
    spots = session.hot_spots()
    assert spots and "many done" in spots[0][2]

    session.seen.clear()
    session.seek(2)
    alerts, seek = session.seen
    assert (seek.type, seek.index, seek.live, seek.by) == ("time_changed", 2, False, "seek")
    assert seek.frame is run.recorder[2] and session.frame is run.recorder[2]
    assert alerts.type == "alerts_changed" and alerts.events == [] and session.alerts.kpi_level("walkers_done") == 0
    run.advance(105.0)  # not following live: the view stays where it is
    assert session.index == 2 and len(run.recorder) > n
    assert session.seen[-1].type in ("frames_changed", "kpi_rows", "progress")
    session.step_time(+1)
    assert session.index == 3 and not session.following_live
    session.step_time(-10)
    assert session.index == 0
    session.go_live()
    assert session.following_live and session.index == len(run.recorder) - 1
    assert session.alerts.kpi_level("walkers_done") == 2
    run.advance(110.0)
    assert session.index == len(run.recorder) - 1 and session.time_s == pytest.approx(110.0)


def test_cancel_and_a_stale_run_reports_nothing(session, scenario_file):
    session.open_scenario(scenario_file)
    old = session.start_run(duration_s=120)
    old.advance(10.0)
    session.seen.clear()
    assert session.cancel_run()
    assert types(session.seen) == ["run_status", "run_finished"]
    assert session.seen[0].status == CANCELLED and session.seen[1].result is None
    assert not session.running and session.status == CANCELLED
    new = session.start_run(duration_s=30)
    assert new is not old and session.index == 0
    session.seen.clear()
    frame = old.recorder[len(old.recorder) - 1]
    session.report_frame(old, frame)
    session.report_finished(old, None)
    session.report_failed(old, "boom")
    assert session.seen == [] and session.frame is not frame and session.status == RUNNING
    session.report_failed(new, "boom")
    assert types(session.seen) == ["run_status", "error"] and session.seen[1].message == "the run failed: boom"


def test_a_city_opened_while_running_stops_the_run_and_resets_the_timeline(session, scenario_file, tiny_city):
    session.open_scenario(scenario_file)
    run = session.start_run()
    run.advance(10.0)
    session.seen.clear()
    assert session.open_city(tiny_city)
    assert types(session.seen)[:3] == ["run_status", "run_finished", "city_opened"]
    assert session.frame is None and session.index == -1 and session.following_live
    assert session.alerts.log == []


def test_selection(session):
    info = {"layer": "buildings", "name": "Tower", "height_m": 30.0}
    session.select(info)
    assert session.selection is info and session.seen[-1].type == "selection_changed"
    assert session.seen[-1].info is info
    session.select(None)
    assert session.selection is None and session.seen[-1].info is None


def test_subscribe_unsubscribe_order_and_a_failing_subscriber(session):
    calls = []
    a = session.events.selection_changed.connect(lambda e: calls.append(("a", e.type)))
    session.events.selection_changed.connect(lambda e: calls.append(("b", e.info)))
    session.events.connect(lambda e: calls.append(("any", e.type)))
    session.select({"x": 1})
    assert calls == [("a", "selection_changed"), ("b", {"x": 1}), ("any", "selection_changed")]
    calls.clear()
    session.events.selection_changed.disconnect(a)
    session.events.selection_changed.disconnect(a)  # twice: ignored
    session.select(None)
    assert calls == [("b", None), ("any", "selection_changed")]
    calls.clear()
    session.events.disconnect()  # everyone, everywhere
    session.select({"y": 2})
    assert calls == [] and session.selection == {"y": 2}
    assert len(session.events.selection_changed) == 0 and len(session.events.any) == 0

    def broken(e):
        raise RuntimeError("subscriber bug")

    session.events.log.connect(broken)
    session.events.log.connect(lambda e: calls.append(e.text))
    with pytest.raises(RuntimeError, match="subscriber bug"):
        session.log("hello")
    assert calls == ["hello"]  # the others still had it


@pytest.mark.slow
def test_the_session_module_never_imports_qt():
    import subprocess
    import sys

    code = ("import sys, twin.session; "
            "print(any(m.split('.')[0] in ('PySide6', 'pyvistaqt', 'app') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_frames_of_a_headless_run_copy_the_model_state(session, scenario_file):
    session.open_scenario(scenario_file)
    run = session.start_run(duration_s=30)
    run.advance(30.0)
    rec = run.recorder
    assert rec.interval_s == 1.0  # the model's time quantum (its 5 s report interval is over 30 s / 600)
    assert not np.allclose(rec[0].positions, rec[len(rec) - 1].positions)
    assert rec[len(rec) - 1].kpis["walkers_done"] == run.result.summary["kpis"]["walkers_done"]


def test_a_run_writes_under_the_runs_folder_by_default(monkeypatch, tmp_path, scenario_file):
    monkeypatch.setenv("CITYTWIN_RUNS_DIR", str(tmp_path / "runs"))
    s = Session()
    assert s.runs_dir == tmp_path / "runs"
    s.open_scenario(scenario_file)
    s.choose_variant("fast")
    run = s.start_run(variant=s.variant, duration_s=5)
    run.advance()
    assert run.out_dir.parent == tmp_path / "runs" and run.out_dir.name.startswith("test_fast_")
    assert (run.out_dir / "summary.json").is_file() and s.last_output == run.out_dir


def test_the_run_source_is_the_run_to_replay(session, scenario_file):
    assert session.run_source() is None
    session.open_scenario(scenario_file)
    session.start_run(variant="fast", params={"walkers": 40}, seed=9, duration_s=30)
    src = session.run_source()
    assert (src.label, src.variant, src.seed, src.overrides) == ("fast", "fast", 9, {"walkers": 40})
    assert src.scenario.duration_s == 30 and src.state is None


def test_a_follower_follows_the_users_moves_in_time_until_its_run_ends_early(session, scenario_file, tiny_city):
    from twin.session import RunFollower

    session.open_scenario(scenario_file)
    run = session.start_run(duration_s=120)
    moves, ends = [], []
    f = RunFollower(session, moves.append, ends.append)
    run.advance(30.0)
    assert moves == []  # the run's own frames are not moves
    session.seek(2)
    session.go_live()
    assert moves == [pytest.approx(run.recorder[2].time_s), None]
    session.set_paused(True)
    assert ends == [] and f.detached is None
    session.cancel_run()
    assert ends == ["its run was cancelled"] and f.detached == ends[0]
    session.seek(1)  # the recorded frames of a cancelled run can still be shown, but no longer followed
    session.open_city(tiny_city)
    assert moves == [pytest.approx(run.recorder[2].time_s), None] and len(ends) == 1

    # another run, or another city, detaches a follower too; close() stops it listening
    session.open_scenario(scenario_file)
    session.start_run(duration_s=20).advance()
    g = RunFollower(session, moves.append, ends.append)
    session.seek(0)
    assert moves[-1] == pytest.approx(0.0) and g.detached is None  # a finished run is still followed
    session.start_run(duration_s=20)
    assert ends[-1] == "another run was started"
    h = RunFollower(session, moves.append, ends.append)
    session.open_city(tiny_city)
    assert ends[-1] == "its run was cancelled" and h.detached == ends[-1]
    session.open_scenario(scenario_file)
    session.start_run(duration_s=20).advance()
    k = RunFollower(session, moves.append, ends.append)
    k.close()
    n_moves, n_ends = len(moves), len(ends)
    session.seek(0)
    session.start_run(duration_s=20)
    assert (len(moves), len(ends)) == (n_moves, n_ends) and k.detached is None


def test_a_finished_run_logs_its_warnings_and_the_inputs_it_estimated(session, tiny_city, tmp_path):
    scenario = write_scenario(tmp_path, tiny_city, "[parameters]\ncell_size_m = 10.0\nevacuate = false\n",
                              model="flood", duration_s=60)
    session.open_scenario(scenario)
    run = session.start_run(out_dir=tmp_path / "out")
    session.seen.clear()
    run.advance()
    assert session.status == FINISHED
    logged = [e.text for e in session.seen if e.type == "log"]
    assert any(t.startswith("Inputs not from the city's data (") for t in logged), logged
    assert any(t.startswith("  estimated: residents per building: 3") for t in logged), logged
    # the same lines the command line prints after the KPIs
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    from twin.runs.runner import summary_caveats

    assert [t for t in logged if t in summary_caveats(summary)] == summary_caveats(summary)
