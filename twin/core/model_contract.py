"""The contract between the platform and a simulation model.

A model is a Mesa model that declares, in one place, its parameters (name, unit, default, range,
doc), its KPIs (name, unit, doc) and the city layers it needs. The CLI (`citytwin models`), the GUI
panels, the scenario validator and the docs all read these declarations, so a new model needs no
code outside its own folder and one line in ``agents/registry.py``.

The runner drives a model only through ``advance_to``, ``timeseries_row``, ``final_kpis``,
``rasters`` and ``snapshot``; the 3D view only through ``snapshot``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import mesa
import numpy as np

from .errors import UserError, nearest
from .grid import GridField


@dataclass(frozen=True)
class Param:
    """One model parameter. ``kind`` is float, int, bool, str or list (a list of strings)."""

    name: str
    unit: str
    default: Any
    doc: str
    kind: type = float
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None

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

    def coerce(self, value: Any, where: str) -> Any:
        """Check one value; ``where`` names the file and table for the message."""
        unit = f" in {self.unit}" if self.unit and self.unit != "-" else ""
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            raise UserError(f'{where}: "{self.name}" must be true or false, not {value!r}.')
        if self.kind is list:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
                raise UserError(f'{where}: "{self.name}" must be a list of names, like ["N1", "N2"], not {value!r}.')
            return [str(v) for v in value]
        if self.kind is str:
            if not isinstance(value, str):
                raise UserError(f'{where}: "{self.name}" must be text, not {value!r}.')
            if self.choices and value not in self.choices:
                raise UserError(
                    f'{where}: "{self.name}" = "{value}" is not allowed{nearest(value, self.choices)}; '
                    f"use {self.describe_range()}."
                )
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = ""
            if isinstance(value, str):
                hint = f" Units are fixed by the parameter: write a plain number{unit}."
            raise UserError(f'{where}: "{self.name}" must be a number{unit}, not {value!r}.{hint}')
        if isinstance(value, float) and not math.isfinite(value):  # int(nan) / int(inf) would raise
            raise UserError(f'{where}: "{self.name}" must be a finite number{unit}, not {value!r}.')
        if self.kind is int:
            if float(value) != int(value):
                raise UserError(f'{where}: "{self.name}" must be a whole number{unit}, not {value!r}.')
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise UserError(f'{where}: "{self.name}" must be a finite number{unit}, not {value!r}.')
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise UserError(
                f'{where}: "{self.name}" = {value}{unit} is out of range; allowed: {self.describe_range()}{unit}.'
            )
        return value


@dataclass(frozen=True)
class KPI:
    """One key performance indicator. ``per_step`` KPIs also appear in the time series."""

    name: str
    unit: str
    doc: str
    headline: bool = False
    per_step: bool = True
    better: str | None = None  # "lower" | "higher" | None: which direction is an improvement (reports)


@dataclass
class Snapshot:
    """What the view draws at one moment. Positions are in the city CRS (metres)."""

    time_s: float
    positions: np.ndarray  # (n, 2) float64: float32 would round UTM northings to 0.25 m
    states: np.ndarray  # (n,) int8, index into state_names
    state_names: tuple[str, ...]
    fields: dict[str, GridField] = field(default_factory=dict)
    kpis: dict[str, float] = field(default_factory=dict)


def validate_params(model_cls: type["CityModel"], given: dict, where: str) -> dict:
    """Defaults overlaid with ``given``; an unknown key names the nearest valid one."""
    specs = {p.name: p for p in model_cls.params}
    values = {name: p.default for name, p in specs.items()}
    for key, value in given.items():
        if key not in specs:
            raise UserError(
                f'{where}: unknown parameter "{key}" for model "{model_cls.name}"{nearest(key, specs)}. '
                f"`citytwin models {model_cls.name}` lists the valid ones."
            )
        values[key] = specs[key].coerce(value, where)
    return values


class CityModel(mesa.Model):
    """Base of every CityTwin simulation.

    Subclasses set the class attributes, build their world in ``__init__`` from the city and the
    validated parameters (``self.p``), and implement ``step`` (advance ``self.dt_s``),
    ``current_kpis`` and ``snapshot``. State that every step touches lives in numpy arrays.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    kpis: ClassVar[tuple[KPI, ...]] = ()
    required_layers: ClassVar[tuple[str, ...]] = ()
    optional_layers: ClassVar[tuple[str, ...]] = ()
    state_names: ClassVar[tuple[str, ...]] = ()
    report_interval_s: ClassVar[float] = 10.0

    def __init__(self, city, *, duration_s: float, seed: int, **params):
        super().__init__(rng=seed)
        self.city = city
        self.duration_s = float(duration_s)
        self.seed = int(seed)
        self.p = validate_params(type(self), params, f"parameters of model {self.name}")
        city.require(self.required_layers, model=self.name)
        self.time_s = 0.0
        self.dt_s = 0.1
        self.datacollector = mesa.DataCollector(
            model_reporters={k.name: (lambda m, n=k.name: m._kpi_cache[n]) for k in self.kpis if k.per_step}
        )
        self._kpi_cache: dict[str, Any] = {}
        self._times: list[float] = []
        self._next_report_s = 0.0

    # -- to implement ----------------------------------------------------------------------
    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def current_kpis(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def snapshot(self) -> Snapshot:  # pragma: no cover - abstract
        raise NotImplementedError

    def rasters(self) -> dict[str, GridField]:
        """Fields written as GeoTIFF at the end of a run (e.g. ``max_density``)."""
        return {}

    @property
    def finished(self) -> bool:
        """True when nothing more can happen (e.g. every agent has left)."""
        return False

    # -- driven by the runner ----------------------------------------------------------------
    def advance_to(self, t_s: float) -> None:
        """Step until ``t_s`` (or the end), recording a time-series row every report interval."""
        t_s = min(t_s, self.duration_s)
        if not self._times:
            self._record()
        while self.time_s < t_s - 1e-9 and not self.finished:
            self.step()
            if self.time_s >= self._next_report_s - 1e-9:
                self._record()
        if self.finished and self._times[-1] < self.time_s - 1e-9:
            self._record()

    def run_to_end(self, progress=None) -> None:
        """Run to ``duration_s`` or until finished; ``progress(t_s)`` after each report interval."""
        while self.time_s < self.duration_s - 1e-9 and not self.finished:
            self.advance_to(self.time_s + self.report_interval_s)
            if progress is not None:
                progress(self.time_s)

    def _record(self) -> None:
        self._kpi_cache = self.current_kpis()
        self.datacollector.collect(self)
        self._times.append(self.time_s)
        self._next_report_s = self.time_s + self.report_interval_s

    def timeseries(self):
        """One row per reporting interval: ``time_s`` plus the per-step KPIs."""
        df = self.datacollector.get_model_vars_dataframe().reset_index(drop=True)
        df.insert(0, "time_s", self._times[: len(df)])
        return df

    def final_kpis(self) -> dict[str, Any]:
        return self.current_kpis()

    @classmethod
    def kpi_units(cls) -> dict[str, str]:
        return {k.name: k.unit for k in cls.kpis}
