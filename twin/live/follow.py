"""Following a live run's folder (docs/live.md, "The app in live mode"): what a viewer shows of a
twin that ``citytwin live`` keeps in another process, read from the files it writes atomically.

``LiveFolder(out).read()`` returns a ``LiveSnapshot`` when something changed since the last read
(None otherwise): the model's clock ("now"), the KPI rows not yet handed out, the latest forecast as
fans (p10/p50/p90 of each KPI over its horizon, and each member's line), each sensor's latest
reading with the model's value beside it, the forecast alerts and log lines not yet handed out.
Nothing here draws: the app's window (and any other viewer) does. ``LiveProcess`` starts a
``citytwin live`` run in its own process, for a viewer that wants one.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from twin.core.errors import UserError
from twin.core.formats import fmt_number
from twin.core.sensors import Sensor
from .assim_report import AssimilationTables, load_assimilation
from .loop import PROGRESS_FILE, STATE_FILE

FILES = ("live.json", "timeseries.csv", "forecasts.parquet", "members.parquet", "observations.parquet",
         "alerts.csv", "log.txt", "parameters.csv", "residuals.csv", "skill.csv", STATE_FILE)
ASSIMILATION_FILES = {"parameters.csv", "residuals.csv", "skill.csv"}


@dataclass
class Fan:
    """One forecast of one value: ``time_s`` (issue time + lead) with its quantiles, and ``members``
    ({member: values at time_s}, NaN where a member has none)."""

    time_s: np.ndarray
    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray
    members: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class SensorMarker:
    """A sensor where it stands, with its latest reading up to the model's clock (NaN: none yet) and
    the model's value of it at the latest forecast (its first report: now, or the first interval of
    a counter; the median of the members, with the sensor's noise; NaN: none). ``shade`` places the reading in 0..1 among the readings of
    sensors of the same kind so far (NaN without a reading): what a colour map shows."""

    sensor: Sensor
    value: float = math.nan
    time_s: float = math.nan
    model_value: float = math.nan
    shade: float = math.nan

    @property
    def label(self) -> str:
        s = self.sensor
        unit = f" {s.unit}" if s.unit and s.unit != "-" else ""
        if not math.isfinite(self.value):
            return f"{s.id}: no reading"
        text = f"{s.id}: {fmt_number(self.value)}{unit}"
        if math.isfinite(self.model_value):
            text += f" (model {fmt_number(self.model_value)})"
        return text


@dataclass
class LiveSnapshot:
    folder: Path
    now_s: float  # the live model's clock
    feed_clock_s: float
    duration_s: float | None
    scenario: str | None
    issued_at: float | None  # the latest forecast's issue time (None: none yet)
    fans: dict[str, Fan]  # KPI name -> the latest forecast of it
    alert_values: dict[str, float]  # "alert.RULE[.KEY]" -> its value when the latest forecast was issued
    new_rows: list[dict]  # KPI rows of the live run not handed out before
    sensors: list[SensorMarker]
    alerts: list[dict]  # every forecast alert so far (alerts.csv rows)
    new_alerts: list[dict]  # those not handed out before
    new_log: list[str]  # lines of log.txt not handed out before
    feeds: dict  # per feed: received, used, late, invalid, errors, silences, jumps
    state_changed: bool = False  # the twin saved a new state (live_frame shows it)
    # with --assimilate: each estimated parameter's latest estimate (parameter, time_s, mean, p10, p90)
    estimates: list[dict] = field(default_factory=list)
    # with --assimilate: the filter's tables when they changed since the last read (None: unchanged, or
    # none); twin.live.assim_report draws them
    assimilation: AssimilationTables | None = None

    def estimates_text(self) -> str:
        """One line: each estimate with its p10-p90 band (empty without assimilation)."""
        return "; ".join(f"{e['parameter']} {fmt_number(e['mean'])} (p10-p90 {fmt_number(e['p10'])}-"
                         f"{fmt_number(e['p90'])})" for e in self.estimates)


class LiveFolder:
    """Reads the folder of a live run as it grows (see the module's doc). ``sensors``: the city's
    sensors (``twin.core.sensors.read_sensors``), for the markers."""

    def __init__(self, folder: Path | str, sensors: list[Sensor] = ()):
        self.folder = Path(folder)
        self.sensors = list(sensors)
        self._stamps: dict[str, tuple] = {}
        self._rows_given = -math.inf  # the time of the last KPI row handed out
        self._alerts_given = 0
        self._log_offset = 0
        self._observations = None
        self._forecast: tuple = (None, {}, {}, {})

    def info(self) -> dict | None:
        """The live run's ``live.json`` (clock, scenario, settings), or None before its first save."""
        try:
            return json.loads((self.folder / PROGRESS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _changed(self) -> set[str]:
        out = set()
        for name in FILES:
            try:
                st = os.stat(self.folder / name)
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                stamp = None
            if stamp != self._stamps.get(name):
                self._stamps[name] = stamp
                out.add(name)
        return out

    def read(self) -> LiveSnapshot | None:
        changed = self._changed()
        info = self.info()
        if not changed or info is None:
            return None
        if {"forecasts.parquet", "members.parquet"} & changed:
            self._forecast = self._read_forecast()
        if "observations.parquet" in changed:
            self._observations = _read(self.folder / "observations.parquet")
        issued, fans, sensor_p50, alert_values = self._forecast
        alerts = _read(self.folder / "alerts.csv")
        alerts = alerts.to_dict("records") if alerts is not None else []
        new_alerts, self._alerts_given = alerts[self._alerts_given:], len(alerts)
        now = float(info.get("time_s", 0.0))
        return LiveSnapshot(self.folder, now, float(info.get("feed_clock", 0.0)),
                            info.get("until_s", info.get("duration_s")), info.get("scenario"), issued, fans,
                            alert_values, self._new_rows(), self._markers(sensor_p50, now), alerts, new_alerts, self._new_log(),
                            dict(info.get("feeds", {})), STATE_FILE in changed, self._estimates(),
                            self._assimilation(changed))

    def _estimates(self) -> list[dict]:
        p = _read(self.folder / "parameters.csv")
        if p is None or not len(p) or not {"parameter", "time_s", "mean", "p10", "p90"} <= set(p.columns):
            return []
        last = p.sort_values("time_s", kind="stable").groupby("parameter", sort=True).tail(1)
        return last[["parameter", "time_s", "mean", "p10", "p90"]].to_dict("records")

    def _assimilation(self, changed: set[str]) -> AssimilationTables | None:
        if not ASSIMILATION_FILES & changed or not (self.folder / "parameters.csv").is_file():
            return None
        try:
            return load_assimilation(self.folder)
        except UserError:  # tables of another version: not drawn (the caption's estimates still are)
            return None

    def _new_rows(self) -> list[dict]:
        ts = _read(self.folder / "timeseries.csv")
        if ts is None or "time_s" not in ts:
            return []
        new = ts[ts["time_s"] > self._rows_given]
        if len(new):
            self._rows_given = float(new["time_s"].iloc[-1])
        return new.to_dict("records")

    def _new_log(self) -> list[str]:
        try:
            with open(self.folder / "log.txt", "rb") as f:
                f.seek(self._log_offset)
                chunk = f.read()
        except OSError:
            return []
        end = chunk.rfind(b"\n") + 1  # whole lines only: the twin may be writing one
        self._log_offset += end
        return chunk[:end].decode("utf-8", "replace").splitlines()

    def _read_forecast(self) -> tuple:
        q = _read(self.folder / "forecasts.parquet")
        if q is None or not len(q):
            return None, {}, {}, {}
        issued = float(q["issued_at"].max())
        q = q[q["issued_at"] == issued].sort_values("lead_s")
        m = _read(self.folder / "members.parquet")
        m = m[(m["issued_at"] == issued) & m["name"].str.startswith("kpi.")] if m is not None and len(m) else None
        fans = {}
        for name, g in q[q["name"].str.startswith("kpi.")].groupby("name", sort=True):
            t = issued + g["lead_s"].to_numpy(dtype=float)
            members = {}
            if m is not None:
                wide = m[m["name"] == name].pivot_table(index="lead_s", columns="member", values="value")
                wide = wide.reindex(g["lead_s"].to_numpy())
                members = {int(k): wide[k].to_numpy(dtype=float) for k in wide.columns}
            fans[name[4:]] = Fan(t, *(g[c].to_numpy(dtype=float) for c in ("p10", "p50", "p90")), members)
        first = q[q["name"].str.startswith("sensor.")].groupby("name").first()  # the shortest lead: the model now
        sensor_p50 = {n[7:]: float(v) for n, v in first["p50"].items()}
        at_issue = q[(q["lead_s"] == 0) & q["name"].str.startswith("alert.")]  # every member starts from the same state
        return issued, fans, sensor_p50, dict(zip(at_issue["name"], at_issue["p50"].astype(float)))

    def _markers(self, model_values: dict[str, float], now_s: float) -> list[SensorMarker]:
        obs = self._observations
        latest: dict[str, tuple[float, float]] = {}
        by_kind: dict[str, list[float]] = {}
        kinds = {s.id: s.kind for s in self.sensors}
        if obs is not None and len(obs):
            # readings the twin has received for later times (a feed ahead of the model) are not "now" yet
            used = obs[(obs["fate"] == "used") & obs["sensor"].isin(list(kinds)) & (obs["time_s"] <= now_s + 1e-9)]
            used = used.sort_values(["time_s", "received_s"], kind="stable")
            for sid, g in used.groupby("sensor", sort=True):
                latest[sid] = (float(g["value"].iloc[-1]), float(g["time_s"].iloc[-1]))
                by_kind.setdefault(kinds[sid], []).extend(g["value"].astype(float).tolist())
        out = []
        for s in self.sensors:
            mk = SensorMarker(s, model_value=model_values.get(s.id, math.nan))
            if s.id in latest:
                mk.value, mk.time_s = latest[s.id]
                vals = by_kind[s.kind]
                lo, hi = min(0.0, min(vals)), max(vals)
                mk.shade = (mk.value - lo) / (hi - lo) if hi > lo else 0.0
            out.append(mk)
        return out


def live_frame(scenario, folder: Path | str, info: dict):
    """The live model as the twin last saved it (``state.npz``, with the parameters it ran with and
    those its forcings set): a frame to draw (agents, fields, per-feature values, KPIs)."""
    from twin.core.state_file import read_state
    from twin.runs.runner import Run
    from twin.view.frames import FrameRecorder, RunFrames

    state = read_state(Path(folder) / STATE_FILE)
    params = {**(info.get("overrides") or {}), **(info.get("forced") or {})}
    run = Run(scenario, info.get("variant"), info.get("seed"), params, state=state, outputs=False)
    return RunFrames(run.model, FrameRecorder()).frame(force=True)


def _read(path: Path):
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.stat().st_size == 0:
            return None
        return pd.read_csv(path, keep_default_na=False) if path.name == "alerts.csv" else pd.read_csv(path)
    except (OSError, ValueError):  # not written yet (or being replaced): the next read has it
        return None


class LiveProcess:
    """A ``citytwin live`` run in its own process, writing to ``out`` (what ``LiveFolder`` follows).
    ``options``: the command's options without the dashes (``{"members": 4, "until": 600}``)."""

    def __init__(self, scenario: Path | str, feeds: list[str], out: Path | str, options: dict | None = None):
        if not feeds:
            raise UserError("A live run needs at least one feed: mqtt://HOST:PORT/TOPIC, "
                            "gtfs-rt+http://HOST:PORT/PATH#sensor=ID or folder:PATH (docs/live.md).")
        self.out = Path(out)
        cmd = [sys.executable, "-m", "twin.cli", "live", str(scenario), "--out", str(out)]
        for u in feeds:
            cmd += ["--feed", str(u)]
        for k, v in (options or {}).items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        self.cmd = cmd
        root = str(Path(__file__).resolve().parents[2])  # the repository: twin importable as in this process
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self._err)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def error(self) -> str:
        """What the process said on stderr (its one-paragraph message when it refused its input)."""
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace").strip()

    def stop(self, wait_s: float = 10.0) -> None:
        """End it (it resumes from its last saved state when started again with the same folder)."""
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(wait_s)
