"""The flood scenarios through the command line: scenarios/riverside_storm.toml (shortened) with its
outputs, a comparison of two variants, and scenarios/prague_cloudburst.toml on the real terrain."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import rasterio

from tests.conftest import ROOT

SCENARIOS = ROOT / "scenarios"


def citytwin(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "twin.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def shortened(tmp_path, name: str, duration_s: int, extra: str = "") -> str:
    """A copy of a scenario with a shorter duration, its city and files where the original's are."""
    text = (SCENARIOS / name).read_text(encoding="utf-8")
    text = re.sub(r"^duration_s = .*$", f"duration_s = {duration_s}", text, flags=re.M)
    text = text.replace('city = "../gis_data/', f'city = "{ROOT / "gis_data"}/')
    text = text.replace('rain_file = "data/', f'rain_file = "{SCENARIOS / "data"}/')
    path = tmp_path / name
    path.write_text(text + extra, encoding="utf-8")
    return path


@pytest.mark.slow
def test_the_riverside_storm_runs_from_the_cli(tmp_path):
    sc = shortened(tmp_path, "riverside_storm.toml", 900)
    out = tmp_path / "run"
    r = citytwin("run", sc, "--intervention", "earlier warning", "--set", "cell_size_m=10",
                 "--set", "storm_duration_min=15", "--set", "warning_time_s=300", "--set", "response_time_s=0",
                 "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    k = summary["kpis"]
    assert summary["model"] == "flood" and summary["variant"] == "earlier warning"
    assert k["volume_error_rel"] < 1e-6 and k["rain_volume_m3"] > 0
    assert k["buildings_flooded"] > 0 and k["evacuees"] > 0
    ts = pd.read_csv(out / "timeseries.csv")
    assert list(ts["time_s"]) == list(range(0, 901, 60))
    assert {"buildings_flooded", "roads_impassable_km", "stored_volume_m3", "shelter_occupancy.SH1"} <= set(ts.columns)
    for name in ("max_depth", "max_velocity", "arrival_time"):
        with rasterio.open(out / f"{name}.tif") as src:
            assert src.crs.to_epsg() == 32650 and src.res == (10.0, 10.0)
    layers = {n for n, _ in pyogrio.list_layers(out / "impacts.gpkg")}
    assert {"buildings", "roads", "pois", "station_entrances"} <= layers
    flooded = gpd.read_file(out / "impacts.gpkg", layer="buildings")
    assert flooded["flooded"].sum() == k["buildings_flooded"]
    extent = gpd.read_file(out / "flood_extent.gpkg", layer="depth")
    assert sorted(extent["time_s"].unique()) == [0.0, 600.0, 900.0]  # every 600 s and the end
    assert (extent["area_m2"] > 0).all()


@pytest.mark.slow
def test_compare_two_variants(tmp_path):
    sc = shortened(tmp_path, "riverside_storm.toml", 600, extra="")
    text = sc.read_text(encoding="utf-8")
    # keep the baseline and one intervention, on a coarse grid with a short storm
    text = text.split("[[interventions]]")[0] + "[[interventions]]" + text.split("[[interventions]]")[1]
    text = text.replace("cell_size_m = 2.0", "cell_size_m = 10.0").replace("storm_duration_min = 60",
                                                                           "storm_duration_min = 10")
    text = text.replace("mobile_pump_start_s = [900]", "mobile_pump_start_s = [0]")
    sc.write_text(text, encoding="utf-8")
    out = tmp_path / "cmp"
    r = citytwin("compare", sc, "--replications", "1", "--workers", "1", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["variant"]) == {"baseline", "mobile pumps"}
    pumped = table[table["kpi"] == "pumped_volume_m3"].set_index("variant")["mean"]
    assert pumped["mobile pumps"] > pumped["baseline"]
    stored = table[table["kpi"] == "stored_volume_m3"].set_index("variant")["mean"]
    assert stored["mobile pumps"] < stored["baseline"]
    assert (out / "runs" / "mobile-pumps" / "rep-000" / "impacts.gpkg").is_file()


@pytest.mark.slow
def test_the_prague_cloudburst_on_real_terrain(tmp_path):
    sc = shortened(tmp_path, "prague_cloudburst.toml", 1200)
    out = tmp_path / "prague"
    r = citytwin("run", sc, "--set", "cell_size_m=4", "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    k = json.loads((out / "summary.json").read_text())["kpis"]
    assert k["volume_error_rel"] < 1e-6
    assert k["rain_volume_m3"] > 0 and k["outflow_volume_m3"] > 0  # open edges: water runs off the map
    assert k["buildings_flooded"] > 0 and k["evacuees"] == 0
    with rasterio.open(out / "max_depth.tif") as src:
        assert src.crs.to_epsg() == 5514  # S-JTSK / Krovak East North, the terrain model's
    bundle = json.loads((out / "bundle.json").read_text())
    assert bundle["input_files"]["rain_file"]["path"].endswith("bubenec_cloudburst.csv")


@pytest.mark.parametrize("name", ["riverside_storm.toml", "prague_cloudburst.toml"])
def test_every_variant_of_the_scenarios_validates(name):
    from twin.scenario.scenario import load_scenario

    sc = load_scenario(SCENARIOS / name)
    assert sc.model == "flood"
    for v in sc.variants():
        sc.params_for(v)
    if name == "riverside_storm.toml":
        assert len(sc.interventions) >= 4
