"""The engine's inputs as plain dataclasses, and their checks.

Places are integers: indices into the travel-time matrix ``T[mode][i, j]`` (seconds) that the
caller supplies. Entry points, attractions and hotels each name their place; several may share
one. A per-feature value is a number (the same for all) or a sequence with one value per feature.
Every check raises ``UserError`` naming the key and the feature and saying how to fix it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twin.core.errors import UserError, nearest


Number = float | int


@dataclass
class Entries:
    """Stations and coach stops where tourists arrive.

    ``arrival_rate_per_h``: tourists (persons) per hour, per entry point: a number, or a profile
    ``(t_s, rate)`` of arrays, piecewise constant: ``rate[i]`` holds from ``t_s[i]`` to
    ``t_s[i+1]``. With ``len(t_s) == len(rate)`` the last value holds to the end of the period;
    with ``len(t_s) == len(rate) + 1`` the last edge ends the profile and must not be before the
    end of the period. Groups arrive at rate / mean group size.
    ``arrival_process``: ``"poisson"`` (non-homogeneous Poisson, by inversion of the cumulative
    rate) or ``"deterministic"`` (arrivals where the cumulative rate passes k + ½).
    """
    place: Sequence[int]
    arrival_rate_per_h: Number | Sequence = 0.0
    arrival_process: str | Sequence[str] = "poisson"
    ids: Sequence[str] | None = None


@dataclass
class Attractions:
    """Scenic spots, museums, ... Times in seconds; ``open_s``/``close_s`` on the engine's clock
    (``None`` or ±inf: open all the time); closing is the last admission. ``service_cv`` and
    ``dwell_cv`` are the coefficients of variation of the lognormal choice."""
    place: Sequence[int]
    gates: int | Sequence[int] = 1
    service_time_s: Number | Sequence[Number] = 30.0
    service_time_distribution: str | Sequence[str] = "exponential"
    service_cv: Number | Sequence[Number] = 0.5
    capacity: int | Sequence[int] = 1000
    dwell_mean_s: Number | Sequence[Number] = 3600.0
    dwell_distribution: str | Sequence[str] = "lognormal"
    dwell_cv: Number | Sequence[Number] = 0.5
    popularity: Number | Sequence[Number] = 1.0
    open_s: Number | Sequence[Number] | None = None
    close_s: Number | Sequence[Number] | None = None
    ids: Sequence[str] | None = None


@dataclass
class Hotels:
    """``rooms``: rooms in all; ``rooms_free``: free at the start (default: all). ``desks``:
    front-desk servers; ``checkin_time_s``: mean desk time per group; ``enquiry_s``: time a
    walk-in searcher spends asking at the desk whether a room is free."""
    place: Sequence[int]
    rooms: int | Sequence[int] = 100
    rooms_free: int | Sequence[int] | None = None
    desks: int | Sequence[int] = 2
    checkin_time_s: Number | Sequence[Number] = 180.0
    checkin_distribution: str | Sequence[str] = "exponential"
    checkin_cv: Number | Sequence[Number] = 0.5
    enquiry_s: Number | Sequence[Number] = 120.0
    ids: Sequence[str] | None = None


@dataclass
class Demand:
    """Who the tourists are. ``group_size_pmf[k]`` is the probability of a group of k + 1 persons
    (``one_plus_poisson_pmf`` builds 1 + Poisson). ``time_budget_s``: mean sightseeing time from
    arrival (lognormal with ``time_budget_cv``; 0 = the same for all). ``max_visits``: visits a
    group makes at most; ``alternatives``: further attractions on its list, drawn by popularity
    like the rest, that it visits instead when one is closed, too late for its budget, or (if it
    follows the recommendation) less busy. ``overnight_share``: share of groups who stay the night
    (they look for rooms on arrival and check in in the evening); the others leave by their entry
    point. ``persons_per_room``: rooms a group needs = ceil(size / persons_per_room)."""
    group_size_pmf: Sequence[float] = (1.0,)
    time_budget_s: float = 8 * 3600.0
    time_budget_cv: float = 0.25
    max_visits: int = 3
    alternatives: int = 0
    overnight_share: float = 0.5
    persons_per_room: int = 2
    max_hotel_enquiries: int | None = None


@dataclass
class Interventions:
    """Planner's levers (defaults: none of them).

    * Timed entry: ``reservation_share`` of groups book an entry slot when they set out for an
      attraction; slots are ``slot_length_s`` long from the opening, each with a quota of
      ``slot_quota_share`` × the gates' nominal throughput in a slot (persons). A booked group
      waits (not queueing) for its slot if early, then uses the reservation lane, served before
      the regular queue.
    * ``recommend_share`` of groups follow the real-time recommendation: at each departure they go
      to the candidate on their plan with the lowest ``recommend_objective`` now, ``"wait"``
      ((persons queueing or on the way) × mean service / gates) or ``"crowding"`` ((inside +
      queueing + on the way) / capacity).
    * ``extra_gates`` (per attraction), ``entry_time_factor`` (e-ticket / face check: multiplies
      the gate service time), ``capacity_cap`` (persons; admits at most min(capacity, cap)).
    * ``room_platform_share`` of overnight groups find a room on the platform in
      ``platform_search_s`` (the nearest free room to the entry point) instead of walking round.
    * ``online_checkin_share`` of groups checked in online: ``online_checkin_s`` at the hotel,
      without the desk queue.
    * Shuttles: travel mode 1 of ``T`` (inf where none runs), departures every
      ``shuttle_headway_s``; ``shuttle_share`` of groups take it where it is faster, wait included.
    """
    reservation_share: float = 0.0
    slot_length_s: float = 1800.0
    slot_quota_share: float = 0.5
    recommend_share: float = 0.0
    recommend_objective: str = "wait"
    extra_gates: int | Sequence[int] = 0
    entry_time_factor: float = 1.0
    capacity_cap: int | Sequence[int] | None = None
    room_platform_share: float = 0.0
    platform_search_s: float = 10.0
    online_checkin_share: float = 0.0
    online_checkin_s: float = 30.0
    shuttle_share: float = 1.0
    shuttle_headway_s: float = 600.0


def one_plus_poisson_pmf(mean_size: float, max_size: int = 8) -> np.ndarray:
    """pmf of 1 + Poisson(mean_size − 1), truncated at max_size (tail folded into the last)."""
    if not math.isfinite(mean_size) or mean_size < 1:
        raise UserError(f"group size: mean {mean_size!r} must be a number >= 1.")
    lam = mean_size - 1.0
    k = np.arange(max_size)
    p = np.exp(-lam + k * math.log(lam) - np.array([math.lgamma(i + 1) for i in k])) if lam > 0 else (k == 0) * 1.0
    p[-1] += max(0.0, 1.0 - p.sum())
    return p / p.sum()


# -- checks ------------------------------------------------------------------------------------
def feature_ids(ids, n: int, kind: str) -> list[str]:
    if ids is None:
        return [f"{kind} {i}" for i in range(n)]
    ids = [str(i) for i in ids]
    if len(ids) != n:
        raise UserError(f"{kind}s: {len(ids)} ids for {n} {kind}s; give one id per {kind}.")
    return ids


def per_feature(value, n: int, key: str, kind: str, ids: list[str], *, integer=False, lo=None,
                lo_open=False, allow_inf=False, fix="", none=None) -> np.ndarray:
    """A number or one value per feature -> float64 (or int64) array of length n, checked.
    ``none``: the value that a None item stands for (None: a None is an error)."""
    if value is None and none is not None:
        value = none
    if value is None:
        raise UserError(f"{kind}s: {key} is missing; {fix or 'give a number or one value per ' + kind}.")
    arr = np.asarray(value, dtype=object)
    if arr.ndim == 0:
        arr = np.full(n, value, dtype=object)
    if arr.ndim != 1 or len(arr) != n:
        raise UserError(f"{kind}s: {key} has {arr.size} values for {n} {kind}s; give one number or one per {kind}.")
    out = np.empty(n)
    for i, v in enumerate(arr):
        if v is None and none is not None:
            v = none
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise UserError(f'{kind} "{ids[i]}": {key} = {v!r} is not a number.') from None
        if math.isnan(x) or (math.isinf(x) and not allow_inf):
            raise UserError(f'{kind} "{ids[i]}": {key} = {v!r} is not a finite number; give a finite value.')
        if integer and math.isfinite(x) and x != round(x):
            raise UserError(f'{kind} "{ids[i]}": {key} = {v!r} must be a whole number.')
        if lo is not None and (x < lo or (lo_open and x == lo)):
            bound = f"more than {lo:g}" if lo_open else f"at least {lo:g}"
            raise UserError(f'{kind} "{ids[i]}": {key} = {v!r}; it must be {bound}{". " + fix if fix else "."}')
        out[i] = x
    return out.astype(np.int64) if integer else out


def choice_per_feature(value, n, key, kind, ids, choices: dict[str, int]) -> np.ndarray:
    vals = [value] * n if isinstance(value, str) else list(value)
    if len(vals) != n:
        raise UserError(f"{kind}s: {key} has {len(vals)} values for {n} {kind}s; give one or one per {kind}.")
    out = np.empty(n, np.int64)
    for i, v in enumerate(vals):
        if v not in choices:
            raise UserError(f'{kind} "{ids[i]}": {key} = "{v}" is unknown{nearest(str(v), choices)}; '
                            f'use one of {", ".join(choices)}.')
        out[i] = choices[v]
    return out


def check_share(value, key: str) -> float:
    x = check_number(value, key, lo=0.0)
    if x > 1.0:
        raise UserError(f"{key} = {value!r}: a share must be between 0 and 1.")
    return x


def check_number(value, key: str, lo=None, lo_open=False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{key} = {value!r} is not a number.") from None
    if not math.isfinite(x):
        raise UserError(f"{key} = {value!r} is not a finite number; give a finite value.")
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise UserError(f"{key} = {value!r}; it must be {'more than' if lo_open else 'at least'} {lo:g}.")
    return x


def check_places(place, n_places: int, kind: str, ids: list[str]) -> np.ndarray:
    p = per_feature(place, len(ids), "place", kind, ids, integer=True, lo=0)
    bad = np.flatnonzero(p >= n_places)
    if bad.size:
        i = bad[0]
        raise UserError(f'{kind} "{ids[i]}": place {p[i]} is not a row of the travel-time matrix '
                        f"(it has {n_places} places, 0..{n_places - 1}).")
    return p


def check_travel_times(T) -> np.ndarray:
    """(modes, P, P) float64: mode 0 on foot (finite, >= 0), mode 1 shuttle (>= 0, inf = none)."""
    T = np.asarray(T, dtype=np.float64)
    if T.ndim == 2:
        T = T[None]
    if T.ndim != 3 or T.shape[1] != T.shape[2] or T.shape[0] not in (1, 2) or T.shape[1] == 0:
        raise UserError(f"travel times: shape {T.shape}; give a square (places x places) matrix of seconds, "
                        "or (2, places, places) with the shuttle as the second mode.")
    if np.isnan(T).any():
        i = np.argwhere(np.isnan(T))[0]
        raise UserError(f"travel times: T[{i[0]}][{i[1]}, {i[2]}] is NaN; give seconds (inf = no shuttle).")
    if (T < 0).any():
        i = np.argwhere(T < 0)[0]
        raise UserError(f"travel times: T[{i[0]}][{i[1]}, {i[2]}] = {T[tuple(i)]} is negative.")
    if not np.isfinite(T[0]).all():
        i = np.argwhere(~np.isfinite(T[0]))[0]
        raise UserError(f"travel times: on foot from place {i[0]} to {i[1]} is not finite; every place "
                        "must be reachable on foot (mode 0).")
    return T


def rate_profile(rate, process: str, start_s: float, end_s: float, eid: str):
    """(edges, rate_per_s) covering [start_s, end_s] for one entry point (persons per second)."""
    where = f'entry "{eid}": arrival_rate_per_h'
    if isinstance(rate, (tuple, list)) and len(rate) == 2 and np.ndim(rate[0]) == 1:
        t = np.asarray(rate[0], dtype=float)
        r = np.asarray(rate[1], dtype=float)
        if r.ndim != 1 or len(r) == 0 or len(t) not in (len(r), len(r) + 1):
            raise UserError(f"{where}: a profile (t_s, rate) needs as many times as rates (segment starts) "
                            f"or one more (segment edges); got {len(t)} times and {np.size(r)} rates.")
        if not (np.isfinite(t).all() and np.isfinite(r).all()):
            raise UserError(f"{where}: the profile holds a non-finite number; give finite times and rates.")
        if (np.diff(t) <= 0).any():
            raise UserError(f"{where}: the profile times must increase strictly.")
        if (r < 0).any():
            raise UserError(f"{where}: the profile has a negative rate ({r.min():g} per hour); rates are >= 0.")
        if t[0] > start_s:
            raise UserError(f"{where}: the profile starts at {t[0]:g} s but the simulated period starts at "
                            f"{start_s:g} s; add a first value at {start_s:g} s so the profile covers the period.")
        if len(t) == len(r) + 1 and t[-1] < end_s:
            raise UserError(f"{where}: the profile ends at {t[-1]:g} s but the simulated period ends at "
                            f"{end_s:g} s; extend the profile to cover the period.")
        edges = np.append(t, max(end_s, t[-1])) if len(t) == len(r) else t.copy()
        rates = r / 3600.0
    else:
        try:
            x = float(rate)
        except (TypeError, ValueError):
            raise UserError(f"{where} = {rate!r}: give a number or a profile (t_s, rate).") from None
        if not math.isfinite(x):
            raise UserError(f"{where} = {rate!r} is not a finite number.")
        if x < 0:
            raise UserError(f"{where} = {x:g} is negative; give a rate >= 0 tourists per hour.")
        edges = np.array([start_s, end_s])
        rates = np.array([x / 3600.0])
    if process not in ("poisson", "deterministic"):
        raise UserError(f'entry "{eid}": arrival_process = "{process}" is unknown'
                        f'{nearest(str(process), ["poisson", "deterministic"])}; use "poisson" or "deterministic".')
    return edges, rates
