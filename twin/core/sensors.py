"""The city's sensors (docs/city_package.md, "sensors"): what each one measures and how a model's
outputs would read it.

A sensor is a point with an ``id``, a ``kind`` (the city's word for what it is: people_counter,
road_report, ...), the ``unit`` it reports in, its noise
(``noise_sd``, one standard deviation in that unit) and how often it reports (``interval_s``). What
it observes is named by the model's own declarations, never by the platform:

- ``layer`` + ``feature`` + ``value``: a per-feature value (a model's ``FeatureStyle`` on that
  layer, e.g. gates / E1 / exited) or an entry of a keyed KPI whose keys are that layer's ids
  (pois / A1 / attraction_occupancy);
- ``value`` alone: a field (``FieldStyle``, e.g. depth) sampled at the sensor, averaged over
  ``radius_m``, on floor ``level`` where the field has one band per level;
- ``value`` naming a forcing a model declares (``Forcing.quantity``, e.g. rain_mm_per_h): the
  sensor measures an input, which live mode feeds to the model.

``mode`` ``count`` turns a cumulative value (people through a gate so far) into what a counter
reports: the increase over its last interval. ``level`` (the default) reports the value now.

The layer is ``sensors`` in city.gpkg, or ``sensors.geojson`` beside it (a file an agency can edit
without a GIS; city.toml ``[city.files] sensors = "..."`` names another).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError

LAYER = "sensors"
DEFAULT_FILE = "sensors.geojson"
COLUMNS = ("id", "kind", "value", "unit")
DEFAULTS = {"layer": "", "feature": "", "noise_sd": 0.0, "interval_s": 60.0, "mode": "level", "radius_m": 0.0,
            "level": 0, "name": ""}
MODES = ("level", "count")


@dataclass(frozen=True)
class Sensor:
    id: str
    kind: str
    x: float
    y: float
    value: str
    unit: str
    layer: str = ""
    feature: str = ""
    noise_sd: float = 0.0
    interval_s: float = 60.0
    mode: str = "level"
    radius_m: float = 0.0
    level: int = 0
    name: str = ""

    @property
    def observes(self) -> str:
        """``gates/E1/exited``, or ``depth`` for a field or forcing: for listings and messages."""
        return f"{self.layer}/{self.feature}/{self.value}" if self.layer else self.value


def sensors_source(city) -> tuple[Path, str | None] | None:
    """Where a city keeps its sensors: (file, layer name) or None when it has none."""
    import pyogrio

    root = Path(city.root) if city.root is not None else None
    name = (city.meta.get("files") or {}).get("sensors") if isinstance(city.meta, dict) else None
    if name and root is not None:
        return root / name, None
    gpkg = getattr(city, "gpkg", None)
    if gpkg is not None and LAYER in {n for n, _ in pyogrio.list_layers(gpkg)}:
        return Path(gpkg), LAYER
    if root is not None and (root / DEFAULT_FILE).is_file():
        return root / DEFAULT_FILE, None
    return None


def read_sensors(city) -> list[Sensor]:
    """The city's sensors, checked (ids unique, numbers finite and sensible, points); [] when none."""
    import geopandas as gpd

    if LAYER in getattr(city, "layers", {}):  # a city built in memory
        return sensors_from_frame(city.layers[LAYER], f"{city.name}, layer sensors", city.crs)
    src = sensors_source(city)
    if src is None:
        return []
    path, layer = src
    where = f"{path}" + (f", layer {layer!r}" if layer else "")
    if not path.is_file():
        raise UserError(f"{where}: no such file; city.toml [city.files] sensors names it. Put the sensors "
                        "layer there or remove the key.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gdf = gpd.read_file(path, layer=layer) if layer else gpd.read_file(path)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{where}: cannot be read as a sensors layer ({msg}).") from None
    return sensors_from_frame(gdf, where, city.crs)


def sensors_from_frame(gdf, where: str, crs) -> list[Sensor]:
    if gdf.crs is None:
        raise UserError(f"{where}: the layer has no CRS; save it with the city's CRS ({crs.to_string()}).")
    gdf = gdf.to_crs(crs) if gdf.crs != crs else gdf
    missing = [c for c in COLUMNS if c not in gdf.columns]
    if missing:
        raise UserError(f"{where}: column(s) {', '.join(missing)} missing; a sensor needs id, kind, value (what it "
                        "observes) and unit (docs/city_package.md).")
    out, seen = [], set()
    for i, row in enumerate(gdf.itertuples(index=False)):
        r = row._asdict()
        sid = _text(r["id"])
        what = f"{where}: sensor {sid or i!r}"
        if not sid:
            raise UserError(f"{where}: feature {i} has no id; give every sensor a unique id.")
        if sid in seen:
            raise UserError(f"{where}: the id {sid!r} is used twice; sensor ids must be unique.")
        seen.add(sid)
        g = r["geometry"]
        if g is None or g.is_empty or g.geom_type != "Point":
            raise UserError(f"{what}: its geometry must be a point (where the sensor stands).")
        vals = {k: (r.get(k) if r.get(k) is not None and not _missing(r.get(k)) else d) for k, d in DEFAULTS.items()}
        try:
            noise, interval = float(vals["noise_sd"]), float(vals["interval_s"])
            radius, level = float(vals["radius_m"]), int(vals["level"])
        except (TypeError, ValueError):
            raise UserError(f"{what}: noise_sd, interval_s, radius_m and level must be numbers.") from None
        if not (np.isfinite(noise) and noise >= 0):
            raise UserError(f"{what}: noise_sd = {noise!r}; give a standard deviation >= 0 in the sensor's unit.")
        if not (np.isfinite(interval) and interval > 0):
            raise UserError(f"{what}: interval_s = {interval!r}; give how often it reports, in seconds (> 0).")
        if not (np.isfinite(radius) and radius >= 0):
            raise UserError(f"{what}: radius_m = {radius!r}; give a radius >= 0 in metres.")
        mode = _text(vals["mode"]) or "level"
        if mode not in MODES:
            raise UserError(f"{what}: mode = {mode!r}; it is one of {', '.join(MODES)}.")
        value = _text(r["value"])
        if not value:
            raise UserError(f"{what}: value is empty; name what it observes (a model's per-feature value, field, "
                            "keyed KPI or forcing).")
        layer, feature = _text(vals["layer"]), _text(vals["feature"])
        if bool(layer) != bool(feature):
            raise UserError(f"{what}: give both layer and feature (the feature it observes, or * when each message "
                            "names its feature) or neither.")
        out.append(Sensor(sid, _text(r["kind"]), float(g.x), float(g.y), value, _text(r["unit"]), layer, feature,
                          noise, interval, mode, radius, level, _text(vals["name"])))
    return out


def _missing(v) -> bool:
    try:
        return bool(np.isnan(v))
    except (TypeError, ValueError):
        return False


def _text(v) -> str:
    if v is None or _missing(v):
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def sensors_frame(sensors: list[Sensor], crs):
    """The sensors as a GeoDataFrame of points (to write a sensors layer)."""
    import geopandas as gpd
    from shapely.geometry import Point

    rows = [{k: getattr(s, k) for k in ("id", "kind", "name", "layer", "feature", "value", "unit", "noise_sd",
                                        "interval_s", "mode", "radius_m", "level")} for s in sensors]
    return gpd.GeoDataFrame(rows, geometry=[Point(s.x, s.y) for s in sensors], crs=crs)


def describe(sensors: list[Sensor]) -> list[str]:
    """Lines for ``citytwin city info``: counts per kind, then one line per sensor."""
    if not sensors:
        return []
    kinds: dict[str, int] = {}
    for s in sensors:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    lines = [f"Sensors   {len(sensors)}: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))]
    for s in sensors:
        noise = f"± {s.noise_sd:g} {s.unit}" if s.noise_sd else "exact"
        every = f"every {s.interval_s:g} s" + (" (count per interval)" if s.mode == "count" else "")
        lines.append(f"  {s.id:10s} {s.kind:18s} {s.observes:32s} {s.unit:10s} {noise:14s} {every}")
    return lines
