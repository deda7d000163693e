"""Water on the station's street level slows or stops the passengers walking in it (docs/coupling.md):
the depth a flood hands over, here a uniform sheet, and the depth-speed relation of agents.water_hazard."""
import numpy as np
import pytest

from tests.conftest import DEMO_CITY
from twin.core.grid import GridField
from agents.water_hazard import wading_speed_factor
from twin.runs.runner import Run
from twin.scenario.scenario import load_scenario

WADE_AT_S = 60.0  # passengers are walking on level 0 by then


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    """The same station run three times: from WADE_AT_S on dry, in 0.2 m and in 0.6 m of water.
    Returns, per depth, the model and how far each passenger on level 0 walked in the next 4 s."""
    path = tmp_path_factory.mktemp("wade") / "station.toml"
    path.write_text(f'[scenario]\nname = "wet floor"\nmodel = "station_dispersal"\ncity = "{DEMO_CITY}"\n'
                    'duration_s = 120\nseed = 3\n[parameters]\ntrains = ["P1 0 200"]\nrelease_spread_s = 20\n',
                    encoding="utf-8")
    sc = load_scenario(path)
    out = {}
    for depth in (0.0, 0.2, 0.6):
        run = Run(sc)
        m = run.model
        run.advance(WADE_AT_S)
        if depth:
            m.accept("surface_water__depth", GridField.empty("depth", m.city.bounds, 10.0, fill=depth, unit="m"))
        cr = m.crowd
        level0 = m.station.levels.index(0)
        on = cr.lv[:cr.n] == level0
        ids = cr.ids[:cr.n][on].copy()
        speeds = (cr.v0[:cr.n][on].copy(), m.v0[ids])  # desired speed now, and in the dry
        xy0 = {int(i): (x, y) for i, x, y in zip(cr.ids[:cr.n], cr.x[:cr.n], cr.y[:cr.n])}
        run.advance(WADE_AT_S + 4.0)
        xy1 = {int(i): (x, y) for i, x, y in zip(cr.ids[:cr.n], cr.x[:cr.n], cr.y[:cr.n])}
        still = [i for i in ids if int(i) in xy1]  # still in the station (not out of an exit)
        out[depth] = (m, speeds, np.array([np.hypot(xy1[int(i)][0] - xy0[int(i)][0], xy1[int(i)][1] - xy0[int(i)][1])
                                   for i in still]))
    return out


def test_shallow_water_slows_the_passengers_on_the_street_level(walked):
    dry, wet = walked[0.0][2], walked[0.2][2]
    assert len(dry) > 20
    # their desired speed is their own times the factor for 0.2 m of water (0.76), until the next depth
    now, own = walked[0.2][1]
    assert np.allclose(now, own * wading_speed_factor(0.2)) and np.array_equal(walked[0.0][1][0], own)
    assert wading_speed_factor(0.2) == pytest.approx(1 - 0.417 * 0.2 / 0.35)
    assert 0.6 * dry.mean() < wet.mean() < 0.92 * dry.mean()


def test_water_deeper_than_the_stop_depth_stops_them(walked):
    dry, deep = walked[0.0][2], walked[0.6][2]
    assert (walked[0.6][1][0] == 0).all()
    assert walked[0.6][0].p["flood_stop_depth_m"] == 0.5
    assert deep.mean() < 0.15 * dry.mean()
