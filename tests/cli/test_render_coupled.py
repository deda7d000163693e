"""`citytwin render` of a coupled scenario (docs/coupling.md): the flood, the station and the
tourists on the demo city in one picture, a tiny short video off screen."""
import pytest

from tests.cli.test_render import cli, read_video
from tests.conftest import DEMO_CITY

SCENARIO = f"""[scenario]
name = "storm at the station, in brief"
models = ["flood", "station_dispersal", "tourist_flow"]
city = "{DEMO_CITY}"
duration_s = 30
seed = 3
[parameters.flood]
cell_size_m = 20.0
rain = "uniform"
rain_mm_per_h = 200
[parameters.station_dispersal]
trains = ["P1 0 100"]
tourist_share = 0.5
[parameters.tourist_flow]
day_start_s = 63000
"""


@pytest.mark.slow  # about 7 s of CPU: three models built on the demo city, then two frames
def test_render_draws_a_coupled_run(tmp_path):
    path = tmp_path / "coupled.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    out = tmp_path / "coupled.mp4"
    r = cli("render", path, "--out", out, "--size", "320x180", "--fps", "4", "--length-s", "0.5", "--quiet")
    assert r.returncode == 0, r.stderr
    meta, frames = read_video(out)
    assert meta["size"] == (320, 180) and len(frames) == 2
    assert "2 frames at 4 fps, 320x180" in r.stdout
    last = frames[-1].astype(float)
    assert last.std() > 5.0  # a drawn city, not a blank frame
