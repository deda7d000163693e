"""Synthetic and recorded feeds (docs/live.md, "Records"): ``citytwin feed synth`` runs a hidden truth
and writes what the city's sensors would have reported of it, with their noise; ``citytwin feed
replay`` plays a record into a broker (or a CSV folder) at N times real time.

A record is a folder:

- ``messages.jsonl``: the messages in time order, one JSON object a line (the message format);
- ``truth.csv``: ``time_s, sensor, value``: what each sensor would read without noise;
- ``truth/``: the truth's run folder (summary.json, timeseries), to score forecasts against;
- ``record.json``: scenario, overrides (the hidden perturbation), seed, sensors used and skipped.
"""
from __future__ import annotations

import json
import math
import time
import urllib.parse
from pathlib import Path

import numpy as np

from twin.core.errors import UserError
from twin.core.files import atomic_dir, atomic_file, write_json
from twin.core.params import plain_value
from twin.core.sensors import read_sensors
from .messages import message
from .observe import Observer, sensor_reading

NOISE_STREAM = 0x5E45  # the sensors' noise draws from (seed, this): independent of the model's streams


def tick_times(sensors, duration_s: float) -> list[float]:
    ts = set()
    for s in sensors:
        n = int(math.floor(duration_s / s.interval_s + 1e-9))
        ts.update(round(k * s.interval_s, 6) for k in range(1, n + 1))
    return sorted(ts)


def synth(scenario, overrides: dict, out: Path, seed: int | None = None, variant: str | None = None) -> dict:
    """Run the truth (``scenario`` with ``overrides``) and write the record to ``out``."""
    import pandas as pd

    from twin.runs.runner import Run

    run = Run(scenario, variant, seed, overrides, stage_near=Path(out).resolve().parent)
    city = scenario.load_city()
    sensors = read_sensors(city)
    if not sensors:
        raise UserError(f"{scenario.city_path}: the city has no sensors layer (docs/city_package.md, \"Sensors\"); "
                        "add sensors.geojson or a sensors layer to city.gpkg.")
    obs = Observer(type(run.model), sensors)
    if not obs.readings:
        raise UserError(f"{scenario.where}: none of the city's sensors observes anything model {scenario.model} "
                        "declares; a synthetic feed would be empty.")
    rng = np.random.default_rng([run.seed, NOISE_STREAM])
    due = {s.id: s for s in (r.sensor for r in obs.readings)}
    last_cum: dict[str, float] = {}
    last_forcing: dict[tuple[str, str], float] = {}
    msgs, truth = [], []
    for t in tick_times(due.values(), scenario.duration_s):
        run.advance(t)
        now = [s for s in due.values() if _is_tick(t, s.interval_s)]
        state = [s for s in now if obs.by_id[s.id].how != "forcing"]
        values = obs.read(run.model, state)
        for s in state:
            v = values[s.id]
            if s.mode == "count":
                cum = 0.0 if math.isnan(v) else v
                v, last_cum[s.id] = cum - last_cum.get(s.id, 0.0), cum
            if math.isnan(v):
                continue
            truth.append((t, s.id, v))
            msgs.append(message(s.id, t, round(sensor_reading(s, v, rng), 4), s.unit))
        for s in (x for x in now if obs.by_id[x.id].how == "forcing"):
            for feature, v in sorted(run.model.forcing_values(s.value).items()):
                if s.feature == "*":  # a report: sent when something changes
                    if last_forcing.get((s.id, feature)) == v:
                        continue
                    last_forcing[(s.id, feature)] = v
                truth.append((t, s.id, v))
                msgs.append(message(s.id, t, round(sensor_reading(s, v, rng), 4), s.unit,
                                    feature if s.feature == "*" else ""))
        if run.done:
            break
    run.advance(scenario.duration_s)
    result = run.result()
    record = {"scenario": str(scenario.path.resolve()) if scenario.path else None, "scenario_name": scenario.name,
              "model": scenario.model, "variant": run.variant, "seed": run.seed,
              "overrides": {k: plain_value(v) for k, v in overrides.items()}, "duration_s": scenario.duration_s,
              "sensors": sorted(due), "skipped": obs.skipped, "messages": len(msgs)}
    out = Path(out)
    with atomic_dir(out) as tmp:
        run.write(tmp / "truth", result)
        with atomic_file(tmp / "messages.jsonl") as f:
            for m in msgs:
                f.write(json.dumps(m) + "\n")
        pd.DataFrame(truth, columns=["time_s", "sensor", "value"]).to_csv(tmp / "truth.csv", index=False)
        write_json(record, tmp / "record.json")
    if result.streams is not None:
        result.streams.release()
    return record


def _is_tick(t: float, interval: float) -> bool:
    k = round(t / interval)
    return k >= 1 and abs(k * interval - t) <= 1e-6 * max(1.0, t)


def read_record(path: Path) -> tuple[dict, list[dict]]:
    path = Path(path)
    try:
        record = json.loads((path / "record.json").read_text(encoding="utf-8"))
        lines = (path / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as e:
        raise UserError(f"{path}: not a record ({Path(e.filename).name} is missing); make one with "
                        "`citytwin feed synth`.") from None
    except ValueError as e:
        raise UserError(f"{path / 'record.json'}: not valid JSON ({e}).") from None
    msgs = []
    for k, line in enumerate(lines, start=1):
        try:
            msgs.append(json.loads(line))
        except ValueError:
            raise UserError(f"{path / 'messages.jsonl'}: line {k} is not a JSON message.") from None
    return record, msgs


def replay(record_path: Path, to: str, speed: float, log=None) -> int:
    """Send the record's messages to ``to`` (``mqtt://HOST:PORT/TOPIC``: each on TOPIC/SENSOR; or
    ``folder:PATH``: appended to PATH/record.csv) at ``speed`` × real time (0: as fast as it goes)."""
    _, msgs = read_record(record_path)
    if not (speed >= 0 and math.isfinite(speed)):
        raise UserError(f"--speed {speed}: give a factor of real time (e.g. 60), or 0 for as fast as possible.")
    send, close = _sender(to)
    t0, start = (msgs[0]["time"] if msgs else 0.0), time.monotonic()
    try:
        for m in msgs:
            if speed > 0:
                wait = start + (float(m["time"]) - t0) / speed - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            send(m)
    finally:
        close()
    if log:
        log(f"sent {len(msgs)} messages to {to}")
    return len(msgs)


def _sender(to: str):
    u = urllib.parse.urlsplit(to)
    if u.scheme == "mqtt":
        import paho.mqtt.client as mqtt

        rest = to.split("://", 1)[1]
        base = (rest.split("/", 1)[1] if "/" in rest else "").strip("/") or "citytwin"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        try:
            client.connect(u.hostname or "127.0.0.1", u.port or 1883, keepalive=30)
        except OSError as e:
            raise UserError(f"--to {to}: cannot reach the broker ({e}); is it running?") from None
        client.loop_start()

        def send(m):
            client.publish(f"{base}/{m['sensor']}", json.dumps(m), qos=1).wait_for_publish(30)

        def close():
            client.loop_stop()
            client.disconnect()

        return send, close
    if u.scheme == "folder":
        folder = Path(to.split(":", 1)[1])
        if not folder.is_dir():
            raise UserError(f"--to {to}: {folder} is not a folder.")
        path = folder / "record.csv"
        f = open(path, "a", encoding="utf-8", newline="")
        if f.tell() == 0:
            f.write("sensor,time,value,unit,feature\n")

        def send(m):
            f.write(f"{m['sensor']},{m['time']},{m['value']},{m.get('unit', '')},{m.get('feature', '')}\n")
            f.flush()

        return send, f.close
    raise UserError(f"--to {to}: replay plays into mqtt://HOST:PORT[/TOPIC] or folder:PATH.")
