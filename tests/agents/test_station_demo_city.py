"""The station model on the bundled demo city: what the evening-peak scenario relies on."""
import numpy as np
import pytest

from agents.registry import get_model
from tests.conftest import DEMO_CITY
from twin.core.city import City


@pytest.mark.slow
def test_every_bus_stop_serves_its_own_passengers():
    model = get_model("station_dispersal")(City.load(DEMO_CITY), duration_s=60, seed=7)
    bus_stops = [i for i, q in enumerate(model.station.pois) if q.kind == "bus_stop"]
    assert len(bus_stops) == 3
    bound = model.onward_poi[0, model.dest]  # the stop does not depend on the gate for a bus passenger
    is_bus = model.mode == 2
    counts = np.bincount(bound[is_bus], minlength=len(model.station.pois))[bus_stops]
    assert counts.min() > 0.25 * is_bus.sum() / 3, counts
    # Any gate leads a bus passenger to the same stop.
    assert (model.onward_poi[:, model.dest[is_bus]] == bound[is_bus]).all()
