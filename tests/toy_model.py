"""A tiny, fast model for testing the platform (runner, compare, app) without a real simulation.

Walkers start at random points of the city's extent and walk east at a speed drawn per walker;
each one is done when it has walked ``distance_m``. Its KPIs have known distributions, which the
statistics tests rely on. Plugged in with CITYTWIN_MODELS="toy=tests.toy_model:ToyModel".

It also exercises every part of the model contract: fixed or adaptive steps (``stepping``), a
time-series parameter (``speed_profile``, a speed factor over time), a file parameter
(``start_file``, a CSV of x,y start points), a keyed per-step KPI, per-feature values (walkers east
of each building) and the complete state (``state_attrs``).
"""
import math

import numpy as np

from twin.core.grid import GridField
from twin.core.model_contract import (KPI, AlertRule, CityModel, Correctable, FeatureFrame, FeatureStyle, FieldStyle, FilePath, Forcing,
                                      Param, Snapshot, StateSpec, TimeSeries, splice_series)

SYNC_S = 1.0  # adaptive stepping lands on every whole second, so any pause there is exact


class ToyModel(CityModel):
    name = "toy"
    title = "Toy walkers (platform tests only)"
    params = (
        Param("walkers", "-", 200, "number of walkers", int, 1, 1_000_000),
        Param("speed_mps", "m/s", 1.0, "mean walking speed", float, 0.1, 5.0),
        Param("speed_sd_mps", "m/s", 0.2, "standard deviation of walking speed", float, 0.0, 2.0),
        Param("distance_m", "m", 100.0, "distance each walker walks", float, 1.0, 10_000.0),
        Param("closed_gates", "-", [], "ignored; lets tests exercise list parameters", list),
        Param("stepping", "-", "fixed", "fixed 1 s steps, or adaptive steps that shrink as walkers speed up",
              str, choices=("fixed", "adaptive")),
        Param("speed_profile", "-", [], "speed factor over time, [[t_s, factor], ...] or a CSV (empty: 1)",
              TimeSeries, 0.0, 10.0),
        Param("start_file", "-", "", "CSV of x,y start points (metres, city CRS), used in turn; empty: random",
              FilePath, suffixes=(".csv",)),
        Param("jitter_mps", "m/s", 0.0, "random speed noise drawn every step (0: no draws during the run)",
              float, 0.0, 2.0),
    )
    kpis = (
        KPI("walkers_done", "-", "walkers that reached their distance", headline=True, better="higher"),
        KPI("mean_time_s", "s", "mean time to walk the distance", headline=True, better="lower"),
        KPI("done_by_half", "-", "walkers done, by half of the city", keyed=True),
    )
    field_styles = (FieldStyle("max_count", "-", "most walkers seen in a cell", kind="heat", clim=(0.0, 5.0)),)
    feature_styles = (FeatureStyle("buildings", "walkers_east", "-", "walkers east of the building's centre",
                                   label=True),)
    alerts = (
        AlertRule("many_done", "Many walkers done (exercises KPI alerts placed at a field's peak).", amber=20, red=40,
                  kpi="walkers_done", field="max_count"),
        AlertRule("crowded_east", "Many walkers east of a building (per-feature alerts).", amber=45, red=58,
                  layer="buildings", value="walkers_east"),
    )
    forcings = (Forcing("speed_factor", "-", "measured speed factor: replaces speed_profile from its time on",
                        ("speed_profile",)),)
    state_names = ("walking", "done")
    report_interval_s = 5.0
    state_attrs = ("pos", "done_at", "max_count.values")
    state_specs = (StateSpec("pos"), StateSpec("done_at", nan=True, low=0.0), StateSpec("max_count.values", low=0.0))
    correctable = (Correctable("max_count.values", "max_count", low=0.0),)  # for the filters' tests

    def __init__(self, city, **kw):
        super().__init__(city, **kw)
        n = self.p["walkers"]
        minx, miny, maxx, maxy = city.bounds
        self.start = np.column_stack([self.rng.uniform(minx, maxx, n), self.rng.uniform(miny, maxy, n)])
        if self.p["start_file"]:
            pts = np.loadtxt(self.p["start_file"], delimiter=",", ndmin=2)
            self.start = pts[np.arange(n) % len(pts)].astype(float)
        self.pos = self.start.copy()
        self.speed = np.clip(self.rng.normal(self.p["speed_mps"], self.p["speed_sd_mps"], n), 0.05, None)
        self.done_at = np.full(n, np.nan)
        self.dt_s = 1.0
        self.max_count = GridField.empty("max_count", city.bounds, max(1.0, (maxx - minx) / 20), unit="-")
        b = city.buildings
        self.building_ids = b["id"].astype(str).to_numpy() if len(b) else np.zeros(0, dtype=object)
        self.building_x = b.geometry.centroid.x.to_numpy() if len(b) else np.zeros(0)

    # -- stepping ---------------------------------------------------------------------------------
    @property
    def time_quantum_s(self) -> float:
        return self.dt_s if self.p["stepping"] == "fixed" else SYNC_S

    def _factor(self, t: float) -> float:
        profile = self.p["speed_profile"]
        return float(profile.at(t)) if profile else 1.0

    def _advance(self, t_s: float) -> None:
        if self.p["stepping"] == "fixed":
            return super()._advance(t_s)
        # adaptive: a step covers at most 0.8 m of the fastest walk, clipped at whole seconds
        while self.time < t_s - 1e-9 and not self.finished:
            fastest = max(float(self.speed.max()) * self._factor(self.time), 1e-3)
            next_sync = (math.floor(self.time / SYNC_S + 1e-9) + 1) * SYNC_S
            dt = min(0.8 / fastest, next_sync - self.time, t_s - self.time)
            self._move(dt, self.time + dt)
            self.steps += 1
            self.time = next_sync if abs(self.time + dt - next_sync) < 1e-9 else self.time + dt

    def step(self):
        self._move(self.dt_s, self.next_time_s)

    def _move(self, dt: float, t_end: float) -> None:
        walking = np.isnan(self.done_at)
        self.pos[walking, 0] += self.speed[walking] * dt * self._factor(t_end - dt)
        if self.p["jitter_mps"] > 0:
            self.pos[walking, 0] += self.rng.normal(0.0, self.p["jitter_mps"] * dt, int(walking.sum()))
        arrived = walking & (self.pos[:, 0] - self.start[:, 0] >= self.p["distance_m"])
        self.done_at[arrived] = t_end
        r, c = self.max_count.index_of(self.pos[:, 0], self.pos[:, 1])
        ok = self.max_count.inside(r, c)
        counts = np.zeros(self.max_count.shape, np.float32)
        np.add.at(counts, (r[ok], c[ok]), 1)
        np.maximum(self.max_count.values, counts, out=self.max_count.values)

    @property
    def finished(self):
        return not np.isnan(self.done_at).any()

    # -- reading ------------------------------------------------------------------------------------
    def current_kpis(self):
        done = ~np.isnan(self.done_at)
        midx = (self.city.bounds[0] + self.city.bounds[2]) / 2
        return {
            "walkers_done": int(done.sum()),
            "mean_time_s": float(self.done_at[done].mean()) if done.any() else 0.0,
            "done_by_half": {"west": int((done & (self.start[:, 0] < midx)).sum()),
                             "east": int((done & (self.start[:, 0] >= midx)).sum())},
        }

    def snapshot(self):
        states = np.where(np.isnan(self.done_at), 0, 1).astype(np.int8)
        east = (self.pos[:, 0][None, :] > self.building_x[:, None]).sum(axis=1).astype(float)
        return Snapshot(self.time_s, self.pos.copy(), states, self.state_names, np.arange(len(self.pos)),
                        {"max_count": self.max_count}, self._kpi_cache,
                        {"buildings": FeatureFrame(self.building_ids, {"walkers_east": east})})

    def rasters(self):
        return {"max_count": self.max_count}

    # -- live feeds ---------------------------------------------------------------------------------
    def forced_parameters(self, quantity, readings):
        prof = self.p["speed_profile"]
        planned = list(zip(prof.t, prof.v)) if prof else [(0.0, 1.0)]
        return {"speed_profile": splice_series(planned, [(t, v) for t, _, v in readings])}

    def forcing_values(self, quantity):
        return {"": self._factor(self.time_s)}
