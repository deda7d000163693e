"""``citytwin live``: the twin kept in step with its feeds (docs/live.md, "Live mode").

The model advances to the feed clock (the latest time its sensors have reported: a replay's clock,
or with ``clock = "wall"`` the wall clock since ``--start``). A forcing observation (a model's
declared ``Forcing``) acts at its own time: the run pauses there, the model turns every reading so
far into parameters (``forced_parameters``), and the run continues from its state with them. State
observations are kept to score the forecasts. Every ``forecast_interval_s`` an ensemble is branched
from the current state (``forecast.py``); when its horizon has passed, it is scored.

Nothing a feed sends stops the twin: bad messages are ``invalid``, old ones ``late``, a feed that
falls silent or whose clock jumps is logged and counted. The state is saved at every forecast
(``state.npz`` and ``live.json`` in ``--out``): a twin killed and started again with the same command
continues from there.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from twin.core.errors import UserError
from twin.core.files import atomic_file, write_csv, write_parquet
from twin.core.params import plain_value
from twin.core.sensors import read_sensors
from .assim_report import TABLES
from .feeds import Feed
from .forecast import Forecast, MemberPool, forecast_alerts, forecast_frame, score
from .messages import Observation, parse
from .observe import Observer

STATE_FILE = "state.npz"
PROGRESS_FILE = "live.json"
FILTER_FILE = "filter.zip"  # --assimilate: the filter's members and estimates (assim_checkpoint's form)


@dataclass
class LiveSettings:
    until_s: float | None = None
    forecast_interval_s: float = 300.0
    horizon_s: float = 900.0
    members: int = 10
    workers: int = 1
    start_epoch_s: float | None = None  # the wall time of t = 0 (ISO message times are relative to it)
    clock: str = "feed"  # "feed": the latest reported time; "wall": the wall clock since start
    late_tolerance_s: float = 0.0  # a message older than the model's clock by more than this is late
    max_ahead_s: float = 3600.0  # a message this far ahead of the clock: its feed's clock jumped
    silence_s: float = 60.0  # wall seconds without a message from a feed: logged as silent
    stop_when_silent_s: float | None = None  # stop when no feed has sent anything for this long (scripts)
    poll_s: float = 0.05
    alert_share: float = 0.5
    # The ensemble's resolution: parameters the members run with instead of the live run's (a longer
    # time step, a coarser field), to issue a forecast sooner (docs/live.md, "Speed").
    member_overrides: dict = field(default_factory=dict)
    # Assimilation (docs/assimilation.md, "In live mode"): "pf" or "enkf" keeps an ensemble of
    # ``members`` runs corrected by the state sensors' readings, which the forecasts start from;
    # ``estimate``: the parameters it estimates (twin.runs.uncertainty ranges). "off": none.
    assimilate: str = "off"
    estimate: list = field(default_factory=list)
    filter: object = None  # twin.live.assimilate.AssimilationSettings beyond method and members (None: defaults)


@dataclass
class FeedStats:
    received: int = 0
    used: int = 0
    late: int = 0
    invalid: int = 0
    errors: int = 0
    silences: int = 0
    jumps: int = 0
    last_time_s: float = -math.inf
    last_wall: float = field(default_factory=time.monotonic)
    silent: bool = False


class LiveTwin:
    def __init__(self, scenario, feeds: list[Feed], out: Path, settings: LiveSettings,
                 variant: str | None = None, seed: int | None = None, overrides: dict | None = None, log=print):
        from twin.runs.runner import Run
        from twin.scenario.scenario import BASELINE

        self.sc, self.feeds, self.out, self.s = scenario, feeds, Path(out), settings
        self.variant = variant or BASELINE
        self.seed = scenario.seed if seed is None else int(seed)
        self.base_overrides = dict(overrides or {})
        self._print = log
        self.out.mkdir(parents=True, exist_ok=True)
        city = scenario.load_city()
        self.sensors = read_sensors(city)
        # the features a forcing may name (a reading of another is invalid, never a stop of the twin)
        self.forcing_ids = {f.quantity: {str(i) for i in city.layers[f.layer]["id"]}
                            for f in scenario.model_class().forcings
                            if f.layer in city.layers and "id" in city.layers[f.layer].columns}
        self.observer = Observer(scenario.model_class(), self.sensors)
        self.by_id = {s.id: s for s in self.sensors}
        self.stats = {f.url: FeedStats() for f in feeds}
        self.observations: list[Observation] = []
        self.readings: dict[str, list[tuple[float, str, float]]] = {}  # forcing quantity -> readings so far
        self.forced: dict[str, object] = {}  # parameters the forcings set
        self.pending: list[Observation] = []  # forcing observations ahead of the model
        self.observed: dict[tuple[float, str], tuple[float, str]] = {}
        self.forecasts: list[Forecast] = []
        self.quantiles: list[pd.DataFrame] = []
        self.alerts: list[dict] = []
        self.skill: list[dict] = []
        self.scored: set[float] = set()
        self.feed_clock = 0.0
        self.next_forecast = 0.0
        self.started_wall = time.monotonic()
        self.pool = MemberPool(settings.workers)
        state = self._resume()
        self.run = Run(scenario, self.variant, self.seed, self.overrides, state=state)
        if state is not None:
            self.log(f"resumed from the state at t = {self.run.time_s:g} s")
        self.filter = None
        if settings.assimilate != "off":
            self.filter = self._start_filter(resumed=state is not None)
        skipped = self.observer.skipped
        if skipped:
            self.log(f"{len(skipped)} sensor(s) observe nothing model {scenario.model} declares; left out: "
                     + ", ".join(sorted(skipped)[:8]) + (" …" if len(skipped) > 8 else ""))

    # -- bookkeeping ---------------------------------------------------------------------------------
    @property
    def overrides(self) -> dict:
        return {**self.base_overrides, **self.forced}

    @property
    def until(self) -> float:
        u = self.sc.duration_s if self.s.until_s is None else min(self.s.until_s, self.sc.duration_s)
        return u

    def log(self, text: str) -> None:
        line = f"[t = {self.run.time_s if hasattr(self, 'run') else 0.0:7.1f} s] {text}"
        with open(self.out / "log.txt", "a", encoding="utf-8") as f:
            f.write(line + "\n")
        if self._print:
            self._print(line)

    # -- the loop ------------------------------------------------------------------------------------------
    def run_until(self) -> dict:
        try:
            self._loop()
            if self.filter is not None:  # the readings since the last forecast correct the estimates too
                self.filter.catch_up(self.run.time_s)
            self._score_due(final=True)
            self._checkpoint()
        finally:
            self.pool.close()
            for f in self.feeds:
                f.close()
        return self.summary()

    def _loop(self) -> None:
        idle_since = time.monotonic()
        while self.run.time_s < self.until - 1e-9 and not self.run.done:
            got = self._poll()
            if self.s.clock == "wall" and self.s.start_epoch_s is not None:
                self.feed_clock = max(self.feed_clock, time.time() - self.s.start_epoch_s)
            before = self.run.time_s
            self._advance(min(self.feed_clock, self.until))
            if got or self.run.time_s > before:
                idle_since = time.monotonic()
                continue
            self._check_silence()
            if self.s.stop_when_silent_s is not None and time.monotonic() - idle_since > self.s.stop_when_silent_s:
                self.log(f"no feed has sent anything for {self.s.stop_when_silent_s:g} s: stopping")
                return
            time.sleep(self.s.poll_s)

    def _poll(self) -> int:
        n = 0
        for feed in self.feeds:
            st = self.stats[feed.url]
            try:
                raw = feed.poll()
            except Exception as e:  # noqa: BLE001 - an adapter's bug must not stop the twin either
                raw = []
                feed._fail(e)
            if feed.errors > st.errors:
                self.log(f"feed {feed.url}: {feed.errors - st.errors} error(s), the last: {feed.last_error}")
                st.errors = feed.errors
            for r in raw:
                n += 1
                self._receive(feed, st, r)
        return n

    def _receive(self, feed: Feed, st: FeedStats, raw) -> None:
        ob = parse(raw, feed.url, self.run.time_s, self.by_id, self.s.start_epoch_s)
        st.received += 1
        st.last_wall = time.monotonic()
        if st.silent:
            st.silent = False
            self.log(f"feed {feed.url}: sending again")
        if not ob.fate and ob.sensor not in self.observer.by_id:
            ob.fate, ob.reason = "invalid", self.observer.skipped.get(ob.sensor, "not a sensor of this model")
        if not ob.fate and ob.time_s < st.last_time_s - self.s.late_tolerance_s - 1e-9:
            st.jumps += 1
            self.log(f"feed {feed.url}: time went back from {st.last_time_s:g} s to {ob.time_s:g} s")
        if not ob.fate:
            if ob.time_s > max(self.feed_clock, self.run.time_s) + self.s.max_ahead_s:
                ob.fate, ob.reason = "invalid", (f"time {ob.time_s:g} s jumps {ob.time_s - self.feed_clock:g} s ahead "
                                                 f"of the clock (more than {self.s.max_ahead_s:g} s)")
                st.jumps += 1
                self.log(f"feed {feed.url}: {ob.reason}")
            elif ob.time_s < self.run.time_s - self.s.late_tolerance_s - 1e-9:
                ob.fate, ob.reason = "late", f"at {ob.time_s:g} s, the model was at {self.run.time_s:g} s"
            else:
                ob.fate = "used"
                st.last_time_s = max(st.last_time_s, ob.time_s)
                self.feed_clock = max(self.feed_clock, ob.time_s)
                ids = self.forcing_ids.get(self.by_id[ob.sensor].value)
                if self.observer.by_id[ob.sensor].how == "forcing" and ids is not None and ob.feature not in ids:
                    ob.fate, ob.reason = "invalid", (f"{ob.feature!r} is no feature of layer "
                                                     f"{self.by_id[ob.sensor].layer} of this city")
                elif self.observer.by_id[ob.sensor].how == "forcing":
                    self.pending.append(ob)
                    if self.filter is not None:
                        self.filter.forcing_msgs.setdefault(round(ob.time_s, 6), []).append(
                            (ob.sensor, str(ob.feature), ob.value))
                else:
                    self.observed[(round(ob.time_s, 6), f"sensor.{ob.sensor}")] = (ob.value, "observed")
                    if self.filter is not None:
                        self._to_filter(ob)
        setattr(st, ob.fate, getattr(st, ob.fate) + 1)
        self.observations.append(ob)

    def _check_silence(self) -> None:
        now = time.monotonic()
        for url, st in self.stats.items():
            if not st.silent and now - st.last_wall > self.s.silence_s:
                st.silent, st.silences = True, st.silences + 1
                self.log(f"feed {url}: silent for {now - st.last_wall:.1f} s")

    def _advance(self, target: float) -> None:
        """To ``target``, pausing at the forcing observations' times and at forecast times."""
        while True:
            self._apply_forcings()
            t = self.run.time_s
            if t >= self.next_forecast - 1e-9 and not self.run.done:
                self._forecast()
            if t >= target - 1e-9 or self.run.done:
                return
            stops = [target, self.next_forecast] + [o.time_s for o in self.pending if o.time_s > t + 1e-9]
            self.run.advance(min(stops))

    def _apply_forcings(self) -> None:
        due = [o for o in self.pending if o.time_s <= self.run.time_s + 1e-9]
        if not due:
            return
        self.pending = [o for o in self.pending if o.time_s > self.run.time_s + 1e-9]
        changed = set()
        for o in sorted(due, key=lambda o: (o.time_s, o.sensor)):
            q = self.observer.by_id[o.sensor].sensor.value
            self.readings.setdefault(q, []).append((o.time_s, o.feature, o.value))
            changed.add(q)
        new = dict(self.forced)
        for q in sorted(changed):
            new.update(self.run.model.forced_parameters(q, self.readings[q]))
        old, self.forced = self.forced, new
        p = self.run.model.p
        differ = sorted(k for k, v in new.items() if k not in p or plain_value(p[k]) != plain_value(v))
        if differ and not self.run.done:  # a reading that changes nothing (a road reported open) costs nothing
            try:
                self._rebuild()
            except UserError as e:  # e.g. a feature the city does not have: the readings are refused, the twin goes on
                self.forced = old
                for o in due:
                    q = self.observer.by_id[o.sensor].sensor.value
                    self.readings[q].remove((o.time_s, o.feature, o.value))
                    st = self.stats.get(o.feed)
                    if st is not None:
                        st.used, st.invalid = st.used - 1, st.invalid + 1
                    o.fate, o.reason = "invalid", f"the model refused it: {e}"
                self.log(f"forcing: {', '.join(sorted(changed))} refused: {e}")
                return
            self.log(f"forcing: {', '.join(sorted(changed))} set {', '.join(differ)}")

    def _rebuild(self) -> None:
        """Continue the run from its state now with the parameters the forcings set."""
        from twin.core.state_file import state_from_bytes
        from twin.runs.runner import Run

        state = state_from_bytes(self.run.state_bytes(), "live state")
        self.run = Run(self.sc, self.variant, self.seed, self.overrides, state=state)

    # -- assimilation ------------------------------------------------------------------------------------
    def _start_filter(self, resumed: bool):
        """The filtered ensemble (twin.live.assimilate.EnsembleFilter, as ``citytwin assimilate`` runs
        it): from the start, or on a resumed twin from its state (each member with its own draw)."""
        from dataclasses import replace

        from .assimilate import AssimilationSettings, EnsembleFilter

        base = self.s.filter or AssimilationSettings()
        fs = replace(base, method=self.s.assimilate, members=self.s.members, workers=self.s.workers)
        f = EnsembleFilter(self.sc, self.s.estimate, fs, self.variant, self.seed, self.base_overrides, log=self.log)
        self.filter_late = 0
        self.log(f"assimilation: {fs.method}, {fs.members} members"
                 + (f", estimating {', '.join(r.name for r in self.s.estimate)}" if self.s.estimate else ""))
        if resumed and (self.out / FILTER_FILE).is_file():
            self._resume_filter(f)
            return f
        f.forced = dict(self.forced)
        f.readings = {q: list(rs) for q, rs in self.readings.items()}
        f.start(self.run.state_bytes() if resumed else None)
        return f

    def _filter_options(self) -> dict:
        """What a resumed twin's filter must share with the one saved (the numbers follow from them)."""
        fs = self.s.filter
        return {"--assimilate": self.s.assimilate, "--members": self.s.members, "--seed": self.seed,
                "--estimate": [r.text for r in self.s.estimate],
                "--rerun-lag-s": fs.rerun_lag_s if fs is not None else 0.0,
                "--spread-floor": fs.spread_floor if fs is not None else 0.0,
                "--update-every-s": fs.update_every_s if fs is not None else 0.0}

    def _save_filter(self) -> None:
        """The filter as it is (members, estimates, its tables' rows) and the readings it has not yet
        taken: a resumed twin goes on with it instead of starting again from the prior."""
        from .assim_checkpoint import write_checkpoint

        f = self.filter
        doc, states = f.saved({})

        def ahead(by_time: dict) -> list:
            return [[t, *row] for t, rows in sorted(by_time.items()) if t > f.time_s + 1e-9 for row in rows]

        doc.update({"options": self._filter_options(), "obs_ahead": ahead(f.obs),
                    "forcing_msgs_ahead": ahead(f.forcing_msgs)})
        write_checkpoint(self.out / FILTER_FILE, doc, states, {})

    def _resume_filter(self, f) -> None:
        from .assim_checkpoint import differences, read_checkpoint

        doc, states, _ = read_checkpoint(self.out / FILTER_FILE)
        diff = differences(doc.get("options") or {}, self._filter_options())
        if diff:
            raise UserError(f"{self.out}: its saved filter was made with other options ({'; '.join(diff)}). Give the "
                            "same options to go on with it, or another --out to start afresh.")
        f.restore(doc, states)
        for t, *row in doc["obs_ahead"]:
            f.obs.setdefault(float(t), []).append(tuple(row))
        for t, *row in doc["forcing_msgs_ahead"]:
            f.forcing_msgs.setdefault(float(t), []).append(tuple(row))
        self.log(f"assimilation: the filter resumed at t = {f.time_s:g} s ({f.n_updates} updates so far)")

    def _to_filter(self, ob: Observation) -> None:
        t = round(ob.time_s, 6)
        if t <= self.filter.time_s + 1e-9:  # the ensemble has passed it: too late to correct it
            self.filter_late += 1
            return
        self.filter.obs.setdefault(t, []).append((ob.sensor, ob.value))

    # -- forecasts ---------------------------------------------------------------------------------------
    def _forecast(self) -> None:
        t = self.run.time_s
        self.next_forecast = (math.floor(t / self.s.forecast_interval_s + 1e-9) + 1) * self.s.forecast_interval_s
        self._record_live(t)
        if self.s.members < 1 or self.s.horizon_s <= 0:
            self._checkpoint()
            return
        wall = time.perf_counter()
        state = self.run.state_bytes()
        sc = self.sc
        sensors = self.observer.state_sensors
        rules = list(sc.alerts)
        task = (sc.raw, str(sc.path) if sc.path else None, str(sc.city_path), state, self.variant, self.seed,
                {**self.overrides, **self.s.member_overrides}, 0, self.s.horizon_s, sensors, [s.id for s in sensors],
                rules)
        tasks = [task[:7] + (k,) + task[8:] for k in range(1, self.s.members + 1)]
        method = "open_loop"
        if self.filter is not None:  # the forecast starts from the corrected ensemble
            self.filter.catch_up(t)
            tasks = self.filter.forecast_tasks(t, self.filter.members, self.filter.weights, self.s.horizon_s,
                                               self.s.member_overrides, rules)
            method = "assimilated"
        results = self.pool.map(tasks)
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            self.log(f"forecast at {t:g} s: {len(errors)} member(s) failed: {errors[0]}")
        fc = forecast_frame(t, [r for r in results if "rows" in r])
        fc.method = method
        if len(fc.members):
            self.forecasts.append(fc)
            self.quantiles.append(fc.quantiles())
            from twin.view.alerts import evaluate

            now = {(f"alert.{a.rule.name}.{a.key}" if a.key else f"alert.{a.rule.name}"): a.level
                   for a in evaluate(rules, self.run.model.current_kpis(), self.run.model.snapshot().features)}
            for a in forecast_alerts(fc, rules, now, self.s.alert_share):
                self.alerts.append(a)
                self.log(f"forecast alert: {a['message']}")
        self.log(f"forecast issued at {t:g} s: {self.s.members} members, {self.s.horizon_s:g} s ahead, "
                 f"{time.perf_counter() - wall:.1f} s wall")
        self._score_due()
        self._checkpoint()

    def _record_live(self, t: float) -> None:
        """The live run's KPIs so far: what forecasts of KPIs are scored against (where no sensor is)."""
        ts = self.run.model.timeseries()
        for row in ts.itertuples(index=False):
            r = row._asdict()
            tt = round(float(r.pop("time_s")), 6)
            for k, v in r.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.observed.setdefault((tt, f"kpi.{k}"), (float(v), "live"))

    def _score_due(self, final: bool = False) -> None:
        now = self.run.time_s
        self._record_live(now)
        for fc in self.forecasts:
            if fc.issued_at in self.scored:
                continue
            if fc.issued_at + self.s.horizon_s <= now + 1e-9 or final:
                self.skill += score(fc, self.observed, fc.method)
                if fc.issued_at + self.s.horizon_s <= now + 1e-9:
                    self.scored.add(fc.issued_at)

    # -- saving and resuming -------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        from twin.core.state_file import write_state_bytes

        write_state_bytes(self.run.state_bytes(), self.out / STATE_FILE)
        write_csv(self.run.model.timeseries(), self.out / "timeseries.csv")  # the live run so far
        obs = pd.DataFrame([o.row() for o in self.observations],
                           columns=list(Observation("", 0.0).row().keys()))
        write_parquet(obs, self.out / "observations.parquet")
        q = pd.concat(self.quantiles, ignore_index=True) if self.quantiles else pd.DataFrame(
            columns=["issued_at", "lead_s", "name", "p10", "p50", "p90", "n"])
        write_parquet(q, self.out / "forecasts.parquet")
        members = pd.concat([f.members.assign(issued_at=f.issued_at) for f in self.forecasts], ignore_index=True) \
            if self.forecasts else pd.DataFrame(columns=["lead_s", "name", "member", "value", "issued_at"])
        write_parquet(members, self.out / "members.parquet")
        write_csv(pd.DataFrame(self.alerts, columns=["issued_at", "rule", "key", "level", "threshold", "lead_s",
                                                      "members", "of", "message"]), self.out / "alerts.csv")
        write_csv(pd.DataFrame(self.skill, columns=TABLES["skill.csv"]), self.out / "skill.csv")
        progress = {"time_s": self.run.time_s, "feed_clock": self.feed_clock, "next_forecast": self.next_forecast,
                    "forced": {k: plain_value(v) for k, v in self.forced.items()},
                    "readings": self.readings, "scored": sorted(self.scored),
                    "pending": [o.row() for o in self.pending], "feeds": self._feed_counts(),
                    # what a viewer following this folder needs to open (twin.live.follow)
                    "scenario": str(Path(self.sc.path).resolve()) if self.sc.path else None,
                    "variant": self.variant, "seed": self.seed, "duration_s": self.sc.duration_s, "until_s": self.until,
                    "overrides": {k: plain_value(v) for k, v in self.base_overrides.items()},
                    "horizon_s": self.s.horizon_s, "forecast_interval_s": self.s.forecast_interval_s,
                    "members": self.s.members}
        if self.filter is not None:  # the estimates, updates and residuals so far (docs/assimilation.md)
            self.filter.write_tables(self.out)
            self._save_filter()
        with atomic_file(self.out / PROGRESS_FILE) as f:
            json.dump(progress, f, indent=1, default=float)

    def _resume(self):
        """The saved state and bookkeeping of an earlier run of this twin in ``out``, or None."""
        from twin.core.state_file import read_state

        p = self.out / PROGRESS_FILE
        if not p.is_file() or not (self.out / STATE_FILE).is_file():
            return None
        try:
            prog = json.loads(p.read_text(encoding="utf-8"))
            state = read_state(self.out / STATE_FILE)
        except (ValueError, OSError, UserError) as e:
            raise UserError(f"{self.out}: a live run's saved state is there but cannot be read ({e}); give another "
                            "--out or remove live.json and state.npz to start afresh.") from None
        self.feed_clock = float(prog["feed_clock"])
        self.next_forecast = float(prog["next_forecast"])
        self.forced = dict(prog["forced"])
        self.readings = {q: [tuple(r) for r in rs] for q, rs in prog["readings"].items()}
        self.scored = set(prog["scored"])
        self.pending = [Observation(**o) for o in prog["pending"]]
        for url, counts in prog.get("feeds", {}).items():
            if url in self.stats:
                for k, v in counts.items():
                    setattr(self.stats[url], k, v)
        obs = _read_parquet(self.out / "observations.parquet")
        self.observations = [Observation(**r) for r in obs.to_dict("records")] if obs is not None else []
        for o in self.observations:
            if o.fate == "used" and o.sensor in self.observer.by_id and self.observer.by_id[o.sensor].how != "forcing":
                self.observed[(round(o.time_s, 6), f"sensor.{o.sensor}")] = (o.value, "observed")
        m = _read_parquet(self.out / "members.parquet")
        if m is not None and len(m):
            for t, g in m.groupby("issued_at", sort=True):
                fc = Forecast(float(t), g.drop(columns="issued_at").reset_index(drop=True),
                              "assimilated" if self.s.assimilate != "off" else "open_loop")
                self.forecasts.append(fc)
                self.quantiles.append(fc.quantiles())
        for name, target in (("alerts.csv", self.alerts), ("skill.csv", self.skill)):
            if (self.out / name).is_file() and (self.out / name).stat().st_size:
                target += pd.read_csv(self.out / name, keep_default_na=False).to_dict("records")
        # a forecast scored only in part when the twin stopped is scored again in full from here
        self.skill[:] = [r for r in self.skill if float(r["issued_at"]) in self.scored]
        return state

    def _feed_counts(self) -> dict:
        return {u: {k: getattr(st, k) for k in ("received", "used", "late", "invalid", "errors", "silences", "jumps")}
                for u, st in self.stats.items()}

    def summary(self) -> dict:
        return {"time_s": self.run.time_s, "feeds": self._feed_counts(), "forecasts": len(self.forecasts),
                "alerts": len(self.alerts), "skill_rows": len(self.skill), "forced": sorted(self.forced),
                # readings for a time the filter had passed when they came (not used by it)
                "late_for_filter": self.filter_late if self.filter is not None else 0}




def _read_parquet(path: Path):
    return pd.read_parquet(path) if path.is_file() else None
