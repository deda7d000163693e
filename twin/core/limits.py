"""Bounds on the numbers a user gives: every duration, count and replication has one.

A number outside these bounds is refused when the scenario or the command line is read, with a
message that states the bound, instead of running for ever (``duration_s = inf``), running for no
time (``nan``) or exhausting memory (``replications = 1000000000``). They are generous: each is far
beyond what a planning study needs, and well inside what this machine can hold.
"""
from __future__ import annotations

import math

from .errors import UserError

MAX_DURATION_S = 30 * 86_400.0  # a simulated month: a multi-day event with margin
MIN_DURATION_S = 1.0
MAX_SEED = 2**32 - 1  # the usual range of a 32-bit seed (numpy, R); TOML ints hold it exactly
MAX_REPLICATIONS = 10_000
MAX_RUNS = 100_000  # variants × replications in one comparison
MAX_SWEEP_POINTS = 10_000  # parameter points of one [experiment] sweep
MAX_WORKERS = 1_024
MAX_NESTING = 32  # tables and lists inside each other in a TOML file; a scenario needs 4
MIN_TRAJECTORY_INTERVAL_S = 0.01
MAX_TRAJECTORY_SAMPLES = 1_000_000  # duration_s / trajectory_interval_s
MAX_SNAPSHOTS = 10_000


def bounded_number(value, what: str, *, whole: bool = False, minimum: float | None = None,
                   maximum: float | None = None, unit: str = ""):
    """``value`` as an int (``whole``) or a finite float within [minimum, maximum], else UserError.

    ``what`` names the key or option, e.g. "[scenario] duration_s" or "--seed".
    """
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{what} must be {kind}, not {_short_repr(value)}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{what} = {value} is not a finite number; give {kind}{_range_text(minimum, maximum, unit)}.")
    if whole:
        if isinstance(value, float) and not value.is_integer():
            raise UserError(f"{what} must be a whole number, not {value!r}.")
        value = int(value)
    else:
        value = float(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise UserError(f"{what} = {_fmt(value)} is out of range; give {kind}{_range_text(minimum, maximum, unit)}.")
    return value


def _fmt(v) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def _range_text(minimum, maximum, unit: str = "") -> str:
    u = f" {unit}" if unit else ""
    if minimum is not None and maximum is not None:
        return f" from {_fmt(minimum)} to {_fmt(maximum)}{u}"
    if minimum is not None:
        return f" of at least {_fmt(minimum)}{u}"
    if maximum is not None:
        return f" of at most {_fmt(maximum)}{u}"
    return ""


def _short_repr(value, n: int = 80) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a value nested too deeply to print
        text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= n else text[: n - 1] + "…"


def nesting_levels(value, limit: int = MAX_NESTING) -> int:
    """How deeply tables and lists nest in ``value`` (a scalar is 0), counting up to ``limit + 1``.

    Iterative, so a hostile file cannot overflow the interpreter's stack while it is measured.
    """
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((c, level) for c in children)
    return deepest


def check_output_bounds(settings, duration_s: float, where: str) -> None:
    """Bounds of the ``[outputs]`` table (``twin.runs.exports.OutputSettings``): a trajectory sampled every
    1e-300 s would never advance, and a million snapshots would not fit in memory."""
    if settings is None:
        return
    for key in ("trajectory_interval_s", "field_interval_s", "feature_interval_s"):
        interval = getattr(settings, key, None)
        if interval is None:
            continue
        if interval < MIN_TRAJECTORY_INTERVAL_S:
            raise UserError(f"{where} [outputs] {key} = {interval:g} is too short; give at least "
                            f"{MIN_TRAJECTORY_INTERVAL_S:g} s.")
        if duration_s / interval > MAX_TRAJECTORY_SAMPLES:
            raise UserError(f"{where} [outputs] {key} = {interval:g} s would sample "
                            f"{duration_s / interval:,.0f} times in duration_s = {duration_s:g} s; at most "
                            f"{MAX_TRAJECTORY_SAMPLES:,} samples per run: give at least "
                            f"{duration_s / MAX_TRAJECTORY_SAMPLES:g} s.")
    times = getattr(settings, "snapshot_times_s", ()) or ()
    if len(times) > MAX_SNAPSHOTS:
        raise UserError(f"{where} [outputs] snapshot_times_s: {len(times):,} times; at most {MAX_SNAPSHOTS:,} "
                        "snapshots per run.")
