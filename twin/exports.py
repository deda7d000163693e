"""Exports for researchers, driven by an optional ``[outputs]`` table in the scenario.

```toml
[outputs]
snapshot_times_s = [300, 600, 900]     # agent positions at these times → exports.gpkg layer "agents"
trajectory_interval_s = 5              # every agent every 5 s → trajectories.parquet
extent_thresholds = { max_depth = 0.1 } # raster > threshold → exports.gpkg layer "max_depth_extent"
```

Always written by a run (see ``twin.runner``): ``timeseries.csv``/``.parquet`` and each model raster
as GeoTIFF. With ``[outputs]``, also:

* ``exports.gpkg`` layer ``agents``: points with ``time_s``, ``agent``, ``state`` at each snapshot time
  (times after the model finished are skipped: nobody is left to draw);
* ``exports.gpkg`` layer ``<raster>_extent``: polygons where the raster exceeds the threshold
  (``rasterio.features.shapes``), with ``threshold`` and ``area_m2``;
* ``trajectories.parquet``: ``time_s, agent, x, y, state`` sampled every ``trajectory_interval_s``.

``agent`` is the snapshot's ``ids`` when the model provides them, else the agent's row in the
snapshot (stable only for models whose agents keep their row).

All layers are in the city CRS. Recording only reads the model (``snapshot()``) between steps, so a
run with exports gives the same numbers as one without.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .core.errors import UserError, nearest

OUTPUT_KEYS = {"snapshot_times_s", "trajectory_interval_s", "extent_thresholds"}


@dataclass(frozen=True)
class OutputSettings:
    snapshot_times_s: tuple[float, ...] = ()
    trajectory_interval_s: float | None = None
    extent_thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def records(self) -> bool:
        """True when the run must pause to read the model (snapshots or trajectories)."""
        return bool(self.snapshot_times_s) or self.trajectory_interval_s is not None

    def __bool__(self) -> bool:
        return self.records or bool(self.extent_thresholds)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_outputs(table: Any, where: str, duration_s: float) -> OutputSettings:
    """Validate the ``[outputs]`` table; errors name the key and say how to write it."""
    if table is None:
        return OutputSettings()
    w = f"{where} [outputs]"
    if not isinstance(table, dict):
        raise UserError(f"{w}: must be a table, e.g. [outputs] with snapshot_times_s = [300, 600].")
    for key in table:
        if key not in OUTPUT_KEYS:
            raise UserError(f'{w}: unknown key "{key}"{nearest(key, OUTPUT_KEYS)}; allowed: '
                            f"{', '.join(sorted(OUTPUT_KEYS))}.")
    times = table.get("snapshot_times_s", [])
    if _is_number(times):
        times = [times]
    if not isinstance(times, list) or not all(_is_number(t) for t in times):
        raise UserError(f"{w} snapshot_times_s: give a list of times in seconds, e.g. [300, 600], not {times!r}.")
    bad = [t for t in times if t < 0 or t > duration_s]
    if bad:
        raise UserError(f"{w} snapshot_times_s: {bad[0]} s is outside the run (0 to duration_s = {duration_s:g} s).")
    interval = table.get("trajectory_interval_s")
    if interval is not None and (not _is_number(interval) or interval <= 0):
        raise UserError(f"{w} trajectory_interval_s: must be a positive number of seconds, not {interval!r}.")
    thresholds = table.get("extent_thresholds", {})
    if not isinstance(thresholds, dict):
        raise UserError(f"{w} extent_thresholds: write a table of raster = threshold, e.g. "
                        f"{{ max_depth = 0.1 }}, not {thresholds!r}.")
    for k, v in thresholds.items():
        if not _is_number(v):
            raise UserError(f"{w} extent_thresholds.{k}: the threshold must be a number, not {v!r}.")
    return OutputSettings(tuple(sorted(float(t) for t in set(times))),
                          float(interval) if interval is not None else None,
                          {str(k): float(v) for k, v in thresholds.items()})


# --------------------------------------------------------------------------------------------
# Recording during a run
# --------------------------------------------------------------------------------------------
@dataclass
class Recorded:
    snapshots: list = field(default_factory=list)  # Snapshot objects at the asked times
    trajectory: list = field(default_factory=list)  # (time_s, ids, positions, states, state_names)


def _ids(snap) -> np.ndarray:
    ids = getattr(snap, "ids", None)
    return np.asarray(ids) if ids is not None else np.arange(len(snap.positions))


def drive(model, settings: OutputSettings, progress: Callable[[float], None] | None = None) -> Recorded:
    """Run ``model`` to the end like ``run_to_end``, pausing to read snapshots at the asked times.

    The model takes exactly the same steps as in ``run_to_end`` (``advance_to`` only decides where
    to pause), so the KPIs do not depend on what is exported.
    """
    rec = Recorded()
    snap_times = list(settings.snapshot_times_s)
    dt = settings.trajectory_interval_s
    next_traj = 0.0 if dt else math.inf
    eps = 1e-9
    model.advance_to(0.0)  # records the first time-series row
    while True:
        now = model.time_s
        want_snap = bool(snap_times) and snap_times[0] <= now + eps
        want_traj = next_traj <= now + eps
        if want_snap or want_traj:
            snap = model.snapshot()
            while snap_times and snap_times[0] <= now + eps:
                snap_times.pop(0)
                rec.snapshots.append(snap)
            if want_traj:
                rec.trajectory.append((float(snap.time_s), _ids(snap), np.array(snap.positions, dtype=np.float64),
                                       np.array(snap.states), tuple(snap.state_names)))
                while next_traj <= now + eps:
                    next_traj += dt
        if now >= model.duration_s - eps or model.finished:
            break
        target = min(now + model.report_interval_s, snap_times[0] if snap_times else math.inf, next_traj)
        model.advance_to(target)
        if progress is not None:
            progress(model.time_s)
    return rec


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def snapshot_points(snapshots, crs):
    import geopandas as gpd

    frames = []
    for s in snapshots:
        pos = np.asarray(s.positions, dtype=float).reshape(-1, 2)
        names = np.asarray(s.state_names, dtype=object)
        states = np.asarray(s.states, dtype=int)
        frames.append(gpd.GeoDataFrame(
            {"time_s": np.full(len(pos), float(s.time_s)), "agent": _ids(s),
             "state": names[states] if len(names) else states.astype(str)},
            geometry=gpd.points_from_xy(pos[:, 0], pos[:, 1]), crs=crs))
    if not frames:
        return None
    import pandas as pd

    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=crs)


def extent_polygons(grid, threshold: float, crs):
    """Polygons where ``grid`` exceeds ``threshold`` (cells in the city CRS)."""
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    values = np.asarray(grid.values, dtype=np.float32)
    mask = np.isfinite(values) & (values > threshold)
    geoms = [shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, transform=grid.transform()) if v == 1]
    return gpd.GeoDataFrame({"field": [grid.name] * len(geoms), "threshold": [threshold] * len(geoms),
                             "area_m2": [g.area for g in geoms]}, geometry=geoms, crs=crs)


def trajectory_table(rec: Recorded):
    import pandas as pd

    parts = []
    for t, ids, pos, states, names in rec.trajectory:
        names_a = np.asarray(names, dtype=object)
        parts.append(pd.DataFrame({"time_s": np.full(len(pos), t), "agent": ids, "x": pos[:, 0].astype(float),
                                   "y": pos[:, 1].astype(float),
                                   "state": names_a[states.astype(int)] if len(names_a) else states}))
    if not parts:
        return pd.DataFrame(columns=["time_s", "agent", "x", "y", "state"])
    df = pd.concat(parts, ignore_index=True)
    df["state"] = df["state"].astype("category")
    return df


def write_exports(result, settings: OutputSettings, crs, folder: Path) -> list[Path]:
    """Write the ``[outputs]`` exports of one run into ``folder`` (a run's temporary folder)."""
    if not settings:
        return []
    folder = Path(folder)
    written = []
    rec: Recorded | None = getattr(result, "exports", {}).get("recorded") if isinstance(result.exports, dict) else None
    layers = []
    if rec is not None and rec.snapshots:
        pts = snapshot_points(rec.snapshots, crs)
        if pts is not None and len(pts):
            layers.append(("agents", pts))
    for name, threshold in settings.extent_thresholds.items():
        if name not in result.rasters:
            raise UserError(f'[outputs] extent_thresholds.{name}: the model writes no raster "{name}"'
                            f"{nearest(name, result.rasters)}; its rasters are: "
                            f"{', '.join(result.rasters) or 'none'}.")
        poly = extent_polygons(result.rasters[name], threshold, crs)
        if len(poly):
            layers.append((f"{name}_extent", poly))
    if layers:
        gpkg = folder / "exports.gpkg"
        for layer, gdf in layers:
            gdf.to_file(gpkg, layer=layer, driver="GPKG")
        written.append(gpkg)
    if rec is not None and settings.trajectory_interval_s is not None:
        path = folder / "trajectories.parquet"
        trajectory_table(rec).to_parquet(path, index=False)
        written.append(path)
    return written
