"""Exports for researchers, driven by an optional ``[outputs]`` table in the scenario.

```toml
[outputs]
snapshot_times_s = [300, 600, 900]     # agent positions at these times → exports.gpkg layer "agents"
trajectory_interval_s = 5              # every agent every 5 s → trajectories.parquet
extent_thresholds = { max_depth = 0.1 } # raster > threshold → exports.gpkg layer "max_depth_extent"
field_extents = { depth = 0.1 }         # snapshot field > threshold every field_extent_interval_s
field_extent_interval_s = 600           #   → <model>_extent.gpkg, one layer per field
```

Always written by a run (see ``twin.runner``): ``timeseries.csv``/``.parquet`` and each model raster
as GeoTIFF. With ``[outputs]``, also:

* ``exports.gpkg`` layer ``agents``: points with ``time_s``, ``agent``, ``state`` at each snapshot time
  (times after the model finished are skipped: nobody is left to draw);
* ``exports.gpkg`` layer ``<raster>_extent``: polygons where the raster exceeds the threshold
  (``rasterio.features.shapes``), with ``threshold`` and ``area_m2``;
* ``trajectories.parquet``: ``time_s, agent, x, y, state`` sampled every ``trajectory_interval_s``;
* ``<model>_extent.gpkg`` (e.g. ``flood_extent.gpkg``), one layer per field of ``field_extents``:
  polygons where the model's snapshot field exceeds the threshold, at every multiple of
  ``field_extent_interval_s`` (and the end), with ``time_s``, ``threshold`` and ``area_m2``;
* ``states/state_t<seconds>.npz``: the model's complete state at each ``state_times_s`` (and each
  ``--save-state-at``), see ``twin.core.state_file``.

``agent`` is the snapshot's stable agent id: the same person has the same id in every frame.
A run continued from a state file exports from the state's time on.

All layers are in the city CRS. Recording only reads the model (``snapshot()``) between steps, so a
run with exports gives the same numbers as one without.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core.errors import UserError, nearest
from .core.files import disk_errors, write_gpkg_layer
from .output_settings import OutputSettings


# --------------------------------------------------------------------------------------------
# Recording during a run
# --------------------------------------------------------------------------------------------
@dataclass
class Recorded:
    snapshots: list = field(default_factory=list)  # Snapshot objects at the asked times
    trajectory: list = field(default_factory=list)  # (time_s, ids, positions, states, state_names)
    extents: list = field(default_factory=list)  # (time_s, field, threshold, [polygons])


def _ids(snap) -> np.ndarray:
    return np.asarray(snap.ids, dtype=np.int64)


class Recorder:
    """Reads the model at the export times of ``settings``; ``twin.runner.Run`` tells it when.

    The model takes exactly the same steps whatever is exported (pausing never changes a model's
    trajectory), so the KPIs do not depend on the exports.
    """

    def __init__(self, settings: OutputSettings, start_s: float = 0.0):
        self.settings = settings
        self.rec = Recorded()
        eps = 1e-9
        self.snap_times = [t for t in settings.snapshot_times_s if t >= start_s - eps]
        dt = settings.trajectory_interval_s
        self.next_traj = (math.ceil(start_s / dt - eps) * dt) if dt else math.inf
        de = settings.field_extent_interval_s if settings.field_extents else None
        self.next_extent = (math.ceil(start_s / de - eps) * de) if de else math.inf

    def next_time(self) -> float:
        return min(self.snap_times[0] if self.snap_times else math.inf, self.next_traj, self.next_extent)

    def read_due(self, model) -> None:
        """Record what is due at the model's current time."""
        now, eps = model.time_s, 1e-9 * max(1.0, model.time_s)
        want_snap = bool(self.snap_times) and self.snap_times[0] <= now + eps
        want_traj = self.next_traj <= now + eps
        want_extent = self.next_extent <= now + eps or (model.done and self.settings.field_extents
                                                        and not self._extent_at(now))
        if not (want_snap or want_traj or want_extent):
            return
        snap = model.snapshot()
        while self.snap_times and self.snap_times[0] <= now + eps:
            self.snap_times.pop(0)
            self.rec.snapshots.append(snap)
        if want_traj:
            self.rec.trajectory.append((float(snap.time_s), _ids(snap), np.array(snap.positions, dtype=np.float64),
                                        np.array(snap.states), tuple(snap.state_names)))
            dt = self.settings.trajectory_interval_s
            while self.next_traj <= now + eps:
                self.next_traj += dt
        if want_extent:
            for name, threshold in self.settings.field_extents.items():
                if name in snap.fields:
                    self.rec.extents.append((float(snap.time_s), name, threshold,
                                             extent_geometries(snap.fields[name], threshold)))
            de = self.settings.field_extent_interval_s
            while self.next_extent <= now + eps:
                self.next_extent += de

    def _extent_at(self, t: float) -> bool:
        return any(abs(e[0] - t) <= 1e-9 * max(1.0, t) for e in self.rec.extents)


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


def extent_geometries(grid, threshold: float) -> list:
    """Polygons (shapely, city CRS) where ``grid`` exceeds ``threshold``."""
    from rasterio.features import shapes
    from shapely.geometry import shape

    values = np.asarray(grid.plane(), dtype=np.float32)  # several floor levels: where any exceeds it
    mask = np.isfinite(values) & (values > threshold)
    return [shape(g) for g, v in shapes(mask.astype(np.uint8), mask=mask, transform=grid.transform()) if v == 1]


def extent_polygons(grid, threshold: float, crs):
    """Polygons where ``grid`` exceeds ``threshold`` (cells in the city CRS)."""
    import geopandas as gpd

    geoms = extent_geometries(grid, threshold)
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


def write_exports(result, settings: OutputSettings, crs, folder: Path, model_name: str = "model") -> list[Path]:
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
            write_gpkg_layer(gdf, gpkg, layer)
        written.append(gpkg)
    if rec is not None and rec.extents:
        import geopandas as gpd

        gpkg = folder / f"{model_name}_extent.gpkg"
        for name in dict.fromkeys(e[1] for e in rec.extents):
            rows = [(t, th, g) for t, f, th, geoms in rec.extents if f == name for g in geoms]
            gdf = gpd.GeoDataFrame({"time_s": [r[0] for r in rows], "threshold": [r[1] for r in rows],
                                    "area_m2": [r[2].area for r in rows]}, geometry=[r[2] for r in rows], crs=crs)
            write_gpkg_layer(gdf, gpkg, name)
        written.append(gpkg)
    if rec is not None and settings.trajectory_interval_s is not None:
        path = folder / "trajectories.parquet"
        with disk_errors(path):
            trajectory_table(rec).to_parquet(path, index=False)
        written.append(path)
    return written
