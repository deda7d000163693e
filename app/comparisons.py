"""Variants side by side and comparisons from the window: finished runs re-run from a compare or
branch folder (File → Open a comparison side by side), `citytwin compare` in the background
(Run → Compare interventions), and the side-by-side windows that are open."""
from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QInputDialog

from twin.core.errors import UserError
from twin.session import slug

from .sim_worker import SimController, SimWorker


class Comparisons(QObject):
    """The side-by-side windows of a main window (``windows``) and its comparison in the background."""

    def __init__(self, window):
        super().__init__(window)
        self.window, self.session = window, window.session
        self.windows: list = []
        self.compare_worker = self.compare_thread = None

    def __iter__(self):
        return iter(self.windows)

    def add(self, cw) -> None:
        """Show ``cw`` in the window's theme and scale; forget it when it closes."""
        cw.set_dark(self.window.dark)
        if self.window.ui_scale != 1.0:
            cw.set_scale(self.window.ui_scale)
        cw.closed.connect(lambda cw=cw: self.windows.remove(cw) if cw in self.windows else None)
        self.windows.append(cw)

    # -- side by side from a folder ----------------------------------------------------------------
    def ask_open(self):
        d = QFileDialog.getExistingDirectory(self.window, "Open a compare or branch folder (or one run)",
                                             self.window.last_folder())
        if not d:
            return None
        intervention = None
        try:
            from twin.runs.replay import variant_folders

            names = [v for v in variant_folders(Path(d)) if v != "baseline"] if (Path(d) / "runs").is_dir() else []
        except UserError as e:
            self.session.error(str(e))
            return None
        if len(names) > 1:
            intervention, ok = QInputDialog.getItem(self.window, "Side by side", "Beside the baseline:", names, 0, False)
            if not ok:
                return None
        return self.open(Path(d), intervention)

    def open(self, folder: Path, intervention: str | None = None, replication: int = 0):
        """Finished runs side by side: each is re-run from its folder (twin.runs.replay) in a worker."""
        from twin.runs.replay import comparison_table, sources_from_folder

        from .compare_view import ComparisonWindow

        try:
            sources = sources_from_folder(Path(folder), intervention, replication)
            cls = sources[0].scenario.model_class()
            city = sources[0].scenario.load_city()
        except UserError as e:
            self.session.error(str(e))
            return None
        cw = ComparisonWindow(city, cls, f"{sources[0].scenario.name}: {Path(folder).name}", sources[0].scenario.alerts)
        cw.controllers = []
        for src in sources:
            wk = SimWorker.from_source(src)
            wk.log.connect(self.window.log_panel.log)
            cw.add_variant(src.label, wk, src)
            c = SimController(self)
            c.start(wk)
            cw.controllers.append(c)
        table = comparison_table(Path(folder))
        if table is not None:
            cw.set_comparison(table)
        cw.closed.connect(lambda cw=cw: [c.stop(2.0) for c in cw.controllers])
        self.add(cw)
        cw.show()
        self.session.log(f"side by side: {', '.join(s.label for s in sources)} from {folder} (re-run to replay)")
        return cw

    # -- comparisons (the same code as `citytwin compare`) -------------------------------------------
    def start(self, out_dir: Path | None = None, replications: int | None = None, workers: int | None = None,
              report: bool = True):
        """Baseline and every intervention × replications, in worker processes (``workers``: how many;
        1: in this process); opens report.html (``report``: False writes the tables only)."""
        from .compare_worker import CompareWorker, start_compare

        sc, win = self.session.scenario, self.window
        if sc is None:
            self.session.error("Open a scenario with interventions first (File → Open scenario).")
            return None
        if self.compare_thread is not None and self.compare_thread.isRunning():
            self.session.error("A comparison is already running.")
            return None
        if replications is None:
            replications = sc.replications
            if not os.environ.get("CITYTWIN_NO_DIALOGS"):
                replications, ok = QInputDialog.getInt(
                    win, "Compare interventions",
                    f"Replications per variant ({len(sc.variants())} variants):", sc.replications, 1, 1000)
                if not ok:
                    return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path(out_dir) if out_dir else self.session.runs_dir / f"compare_{slug(sc.name)}_{stamp}"
        self.compare_worker = w = CompareWorker(sc, out, replications=replications, workers=workers, report=report)
        w.progress.connect(self.on_progress)
        w.finished.connect(self._finished)
        # Bound methods, not lambdas: a lambda would run in the worker's thread and touch widgets.
        w.failed.connect(self._failed)
        w.cancelled.connect(self._cancelled)
        self.session.log(f"comparison started: {len(sc.variants())} variants × {replications} replications → {out}")
        win.progress.setValue(0)
        win.act_compare.setEnabled(False)
        win.act_cancel_compare.setEnabled(True)
        self.compare_thread = start_compare(w, self)
        return w

    def cancel(self, wait_s: float = 5.0) -> bool:
        if self.compare_thread is None:
            return True
        self.compare_worker.cancel()
        return self.compare_thread.wait(int(wait_s * 1000))

    @Slot(int, int)
    def on_progress(self, done: int, total: int):
        self.window.progress.setValue(int(100 * done / total) if total else 0)
        self.window.statusBar().showMessage(f"comparison: {done} of {total} runs done", 5000)

    @Slot(object)
    def _finished(self, result):
        self._done()
        out = Path(self.compare_worker.out)
        self.session.output_ready(out)
        report = out / "report.html"
        self.session.log(f"comparison finished: report in {report}" if report.exists() else
                         f"comparison finished: tables in {out}")
        self.window.progress.setValue(100)
        if report.exists() and not os.environ.get("CITYTWIN_NO_DIALOGS"):
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(report)))

    @Slot(str)
    def _failed(self, message: str):
        self._done()
        self.session.error(f"comparison failed: {message}")

    @Slot()
    def _cancelled(self):
        self._done()
        self.session.log(f"comparison cancelled; finished runs kept in {self.compare_worker.out}")

    def _done(self):
        self.window.act_compare.setEnabled(True)
        self.window.act_cancel_compare.setEnabled(False)

    def close_all(self):
        """Cancel the comparison and close the side-by-side windows (the main window closes)."""
        self.cancel(wait_s=5.0)
        for cw in list(self.windows):
            cw.close()
