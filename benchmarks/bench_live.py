"""Observation-to-forecast latency of live mode (docs/live.md, "Speed").

    .venv/bin/python benchmarks/bench_live.py [--scenario scenarios/station_evening_peak.toml] [--at 600]
        [--members 10] [--horizon-s 900] [--workers 2] [--set KEY=VALUE ...] [--member-set KEY=VALUE ...]

The live run is brought to ``at - 10`` s (not timed); there it issues a short forecast (not timed),
which starts the worker processes and loads the city into them, as every forecast after a live run's
first finds them; then a state sensor's message at ``at`` arrives and the twin advances to it and issues
the forecast it owes there: ``members`` members from the state, ``horizon_s`` ahead, on ``workers``
processes. Printed: the wall time from the message to the written forecast, and the forecast alone;
the processor time the workers spent on it (a shared machine stretches the wall time, much less the
processor time: the busiest worker's share is what the forecast takes with a core per worker);
``--set`` runs the members (and the twin) at another resolution (e.g. ``time_step_s=0.1``) to see what
it saves; ``--member-set`` the members alone (the twin stays at full resolution, as `citytwin live
--member-set` runs it); ``--cold`` times the first forecast, worker start included. Results go to
stdout only.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def forecast_arguments(members: int) -> argparse.ArgumentParser:
    """The options of a forecast from a live twin's state (this benchmark's and bench_live_resolution's)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "station_evening_peak.toml"))
    ap.add_argument("--at", type=float, default=600.0, help="model time of the forecast (s)")
    ap.add_argument("--members", type=int, default=members)
    ap.add_argument("--horizon-s", type=float, default=900.0)
    return ap


def main() -> None:
    ap = forecast_arguments(members=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--member-set", dest="member_sets", action="append", default=[])
    ap.add_argument("--cold", action="store_true", help="time the first forecast (workers started by it)")
    a = ap.parse_args()

    from twin.core.sensors import read_sensors
    from twin.live.loop import LiveSettings, LiveTwin
    from twin.live.messages import message
    from twin.scenario.scenario import load_scenario, parse_set

    sc = load_scenario(a.scenario)
    out = Path(tempfile.mkdtemp(prefix="bench_live_"))
    settings = LiveSettings(forecast_interval_s=a.at, horizon_s=a.horizon_s, members=a.members, workers=a.workers,
                            member_overrides=parse_set(a.member_sets))
    t = time.perf_counter()
    twin = LiveTwin(sc, [], out, settings, overrides=parse_set(a.sets), log=None)
    twin.next_forecast = a.at  # no forecast at 0: the one timed is at ``at``
    twin.feed_clock = a.at - 10
    twin._advance(a.at - 10)
    print(f"{sc.name}: model built and run to {a.at - 10:g} s in {time.perf_counter() - t:.1f} s wall")
    if not a.cold and a.workers > 1:
        full = twin.s.members, twin.s.horizon_s
        twin.s.members, twin.s.horizon_s = 2 * a.workers, twin.run.model.report_interval_s
        twin._forecast()
        twin.s.members, twin.s.horizon_s = full
        twin.next_forecast = a.at
    state_sensor = next(s for s in read_sensors(sc.load_city()) if s.id in twin.observer.by_id
                        and twin.observer.by_id[s.id].how != "forcing")
    msg = message(state_sensor.id, a.at, 40.0, state_sensor.unit)

    class OneMessage:
        url, errors, last_error = "bench", 0, ""

        def __init__(self):
            self.sent = False

        def poll(self):
            if self.sent:
                return []
            self.sent = True
            return [msg]

        def close(self):
            pass

    feed = OneMessage()
    twin.feeds = [feed]
    from twin.live.loop import FeedStats

    twin.stats = {feed.url: FeedStats()}
    cpu0 = _worker_cpu(twin.pool)
    t0 = time.perf_counter()
    twin._poll()
    twin._advance(min(twin.feed_clock, twin.until))
    latency = time.perf_counter() - t0
    cpu = {pid: c - cpu0.get(pid, 0.0) for pid, c in _worker_cpu(twin.pool).items()}
    twin.pool.close()
    log = (out / "log.txt").read_text().splitlines()
    fc = [x for x in log if "forecast issued" in x]
    for x in log:
        if "failed" in x and f"forecast at {a.at:g} s" in x:
            print(x)  # members that could not run: the time above is not a forecast's
    print(f"observation at {a.at:g} s -> forecast of {a.members} members {a.horizon_s:g} s ahead on {a.workers} "
          f"worker(s): {latency:.1f} s wall ({fc[-1].split(': ', 1)[1] if fc else 'no forecast'})")
    if cpu:
        print(f"processor time of the workers: {sum(cpu.values()):.1f} s in all, the busiest {max(cpu.values()):.1f} s")
    print(f"settings: {' '.join(a.sets) or 'full resolution'}; members: {' '.join(a.member_sets) or 'as the twin'}; cores: {os.cpu_count()}; load: "
          f"{os.getloadavg()[0]:.1f}")


def _worker_cpu(pool) -> dict[int, float]:
    """User + system seconds of each worker process so far (Linux /proc; empty elsewhere)."""
    ex = getattr(pool, "_ex", None)
    out = {}
    for pid in (getattr(ex, "_processes", None) or {}):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


if __name__ == "__main__":
    main()
