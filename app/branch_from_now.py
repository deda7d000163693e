"""Run → Branch from now: the running run's state taken between two steps, a copy continued with other
parameters, both futures side by side (app/compare_view.py); with replications, `citytwin branch`
from that state in the background."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, Slot

from twin.core.errors import UserError
from twin.session import slug

from .panels import fmt_clock
from .sim_worker import SimController, SimWorker


class BranchRelay(QObject):
    """Receives a branch's signals in the GUI thread (a lambda connected to a worker's signal would run
    in the worker's thread and touch widgets there)."""

    def __init__(self, branching, rec: dict):
        super().__init__(branching)
        self.branching, self.rec = branching, rec

    @Slot(bytes, float, float)
    def state(self, data, t, took):
        self.rec["source_worker"].state_ready.disconnect(self.state)
        self.branching._on_state(self.rec, data, t, took)

    @Slot(object)
    def started(self, _cls):
        self.branching._started(self.rec, self.rec["worker"])

    @Slot(str)
    def failed(self, message):
        self.branching.session.error(f"the branch failed: {message}")

    @Slot(object)
    def replications_done(self, result):
        self.branching._replications_done(self.rec, result)

    @Slot(str)
    def replications_failed(self, message):
        self.branching.session.error(f"branch replications failed: {message}")


class Branching(QObject):
    """The branches of a window's runs: ``records`` holds one dict per branch (``time_s``,
    ``snapshot_s``, ``worker``, ``controller``, ``window``, ``copy_s``, filled in as it goes)."""

    def __init__(self, window):
        super().__init__(window)
        self.window, self.session = window, window.session
        self.records: list[dict] = []
        self.dialog = None  # the Branch dialog last shown

    def _source_worker(self):
        s = self.session
        w = s.run.worker if s.run is not None else None
        return w if w is not None and s.running and w.model is not None else None

    def ask(self):
        """Pause and show the Branch dialog; its Branch button branches (the dialog, its ``record``
        the branch's once chosen)."""
        from .dialogs import BranchDialog

        if self.dialog is not None and self.dialog.isVisible():  # one at a time: it may be behind the window
            self.dialog.raise_()
            self.dialog.activateWindow()
            return self.dialog
        w = self._source_worker()
        if w is None:
            self.session.error("Start a run first: a branch continues the running simulation from the moment you "
                               "pause it.")
            return None
        self.session.set_paused(True)
        if self.dialog is not None:
            self.dialog.deleteLater()  # the last one, closed
        # not modal: the map stays clickable for the dialog's "Draw on map" and "Pick on map"
        dlg = BranchDialog(w.scenario, w.model.time_s, self.window, map_window=self.window)
        dlg.setModal(False)
        dlg.accepted.connect(lambda: self._chosen(dlg))
        dlg.show()
        self.dialog = dlg
        return dlg

    def _chosen(self, dlg) -> None:
        variant, changes, replications, speed = dlg.choice()
        dlg.record = self.branch(variant, changes, replications=replications, speed=speed)

    def branch(self, variant: str | None, changes: dict | None = None, replications: int = 1, speed: float = 0.0,
               out_dir: Path | None = None) -> dict | None:
        """Branch the running run now: its complete state is taken between two steps (``state_bytes``);
        the run goes on as one future and a copy with ``variant`` and ``changes`` as the other, both at
        ``speed`` (0: as fast as possible), side by side. Returns the branch's record."""
        w = self._source_worker()
        if w is None:
            self.session.error("Start a run first: a branch continues the running simulation.")
            return None
        try:
            w.scenario.params_for(variant, changes)
        except UserError as e:
            self.session.error(str(e))
            return None
        self.session.set_paused(True)
        rec = {"variant": variant or "baseline", "changes": dict(changes or {}), "replications": int(replications),
               "speed": float(speed), "out": out_dir, "requested": time.perf_counter(), "source_worker": w}
        rec["relay"] = relay = BranchRelay(self, rec)
        self.records.append(rec)
        w.state_ready.connect(relay.state)
        w.request_state()
        self.session.log(f"branching: taking the state of the run (paused at t = {w.model.time_s:.1f} s)")
        return rec

    def _on_state(self, rec: dict, data: bytes, t: float, took: float):
        from twin.core.state_file import state_from_bytes
        from twin.runs.replay import RunSource

        from .compare_view import ComparisonWindow

        s, win = self.session, self.window
        w = rec["source_worker"]
        rec.update(time_s=t, snapshot_s=took, state_mb=len(data) / 1e6)
        state = state_from_bytes(data)
        label = rec["variant"] + (" + " + ", ".join(f"{k}={v}" for k, v in rec["changes"].items()) if rec["changes"] else "")
        nw = SimWorker(w.scenario, rec["variant"], w.seed, rec["changes"], speed=rec["speed"], state=state)
        nw.log.connect(win.log_panel.log)
        nw.failed.connect(rec["relay"].failed)
        nw.started.connect(rec["relay"].started)
        controller = SimController(self)
        rec.update(worker=nw, controller=controller, label=label)
        base_src = RunSource(w.variant or "baseline", w.scenario, w.variant, w.seed, w.overrides)
        branch_src = RunSource(label, w.scenario, rec["variant"], w.seed, rec["changes"], state, 0, state_data=data)
        cw = ComparisonWindow(s.city, s.model_cls, f"branch at {fmt_clock(t)}",
                              s.scenario.alerts if s.scenario is not None else ())
        cw.add_variant(f"{w.variant or 'baseline'} (continued)", w, base_src)
        cw.add_variant(f"branch: {label}", nw, branch_src, past=w)
        win.comparisons.add(cw)
        cw.follow(s)  # its first view is the session's run: the main window's time slider moves both
        rec["window"] = cw
        controller.start(nw)
        win.controls.speed.setCurrentIndex(max(0, win.controls.speed.findData(rec["speed"])))
        s.set_speed(rec["speed"])
        s.set_paused(False)
        cw.show()
        s.log(f"branch at t = {t:g} s: state taken in {took:.3f} s ({len(data) / 1e6:.1f} MB); "
              f"'{label}' runs beside the continued run")
        if rec["replications"] > 1:
            self._replications(rec, data)

    def _started(self, rec: dict, nw):
        rec["copy_s"] = nw.build_s
        rec["branch_s"] = rec["snapshot_s"] + nw.build_s
        self.session.log(f"branch copy built and restored in {nw.build_s:.2f} s (time to branch: snapshot "
                         f"{rec['snapshot_s']:.3f} s + copy {nw.build_s:.2f} s)")

    def _replications(self, rec: dict, data: bytes):
        """More than one replication: the same as `citytwin branch` from this state, in the background."""
        from twin.runs.branch import check_branch

        from .compare_worker import BranchReplicationsWorker, start_compare

        w = rec["source_worker"]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path(rec["out"]) if rec["out"] else self.session.runs_dir / f"branch_{slug(w.scenario.name)}_{stamp}"
        try:
            plan = check_branch(w.scenario, rec["time_s"], rec["variant"], rec["replications"], None, out, w.seed,
                                rec["changes"] or None)
        except UserError as e:
            self.session.error(str(e))
            return
        job = BranchReplicationsWorker(plan, out, data)
        job.finished.connect(rec["relay"].replications_done)
        job.failed.connect(rec["relay"].replications_failed)
        job.progress.connect(self.window.comparisons.on_progress)
        rec.update(job=job, job_thread=start_compare(job, self), folder=out)
        self.session.log(f"branch replications: 2 futures × {rec['replications']} in the background → {out}")

    def _replications_done(self, rec: dict, result):
        rec["result"] = result
        self.session.output_ready(result.out)
        self.session.log(f"branch replications finished: {result.out / 'comparison.csv'}")
        cw = rec.get("window")
        if cw is not None and cw in self.window.comparisons.windows:
            names = {"baseline": cw.variants[0].label, result.plan.intervention: cw.variants[1].label}
            cw.set_comparison(result.comparison.replace({"variant": names}))

    def stop(self):
        """Stop every branch's run and replications (the window closes)."""
        for rec in self.records:
            if rec.get("controller") is not None:
                rec["controller"].stop(2.0)
            if rec.get("job") is not None:
                rec["job"].cancel()
                rec["job_thread"].wait(5000)
