"""Feed adapters against real local servers (docs/live.md): a Mosquitto broker, an HTTP server serving
a GTFS-realtime FeedMessage, a folder of CSV files; and the message parser's fates."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import pytest

from tests.twin.live_servers import Broker, BytesServer, wait_for
from twin.core.errors import UserError
from twin.core.sensors import Sensor
from twin.live.feeds import open_feed
from twin.live.messages import parse

SENSORS = {s.id: s for s in (
    Sensor("C-E1", "gate_counter", 0.0, 0.0, "exited", "persons", "gates", "E1", 2.0, 60.0, "count"),
    Sensor("RAIL", "train_feed", 0.0, 0.0, "train_delay_s", "s", "sources", "*"),
    Sensor("RAIL-cancelled", "train_feed", 0.0, 0.0, "cancelled_arrival_in_s", "s", "sources", "*"),
    Sensor("RG1", "rain_gauge", 0.0, 0.0, "rain_mm_per_h", "mm/h"),
)}


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


def _publisher(port: int):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_mqtt_feed_receives_what_is_published(broker):
    feed = open_feed(broker.url + "/city/#")
    try:
        wait_for(lambda: feed.connected, 30, "the feed to connect")
        pub = _publisher(broker.port)
        got: list = []
        msgs = [{"sensor": "C-E1", "time": 60 * k, "value": 10 + k, "unit": "persons"} for k in range(5)]

        def all_in():
            got.extend(feed.poll())
            return len(got) >= 6 and any(g == b"\xff garbage" for g in got)

        # publish until the subscription is surely in place (a publish before it would be lost)
        def probe():
            pub.publish("city/probe", b"{}", qos=1).wait_for_publish(5)
            return feed.poll()

        wait_for(probe, 30, "a first message to arrive")
        while feed.poll():  # probes still on their way
            pass
        for m in msgs:
            pub.publish("city/gates", json.dumps(m), qos=1).wait_for_publish(5)
        pub.publish("elsewhere/x", b"not ours", qos=1).wait_for_publish(5)
        pub.publish("city/junk", b"\xff garbage", qos=1).wait_for_publish(5)
        wait_for(all_in, 30, "five messages and the garbage")
        pub.loop_stop()
        pub.disconnect()
    finally:
        feed.close()
    obs = [parse(r, feed.url, 0.0, SENSORS) for r in got]
    good = [o for o in obs if o.fate != "invalid"]
    assert [o.value for o in good] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert [o.time_s for o in good] == [0.0, 60.0, 120.0, 180.0, 240.0]
    assert all(o.feature == "E1" for o in good)
    bad = [o.reason for o in obs if o.fate == "invalid" and o.raw != "{}"]
    assert len(bad) == 1 and "not JSON" in bad[0]  # the other topic was never received


def test_mqtt_feed_survives_a_broker_that_is_not_there_yet(tmp_path):
    from tests.twin.live_servers import free_port

    port = free_port()
    feed = open_feed(f"mqtt://127.0.0.1:{port}/t")
    try:
        assert feed.poll() == [] and feed.errors == 1 and "Connection refused" in feed.last_error
    finally:
        feed.close()


def _feed_message(stamp: int, delays: dict[str, int]) -> bytes:
    from google.transit import gtfs_realtime_pb2

    fm = gtfs_realtime_pb2.FeedMessage()
    fm.header.gtfs_realtime_version = "2.0"
    fm.header.timestamp = stamp
    for k, (stop, delay) in enumerate(delays.items()):
        e = fm.entity.add()
        e.id = f"e{k}"
        e.trip_update.trip.trip_id = f"T{k}"
        stu = e.trip_update.stop_time_update.add()
        stu.stop_id = stop
        stu.arrival.delay = delay
    return fm.SerializeToString()


def test_gtfs_realtime_feed_over_http():
    start = datetime(2026, 12, 4, 17, 0, tzinfo=timezone.utc).timestamp()
    server = BytesServer(_feed_message(int(start) + 300, {"P3": 480, "P5": 60}))
    try:
        feed = open_feed(f"gtfs-rt+http://127.0.0.1:{server.port}/trip-updates.pb#sensor=RAIL", poll_s=0.0)
        got = feed.poll()
        assert feed.poll() == []  # the same updates again are not news
        server.body = b"\x08\x96\x01 this is not a protobuf"
        junk = feed.poll()
        server.body = _feed_message(int(start) + 360, {"P3": 540})
        later = feed.poll()
    finally:
        server.stop()
    assert server.requests == 4
    obs = [parse(r, feed.url, 0.0, SENSORS, start_epoch_s=start) for r in got + later]
    assert [(o.feature, o.value, o.time_s, o.fate) for o in obs] == [
        ("P3", 480.0, 300.0, ""), ("P5", 60.0, 300.0, ""), ("P3", 540.0, 360.0, "")]
    assert feed.errors == 1 and len(junk) == 1 and parse(junk[0], feed.url, 0.0, SENSORS).fate == "invalid"


def cancellations_message(stamp: int, cancelled: dict[str, list[tuple[str, int]]], skipped=(), delays=()) -> bytes:
    """A FeedMessage: trips CANCELED ({trip: [(stop, planned arrival epoch)]}), stops SKIPPED on a running
    trip ((trip, stop, planned arrival epoch)) and plain delays ((trip, stop, delay_s))."""
    from google.transit import gtfs_realtime_pb2 as rt

    fm = rt.FeedMessage()
    fm.header.gtfs_realtime_version = "2.0"
    fm.header.timestamp = stamp
    for trip, stops in cancelled.items():
        e = fm.entity.add(id=f"c-{trip}")
        e.trip_update.trip.trip_id = trip
        e.trip_update.trip.schedule_relationship = rt.TripDescriptor.CANCELED
        for stop, at in stops:
            e.trip_update.stop_time_update.add(stop_id=stop).arrival.time = at
    for trip, stop, at in skipped:
        e = fm.entity.add(id=f"s-{trip}")
        e.trip_update.trip.trip_id = trip
        stu = e.trip_update.stop_time_update.add(stop_id=stop)
        stu.schedule_relationship = rt.TripUpdate.StopTimeUpdate.SKIPPED
        stu.arrival.time = at
    for trip, stop, delay in delays:
        e = fm.entity.add(id=f"d-{trip}")
        e.trip_update.trip.trip_id = trip
        e.trip_update.stop_time_update.add(stop_id=stop).arrival.delay = delay
    return fm.SerializeToString()


def test_gtfs_realtime_cancellations_over_http():
    start = datetime(2026, 12, 4, 17, 0, tzinfo=timezone.utc).timestamp()
    t0 = int(start)
    server = BytesServer(cancellations_message(t0 + 60, {"T7": [("P2", t0 + 900)], "T8": []},
                                               skipped=[("T9", "P5", t0 + 1200)], delays=[("T3", "P3", 120)]))
    try:
        feed = open_feed(f"gtfs-rt+http://127.0.0.1:{server.port}/trip-updates.pb#sensor=RAIL", poll_s=0.0)
        got = feed.poll()
        server.body = cancellations_message(t0 + 90, {"T7": [("P2", t0 + 900)], "T8": []})
        again = feed.poll()  # every snapshot repeats the cancellations: not news
    finally:
        server.stop()
    assert server.requests == 2 and again == []
    obs = [parse(r, feed.url, 0.0, SENSORS, start_epoch_s=start) for r in got]
    assert [(o.sensor, o.feature, o.time_s, o.value, o.fate) for o in obs if o.fate == ""] == [
        ("RAIL-cancelled", "P2", 60.0, 840.0, ""),  # planned at 900 s: 840 s after the report
        ("RAIL-cancelled", "P5", 60.0, 1140.0, ""),  # a stop skipped by a running trip
        ("RAIL", "P3", 60.0, 120.0, "")]
    bad = [o for o in obs if o.fate == "invalid"]  # T8 names no stop: which arrival is unknown
    assert len(bad) == 1 and bad[0].sensor == "RAIL-cancelled" and "trip T8 is cancelled but names no stop" in bad[0].reason


def test_csv_folder_feed_reads_appended_and_dropped_files(tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    feed = open_feed(f"folder:{folder}")
    assert feed.poll() == []
    (folder / "gauges.csv").write_text("sensor,time,value,unit\nRG1,0,12.5,mm/h\nRG1,300,", encoding="utf-8")
    first = feed.poll()  # the half-written last line waits
    with open(folder / "gauges.csv", "a", encoding="utf-8") as f:
        f.write("20.0,mm/h\nRG1,600,oops,mm/h\n")
    second = feed.poll()
    (folder / "counts.csv").write_text("time,sensor,unit,value\n60,C-E1,persons,33\n", encoding="utf-8")
    third = feed.poll()
    obs = [parse(r, feed.url, 0.0, SENSORS) for r in first + second + third]
    assert [(o.sensor, o.time_s, o.value) for o in obs if o.fate != "invalid"] == [
        ("RG1", 0.0, 12.5), ("RG1", 300.0, 20.0), ("C-E1", 60.0, 33.0)]
    assert [o.reason for o in obs if o.fate == "invalid"] == ["value 'oops' is not a finite number"]


@pytest.mark.parametrize("raw, reason", [
    (b"{", "not JSON"), (b"[1, 2]", "not a JSON object"), (b'{"sensor": "C-E1", "value": 1}', "missing time"),
    (b'{"sensor": "X9", "time": 0, "value": 1}', "unknown sensor 'X9'"),
    (b'{"sensor": "C-E1", "time": 0, "value": 1, "unit": "m"}', "unit 'm'"),
    (b'{"sensor": "RAIL", "time": 0, "value": 60, "unit": "s"}', "must name its feature"),
    (b'{"sensor": "RG1", "time": "yesterday", "value": 1}', "neither seconds nor"),
    (b'{"sensor": "RG1", "time": 0, "value": "NaN"}', "not a finite number"),
])
def test_bad_messages_are_invalid_with_a_reason(raw, reason):
    o = parse(raw, "test", 0.0, SENSORS, start_epoch_s=0.0)
    assert o.fate == "invalid" and reason in o.reason


def test_a_timestamp_without_the_runs_start_says_so():
    o = parse(b'{"sensor": "RG1", "time": "2026-12-04T17:00:00+08:00", "value": 1}', "test", 0.0, SENSORS)
    assert o.fate == "invalid" and "give the live run --start" in o.reason
    o = parse(b'{"sensor": "RG1", "time": "2026-12-04T17:05:00+08:00", "value": 1}', "test", 0.0, SENSORS,
              start_epoch_s=datetime.fromisoformat("2026-12-04T17:00:00+08:00").timestamp())
    assert o.fate == "" and o.time_s == 300.0


def test_unknown_feed_url_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no adapter reads 'ftp'"):
        open_feed("ftp://example.org/x")
    with pytest.raises(UserError, match="is not a folder"):
        open_feed(f"folder:{tmp_path / 'missing'}")
