"""The one run driver: every run (CLI `run`, `compare`'s workers, the app) goes through ``Run``.

``Run`` builds the model of one scenario variant (or restores it from a state file), advances it
(pausing at the report grid, the export times of ``[outputs]`` and the state times), reads the
exports and states on the way, and writes the run folder (CONTRACT §4) atomically. Pausing never
changes what a model computes, so a run with exports or state saves gives the numbers of one
without, and a run continued from a state file ends exactly like the uninterrupted one.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from twin import __version__
from twin.core.errors import UserError
from twin.core.files import atomic_dir, disk_errors, sha256_file, write_geotiff, write_gpkg_layer, write_json, write_table
from twin.core.params import plain_value
from twin.core.state_file import SavedState, read_state, restore_state, state_bytes
from twin.runs.exports import Recorder, Streams
from twin.scenario.output_settings import OutputSettings
from twin.scenario.scenario import BASELINE, Scenario, load_scenario, scenario_from_dict

STATES_DIR = "states"


@dataclass
class RunResult:
    summary: dict[str, Any]
    timeseries: pd.DataFrame
    rasters: dict = field(default_factory=dict)
    model: Any = None
    exports: dict = field(default_factory=dict)  # {"recorded": exports.Recorded} when [outputs] asks
    states: dict[float, bytes] = field(default_factory=dict)  # state files by time
    tables: dict = field(default_factory=dict)  # {file stem: {layer: GeoDataFrame}} from the model's tables()
    streams: Any = None  # exports.Streams: fields over time, trajectories, feature values (files, finished)


def software_versions() -> dict[str, str]:
    import mesa
    import numba
    import numpy

    return {"citytwin": __version__, "python": "%d.%d.%d" % sys.version_info[:3], "mesa": mesa.__version__,
            "numba": numba.__version__, "numpy": numpy.__version__}


def run_hash(resolved: dict, variant: str, files: dict | None = None) -> str:
    """Identifies a run's inputs (the scenario, the variant and the content of the files it reads):
    same hash, same numbers (for this version)."""
    inputs = {k: v for k, v in resolved.items() if k != "alerts"}  # thresholds never change a number
    blob = json.dumps({"inputs": inputs, "variant": variant, "files": {k: v["sha256"] for k, v in (files or {}).items()},
                       "version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_field_extents(settings: OutputSettings, model_cls, where: str) -> None:
    from twin.core.errors import nearest

    declared = [f.name for f in model_cls.field_styles]
    for key, names in (("field_extents.", settings.field_extents), ("fields: ", settings.fields)):
        for name in names:
            if name not in declared:
                raise UserError(f'{where} [outputs] {key}{name}: model {model_cls.name} has no field "{name}"'
                                f"{nearest(name, declared)}; its fields are: {', '.join(declared) or 'none'} "
                                f"(citytwin models {model_cls.name}).")


def provenance(scenario: Scenario, variant: str, seed: int, overrides: dict | None = None,
               from_state: SavedState | None = None, replication: int = 0) -> dict[str, Any]:
    """What remakes a result, for every file a run writes (NetCDF global attributes, Parquet and
    SQLite metadata): the run's scenario as TOML text (as scenario.toml) and its SHA-256, the run
    hash (bundle.json), model, variant, seed, parameters, version and the command."""
    import tomli_w

    resolved = scenario.resolved(variant, seed, overrides)
    text = tomli_w.dumps(_toml_safe(resolved))
    files = scenario.input_files(variant, overrides)
    p = {"citytwin_version": __version__, "model": scenario.model, "scenario_name": scenario.name,
         "variant": variant, "seed": int(seed), "run_hash": run_hash(resolved, variant, files),
         "scenario_sha256": hashlib.sha256(text.encode()).hexdigest(), "scenario_toml": text,
         "parameters": json.dumps(resolved["parameters"], sort_keys=True, default=str),
         "overrides": json.dumps({k: plain_value(v) for k, v in (overrides or {}).items()}, sort_keys=True, default=str),
         "reproduce": f"citytwin run scenario.toml --seed {seed} --out <DIR>"}
    if from_state is not None:
        p.update(from_state_time_s=float(from_state.time_s), replication=int(replication))
    return p


def build_model(scenario: Scenario, variant: str | None = None, seed: int | None = None,
                overrides: dict | None = None):
    cls = scenario.model_class()
    params = scenario.params_for(variant, overrides)
    city = scenario.load_city()
    return cls(city, duration_s=scenario.duration_s, seed=scenario.seed if seed is None else seed, **params)


def state_name(t: float) -> str:
    """``state_t000600.npz``; fractional seconds are kept: ``state_t000600.05.npz``."""
    whole = int(math.floor(t + 1e-9))
    frac = f"{t - whole:.3f}".rstrip("0").rstrip(".")[1:] if abs(t - round(t)) > 1e-6 else ""
    return f"state_t{whole:06d}{frac}.npz"


class Run:
    """One run of one variant. ``advance(t)`` in slices (the app) or ``run_to_end()`` (the CLI).

    ``replication`` k >= 1 of a run continued from ``state`` reseeds the restored model's random
    generators from ``(seed, k)`` (``CityModel.reseed``): the futures of a branch replicated with
    common random numbers. Replication 0 is the plain continuation.

    Fields over time, trajectories and feature values (``[outputs]``) are written while the run goes,
    into a staging folder (in ``stage_near``, the run folder's parent, when given); ``outputs=False``
    records none of ``[outputs]``, for a run that writes no folder."""

    def __init__(self, scenario: Scenario, variant: str | None = None, seed: int | None = None,
                 overrides: dict | None = None, *, state: SavedState | None = None,
                 save_state_at=(), settings: OutputSettings | None = None, replication: int = 0,
                 stage_near: Path | None = None, outputs: bool = True):
        self.scenario = scenario
        self.variant = variant or BASELINE
        self.seed = scenario.seed if seed is None else int(seed)
        self.overrides = dict(overrides or {})
        # outputs=False: a run whose files nobody keeps (a replay, a point of a study, a branch's prefix)
        # records nothing of [outputs]; its numbers are the same (recording only reads the model)
        chosen = (settings or scenario.outputs or OutputSettings()) if outputs else OutputSettings()
        self.settings = chosen.with_state_times(save_state_at)
        self.started = time.perf_counter()
        self.model = build_model(scenario, self.variant, self.seed, self.overrides)
        _check_field_extents(self.settings, type(self.model), scenario.where)
        self.from_state = state
        self.replication = int(replication)
        if state is not None:
            restore_state(self.model, state)
            if self.replication:
                self.model.reseed((self.seed, self.replication))
        elif self.replication:
            raise ValueError("a replication number belongs to a run continued from a state")
        start = self.model.time_s
        st = self.settings
        self.streams = None
        if st.fields or st.trajectory_interval_s is not None or st.feature_interval_s is not None:
            self.streams = Streams(st, self.model, scenario.load_city().crs,
                                   provenance(scenario, self.variant, self.seed, self.overrides, state, self.replication),
                                   stage_near)
        self.recorder = Recorder(self.settings, start, self.streams)
        eps = 1e-9
        self.state_times = [t for t in self.settings.state_times_s if t > start + eps]
        self.states: dict[float, bytes] = {}
        self._state_context = None

    # -- stepping ---------------------------------------------------------------------------------
    @property
    def time_s(self) -> float:
        return self.model.time_s

    @property
    def done(self) -> bool:
        return self.model.done

    def _next_pause(self) -> float:
        return min(self.recorder.next_time(), self.state_times[0] if self.state_times else math.inf)

    def advance(self, t_s: float) -> None:
        """Advance to ``t_s`` (or the end), stopping on the way wherever an export or state is due."""
        m = self.model
        while True:
            m.advance_to(min(t_s, self._next_pause()))  # the first call also records the row at t = 0
            self._read_due()  # afterwards every pause point lies ahead, so the next call moves on
            if m.done or m.time_s >= t_s - 1e-9 * max(1.0, t_s):
                break

    def run_to_end(self, progress: Callable[[float], None] | None = None) -> None:
        m = self.model
        while not m.done:
            self.advance(m.next_report_s)
            if progress is not None:
                progress(m.time_s)

    def _read_due(self) -> None:
        m = self.model
        self.recorder.read_due(m)
        now = m.time_s
        while self.state_times and self.state_times[0] <= now + 1e-9 * max(1.0, now):
            self.state_times.pop(0)
            self.states[now] = self.state_bytes()

    # -- state --------------------------------------------------------------------------------------
    def state_context(self) -> dict[str, Any]:
        """What a state file records about this run besides the model's state."""
        if self._state_context is None:
            sc = self.scenario
            city = sc.load_city()
            self._state_context = {
                "citytwin": __version__, "scenario_name": sc.name, "scenario": sc.raw,
                "scenario_path": str(sc.path.resolve()) if sc.path else None, "city_path": str(sc.city_path),
                "city_fingerprint": city.fingerprint(), "variant": self.variant, "seed": self.seed,
                "overrides": {k: plain_value(v) for k, v in self.overrides.items()},
                "duration_s": sc.duration_s,
            }
        return self._state_context

    def state_bytes(self) -> bytes:
        """The model's complete state now, as the bytes of a state file."""
        return state_bytes(self.model, {**self.state_context(), "time_s": self.model.time_s})

    # -- results --------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The one summary builder (CONTRACT §4)."""
        m = self.model
        s = {"scenario": self.scenario.name, "model": self.scenario.model, "variant": self.variant, "seed": self.seed,
             "kpis": m.final_kpis(), "units": m.kpi_units(), "wall_s": round(time.perf_counter() - self.started, 3),
             "simulated_s": m.time_s, "version": __version__}
        s["names"] = m.names_used(s["kpis"])  # {id: name} of the feature ids the KPIs use (CONTRACT §4)
        if m.warnings:
            s["warnings"] = list(m.warnings)
        inputs = city_check_entry(m)
        if inputs:  # the inputs that are not the city's own: estimated, defaulted, missing (twin.core.city_check)
            s["city_check"] = inputs
        if self.from_state is not None:
            s["from_state"] = {"file": str(self.from_state.path), "time_s": self.from_state.time_s}
            s["replication"] = self.replication
        return s

    def result(self) -> RunResult:
        m = self.model
        rec = self.recorder.rec if self.settings.records else None
        if self.streams is not None:
            self.streams.close()  # the run is over as far as its files go
        return RunResult(self.summary(), m.timeseries(), m.rasters(), m,
                         {"recorded": rec} if rec is not None else {}, dict(self.states), m.tables(), self.streams)

    def write(self, out: Path, result: RunResult | None = None) -> RunResult:
        result = result or self.result()
        write_run(result, self.scenario, self.variant, self.seed, self.overrides, Path(out), self.settings,
                  self.from_state, self.replication)
        return result


def summary_caveats(summary: dict) -> list[str]:
    """What a reader of a run's numbers must know: the model's warnings, then the inputs that were
    estimated or defaulted rather than taken from the city's data (the CLI and the app say them)."""
    lines = [f"warning: {w}" for w in summary.get("warnings", [])]
    inputs = summary.get("city_check", {})
    if inputs.get("error"):
        lines.append(inputs["error"])
    if inputs.get("estimated") or inputs.get("defaulted"):
        lines.append(f"Inputs not from the city's data ({len(inputs.get('estimated', []))} estimated, "
                     f"{len(inputs.get('defaulted', []))} defaulted; `citytwin city check` says what to add):")
        lines += [f"  {kind}: {line}" for kind in ("estimated", "defaulted") for line in inputs.get(kind, [])]
    return lines


def city_check_entry(model) -> dict:
    """The model's check of its city for this run's parameters, as a summary records it (tens of ms)."""
    try:
        return type(model).check_city(model.city, model.p).summary_entry()
    except Exception as e:  # a model's broken check must not lose a finished run; the summary says so
        return {"error": f"the model's city check failed: {type(e).__name__}: {e}"}


def run_one(scenario: Scenario, variant: str | None = None, seed: int | None = None,
            overrides: dict | None = None, out: Path | None = None,
            progress: Callable[[float, float], None] | bool = False, *, state: SavedState | None = None,
            save_state_at=()) -> RunResult:
    """Run one variant to the end. ``progress`` is True for a terminal bar or a callback(t, total)."""
    run = Run(scenario, variant, seed, overrides, state=state, save_state_at=save_state_at,
              stage_near=Path(out).resolve().parent if out is not None else None)
    callback, close = _progress(progress, scenario.duration_s, f"{scenario.name} [{run.variant}]", run.time_s)
    try:
        run.run_to_end(callback)
    finally:
        close()
    result = run.result()
    if out is not None:
        run.write(Path(out), result)
        if result.streams is not None:
            result.streams.release()  # its files are in the run folder now
    return result


def write_run(result: RunResult, scenario: Scenario, variant: str, seed: int, overrides, out: Path,
              settings: OutputSettings | None = None, from_state: SavedState | None = None,
              replication: int = 0) -> None:
    import tomli_w

    crs = scenario.load_city().crs
    resolved = scenario.resolved(variant, seed, overrides)
    files = scenario.input_files(variant, overrides)
    bundle = {"scenario_file": str(scenario.path.resolve()) if scenario.path else None, "variant": variant,
              "seed": seed, "overrides": {k: plain_value(v) for k, v in (overrides or {}).items()},
              "hash": run_hash(resolved, variant, files), "input_files": files, "versions": software_versions(),
              "reproduce": f"citytwin run scenario.toml --seed {seed} --out <DIR>"}
    if from_state is not None:
        bundle["from_state"] = {"file": str(from_state.path), "time_s": from_state.time_s, "replication": replication,
                                "sha256": sha256_file(from_state.path) if from_state.path else None}
    settings = settings if settings is not None else scenario.outputs
    made = (result.streams.provenance if result.streams is not None
            else provenance(scenario, variant, seed, overrides, from_state, replication))
    with atomic_dir(out) as tmp:
        write_table(result.timeseries, tmp / "timeseries", metadata={"citytwin": made})
        for name, grid in result.rasters.items():
            write_geotiff(grid, crs, tmp / f"{name}.tif", tags=made)
        if settings:
            from twin.runs.exports import write_exports

            write_exports(result, settings, crs, tmp, scenario.model_class().name, made)
        for stem, layers in result.tables.items():
            for layer, gdf in layers.items():
                if len(gdf):
                    write_gpkg_layer(gdf.to_crs(crs), tmp / f"{stem}.gpkg", layer, made)
        if result.states:
            (tmp / STATES_DIR).mkdir()
            for t, data in sorted(result.states.items()):
                with disk_errors(tmp / STATES_DIR / state_name(t)):
                    (tmp / STATES_DIR / state_name(t)).write_bytes(data)
        with disk_errors(tmp / "scenario.toml"):
            (tmp / "scenario.toml").write_text(tomli_w.dumps(_toml_safe(resolved)), encoding="utf-8")
        write_json(bundle, tmp / "bundle.json")
        # summary.json last: its presence marks a finished run (compare resumes on it).
        write_json(result.summary, tmp / "summary.json")


# -- continuing from a state file --------------------------------------------------------------------
def scenario_for_state(state: SavedState, scenario_path: Path | None = None) -> Scenario:
    """The scenario a state file belongs to: the one it records, or ``scenario_path`` if it matches."""
    meta = state.meta
    where = f"--from-state {state.path}"
    if scenario_path is not None:
        sc = load_scenario(scenario_path)
        if sc.model != meta["model_name"]:
            raise UserError(f"{where}: the state is of model {meta['model_name']!r} but {scenario_path} runs model "
                            f"{sc.model!r}; give the scenario the state was saved from (or none).")
    else:
        recorded = meta.get("scenario_path")
        sc = scenario_from_dict(meta["scenario"], Path(recorded) if recorded else None)
        sc.city_path = Path(meta["city_path"])
    if sc.model_class().name != meta["model_name"]:
        raise UserError(f"{where}: the state is of model {meta['model_name']!r}, not {sc.model!r}.")
    city = sc.load_city()
    if city.fingerprint() != meta["city_fingerprint"]:
        raise UserError(f"{where}: the city data ({sc.city_path}) is not the one the state was saved on (its files "
                        "have changed, or this is another city). Continue on the same city package, or run the "
                        "scenario again from the start.")
    if state.time_s >= sc.duration_s - 1e-9:
        raise UserError(f"{where}: the state is at t = {state.time_s:g} s, the end of the run "
                        f"(duration_s = {sc.duration_s:g} s); there is nothing left to run.")
    return sc


def resume_plan(state: SavedState, variant: str | None, overrides: dict | None) -> tuple[str, dict]:
    """The variant and overrides of a continued run: unchanged, the state's own; ``--intervention``
    picks another variant (with only the new ``--set``); ``--set`` alone adds to the state's."""
    meta = state.meta
    if variant is not None:
        return variant, dict(overrides or {})
    return meta["variant"], {**meta.get("overrides", {}), **(overrides or {})}


def load_state_run(path: Path, scenario_path: Path | None = None, variant: str | None = None,
                   overrides: dict | None = None) -> tuple[Scenario, SavedState, str, dict]:
    state = read_state(path)
    try:
        sc = scenario_for_state(state, scenario_path)
        variant, overrides = resume_plan(state, variant, overrides)
        sc.params_for(variant, overrides)  # an unknown variant or a bad --set fails here, before the model is built
    except UserError as e:  # the scenario recorded in the state: say which state holds it
        if str(state.path) in str(e):
            raise
        raise UserError(f"{state.where}: {e}") from None
    return sc, state, variant, overrides


def _toml_safe(obj):
    if isinstance(obj, dict):
        return {k: _toml_safe(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_toml_safe(v) for v in obj]
    return obj


def _progress(progress, total: float, label: str, start: float = 0.0):
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=round(total), initial=round(start), unit="sim-s", desc=label, leave=False,
                   dynamic_ncols=True)

        def cb(t):
            bar.update(round(t) - bar.n)

        return cb, bar.close
    if callable(progress):
        return (lambda t: progress(t, total)), (lambda: None)
    return None, (lambda: None)


def check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder; choose a folder path.")
