"""Ensemble forecasts from the live state, their alerts and their skill (docs/live.md).

A forecast issued at T runs N members from the live run's state at T to T + horizon_s, member k
reseeded from (seed, k) (``Run(replication=k)``: common random numbers, the same stream for member k
at every issue). Each member reports, at every report time of the model, its per-step KPIs
(``kpi.NAME``, keyed ones ``kpi.NAME.KEY``), what every state sensor would read (``sensor.ID``), and
every value an alert rule watches (``alert.RULE.KEY``). Members run in worker processes
(``twin.runs.experiment``'s pool) or in this one.
"""
from __future__ import annotations

import math
import os
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from twin.core.errors import UserError

QUANTILES = (0.1, 0.5, 0.9)


def member_task(raw: dict, path: str | None, city_path: str, state: bytes, variant: str, seed: int,
                overrides: dict, member: int, horizon_s: float, sensors: list, sensor_ids: list[str],
                rules: list) -> dict:
    """One member: {"rows": [(lead_s, name, value), ...]} or {"error": text}. Never raises."""
    from twin.view.alerts import evaluate
    from twin.core.state_file import state_from_bytes
    from twin.runs.runner import Run
    from .observe import Observer, sensor_reading

    try:
        sc = _scenario(raw, path, city_path)
        st = state_from_bytes(state, "live state")
        # a member's values are all it gives: none of the scenario's [outputs] (extents, fields, tracks)
        run = Run(sc, variant, seed, overrides, state=st, replication=member, outputs=False)
        obs = Observer(type(run.model), sensors)
        want = [obs.by_id[i].sensor for i in sensor_ids if i in obs.by_id]
        t0 = run.time_s
        end = min(t0 + horizon_s, sc.duration_s)
        cumulative: dict[str, dict[float, float]] = {s.id: {} for s in want if s.mode == "count"}
        rows: list[tuple[float, str, float]] = []
        first = True
        while True:
            if not first:
                run.advance(min(run.model.next_report_s, end))
            first = False
            now = run.time_s
            lead = round(now - t0, 6)
            values = obs.read(run.model, want)
            kpis = run.model.current_kpis()
            for s in want:
                if s.id in cumulative:
                    cumulative[s.id][round(now, 6)] = values[s.id]
                else:
                    rows.append((lead, f"sensor.{s.id}", values[s.id]))
            for k, v in kpis.items():
                if isinstance(v, dict):
                    rows += [(lead, f"kpi.{k}.{kk}", float(vv)) for kk, vv in v.items() if _num(vv)]
                elif _num(v):
                    rows.append((lead, f"kpi.{k}", float(v)))
            if rules:
                for a in evaluate(rules, kpis, run.model.snapshot().features):
                    rows.append((lead, f"alert.{a.rule.name}.{a.key}" if a.key else f"alert.{a.rule.name}", a.value))
            if run.done or now >= end - 1e-9:
                break
        # a counter reports the increase over its interval, at multiples of it
        for s in want:
            hist = cumulative.get(s.id, {})
            for t, cum in hist.items():
                prev = hist.get(round(t - s.interval_s, 6))
                k = round(t / s.interval_s)
                if prev is not None and abs(k * s.interval_s - t) <= 1e-6 * max(1.0, t):
                    rows.append((round(t - t0, 6), f"sensor.{s.id}", cum - prev))
        # a forecast of a sensor's reading carries the sensor's own error (its declared noise): what it is
        # scored against is a noisy reading, not the truth
        rng = np.random.default_rng([int(seed), int(member), int(round(t0 * 1000))])
        by_id = {s.id: s for s in want}
        rows = [(lead, name, sensor_reading(by_id[name[7:]], v, rng) if name.startswith("sensor.") else v)
                for lead, name, v in rows]
        return {"rows": rows, "pid": os.getpid()}
    except UserError as e:
        return {"error": str(e)}
    except Exception as e:  # noqa: BLE001 - the live loop logs it and carries on
        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


_SCENARIOS: dict[str, object] = {}


def _scenario(raw: dict, path: str | None, city_path: str):
    """The scenario of a member, built once per process (with its city loaded once)."""
    import json

    from twin.scenario.scenario import scenario_from_dict

    key = json.dumps([raw, path, city_path], sort_keys=True, default=str)
    if key not in _SCENARIOS:
        sc = scenario_from_dict(raw, Path(path) if path else None)
        sc.city_path = Path(city_path)
        _SCENARIOS.clear()  # one live run at a time: keep only its scenario
        _SCENARIOS[key] = sc
    return _SCENARIOS[key]


def _num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class Forecast:
    issued_at: float
    members: pd.DataFrame  # lead_s, name, member, value
    method: str = "open_loop"  # or "assimilated": from a filtered ensemble (docs/assimilation.md)

    def quantiles(self) -> pd.DataFrame:
        g = self.members.groupby(["lead_s", "name"], sort=True)["value"]
        q = g.quantile(list(QUANTILES)).unstack()
        q.columns = ["p10", "p50", "p90"]
        q["n"] = g.count()
        q = q.reset_index()
        q.insert(0, "issued_at", self.issued_at)
        return q


class MemberPool:
    """Runs members in this process (``workers`` <= 1) or on worker processes started once for the
    whole live run (a forecast every few minutes must not pay for starting them each time)."""

    def __init__(self, workers: int):
        self.workers = int(workers)
        self._ex = None

    def map(self, tasks: list[tuple]) -> list[dict]:
        if self.workers <= 1 or len(tasks) <= 1:
            return [member_task(*t) for t in tasks]
        if self._ex is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            from twin.runs.experiment import _start_method, _worker_init

            threads = max(1, (os.cpu_count() or 1) // self.workers)
            self._ex = ProcessPoolExecutor(max_workers=self.workers,
                                           mp_context=multiprocessing.get_context(_start_method()),
                                           initializer=_worker_init, initargs=(threads, os.getpid()))
        futures = [self._ex.submit(member_task, *t) for t in tasks]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)
            self._ex = None


def forecast_frame(issued_at: float, results: list[dict]) -> Forecast:
    rows = [(lead, name, m + 1, v) for m, r in enumerate(results) for lead, name, v in r.get("rows", [])]
    df = pd.DataFrame(rows, columns=["lead_s", "name", "member", "value"])
    return Forecast(issued_at, df)


# -- alerts ahead --------------------------------------------------------------------------------------
def forecast_alerts(fc: Forecast, rules, now_levels: dict[str, int], min_share: float = 0.5) -> list[dict]:
    """Alerts a forecast raises before the threshold is crossed: for each watched item not yet at a
    level, the members that reach it within the horizon; raised when at least ``min_share`` do, with
    the median first time among them ("E1 reaches red in about 12 min (8 of 10 members)")."""
    from twin.core.model_contract import ALERT_LEVELS

    by_name = {r.name: r for r in rules}
    df = fc.members[fc.members["name"].str.startswith("alert.")]
    n = int(fc.members["member"].max()) if len(fc.members) else 0
    out = []
    for name, g in df.groupby("name", sort=True):
        _, rule_name, *key = name.split(".", 2)
        rule = by_name.get(rule_name)
        if rule is None:
            continue
        key = key[0] if key else ""
        current = now_levels.get(name, 0)
        levels = np.array([rule.level(v) for v in g["value"]])
        for level in (2, 1):
            if current >= level:
                break
            hit = g[levels >= level]
            first = hit[hit["lead_s"] > 0].groupby("member")["lead_s"].min()
            if len(first) and len(first) >= min_share * n:
                lead = float(np.median(first.to_numpy()))
                what = f"{rule.name.replace('_', ' ')} {key}".strip()
                thr = rule.red if level == 2 else rule.amber
                unit = f" {rule.unit}" if rule.unit and rule.unit != "-" else ""
                out.append({"issued_at": fc.issued_at, "rule": rule.name, "key": key, "level": ALERT_LEVELS[level],
                            "threshold": thr, "lead_s": lead, "members": int(len(first)), "of": n,
                            "message": f"{what} reaches {ALERT_LEVELS[level]} ({'≥' if rule.direction == 'above' else '≤'} "
                                       f"{thr:g}{unit}) in about {duration_text(lead)} "
                                       f"({len(first)} of {n} members)"})
                break
    return out


def duration_text(s: float) -> str:
    """A lead time as the alerts say it: seconds under two minutes, else minutes."""
    return f"{s:.0f} s" if s < 120 else f"{round(s / 60)} min"


# -- skill ----------------------------------------------------------------------------------------------
def crps_ensemble(x: np.ndarray, y: float) -> float:
    """The continuous ranked probability score of ensemble ``x`` for outcome ``y`` (the energy form:
    E|X - y| - E|X - X'| / 2)."""
    x = np.asarray(x, dtype=float)
    return float(np.mean(np.abs(x - y)) - 0.5 * np.mean(np.abs(x[:, None] - x[None, :])))


def score(fc: Forecast, truth: dict[tuple[float, str], tuple[float, str]], method: str = "open_loop") -> list[dict]:
    """Scores of the forecast's values for which ``truth`` has an outcome: ``{(time_s, name): (value,
    against)}`` (against: observed or live). One row per (lead, name): the error of the ensemble mean
    (``rmse`` of this one case: averaging squares over rows gives the RMSE), the CRPS, and whether
    the p10-p90 band covered the outcome."""
    out = []
    for (lead, name), g in fc.members.groupby(["lead_s", "name"], sort=True):
        t = round(fc.issued_at + lead, 6)
        hit = truth.get((t, name))
        if hit is None:
            continue
        y, against = hit
        x = g["value"].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        if not len(x) or not math.isfinite(y):
            continue
        p10, p90 = np.quantile(x, [0.1, 0.9])
        out.append({"issued_at": fc.issued_at, "lead_s": lead, "kpi": name, "method": method, "against": against,
                    "truth": y, "mean": float(x.mean()), "rmse": float(abs(x.mean() - y)),
                    "crps": crps_ensemble(x, y), "coverage": float(p10 <= y <= p90)})
    return out
