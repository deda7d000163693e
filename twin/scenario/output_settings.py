"""The optional ``[outputs]`` table of a scenario: what a run exports beyond its summary and time series.

```toml
[outputs]
snapshot_times_s = [300, 600, 900]      # agent positions at these times -> exports.gpkg layer "agents"
trajectory_interval_s = 5               # every agent every 5 s -> trajectories.parquet
trajectory_sqlite = true                #   and, for a model with levels, trajectories_level<k>.sqlite (PedPy)
extent_thresholds = { max_depth = 0.1 } # raster > threshold -> exports.gpkg layer "max_depth_extent"
field_extents = { depth = 0.1 }         # a snapshot field > threshold, every field_extent_interval_s
field_extent_interval_s = 600           #   -> <model>_extent.gpkg, one layer per field, with time_s
state_times_s = [600]                   # the model's complete state -> states/state_t000600.npz
fields = ["depth", "velocity"]          # declared fields over time, every field_interval_s
field_interval_s = 60                   #   -> fields.nc (CF-1.8 NetCDF), or fields.zarr with format = "zarr"
format = "netcdf"                       # "netcdf" | "zarr"
feature_interval_s = 60                 # every declared per-feature value -> features.parquet (GeoParquet)
start_time = "2026-07-15T17:30:00"      # the clock time of t = 0 (CF time of fields.nc); default below
```

Parsed when the scenario is loaded (a typo fails before any run); ``twin.runs.exports`` writes them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from twin.core.errors import UserError, nearest

OUTPUT_KEYS = {"snapshot_times_s", "trajectory_interval_s", "trajectory_sqlite", "extent_thresholds", "state_times_s", "field_extents",
               "field_extent_interval_s", "fields", "field_interval_s", "format", "feature_interval_s", "start_time"}
FIELD_FORMATS = ("netcdf", "zarr")
# t = 0 of a scenario without start_time: an arbitrary day, plus the model's clock_start_s (a time of day)
DEFAULT_START = "2000-01-01T00:00:00"


@dataclass(frozen=True)
class OutputSettings:
    snapshot_times_s: tuple[float, ...] = ()
    trajectory_interval_s: float | None = None
    extent_thresholds: dict[str, float] = field(default_factory=dict)
    state_times_s: tuple[float, ...] = ()
    field_extents: dict[str, float] = field(default_factory=dict)
    field_extent_interval_s: float | None = None
    fields: tuple[str, ...] = ()
    field_interval_s: float | None = None
    format: str = "netcdf"
    feature_interval_s: float | None = None
    start_time: str | None = None
    trajectory_sqlite: bool = True  # with trajectory_interval_s: also JuPedSim's SQLite files, one per level

    def with_state_times(self, times) -> "OutputSettings":
        """These settings plus more state times (``--save-state-at``)."""
        from dataclasses import replace

        return replace(self, state_times_s=tuple(sorted(set(self.state_times_s) | {float(t) for t in times})))

    @property
    def records(self) -> bool:
        """True when the run must pause to read the model (snapshots or trajectories)."""
        return (bool(self.snapshot_times_s) or self.trajectory_interval_s is not None or bool(self.state_times_s)
                or bool(self.field_extents) or bool(self.fields) or self.feature_interval_s is not None)

    def __bool__(self) -> bool:
        return self.records or bool(self.extent_thresholds)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_outputs(table: Any, where: str, duration_s: float) -> OutputSettings:
    """Validate the ``[outputs]`` table; errors name the key and say how to write it."""
    if table is None:
        return OutputSettings()
    w = f"{where} [outputs]"
    if not isinstance(table, dict):
        raise UserError(f"{w}: must be a table, e.g. [outputs] with snapshot_times_s = [300, 600].")
    for key in table:
        if key not in OUTPUT_KEYS:
            raise UserError(f'{w}: unknown key "{key}"{nearest(key, OUTPUT_KEYS)}; allowed: '
                            f"{', '.join(sorted(OUTPUT_KEYS))}.")
    times = parse_times(table.get("snapshot_times_s", []), f"{w} snapshot_times_s", duration_s)
    states = parse_times(table.get("state_times_s", []), f"{w} state_times_s", duration_s)
    interval = table.get("trajectory_interval_s")
    if interval is not None and (not _is_number(interval) or interval <= 0):
        raise UserError(f"{w} trajectory_interval_s: must be a positive number of seconds, not {interval!r}.")
    sqlite = table.get("trajectory_sqlite", True)
    if not isinstance(sqlite, bool):
        raise UserError(f"{w} trajectory_sqlite: true (JuPedSim's SQLite files beside trajectories.parquet, the "
                        f"default) or false (the Parquet file only), not {sqlite!r}.")
    if "trajectory_sqlite" in table and interval is None:
        raise UserError(f"{w} trajectory_sqlite: only with trajectory_interval_s (seconds between frames), "
                        "e.g. trajectory_interval_s = 1.")
    thresholds = _thresholds(table.get("extent_thresholds", {}), f"{w} extent_thresholds")
    fields = _thresholds(table.get("field_extents", {}), f"{w} field_extents")
    every = table.get("field_extent_interval_s")
    if every is not None and (not _is_number(every) or every <= 0):
        raise UserError(f"{w} field_extent_interval_s: must be a positive number of seconds, not {every!r}.")
    if fields and every is None:
        raise UserError(f"{w} field_extents: say how often with field_extent_interval_s (seconds), e.g. "
                        "field_extent_interval_s = 600.")
    series, series_every = _field_series(table, w)
    fmt = table.get("format", "netcdf")
    if fmt not in FIELD_FORMATS:
        raise UserError(f'{w} format: "netcdf" (fields.nc) or "zarr" (fields.zarr), not {fmt!r}.')
    features_every = table.get("feature_interval_s")
    if features_every is not None and (not _is_number(features_every) or features_every <= 0):
        raise UserError(f"{w} feature_interval_s: must be a positive number of seconds, not {features_every!r}.")
    return OutputSettings(times, float(interval) if interval is not None else None, thresholds, states, fields,
                          float(every) if every is not None else None, series, series_every, fmt,
                          float(features_every) if features_every is not None else None,
                          _start_time(table.get("start_time"), w), sqlite)


def _field_series(table: dict, w: str) -> tuple[tuple[str, ...], float | None]:
    names = table.get("fields", [])
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise UserError(f'{w} fields: give a list of field names the model declares, e.g. fields = ["FIELD"] (citytwin models MODEL lists them), not {names!r}.')
    every = table.get("field_interval_s")
    if every is not None and (not _is_number(every) or every <= 0):
        raise UserError(f"{w} field_interval_s: must be a positive number of seconds, not {every!r}.")
    if names and every is None:
        raise UserError(f"{w} fields: say how often with field_interval_s (seconds), e.g. field_interval_s = 60.")
    return tuple(dict.fromkeys(names)), (float(every) if every is not None else None)


def _start_time(value: Any, w: str) -> str | None:
    """An ISO 8601 date and time (no time zone: the city's local time), normalised."""
    if value is None:
        return None
    import datetime as dt

    if isinstance(value, dt.datetime):  # TOML's own date-time literal
        return value.replace(tzinfo=None).isoformat()
    try:
        return dt.datetime.fromisoformat(str(value)).replace(tzinfo=None).isoformat()
    except ValueError:
        raise UserError(f'{w} start_time: give a date and time, e.g. start_time = "2026-07-15T17:30:00", '
                        f"not {value!r}.") from None


def _thresholds(table: Any, where: str) -> dict[str, float]:
    if not isinstance(table, dict):
        raise UserError(f"{where}: write a table of name = threshold, e.g. {{ FIELD = 0.1 }}, not {table!r}.")
    for k, v in table.items():
        if not _is_number(v):
            raise UserError(f"{where}.{k}: the threshold must be a number, not {v!r}.")
    return {str(k): float(v) for k, v in table.items()}


def parse_times(times: Any, where: str, duration_s: float) -> tuple[float, ...]:
    """A time or a list of times in seconds within the run, sorted, each once."""
    if _is_number(times):
        times = [times]
    if not isinstance(times, list) or not all(_is_number(t) for t in times):
        raise UserError(f"{where}: give a list of times in seconds, e.g. [300, 600], not {times!r}.")
    bad = [t for t in times if t < 0 or t > duration_s]
    if bad:
        raise UserError(f"{where}: {bad[0]:g} s is outside the run (0 to duration_s = {duration_s:g} s).")
    return tuple(sorted(float(t) for t in set(times)))
