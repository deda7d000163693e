"""A tiny, fast model for testing the platform (runner, compare, app) without a real simulation.

Walkers start at random points of the city's extent and walk east at a speed drawn per walker;
each one is done when it has walked ``distance_m``. Its KPIs have known distributions, which the
statistics tests rely on. Plugged in with CITYTWIN_MODELS="toy=tests.toy_model:ToyModel".
"""
import numpy as np

from twin.core.grid import GridField
from twin.core.model_contract import KPI, CityModel, Param, Snapshot


class ToyModel(CityModel):
    name = "toy"
    title = "Toy walkers (platform tests only)"
    params = (
        Param("walkers", "-", 200, "number of walkers", int, 1, 1_000_000),
        Param("speed_mps", "m/s", 1.0, "mean walking speed", float, 0.1, 5.0),
        Param("speed_sd_mps", "m/s", 0.2, "standard deviation of walking speed", float, 0.0, 2.0),
        Param("distance_m", "m", 100.0, "distance each walker walks", float, 1.0, 10_000.0),
        Param("closed_gates", "-", [], "ignored; lets tests exercise list parameters", list),
    )
    kpis = (
        KPI("walkers_done", "-", "walkers that reached their distance", headline=True),
        KPI("mean_time_s", "s", "mean time to walk the distance", headline=True),
        KPI("done_by_half", "-", "walkers done, by half of the city", per_step=False),
    )
    state_names = ("walking", "done")
    report_interval_s = 5.0

    def __init__(self, city, **kw):
        super().__init__(city, **kw)
        n = self.p["walkers"]
        minx, miny, maxx, maxy = city.bounds
        self.start = np.column_stack([self.rng.uniform(minx, maxx, n), self.rng.uniform(miny, maxy, n)])
        self.pos = self.start.copy()
        self.speed = np.clip(self.rng.normal(self.p["speed_mps"], self.p["speed_sd_mps"], n), 0.05, None)
        self.done_at = np.full(n, np.nan)
        self.dt_s = 1.0
        self.max_count = GridField.empty("max_count", city.bounds, max(1.0, (maxx - minx) / 20), unit="-")

    def step(self):
        walking = np.isnan(self.done_at)
        self.pos[walking, 0] += self.speed[walking] * self.dt_s
        self.time_s += self.dt_s
        arrived = walking & (self.pos[:, 0] - self.start[:, 0] >= self.p["distance_m"])
        self.done_at[arrived] = self.time_s
        r, c = self.max_count.index_of(self.pos[:, 0], self.pos[:, 1])
        ok = self.max_count.inside(r, c)
        counts = np.zeros(self.max_count.shape, np.float32)
        np.add.at(counts, (r[ok], c[ok]), 1)
        np.maximum(self.max_count.values, counts, out=self.max_count.values)

    @property
    def finished(self):
        return not np.isnan(self.done_at).any()

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
        return Snapshot(self.time_s, self.pos.copy(), states, self.state_names,
                        {"max_count": self.max_count}, self._kpi_cache)

    def rasters(self):
        return {"max_count": self.max_count}
