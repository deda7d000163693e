"""Every registered model keeps the contract (Landlab-style: one parametrised test for all)."""
import numpy as np
import pytest

from agents.registry import MODELS, get_model
from tests.conftest import DEMO_CITY
from twin.core.city import City
from twin.core.model_contract import CityModel

CONTRACT_KPIS = {
    "station_dispersal": {"agents_total", "agents_exited", "clearance_time_s", "mean_egress_time_s",
                          "p95_egress_time_s", "max_density_ppm2", "exited_by_gate", "los_seconds"},
    "tourist_flow": {"tourists_total", "visits_completed", "mean_entry_wait_s", "p95_entry_wait_s",
                     "mean_room_search_s", "peak_occupancy_ratio"},
    "flood": {"max_depth_m", "max_flooded_area_m2", "buildings_flooded", "people_exposed", "roads_impassable_km",
              "rain_volume_m3", "inflow_volume_m3", "drained_volume_m3", "outflow_volume_m3", "stored_volume_m3",
              "volume_error_rel"},
}
REAL_MODELS = sorted(n for n in MODELS if n != "toy")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_declarations(name):
    cls = get_model(name)
    assert issubclass(cls, CityModel) and cls.name == name and cls.title
    names = [p.name for p in cls.params]
    assert len(names) == len(set(names))
    for p in cls.params:
        assert p.doc and p.unit, f"{name}.{p.name} needs a doc and a unit ('-' for none)"
        assert p.coerce(p.default, "default") == p.default, f"{name}.{p.name}: default out of its own range"
    kpis = {k.name for k in cls.kpis}
    assert CONTRACT_KPIS.get(name, set()) <= kpis, f"missing contract KPIs: {CONTRACT_KPIS[name] - kpis}"
    assert all(k.unit and k.doc for k in cls.kpis)
    assert any(k.headline for k in cls.kpis), "the indicator tiles need at least one headline KPI"


@pytest.mark.parametrize("name", REAL_MODELS)
def test_builds_on_the_demo_city_and_steps(name):
    cls = get_model(name)
    city = City.load(DEMO_CITY)
    model = cls(city, duration_s=60, seed=42)
    model.advance_to(2 * cls.report_interval_s)
    assert model.time_s >= 2 * cls.report_interval_s - 1e-6
    snap = model.snapshot()
    assert snap.positions.ndim == 2 and snap.positions.shape[1] == 2
    assert snap.states.shape == (len(snap.positions),)
    if len(snap.states):
        assert snap.states.max() < len(snap.state_names)
        minx, miny, maxx, maxy = city.bounds
        assert np.all((snap.positions[:, 0] >= minx - 1) & (snap.positions[:, 0] <= maxx + 1))
    ts = model.timeseries()
    assert list(ts.columns[:1]) == ["time_s"] and len(ts) >= 2
    kpis = model.final_kpis()
    assert CONTRACT_KPIS.get(name, set()) <= set(kpis)


def test_a_model_missing_a_layer_says_which(tiny_city):
    city = City.load(tiny_city)
    if "station_dispersal" not in MODELS:
        pytest.fail("station_dispersal is not registered")
    from twin.core.errors import UserError

    with pytest.raises(UserError, match="walkable"):
        get_model("station_dispersal")(city, duration_s=10, seed=1)
