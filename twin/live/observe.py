"""What a city's sensors would read of a running model (the observation operator): from the model's
own declarations (per-feature values, keyed KPIs, fields, forcings), never from its name."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.core.sensors import Sensor


@dataclass(frozen=True)
class Reading:
    """How one sensor is read from a model: ``how`` is feature, kpi, field or forcing."""

    sensor: Sensor
    how: str


class Observer:
    """The sensors a model can be read at (``readings``), and those it cannot (``skipped``: id -> why)."""

    def __init__(self, model_cls, sensors: list[Sensor]):
        self.model_cls = model_cls
        features = {(f.layer, f.name) for f in model_cls.feature_styles}
        keyed = {k.name for k in model_cls.kpis if k.keyed}
        fields = {f.name for f in model_cls.field_styles}
        self.forcings = {f.quantity: f for f in model_cls.forcings}
        self.readings: list[Reading] = []
        self.skipped: dict[str, str] = {}
        for s in sensors:
            if s.value in self.forcings:
                how = "forcing"
            elif s.layer and (s.layer, s.value) in features:
                how = "feature"
            elif s.layer and s.value in keyed:
                how = "kpi"
            elif not s.layer and s.value in fields:
                how = "field"
            else:
                self.skipped[s.id] = f"model {model_cls.name} declares no {s.observes}"
                continue
            self.readings.append(Reading(s, how))
        self.by_id = {r.sensor.id: r for r in self.readings}

    @property
    def state_sensors(self) -> list[Sensor]:
        """Sensors of the model's state (counts, depths, densities): what forecasts can be scored on."""
        return [r.sensor for r in self.readings if r.how != "forcing"]

    @property
    def forcing_sensors(self) -> list[Sensor]:
        return [r.sensor for r in self.readings if r.how == "forcing"]

    def read(self, model, sensors: list[Sensor] | None = None) -> dict[str, float]:
        """True values now of ``sensors`` (default: all state sensors): cumulative values for ``count``
        sensors (the caller takes differences), NaN where the model has no value (yet)."""
        want = [self.by_id[s.id] for s in (sensors if sensors is not None else self.state_sensors)]
        snap = model.snapshot() if any(r.how in ("feature", "field") for r in want) else None
        kpis = model.current_kpis() if any(r.how == "kpi" for r in want) else {}
        names = sorted({r.sensor.value for r in want if r.how == "field"})
        grids = model.field_values(names, snap) if names else {}
        out: dict[str, float] = {}
        for r in want:
            s = r.sensor
            v = math.nan
            if r.how == "feature":
                frame = snap.features.get(s.layer)
                if frame is not None and s.value in frame.values:
                    hit = np.flatnonzero(np.asarray(frame.ids).astype(str) == s.feature)
                    if len(hit):
                        v = float(frame.values[s.value][hit[0]])
            elif r.how == "kpi":
                v = float(kpis.get(s.value, {}).get(s.feature, math.nan)) if isinstance(kpis.get(s.value), dict) else v
            elif r.how == "field" and s.value in grids:
                v = _sample(grids[s.value], s)
            elif r.how == "forcing":
                v = float(model.forcing_values(s.value).get("" if s.feature in ("", "*") else s.feature, math.nan))
            out[s.id] = v
        return out


def sensor_reading(s: Sensor, v: float, rng) -> float:
    """What sensor ``s`` reports of the true value ``v``: its Gaussian noise (``noise_sd``), counts
    rounded, and never below zero for a quantity that is not negative (a count, a depth, rain)."""
    if s.noise_sd <= 0 or not math.isfinite(v):
        return v
    r = v + rng.normal(0.0, s.noise_sd)
    if s.mode == "count":
        r = float(round(r))
    return max(0.0, r) if v >= 0 else r


def expected_reading(s: Sensor, v: np.ndarray) -> np.ndarray:
    """The mean of what ``sensor_reading`` reports of true values ``v``. Its noise is symmetric, but a
    quantity that is not negative is never reported below zero, so near zero the mean reading is above
    the value: E[max(0, v + e)] = v Φ(v/σ) + σ φ(v/σ) (0.4 σ at 0). A filter that predicts a reading
    with ``v`` itself sees an empty platform's density counter read 0.08 persons/m² too high, minute
    after minute, and takes it for people."""
    from scipy.special import ndtr

    v = np.asarray(v, dtype=np.float64)
    if s.noise_sd <= 0:
        return v
    sd = s.noise_sd
    with np.errstate(invalid="ignore"):
        z = v / sd
        censored = v * ndtr(z) + sd * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        return np.where(v >= 0, censored, v)


def _sample(grid, s: Sensor) -> float:
    band = None
    if grid.n_bands > 1:
        names = list(grid.band_names)
        band = names.index(f"level {s.level}") if f"level {s.level}" in names else None
    values = grid.plane() if band is None else grid.bands()[band]
    if s.radius_m <= 0:
        return float(grid.sample([s.x], [s.y], band=band)[0])
    xs, ys = grid.cell_centres()
    c0, c1 = np.searchsorted(xs, [s.x - s.radius_m, s.x + s.radius_m])
    r0, r1 = np.searchsorted(-ys, [-(s.y + s.radius_m), -(s.y - s.radius_m)])
    if c1 <= c0 or r1 <= r0:
        return float(grid.sample([s.x], [s.y], band=band)[0])
    X, Y = np.meshgrid(xs[c0:c1], ys[r0:r1])
    near = (X - s.x) ** 2 + (Y - s.y) ** 2 <= s.radius_m ** 2
    vals = np.asarray(values[r0:r1, c0:c1], dtype=np.float64)[near]
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if len(vals) else 0.0
