"""The app's state without Qt: what is open, what runs, the moment shown, the selection, the alerts.

A ``Session`` is plain Python, like napari's viewer model: its methods change the state and emit
events; views subscribe to the events and never keep state of their own. The main window
(``app/main_window.py``) is one such view; tests, scripts and a live mode can drive a session
without Qt (``HeadlessRun`` runs a model in the calling thread).

    session = Session()
    session.events.time_changed.connect(lambda e: print(e.frame.time_s))
    session.events.connect(lambda e: print(e.type))  # every event, in order
    session.open_scenario("scenarios/station_evening_peak.toml")
    run = session.start_run()
    run.advance(60.0)

Threads: the session takes no lock. Change it from one thread at a time; each event is emitted
synchronously, on the thread that called the method which changed the state. In the app that is
always the GUI thread: the simulation thread's signals are queued to it before they reach the
session (``app/session_qt.py``), and the Qt bridge there queues to the GUI thread any event
emitted from another thread, so widgets are only ever touched on the GUI thread.

A run is a driver the session starts and controls (``RunHandle`` below): ``HeadlessRun`` here, the
app's simulation thread in ``app/session_qt.py``. The driver reports back through the
``report_*`` methods; reports from a run that is no longer the session's current one are ignored.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from twin.view.alerts import AlertMonitor, Places
from twin.core.errors import UserError
from twin.view.frames import Frame, FrameRecorder, RunFrames, default_frame_interval_s

# Every event a session emits and its payload (besides ``type`` and ``source``, the session).
EVENTS: dict[str, str] = {
    "city_opened": "city, path, load_s, scenario (the scenario opened with it, or None), models (the "
                   "model names to choose from when it came without a scenario, else ())",
    "scenario_changed": "scenario, model_cls, variants, params (the baseline's values), models (the "
                        "model names to choose from), editable (the model may be changed: no scenario file)",
    "variant_changed": "variant, params (that variant's values)",
    "timeline_reset": "nothing: a run starts or a city opens; no frames, no time, an empty alert log",
    "run_started": "run (the driver), scenario, variant, seed, params, out_dir",
    "run_status": "status, previous (one of STATUSES)",
    "progress": "time_s, duration_s (simulated)",
    "kpi_rows": "rows (new KPI rows: [{time_s, kpi: value, ...}])",
    "frames_changed": "count, latest (a frame was recorded: the timeline's length and its newest frame)",
    "time_changed": "(after the alerts_changed of that moment) frame, index, time_s, live (following the latest frame), by ('run': a new frame "
                    "followed live; 'seek': the user moved in time)",
    "alerts_changed": "monitor (levels now: .active, .kpi_level), events (changes of level logged now; "
                      "empty when scrubbing back)",
    "run_finished": "result (None when cancelled), out_dir",
    "output_ready": "path (a folder of outputs: a finished run, an export, a comparison)",
    "selection_changed": "info (the picked object's attributes, or None)",
    "live_started": "folder (the live run's outputs), process (the LiveProcess the session started, or None)",
    "live_changed": "snapshot (a twin.live.follow.LiveSnapshot: now, new KPI rows, forecast fans, sensors, "
                    "forecast alerts)",
    "live_frame": "frame (the live model as the twin last saved it: twin.view.frames.Frame)",
    "live_stopped": "reason (why the session stopped following), error (the live process's message when it failed, "
                    "else \"\")",
    "log": "text (a line for the run log)",
    "error": "message (for the user: what went wrong and how to fix it)",
}

IDLE, RUNNING, PAUSED, FINISHED, CANCELLED, FAILED = "idle", "running", "paused", "finished", "cancelled", "failed"
STATUSES = (IDLE, RUNNING, PAUSED, FINISHED, CANCELLED, FAILED)


class Event:
    """One event: ``type`` (its name in ``EVENTS``), ``source`` (the session) and its payload as
    attributes."""

    def __init__(self, type: str, source, **payload):
        self.type, self.source = type, source
        self.__dict__.update(payload)

    @property
    def payload(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("type", "source")}

    def __repr__(self) -> str:
        return f"Event({self.type}, {', '.join(f'{k}={v!r}'[:60] for k, v in self.payload.items())})"


class EventEmitter:
    """The callbacks of one kind of event, called in the order they connected."""

    def __init__(self, name: str):
        self.name = name
        self.callbacks: list[Callable[[Event], Any]] = []

    def connect(self, callback: Callable[[Event], Any]) -> Callable[[Event], Any]:
        if callback not in self.callbacks:
            self.callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[[Event], Any] | None = None) -> None:
        """Remove ``callback`` (every callback when None); one not connected is ignored."""
        if callback is None:
            self.callbacks.clear()
        elif callback in self.callbacks:
            self.callbacks.remove(callback)

    def __len__(self) -> int:
        return len(self.callbacks)


class SessionEvents:
    """One ``EventEmitter`` per event (``events.time_changed.connect(cb)``) and ``connect(cb)`` for
    all of them. Each event goes to its own subscribers, then to those of all events. A subscriber
    that raises does not keep the event from the others: the first exception is raised again once
    all have had it."""

    def __init__(self):
        for name in EVENTS:
            setattr(self, name, EventEmitter(name))
        self.any = EventEmitter("*")

    def connect(self, callback: Callable[[Event], Any]) -> Callable[[Event], Any]:
        return self.any.connect(callback)

    def disconnect(self, callback: Callable[[Event], Any] | None = None) -> None:
        """Remove ``callback`` from every event (all subscribers when None)."""
        for emitter in [self.any] + [getattr(self, n) for n in EVENTS]:
            emitter.disconnect(callback)

    def emit(self, name: str, source, **payload) -> Event:
        event = Event(name, source, **payload)
        first_error = None
        for cb in list(getattr(self, name).callbacks) + list(self.any.callbacks):
            try:
                cb(event)
            except Exception as e:  # noqa: BLE001 - re-raised below, after the other subscribers
                first_error = first_error or e
        if first_error is not None:
            raise first_error
        return event


class RunHandle(Protocol):
    """What the session needs from a run's driver (``HeadlessRun``; ``app.session_qt.QtRun``)."""

    recorder: FrameRecorder
    result: Any  # a twin.runs.runner.RunResult once finished
    out_dir: Path | None

    @property
    def running(self) -> bool: ...
    def start(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def step_once(self) -> None: ...  # pause, then advance step_s simulated seconds
    def set_speed(self, sim_s_per_wall_s: float) -> None: ...
    def set_step(self, sim_s: float) -> None: ...
    def cancel(self, wait_s: float = 1.0) -> bool: ...  # True when it has stopped
    def write(self, out: Path) -> None: ...  # the finished run's outputs, as the CLI writes them


def default_runs_dir() -> Path:
    """Where runs write their outputs unless told: $CITYTWIN_RUNS_DIR, else ~/CityTwin/runs."""
    return Path(os.environ.get("CITYTWIN_RUNS_DIR", Path.home() / "CityTwin" / "runs"))


def slug(text: str) -> str:
    """A file-name-safe form of a scenario or variant name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


class Session:
    """The state of one window (or one headless session) and the events that report its changes.

    ``run_factory(session, scenario, variant, seed, overrides, out_dir, speed, step_s)`` makes a run's
    driver (``HeadlessRun`` by default); ``runs_dir`` is where runs write their outputs by default
    (``default_runs_dir()``)."""

    def __init__(self, run_factory: Callable[..., RunHandle] | None = None, runs_dir: Path | None = None):
        self.events = SessionEvents()
        self.run_factory = run_factory or HeadlessRun
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        # what is open
        self.city = None
        self.city_path: Path | None = None
        self.scenario = None
        self.model_cls = None
        self.variant: str | None = None
        self.params: dict = {}  # the current variant's parameter values
        self.load_s: float | None = None
        # what runs
        self.run: RunHandle | None = None
        self._run_spec: tuple | None = None  # (scenario, variant, seed, params) of ``run``
        self.status = IDLE
        self.result = None
        self.last_output: Path | None = None
        self.speed = 0.0
        self.step_s = 1.0
        # the moment shown
        self.frame: Frame | None = None
        self.index = -1
        self.following_live = True
        # the selection and the alerts
        self.selection: dict | None = None
        self.alerts = AlertMonitor(())
        # a live run followed (twin.live.follow): its folder, the process when the session started it
        self.live = None
        self.live_process = None
        self.live_snapshot = None
        self.live_frames = True  # draw the live model's saved state (restored off the caller's thread)
        self._live_restore = None  # (future, executor) of the restore under way
        self._live_dirty = False  # a state was saved that has not been restored yet

    def _emit(self, name: str, **payload) -> Event:
        return self.events.emit(name, self, **payload)

    def error(self, message: str) -> None:
        self._emit("error", message=message)

    def log(self, text: str) -> None:
        self._emit("log", text=text)

    # -- what is open ------------------------------------------------------------------------------
    def open_path(self, path: Path | str) -> bool:
        """A city folder (or its city.toml) or a scenario file."""
        path = Path(path)
        if path.is_dir() or path.name == "city.toml":
            return self.open_city(path)
        if path.suffix.lower() == ".toml":
            return self.open_scenario(path)
        self.error(f"{path}: drop a city folder or a scenario (.toml) file.")
        return False

    def open_city(self, path: Path | str, scenario=None) -> bool:
        """Open a city (``scenario``: the scenario that names it, opened next). Stops the run."""
        from twin.core.city import City

        t0 = time.perf_counter()
        try:
            city = scenario.load_city() if scenario is not None else City.load(Path(path))
        except UserError as e:
            self.error(str(e))
            return False
        self.cancel_run()
        self.stop_live("another city was opened")
        self.city, self.city_path = city, Path(path)
        models = ()
        if scenario is None:
            from agents.registry import model_names

            self.scenario = self.model_cls = None
            models = tuple(model_names())
        self.load_s = time.perf_counter() - t0
        self._emit("city_opened", city=city, path=Path(path), load_s=self.load_s, scenario=scenario, models=models)
        self._reset_timeline()
        self.log(f"opened city {city.name!r} ({len(city.buildings)} buildings, {len(city.roads)} roads) in "
                 f"{self.load_s:.2f} s")
        return True

    def open_scenario(self, path: Path | str) -> bool:
        """Open a scenario file and its city."""
        from twin.scenario.scenario import load_scenario

        path = Path(path)
        try:
            sc = load_scenario(path)
            sc.model_class()
        except UserError as e:
            self.error(str(e))
            return False
        except ImportError as e:
            self.error(f"{path}: the model {e.name or ''} cannot be loaded ({e}).")
            return False
        if not self.open_city(sc.city_path, scenario=sc):
            return False
        try:  # every variant's ids and selectors match features of this city (as run and compare check)
            from twin.scenario.preflight import check_features

            check_features(sc, sc.variants())
        except UserError as e:
            self.error(str(e))
            return False
        self.set_scenario(sc)
        return True

    def choose_model(self, name: str) -> bool:
        """Run model ``name`` on the open city (only when no scenario file is open): a scenario of
        its defaults. False (and a log line) when it cannot be loaded."""
        if self.city is None or (self.scenario is not None and self.scenario.path is not None) or not name:
            return False
        from twin.scenario.scenario import scenario_from_dict

        try:
            sc = scenario_from_dict({"scenario": {"name": f"{name} on {self.city.name}", "model": name,
                                                  "city": str(Path(self.city.root).resolve()), "duration_s": 600,
                                                  "seed": 1}, "parameters": {}})
            sc._city = self.city
            sc.model_class()
        except (UserError, ImportError) as e:
            self.log(f"model {name!r} unavailable: {e}")
            return False
        self.set_scenario(sc)
        return True

    def set_scenario(self, sc) -> None:
        """Make ``sc`` (its city already open) the scenario: its model, baseline parameters and alerts."""
        self.scenario = sc
        self.model_cls = cls = sc.model_class()
        self.variant, self.params = None, sc.params_for(None)
        self.alerts = AlertMonitor(tuple(sc.alerts), Places(sc.load_city()))
        models = [sc.model]
        if sc.path is None:
            from agents.registry import model_names

            models = model_names()
        self._emit("scenario_changed", scenario=sc, model_cls=cls, variants=sc.variants(), params=dict(self.params),
                   models=models, editable=sc.path is None)

    def choose_variant(self, variant: str | None) -> bool:
        """Show a variant's parameter values (the baseline for None or "baseline")."""
        if self.scenario is None:
            return False
        try:
            params = self.scenario.params_for(variant)
        except UserError as e:
            self.error(str(e))
            return False
        self.variant = None if variant in (None, "", "baseline") else variant
        self.params = params
        self._emit("variant_changed", variant=variant, params=dict(params))
        return True

    @property
    def model_name(self) -> str | None:
        return self.scenario.model if self.scenario is not None else None

    # -- what runs -----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.run is not None and self.run.running

    @property
    def frames(self) -> FrameRecorder | None:
        return self.run.recorder if self.run is not None else None

    def _set_status(self, status: str) -> None:
        if status != self.status:
            previous, self.status = self.status, status
            self._emit("run_status", status=status, previous=previous)

    def start_run(self, variant: str | None = None, params: dict | None = None, seed: int | None = None,
                  duration_s: float | None = None, out_dir: Path | str | None = None, speed: float | None = None,
                  step_s: float | None = None) -> RunHandle | None:
        """Run the open scenario (``variant`` with ``params`` changed; the scenario's seed and duration
        unless given) into ``out_dir`` (a new folder under ``runs_dir`` by default). Returns the
        run's driver, already started; the running one if a run is going; None (and an error event)
        when nothing can run."""
        if self.scenario is None:
            self.error("Open a scenario (or a city and pick a model) first.")
            return None
        if self.running:
            return self.run
        sc = self.scenario
        if duration_s is not None and float(duration_s) != sc.duration_s:
            city = sc.load_city()
            sc = dataclasses.replace(sc, duration_s=float(duration_s))
            sc._city = city
        variant = variant or None
        overrides = dict(params or {})
        try:
            sc.params_for(variant, overrides)
        except UserError as e:
            self.error(str(e))
            return None
        if out_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            out_dir = self.runs_dir / f"{slug(sc.name + '_' + (variant or 'baseline'))}_{stamp}"
        seed = sc.seed if seed is None else int(seed)
        self.speed = self.speed if speed is None else float(speed)
        self.step_s = self.step_s if step_s is None else float(step_s)
        self.stop_live("a run was started")
        if self.run is not None:
            self.run.cancel(wait_s=2.0)  # a finished run's thread may still be ending
        self._reset_timeline()
        self.result = None
        self.run = run = self.run_factory(self, sc, variant, seed, overrides, Path(out_dir), self.speed, self.step_s)
        self._run_spec = (sc, variant, seed, dict(overrides))
        self._emit("run_started", run=run, scenario=sc, variant=variant, seed=seed, params=overrides,
                   out_dir=Path(out_dir))
        self._set_status(RUNNING)
        self.log(f"run started: {sc.name} [{variant or 'baseline'}] → {out_dir}")
        run.start()
        return run

    def run_source(self):
        """The current run as a ``twin.runs.replay.RunSource`` (what a video or a replay re-runs
        exactly), or None before the first run."""
        if self.run is None or self._run_spec is None:
            return None
        from twin.runs.replay import RunSource

        sc, variant, seed, params = self._run_spec
        return RunSource(variant or "baseline", sc, variant, seed, dict(params))

    def set_paused(self, paused: bool) -> None:
        if self.run is None:
            return
        (self.run.pause if paused else self.run.resume)()
        if self.status in (RUNNING, PAUSED):
            self._set_status(PAUSED if paused else RUNNING)
        self.log("paused" if paused else "resumed")

    def step(self) -> None:
        """Pause and advance the run by ``step_s`` simulated seconds."""
        if self.running:
            self._set_status(PAUSED)
            self.run.step_once()

    def set_speed(self, sim_s_per_wall_s: float) -> None:
        """Simulated seconds per wall-clock second (0: as fast as possible), for this run and the next."""
        self.speed = float(sim_s_per_wall_s)
        if self.run is not None:
            self.run.set_speed(self.speed)

    def set_step(self, sim_s: float) -> None:
        self.step_s = float(sim_s)
        if self.run is not None:
            self.run.set_step(self.step_s)

    def cancel_run(self, wait_s: float = 1.0) -> bool:
        """Stop the run, waiting up to ``wait_s``; True when it has stopped."""
        if self.run is None:
            return True
        ok = self.run.cancel(wait_s)
        if self.status in (RUNNING, PAUSED):
            self._set_status(CANCELLED)
        return ok

    def export_run(self, out: Path | str) -> Path:
        """Write the finished run's outputs to ``out`` (the CLI's writer, [outputs] included)."""
        if self.run is None or self.result is None:
            raise UserError("No finished run to export yet: run the scenario to its end first.")
        out = Path(out)
        self.run.write(out)
        self.output_ready(out)
        self.log(f"run outputs written to {out}")
        return out

    def output_ready(self, path: Path | str) -> None:
        self.last_output = Path(path)
        self._emit("output_ready", path=self.last_output)

    # -- reports from the run's driver ------------------------------------------------------------------
    def report_frame(self, run: RunHandle, frame: Frame) -> None:
        """A new frame of the run (already in its recorder): the timeline grows, and the view moves to
        it when following live."""
        if run is not self.run:
            return
        n = len(run.recorder)
        self._emit("frames_changed", count=n, latest=frame)
        if self.following_live:
            self._show(frame, n - 1, by="run")

    def report_rows(self, run: RunHandle, rows: list[dict]) -> None:
        if run is self.run:
            self._emit("kpi_rows", rows=rows)

    def report_progress(self, run: RunHandle, time_s: float, duration_s: float) -> None:
        if run is self.run:
            self._emit("progress", time_s=float(time_s), duration_s=float(duration_s))

    def report_log(self, run: RunHandle, text: str) -> None:
        if run is self.run:
            self.log(text)

    def report_finished(self, run: RunHandle, result) -> None:
        """The run ended: ``result`` is its RunResult, None when it was cancelled."""
        if run is not self.run:
            return
        self.result = result
        self._set_status(FINISHED if result is not None else CANCELLED)
        self._emit("run_finished", result=result, out_dir=run.out_dir)
        if result is not None:
            from twin.runs.runner import summary_caveats

            for line in summary_caveats(result.summary):
                self.log(line)
        if result is not None and run.out_dir is not None:
            self.output_ready(run.out_dir)

    def report_failed(self, run: RunHandle, message: str) -> None:
        if run is not self.run:
            return
        self._set_status(FAILED)
        self.error(f"the run failed: {message}")

    # -- the moment shown ------------------------------------------------------------------------------
    @property
    def time_s(self) -> float | None:
        return self.frame.time_s if self.frame is not None else None

    def _reset_timeline(self) -> None:
        self.frame, self.index, self.following_live = None, -1, True
        self.alerts.reset()
        self._emit("timeline_reset")

    def _show(self, frame: Frame, index: int, by: str) -> None:
        """Move to ``frame``: the alerts first (``alerts_changed``), so that a view drawing the moment on
        ``time_changed`` finds the levels of that moment."""
        self.frame, self.index = frame, index
        self._update_alerts(frame)
        self._emit("time_changed", frame=frame, index=index, time_s=frame.time_s, live=self.following_live, by=by)

    def _update_alerts(self, frame: Frame) -> None:
        """Levels at ``frame``; when it is later than the last, the recorded frames in between are
        evaluated first (a view draws a few frames a second and skips the rest), so the log misses no
        change of level. A scrubbed-back frame shows its levels and logs nothing."""
        m = self.alerts
        events = []
        rec = self.frames
        if rec is not None and frame.time_s > m._last_t:
            times = rec.times()
            for i in np.flatnonzero((times > m._last_t) & (times < frame.time_s)):
                events += m.update(rec[int(i)])
        events += m.update(frame)
        self._emit("alerts_changed", monitor=m, events=events)

    def seek(self, index: int) -> None:
        """Show recorded frame ``index``; the view follows the run live again from the last one."""
        rec = self.frames
        if rec is None or len(rec) == 0:
            return
        n = len(rec)
        index = int(min(max(index, 0), n - 1))
        self.following_live = index >= n - 1 and self.running
        self._show(rec[index], index, by="seek")

    def step_time(self, direction: int) -> None:
        """One recorded frame back (-1) or forward (+1)."""
        if self.frames is not None and len(self.frames) > 1:
            self.seek(self.index + direction)

    def go_live(self) -> None:
        """Follow the latest frame."""
        rec = self.frames
        if rec is None:
            return
        self.following_live = True
        if len(rec) and self.index != len(rec) - 1:
            self.seek(len(rec) - 1)

    # -- live mode (docs/live.md, "The app in live mode") -----------------------------------------------
    def follow_live(self, folder: Path | str, process=None) -> bool:
        """Follow the live run writing ``folder`` (a ``citytwin live --out``): its scenario is opened
        (when the folder names one and another is open), then ``poll_live`` reads what it wrote."""
        from twin.core.sensors import read_sensors
        from twin.live.follow import LiveFolder

        self.stop_live("another live run is followed")
        folder = Path(folder)
        probe = LiveFolder(folder)
        info = probe.info() or {}
        path = info.get("scenario")
        if path and (self.scenario is None or self.scenario.path is None
                     or Path(self.scenario.path).resolve() != Path(path)):
            if not self.open_scenario(path):
                return False
        if self.scenario is None:
            self.error(f"{folder}: no live run has saved there yet and no scenario is open; open the live run's "
                       "scenario first, or wait for its first forecast.")
            return False
        self.cancel_run()
        try:
            sensors = read_sensors(self.scenario.load_city())
        except UserError as e:
            self.error(str(e))
            return False
        self.live, self.live_process, self.live_snapshot = LiveFolder(folder, sensors), process, None
        self._live_dirty = False
        self._reset_timeline()
        self._emit("live_started", folder=folder, process=process)
        self.log(f"following the live run in {folder}")
        self.poll_live()
        return True

    def start_live(self, feeds: list[str], out_dir: Path | str | None = None, **options) -> bool:
        """Start ``citytwin live`` on the open scenario in its own process (``options``: the command's,
        e.g. ``members=4, until=600``) and follow its folder (a new one under ``runs_dir`` by default)."""
        from twin.live.follow import LiveProcess

        if self.scenario is None or self.scenario.path is None:
            self.error("Open a scenario file first: a live run runs a scenario file.")
            return False
        if out_dir is None:
            out_dir = self.runs_dir / f"{slug(self.scenario.name + '_live')}_{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            proc = LiveProcess(self.scenario.path, list(feeds), out_dir, options)
        except UserError as e:
            self.error(str(e))
            return False
        return self.follow_live(out_dir, proc)

    def poll_live(self):
        """Read what the followed live run wrote since the last poll: a ``live_changed`` event (and a
        ``log`` line per new forecast alert) when something did; ``live_stopped`` when its process
        ended. Returns the snapshot, or None when nothing changed."""
        if self.live is None:
            return None
        snap = self.live.read()
        if snap is not None:
            self.live_snapshot = snap
            rules = {r.name: r for r in self.alerts.rules}
            for a in snap.alerts:  # where to mark it: the feature its rule watches
                rule = rules.get(a["rule"])
                a["x"], a["y"] = self.alerts.places.of(rule.layer, str(a["key"])) if rule else (None, None)
            events = None
            if snap.issued_at is not None:  # the levels now: the values the latest forecast started from
                events = self.alerts.update_alerts(self._live_alerts(snap.alert_values, rules), snap.issued_at)
            self._emit("live_changed", snapshot=snap)
            if events is not None:  # after the forecast alerts issued until now, the changes of level now
                self._emit("alerts_changed", monitor=self.alerts, events=events)
            for a in snap.new_alerts:
                self.log(f"forecast alert at {float(a['issued_at']):g} s: {a['message']}")
        self._live_state(snap)
        p = self.live_process
        if p is not None and not p.running and snap is None:  # its last files are read: then say it ended
            code = p.returncode
            self.live_process = None
            self._emit("live_stopped", reason=f"the live run ended (exit code {code})",
                       error=p.error() if code else "")
            if code:
                self.error(f"the live run failed: {p.error()[-800:]}")
        return snap

    def _live_state(self, snap) -> None:
        """Restore the twin's newest saved state in a worker thread (building a model takes seconds);
        a later poll hands its frame out (``live_frame``). A state saved meanwhile is restored next."""
        from concurrent.futures import ThreadPoolExecutor

        from twin.live.follow import live_frame

        job = self._live_restore
        if job is not None and job[0].done():
            self._live_restore = None
            job[1].shutdown(wait=False)
            try:
                frame = job[0].result()
            except (UserError, OSError, ValueError) as e:  # a state it cannot restore: said, the rest goes on
                self.log(f"live: the saved state cannot be shown ({e})")
            else:
                self._emit("live_frame", frame=frame)
        if snap is not None and snap.state_changed:
            self._live_dirty = True
        if self.live_frames and self._live_dirty and self._live_restore is None:
            info = self.live.info()
            if info is not None:
                self._live_dirty = False
                ex = ThreadPoolExecutor(1, thread_name_prefix="live-state")
                self._live_restore = (ex.submit(live_frame, self.scenario, self.live.folder, info), ex)

    def _live_alerts(self, values: dict[str, float], rules: dict) -> list:
        from twin.view.alerts import Alert

        out, places = [], self.alerts.places
        for name, v in sorted(values.items()):
            _, rule_name, *key = name.split(".", 2)
            rule = rules.get(rule_name)
            if rule is None or not np.isfinite(v):
                continue
            key = key[0] if key else ""
            level = rule.level(v)
            x, y = places.of(rule.layer, key) if level else (None, None)
            out.append(Alert(rule, key, level, float(v), x, y, name=places.name(rule.layer, key)))
        return out

    def stop_live(self, reason: str = "stopped") -> None:
        """Stop following (and end the live process the session started)."""
        if self.live is None:
            return
        if self.live_process is not None:
            self.live_process.stop()
            self.live_process = None
        if self._live_restore is not None:  # its frame is of a run no longer followed
            self._live_restore[1].shutdown(wait=False, cancel_futures=True)
            self._live_restore = None
        self.live = None
        self._emit("live_stopped", reason=reason, error="")

    # -- selection and alerts ------------------------------------------------------------------------
    def select(self, info: dict | None) -> None:
        """The picked object (its attributes, as the view's picker gives them), or None."""
        self.selection = info
        self._emit("selection_changed", info=info)

    def hot_spots(self) -> list[tuple[float, float, str]]:
        """The places of the current alerts, worst first (a camera tour's stops)."""
        return [(a.x, a.y, a.text()) for a in self.alerts.active if a.x is not None]


class RunFollower:
    """Keeps a view made from the session's current run (a branch's side-by-side window) in step
    with the session: ``on_time(time_s)`` when the user moves in time in the session (``None``: back
    to following the run live); ``on_detached(reason)`` once, when that run stops being the
    session's or ends unfinished (cancelled, failed, another run started, another city opened).
    After that it calls nothing more. A run that finishes normally stays followed: the session can
    still move in its recorded time.

    ``subscribe(name, callback)`` connects to a session event (the session's own emitters by
    default; the app passes ``SessionBridge.subscribe`` so that the callbacks run on the GUI thread).
    """

    def __init__(self, session: Session, on_time: Callable[[float | None], Any] | None = None,
                 on_detached: Callable[[str], Any] | None = None,
                 subscribe: Callable[[str, Callable[[Event], Any]], Any] | None = None):
        self.session, self.run = session, session.run
        self.on_time, self.on_detached = on_time, on_detached
        self.detached: str | None = None if session.run is not None else "the session has no run"
        self._direct = subscribe is None
        self._subscribed = (("time_changed", self._time), ("run_status", self._status),
                            ("run_started", self._run_started), ("city_opened", self._city_opened))
        for name, callback in self._subscribed:
            if subscribe is None:
                getattr(session.events, name).connect(callback)
            else:
                subscribe(name, callback)

    def close(self) -> None:
        """Stop listening (the callbacks it connected itself; a ``subscribe`` given is the caller's to undo)."""
        if self._direct:
            for name, callback in self._subscribed:
                getattr(self.session.events, name).disconnect(callback)
        self.on_time = self.on_detached = None

    def _detach(self, reason: str) -> None:
        if self.detached is None:
            self.detached = reason
            if self.on_detached is not None:
                self.on_detached(reason)

    def _time(self, e: Event) -> None:
        # Only the user's moves: the run's own frames ("run") already reach a view that plays the run.
        if self.detached is None and e.by == "seek" and self.on_time is not None:
            self.on_time(None if e.live else float(e.time_s))

    def _status(self, e: Event) -> None:
        if e.status in (CANCELLED, FAILED) and self.session.run is self.run:
            self._detach(f"its run was {e.status}")

    def _run_started(self, e: Event) -> None:
        if e.run is not self.run:
            self._detach("another run was started")

    def _city_opened(self, e: Event) -> None:
        self._detach(f"the city {getattr(e.city, 'name', e.path)!r} was opened")


class HeadlessRun:
    """A session's run driven in the calling thread, without Qt: ``start`` builds the model (the
    CLI's ``twin.runs.runner.Run``) and reports its first frame; ``advance(until_s)`` runs it in slices of
    the recording interval, reporting each frame, the new KPI rows and the progress to the session,
    and the result when it ends. Pause, step, speed and cancel behave as in the app (speed is
    recorded but not paced: a headless run goes as fast as it can)."""

    def __init__(self, session: Session, scenario, variant=None, seed=None, overrides=None,
                 out_dir: Path | None = None, speed: float = 0.0, step_s: float = 1.0,
                 frame_interval_s: float | None = None):
        self.session, self.scenario, self.variant, self.seed = session, scenario, variant, seed
        self.overrides = dict(overrides or {})
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.speed, self.step_s = speed, step_s
        self.recorder = FrameRecorder(min_interval_s=frame_interval_s or 1.0)
        self._frame_interval = frame_interval_s
        self.driver = self.model = self.result = None
        self.paused = self.cancelled = self.ended = False
        self._feed: RunFrames | None = None

    @property
    def running(self) -> bool:
        return self.driver is not None and not self.ended

    def start(self) -> None:
        from twin.runs.runner import Run

        near = self.out_dir.resolve().parent if self.out_dir is not None else None  # a hard link, not a copy, at the end
        self.driver = Run(self.scenario, self.variant, self.seed, self.overrides, stage_near=near)
        self.model = self.driver.model
        if self._frame_interval is None:
            self.recorder.interval_s = default_frame_interval_s(self.model, self.scenario.duration_s)
        self._feed = RunFrames(self.model, self.recorder)
        self.driver.advance(self.model.time_s)  # records the first row
        self._report(force=True)

    def _report(self, force: bool = False) -> None:
        s = self.session
        s.report_frame(self, self._feed.frame(force))
        rows = self._feed.new_rows()
        if rows:
            s.report_rows(self, rows)
        s.report_progress(self, self.model.time_s, self.model.duration_s)

    def _to(self, target_s: float, force: bool) -> None:
        self.driver.advance(target_s)
        self._report(force=force)
        if self.driver.done:
            self._finish()

    def advance(self, until_s: float | None = None) -> None:
        """Run to ``until_s`` simulated seconds (the end when None), unless paused or cancelled."""
        until = self.model.duration_s if until_s is None else min(float(until_s), self.model.duration_s)
        slice_s = max(self.recorder.interval_s, self.model.time_quantum_s)
        while self.running and not self.paused and self.model.time_s < until - 1e-9:
            self._to(min(self.model.time_s + slice_s, until), force=False)

    def step_once(self) -> None:
        self.paused = True
        if self.running:
            self._to(self.model.time_s + max(self.step_s, self.model.time_quantum_s, 1e-6), force=True)

    def _finish(self) -> None:
        self.ended = True
        self.result = self.driver.result()
        if self.out_dir is not None:
            self.write(self.out_dir)
        self.session.report_finished(self, self.result)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def set_speed(self, sim_s_per_wall_s: float) -> None:
        self.speed = float(sim_s_per_wall_s)

    def set_step(self, sim_s: float) -> None:
        self.step_s = max(float(sim_s), 0.0)

    def cancel(self, wait_s: float = 1.0) -> bool:
        if self.running:
            self.ended = self.cancelled = True
            self.session.report_finished(self, None)
        return True

    def write(self, out: Path) -> None:
        self.driver.write(Path(out), self.result)
