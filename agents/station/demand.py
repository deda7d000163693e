"""Train demand that travels with a scenario: a timetable (CSV or inline) or a GTFS feed.

When a scenario gives trains, they replace the ``count`` and ``release_s`` of the city's sources:
each train releases its passengers on one platform (a source, named by its id) from its arrival
time on. ``demand_scale`` multiplies every train's passengers (and the sources' counts when no
trains are given).

* ``timetable``: a CSV file with the columns ``platform,arrival_s,passengers`` (a header row
  naming them, in any order; ``#`` starts a comment line);
* ``trains``: the same rows inline, one text per train: ``"P1 0 1500"`` (platform, arrival in
  seconds after the start, passengers);
* ``gtfs_stop_times``: a GTFS ``stop_times.txt``; every trip that arrives at one of the stops in
  ``gtfs_stop_ids`` (all stops in the file when empty) between ``gtfs_start_time`` and the end of
  the run is a train of ``passengers_per_train``; a stop id that is also a source id is that
  platform, other stops' trains go to the platforms in turn (sources in their order).
"""
from __future__ import annotations

import math

import csv
from dataclasses import dataclass
from pathlib import Path

from twin.core.errors import UserError, nearest

# Bounds on the demand a scenario gives (as twin.core.limits bounds the platform's numbers).
MAX_TRAIN_PASSENGERS = 20_000  # one train: the longest, most crowded trains carry a few thousand
MAX_TRAINS = 100_000  # rows of a timetable: a day of a busy hub is a few thousand
MAX_STATION_PASSENGERS = 2_000_000  # everyone a station run simulates (each holds ~1 kB of arrays)


@dataclass(frozen=True)
class Train:
    source: int  # index into the station's sources
    arrival_s: float
    passengers: int


def _source_index(name: str, ids: list[str], where: str) -> int:
    if name not in ids:
        raise UserError(f'{where}: platform "{name}" does not exist{nearest(name, ids)}; the platforms (sources) '
                        f'of this city are {", ".join(ids) or "(none)"}.')
    return ids.index(name)


def _row(platform, arrival, passengers, ids, where, column: str = "") -> Train:
    try:
        t = float(arrival)
        n = float(passengers)
    except (TypeError, ValueError):
        raise UserError(f"{where}: arrival_s ({arrival!r}) and passengers ({passengers!r}) must be numbers.") from None
    if not (t >= 0 and t == t and t != float("inf")):
        raise UserError(f"{where}: arrival_s = {arrival!r}; give seconds after the start (>= 0).")
    if not (n >= 0 and n == n and n != float("inf") and n == int(n)):
        raise UserError(f"{where}{column}: passengers = {passengers!r}; give a whole number >= 0.")
    if n > MAX_TRAIN_PASSENGERS:
        raise UserError(f"{where}{column}: passengers = {passengers!r} in one train; at most "
                        f"{MAX_TRAIN_PASSENGERS:,} (the most crowded trains carry a few thousand).")
    return Train(_source_index(str(platform).strip(), ids, where), t, int(n))


def read_timetable(path: str, ids: list[str]) -> list[Train]:
    where = f"parameter timetable: {path}"
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: cannot read it as text ({e}).") from None
    # (line number in the file, cells): messages name the line as an editor shows it
    lines = ((k, ln) for k, ln in enumerate(text.splitlines(), start=1)
             if ln.strip() and not ln.lstrip().startswith("#"))
    first = next(lines, None)
    if first is None:
        raise UserError(f"{where}: the timetable is empty; write a header platform,arrival_s,passengers and a row "
                        "per train.")
    head = [c.strip().lower() for c in next(csv.reader([first[1]]))]
    need = ("platform", "arrival_s", "passengers")
    missing = [c for c in need if c not in head]
    if missing:
        raise UserError(f"{where}: the header row lacks {', '.join(missing)}; it must name the columns "
                        "platform,arrival_s,passengers.")
    col = {c: head.index(c) for c in need}
    out = []
    for k, line in lines:
        if len(out) >= MAX_TRAINS:
            raise UserError(f"{where}, line {k}: more than {MAX_TRAINS:,} trains; a timetable holds at most "
                            f"{MAX_TRAINS:,} rows (a day of the busiest station has a few thousand).")
        cells = next(csv.reader([line]))
        if len(cells) < len(head):
            raise UserError(f"{where}, line {k}: {len(cells)} column(s), the header {len(head)}.")
        out.append(_row(cells[col["platform"]], cells[col["arrival_s"]], cells[col["passengers"]], ids,
                        f"{where}, line {k}", f", column {col['passengers'] + 1} (passengers)"))
    return out


def parse_inline(items: list[str], ids: list[str]) -> list[Train]:
    if len(items) > MAX_TRAINS:
        raise UserError(f"parameter trains: {len(items):,} trains; at most {MAX_TRAINS:,}.")
    out = []
    for k, item in enumerate(items, start=1):
        parts = str(item).replace(",", " ").split()
        where = f'parameter trains, entry {k} ("{item}")'
        if len(parts) != 3:
            raise UserError(f'{where}: write "platform arrival_s passengers", e.g. "P1 0 1500".')
        out.append(_row(parts[0], parts[1], parts[2], ids, where))
    return out


def apply_delays(trains: list[Train], items: list[str], ids: list[str]) -> list[Train]:
    """``train_delays``: "platform delay_s reported_s" each. In the order reported, a report moves its
    platform's trains that had not arrived by then (planned arrival + delay after the report) to
    planned arrival + delay; a train an earlier report moved and that arrived before this report keeps
    its arrival. So a delay reported and later cleared ("P4 480 120", then "P4 0 780") delays the train
    that arrived in between and none after, as a live twin given the reports one by one has it."""
    reports = []
    for k, (src, delay, at, where) in enumerate(_reports(items, ids, "train_delays", "delay", "P3 480 300")):
        if not -3600 <= delay <= 86400:
            raise UserError(f"{where}: a delay from -3600 to 86400 s.")
        reports.append((at, k, src, delay))
    arrival = [t.arrival_s for t in trains]
    moved = [False] * len(trains)
    for at, _, src, delay in sorted(reports):
        for j, t in enumerate(trains):
            if t.source != src or (moved[j] and arrival[j] < at) or t.arrival_s + delay < at:
                continue
            arrival[j], moved[j] = max(0.0, t.arrival_s + delay), True
    return [Train(t.source, a, t.passengers) if m else t for t, a, m in zip(trains, arrival, moved)]


def _reports(items: list[str], ids: list[str], param: str, what: str, example: str):
    """Each "platform <what>_s reported_s" entry of ``param``: (platform index, seconds, report time,
    where), checked (a finite number of seconds, a report time >= 0)."""
    for k, item in enumerate(items, start=1):
        parts = str(item).replace(",", " ").split()
        where = f'parameter {param}, entry {k} ("{item}")'
        if len(parts) != 3:
            raise UserError(f'{where}: write "platform {what}_s reported_s", e.g. "{example}".')
        src = _source_index(parts[0], ids, where)
        try:
            value, at = float(parts[1]), float(parts[2])
        except ValueError:
            raise UserError(f"{where}: the {what} and the report time are seconds (numbers).") from None
        if not (math.isfinite(value) and math.isfinite(at) and at >= 0):
            raise UserError(f"{where}: the {what} is a number of seconds and the report time a number >= 0 s.")
        yield src, value, at, where


CANCEL_MATCH_S = 90.0  # a cancellation names its train by the planned arrival: the feed's clock may differ by a minute


def cancelled_trains(trains: list[Train], items: list[str], ids: list[str], arrivals: list[float]) -> set[int]:
    """``train_cancellations``: "platform arrival_s reported_s" each (the planned arrival of a cancelled
    train at its platform). The platform's train planned nearest to arrival_s (within CANCEL_MATCH_S)
    is cancelled when it had not arrived by the report (``arrivals``: each train's arrival after its
    delays): the indices of the cancelled trains."""
    out: set[int] = set()
    for src, planned, at, _ in _reports(items, ids, "train_cancellations", "arrival", "P3 900 300"):
        near = [(abs(t.arrival_s - planned), j) for j, t in enumerate(trains)
                if t.source == src and abs(t.arrival_s - planned) <= CANCEL_MATCH_S]
        if near:
            j = min(near)[1]
            if arrivals[j] >= at:
                out.add(j)
    return out


def check_total(counts, where: str) -> None:
    """Everyone a run would simulate (after ``demand_scale``): bounded, like every other count."""
    total = sum(int(n) for n in counts)
    if total > MAX_STATION_PASSENGERS:
        raise UserError(f"{where}: {total:,} passengers in all; a station run simulates at most "
                        f"{MAX_STATION_PASSENGERS:,}. Lower demand_scale or the trains' passengers.")


def _clock_s(text: str, where: str) -> float:
    parts = str(text).strip().split(":")
    try:
        h, m, s = (int(parts[0]), int(parts[1]), float(parts[2])) if len(parts) == 3 else (None, None, None)
    except ValueError:
        h = None
    if h is None or not (0 <= m < 60 and 0 <= s < 61 and h >= 0):
        raise UserError(f'{where}: "{text}" is not a time; write HH:MM:SS (GTFS allows hours past 24).')
    return h * 3600.0 + m * 60.0 + s


def read_gtfs(path: str, stop_ids: list[str], start: str, duration_s: float, per_train: int,
              ids: list[str]) -> list[Train]:
    where = f"parameter gtfs_stop_times: {path}"
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{where}: cannot read it as a GTFS stop_times.txt ({e}).") from None
    if not rows or not {"trip_id", "arrival_time", "stop_id"} <= set(rows[0]):
        raise UserError(f"{where}: a GTFS stop_times.txt needs the columns trip_id, arrival_time and stop_id.")
    present = {r["stop_id"] for r in rows}
    for s in stop_ids:
        if s not in present:
            raise UserError(f'parameter gtfs_stop_ids: stop "{s}" does not appear in {path}'
                            f"{nearest(s, sorted(present))}.")
    t0 = _clock_s(start, "parameter gtfs_start_time") if start else None
    arrivals = []
    for r in rows:
        if stop_ids and r["stop_id"] not in stop_ids:
            continue
        if not (r.get("arrival_time") or "").strip():
            continue
        arrivals.append((_clock_s(r["arrival_time"], f"{where}, trip {r['trip_id']}"), r["trip_id"], r["stop_id"]))
    if not arrivals:
        raise UserError(f"{where}: no trip arrives at the stops {', '.join(stop_ids) or '(any)'}.")
    arrivals.sort()
    if t0 is None:
        t0 = arrivals[0][0]
    out, turn = [], 0
    for t, _, stop in arrivals:
        if not (t0 <= t < t0 + duration_s):
            continue
        if stop in ids:
            src = ids.index(stop)
        else:
            src = turn % len(ids)
            turn += 1
        out.append(Train(src, t - t0, int(per_train)))
    if not out:
        raise UserError(f"{where}: no train arrives between {start or 'the first arrival'} and {duration_s:g} s "
                        "later; check gtfs_start_time.")
    return out


def trains_from_params(p: dict, source_ids: list[str], duration_s: float, max_per_train=None,
                       notes: list | None = None) -> list[Train] | None:
    """The scenario's trains (scaled), or None when it gives none (the sources' counts apply).

    ``max_per_train`` (per source, NaN or None for no limit; the sources' ``max_per_train``
    column): a train carries at most that many onto its platform, before ``demand_scale``, so that
    a timetable written for one station's long platforms fits another's (``--city``); ``notes``
    hears how many trains were cut down."""
    trains: list[Train] = []
    given = False
    if p.get("timetable"):
        trains += read_timetable(p["timetable"], source_ids)
        given = True
    if p.get("trains"):
        trains += parse_inline(p["trains"], source_ids)
        given = True
    if p.get("gtfs_stop_times"):
        trains += read_gtfs(p["gtfs_stop_times"], list(p.get("gtfs_stop_ids", [])), p.get("gtfs_start_time", ""),
                            duration_s, p.get("passengers_per_train", 300), source_ids)
        given = True
    elif p.get("gtfs_stop_ids") or p.get("gtfs_start_time"):
        raise UserError("parameters gtfs_stop_ids / gtfs_start_time need gtfs_stop_times (the GTFS stop_times.txt).")
    if not given:
        return None
    if len(trains) > MAX_TRAINS:
        raise UserError(f"parameters timetable, trains and gtfs_stop_times: {len(trains):,} trains; at most {MAX_TRAINS:,}.")
    if max_per_train is not None:
        trains, cut = fit_to_platforms(trains, max_per_train, source_ids)
        if cut and notes is not None:
            notes.append(f"{len(cut)} of {len(trains)} trains carry more passengers than their platform takes "
                         f"(max_per_train of the sources: {', '.join(cut[:6])}{' ...' if len(cut) > 6 else ''}); "
                         "each was cut down to it, before demand_scale")
    out = [Train(t.source, t.arrival_s, scaled(t.passengers, p.get("demand_scale", 1.0))) for t in trains]
    check_total([t.passengers for t in out], "the trains (timetable, trains, gtfs_stop_times, × demand_scale)")
    return out


def fit_to_platforms(trains: list[Train], max_per_train, ids: list[str]) -> tuple[list[Train], list[str]]:
    """Each train's passengers capped at its platform's ``max_per_train`` (NaN or None: no cap); also
    the trains cut down, as "platform at arrival_s: from -> to"."""
    out, cut = [], []
    for t in trains:
        m = max_per_train[t.source]
        if m is not None and m == m and t.passengers > m:
            cut.append(f"{ids[t.source]} at {t.arrival_s:g} s: {t.passengers} -> {int(m)}")
            t = Train(t.source, t.arrival_s, int(m))
        out.append(t)
    return out, cut


def scaled(n: int, scale: float) -> int:
    return int(round(n * scale))
