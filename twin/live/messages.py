"""Sensor messages and observations (docs/live.md, "Message format").

A message is one JSON object: ``{"sensor": "C-E1", "time": 600, "value": 41, "unit": "persons"}``,
with ``"feature": "R00113"`` when the sensor's feature is ``*`` (a report that names its road or
platform). ``time`` is seconds since the start of the scenario, or an ISO-8601 timestamp with a time
zone, taken relative to the live run's ``--start``. Every message received becomes an
``Observation`` with its fate: ``used`` (it reached the model or the scores), ``late`` (older than
the model's clock when it came, beyond the tolerance), ``invalid`` (not a message, an unknown
sensor, a wrong unit, a value that is not a finite number, a time far ahead).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime

FATES = ("used", "late", "invalid")


@dataclass
class Observation:
    feed: str
    received_s: float  # the live run's clock when it arrived (model seconds)
    sensor: str = ""
    time_s: float = math.nan
    value: float = math.nan
    unit: str = ""
    feature: str = ""
    fate: str = "invalid"
    reason: str = ""
    raw: str = ""

    def row(self) -> dict:
        return asdict(self)


def message(sensor: str, time_s: float, value: float, unit: str, feature: str = "") -> dict:
    """The JSON object of one message (what ``feed synth`` writes and ``feed replay`` sends)."""
    m = {"sensor": sensor, "time": round(float(time_s), 3), "value": float(value), "unit": unit}
    if feature:
        m["feature"] = feature
    return m


def parse(raw, feed: str, received_s: float, sensors: dict, start_epoch_s: float | None = None) -> Observation:
    """One message (bytes, text or an already decoded dict) as an Observation, checked against the
    city's sensors (``{id: Sensor}``): unknown sensors, wrong units and bad values are ``invalid``
    with the reason; otherwise the fate is left for the live loop to decide (``used`` / ``late``)."""
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else ""
    ob = Observation(feed, received_s, raw=text[:500] if text else json.dumps(raw, default=str)[:500])
    try:
        m = raw if isinstance(raw, dict) else json.loads(text)
    except ValueError as e:
        ob.reason = f"not JSON ({e.msg})"
        return ob
    if not isinstance(m, dict):
        ob.reason = "not a JSON object"
        return ob
    if m.get("error"):  # an adapter's message it could not translate, with why (e.g. a GTFS-rt trip it cannot place)
        ob.sensor, ob.reason = str(m.get("sensor", "")), str(m["error"])
        return ob
    missing = [k for k in ("sensor", "time", "value") if k not in m]
    if missing:
        ob.reason = f"missing {', '.join(missing)}"
        return ob
    ob.sensor = str(m["sensor"])
    ob.unit = str(m.get("unit", ""))
    ob.feature = str(m.get("feature", "") or "")
    s = sensors.get(ob.sensor)
    if s is None:
        ob.reason = f"unknown sensor {ob.sensor!r} (not in the city's sensors layer)"
        return ob
    if ob.unit and s.unit and ob.unit != s.unit:
        ob.reason = f"unit {ob.unit!r}, the sensor reports {s.unit!r}"
        return ob
    ob.unit = ob.unit or s.unit
    if s.feature == "*" and not ob.feature:
        ob.reason = f"sensor {ob.sensor} reports on several features of {s.layer}; the message must name its feature"
        return ob
    ob.feature = ob.feature if s.feature == "*" else s.feature
    t = _time(m["time"], start_epoch_s)
    if t is None:
        ob.reason = f"time {m['time']!r} is neither seconds nor an ISO-8601 timestamp with a zone"
        if isinstance(m["time"], str) and start_epoch_s is None and _time(m["time"], 0.0) is not None:
            ob.reason = f"time {m['time']!r} is a timestamp; give the live run --start (the wall time of t = 0)"
        return ob
    ob.time_s = t
    v = m["value"]
    if isinstance(v, bool):
        v = float(v)
    if not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        ob.reason = f"value {v!r} is not a finite number"
        return ob
    ob.value = float(v)
    ob.fate = ""
    return ob


def _time(t, start_epoch_s: float | None) -> float | None:
    if isinstance(t, bool):
        return None
    if isinstance(t, (int, float)):
        return float(t) if math.isfinite(t) else None
    if isinstance(t, str):
        try:
            dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None or start_epoch_s is None:
            return None
        return dt.timestamp() - start_epoch_s
    return None
