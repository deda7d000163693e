"""CityTwin from Python (``import citytwin``; docs/python_api.md): load a scenario, change its
parameters, run it or compare its variants, and read a run folder as pandas, xarray, GeoPandas and
PedPy objects. Everything goes through the same code as the CLI (``twin.runs.runner``,
``twin.runs.experiment``), so a notebook's run folder is the CLI's, byte for byte in its numbers.
"""
from __future__ import annotations

import copy
import json
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from twin.core.errors import UserError
from twin.scenario.scenario import BASELINE
from twin.scenario.scenario import Scenario as _Scenario
from twin.scenario.scenario import load_scenario as _load
from twin.scenario.scenario import scenario_from_dict


class Scenario:
    """A scenario file, loaded and validated. ``with_params``, ``with_outputs`` and ``with_duration``
    return changed copies (validated at once: a typo fails here, naming the key)."""

    def __init__(self, scenario: _Scenario):
        self._sc = scenario

    # -- what it is ------------------------------------------------------------------------------------
    name = property(lambda self: self._sc.name)
    model = property(lambda self: self._sc.model)
    duration_s = property(lambda self: self._sc.duration_s)
    seed = property(lambda self: self._sc.seed)
    path = property(lambda self: self._sc.path)

    @property
    def variants(self) -> list[str]:
        return self._sc.variants()

    @property
    def params(self) -> dict[str, Any]:
        """The baseline's parameters, every one (defaults included), as plain values."""
        from twin.core.params import plain_value

        return {k: plain_value(v) for k, v in self._sc.params_for(BASELINE).items()}

    def describe(self) -> str:
        """The model's parameters, KPIs, fields and per-feature values (``citytwin models MODEL``)."""
        from twin.scenario.model_docs import describe_model

        return describe_model(self._sc.model)

    def __repr__(self) -> str:
        return (f"<citytwin.Scenario {self.name!r}: model {self.model}, {self.duration_s:g} s, seed {self.seed}, "
                f"variants {self.variants}>")

    # -- changed copies -----------------------------------------------------------------------------
    def _with(self, section: str, values: dict) -> "Scenario":
        raw = copy.deepcopy(self._sc.raw)
        raw.setdefault(section, {}).update(values)
        return Scenario(scenario_from_dict(raw, self._sc.path))

    def with_params(self, **params) -> "Scenario":
        """These ``[parameters]`` changed (for the baseline and, unless an intervention sets them
        itself, for every variant)."""
        self._sc.model_class()
        return self._with("parameters", params)

    def with_outputs(self, **outputs) -> "Scenario":
        """These ``[outputs]`` keys set, e.g. ``fields=["depth"], field_interval_s=60``."""
        return self._with("outputs", outputs)

    def with_duration(self, seconds: float) -> "Scenario":
        return self._with("scenario", {"duration_s": seconds})


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario file (errors say which key and how to fix it)."""
    return Scenario(_load(path))


def _scenario(s) -> _Scenario:
    return s._sc if isinstance(s, Scenario) else _load(s) if isinstance(s, (str, Path)) else s


def _bar(total: float, desc: str, start: float = 0.0):
    from tqdm.auto import tqdm  # a widget in Jupyter, a text bar in a terminal

    return tqdm(total=round(total), initial=round(start), unit="sim-s", desc=desc, leave=False)


def run(scenario, variant: str | None = None, seed: int | None = None, *, out: str | Path | None = None,
        progress: bool = True) -> "RunFolder":
    """Run one variant to the end and write its run folder (``out``, or a new temporary folder);
    returns it opened. Shows a progress bar (a widget in Jupyter) unless ``progress=False``."""
    from twin.scenario.preflight import for_run
    from twin.runs.runner import run_one

    sc = _scenario(scenario)
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="citytwin-run-"))
    checked = for_run(sc, out=out, variant=variant, seed=seed)
    try:
        bar = _bar(sc.duration_s, f"{sc.name} [{variant or BASELINE}]") if progress else None
        try:
            run_one(checked.scenario, variant, seed, out=out,
                    progress=(lambda t, total: bar.update(round(t) - bar.n)) if bar is not None else False)
        finally:
            if bar is not None:
                bar.close()
    finally:
        checked.release()
    return open_run(out)


def compare(scenario, *, out: str | Path | None = None, replications: int | None = None,
            workers: int | None = None, progress: bool = True) -> "Comparison":
    """Run every variant × replication (as ``citytwin compare``) into ``out`` (or a new temporary
    folder) and return the comparison."""
    from twin.runs.experiment import compare as _compare

    sc = _scenario(scenario)
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="citytwin-compare-"))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=1, unit="run", desc=f"{sc.name}: runs", leave=False)

    def on_progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = _compare(sc, out, replications=replications, workers=workers, progress=False, report=True,
                          on_progress=on_progress if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    return Comparison(Path(out), result.comparison, result.runs, {(s.variant, s.replication): s.folder
                                                                  for s in result.plan.runs})


@dataclass
class Comparison:
    folder: Path
    table: pd.DataFrame  # comparison.csv: variant, kpi, mean, ci_low, ci_high, n, delta_vs_baseline, ...
    runs: pd.DataFrame  # runs.csv: one row per run, every KPI
    _folders: dict

    def run(self, variant: str = BASELINE, replication: int = 0) -> "RunFolder":
        """One of the comparison's runs."""
        key = (variant, replication)
        if key not in self._folders:
            raise UserError(f"no run of variant {variant!r}, replication {replication} in {self.folder}; the runs are: "
                            + ", ".join(f"{v!r} #{r}" for v, r in self._folders))
        return open_run(self.folder / self._folders[key])


def open_run(folder: str | Path) -> "RunFolder":
    """A finished run folder (one with summary.json), as written by ``run``, the CLI or the app."""
    folder = Path(folder)
    if not (folder / "summary.json").is_file():
        raise UserError(f"{folder}: no summary.json, so this is not a finished run folder (a run writes it last).")
    return RunFolder(folder)


class RunFolder:
    """A run's outputs (docs/outputs.md): KPIs and time series as pandas, fields over time and rasters as
    xarray, per-feature values as a GeoDataFrame, trajectories as pandas or PedPy."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.summary = json.loads((self.folder / "summary.json").read_text(encoding="utf-8"))

    def __repr__(self) -> str:
        s = self.summary
        return f"<citytwin.RunFolder {self.folder}: {s['scenario']!r} [{s['variant']}], seed {s['seed']}>"

    @property
    def kpis(self) -> pd.DataFrame:
        """One row per KPI (keyed ones as ``name.key``): value and unit."""
        from twin.runs.experiment import flatten_kpis

        units = self.summary.get("units", {})
        flat = flatten_kpis(self.summary["kpis"])
        return pd.DataFrame({"value": pd.Series(flat, dtype=float),
                             "unit": pd.Series({k: units.get(k.split(".")[0], "") for k in flat}, dtype=object)})

    @property
    def timeseries(self) -> pd.DataFrame:
        return pd.read_parquet(self.folder / "timeseries.parquet")

    @property
    def provenance(self) -> dict:
        """What remakes the run: the scenario text, its hash, variant, seed, version, parameters."""
        import pyarrow.parquet as pq

        return json.loads(pq.read_schema(self.folder / "timeseries.parquet").metadata[b"citytwin"])

    def fields(self):
        """``fields.nc`` or ``fields.zarr`` as an ``xarray.Dataset`` (CRS via ``ds.rio.crs``)."""
        import rioxarray  # noqa: F401 - the .rio accessor
        import xarray as xr

        if (self.folder / "fields.nc").is_file():
            return xr.open_dataset(self.folder / "fields.nc", engine="h5netcdf", decode_coords="all")
        if (self.folder / "fields.zarr").is_dir():
            return xr.open_zarr(self.folder / "fields.zarr", decode_coords="all")
        raise UserError(f"{self.folder}: no fields over time; ask for them in the scenario's [outputs] with "
                        'fields = ["..."] and field_interval_s.')

    def raster(self, name: str):
        """A GeoTIFF of the run (e.g. ``max_depth``) as an ``xarray.DataArray``."""
        import rioxarray

        path = self.folder / f"{name}.tif"
        if not path.is_file():
            have = sorted(p.stem for p in self.folder.glob("*.tif"))
            raise UserError(f"{self.folder}: no raster {name!r}; this run has: {', '.join(have) or 'none'}.")
        return rioxarray.open_rasterio(path, masked=True).squeeze()

    def features(self):
        """``features.parquet``: per-feature values over time, a GeoDataFrame."""
        import geopandas as gpd

        return gpd.read_parquet(self._need("features.parquet", "feature_interval_s"))

    def trajectory_table(self) -> pd.DataFrame:
        """``trajectories.parquet``: ``time_s, agent, x, y, state, level``."""
        return pd.read_parquet(self._need("trajectories.parquet", "trajectory_interval_s"))

    @property
    def levels(self) -> list[int]:
        return sorted(int(p.stem.removeprefix("trajectories_level")) for p in self.folder.glob("trajectories_level*.sqlite"))

    def trajectories(self, level: int = 0):
        """The agents walking on ``level`` as a PedPy ``TrajectoryData``."""
        import pedpy

        return pedpy.load_trajectory_from_jupedsim_sqlite(trajectory_file=self._sqlite(level))

    def walkable_area(self, level: int = 0):
        """The level's walkable area as a PedPy ``WalkableArea``: the file's ``geometry`` (PedPy
        1.5.1's ``load_walkable_area_from_jupedsim_sqlite`` reads versions 1 and 2 only, and the
        files are version 3)."""
        import sqlite3

        import pedpy

        with closing(sqlite3.connect(self._sqlite(level))) as db:
            return pedpy.WalkableArea(db.execute("SELECT wkt FROM geometry").fetchone()[0])

    def _sqlite(self, level: int) -> Path:
        path = self.folder / f"trajectories_level{int(level)}.sqlite"
        if not path.is_file():
            raise UserError(f"{self.folder}: no trajectories of level {level}; levels with trajectories: "
                            f"{self.levels or 'none'} (a model whose agents walk on levels, with [outputs] "
                            "trajectory_interval_s, writes them, unless trajectory_sqlite = false; "
                            "trajectory_table() reads trajectories.parquet).")
        return path

    def _need(self, name: str, key: str) -> Path:
        path = self.folder / name
        if not path.is_file():
            raise UserError(f"{self.folder}: no {name}; ask for it in the scenario's [outputs] with {key}.")
        return path
