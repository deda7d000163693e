"""``citytwin assimilate``: a recorded day through a filter, as fast as it goes (docs/assimilation.md).

Two ensembles of the same N members start alike: member k has its own seed and its own draw of the
estimated parameters (``--estimate NAME=LOW..HIGH``, uniform over the range: the prior). Both
advance to every time a sensor reported. The open loop never looks at the readings; the filtered
ensemble is corrected by them:

- ``pf`` (sequential importance resampling): each member is weighted by the Gaussian likelihood of
  the readings (each sensor's declared ``noise_sd``), then the ensemble is resampled (systematic).
  A member drawn once keeps its run; each further copy is restored from its parent's state
  (``Run(state=...)``), reseeded (a replication number of its own: no two share a future) and its
  parameters moved by a small kernel (so that they do not collapse onto a few values).
- ``enkf`` (stochastic ensemble Kalman filter): the augmented vector is the estimated parameters,
  with ``localise_m`` the cells near the gauges of the state the model declares ``correctable``, and
  what each member predicts at the sensors; the gain is localised (Gaspari-Cohn), the cells are
  corrected in place and every member continues from its state with its updated parameters.

Forcing readings (a declared ``Forcing``) act on both ensembles as in live mode; an estimated
parameter keeps its member's value even where a forcing sets it. Every ``forecast_interval_s`` both
ensembles issue a forecast ``horizon_s`` ahead (``forecast.member_task``), scored against the record:
the sensors' readings and the truth's KPIs. ``--out`` is written as the run goes, with a checkpoint
at every forecast issue that the same command resumes from (``assim_checkpoint``).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from twin.core.errors import UserError
from twin.core.files import atomic_dir, write_csv, write_json, write_parquet
from twin.core.limits import MAX_SEED
from twin.core.params import plain_value
from twin.core.sensors import read_sensors
from twin.runs.uncertainty import fill_placeholders, placeholders
from .assim_checkpoint import CHECKPOINT, differences, read_checkpoint, write_checkpoint
from .assim_report import (TABLES, coverage_summary, headline_columns, kpis_forecast_exactly, skill_by_lead,
                           write_assimilation_report)
from .filters import (DEFAULT_OUTLIER_K, unexplained_variance, enkf_update, inflate, keep_spread, liu_west, localisation,
                      merge_duplicates, outlier_screen, particle_step,
                      relax_to_prior_spread, variance_unexplained_by)
from .forecast import MemberPool, forecast_frame, score
from .observe import Observer, expected_reading
from .synth import _is_tick, read_record, tick_times

NOISE_MEMORY = 0.3  # adaptive_noise: the weight of the newest innovation in a sensor's running error variance
STREAM = 0xA551  # the filter's draws (prior, resampling, perturbed observations, kernels)
METHODS = ("pf", "enkf")
OPEN_LOOP, ASSIMILATED = "open_loop", "assimilated"
TABLES_EVERY = 5  # citytwin assimilate: the estimates, updates and residuals written every this many updates


@dataclass
class AssimilationSettings:
    method: str = "pf"
    members: int = 20
    forecast_interval_s: float = 300.0
    horizon_s: float = 900.0
    outlier_k: float = DEFAULT_OUTLIER_K
    kernel: float = 0.3  # pf: the Liu-West kernel's h after resampling (jitter h × the spread, shrink by sqrt(1 - h²))
    inflation: float = 1.0  # enkf: the prior's departures from its mean × this before each update
    rtps: float = 0.5  # enkf: relaxation to prior spread of what the update corrects (0: none)
    spread_floor: float = 0.0  # enkf: each parameter's spread after an update at least this share of its range
    obs_error: float = 0.0  # a model error added to each sensor's noise: this share of the reading
    localise_m: float = 0.0  # enkf: correct the model's correctable state within 2 × this of a sensor (0: not)
    resample_below: float = 0.5  # pf: resample when the effective sample size falls below this share of N
    temper_to: float = 0.3  # pf: temper an update's likelihood so that this share of N stays effective (0: never)
    adaptive_noise: bool = True  # a sensor's error as its innovations show it (never below its declared noise)
    use_forcings: bool = True  # False: forcing readings are not applied (estimate a forcing's scale instead)
    # True: forcing readings are not applied but assimilated, as readings of each member's own forcing (what
    # pins down an estimated scale of it, leaving the state sensors to the other parameters)
    observe_forcings: bool = False
    # enkf: after each update every member runs again from its state this many seconds back with its
    # updated parameters (0: not), so that its state agrees with them (see EnsembleFilter._rerun)
    rerun_lag_s: float = 0.0
    # an update every this many seconds from each sensor's mean reading since the last one, against the
    # members' mean prediction at the same times (0: an update at every reading; see EnsembleFilter._gather)
    update_every_s: float = 0.0
    workers: int = 1
    report: bool = True  # report.html and its pictures (parameters, residuals, skill) in --out


@dataclass
class Member:
    run: object
    seed: int
    params: dict
    cum: dict = field(default_factory=dict)  # count sensors: (id, tick time) -> the cumulative value then


class EnsembleFilter:
    """An ensemble of model runs kept in step with the readings of the state sensors by a filter:
    what ``citytwin assimilate`` (below) and ``citytwin live --assimilate`` share. Readings and forcing
    messages are put into ``obs`` and ``forcing_msgs`` (time -> list); ``catch_up(t)`` takes the
    members through every such time up to ``t``."""

    def __init__(self, scenario, ranges: list, settings: AssimilationSettings, variant: str | None = None,
                 seed: int | None = None, overrides: dict | None = None, log=print):
        from twin.scenario.scenario import BASELINE

        if settings.method not in METHODS:
            raise UserError(f"--method {settings.method}: give one of {', '.join(METHODS)}.")
        if settings.members < 2:
            raise UserError(f"--members {settings.members}: a filter needs at least 2 members.")
        if settings.method == "enkf" and settings.localise_m > 0 and not scenario.model_class().correctable:
            raise UserError(f"--localise-m {settings.localise_m:g}: model {scenario.model} declares no state a filter "
                            "may correct; leave --localise-m out to estimate parameters only.")
        if settings.rerun_lag_s > 0 and (settings.method != "enkf" or settings.localise_m > 0):
            raise UserError(f"--rerun-lag-s {settings.rerun_lag_s:g}: runs the members again with their updated "
                            "parameters, which only --method enkf estimating parameters alone gives; use it with "
                            "--method enkf and without --localise-m.")
        if settings.spread_floor > 0 and settings.method != "enkf":
            raise UserError(f"--spread-floor {settings.spread_floor:g}: keeps the ensemble Kalman filter's parameters "
                            "apart; the particle filter's kernel (--kernel) does that for pf. Use it with --method enkf.")
        self.sc, self.s, self.ranges = scenario, settings, list(ranges)
        self.variant = variant or BASELINE
        self.seed = scenario.seed if seed is None else int(seed)
        self.base = dict(overrides or {})
        self.holes = set(placeholders(self.base)) & {r.name for r in self.ranges}  # estimates inside a --set value
        self._log = log
        sensors = read_sensors(scenario.load_city())
        self.observer = Observer(scenario.model_class(), sensors)
        self.state_sensors = self.observer.state_sensors + (self.observer.forcing_sensors
                                                            if settings.observe_forcings else [])
        self.by_id = {s.id: s for s in self.state_sensors}
        self.obs: dict[float, list[tuple[str, float]]] = {}
        self.forcing_msgs: dict[float, list[tuple[str, str, float]]] = {}
        self.hidden: dict = {}  # a twin experiment's hidden parameters (the truth of the estimates)
        self.readings: dict[str, list] = {}
        self.forced: dict = {}
        self.rng = np.random.default_rng([self.seed, STREAM])
        self.n_updates = 0
        self._cells = None  # enkf with --localise-m: the correctable state elements near the sensors
        self.weights = np.full(settings.members, 1.0 / settings.members)  # pf: carried between resamplings
        self.param_rows: list[dict] = []
        self.update_rows: list[dict] = []
        self.residual_rows: list[dict] = []
        self.noise_seen: dict[str, float] = {}  # adaptive_noise: each sensor's error variance as seen so far
        # adaptive_noise, pf: each sensor's spread of the members that their parameters do not explain, so far
        self.spread_seen: dict[str, float] = {}
        self.members: list[Member] = []  # the filtered ensemble
        # rerun_lag_s: the filtered members as they were after recent updates, to run again from
        # ({"time", "forced", "states", "cum"}), and every change of the forcings since the oldest
        self.anchors: list[dict] = []
        self.forced_log: list[list] = []  # [time, the forced parameters from then on]
        # update_every_s: the readings since the last update, by sensor: {"y": sum, "hx": each member's
        # sum, "n": readings}, and those the outlier test turned away meanwhile
        self.window: dict[str, dict] = {}
        self.window_rejected = 0
        self.time_s = 0.0  # where catch_up has taken it
        self.on_update = None  # called with the time after each update (citytwin assimilate writes its tables)

    def start(self, state: bytes | None = None, open_loop: bool = False) -> list[Member]:
        """The filtered ensemble (from the start, or every member from ``state``: a live twin's); with
        ``open_loop`` also returns its twin that no reading will correct."""
        filt, open_ = self._initial(state, open_loop)
        self.members = filt
        self.time_s = filt[0].run.time_s
        self._record_params(self.time_s, filt)
        self._anchor(self.time_s)
        return open_

    def catch_up(self, t: float, others: list[list[Member]] = ()) -> list[list[Member]]:
        """Every time up to ``t`` a reading or forcing message is at (and every count sensor's tick):
        the members advance to it and are corrected; ``others`` (an open loop) advance alongside and
        take the forcings. Returns ``others`` as they are then."""
        counts = [s for s in self.state_sensors if s.mode == "count"]
        every = self.s.update_every_s
        due = {round(k * every, 6) for k in range(1, int(math.floor(t / every + 1e-9)) + 1)} if every > 0 else set()
        times = sorted(x for x in set(self.obs) | set(self.forcing_msgs) | set(tick_times(counts, t)) | due | {round(t, 6)}
                       if self.time_s + 1e-9 < x <= t + 1e-9)
        others = list(others)
        for x in times:
            for m in self.members + [m for o in others for m in o]:
                m.run.advance(x)  # a finished model stays as it ended: what its sensors read then
            self._count_ticks(x, self.members)
            rows = self.obs.get(x, [])
            batch = None
            if rows:
                ids, y = merge_duplicates([sid for sid, _ in rows], [v for _, v in rows])
                sensors = [self.by_id[i] for i in ids]
                HX = self._predict(x, self.members, sensors)
                batch = (sensors, HX, y, np.ones(len(y))) if every <= 0 else self._gather(x, sensors, HX, y)
            if every > 0 and _is_tick(x, every) and self.window:
                batch = self._window_means()
            if batch is not None:
                self.members = self._update(x, self.members, *batch)
                if self.s.rerun_lag_s > 0:
                    wall = time.perf_counter()
                    self.members = self._rerun(x)
                    self.update_rows[-1]["wall_s"] = round(self.update_rows[-1]["wall_s"] + time.perf_counter() - wall, 4)
                self._record_params(x, self.members, self.weights)
                if self.on_update is not None:
                    self.on_update(x)
            self.members, *others = self._apply_forcings(x, [self.members, *others])
            if batch is not None:
                self._anchor(x)
            self.time_s = x
        return others

    def log(self, text: str) -> None:
        if self._log:
            self._log(text)

    # -- the ensembles ------------------------------------------------------------------------------------
    def _overrides(self, params: dict, forced: dict | None = None) -> dict:
        """A member's parameters: ``--set``, the forcings so far, its estimates; an estimate that fills a
        ``{NAME}`` hole goes into the value holding it (a forcing of that parameter replaces the whole value)."""
        fixed = {**self.base, **(self.forced if forced is None else forced)}
        if self.holes:
            fixed = fill_placeholders(fixed, {k: v for k, v in params.items() if k in self.holes})
            params = {k: v for k, v in params.items() if k not in self.holes}
        return {**fixed, **params}

    def _build(self, seed: int, params: dict, state: bytes | None = None, replication: int = 0,
               forced: dict | None = None):
        from twin.core.state_file import state_from_bytes
        from twin.runs.runner import Run

        st = state_from_bytes(state, "assimilation member") if state is not None else None
        return Run(self.sc, self.variant, seed, self._overrides(params, forced), state=st, replication=replication,
                   outputs=False)

    def _initial(self, state: bytes | None = None, open_loop: bool = True) -> tuple[list[Member], list[Member]]:
        n = self.s.members
        u = self.rng.random((n, len(self.ranges)))
        filt, open_ = [], []
        for k in range(n):
            seed = int((self.seed * 1_000_003 + k + 1) % (MAX_SEED + 1))
            params = {r.name: r.scale(u[k, j]) for j, r in enumerate(self.ranges)}
            # from a given state every member is its own replication: no two share a future
            rep = 0 if state is None else k + 1
            filt.append(Member(self._build(seed, params, state, rep), seed, dict(params)))
            if open_loop:
                open_.append(Member(self._build(seed, params, state, rep), seed, dict(params)))
        if state is not None:  # a count sensor's last tick before the state: its count since then is new
            t0 = filt[0].run.time_s
            for s in (s for s in self.state_sensors if s.mode == "count"):
                last = round(math.floor(t0 / s.interval_s + 1e-9) * s.interval_s, 6)
                for m in filt + open_:
                    v = self.observer.read(m.run.model, [s])[s.id]
                    m.cum[(s.id, last)] = 0.0 if math.isnan(v) else v
        return filt, open_

    def _count_ticks(self, t: float, members: list[Member]) -> None:
        """Every count sensor due at ``t`` (whether or not it reported): each member's cumulative value."""
        due = [s for s in self.state_sensors if s.mode == "count" and _is_tick(t, s.interval_s)]
        for m in members if due else ():
            values = self.observer.read(m.run.model, due)
            for s in due:
                m.cum[(s.id, round(t, 6))] = 0.0 if math.isnan(values[s.id]) else values[s.id]

    def _predict(self, t: float, members: list[Member], sensors: list) -> np.ndarray:
        """What each member's sensors read at ``t`` (N × m), as the sensor reports it on average
        (``expected_reading``: never below zero); a count sensor: the increase over its interval."""
        out = np.full((len(members), len(sensors)), np.nan)
        for i, m in enumerate(members):
            values = self.observer.read(m.run.model, [s for s in sensors if s.mode != "count"])
            for j, s in enumerate(sensors):
                if s.mode == "count":
                    now = m.cum.get((s.id, round(t, 6)), math.nan)
                    out[i, j] = now - m.cum.get((s.id, round(t - s.interval_s, 6)), 0.0)
                else:
                    out[i, j] = values[s.id]
        for j, s in enumerate(sensors):
            out[:, j] = expected_reading(s, out[:, j])
        return out

    def _gather(self, t: float, sensors: list, HX: np.ndarray, y: np.ndarray) -> None:
        """update_every_s: keep the readings at ``t`` and what each member predicted of them, for the
        next update's means. A count of 60 people a minute is a draw of the crowd's randomness as much
        as of its demand: ten members' covariance over one minute takes that randomness for demand,
        and the estimate wanders with it. The mean over five minutes carries the same evidence with
        a fifth of the randomness per update. A reading the outlier test turns away (against the
        members' spread now and the sensor's error: declared, or as the updates have seen it, that of
        a mean of the window's readings, so for one reading that many times the variance) does not
        enter the mean."""
        var = [max(s.noise_sd ** 2, self.noise_seen.get(s.id, 0.0) * max(1.0, self.s.update_every_s / s.interval_s))
               for s in sensors]
        usable, rejected = outlier_screen(HX, y, np.maximum(np.sqrt(var), 1e-6), self.s.outlier_k)
        for j in np.flatnonzero(usable):
            w = self.window.setdefault(sensors[j].id, {"y": 0.0, "hx": [0.0] * len(HX), "n": 0})
            w["y"] += float(y[j])
            w["hx"] = [a + float(b) for a, b in zip(w["hx"], HX[:, j])]
            w["n"] += 1
        self.window_rejected += int(rejected.sum())
        self._log_rejected(t, sensors, y, rejected)

    def _log_rejected(self, t: float, sensors: list, y: np.ndarray, rejected: np.ndarray) -> None:
        if rejected.any():
            self.log(f"[t = {t:g} s] rejected as outliers: "
                     + ", ".join(f"{s.id} = {y[j]:g}" for j, s in enumerate(sensors) if rejected[j]))

    def _window_means(self) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
        """(sensors, predicted, observed, readings per sensor): the means since the last update."""
        ids = list(self.window)
        n = np.array([self.window[i]["n"] for i in ids], dtype=np.float64)
        y = np.array([self.window[i]["y"] for i in ids]) / n
        HX = np.array([self.window[i]["hx"] for i in ids], dtype=np.float64).T / n
        self.window = {}
        return [self.by_id[i] for i in ids], HX, y, n

    # -- the filters -----------------------------------------------------------------------------------------
    def _update(self, t: float, members: list[Member], sensors: list, HX: np.ndarray, y: np.ndarray,
                n: np.ndarray) -> list[Member]:
        """The filter's step at ``t`` on readings ``y`` (each the mean of ``n`` readings)."""
        # the sensor's declared noise (of a mean of n readings: / sqrt(n)), and what the model cannot
        # represent: obs_error × the reading (a model's error persists: no mean shrinks it)
        sd = np.sqrt(np.array([s.noise_sd for s in sensors]) ** 2 / n
                     + (self.s.obs_error * np.nan_to_num(np.abs(y))) ** 2)
        if self.s.adaptive_noise:
            sd = self._adapted_noise(sensors, HX, y, sd, members)
        sd = np.maximum(sd, 1e-6)
        wall = time.perf_counter()
        rng = np.random.default_rng([self.seed, STREAM, self.n_updates + 1])
        before = (self.weights if self.s.method == "pf" else np.full(len(HX), 1.0 / len(HX))) @ HX
        ess = float(len(members))
        tempering = 1.0
        if self.s.method == "pf":
            up = particle_step(HX, y, sd, rng, prior_weights=self.weights, resample_below=self.s.resample_below,
                               outlier_k=self.s.outlier_k, temper_to=self.s.temper_to)
            tempering = up.tempering
            after = up.weights @ HX
            if up.resampled:
                members = self._resample(members, up.parents, rng)
                self.weights = np.full(len(members), 1.0 / len(members))
            else:
                self.weights = up.weights
            ess, used, rejected = up.ess, up.used, up.rejected
        else:
            P = np.array([[m.params[r.name] for r in self.ranges] for m in members], dtype=np.float64).reshape(
                len(members), len(self.ranges))
            cells = self._correctable_cells(members[0])
            S = np.hstack([np.array([_array(m.run.model, c.path).reshape(-1)[idx] for m in members], dtype=np.float64)
                           for c, idx, _ in cells]) if cells else np.zeros((len(members), 0))
            rho_xs = rho_yy = None
            if cells:  # a sensor corrects the cells around it; the parameters are global
                obs_xy = np.array([[s.x, s.y] for s in sensors])
                state_xy = np.vstack([np.full((P.shape[1], 2), np.nan)] + [xy for _, _, xy in cells] + [obs_xy])
                rho_xs, rho_yy = localisation(obs_xy, state_xy, self.s.localise_m)
            prior = inflate(np.hstack([P, S, HX]), self.s.inflation)
            p, k = P.shape[1], S.shape[1]
            up = enkf_update(prior, prior[:, p + k:], y, sd, rng, rho_xs, rho_yy, outlier_k=self.s.outlier_k)
            used, rejected = up.used, up.rejected
            if used.any():  # the corrected parameters and state keep a share of the prior's spread
                up.members[:, :p + k] = relax_to_prior_spread(prior[:, :p + k], up.members[:, :p + k], self.s.rtps)
                if self.s.spread_floor > 0 and p:
                    up.members[:, :p] = keep_spread(up.members[:, :p], self._floor_sd(self.s.spread_floor), rng)
            after = up.members[:, p + k:].mean(axis=0)
            if used.any() and cells:
                for i, m in enumerate(members):
                    j = p
                    for c, idx, _ in cells:
                        flat = _array(m.run.model, c.path).reshape(-1)  # a view: corrected in place
                        new = up.members[i, j:j + len(idx)]
                        flat[idx] = np.maximum(new, c.low) if c.low is not None else new
                        j += len(idx)
            if used.any() and self.s.rerun_lag_s > 0:  # _rerun builds them with their new values
                members = [Member(m.run, m.seed, self._clip(up.members[i, :p]), m.cum) for i, m in enumerate(members)]
            elif used.any() and (self.ranges or cells):
                members = [self._with_params(m, self._clip(up.members[i, :p]), 0, rebuild=bool(cells))
                           for i, m in enumerate(members)]
        self.n_updates += 1
        missing = ~np.isfinite(y)
        self.update_rows.append({"time_s": t, "method": self.s.method, "observations": len(y),
                                 "used": int(used.sum()), "rejected": int(rejected.sum()) + self.window_rejected,
                                 "missing": int(missing.sum()), "ess": ess, "tempering": tempering,
                                 "wall_s": round(time.perf_counter() - wall, 4)})
        self.window_rejected = 0
        for j, s in enumerate(sensors):
            fate = "used" if used[j] else "rejected" if rejected[j] else "missing"
            self.residual_rows.append({"time_s": t, "sensor": s.id, "observed": y[j], "before": before[j],
                                       "after": after[j] if used.any() else before[j], "fate": fate})
        self._log_rejected(t, sensors, y, rejected)
        return members

    def _adapted_noise(self, sensors: list, HX: np.ndarray, y: np.ndarray, sd: np.ndarray,
                       members: list[Member]) -> np.ndarray:
        """Each sensor's error as its readings have shown it: a running mean (the last few updates) of
        its innovations' variance that the ensemble's spread does not explain, never below the declared
        noise. What the model cannot represent (its own randomness at a sensor, a process it lacks)
        then widens the likelihood instead of making the filter ever surer of a wrong answer. A reading
        the outlier test would reject (with the error seen so far) does not count.

        pf: a particle is one draw of a stochastic model, the truth another: a particle with the truth's
        parameters misses a reading by the model's own randomness there, twice over (the truth's draw
        and its own). That randomness is the members' spread their parameters do not explain
        (``variance_unexplained_by``; taken at once where it grows, forgotten as above where it
        shrinks); the error is at least the declared noise plus twice it. Without it a count of 60 a
        minute weighs the particles with its declared ±2 while two runs with the same parameters count
        ±10 apart, and the filter selects the luckiest draw of the model's randomness instead of the
        parameters."""
        w = self.weights if self.s.method == "pf" else np.full(len(HX), 1.0 / len(HX))
        u = unexplained_variance(HX, y, w)
        var = w @ (HX - w @ HX) ** 2
        own = np.zeros(len(sensors))
        if self.s.method == "pf":
            theta = np.array([[m.params[r.name] for r in self.ranges] for m in members], dtype=np.float64)
            spread = variance_unexplained_by(HX, theta.reshape(len(members), len(self.ranges)), w)
            for j, s in enumerate(sensors):
                seen = self.spread_seen.get(s.id)
                if np.isfinite(spread[j]):  # at once where it grows (a crowd arriving), slowly where
                    # it shrinks (copies of one member after a resampling are alike, though the model is not)
                    self.spread_seen[s.id] = (spread[j] if seen is None else
                                              max(spread[j], (1 - NOISE_MEMORY) * seen + NOISE_MEMORY * spread[j]))
                own[j] = self.spread_seen.get(s.id, 0.0)
        out = sd.copy()
        for j, s in enumerate(sensors):
            seen = self.noise_seen.get(s.id)
            now = max(sd[j] ** 2, seen or 0.0)
            if np.isfinite(u[j]) and u[j] + var[j] <= self.s.outlier_k ** 2 * (var[j] + now):
                self.noise_seen[s.id] = max(u[j], 0.0) if seen is None else (
                    (1 - NOISE_MEMORY) * seen + NOISE_MEMORY * max(u[j], 0.0))
            out[j] = math.sqrt(max(sd[j] ** 2, self.noise_seen.get(s.id, 0.0), sd[j] ** 2 + 2.0 * own[j]))
        return out

    def _floor_sd(self, share: float) -> np.ndarray:
        return np.array([share * (r.high - r.low) for r in self.ranges])

    def _clip(self, values) -> dict:
        return {r.name: r.value(min(max(float(v), r.low), r.high)) for r, v in zip(self.ranges, values)}

    def _resample(self, members: list[Member], parents: np.ndarray, rng) -> list[Member]:
        """Children of the drawn parents, their parameters drawn from the Liu-West kernel (every child,
        so the parameters do not collapse onto the few drawn). The first copy of a parent continues its
        parent's run; each further copy is restored from its state and reseeded."""
        P = np.array([[m.params[r.name] for r in self.ranges] for m in members], dtype=np.float64).reshape(
            len(members), len(self.ranges))
        moved = liu_west(P[parents], np.full(len(parents), 1.0 / len(parents)), self.s.kernel, rng, self._floor_sd(0.01))
        seen: set[int] = set()
        out = []
        for i, p in enumerate(int(x) for x in parents):
            params = self._clip(moved[i]) if self.s.kernel > 0 else dict(members[p].params)
            # a replication number no other member ever had: a further copy's future is its own
            replication = 0 if p not in seen else self.n_updates * self.s.members + i + 1
            seen.add(p)
            out.append(self._with_params(members[p], params, replication))
        return out

    def _correctable_cells(self, member: Member) -> list:
        """(declaration, flat indices, cell centres) of the correctable state near the gauges: the cells
        within twice the localisation half-width of a state sensor (beyond, the taper is 0)."""
        if self._cells is not None:
            return self._cells
        self._cells = []
        if not (self.s.method == "enkf" and self.s.localise_m > 0):
            return self._cells
        model = member.run.model
        xy = np.array([[s.x, s.y] for s in self.state_sensors])
        for c in type(model).correctable:
            grid = model.field_values([c.field], model.snapshot())[c.field]
            arr = _array(model, c.path)
            if arr.shape != grid.values.shape or not arr.flags.c_contiguous:
                raise ValueError(f"model {model.name}: correctable {c.path} is not a C-ordered array on the grid of "
                                 f"field {c.field} ({arr.shape} against {grid.values.shape})")
            xs, ys = grid.cell_centres()
            X, Y = np.meshgrid(xs, ys)
            d = np.min(np.hypot(X.reshape(-1, 1) - xy[:, 0], Y.reshape(-1, 1) - xy[:, 1]), axis=1)
            idx = np.flatnonzero((d < 2 * self.s.localise_m) & np.isfinite(grid.values.reshape(-1)))
            self._cells.append((c, idx, np.column_stack([X.reshape(-1)[idx], Y.reshape(-1)[idx]])))
        return self._cells

    def _with_params(self, m: Member, params: dict, replication: int, rebuild: bool = False) -> Member:
        if not rebuild and replication == 0 and all(plain_value(m.params.get(k)) == plain_value(v) for k, v in params.items()):
            return m
        try:
            run = self._build(m.seed, params, m.run.state_bytes(), replication)
        except UserError as e:
            raise self._cannot_continue(m.params, params, e) from None
        return Member(run, m.seed, dict(params), dict(m.cum))

    def _cannot_continue(self, before: dict, params: dict, e: UserError) -> UserError:
        """The model refused to continue a run with ``params`` (``before`` made its state): which of them."""
        changed = ", ".join(k for k, v in params.items() if plain_value(before.get(k)) != plain_value(v))
        if not changed:
            return e
        return UserError(f"--estimate: model {self.sc.model} cannot continue a run with another value of {changed} "
                         f"({str(e).rstrip('.')}). Estimate another parameter, or with --method pf give --kernel 0 (the "
                         "particles keep their drawn values).")

    def _anchor(self, t: float) -> None:
        """rerun_lag_s: keep the filtered members as they are at ``t`` to run again from later."""
        if self.s.rerun_lag_s <= 0:
            return
        self.anchors.append({"time": t, "forced": {k: plain_value(v) for k, v in self.forced.items()},
                             "params": [dict(m.params) for m in self.members],
                             "states": [m.run.state_bytes() for m in self.members],
                             "cum": [dict(m.cum) for m in self.members]})

    def _rerun(self, t: float) -> list[Member]:
        """Every member run again from where it was ``rerun_lag_s`` ago (the latest anchor at or before
        then), with the parameters the update at ``t`` gave it, through the forcings as they changed.

        A parameter-only update leaves each member's state as its old parameters made it. Where a
        parameter reaches the sensors only minutes later (a demand that reaches the counters only as
        the people it brings walk there), the next updates see the same shortfall again and push the parameter
        on: it overshoots, and what the overshoot did stays in the state (in a mean since the start,
        for good). Run again over the lag, the state agrees with the parameters and each reading's
        evidence counts once (an ensemble smoother over a lag window, with the model run again)."""
        lag = self.s.rerun_lag_s
        start = [a for a in self.anchors if a["time"] <= t - lag + 1e-9]
        a = start[-1] if start else self.anchors[0]
        self.anchors = [b for b in self.anchors if b["time"] >= a["time"]]
        self.forced_log = [f for f in self.forced_log if f[0] > a["time"]]
        changes = {round(ft, 6): forced for ft, forced in self.forced_log if ft < t - 1e-9}
        counts = [s for s in self.state_sensors if s.mode == "count"]
        events = sorted({x for x in tick_times(counts, t) if x > a["time"] + 1e-9} | set(changes) | {round(t, 6)})
        out = []
        for k, m in enumerate(self.members):
            try:
                run = self._build(m.seed, m.params, a["states"][k], 0, a["forced"])
            except UserError as e:
                raise self._cannot_continue(a["params"][k], m.params, e) from None
            new = Member(run, m.seed, dict(m.params), {**m.cum, **a["cum"][k]})
            for x in events:
                new.run.advance(x)
                self._count_ticks(x, [new])
                if x in changes:
                    new.run = self._build(m.seed, m.params, new.run.state_bytes(), 0, changes[x])
            out.append(new)
        return out

    def _record_params(self, t: float, members: list[Member], weights: np.ndarray | None = None) -> None:
        hidden = self.hidden
        w = np.full(len(members), 1.0 / len(members)) if weights is None else weights
        for r in self.ranges:
            v = np.array([m.params[r.name] for m in members], dtype=np.float64)
            p10, p50, p90 = weighted_quantiles(v, w, (0.1, 0.5, 0.9))
            truth = hidden.get(r.name, math.nan)
            self.param_rows.append({"time_s": t, "parameter": r.name, "mean": float(w @ v), "p10": float(p10),
                                    "p50": float(p50), "p90": float(p90),
                                    "truth": float(truth) if isinstance(truth, (int, float)) else math.nan})

    # -- forecasts from the ensemble ------------------------------------------------------------------------
    def forecast_tasks(self, t: float, members: list[Member], weights: np.ndarray | None, horizon_s: float,
                       extra: dict | None = None, rules=()) -> list[tuple]:
        """The tasks (``forecast.member_task``) of a forecast ``horizon_s`` ahead, one per member, each its
        own replication (its own future). A weighted ensemble (pf between resamplings) forecasts from a
        systematic draw of its members by weight; the copies' parameters drawn from the Liu-West kernel as
        at a resampling, so that copies of one member do not forecast one future."""
        params = [m.params for m in members]
        if weights is not None and not np.allclose(weights, weights[0]):
            from .filters import systematic_resample

            rng = np.random.default_rng([self.seed, STREAM, 0, int(round(t * 1000))])
            draw = systematic_resample(weights, rng)
            members = [members[i] for i in draw]
            params = [m.params for m in members]
            if self.ranges and self.s.kernel > 0:
                P = np.array([[m.params[r.name] for r in self.ranges] for m in members], dtype=np.float64)
                moved = liu_west(P, np.full(len(P), 1.0 / len(P)), self.s.kernel, rng, self._floor_sd(0.01))
                params = [self._clip(row) for row in moved]
        sc = self.sc
        sensors = self.state_sensors
        return [(sc.raw, str(sc.path) if sc.path else None, str(sc.city_path), m.run.state_bytes(), self.variant,
                 m.seed, {**self._overrides(p), **(extra or {})}, k + 1, horizon_s, sensors, [s.id for s in sensors],
                 list(rules)) for k, (m, p) in enumerate(zip(members, params))]

    def write_tables(self, out: Path) -> None:
        """``parameters.csv``, ``updates.csv`` and ``residuals.csv`` so far (each written atomically)."""
        write_csv(pd.DataFrame(self.param_rows, columns=TABLES["parameters.csv"]),
                  out / "parameters.csv")
        write_csv(pd.DataFrame(self.update_rows, columns=["time_s", "method", "observations", "used", "rejected",
                                                          "missing", "ess", "tempering", "wall_s"]), out / "updates.csv")
        write_csv(pd.DataFrame(self.residual_rows, columns=TABLES["residuals.csv"]),
                  out / "residuals.csv")

    # -- a checkpoint (citytwin assimilate resumes from it) ------------------------------------------------------
    # The filter's own state that is plain JSON (numbers, per-sensor tables, rows), saved and restored by
    # name; whatever else an update carries from one to the next is handled in saved() and restore().
    RESUMED = ("time_s", "n_updates", "noise_seen", "spread_seen", "forced", "forced_log", "param_rows", "update_rows",
               "residual_rows", "window", "window_rejected")

    def saved(self, ensembles: dict[str, list[Member]]) -> tuple[dict, dict[str, bytes]]:
        """What the filter needs to go on exactly as it would have (with ``ensembles``, by name, beside
        its own): a JSON-able document and each member's state."""
        doc = {name: getattr(self, name) for name in self.RESUMED}
        doc.update({"forced": {k: plain_value(v) for k, v in self.forced.items()}, "weights": self.weights.tolist(),
                    "rng": self.rng.bit_generator.state, "readings": self.readings,
                    "cells": None if self._cells is None else [{"path": c.path, "index": idx.tolist(),
                                                                "xy": xy.tolist()} for c, idx, xy in self._cells],
                    "ensembles": {}, "anchors": [{"time": a["time"], "forced": a["forced"], "params": a["params"],
                                                  "cum": [[[sid, t, v] for (sid, t), v in c.items()] for c in a["cum"]]}
                                                 for a in self.anchors]})
        states = {f"anchor{j}/{k}": b for j, a in enumerate(self.anchors) for k, b in enumerate(a["states"])}
        for name, members in {"filtered": self.members, **ensembles}.items():
            doc["ensembles"][name] = [{"seed": m.seed, "params": {k: plain_value(v) for k, v in m.params.items()},
                                       "cum": [[sid, t, v] for (sid, t), v in m.cum.items()]} for m in members]
            states.update({f"{name}/{k}": m.run.state_bytes() for k, m in enumerate(members)})
        return doc, states

    def restore(self, doc: dict, states: dict[str, bytes]) -> dict[str, list[Member]]:
        """The filter as ``saved`` left it; returns the other ensembles saved with it, by name."""
        for name in self.RESUMED:
            setattr(self, name, doc[name])
        self.weights = np.array(doc["weights"], dtype=np.float64)
        self.rng.bit_generator.state = doc["rng"]
        self.readings = {q: [tuple(r) for r in rows] for q, rows in doc["readings"].items()}
        ensembles = {}
        for name, members in doc["ensembles"].items():
            ensembles[name] = [Member(self._build(int(m["seed"]), m["params"], states[f"{name}/{k}"]), int(m["seed"]),
                                      dict(m["params"]), {(sid, float(t)): float(v) for sid, t, v in m["cum"]})
                               for k, m in enumerate(members)]
        self.members = ensembles.pop("filtered")
        self.anchors = [{"time": a["time"], "forced": a["forced"], "params": a["params"],
                         "states": [states[f"anchor{j}/{k}"] for k in range(len(a["cum"]))],
                         "cum": [{(sid, float(t)): float(v) for sid, t, v in c} for c in a["cum"]]}
                        for j, a in enumerate(doc["anchors"])]
        if doc["cells"] is not None:
            by_path = {c.path: c for c in type(self.members[0].run.model).correctable}
            self._cells = [(by_path[c["path"]], np.array(c["index"], dtype=np.int64),
                            np.array(c["xy"], dtype=np.float64).reshape(-1, 2)) for c in doc["cells"]]
        return ensembles

    # -- forcings --------------------------------------------------------------------------------------------
    def _apply_forcings(self, t: float, ensembles: list[list[Member]]) -> list[list[Member]]:
        due = self.forcing_msgs.get(round(t, 6))
        if not due or not self.s.use_forcings:
            return ensembles
        changed = set()
        for sid, feature, v in sorted(due):
            q = self.observer.by_id[sid].sensor.value
            self.readings.setdefault(q, []).append((t, feature, v))
            changed.add(q)
        model = ensembles[0][0].run.model
        new = dict(self.forced)
        for q in sorted(changed):
            new.update(model.forced_parameters(q, self.readings[q]))
        estimated = {r.name for r in self.ranges}
        new = {k: v for k, v in new.items() if k not in estimated}
        if new.keys() == self.forced.keys() and all(plain_value(self.forced[k]) == plain_value(v)
                                                    for k, v in new.items()):
            return ensembles
        p = model.p
        differ = [k for k, v in new.items() if k not in p or plain_value(p[k]) != plain_value(v)]
        if self.s.rerun_lag_s > 0:
            self.forced_log.append([t, {k: plain_value(v) for k, v in new.items()}])
        if not differ:  # a reading that changes nothing (the forcing as planned) costs nothing
            self.forced = new
            return ensembles
        self.forced = new
        out = []
        for members in ensembles:
            out.append([Member(self._build(m.seed, m.params, m.run.state_bytes()), m.seed, m.params, m.cum)
                        for m in members])
        return out

class Assimilation(EnsembleFilter):
    """``citytwin assimilate``: a record through the filter, beside an open loop that never looks."""

    def __init__(self, scenario, record: Path, ranges: list, settings: AssimilationSettings,
                 variant: str | None = None, seed: int | None = None, overrides: dict | None = None, log=print):
        super().__init__(scenario, ranges, settings, variant, seed, overrides, log)
        self.record_path = Path(record)
        self.record, msgs = read_record(self.record_path)
        if self.record.get("model") != scenario.model:
            raise UserError(f"{self.record_path}: the record is of model {self.record.get('model')!r}, the scenario "
                            f"{scenario.where} runs model {scenario.model!r}; give the record made from it.")
        self.hidden = self.record.get("overrides") or {}
        self.skipped = 0  # messages of no sensor of this model, or with a time that is not seconds in the run
        for m in msgs:
            r = self.observer.by_id.get(str(m.get("sensor"))) if isinstance(m, dict) else None
            t = _number(m.get("time")) if r is not None else math.nan
            if r is None or not math.isfinite(t) or not 0 < t <= scenario.duration_s + 1e-9:
                self.skipped += 1
                continue
            t, v = round(t, 6), _number(m.get("value"))  # a value that is not a number: a missing reading
            if r.how == "forcing" and not self.s.observe_forcings:
                if math.isfinite(v):
                    self.forcing_msgs.setdefault(t, []).append((r.sensor.id, str(m.get("feature", "")), v))
            else:
                self.obs.setdefault(t, []).append((r.sensor.id, v))
        if not self.obs:
            raise UserError(f"{self.record_path}: no reading of a sensor model {scenario.model} can be read at; "
                            "nothing to assimilate.")
        self.quantiles: list[pd.DataFrame] = []
        self.members_frames: list[pd.DataFrame] = []
        self.skill: list[dict] = []
        self.truth = self._truth()

    # -- forecasts -----------------------------------------------------------------------------------------
    def _truth(self) -> dict:
        """What forecasts are scored against: the sensors' readings and the truth run's KPIs."""
        truth: dict = {}
        for t, rows in self.obs.items():
            ids, vals = merge_duplicates([sid for sid, _ in rows], [v for _, v in rows])
            for sid, v in zip(ids, vals):
                if math.isfinite(v):
                    truth[(t, f"sensor.{sid}")] = (float(v), "observed")
        ts_path = self.record_path / "truth" / "timeseries.csv"
        if ts_path.is_file():
            ts = pd.read_csv(ts_path)
            for row in ts.to_dict("records"):
                t = round(float(row.pop("time_s")), 6)
                for k, v in row.items():
                    if isinstance(v, (int, float)) and math.isfinite(v):
                        truth[(t, f"kpi.{k}")] = (float(v), "truth")
        return truth

    def _forecast(self, t: float, method: str, members: list[Member], pool: MemberPool,
                  weights: np.ndarray | None = None) -> None:
        sc = self.sc
        tasks = self.forecast_tasks(t, members, weights, self.s.horizon_s)
        results = pool.map(tasks)
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            raise UserError(f"{sc.where}: a forecast member failed at t = {t:g} s: {errors[0]}")
        fc = forecast_frame(t, results)
        self.quantiles.append(fc.quantiles().assign(method=method))
        self.members_frames.append(fc.members.assign(issued_at=t, method=method))
        self.skill += score(fc, self.truth, method)

    # -- the loop ----------------------------------------------------------------------------------------------
    def run(self, out: Path, time_limit_s: float | None = None) -> dict:
        """The record through the filter; ``out`` is written as it goes (every forecast issue and every
        few updates) and holds a checkpoint the same command resumes from. With ``time_limit_s`` the run
        stops at the first checkpoint after that many seconds of wall time (``summary["complete"]`` False)."""
        out = Path(out)
        started = time.perf_counter()
        end = self.sc.duration_s
        every = self.s.forecast_interval_s
        fc_times = {round(k * every, 6) for k in range(1, int(math.floor(end / every + 1e-9)) + 1)
                    if k * every < end - 1e-9} if self.s.horizon_s > 0 else set()
        counts = [s for s in self.state_sensors if s.mode == "count"]
        last = max(set(self.obs) | set(self.forcing_msgs) | set(tick_times(counts, end)))
        self.planned, self.issued, self.wall_before = len(fc_times), 0, 0.0
        self._options = self.options()
        done = self._finished(out)
        if done is not None:
            return done
        open_ = self._resume(out)
        if open_ is None:
            if (out / "summary.json").is_file():  # stopped before its first checkpoint, or an earlier version's
                self.log(f"{out}: no checkpoint to resume from; starting from the beginning")
            open_ = self.start(open_loop=True)
        self.on_update = lambda t: self._progress(out, started)
        pool = MemberPool(self.s.workers)
        try:
            for t in sorted(x for x in fc_times | {last} if x > self.time_s + 1e-9):
                (open_,) = self.catch_up(t, [open_])
                if t in fc_times:
                    self._forecast(t, OPEN_LOOP, open_, pool)
                    self._forecast(t, ASSIMILATED, self.members, pool, self.weights)
                    self.issued += 1
                    self.log(f"[t = {t:g} s] forecasts issued ({len(self.update_rows)} updates so far)")
                    self._checkpoint(out, open_, started)
                    if time_limit_s is not None and time.perf_counter() - started >= time_limit_s and t < max(fc_times | {last}):
                        self.log(f"[t = {t:g} s] stopped: --time-limit-s {time_limit_s:g} reached; run the same command "
                                 f"again to go on from here")
                        return self._summary(self._wall(started), complete=False)
        finally:
            pool.close()
        summary = self._summary(self._wall(started))
        self._write(out, summary)
        (out / CHECKPOINT).unlink(missing_ok=True)
        return summary

    def options(self) -> dict:
        """What a resumed run must share with the run that wrote the checkpoint: the command's options
        (those that change the numbers: not --workers, --no-report or --time-limit-s), the scenario's
        inputs, the city's and the record's files, and the version."""
        from twin import __version__
        from twin.core.files import sha256_file

        s = self.s
        rec = {name: sha256_file(self.record_path / name)[:16] for name in ("record.json", "messages.jsonl",
                                                                             "truth/timeseries.csv")
               if (self.record_path / name).is_file()}  # the files' SHA-256 (its start names a change well enough)
        inputs = self.sc.resolved(self.variant, self.seed, fill_placeholders(self.base, {r.name: r.low for r in self.ranges
                                                                                          if r.name in self.holes}))
        inputs["scenario"].pop("description", None)
        return {"scenario": inputs, "city": self.sc.load_city().fingerprint(), "--record": rec,
                "--intervention": self.variant, "--seed": self.seed, "--estimate": [r.text for r in self.ranges],
                "--method": s.method, "--members": s.members, "--forecast-interval-s": s.forecast_interval_s,
                "--horizon-s": s.horizon_s, "--outlier-k": s.outlier_k, "--kernel": s.kernel,
                "--inflation": s.inflation, "--rtps": s.rtps, "--spread-floor": s.spread_floor, "--obs-error": s.obs_error,
                "--localise-m": s.localise_m, "--rerun-lag-s": s.rerun_lag_s, "--update-every-s": s.update_every_s, "--temper": s.temper_to, "resample_below": s.resample_below,
                "adaptive_noise": s.adaptive_noise, "forcings": "applied" if s.use_forcings else
                "observed (--observe-forcings)" if s.observe_forcings else "ignored (--ignore-forcings)",
                "version": __version__}

    def _refuse_other(self, out: Path, saved: dict, what: str) -> None:
        diff = differences(saved, self._options)
        if diff:
            raise UserError(f"--out {out}: holds {what} made with other inputs or options ({'; '.join(diff)}). "
                            "Give the same options (and scenario, record, city) to go on with it, or another --out "
                            "to start afresh.")

    def _finished(self, out: Path) -> dict | None:
        """The summary of a complete run of the same command in ``out`` (nothing is written again)."""
        try:
            summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(summary, dict) or summary.get("complete") is not True or "options" not in summary:
            return None  # an interrupted run (resumed from its checkpoint), or not this command's
        self._refuse_other(out, summary["options"], "a complete assimilation")
        (out / CHECKPOINT).unlink(missing_ok=True)  # left by a run stopped between its last two writes
        self.log(f"{out}: this assimilation is complete (summary.json); nothing to do. Give another --out to run "
                 "it again.")
        return summary

    def _resume(self, out: Path) -> list[Member] | None:
        """The open loop from the checkpoint in ``out``, the filter and the tables restored; None: none there."""
        path = out / CHECKPOINT
        if not path.is_file():
            return None
        doc, states, frames = read_checkpoint(path)
        self._refuse_other(out, doc.get("options") or {}, "an interrupted assimilation")
        others = self.restore(doc, states)
        self.skill = doc["skill"]
        self.quantiles = [frames["forecasts"]] if len(frames["forecasts"]) else []
        self.members_frames = [frames["members"]] if len(frames["members"]) else []
        self.issued, self.wall_before = int(doc["issued"]), float(doc["wall_s"])
        self.log(f"[t = {self.time_s:g} s] resumed from {path} ({self.issued} of {self.planned} forecasts issued, "
                 f"{len(self.update_rows)} updates so far)")
        return others[OPEN_LOOP]

    def _checkpoint(self, out: Path, open_: list[Member], started: float) -> None:
        """The checkpoint (everything to go on exactly from here), then the tables so far."""
        doc, states = self.saved({OPEN_LOOP: open_})
        q, members = self._frames()
        write_checkpoint(out / CHECKPOINT, {**doc, "options": self._options, "skill": self.skill, "issued": self.issued,
                                            "wall_s": self._wall(started)},
                         states, {"forecasts": q, "members": members})
        self._write_tables(out, self._summary(self._wall(started), complete=False))

    def _progress(self, out: Path, started: float) -> None:
        """Every few updates between forecasts: the estimates, updates and residuals so far."""
        if len(self.update_rows) % TABLES_EVERY:
            return
        self.write_tables(out)
        write_json(self._summary(self._wall(started), complete=False), out / "summary.json")

    def _wall(self, started: float) -> float:
        return self.wall_before + time.perf_counter() - started

    def _summary(self, wall_s: float, complete: bool = True) -> dict:
        skill = pd.DataFrame(self.skill)
        rmse = {}
        if len(skill):
            g = skill.groupby(["method", "kpi"])["rmse"].apply(lambda e: float(np.sqrt(np.mean(np.square(e)))))
            for (method, kpi), v in g.items():
                rmse.setdefault(kpi, {})[method] = v
        headline = headline_columns(self.sc.model_class())
        headline_rmse: dict = {}
        if len(skill):
            for r in skill_by_lead(skill[skill.kpi.isin(headline) & (skill.lead_s > 0)]).itertuples():
                headline_rmse.setdefault(r.kpi, {}).setdefault(f"{r.lead_s:g}", {})[r.method] = float(r.rmse)
        params = pd.DataFrame(self.param_rows)
        estimates = {}
        for r in self.ranges:
            p = params[params.parameter == r.name]
            estimates[r.name] = {"prior_mean": float(p["mean"].iloc[0]), "final_mean": float(p["mean"].iloc[-1]),
                                 "final_p10": float(p["p10"].iloc[-1]), "final_p90": float(p["p90"].iloc[-1]),
                                 "truth": None if math.isnan(p["truth"].iloc[-1]) else float(p["truth"].iloc[-1])}
        walls = [u["wall_s"] for u in self.update_rows]
        return {"scenario": self.sc.name, "model": self.sc.model, "record": str(self.record_path),
                "method": self.s.method, "members": self.s.members, "seed": self.seed,
                "estimate": [r.text for r in self.ranges], "updates": len(self.update_rows),
                "rejected": int(sum(u["rejected"] for u in self.update_rows)), "messages_skipped": self.skipped,
                "missing": int(sum(u["missing"] for u in self.update_rows)),
                "mean_update_wall_s": float(np.mean(walls)) if walls else 0.0, "wall_s": round(wall_s, 3),
                "complete": complete, "time_s": self.time_s, "forecasts_issued": self.issued,
                "forecasts_planned": self.planned, "rmse": rmse, "parameters": estimates, "options": self._options,
                "headline_kpis": headline, "headline_rmse_by_lead": headline_rmse,
                "coverage": coverage_summary(skill) if len(skill) else {},
                "kpis_forecast_exactly": kpis_forecast_exactly(skill) if len(skill) else []}

    def _frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The forecasts' quantiles and members' values so far, as written."""
        q = pd.concat(self.quantiles, ignore_index=True) if self.quantiles else pd.DataFrame(
            columns=["issued_at", "lead_s", "name", "p10", "p50", "p90", "n", "method"])
        q = q[["method"] + [c for c in q.columns if c != "method"]]
        members = pd.concat(self.members_frames, ignore_index=True) if self.members_frames else pd.DataFrame(
            columns=["lead_s", "name", "member", "value", "issued_at", "method"])
        return q, members[["method", "issued_at", "lead_s", "name", "member", "value"]]

    def _write_tables(self, folder: Path, summary: dict) -> None:
        """Every table (each file written whole), summary.json last."""
        q, members = self._frames()
        write_parquet(q, folder / "forecasts.parquet")
        write_parquet(members, folder / "members.parquet")
        write_csv(pd.DataFrame(self.skill, columns=TABLES["skill.csv"]), folder / "skill.csv")
        self.write_tables(folder)
        write_json(summary, folder / "summary.json")

    def _write(self, out: Path, summary: dict) -> None:
        with atomic_dir(out) as tmp:
            self._write_tables(tmp, summary)
            if self.s.report:
                write_assimilation_report(tmp, summary, summary["headline_kpis"])


def _array(model, path: str) -> np.ndarray:
    obj = model
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _number(v) -> float:
    if isinstance(v, bool):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def weighted_quantiles(v: np.ndarray, w: np.ndarray, qs) -> list[float]:
    """Quantiles of values ``v`` with weights ``w`` (uniform weights: numpy's linear quantiles)."""
    order = np.argsort(v, kind="stable")
    v, w = np.asarray(v, dtype=np.float64)[order], np.asarray(w, dtype=np.float64)[order]
    if np.allclose(w, w[0]):
        return [float(x) for x in np.quantile(v, qs)]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()  # each value at the middle of its weight
    return [float(np.interp(q, cdf, v)) for q in qs]




def rmse_table(skill: pd.DataFrame, lead_s: float | None = None) -> pd.DataFrame:
    """RMSE, mean CRPS and p10-p90 coverage by KPI and method (at one lead, or over all)."""
    s = skill if lead_s is None else skill[(skill.lead_s - lead_s).abs() < 1e-6]
    g = s.groupby(["kpi", "method"])
    return pd.DataFrame({"rmse": g["rmse"].apply(lambda e: float(np.sqrt(np.mean(np.square(e))))),
                         "crps": g["crps"].mean(), "coverage": g["coverage"].mean(), "n": g.size()}).reset_index()

