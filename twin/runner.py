"""One run of one scenario variant: build the model, step it, write the outputs (CONTRACT §4)."""
from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from . import __version__
from .core.errors import UserError
from .outputs import atomic_dir, write_geotiff, write_json, write_table
from .scenario import BASELINE, Scenario


@dataclass
class RunResult:
    summary: dict[str, Any]
    timeseries: pd.DataFrame
    rasters: dict = field(default_factory=dict)
    model: Any = None
    exports: dict = field(default_factory=dict)  # {"recorded": exports.Recorded} when [outputs] asks


def software_versions() -> dict[str, str]:
    import mesa
    import numba
    import numpy

    return {"citytwin": __version__, "python": platform.python_version(), "mesa": mesa.__version__,
            "numba": numba.__version__, "numpy": numpy.__version__}


def run_hash(resolved: dict, variant: str) -> str:
    """Identifies a run's inputs: same hash, same numbers (for this version)."""
    blob = json.dumps({"inputs": resolved, "variant": variant, "version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_model(scenario: Scenario, variant: str | None = None, seed: int | None = None,
                overrides: dict | None = None):
    cls = scenario.model_class()
    params = scenario.params_for(variant, overrides)
    city = scenario.load_city()
    return cls(city, duration_s=scenario.duration_s, seed=scenario.seed if seed is None else seed, **params)


def run_one(scenario: Scenario, variant: str | None = None, seed: int | None = None,
            overrides: dict | None = None, out: Path | None = None,
            progress: Callable[[float, float], None] | bool = False) -> RunResult:
    """Run one variant to the end. ``progress`` is True for a terminal bar or a callback(t, total)."""
    variant = variant or BASELINE
    seed = scenario.seed if seed is None else int(seed)
    started = time.perf_counter()
    model = build_model(scenario, variant, seed, overrides)
    callback, close = _progress(progress, scenario.duration_s, f"{scenario.name} [{variant}]")
    settings = scenario.outputs
    recorded = None
    try:
        if settings is not None and settings.records:
            from .exports import drive

            recorded = drive(model, settings, callback)  # same steps as run_to_end, pausing to read
        else:
            model.run_to_end(callback)
    finally:
        close()
    wall = time.perf_counter() - started
    summary = {
        "scenario": scenario.name, "model": scenario.model, "variant": variant, "seed": seed,
        "kpis": model.final_kpis(), "units": model.kpi_units(), "wall_s": round(wall, 3),
        "simulated_s": model.time_s, "version": __version__,
    }
    result = RunResult(summary, model.timeseries(), model.rasters(), model,
                       {"recorded": recorded} if recorded is not None else {})
    if out is not None:
        write_run(result, scenario, variant, seed, overrides, Path(out))
    return result


def write_run(result: RunResult, scenario: Scenario, variant: str, seed: int, overrides, out: Path) -> None:
    import tomli_w

    crs = scenario.load_city().crs
    resolved = scenario.resolved(variant, seed, overrides)
    bundle = {"scenario_file": str(scenario.path) if scenario.path else None, "variant": variant, "seed": seed,
              "overrides": overrides or {}, "hash": run_hash(resolved, variant), "versions": software_versions(),
              "reproduce": f"citytwin run scenario.toml --seed {seed} --out <DIR>"}
    with atomic_dir(out) as tmp:
        write_table(result.timeseries, tmp / "timeseries")
        for name, grid in result.rasters.items():
            write_geotiff(grid, crs, tmp / f"{name}.tif")
        settings = scenario.outputs
        if settings:
            from .exports import write_exports

            write_exports(result, settings, crs, tmp)
        (tmp / "scenario.toml").write_text(tomli_w.dumps(_toml_safe(resolved)), encoding="utf-8")
        write_json(bundle, tmp / "bundle.json")
        # summary.json last: its presence marks a finished run (compare resumes on it).
        write_json(result.summary, tmp / "summary.json")


def _toml_safe(obj):
    if isinstance(obj, dict):
        return {k: _toml_safe(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_toml_safe(v) for v in obj]
    return obj


def _progress(progress, total: float, label: str):
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=round(total), unit="sim-s", desc=label, leave=False, dynamic_ncols=True)

        def cb(t):
            bar.update(round(t) - bar.n)

        return cb, bar.close
    if callable(progress):
        return (lambda t: progress(t, total)), (lambda: None)
    return None, (lambda: None)


def check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder; choose a folder path.")
