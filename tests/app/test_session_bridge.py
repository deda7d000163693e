"""The session model in Qt without a window: its run on the simulation thread (QtRun) and its events
delivered on the GUI thread (SessionBridge), whichever thread emitted them."""
import threading

from tests.factories import write_scenario


def test_events_from_another_thread_reach_handlers_on_the_gui_thread(qapp, qtbot):
    from app.session_qt import SessionBridge
    from twin.session import Session

    s = Session()
    bridge = SessionBridge(s)
    seen = []
    bridge.subscribe("selection_changed", lambda e: seen.append((e.info, threading.current_thread().name)))
    s.select({"n": 1})  # on the GUI thread: delivered at once
    assert seen == [({"n": 1}, threading.main_thread().name)]
    t = threading.Thread(target=s.select, args=({"n": 2},), name="feed")
    t.start()
    t.join()
    assert len(seen) == 1  # queued, not run on the feed's thread
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=2000)
    assert seen[1] == ({"n": 2}, threading.main_thread().name)
    bridge.unsubscribe_all()
    s.select({"n": 3})
    assert len(seen) == 2 and len(s.events.selection_changed) == 0


def test_a_session_runs_on_the_simulation_thread_and_reports_on_the_gui_thread(qapp, qtbot, tiny_city, tmp_path):
    from app.session_qt import QtRun, SessionBridge
    from twin.session import FINISHED, Session

    sc = write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 50\n", duration_s=30, seed=2)
    s = Session(QtRun, tmp_path / "runs")
    bridge = SessionBridge(s)
    threads, kinds = set(), []

    def record(e):
        threads.add(threading.current_thread().name)
        kinds.append(e.type)

    for name in ("frames_changed", "time_changed", "progress", "run_status", "run_finished", "kpi_rows"):
        bridge.subscribe(name, record)
    assert s.open_scenario(sc)
    run = s.start_run()
    assert run.worker.thread() is not None
    qtbot.waitUntil(lambda: s.status == FINISHED, timeout=60_000)
    qtbot.waitUntil(lambda: not s.running, timeout=5000)
    assert threads == {threading.main_thread().name}
    assert kinds[0] == "run_status" and kinds[-2:] == ["run_status", "run_finished"]
    assert {"frames_changed", "time_changed", "progress", "kpi_rows"} <= set(kinds)
    assert s.result is run.result and s.frame.time_s == 30.0 and s.index == len(run.recorder) - 1
    assert (tmp_path / "runs").is_dir() and s.last_output is not None and (s.last_output / "summary.json").is_file()
    bridge.unsubscribe_all()
