"""The app's run worker, driven directly (its signals delivered in this thread, no window)."""
from tests.factories import write_scenario


def _run_worker(scenario, out_dir):
    from app.sim_worker import SimWorker
    from twin.scenario.scenario import load_scenario

    w = SimWorker(load_scenario(scenario), out_dir=out_dir)
    got = {"finished": [], "failed": [], "log": []}
    w.finished.connect(got["finished"].append)
    w.failed.connect(got["failed"].append)
    w.log.connect(got["log"].append)
    w.run()  # in this thread: the signals arrive before run() returns
    return w, got


def test_a_run_whose_outputs_cannot_be_written_is_reported_as_failed_not_finished(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 10\n", duration_s=20)
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    w, got = _run_worker(sc, blocker / "run")  # a folder inside a file: the write fails
    assert w.done.is_set() and w.result is not None  # the simulation itself reached its end
    assert got["finished"] == []
    assert len(got["failed"]) == 1 and "could not be written" in got["failed"][0] and "a file" in got["failed"][0]
    assert not any("outputs written" in line for line in got["log"])


def test_a_run_that_writes_its_outputs_is_finished(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 10\n", duration_s=20)
    w, got = _run_worker(sc, tmp_path / "run")
    assert got["failed"] == [] and got["finished"] == [w.result]
    assert (tmp_path / "run" / "summary.json").is_file()
