"""Exports for researchers, driven by an optional ``[outputs]`` table in the scenario.

```toml
[outputs]
snapshot_times_s = [300, 600, 900]     # agent positions at these times → exports.gpkg layer "agents"
trajectory_interval_s = 5              # every agent every 5 s → trajectories.parquet
extent_thresholds = { max_depth = 0.1 } # raster > threshold → exports.gpkg layer "max_depth_extent"
field_extents = { depth = 0.1 }         # snapshot field > threshold every field_extent_interval_s
field_extent_interval_s = 600           #   → <model>_extent.gpkg, one layer per field
```

Always written by a run (see ``twin.runs.runner``): ``timeseries.csv``/``.parquet`` and each model raster
as GeoTIFF. With ``[outputs]``, also:

* ``exports.gpkg`` layer ``agents``: points with ``time_s``, ``agent``, ``state`` at each snapshot time
  (times after the model finished are skipped: nobody is left to draw);
* ``exports.gpkg`` layer ``<raster>_extent``: polygons where the raster exceeds the threshold
  (``rasterio.features.shapes``), with ``threshold`` and ``area_m2``;
* ``trajectories.parquet`` (``time_s, agent, x, y, state, level``) and, for a model with walkable
  areas, ``trajectories_level<k>.sqlite`` (JuPedSim's format, which PedPy reads; not with
  ``trajectory_sqlite = false``), sampled every ``trajectory_interval_s`` (``twin.runs.trajectory_files``);
* ``fields.nc`` (or ``fields.zarr``): the ``fields`` every ``field_interval_s`` (``twin.runs.field_series``);
* ``features.parquet``: every per-feature value every ``feature_interval_s`` (``twin.runs.feature_series``);
* ``<model>_extent.gpkg`` (e.g. ``flood_extent.gpkg``), one layer per field of ``field_extents``:
  polygons where the model's snapshot field exceeds the threshold, at every multiple of
  ``field_extent_interval_s`` (and the end), with ``time_s``, ``threshold`` and ``area_m2``;
* ``states/state_t<seconds>.npz``: the model's complete state at each ``state_times_s`` (and each
  ``--save-state-at``), see ``twin.core.state_file``.

``agent`` is the snapshot's stable agent id: the same person has the same id in every frame.
A run continued from a state file exports from the state's time on.

All layers are in the city CRS. Recording only reads the model (``snapshot()``) between steps, so a
run with exports gives the same numbers as one without. Fields, trajectories and feature values are
written while the run goes (``Streams``: a staging folder beside the run folder, nothing held in
memory but the current frame), and copied into the run folder with the rest when it is written.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twin.core.errors import UserError, nearest
from twin.core.files import disk_errors, write_gpkg_layer
from twin.scenario.output_settings import OutputSettings


# --------------------------------------------------------------------------------------------
# Recording during a run
# --------------------------------------------------------------------------------------------
@dataclass
class Recorded:
    snapshots: list = field(default_factory=list)  # Snapshot objects at the asked times
    extents: list = field(default_factory=list)  # (time_s, field, threshold, [polygons])


def _ids(snap) -> np.ndarray:
    return np.asarray(snap.ids, dtype=np.int64)


class Recorder:
    """Reads the model at the export times of ``settings``; ``twin.runs.runner.Run`` tells it when.

    The model takes exactly the same steps whatever is exported (pausing never changes a model's
    trajectory), so the KPIs do not depend on the exports.
    """

    def __init__(self, settings: OutputSettings, start_s: float = 0.0, streams: "Streams | None" = None):
        self.settings = settings
        self.rec = Recorded()
        self.streams = streams
        eps = 1e-9
        self.snap_times = [t for t in settings.snapshot_times_s if t >= start_s - eps]

        def first(dt):  # the first multiple of dt at or after the start (a continued run goes on from there)
            return (math.ceil(start_s / dt - eps) * dt) if dt else math.inf

        self.next_traj = first(settings.trajectory_interval_s)
        self.next_extent = first(settings.field_extent_interval_s if settings.field_extents else None)
        self.next_fields = first(settings.field_interval_s if settings.fields else None)
        self.next_features = first(settings.feature_interval_s)
        self._last_fields = self._last_features = -math.inf

    def next_time(self) -> float:
        return min(self.snap_times[0] if self.snap_times else math.inf, self.next_traj, self.next_extent,
                   self.next_fields, self.next_features)

    def read_due(self, model) -> None:
        """Record what is due at the model's current time (fields, feature values and extents also
        at the end of the run)."""
        now, eps = model.time_s, 1e-9 * max(1.0, model.time_s)
        st = self.settings
        want_snap = bool(self.snap_times) and self.snap_times[0] <= now + eps
        want_traj = self.next_traj <= now + eps
        want_extent = self.next_extent <= now + eps or (model.done and st.field_extents and not self._extent_at(now))
        want_fields = bool(st.fields) and (self.next_fields <= now + eps or model.done) and self._last_fields < now - eps
        want_features = (st.feature_interval_s is not None and (self.next_features <= now + eps or model.done)
                         and self._last_features < now - eps)
        if not (want_snap or want_traj or want_extent or want_fields or want_features):
            return
        # trajectories alone (4 frames/s of thousands of agents) need only where the agents are
        snap = model.agents() if not (want_snap or want_extent or want_fields or want_features) else model.snapshot()
        while self.snap_times and self.snap_times[0] <= now + eps:
            self.snap_times.pop(0)
            self.rec.snapshots.append(snap)
        if want_traj:
            self.streams.trajectories.append(float(snap.time_s), _ids(snap), snap.positions, snap.states,
                                             snap.state_names, snap.level)
            self.next_traj = _after(self.next_traj, st.trajectory_interval_s, now + eps)
        if want_extent:
            for name, threshold in st.field_extents.items():
                if name in snap.fields:
                    self.rec.extents.append((float(snap.time_s), name, threshold,
                                             extent_geometries(snap.fields[name], threshold)))
            self.next_extent = _after(self.next_extent, st.field_extent_interval_s, now + eps)
        if want_fields:
            self.streams.fields.append(float(now), model.field_values(st.fields, snap))
            self._last_fields = now
            self.next_fields = _after(self.next_fields, st.field_interval_s, now + eps)
        if want_features:
            self.streams.features.append(float(now), snap.features)
            self._last_features = now
            self.next_features = _after(self.next_features, st.feature_interval_s, now + eps)

    def _extent_at(self, t: float) -> bool:
        return any(abs(e[0] - t) <= 1e-9 * max(1.0, t) for e in self.rec.extents)


def _after(t: float, dt: float, now: float) -> float:
    while t <= now:
        t += dt
    return t


class Streams:
    """The files a run writes while it goes: fields over time, trajectories, feature values.

    They grow in a private staging folder (beside the run folder when it is known, so that the
    final copy is a hard link); ``close()`` finishes them when the run ends, and the run folder
    writer (``twin.runs.runner.write_run``) copies them in with the rest, so the run folder still
    appears all at once. The staging folder goes when this object does.
    """

    def __init__(self, settings: OutputSettings, model, crs, provenance: dict, near: Path | None = None):
        from twin.runs.feature_series import FeatureRecorder
        from twin.runs.field_series import FieldSeriesWriter, start_datetime
        from twin.runs.trajectory_files import TrajectoryWriter

        if near is not None:
            Path(near).mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=".citytwin-streams.", suffix=".partial", dir=near))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.dir), True)
        self.model, self.crs, self.provenance = model, crs, provenance
        cls = type(model)
        self.fields = self.trajectories = self.features = None
        if settings.fields:
            name = "fields.zarr" if settings.format == "zarr" else "fields.nc"
            self.fields = FieldSeriesWriter(self.dir / name, settings.format, {f.name: f for f in cls.field_styles},
                                            crs, start_datetime(settings.start_time, model.clock_start_s),
                                            {**provenance, "title": f"{cls.title or cls.name}: fields over time"})
        if settings.trajectory_interval_s is not None:
            self.trajectories = TrajectoryWriter(self.dir, settings.trajectory_interval_s, model.walkable_areas(),
                                                 cls.state_names, provenance, sqlite=settings.trajectory_sqlite)
        if settings.feature_interval_s is not None:
            self.features = FeatureRecorder(cls.feature_styles)
        self.files: list[Path] = []
        self.closed = False

    def __bool__(self) -> bool:
        return any(w is not None for w in (self.fields, self.trajectories, self.features))

    def close(self) -> list[Path]:
        """Finish every file (once); returns them."""
        if self.closed:
            return self.files
        self.closed = True
        if self.fields is not None:
            self.fields.close()
            if self.fields.frames:
                self.files.append(self.fields.path)
        if self.trajectories is not None:
            self.files += self.trajectories.close()
        if self.features is not None:
            path = self.dir / "features.parquet"
            self.features.write(path, self.model.city, self.crs, self.provenance)
            self.files.append(path)
        return self.files

    def release(self) -> None:
        """Remove the staging folder now (the files are in the run folder)."""
        self.close()
        self._cleanup()

    def copy_into(self, folder: Path) -> list[Path]:
        """Hard-link (or copy, across file systems) the finished files into ``folder``."""
        out = []
        for src in self.close():
            dst = Path(folder) / src.name
            if src.is_dir():
                shutil.copytree(src, dst, copy_function=_link_or_copy)
            else:
                _link_or_copy(src, dst)
            out.append(dst)
        return out


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


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


def write_exports(result, settings: OutputSettings, crs, folder: Path, model_name: str = "model",
                  provenance: dict | None = None) -> list[Path]:
    """Write the ``[outputs]`` exports of one run into ``folder`` (a run's temporary folder), with the
    run's ``provenance`` in every GeoPackage layer's metadata."""
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
            write_gpkg_layer(gdf, gpkg, layer, provenance)
        written.append(gpkg)
    if rec is not None and rec.extents:
        import geopandas as gpd

        gpkg = folder / f"{model_name}_extent.gpkg"
        for name in dict.fromkeys(e[1] for e in rec.extents):
            rows = [(t, th, g) for t, f, th, geoms in rec.extents if f == name for g in geoms]
            gdf = gpd.GeoDataFrame({"time_s": [r[0] for r in rows], "threshold": [r[1] for r in rows],
                                    "area_m2": [r[2].area for r in rows]}, geometry=[r[2] for r in rows], crs=crs)
            write_gpkg_layer(gdf, gpkg, name, provenance)
        written.append(gpkg)
    streams: Streams | None = getattr(result, "streams", None)
    if streams is not None:
        written += streams.copy_into(folder)
    return written
