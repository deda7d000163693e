"""Feed adapters: one interface over the protocols cities use (docs/live.md, "Feeds").

``open_feed(url)`` gives a ``Feed`` whose ``poll()`` returns the raw messages (bytes, or dicts of the
message format) that came since the last call, never raising for what arrives: a broker that goes
away, an HTTP error or a half-written file is counted in ``errors`` and tried again on the next poll.

- ``mqtt://HOST:PORT/TOPIC`` (TOPIC may hold wildcards; default ``citytwin/#``): JSON messages from a
  broker (paho-mqtt), one per publish;
- ``gtfs-rt+http://HOST:PORT/PATH#sensor=ID&cancelled=ID2`` (or ``https``): a GTFS-realtime FeedMessage
  polled every ``poll_s``; each trip update's stop-time delay becomes a message of sensor ID (default
  ``gtfs-rt``) whose feature is the stop id (the platform) and whose time is the feed's timestamp; a
  trip CANCELED (or a stop SKIPPED) becomes, for each stop it lists with a time, a message of sensor
  ID2 (default ``ID-cancelled``) whose value is the seconds from the feed's timestamp to the planned
  arrival there;
- ``folder:PATH`` (or ``file://PATH``): CSV files (``sensor,time,value,unit[,feature]``) in a folder,
  read as they are appended to or dropped in.
"""
from __future__ import annotations

import csv
import io
import queue
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from twin.core.errors import UserError


class Feed:
    """Raw messages from one source; ``errors`` counts what failed on the way (and ``last_error`` says it)."""

    url = ""

    def __init__(self):
        self.errors = 0
        self.last_error = ""

    def poll(self) -> list:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _fail(self, e) -> None:
        self.errors += 1
        self.last_error = f"{type(e).__name__}: {e}"


class MqttFeed(Feed):
    def __init__(self, url: str, host: str, port: int, topic: str):
        super().__init__()
        import paho.mqtt.client as mqtt

        self.url, self.topic = url, topic
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self.connected = False
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda c, u, msg: self._q.put(bytes(msg.payload))
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as e:  # the broker is not there yet: keep trying in the background
            self._fail(e)
            self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            self.connected = True
            client.subscribe(self.topic, qos=1)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        if self.connected:
            self.errors += 1
            self.last_error = f"disconnected from the broker ({reason_code})"
        self.connected = False

    def poll(self) -> list:
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class GtfsRealtimeFeed(Feed):
    def __init__(self, url: str, http_url: str, sensor: str, poll_s: float = 30.0, cancelled: str = ""):
        super().__init__()
        self.url, self.http_url, self.sensor, self.poll_s = url, http_url, sensor, poll_s
        self.cancelled = cancelled or f"{sensor}-cancelled"
        self._next = 0.0
        self._seen: set[tuple] = set()

    def poll(self) -> list:
        now = time.monotonic()
        if now < self._next:
            return []
        self._next = now + self.poll_s
        try:
            with urllib.request.urlopen(self.http_url, timeout=10) as r:
                data = r.read()
        except (OSError, ValueError) as e:
            self._fail(e)
            return []
        try:
            return self._messages(data)
        except Exception as e:  # a protobuf that does not parse: DecodeError and friends
            self._fail(e)
            return [data[:200]]  # counted as an invalid message too

    def _messages(self, data: bytes) -> list[dict]:
        from google.transit import gtfs_realtime_pb2

        feed = gtfs_realtime_pb2.FeedMessage()
        feed.ParseFromString(data)
        stamp = datetime.fromtimestamp(feed.header.timestamp, timezone.utc).isoformat()
        out = []
        Trip, Stop = gtfs_realtime_pb2.TripDescriptor, gtfs_realtime_pb2.TripUpdate.StopTimeUpdate
        for ent in feed.entity:
            if not ent.HasField("trip_update"):
                continue
            tu = ent.trip_update
            if tu.trip.schedule_relationship == Trip.CANCELED:
                out += self._cancellations(tu, list(tu.stop_time_update), feed.header.timestamp, stamp)
                continue
            skipped = [stu for stu in tu.stop_time_update if stu.schedule_relationship == Stop.SKIPPED]
            out += self._cancellations(tu, skipped, feed.header.timestamp, stamp) if skipped else []
            for stu in tu.stop_time_update:
                if stu.schedule_relationship == Stop.SKIPPED:
                    continue
                ev = stu.arrival if stu.HasField("arrival") else stu.departure if stu.HasField("departure") else None
                if ev is None or not ev.HasField("delay"):
                    continue
                key = (tu.trip.trip_id, stu.stop_id, feed.header.timestamp, ev.delay)
                if key in self._seen:  # the same update polled again
                    continue
                self._seen.add(key)
                out.append({"sensor": self.sensor, "time": stamp, "value": float(ev.delay), "unit": "s",
                            "feature": stu.stop_id, "trip": tu.trip.trip_id})
        return out

    def _cancellations(self, tu, stops, header_ts: int, stamp: str) -> list[dict]:
        """A cancelled trip's (or skipped stops') arrivals that will not happen, each named by its stop
        and planned time; a feed repeats them in every snapshot: each is sent once."""
        timed = [(stu.stop_id, stu.arrival.time if stu.arrival.HasField("time") else stu.departure.time)
                 for stu in stops if stu.stop_id and (stu.arrival.HasField("time") or stu.departure.HasField("time"))]
        trip = tu.trip.trip_id
        news = [k for k in ([("cancelled", trip, stop, t) for stop, t in timed] or [("unplaced", trip)])
                if k not in self._seen]
        self._seen.update(news)
        return [{"sensor": self.cancelled, "time": stamp, "value": float(k[3] - header_ts), "unit": "s",
                 "feature": k[2], "trip": trip} if k[0] == "cancelled" else
                {"sensor": self.cancelled, "time": stamp, "trip": trip,
                 "error": f"trip {trip} is cancelled but names no stop with a planned time (arrival.time or "
                          "departure.time): which arrival it was is unknown"} for k in news]


class CsvFolderFeed(Feed):
    COLUMNS = ("sensor", "time", "value", "unit")

    def __init__(self, url: str, folder: Path):
        super().__init__()
        self.url, self.folder = url, folder
        self._offsets: dict[str, int] = {}
        self._headers: dict[str, list[str]] = {}

    def poll(self) -> list:
        out: list = []
        try:
            files = sorted(p for p in self.folder.glob("*.csv") if p.is_file())
        except OSError as e:
            self._fail(e)
            return out
        for path in files:
            try:
                with open(path, "rb") as f:
                    f.seek(self._offsets.get(path.name, 0))
                    chunk = f.read()
            except OSError as e:
                self._fail(e)
                continue
            end = chunk.rfind(b"\n")
            if end < 0:
                continue  # no whole line yet: a file being written
            self._offsets[path.name] = self._offsets.get(path.name, 0) + end + 1
            lines = chunk[:end + 1].decode("utf-8", "replace").splitlines()
            if path.name not in self._headers:
                self._headers[path.name] = [h.strip() for h in next(csv.reader([lines[0]]))]
                lines = lines[1:]
            header = self._headers[path.name]
            for row in csv.reader(io.StringIO("\n".join(lines))):
                if not row:
                    continue
                if len(row) != len(header) or any(c not in header for c in self.COLUMNS):
                    out.append(",".join(row).encode())  # not a message: counted invalid
                    continue
                m: dict = dict(zip(header, (c.strip() for c in row)))
                m["time"] = _number_or_text(m["time"])
                m["value"] = _number_or_text(m["value"])
                out.append(m)
        return out


def _number_or_text(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def open_feed(url: str, poll_s: float = 30.0, connect: bool = True) -> Feed | None:
    """The adapter for ``url`` (see the module's doc); a UserError for a URL no adapter reads.
    ``connect=False`` only checks the URL (None when it is good)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "mqtt":
        if not u.hostname:
            raise UserError(f"--feed {url}: give the broker as mqtt://HOST:PORT/TOPIC (e.g. mqtt://127.0.0.1:1883/citytwin/#).")
        rest = url.split("://", 1)[1]  # not u.path: an MQTT wildcard "#" is no URL fragment here
        topic = urllib.parse.unquote(rest.split("/", 1)[1]) if "/" in rest else ""
        topic = topic or "citytwin/#"
        try:
            port = u.port or 1883
        except ValueError:
            raise UserError(f"--feed {url}: the port is not a number.") from None
        return MqttFeed(url, u.hostname, port, topic) if connect else None
    if u.scheme in ("gtfs-rt+http", "gtfs-rt+https"):
        frag = urllib.parse.parse_qs(u.fragment)
        sensor = frag.get("sensor", ["gtfs-rt"])[0]
        http = urllib.parse.urlunsplit((u.scheme.split("+", 1)[1], u.netloc, u.path, u.query, ""))
        return GtfsRealtimeFeed(url, http, sensor, poll_s, frag.get("cancelled", [""])[0]) if connect else None
    if u.scheme in ("folder", "file"):
        path = Path(urllib.parse.unquote(u.path if u.scheme == "file" else url.split(":", 1)[1]))
        if not path.is_dir():
            raise UserError(f"--feed {url}: {path} is not a folder; a CSV feed is a folder the agency's files "
                            "are dropped into.")
        return CsvFolderFeed(url, path) if connect else None
    raise UserError(f"--feed {url}: no adapter reads {u.scheme or 'this'!r} feeds; use mqtt://HOST:PORT/TOPIC, "
                    "gtfs-rt+http://HOST:PORT/PATH#sensor=ID or folder:PATH (docs/live.md).")
