"""Model parameters: one declaration per parameter, read by the validator, the CLI, the GUI and the docs.

A parameter's ``kind`` is one of

* ``float``, ``int``, ``bool``, ``str`` (optionally with ``choices``);
* ``list``: a list of names (ids of gates, roads, POIs), e.g. ``["N1", "N2"]``; with ``refers_to``
  (a city layer) they may be feature names or selectors too (``"kind=escalator level=1"``);
* ``Numbers``: a list of numbers, each within ``min``/``max``;
An empty value (``""`` for a file, ``[]`` for a time series) means "not given".

* ``FilePath``: a file, resolved against the scenario file's folder, checked to exist; the value is
  the absolute path as text, and the run bundle records the file's SHA-256;
* ``TimeSeries``: ``[[t_s, value], ...]`` inline, or a CSV file of two columns (time in seconds,
  value; an optional header row), times strictly increasing, every number finite. The value is a
  :class:`Series`.

Real forcing data (hyetographs, inflow hydrographs, rain-gauge records, arrival profiles) come in
through the last three.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError, nearest
from .files import sha256_file


class Numbers:
    """Parameter kind: a list of numbers."""


class FilePath:
    """Parameter kind: a path to an existing file."""


class TimeSeries:
    """Parameter kind: a time series, inline or from a CSV file."""


KIND_NAMES = {float: "number", int: "whole number", bool: "true/false", str: "text", list: "list of names",
              Numbers: "list of numbers", FilePath: "file path", TimeSeries: "time series"}


@dataclass(frozen=True)
class Series:
    """A time series: ``t`` (s, strictly increasing) and ``v``; ``source`` is the CSV path or "inline"."""

    t: tuple[float, ...]
    v: tuple[float, ...]
    source: str = "inline"

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.t, dtype=np.float64), np.asarray(self.v, dtype=np.float64)

    def at(self, t, how: str = "step") -> np.ndarray:
        """Value at times ``t``: ``step`` holds each value until the next time (a hyetograph, an hourly
        profile); ``linear`` interpolates. Before the first time: the first value; after: the last."""
        ts, vs = self.arrays
        t = np.asarray(t, dtype=np.float64)
        if how == "linear":
            return np.interp(t, ts, vs)
        i = np.clip(np.searchsorted(ts, t, side="right") - 1, 0, len(ts) - 1)
        return vs[i]

    def plain(self):
        """As written in a scenario file: the CSV path, or the inline pairs."""
        return self.source if self.source != "inline" else [[a, b] for a, b in zip(self.t, self.v)]

    def file_hash(self) -> str | None:
        return sha256_file(Path(self.source)) if self.source != "inline" else None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Param:
    """One model parameter. ``kind``: see the module docstring."""

    name: str
    unit: str
    default: Any
    doc: str
    kind: type = float
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    suffixes: tuple[str, ...] = ()  # FilePath: allowed file name endings, e.g. (".tif",)
    # Used only when another parameter has one of some values: ("mode", ("uniform",)). A scenario that
    # sets it while the other has none of them gets a warning naming the setting that would use it.
    used_when: tuple[str, tuple] | None = None
    # kind list: the items name features of a city layer ("LAYER", "pois:KIND"): ids, unique
    # names or selectors, resolved and checked on the city before any run (twin.core.features).
    refers_to: str | None = None
    # Shapes a user may draw on the map for it (the app's "Draw on map"): "Point", "LineString",
    # "Polygon". Kind list or str: drawn shapes are WKT items in the city CRS; kind Numbers with
    # ("Point",): each click adds an x, y pair.
    draws: tuple[str, ...] = ()

    def describe_range(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.min is not None and self.max is not None:
            return f"{self.min} to {self.max}"
        if self.min is not None:
            return f">= {self.min}"
        if self.max is not None:
            return f"<= {self.max}"
        return ""

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind.__name__)

    def coerce(self, value: Any, where: str, base_dir: Path | None = None) -> Any:
        """Check one value; ``where`` names the file and table for the message; relative paths are
        resolved against ``base_dir`` (the scenario's folder; the current folder when None)."""
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            raise UserError(f'{where}: "{self.name}" must be true or false, not {value!r}.')
        if self.kind is list:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                      for v in value):
                raise UserError(f'{where}: "{self.name}" must be a list of names, like ["N1", "N2"], not {value!r}.')
            return [str(v) for v in value]
        if self.kind is Numbers:
            if _is_number(value):
                value = [value]
            if not isinstance(value, list):
                raise UserError(f'{where}: "{self.name}" must be a list of numbers, like [1.5, 2.0], not {value!r}.')
            return [self._number(v, where) for v in value]
        if self.kind is FilePath:
            return "" if value == "" else str(self._existing_file(value, where, base_dir))
        if self.kind is TimeSeries:
            return [] if value == [] else self._series(value, where, base_dir)
        if self.kind is str:
            if not isinstance(value, str):
                raise UserError(f'{where}: "{self.name}" must be text, not {value!r}.')
            if self.choices and value not in self.choices:
                raise UserError(
                    f'{where}: "{self.name}" = "{value}" is not allowed{nearest(value, self.choices)}; '
                    f"use {self.describe_range()}."
                )
            return value
        return self._number(value, where)

    # -- kinds -----------------------------------------------------------------------------------
    def _unit(self) -> str:
        return f" in {self.unit}" if self.unit and self.unit != "-" else ""

    def _number(self, value: Any, where: str, what: str | None = None):
        unit = self._unit()
        name = what or self.name
        if not _is_number(value):
            hint = f" Units are fixed by the parameter: write a plain number{unit}." if isinstance(value, str) else ""
            raise UserError(f'{where}: "{name}" must be a number{unit}, not {value!r}.{hint}')
        if not math.isfinite(value):
            raise UserError(f'{where}: "{name}" must be a finite number{unit}, not {value!r}.')
        if self.kind is int:
            if float(value) != int(value):
                raise UserError(f'{where}: "{name}" must be a whole number{unit}, not {value!r}.')
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise UserError(f'{where}: "{name}" must be a finite number{unit}, not {value!r}.')
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise UserError(
                f'{where}: "{name}" = {value}{unit} is out of range; allowed: {self.describe_range()}{unit}.'
            )
        return value

    def _existing_file(self, value: Any, where: str, base_dir: Path | None) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise UserError(f'{where}: "{self.name}" must be a file path (text), not {value!r}.')
        if "\0" in value:
            raise UserError(f'{where}: "{self.name}" = {value!r}: a file path cannot hold a NUL character.')
        try:
            path = Path(value).expanduser()
            if not path.is_absolute():
                path = (base_dir or Path.cwd()) / path
            path = path.resolve()
            found = path.is_file()
        except (OSError, RuntimeError) as e:  # a name too long for the file system, a symlink loop
            raise UserError(f'{where}: "{self.name}" = "{value[:80]}{"..." if len(value) > 80 else ""}" cannot be '
                            f"used as a file path ({getattr(e, 'strerror', None) or e}); give the path of an existing file.") from None
        if not found:
            raise UserError(f'{where}: "{self.name}" = "{value}": no such file ({path}). Paths are relative to '
                            "the scenario file's folder.")
        if self.suffixes and not path.name.lower().endswith(tuple(s.lower() for s in self.suffixes)):
            raise UserError(f'{where}: "{self.name}" = "{value}" must be a {" or ".join(self.suffixes)} file.')
        return path

    def _series(self, value: Any, where: str, base_dir: Path | None) -> Series:
        if isinstance(value, Series):
            return value
        example = f'{self.name} = [[0, 10.0], [3600, 25.0]] or {self.name} = "profile.csv"'
        if isinstance(value, str):
            path = self._existing_file(value, where, base_dir)
            rows = _read_series_csv(path, f'{where}: "{self.name}" file {path}')
            source, label = str(path), f'{where}: "{self.name}" file {path}'
        elif isinstance(value, list):
            rows, source, label = value, "inline", f'{where}: "{self.name}"'
            for i, row in enumerate(rows):
                if not isinstance(row, list) or len(row) != 2:
                    raise UserError(f"{label}: entry {i + 1} is {row!r}; write pairs of [time_s, value], e.g. {example}.")
        else:
            raise UserError(f'{where}: "{self.name}" must be a time series, e.g. {example}; not {value!r}.')
        if not rows:
            raise UserError(f"{label}: the time series is empty; give at least one [time_s, value] pair.")
        ts, vs = [], []
        for i, (t, v) in enumerate(rows):
            if not _is_number(t) or not math.isfinite(t) or t < 0:
                raise UserError(f"{label}: entry {i + 1} has time {t!r}; times are seconds >= 0 (finite numbers).")
            ts.append(float(t))
            vs.append(self._number(v, label, what=f"value at t = {t:g} s"))
        bad = [i for i in range(1, len(ts)) if ts[i] <= ts[i - 1]]
        if bad:
            i = bad[0]
            raise UserError(f"{label}: times must increase strictly; entry {i + 1} (t = {ts[i]:g} s) does not come "
                            f"after entry {i} (t = {ts[i - 1]:g} s).")
        return Series(tuple(ts), tuple(vs), source)


def _read_series_csv(path: Path, label: str) -> list[list[float]]:
    """Two numeric columns; a first row that is not numeric is a header."""
    import csv

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{label}: cannot read it as text ({e}).") from None
    rows: list[list[float]] = []
    for n, cells in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) < 2:
            raise UserError(f"{label}: line {n} has {len(cells)} column(s); write two: time_s,value.")
        try:
            rows.append([float(cells[0]), float(cells[1])])
        except ValueError:
            if not rows and n == 1:
                continue  # header
            raise UserError(f"{label}: line {n} is {','.join(cells)!r}; both columns must be numbers.") from None
    return rows


def validate_params(model_cls, given: dict, where: str, base_dir: Path | None = None) -> dict:
    """Defaults overlaid with ``given``; an unknown key names the nearest valid one."""
    specs = {p.name: p for p in model_cls.params}
    values = {name: p.default for name, p in specs.items()}
    for key, value in given.items():
        if key not in specs:
            raise UserError(
                f'{where}: unknown parameter "{key}" for model "{model_cls.name}"{nearest(key, specs)}. '
                f"`citytwin models {model_cls.name}` lists the valid ones."
            )
        values[key] = specs[key].coerce(value, where, base_dir)
    return values


def ignored_settings(model_cls, given, values: dict, where: str) -> list[str]:
    """Warnings for the parameters in ``given`` (the keys a scenario or --set wrote) that the chosen
    mode ignores, by each parameter's ``used_when`` declaration."""
    specs = {p.name: p for p in model_cls.params}
    out = []
    for key in given:
        p = specs.get(key)
        if p is None or p.used_when is None:
            continue
        other, modes = p.used_when
        if values.get(other) not in modes:
            use = " or ".join(f'{other} = "{m}"' if isinstance(m, str) else f"{other} = {m}" for m in modes)
            now = values.get(other)
            now = f'"{now}"' if isinstance(now, str) else now
            out.append(f'{where}: "{key}" is set but {other} = {now} does not use it; it is used with {use}.')
    return out


def plain_value(value):
    """A parameter value as it is written in a scenario file (TOML/JSON)."""
    if isinstance(value, Series):
        return value.plain()
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    return value


def input_files(model_cls, params: dict) -> dict[str, dict[str, str]]:
    """{parameter: {"path", "sha256"}} of every file a run reads through its parameters."""
    out = {}
    for p in model_cls.params:
        value = params.get(p.name)
        if p.kind is FilePath and isinstance(value, str) and value:
            out[p.name] = {"path": value, "sha256": sha256_file(Path(value))}
        elif isinstance(value, Series) and value.source != "inline":
            out[p.name] = {"path": value.source, "sha256": value.file_hash()}
    return out
