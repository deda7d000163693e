"""Small city packages and scenario files built in code, for tests."""
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
from shapely.geometry import LineString, Point, box

from twin.core.city import City, Terrain
from twin.core.grid import GridField

CRS = pyproj.CRS("EPSG:32650")
X0, Y0 = 500_000.0, 3_400_000.0


def make_tiny_city(folder: Path) -> Path:
    buildings = gpd.GeoDataFrame(
        {"height_m": [12.0, 30.0, 6.0], "name": ["Town hall", "Tower", "Shed"], "use": ["public", "office", "other"]},
        geometry=[box(X0 + 10, Y0 + 10, X0 + 40, Y0 + 40), box(X0 + 60, Y0 + 10, X0 + 80, Y0 + 30),
                  box(X0 + 120, Y0 + 60, X0 + 130, Y0 + 70)], crs=CRS)
    roads = gpd.GeoDataFrame({"name": ["Main street"], "kind": ["primary"], "speed_kmh": [50.0]},
                             geometry=[LineString([(X0, Y0 + 50), (X0 + 200, Y0 + 50)])], crs=CRS)
    pois = gpd.GeoDataFrame({"id": ["A1"], "kind": ["attraction"], "name": ["Tower view"], "capacity": [100],
                             "gates": [2], "service_time_s": [5.0]}, geometry=[Point(X0 + 70, Y0 + 35)], crs=CRS)
    z = np.tile(np.linspace(10, 5, 40, dtype=np.float32), (20, 1))  # slopes down to the east
    dem = Terrain(GridField("elevation", z, X0, Y0 + 100, 5.0, unit="m"))
    path = folder / "tiny"
    City("Tiny", CRS, {"buildings": buildings, "roads": roads, "pois": pois}, dem).save(path)
    return path


def write_scenario(folder: Path, city: Path, body: str = "", model: str = "toy", name: str = "test",
                   duration_s: float = 120, seed: int = 1, replications: int = 3) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        f'[scenario]\nname = "{name}"\nmodel = "{model}"\ncity = "{city}"\nduration_s = {duration_s}\n'
        f"seed = {seed}\nreplications = {replications}\n\n{body}", encoding="utf-8")
    return path


def state_context(model, **kw) -> dict:
    """The run context a state file records (``Run.state_context``), for tests that save a model's
    state without a run: every key the state file's schema requires."""
    return {"citytwin": "test", "scenario_name": "test", "scenario": {}, "scenario_path": None, "city_path": "",
            "city_fingerprint": "0" * 64, "variant": "baseline", "seed": int(model.seed), "overrides": {},
            "duration_s": float(model.duration_s), "time_s": float(model.time_s), **kw}


def make_toy_twin_experiment(folder: Path, truth_speed_mps: float) -> dict:
    """The toy model's twin experiment (tests of docs/assimilation.md): the tiny city with two people
    counters east of two buildings, a scenario of 300 walkers, and the record of a hidden truth whose
    walkers go at ``truth_speed_mps``."""
    from twin.core.sensors import Sensor, sensors_frame
    from twin.live.synth import synth
    from twin.scenario.scenario import load_scenario

    city = make_tiny_city(folder)
    sensors = [Sensor("E1", "people_counter", X0 + 25, Y0 + 25, "walkers_east", "-", "buildings", "B00001", 3.0, 5.0),
               Sensor("E2", "people_counter", X0 + 70, Y0 + 25, "walkers_east", "-", "buildings", "B00002", 3.0, 5.0)]
    sensors_frame(sensors, City.load(city).crs).to_file(city / "sensors.geojson", driver="GeoJSON")
    scenario = write_scenario(folder, city, "[parameters]\nwalkers = 300\ndistance_m = 60\njitter_mps = 0.3\n",
                              duration_s=70, seed=3)
    synth(load_scenario(scenario), {"speed_mps": truth_speed_mps}, folder / "record")
    return {"dir": folder, "scenario": scenario, "record": folder / "record"}
