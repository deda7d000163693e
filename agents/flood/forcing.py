"""Rain and inflow for the flood engine: hyetographs, hydrographs, design storms and their CSV files.

* ``Hyetograph``: rain intensity, piecewise constant in time. The engine takes the rain of a step
  as the difference of the cumulative depth at its two ends, so the total is exact whatever the
  steps are.
* ``Hydrograph``: a discharge (m³/s) linear between its points and zero outside them; its volume
  over any interval is integrated exactly.
* ``IDF`` and ``chicago_hyetograph``: the Chinese storm-intensity formula and the Chicago design
  storm of Keifer & Chu (1957), with Shanghai's formula (DB31/T 1043-2017) as ``SHANGHAI_2017``.
* ``read_rain_csv``, ``read_inflow_csv``: the two CSV layouts (see ``docs/flood.md``), with errors
  that name the file, the line and the column.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.core.errors import UserError, finite_number

MM_PER_MIN_PER_Q = 1.0 / 167.0  # the standard form's conversion: q [L/(s·ha)] = 167 · i [mm/min]


# -- rain ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hyetograph:
    """Rain intensity ``intensity_mm_per_h[k]`` over ``[edges_s[k], edges_s[k+1])``; none outside."""

    edges_s: np.ndarray
    intensity_mm_per_h: np.ndarray

    def __post_init__(self):
        e = np.asarray(self.edges_s, dtype=np.float64)
        i = np.asarray(self.intensity_mm_per_h, dtype=np.float64)
        if e.ndim != 1 or i.ndim != 1 or len(e) != len(i) + 1 or len(i) == 0:
            raise UserError("a hyetograph needs n + 1 interval edges (s) for n intensities (mm/h); "
                            f"got {e.size} edges and {i.size} intensities")
        if not (np.all(np.isfinite(e)) and np.all(np.isfinite(i))):
            raise UserError("a hyetograph's times and intensities must be finite numbers")
        if np.any(np.diff(e) <= 0):
            k = int(np.argmax(np.diff(e) <= 0))
            raise UserError(f"a hyetograph's times must increase: edge {k + 1} ({e[k + 1]} s) "
                            f"is not after edge {k} ({e[k]} s)")
        if np.any(i < 0):
            raise UserError(f"rain intensity cannot be negative (interval {int(np.argmax(i < 0))}: "
                            f"{i[i < 0][0]} mm/h)")
        object.__setattr__(self, "edges_s", e)
        object.__setattr__(self, "intensity_mm_per_h", i)
        # cumulative depth (m) at each edge: the depth function is linear between edges
        cum = np.concatenate([[0.0], np.cumsum(i / 3.6e6 * np.diff(e))])
        object.__setattr__(self, "_cum_m", cum)

    @classmethod
    def uniform(cls, mm_per_h: float, start_s: float, duration_s: float) -> "Hyetograph":
        if duration_s <= 0:
            raise UserError(f"rain_duration_s must be positive, got {duration_s}")
        return cls(np.array([start_s, start_s + duration_s]), np.array([mm_per_h]))

    def depth_m(self, t_s: float) -> float:
        """Cumulative rain depth (m) from the start of the record to ``t_s``."""
        return float(np.interp(t_s, self.edges_s, self._cum_m))

    def depth_between_m(self, t0: float, t1: float) -> float:
        return self.depth_m(t1) - self.depth_m(t0)

    @property
    def total_depth_m(self) -> float:
        return float(self._cum_m[-1])


# -- inflow ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hydrograph:
    """Discharge ``q_m3s`` (m³/s) at times ``t_s``, linear between points and zero outside them.

    Two points at the same time make a step, so a series of constant intervals is a hydrograph
    too (``from_intervals``)."""

    t_s: np.ndarray
    q_m3s: np.ndarray

    def __post_init__(self):
        t = np.asarray(self.t_s, dtype=np.float64)
        q = np.asarray(self.q_m3s, dtype=np.float64)
        if t.ndim != 1 or t.shape != q.shape or t.size == 0:
            raise UserError(f"a hydrograph needs as many times as discharges (got {t.size} and {q.size})")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
            raise UserError("a hydrograph's times and discharges must be finite numbers")
        if np.any(np.diff(t) < 0):
            k = int(np.argmax(np.diff(t) < 0))
            raise UserError(f"a hydrograph's times must not decrease: point {k + 1} ({t[k + 1]} s) "
                            f"comes before point {k} ({t[k]} s)")
        if np.any(q < 0):
            raise UserError(f"an inflow discharge cannot be negative ({q[q < 0][0]} m³/s)")
        object.__setattr__(self, "t_s", t)
        object.__setattr__(self, "q_m3s", q)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (q[1:] + q[:-1]) * np.diff(t))])
        object.__setattr__(self, "_cum_m3", cum)

    @classmethod
    def from_intervals(cls, start_s, end_s, q_m3s) -> "Hydrograph":
        """Constant discharge over each [start, end], linear between one interval and the next."""
        start_s, end_s, q = (np.asarray(a, dtype=np.float64) for a in (start_s, end_s, q_m3s))
        return cls(np.column_stack([start_s, end_s]).ravel(), np.column_stack([q, q]).ravel())

    def volume_m3(self, t_s: float) -> float:
        """Volume (m³) delivered from the first point to ``t_s``."""
        t, q, cum = self.t_s, self.q_m3s, self._cum_m3
        if t_s <= t[0]:
            return 0.0
        if t_s >= t[-1]:
            return float(cum[-1])
        k = int(np.searchsorted(t, t_s, side="right")) - 1  # t[k] <= t_s < t[k+1]
        dt = t_s - t[k]
        slope = (q[k + 1] - q[k]) / (t[k + 1] - t[k])
        return float(cum[k] + q[k] * dt + 0.5 * slope * dt * dt)

    def volume_between_m3(self, t0: float, t1: float) -> float:
        return self.volume_m3(t1) - self.volume_m3(t0)

    @property
    def total_volume_m3(self) -> float:
        return float(self._cum_m3[-1])


# -- design storms -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class IDF:
    """Storm-intensity formula of Chinese drainage design (GB 50014, 室外排水设计标准)::

        q = 167 · A1 (1 + C lg P) / (t + b)^n      [L/(s·ha)],   i = q / 167  [mm/min]

    with t the duration (min) and P the return period (years). Some standards publish the same
    formula with 167·A1 folded into one coefficient A (``IDF.from_q_form``)."""

    a1_mm_per_min: float
    c: float
    b_min: float
    n: float
    name: str = ""

    @classmethod
    def from_q_form(cls, a_l_per_s_ha: float, c: float, b_min: float, n: float, name: str = "") -> "IDF":
        """q = A (1 + C lg P) / (t + b)^n with A in L/(s·ha)."""
        return cls(a_l_per_s_ha * MM_PER_MIN_PER_Q, c, b_min, n, name)

    def rain_force_mm_per_min(self, return_period_yr: float) -> float:
        """a = A1 (1 + C lg P): the mean intensity over a duration t is a / (t + b)^n."""
        if not return_period_yr > 0:
            raise UserError(f"the return period must be positive (years), got {return_period_yr}")
        return self.a1_mm_per_min * (1.0 + self.c * math.log10(return_period_yr))

    def intensity_mm_per_min(self, duration_min: float, return_period_yr: float) -> float:
        """Mean intensity over a storm of ``duration_min`` (mm/min)."""
        return self.rain_force_mm_per_min(return_period_yr) / (duration_min + self.b_min) ** self.n

    def q_l_per_s_ha(self, duration_min: float, return_period_yr: float) -> float:
        return 167.0 * self.intensity_mm_per_min(duration_min, return_period_yr)

    def depth_mm(self, duration_min: float, return_period_yr: float) -> float:
        return self.intensity_mm_per_min(duration_min, return_period_yr) * duration_min


# Shanghai, DB31/T 1043-2017 《暴雨强度公式与设计雨型标准》 (Shanghai Municipal Administration for
# Market Regulation, 2017; in force 2017-05-01): q = 1600 (1 + 0.846 lg P) / (t + 7.0)^0.656 L/(s·ha).
# The standard's text itself could not be retrieved while writing this; the coefficients are as
# quoted by secondary sources (design-storm scripts and drainage reports that cite DB31/T 1043).
SHANGHAI_2017 = IDF.from_q_form(1600.0, 0.846, 7.0, 0.656, name="Shanghai DB31/T 1043-2017")
# Peak position of Shanghai design storms: 0.405 is the value used with DB31/T 1043 in those
# sources; Innovyze's InfoDrainage documentation lists r = 0.367 (from 80 storms) for Shanghai.
SHANGHAI_PEAK_RATIO = 0.405


def chicago_cumulative_mm(idf: IDF, return_period_yr: float, duration_min: float, peak_ratio: float,
                          t_min) -> np.ndarray:
    """Cumulative depth (mm) of the Chicago storm from its start to ``t_min`` (Keifer & Chu 1957).

    With the mean intensity i(t) = a / (t + b)^n, the depth of any window of length t around the
    peak is H(t) = a t / (t + b)^n, split r before the peak and (1 - r) after it. The depth in the
    τ minutes before the peak is r·H(τ/r) = a τ / (τ/r + b)^n, in the τ minutes after it
    a τ / (τ/(1-r) + b)^n. So the whole storm holds H(duration) = intensity × duration exactly."""
    a = idf.rain_force_mm_per_min(return_period_yr)
    b, n, r = idf.b_min, idf.n, peak_ratio
    t = np.clip(np.asarray(t_min, dtype=np.float64), 0.0, duration_min)
    tp = r * duration_min
    before = a * tp / (duration_min + b) ** n if tp > 0 else 0.0
    out = np.empty_like(t)
    pre = t < tp
    tau = tp - t[pre]
    out[pre] = before - a * tau / (tau / r + b) ** n
    tau = t[~pre] - tp
    out[~pre] = before + (a * tau / (tau / (1.0 - r) + b) ** n if r < 1.0 else 0.0)
    return out


def chicago_hyetograph(idf: IDF, return_period_yr: float, duration_min: float, peak_ratio: float,
                       step_min: float = 5.0, start_s: float = 0.0) -> Hyetograph:
    """The Chicago design storm as blocks of ``step_min``: each block holds the exact depth of the
    continuous curve over it, so the total equals the IDF intensity × duration."""
    if not 0.0 <= peak_ratio <= 1.0:
        raise UserError(f"the peak position r must lie between 0 and 1, got {peak_ratio}")
    if not duration_min > 0 or not step_min > 0:
        raise UserError(f"a design storm needs a positive duration and time step (got {duration_min} "
                        f"and {step_min} min)")
    n_steps = int(math.ceil(duration_min / step_min - 1e-9))
    t_min = np.minimum(np.arange(n_steps + 1) * step_min, duration_min)
    depth = np.diff(chicago_cumulative_mm(idf, return_period_yr, duration_min, peak_ratio, t_min))
    dt_h = np.diff(t_min) / 60.0
    return Hyetograph(start_s + t_min * 60.0, depth / dt_h)


# -- CSV files -------------------------------------------------------------------------------------
def _read_table(path, what: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [(k + 1, r) for k, r in enumerate(csv.reader(f))]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{what} file {path} could not be read as CSV: {e}") from e
    rows = [(line, r) for line, r in rows if any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    if not rows:
        raise UserError(f"{what} file {path} is empty")
    header = [c.strip().lower() for c in rows[0][1]]
    return header, rows[1:]


def _columns(path, header, rows, names: list[str]) -> list[np.ndarray]:
    """The named columns as floats, with a clear error for a missing, empty or non-numeric cell."""
    idx = [header.index(n) for n in names]
    out = [np.empty(len(rows)) for _ in names]
    for k, (line, r) in enumerate(rows):
        for c, (name, j) in enumerate(zip(names, idx)):
            cell = r[j].strip() if j < len(r) else ""
            if cell == "":
                raise UserError(f"{path}, line {line}, column '{name}': the value is missing (a gap in the "
                                "record); give every interval a value, 0 if nothing fell")
            v = finite_number(cell, f"{path}, line {line}, column '{name}'")
            if v < 0:
                raise UserError(f"{path}, line {line}, column '{name}': {cell} is negative")
            out[c][k] = v
    return out


def _check_increasing(path, rows, t, name: str, strict: bool = True):
    for k in range(1, len(t)):
        if t[k] < t[k - 1] or (strict and t[k] == t[k - 1]):
            raise UserError(f"{path}, line {rows[k][0]}, column '{name}': {t[k]:g} s does not come after "
                            f"{t[k - 1]:g} s on line {rows[k - 1][0]}; times must increase")


RAIN_LAYOUTS = ("start_s,end_s,intensity_mm_per_h", "start_s,end_s,depth_mm",
                "time_s,intensity_mm_per_h", "time_s,depth_mm")


def read_rain_csv(path) -> Hyetograph:
    """A rain record as a hyetograph (seconds from the start of the run).

    Layouts (the header names the columns, in any order, other columns are ignored):

    * ``start_s, end_s`` and ``intensity_mm_per_h`` or ``depth_mm``: one row per interval; the
      intervals must follow each other without gaps.
    * ``time_s`` and ``intensity_mm_per_h`` or ``depth_mm``: the value of a row covers the interval
      that *ends* at its time, as rain gauges report it, and starts at the previous row's time; the
      first row's interval is as long as the second row's.
    """
    header, rows = _read_table(path, "rain")
    value = next((v for v in ("intensity_mm_per_h", "depth_mm") if v in header), None)
    if value is None or not ({"start_s", "end_s"} <= set(header) or "time_s" in header):
        raise UserError(f"rain file {path}: expected the columns of one of these layouts: "
                        f"{'; '.join(RAIN_LAYOUTS)} (found {', '.join(header) or 'no header'})")
    if not rows:
        raise UserError(f"rain file {path} has a header but no rows")
    if {"start_s", "end_s"} <= set(header):
        start, end, v = _columns(path, header, rows, ["start_s", "end_s", value])
        for k in range(len(rows)):
            if end[k] <= start[k]:
                raise UserError(f"{path}, line {rows[k][0]}: the interval ends ({end[k]:g} s) before it "
                                f"starts ({start[k]:g} s)")
            if k and start[k] != end[k - 1]:
                kind = "a gap" if start[k] > end[k - 1] else "an overlap"
                raise UserError(f"{path}, line {rows[k][0]}: {kind} between {end[k - 1]:g} s (end of line "
                                f"{rows[k - 1][0]}) and {start[k]:g} s; intervals must follow each other "
                                "(add a row with 0 where no rain fell)")
        edges = np.concatenate([start, end[-1:]])
    else:
        t, v = _columns(path, header, rows, ["time_s", value])
        if len(t) < 2:
            raise UserError(f"rain file {path}: a time_s record needs at least two rows to know the "
                            "interval length (or use the start_s,end_s layout)")
        _check_increasing(path, rows, t, "time_s")
        edges = np.concatenate([[t[0] - (t[1] - t[0])], t])
    if value == "depth_mm":
        v = v / (np.diff(edges) / 3600.0)
    return Hyetograph(edges, v)


def read_inflow_csv(path) -> Hydrograph:
    """An inflow hydrograph (m³/s, seconds from the start of the run).

    Layouts: ``time_s, q_m3s`` (points, linear between them, zero outside), or ``start_s, end_s,
    q_m3s`` (constant over each interval, linear from one interval to the next; the layout of the
    UK Environment Agency benchmark files, which also accept ``start, end, flux``)."""
    header, rows = _read_table(path, "inflow")
    aliases = {"start": "start_s", "end": "end_s", "flux": "q_m3s"}
    header = [aliases.get(h, h) for h in header]
    if not rows:
        raise UserError(f"inflow file {path} has a header but no rows")
    if "q_m3s" in header and {"start_s", "end_s"} <= set(header):
        start, end, q = _columns(path, header, rows, ["start_s", "end_s", "q_m3s"])
        for k in range(len(rows)):
            if end[k] < start[k]:
                raise UserError(f"{path}, line {rows[k][0]}: the interval ends ({end[k]:g} s) before it "
                                f"starts ({start[k]:g} s)")
            if k and start[k] < end[k - 1]:
                raise UserError(f"{path}, line {rows[k][0]}: the interval starts at {start[k]:g} s, before "
                                f"the previous one ends ({end[k - 1]:g} s, line {rows[k - 1][0]})")
        return Hydrograph.from_intervals(start, end, q)
    if "q_m3s" in header and "time_s" in header:
        t, q = _columns(path, header, rows, ["time_s", "q_m3s"])
        _check_increasing(path, rows, t, "time_s")
        return Hydrograph(t, q)
    raise UserError(f"inflow file {path}: expected the columns time_s,q_m3s or start_s,end_s,q_m3s "
                    f"(found {', '.join(header) or 'no header'})")
