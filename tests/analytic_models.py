"""Models with known answers behind the model contract, for the sensitivity and calibration tests.

``ishigami``: Y = sin x1 + a sin² x2 + b x3⁴ sin x1 on [-π, π]³, whose Sobol' indices are known in
closed form (Ishigami & Homma 1990; a = 7, b = 0.1: S1 = 0.314, 0.442, 0; ST = 0.558, 0.442, 0.244).

``mmc_queue``: the mean wait in queue of an M/M/c queue (Erlang C, agents/tourism/queueing_theory.py)
as a function of the arrival rate and the mean service time; its Sobol' indices are computed in the
test by quadrature of the same formula.

Both finish in one step of 1 s; their KPI does not depend on the seed. Plugged in through
CITYTWIN_MODELS (tests/conftest.py) so that worker processes find them too.
"""
import math

from twin.core.model_contract import KPI, CityModel, Param, Snapshot

A, B = 7.0, 0.1


class _OneStep(CityModel):
    report_interval_s = 1.0
    state_attrs = ("y",)

    def __init__(self, city, **kw):
        super().__init__(city, **kw)
        self.dt_s = 1.0
        self.y = 0.0

    def step(self):
        self.y = self.value()

    def current_kpis(self):
        return {"y": float(self.y)}

    def snapshot(self):
        import numpy as np

        return Snapshot(self.time_s, np.zeros((0, 2)), np.zeros(0, np.int8), (), np.zeros(0, int), {}, self._kpi_cache,
                        {})


class IshigamiModel(_OneStep):
    name = "ishigami"
    title = "Ishigami function (sensitivity tests only)"
    params = tuple(Param(f"x{i}", "-", 0.0, f"input x{i}", float, -math.pi, math.pi) for i in (1, 2, 3))
    kpis = (KPI("y", "-", "sin x1 + 7 sin² x2 + 0.1 x3⁴ sin x1", headline=True, better="lower"),)

    def value(self):
        x1, x2, x3 = (self.p[f"x{i}"] for i in (1, 2, 3))
        return math.sin(x1) + A * math.sin(x2) ** 2 + B * x3 ** 4 * math.sin(x1)


def mmc_wait_s(arrival_per_s: float, service_s: float, servers: int) -> float:
    from agents.tourism.queueing_theory import mmc_mean_wait

    return mmc_mean_wait(arrival_per_s, service_s, servers)


class QueueModel(_OneStep):
    name = "mmc_queue"
    title = "M/M/c queue, mean wait by Erlang C (sensitivity tests only)"
    params = (Param("arrival_per_s", "1/s", 0.5, "arrival rate", float, 0.0, 100.0),
              Param("service_s", "s", 5.0, "mean service time", float, 0.01, 1000.0),
              Param("servers", "-", 4, "servers", int, 1, 100))
    kpis = (KPI("y", "s", "mean wait in queue", headline=True, better="lower"),)

    def value(self):
        return mmc_wait_s(self.p["arrival_per_s"], self.p["service_s"], self.p["servers"])


class ArrivalsModel(CityModel):
    """Poisson arrivals at ``demand_scale`` × 2 persons/s in steps of 10 s: a fast stochastic model
    whose ``demand_scale`` the calibration tests recover from a synthetic count."""

    name = "arrivals"
    title = "Poisson arrivals (calibration tests only)"
    params = (Param("demand_scale", "-", 1.0, "multiplies the arrival rate of 2 persons/s", float, 0.0, 10.0),
              Param("base_rate_per_s", "1/s", 2.0, "arrival rate at demand_scale 1", float, 0.0, 100.0))
    kpis = (KPI("arrived", "persons", "persons arrived so far", headline=True, better="higher"),)
    report_interval_s = 10.0
    state_attrs = ("arrived",)

    def __init__(self, city, **kw):
        super().__init__(city, **kw)
        self.dt_s = 10.0
        self.arrived = 0

    def step(self):
        self.arrived += int(self.rng.poisson(self.p["demand_scale"] * self.p["base_rate_per_s"] * self.dt_s))

    def current_kpis(self):
        return {"arrived": self.arrived}

    def snapshot(self):
        import numpy as np

        return Snapshot(self.time_s, np.zeros((0, 2)), np.zeros(0, np.int8), (), np.zeros(0, int), {}, self._kpi_cache,
                        {})
