"""The contract between the platform and a simulation model (docs/models.md says how to add one).

A model is a Mesa model that declares, in one place, its parameters, its KPIs, the city layers it
needs (and any extra layers it reads), how the view draws its fields and per-feature values, and
its area of interest. The CLI (`citytwin models`), the GUI, the scenario validator, the reports
and the docs all read these declarations: nothing outside a model's folder knows its name.

Time
    The runner asks ``advance_to(t)``; the model takes whatever internal steps it needs (fixed,
    adaptive or event-driven, in ``_advance``) and lands exactly on ``t``. Mesa's clock
    (``self.time``) is the model clock, in seconds; ``self.steps`` counts internal steps. Pause
    points never change a model's trajectory: a model that cannot land anywhere declares its
    ``time_quantum_s`` (a fixed-step model: its step) and every target is moved up onto that grid.
    Time-series rows are recorded at ``k × report_interval_s`` exactly, and at the end.

State
    ``get_state()`` returns the whole dynamic state (the attributes listed in ``state_attrs``, the
    clock, the random generators and the time series so far) as numpy arrays plus JSON values;
    ``set_state()`` puts it back into a model freshly built from the same city, parameters and
    seed (the static part). ``twin.core.state_file`` writes it to disk (docs/state_file.md).
    ``state_specs`` declares what each entry may hold (``StateSpec``): a state file from elsewhere
    is checked against it before any kernel sees its arrays.
"""
from __future__ import annotations

import copy
import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import mesa
import numpy as np

from .errors import UserError, nearest
from .files import sha256_file
from .grid import GridField
from .mesa_adapter import take_over_stepping
from .params import FilePath, Numbers, Param, Series, TimeSeries, plain_value, validate_params

__all__ = ["KPI", "AlertRule", "BuildingUse", "CityImportHook", "CityModel", "DrawingKind", "Correctable", "Exchange", "Forcing", "splice_series", "ImportOption", "LayerView", "OsmAreas", "PoiKind", "StateSpec", "ColumnSpec", "FeatureFrame", "FeatureStyle", "FieldStyle", "FilePath", "LayerSpec", "Numbers",
           "Param", "Series", "Snapshot", "TimeSeries", "validate_params"]


@dataclass(frozen=True)
class KPI:
    """One key performance indicator.

    ``per_step`` KPIs also appear in the time series. A ``keyed`` KPI's value is ``{key: number}``
    (per gate, per attraction); in the time series it becomes one column per key, ``name.key``.
    """

    name: str
    unit: str
    doc: str
    headline: bool = False
    per_step: bool = True
    better: str | None = None  # "lower" | "higher" | None: which direction is an improvement (reports)
    keyed: bool = False


@dataclass(frozen=True)
class FieldStyle:
    """How the view draws one of the model's fields (``Snapshot.fields`` and ``rasters``).

    ``kind``: ``heat`` (a heat layer over the ground), ``surface`` (a surface over the terrain
    that reaches the walls of the buildings beside it) or ``scalar`` (a plain colour map;
    ``difference`` is the view's own, for intervention − baseline). ``bands`` are thresholds for stepped colours (with
    ``colours``, one more than ``bands``); values at or below ``cutoff`` are not drawn.
    """

    name: str
    unit: str
    doc: str
    kind: str = "scalar"
    cmap: str = "viridis"
    clim: tuple[float, float] | None = None
    bands: tuple[float, ...] = ()
    colours: tuple[str, ...] = ()
    shader: str | None = None  # "banded_heat" or "rippled_surface" (shaders/); None: the colour map only
    cutoff: float = 0.0

    def __post_init__(self):
        if self.kind not in FIELD_KINDS:
            raise UserError(f'FieldStyle "{self.name}": kind "{self.kind}"{nearest(self.kind, FIELD_KINDS)} is not one '
                            f'the view draws; use one of {", ".join(FIELD_KINDS)}.')


FIELD_KINDS = ("scalar", "heat", "surface", "difference")


@dataclass(frozen=True)
class FeatureStyle:
    """A value the model reports per feature of a city layer (``Snapshot.features``).

    ``kind`` ``number`` is drawn with ``cmap`` over ``clim``; ``state`` holds codes into ``states``
    drawn with ``colours``. ``label`` asks the view to write the value beside the feature.
    """

    layer: str
    name: str
    unit: str
    doc: str
    kind: str = "number"
    cmap: str = "viridis"
    clim: tuple[float, float] | None = None
    states: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()
    label: bool = False


ALERT_LEVELS = ("ok", "amber", "red")


@dataclass(frozen=True)
class AlertRule:
    """A threshold the command room watches (docs/command_room.md); a scenario's ``[alerts]`` table
    edits a model's rules by ``name`` or adds its own.

    What it watches: a KPI (``kpi``; a keyed KPI alerts per key, and when ``layer`` names the city
    layer whose ids are the keys, each key is placed at its feature) or a per-feature value
    (``layer`` + ``value``, a declared ``FeatureStyle``: every feature alerts on its own).
    Levels: amber from ``amber``, red from ``red``; ``direction`` "above" means a value at or above
    a threshold crosses it, "below" one at or below. Where the view marks it: the feature; for a
    plain KPI, the highest cell of ``field`` when given (e.g. the densest place), else nowhere.
    """

    name: str
    doc: str
    amber: float
    red: float
    kpi: str = ""
    layer: str = ""
    value: str = ""
    field: str = ""
    direction: str = "above"  # "above" | "below"
    unit: str = ""

    def level(self, v: float) -> int:
        """0 (ok), 1 (amber) or 2 (red) for a value; NaN is ok."""
        if v is None or not math.isfinite(v):
            return 0
        if self.direction == "below":
            return 2 if v <= self.red else 1 if v <= self.amber else 0
        return 2 if v >= self.red else 1 if v >= self.amber else 0

    @property
    def source(self) -> str:
        """``kpi NAME`` or ``LAYER.VALUE``, for messages and the alert log."""
        return f"kpi {self.kpi}" if self.kpi else f"{self.layer}.{self.value}"


@dataclass(frozen=True)
class Forcing:
    """An input of the model that a live feed may measure (docs/live.md): measured rain, a train's
    delay, a road the police closed. A sensor whose ``value`` is ``quantity`` drives it: live mode
    hands the readings so far to ``CityModel.forced_parameters``, which answers with new values of
    ``params``; the run then continues from its current state with them (as ``run --from-state
    --set``), so a forcing acts from the time it was measured on. ``layer``: the layer whose
    features the readings name (roads for closures), "" when a reading concerns the whole city."""

    quantity: str
    unit: str
    doc: str
    params: tuple[str, ...]
    layer: str = ""


def splice_series(planned, readings) -> list[list[float]]:
    """A step series (``[[t_s, value], ...]``, each value holding until the next time) that follows
    ``planned`` until the first reading and the readings from then on (several readings at one
    time: their mean). For a forcing whose measurement replaces the forecast from its time on."""
    by_t: dict[float, list[float]] = {}
    for t, v in readings:
        by_t.setdefault(float(t), []).append(float(v))
    measured = [[t, sum(v) / len(v)] for t, v in sorted(by_t.items())]
    if not measured:
        return [[float(t), float(v)] for t, v in planned]
    first = measured[0][0]
    out: list[list[float]] = []
    for t, v in [[float(t), float(v)] for t, v in planned if t < first] + measured:
        if not out or out[-1][1] != v:  # a value that holds on is no new step
            out.append([t, v])
    return out


@dataclass(frozen=True)
class Exchange:
    """A quantity a model hands to other models of a coupled run, or takes from them
    (``CityModel.publishes`` / ``accepts``; docs/coupling.md).

    ``name`` is shared by the publisher and the models that accept it, in Landlab's
    ``object__quantity`` form (``topographic__elevation``): the platform matches the two by this
    name and never by the models' names. ``kind``: ``field`` (a ``GridField`` over the city) or
    ``features`` (a ``FeatureFrame`` of per-feature values on the city layer ``layer``).
    """

    name: str
    kind: str  # "field" | "features"
    unit: str
    doc: str
    layer: str = ""


@dataclass(frozen=True)
class LayerSpec:
    """An extra city layer a model reads: a vector layer of ``city.gpkg`` or a raster file."""

    name: str
    kind: str  # "vector" | "raster"
    doc: str
    geometry: str = "any"  # vector: Point, LineString, Polygon or any
    columns: tuple[str, ...] = ()  # vector: columns every feature must have
    required: bool = False
    # A layer of the city package the model defines (``city_layers``): the
    # importer recognises it by these names, fills these optional columns, and the view and the
    # package reader treat it like the platform's own layers.
    aliases: tuple[str, ...] = ()  # other layer names (lower case, no punctuation) the importer takes for it
    defaults: tuple[tuple[str, Any], ...] = ()  # optional columns: (name, default)
    levels: bool = False  # holds a floor ``level`` column (0 = street level)
    ids_required: bool = False  # every feature needs an id in the source (scenarios name them)
    id_prefix: str = ""  # ids the importer gives features without one: f"{id_prefix}_{n}"
    # ids the package reader gives the features of a file without an id column: f"{generated_ids}00001", …
    # in file order (stable while the file is unchanged); "": none
    generated_ids: str = ""
    numbers: tuple[str, ...] = ()  # columns whose values must be numbers
    counts: tuple[str, ...] = ()  # columns whose values must be finite and 0 or more
    # a polygon that crosses itself (a bow-tie) is refused rather than repaired: the repair would
    # split it into pieces touching at single points, and nothing could pass between them (a floor)
    whole_polygons: bool = False


@dataclass(frozen=True)
class BuildingUse:
    """A building use (``buildings.use``) a model knows: what it means, its colour in the view and
    its legend, and the OpenStreetMap ``building=*`` values the importer maps onto it."""

    name: str
    doc: str
    colour: str
    osm: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoiKind:
    """A point-of-interest kind (``pois.kind``) a model knows: what it means, its colour in the view,
    and what the importer gives a POI of the kind when the data has no value: ``capacity`` (persons,
    or what ``capacity_tag`` counts) and ``defaults``, values of other POI columns the models
    declare (``LayerSpec("pois", defaults=...)``) for this kind."""

    name: str
    doc: str
    colour: str
    capacity: int = 0
    defaults: tuple[tuple[str, Any], ...] = ()
    capacity_tag: str = "capacity"  # the OSM tag that gives the capacity


@dataclass(frozen=True)
class ImportOption:
    """An option of `citytwin city import` a model's import hook reads: the keyword of
    ``twin.gis.city_import.import_city`` and, with dashes, the command-line flag (``--walkable-around``)."""

    name: str
    help: str
    default: Any = None
    type: type = str


@dataclass(frozen=True)
class DrawingKind:
    """A kind of feature a model reads from a building drawing (`citytwin city import FILE.dxf|.ifc
    --place ... --into DIR`, twin.gis.drawings; docs/city_package.md "Drawings").

    ``name``: the word of a DXF layer ``<name>@<level>``; ``geometry``: ``Polygon`` (closed
    polylines: areas) or ``LineString`` (lines and open polylines); ``spans_levels``: a feature that
    joins two levels, on a layer ``<name>@<lower>-<upper>``, each line drawn from its lower end to its
    upper end; ``doc``: what it is, for the docs and for error messages."""

    name: str
    doc: str
    geometry: str = "Polygon"
    spans_levels: bool = False


@dataclass(frozen=True)
class OsmAreas:
    """OpenStreetMap areas (and closed ways) that become the features of a polygon layer of the city
    (``CityImportHook.osm_areas``): those with any of ``tags``, each ``key=value`` or ``key`` (any
    value), in GDAL's syntax for closed ways that are areas. Each feature keeps its OSM id as ``id``
    and the OSM tags ``columns`` as text columns of the same name ("" where the tag is absent)."""

    layer: str
    tags: tuple[str, ...]
    columns: tuple[str, ...] = ("name",)

    def __post_init__(self):
        bad = [t for t in self.tags if not t.partition("=")[0] or t.endswith("=")]
        if not self.tags or bad:
            raise UserError(f'OsmAreas "{self.layer}": tags {list(self.tags)!r} must be "key=value" or "key" '
                            "(any value), at least one.")


@dataclass(frozen=True)
class CityImportHook:
    """What a model needs from `citytwin city import` (the importer calls every registered model's hook).

    ``osm_tags``: OpenStreetMap tags it reads (each becomes a column of the raw OSM layers);
    ``road_columns``: those of them kept, as text, on the ``roads`` layer; ``poi_columns``: those kept,
    as text, on the ``pois`` layer (e.g. a value the model parses itself); ``poi_kind``: the POI kind
    of a feature's OSM tags, or None (the models are asked in registry order, the first kind wins);
    ``poi_tags``: the tags that decide it (kept in the ``osm_tags`` column of the POIs);
    ``walkable_layer``: the polygon layer the model defines that receives the OSM areas people walk on
    (pedestrian areas, squares and marketplaces, kind "pedestrian"; the first hook that names one
    decides; none named: the importer keeps no such areas); ``walkable_areas``: (tag, value, kind)
    triples: OSM areas (and closed ways) tagged tag=value join that layer with that ``kind``; a line
    with ``highway`` = such a value is a road at walking speed. ``osm_areas``: OSM areas that become features of a polygon layer the model defines
    (``OsmAreas``; the importer reads their tags too). ``options``: the command-line options it reads; ``derive(city, options)``: called
    once the city is built, returns the city (with layers the model derives from it) and lines for the
    report."""

    osm_tags: tuple[str, ...] = ()
    road_columns: tuple[str, ...] = ()
    poi_columns: tuple[str, ...] = ()
    poi_tags: tuple[str, ...] = ()
    poi_kind: Callable[[dict], str | None] | None = None
    walkable_layer: str = ""
    walkable_areas: tuple[tuple[str, str, str], ...] = ()
    osm_areas: tuple[OsmAreas, ...] = ()
    options: tuple[ImportOption, ...] = ()
    derive: Callable[[Any, dict], tuple[Any, list[str]]] | None = None
    # Building drawings (twin.gis.drawings): ``drawing_kinds`` the kinds of feature the model reads
    # from them (``DrawingKind``: DXF layers ``<kind>@<level>``); ``ifc_kind``: the kind of an IFC
    # element from what the reader tells of it (a dict with ``ifc_class``, ``ifc_classes`` (it and its
    # super-classes), ``predefined_type``, ``object_type``, ``name``, ``long_name``, ``description``
    # and ``is_external``), or a tuple of kinds (one feature each), or None; ``drawing_import(city,
    # drawing, options)``: merges the drawing's features of its kinds into the city, returns the city
    # and lines for the report.
    drawing_kinds: tuple[DrawingKind, ...] = ()
    ifc_kind: Callable[[dict], str | tuple[str, ...] | None] | None = None
    drawing_import: Callable[[Any, Any, dict], tuple[Any, list[str]]] | None = None


@dataclass(frozen=True)
class LayerView:
    """How the 3D view draws the features of a layer a model defines.

    ``drawing`` ``ribbon``: lines as flat ribbons ``width_m`` wide and polygons as they are, lifted to
    their floor level just above the roads; ``area``: polygons filled, draped over the terrain
    ``lift_m`` metres above it (below the roads). Coloured by the boolean column ``state_column``
    (``colours`` = (false, true)), else all in ``colours[-1]``; ``label``: the column whose value is
    written above each feature; ``legend``: the legend's words for (false, true), or one word for a
    layer without a state. ``pick_radius_m``: how near a map point must lie to a ribbon's feature to
    pick it (an area's feature is picked where the pointer hits it). ``extruded``: polygons as blocks
    ``height_m`` tall standing on the terrain (walls and pillars), picked where the pointer hits them.
    ``roofs_see_through``: buildings that stand over this layer's features (more than 30 % of their
    footprint) are drawn see-through, like a station hall over its platforms, so the agents under
    them show."""

    layer: str
    title: str
    width_m: float = 1.6
    state_column: str = ""
    colours: tuple[str, ...] = ("#d62728", "#2ca02c")
    legend: tuple[str, ...] = ()
    label: str = ""
    pick_radius_m: float = 2.0
    drawing: str = "ribbon"
    lift_m: float | None = None  # metres above the terrain; None: the drawing's own (ribbons above the roads)
    height_m: float = 1.2  # extruded: the blocks' height
    roofs_see_through: bool = False

    def __post_init__(self):
        if self.drawing not in LAYER_DRAWINGS:
            raise UserError(f'LayerView "{self.layer}": drawing "{self.drawing}"{nearest(self.drawing, LAYER_DRAWINGS)} '
                            f'is not one the view draws; use one of {", ".join(LAYER_DRAWINGS)}.')


LAYER_DRAWINGS = ("ribbon", "area", "extruded")


@dataclass(frozen=True)
class Correctable:
    """A state array a filter may correct (docs/assimilation.md): ``path``, an entry of
    ``state_attrs`` holding a 2-D float array on the grid of the model's field ``field`` (its
    ``FieldStyle``; the same rows and columns as that field's values), so that each element has a
    place and a gauge corrects only its surroundings. Corrected values are kept at or above ``low``."""

    path: str
    field: str
    low: float | None = None


@dataclass(frozen=True)
class StateSpec:
    """What one entry of ``state_attrs`` may hold when a saved state is restored (docs/state_file.md).

    An array keeps the dtype of the freshly built model's array and its shape, except along axis 0
    (``rows``) or 1 (``cols``) when those name the most it may have. A value that is not an array
    keeps the JSON type of the fresh one (a list its length, unless ``rows``). Numbers must be finite
    unless ``nan`` / ``inf`` allow those; they lie within [``low``, ``high``] when given. An index
    array declares ``index_of``: its values index that (so lie below its count; ``low`` defaults to
    0, -1 for "none"). ``low`` and ``high`` may also name a count (``"crowd.cap"``, ``"-heap"`` for
    its negative). ``rows``, ``cols``, ``index_of`` and such bounds are attribute paths on the model whose
    value is a count or anything with a length, read after the state is in place (so one state
    array may bound another: the routes a walker's route number points into).
    """

    path: str
    nan: bool = False
    inf: bool = False
    low: float | str | None = None
    high: float | str | None = None
    index_of: str | None = None
    rows: str | None = None
    cols: str | None = None
    columns: tuple["ColumnSpec", ...] = ()  # a table whose columns hold different kinds of numbers

    @classmethod
    def each(cls, paths, **kw) -> tuple["StateSpec", ...]:
        """The same declaration for several entries."""
        return tuple(cls(p, **kw) for p in paths)


@dataclass(frozen=True)
class ColumnSpec:
    """The bounds of one column of a 2-D state table, or one entry of a 1-D array of counters
    (``StateSpec.columns``; the last axis), checked after the whole array's: ``low``, ``high`` and ``index_of`` as in ``StateSpec``; ``name`` is what a refusal calls
    the column (the engine's constant, ``G_ATTR``)."""

    col: int
    name: str
    low: float | str | None = None
    high: float | str | None = None
    index_of: str | None = None


@dataclass
class FeatureFrame:
    """Per-feature values of one layer: ``values[name][i]`` belongs to feature ``ids[i]``."""

    ids: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Snapshot:
    """What the view draws at one moment. Positions are in the city CRS (metres), float64."""

    time_s: float
    positions: np.ndarray  # (n, 2) float64: float32 would round UTM northings to 0.25 m
    states: np.ndarray  # (n,) int8, index into state_names
    state_names: tuple[str, ...]
    ids: np.ndarray  # (n,) int64: the same person keeps the same id from the first frame to the last
    fields: dict[str, GridField] = field(default_factory=dict)
    kpis: dict[str, Any] = field(default_factory=dict)
    features: dict[str, FeatureFrame] = field(default_factory=dict)  # layer name -> values
    # (n,) float64 metres above the terrain (an upper floor, a connector between floors); None: on the ground
    z: np.ndarray | None = None
    # (n,) int: which of the model's walkable_areas() each agent walks on (its index), -1 on none (a
    # connector, the street); None: the model has no walkable areas
    level: np.ndarray | None = None


EPS = 1e-9


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= EPS * max(1.0, abs(a), abs(b))


class CityModel(mesa.Model):
    """Base of every CityTwin simulation.

    Subclasses set the class attributes, build their static world in ``__init__`` from the city
    and the validated parameters (``self.p``), and implement ``current_kpis`` and ``snapshot``, and
    either ``step`` (one fixed step of ``self.dt_s``; the default ``_advance`` calls it) or
    ``_advance(t)`` (adaptive or event-driven stepping that lands exactly on ``t``). ``state_attrs``
    names every attribute that changes during a run (dotted paths into helper objects allowed).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    kpis: ClassVar[tuple[KPI, ...]] = ()
    required_layers: ClassVar[tuple[str, ...]] = ()
    optional_layers: ClassVar[tuple[str, ...]] = ()
    extra_layers: ClassVar[tuple[LayerSpec, ...]] = ()
    # Knowledge the platform reads from every registered model (docs/models.md, "Declarations"):
    city_layers: ClassVar[tuple[LayerSpec, ...]] = ()  # layers of the city package this model defines
    building_uses: ClassVar[tuple[BuildingUse, ...]] = ()
    poi_kinds: ClassVar[tuple[PoiKind, ...]] = ()
    import_hook: ClassVar[CityImportHook | None] = None
    layer_views: ClassVar[tuple[LayerView, ...]] = ()
    field_styles: ClassVar[tuple[FieldStyle, ...]] = ()
    feature_styles: ClassVar[tuple[FeatureStyle, ...]] = ()
    aoi_layers: ClassVar[tuple[str, ...]] = ()  # layers whose extent the camera frames first; () = the city
    state_names: ClassVar[tuple[str, ...]] = ()
    state_colours: ClassVar[tuple[str, ...]] = ()  # optional: one colour per state ("#rrggbb"); () = the view's
    state_attrs: ClassVar[tuple[str, ...]] = ()
    state_specs: ClassVar[tuple[StateSpec, ...]] = ()  # one per entry of state_attrs (what a restore accepts)
    alerts: ClassVar[tuple[AlertRule, ...]] = ()  # default alert thresholds (command room); [alerts] edits them
    forcings: ClassVar[tuple[Forcing, ...]] = ()  # inputs a live feed may measure (docs/live.md)
    correctable: ClassVar[tuple[Correctable, ...]] = ()  # state a filter may correct (docs/assimilation.md)
    # Coupling (docs/coupling.md): what this model hands to others at every sync point, and what it takes.
    publishes: ClassVar[tuple[Exchange, ...]] = ()
    accepts: ClassVar[tuple[Exchange, ...]] = ()
    report_interval_s: float = 10.0
    # The time of day at t = 0 (seconds after midnight) for models that run on the wall clock (a
    # holiday day from 06:00); None: the view shows elapsed time.
    clock_start_s: float | None = None

    def __init__(self, city, *, duration_s: float, seed: int, base_dir=None, **params):
        super().__init__(rng=seed)
        # CityTwin keeps Mesa's clock in seconds and steps the model itself (advance_to), so Mesa's
        # default schedule of one step per time unit is switched off.
        take_over_stepping(self)
        if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
            raise UserError(f"duration_s must be a positive, finite number of seconds, not {duration_s!r}.")
        self.city = city
        self.duration_s = float(duration_s)
        self.seed = int(seed)
        self.p = validate_params(type(self), params, f"parameters of model {self.name}", base_dir)
        city.require(self.required_layers, model=self.name)
        city.require_extra(self.extra_layers, model=self.name)
        self.dt_s = 0.0
        self.datacollector = mesa.DataCollector(
            model_reporters={k.name: (lambda m, n=k.name: m._kpi_cache[n]) for k in self.kpis if k.per_step}
        )
        self._kpi_cache: dict[str, Any] = {}
        self._labels: dict[str, str] | None = None
        # What a planner must know about the inputs (estimated places, an assumption about the map's
        # edge): printed by the CLI, written to summary.json "warnings", shown in the app.
        self.warnings: list[str] = []
        self._times: list[float] = []
        self._report_k = 0  # index of the next time-series row (at k × report_interval_s)

    # -- to implement ----------------------------------------------------------------------
    def step(self) -> None:  # pragma: no cover - abstract
        """One fixed step of ``dt_s`` (models that use the default ``_advance``)."""
        raise NotImplementedError

    def current_kpis(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def snapshot(self) -> Snapshot:  # pragma: no cover - abstract
        raise NotImplementedError

    def rasters(self) -> dict[str, GridField]:
        """Fields written as GeoTIFF at the end of a run (e.g. ``max_density``)."""
        return {}

    def field_values(self, names, snapshot: Snapshot) -> dict[str, GridField]:
        """The declared fields ``names`` now, for ``[outputs] fields`` (fields over time). By default
        those of ``snapshot`` and of ``rasters()``; a model whose field would cost every view frame
        (the flood's flow speed) computes it here instead of in ``snapshot``."""
        out = {n: snapshot.fields[n] for n in names if n in snapshot.fields}
        missing = [n for n in names if n not in out]
        if missing:
            rasters = self.rasters()
            out.update({n: rasters[n] for n in missing if n in rasters})
        return out

    def agents(self) -> Snapshot:
        """Where the agents are now (``positions``, ``states``, ``ids``, ``z``, ``level``), for
        trajectories sampled often (``[outputs] trajectory_interval_s``); fields, KPIs and features
        may be left empty. By default the whole ``snapshot()``; a model whose snapshot costs more
        than its agents' arrays (the station's density field and per-gate values) overrides it."""
        return self.snapshot()

    def walkable_areas(self) -> dict[int, Any]:
        """The floor each level's people walk on, ``{level number: shapely (Multi)Polygon}`` in the
        city CRS, without obstacles; ``Snapshot.level`` indexes it in this order. A model with
        pedestrians declares it and gets JuPedSim trajectory files PedPy reads (docs/outputs.md)."""
        return {}

    def tables(self) -> dict[str, dict[str, Any]]:
        """Feature tables written at the end of a run: ``{file stem: {layer: GeoDataFrame}}`` becomes
        ``<stem>.gpkg`` in the run folder (e.g. the flood model's ``impacts.gpkg``). Empty layers
        are not written."""
        return {}

    def forced_parameters(self, quantity: str, readings: list[tuple[float, str, float]]) -> dict[str, Any]:
        """The parameters (of the declared ``Forcing`` named ``quantity``) that make this run follow
        ``readings`` (time_s, feature id or "", value; every reading so far, in time order) from
        their times on. Live mode continues the run from its current state with them."""
        return {}

    def forcing_values(self, quantity: str) -> dict[str, float]:
        """What the declared forcing ``quantity`` is now in this run, ``{feature id or "": value}``:
        what a gauge would measure of it (a synthetic feed's truth)."""
        return {}

    def check_restored_state(self) -> None:
        """After a restore put the state's entries in place, each checked against ``state_specs``:
        raise a UserError naming the entry when entries disagree with each other (arrays that must
        have equal lengths, offsets that must increase). Nothing has run on them yet."""

    def publish(self, name: str):
        """The value of the declared publication ``name`` now (a ``GridField`` or a ``FeatureFrame``)."""
        raise NotImplementedError(f"model {self.name} declares no publication {name!r}")

    def accept(self, name: str, value, *, restored: bool = False) -> None:
        """Take the declared input ``name`` at a sync point (the model is at the same time as the
        publisher). ``restored``: the same value handed again right after a restore, to rebuild what
        depends on it; the model's own state already holds what it did with it (no decisions again)."""
        raise NotImplementedError(f"model {self.name} declares no input {name!r}")

    def on_restore(self, same_params: bool) -> None:
        """Called after ``set_state``; ``same_params`` is False when the run continues as another
        variant (rebuild whatever depends on both the new parameters and the restored state)."""

    def reseed(self, entropy) -> None:
        """Fresh random generators from ``entropy`` (a sequence of non-negative ints), after a restore:
        replication k >= 1 of a run continued from a state (``citytwin branch``) calls it with
        ``(seed, k)``. The numpy generator gets the state of ``PCG64(SeedSequence(entropy))`` (in
        place: objects holding it see the new stream) and Python's ``random`` the first 64-bit word
        of that sequence as its seed. A model that draws from generators of its own (a counter-based
        key, a second Generator) overrides this and reseeds those too."""
        ss = np.random.SeedSequence([int(e) for e in entropy])
        self.rng.bit_generator.state = type(self.rng.bit_generator)(ss).state
        self.random.seed(int(ss.generate_state(1, np.uint64)[0]))

    @property
    def finished(self) -> bool:
        """True when nothing more can happen (e.g. every agent has left)."""
        return False

    @property
    def time_quantum_s(self) -> float:
        """Pause points lie on multiples of this (0: anywhere). Fixed-step models: their step."""
        return self.dt_s

    def _advance(self, t_s: float) -> None:
        """Advance to ``t_s`` (on the quantum grid). The default takes fixed steps of ``dt_s``; the
        clock is ``steps × dt_s``, so it never drifts."""
        end = int(math.floor(t_s / self.dt_s + 1e-6))
        while self.steps < end and not self.finished:
            self.step()
            self.steps += 1
            self.time = self.steps * self.dt_s

    @property
    def next_time_s(self) -> float:
        """The time at the end of the fixed step being taken (for ``step``)."""
        return (self.steps + 1) * self.dt_s

    # -- time, driven by the runner ----------------------------------------------------------
    @property
    def time_s(self) -> float:
        return self.time

    def on_grid(self, t_s: float) -> float:
        """``t_s`` moved up onto the model's time quantum (and no later than the end)."""
        q = self.time_quantum_s
        t = min(float(t_s), self.duration_s)
        if q > 0:
            k = math.ceil(t / q - 1e-6)
            if not _close(k * q, t):
                t = min(k * q, self.duration_s)
        return t

    def advance_to(self, t_s: float) -> None:
        """Advance to ``t_s`` (or the end), recording a time-series row at every ``k × report_interval_s``."""
        if not self._times:
            self._check_grid()
            self._record(0.0)
        t = self.on_grid(t_s)
        interval = self.report_interval_s
        while self.time < t and not _close(self.time, t) and not self.finished:
            next_row = self._report_k * interval
            target = min(t, next_row)
            self._advance(target)
            self.time = target
            if _close(target, next_row):
                self._record(next_row)
        end = self.duration_s
        if self.finished and self._times[-1] < self.time and not _close(self._times[-1], self.time):
            # nothing more will happen: close the series at the next grid point
            self.time = min(math.ceil(self.time / interval - 1e-6) * interval, end)
        if (_close(self.time, end) or self.finished) and not _close(self._times[-1], self.time):
            self._record(self.time)

    @property
    def next_report_s(self) -> float:
        """When the next time-series row falls due (``k × report_interval_s``): drivers advance in
        whole reporting intervals to this."""
        return self._report_k * self.report_interval_s

    @property
    def rows_recorded(self) -> int:
        """How many time-series rows are recorded so far (``timeseries()`` has this many rows)."""
        return len(self._times)

    def run_to_end(self, progress=None) -> None:
        """Run to ``duration_s`` or until finished; ``progress(t_s)`` after each report interval."""
        while not self.done:
            self.advance_to(self.next_report_s)
            if progress is not None:
                progress(self.time)

    @property
    def done(self) -> bool:
        """The run is over: the end is reached, or the model finished and its last row is recorded."""
        if _close(self.time, self.duration_s) or self.time > self.duration_s:
            return True
        return self.finished and bool(self._times) and _close(self._times[-1], self.time)

    def _check_grid(self) -> None:
        if type(self)._advance is CityModel._advance and not (isinstance(self.dt_s, (int, float))
                                                              and math.isfinite(self.dt_s) and self.dt_s > 0):
            raise UserError(f"model {self.name or type(self).__name__}: a fixed-step model (one that implements step "
                            f"and not _advance) sets its step length in __init__, e.g. self.dt_s = 0.5 (seconds); "
                            f"dt_s is {self.dt_s!r}.")
        q, r = self.time_quantum_s, self.report_interval_s
        if not (r > 0 and math.isfinite(r)):
            raise UserError(f"model {self.name}: the report interval must be a positive number of seconds, not {r!r}.")
        if q > 0 and not _close(round(r / q) * q, r):
            raise UserError(f"model {self.name}: the report interval {r:g} s is not a whole number of time steps "
                            f"of {q:g} s; choose a time step that divides it.")

    def _record(self, t: float) -> None:
        self._kpi_cache = self.current_kpis()
        self.datacollector.collect(self)
        self._times.append(float(t))
        self._report_k = int(math.floor(t / self.report_interval_s + 1e-6)) + 1

    def timeseries(self):
        """One row per reporting interval: ``time_s`` plus the per-step KPIs (keyed ones as ``name.key``)."""
        import pandas as pd

        mv = self.datacollector.model_vars
        n = len(self._times)
        cols: dict[str, Any] = {"time_s": self._times}
        for k in self.kpis:
            if not k.per_step or k.name not in mv:
                continue
            values = mv[k.name][:n]
            if values and isinstance(values[0], dict):
                keys = list(dict.fromkeys(key for v in values for key in v))
                for key in keys:
                    cols[f"{k.name}.{key}"] = [float(v.get(key, 0.0)) for v in values]
            else:
                cols[k.name] = values
        return pd.DataFrame(cols)

    def final_kpis(self) -> dict[str, Any]:
        return self.current_kpis()

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def feature_labels(self) -> dict[str, str]:
        """``{id: label}`` of the features of every layer the model reads: the name, with the id
        where it is missing or shared (twin.core.features). Labels, tiles, alerts and reports use it."""
        if self._labels is None:
            from .features import name_table

            self._labels = name_table(self.city, type(self))
        return self._labels

    def names_used(self, kpis: dict[str, Any]) -> dict[str, str]:
        """``{id: label}`` for the feature ids among the keys of keyed KPIs and those the feature
        parameters select (summary.json ``names``)."""
        from .features import check_params

        table = self.feature_labels()
        ids = {str(k) for v in kpis.values() if isinstance(v, dict) for k in v}
        try:
            ids |= {i for chosen in check_params(type(self), self.p, self.city, self.name).values() for i in chosen}
        except UserError:  # checked before the run; a model built around the check keeps its KPI names
            pass
        return {i: table[i] for i in sorted(ids) if i in table}

    @classmethod
    def check_city(cls, city, params: dict | None = None) -> "CityCheck":
        """What this model needs from ``city`` and what it got (``citytwin city check``,
        twin.core.city_check); ``params``: a run's validated parameters (None: the city alone), so
        that a run reports only the inputs it uses. The base class lists the declared layers: those present (found),
        the required ones absent (missing, blocking) and the optional ones absent; a model adds
        what it knows of its inputs (values taken, estimated, defaulted) by overriding this and
        calling ``super().check_city(city, params)`` first."""
        from .city_check import CityCheck, feature_names

        check = CityCheck(cls.name, cls.title)
        for name in cls.required_layers + cls.optional_layers:
            if city.has(name):
                gdf = city.layers[name]
                check.add("found", f"layer {name}", len(gdf), feature_names(gdf))
            else:
                required = name in cls.required_layers
                check.add("missing", f"layer {name}", how=f"add the layer {name} to city.gpkg (docs/city_package.md)"
                          + ("" if required else "; optional"), blocking=required)
        return check

    @classmethod
    def kpi_units(cls) -> dict[str, str]:
        return {k.name: k.unit for k in cls.kpis}

    @classmethod
    def field_style(cls, name: str) -> FieldStyle:
        """The declared style of a field; a plain colour map for an undeclared one."""
        for s in cls.field_styles:
            if s.name == name:
                return s
        return FieldStyle(name, "", "")

    # -- state -----------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The whole dynamic state: (arrays, JSON values). Static data is rebuilt from the inputs."""
        arrays: dict[str, np.ndarray] = {}
        attrs: dict[str, Any] = {}
        for path in self.state_attrs:
            value = _get_path(self, path)
            if isinstance(value, np.ndarray):
                arrays[path] = value.copy()
            else:
                attrs[path] = _json_ready(value, path)
        meta = {
            "time_s": self.time, "steps": self.steps, "report_k": self._report_k,
            "rng": self.rng.bit_generator.state, "random": _json_ready(self.random.getstate(), "random"),
            "times": list(self._times),
            "model_vars": {k: _json_ready(v, k) for k, v in self.datacollector.model_vars.items()},
            "kpi_cache": _json_ready(self._kpi_cache, "kpis"),
            "params": {k: plain_value(v) for k, v in self.p.items()},
            "attrs": attrs,
        }
        return arrays, meta

    def state_array_bounds(self) -> dict[str, tuple[np.ndarray, tuple[int, ...]]]:
        """For this freshly built model: each state array and the largest shape a restore accepts
        (``twin.core.state_file`` checks a file's array headers against it before decompressing)."""
        out = {}
        for path in self.state_attrs:
            fresh = _get_path(self, path)
            if isinstance(fresh, np.ndarray):
                out[path] = (fresh, self._max_shape(self._state_spec(path), fresh.shape))
        return out

    def _state_spec(self, path: str) -> StateSpec:
        for s in self.state_specs:
            if s.path == path:
                return s
        return StateSpec(path)  # undeclared: the strict default (fresh shape and type, finite numbers)

    def _count(self, attr: str) -> int:
        v = _get_path(self, attr)
        return len(v) if hasattr(v, "__len__") else int(v)

    def state_shape_allowed(self, spec: StateSpec, shape: tuple, fresh: tuple) -> bool:
        """A restored array's shape: the fresh one's, except up to ``rows`` / ``cols`` where declared."""
        top = self._max_shape(spec, fresh)
        if len(shape) != len(fresh):
            return False
        free = {0} if spec.rows else set()
        free |= {1} if spec.cols else set()
        return all(n <= m if axis in free else n == m for axis, (n, m) in enumerate(zip(shape, top)))

    def state_shape_text(self, spec: StateSpec, fresh: tuple) -> str:
        top = self._max_shape(spec, fresh)
        return f"shape {fresh}" if top == tuple(fresh) else f"a shape within {top} (only the first axes may be shorter)"

    def _bound(self, b):
        if isinstance(b, str):
            return -self._count(b[1:]) if b.startswith("-") else self._count(b)
        return b

    def _max_shape(self, spec: StateSpec, shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = list(shape)
        if spec.rows and shape:
            shape[0] = self._count(spec.rows)
        if spec.cols and len(shape) > 1:
            shape[1] = self._count(spec.cols)
        return tuple(shape)

    def saved_rows(self, saved: dict[str, Any], shapes: dict[str, tuple]) -> dict[str, int]:
        """A state saved with other parameters may hold arrays with another number of rows where the
        parameters size them (a model's agents yet to come): those paths and the rows the saved run had,
        for the checks of the file before ``adapt_state`` makes them this model's. A value may also be a
        whole shape (a tuple), for arrays whose every axis the parameters size (a raster at another
        resolution). ``saved`` is the saved model's metadata (``params``, ``attrs``), ``shapes`` the
        arrays' shapes in the file. By default {}: every array has this model's shape."""
        return {}

    def same_params(self, saved, ignore=()) -> bool:
        """Whether a state's ``params`` (``get_state``'s) are this model's, but for those in ``ignore``.
        A file parameter is compared by the file's content: a state saved from a scenario in another
        folder (a copy, another checkout) names its file by another absolute path."""
        if not isinstance(saved, dict):
            return False
        mine = {k: plain_value(v) for k, v in self.p.items() if k not in ignore}
        saved = {k: v for k, v in saved.items() if k not in ignore}
        if saved.keys() != mine.keys():
            return False
        files = {p.name for p in self.params if p.kind in (FilePath, TimeSeries)}
        return all(v == mine[k] or (k in files and _file_digest(v) is not None and _file_digest(v) == _file_digest(mine[k]))
                   for k, v in saved.items())

    def adapt_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> tuple[dict, dict]:
        """Called first by ``set_state``: a state saved with other parameters, made this model's shapes
        (``saved_rows``); returns new arrays and metadata, the given ones untouched. By default as is."""
        return arrays, meta

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], where: str = "saved state") -> None:
        """Put back a state from ``get_state`` into this freshly built model, checking every entry
        against ``state_specs`` first (a refusal is a UserError naming ``where`` and the entry)."""
        try:
            arrays, meta = self.adapt_state(arrays, meta)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        missing = [p for p in self.state_attrs if p not in arrays and p not in meta["attrs"]]
        if missing:
            raise UserError(f"{where}: it lacks {', '.join(missing[:5])} that model {self.name} needs; it was "
                            "written by another version of the model.")
        fresh = {p: _get_path(self, p) for p in self.state_attrs}
        for path in self.state_attrs:
            value = arrays[path] if path in arrays else meta["attrs"][path]
            self._check_kind(path, value, fresh[path], where)
        for path in self.state_attrs:
            if path in arrays:
                _set_path(self, path, arrays[path])
            else:  # a copy: the model mutates its lists, and one saved state may be restored many times
                _set_path(self, path, copy.deepcopy(meta["attrs"][path]))
        for path in self.state_attrs:  # after all are in place: one entry may bound another
            self._check_values(self._state_spec(path), _get_path(self, path), where)
        try:
            self.check_restored_state()
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        self._set_clock(meta, where)
        same = self.same_params(meta.get("params"))
        try:
            self.on_restore(same)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None

    def _check_kind(self, path: str, value, fresh, where: str) -> None:
        """Type and shape against the fresh model's value (before anything is set)."""
        spec = self._state_spec(path)
        if isinstance(fresh, np.ndarray):
            if not isinstance(value, np.ndarray) or value.dtype != fresh.dtype:
                got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
                raise UserError(f"{where}: {path!r} is {got}, model {self.name} needs an array of {fresh.dtype}.")
            if not self.state_shape_allowed(spec, value.shape, fresh.shape):
                raise UserError(f"{where}: {path!r} has shape {value.shape}, model {self.name} needs "
                                f"{self.state_shape_text(spec, fresh.shape)} here.")
            return
        if not _same_json_kind(value, fresh, bool(spec.rows)):
            raise UserError(f"{where}: {path!r} = {_short(value)} does not have the form model {self.name} keeps "
                            f"there (like {_short(fresh)}).")

    def _check_values(self, spec: StateSpec, value, where: str) -> None:
        if isinstance(value, dict):
            value = list(value.values())
        a = np.asarray(value)
        if a.dtype == bool or a.size == 0:
            return
        if a.dtype.kind not in "iuf":
            raise UserError(f"{where}: {spec.path!r} holds {a.dtype} values; model {self.name} keeps numbers there.")
        if a.dtype.kind == "f":
            bad = (np.isnan(a) if not spec.nan else np.zeros(a.shape, bool)) | (np.isinf(a) if not spec.inf else False)
            if bad.any():
                i = np.unravel_index(int(np.argmax(bad)), a.shape)
                raise UserError(f"{where}: {spec.path!r} holds {a[i]} at {_index_text(i)}; model {self.name} needs "
                                "finite numbers there.")
            a = a[np.isfinite(a)]
            if a.size == 0:
                return
        self._check_range(a, spec, repr(spec.path), where)
        for c in spec.columns:
            self._check_range(np.atleast_1d(np.take(value, c.col, axis=-1)), c, f"{spec.path!r} column {c.name}", where)

    def _check_range(self, a: np.ndarray, spec, label: str, where: str) -> None:
        """The values of ``a`` (finite) within ``spec``'s ``low``/``high``/``index_of``."""
        if a.size == 0:
            return
        if a.dtype.kind == "f":
            a = a[np.isfinite(a)]
            if a.size == 0:
                return
        low, high = self._bound(spec.low), self._bound(spec.high)
        count = None
        if spec.index_of:
            low = 0 if low is None else low
            count = self._count(spec.index_of)
            high = count - 1 if high is None else min(high, count - 1)
        lo_v, hi_v = a.min(), a.max()
        if (low is not None and lo_v < low) or (high is not None and hi_v > high):
            v = lo_v if low is not None and lo_v < low else hi_v
            what = f"an index into {spec.index_of} ({count} entries)" if spec.index_of else "a value"
            rng = f"from {low:g}" if low is not None else ""
            rng += f"{' ' if rng else ''}to {high:g}" if high is not None else ""
            raise UserError(f"{where}: {label} holds {v}, out of range for {what}; model {self.name} accepts "
                            f"{rng} there.")

    def _set_clock(self, meta: dict[str, Any], where: str) -> None:
        t = meta["time_s"]
        if not (isinstance(t, (int, float)) and math.isfinite(t) and 0 <= t <= self.duration_s):
            raise UserError(f"{where}: model.time_s = {t!r}; give a time from 0 to duration_s = {self.duration_s:g} s.")
        times = [float(x) for x in meta["times"]]
        expected_k = int(math.floor(times[-1] / self.report_interval_s + 1e-6)) + 1 if times else 0
        if meta["report_k"] != expected_k:
            raise UserError(f"{where}: model.report_k = {meta['report_k']!r} does not follow from the time series "
                            f"(its last row at {times[-1] if times else 'none'}); it must be {expected_k}.")
        self.time = float(t)
        self.steps = int(meta["steps"])
        if type(self)._advance is CityModel._advance and self.dt_s > 0 and not _close(self.steps * self.dt_s, self.time):
            # saved by a run with another fixed step (a variant, an ensemble member at another resolution):
            # its step count is not this clock's, which is steps x dt_s
            self.steps = int(math.floor(self.time / self.dt_s + 1e-6))
        self._report_k = int(meta["report_k"])
        try:
            if meta["rng"].get("bit_generator") != type(self.rng.bit_generator).__name__:
                raise ValueError(f"bit generator {meta['rng'].get('bit_generator')!r}")
            self.rng.bit_generator.state = meta["rng"]
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            raise UserError(f"{where}: model.rng is not a valid state of the model's "
                            f"{type(self.rng.bit_generator).__name__} generator ({e}).") from None
        try:
            version, internal, gauss = meta["random"]
            self.random.setstate((version, tuple(internal), gauss))
        except (ValueError, TypeError, OverflowError) as e:
            raise UserError(f"{where}: model.random is not a valid state of Python's random generator ({e}).") from None
        self._times = times
        kpis = {k.name for k in self.kpis if k.per_step}
        unknown = sorted(set(meta["model_vars"]) - kpis)
        if unknown:
            raise UserError(f"{where}: model.model_vars.{unknown[0]} is not a per-step KPI of model {self.name}.")
        self.datacollector.model_vars = {k: list(v) for k, v in meta["model_vars"].items()}
        self._kpi_cache = dict(meta["kpi_cache"])


@functools.lru_cache(maxsize=64)
def _digest_of(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(Path(path))


def _file_digest(value) -> str | None:
    """The SHA-256 of the file a parameter value names (None: not a file's name, or no such file)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        st = os.stat(value)
    except (OSError, ValueError):
        return None
    return _digest_of(value, st.st_mtime_ns, st.st_size)


def _same_json_kind(value, fresh, any_length: bool) -> bool:
    """``value`` (from a state's JSON) has the form of the fresh model's ``fresh`` value."""
    if isinstance(fresh, bool) or fresh is None:
        return type(value) is type(fresh)
    if isinstance(fresh, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(fresh, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(fresh, str):
        return isinstance(value, str)
    if isinstance(fresh, dict):
        return (isinstance(value, dict) and set(value) == set(fresh)
                and all(_same_json_kind(value[k], fresh[k], False) for k in fresh))
    if isinstance(fresh, (list, tuple)):
        if not isinstance(value, list) or (not any_length and len(value) != len(fresh)):
            return False
        proto = fresh[0] if len(fresh) else None
        return proto is None or all(_same_json_kind(v, proto, True) for v in value)
    return False


def _short(value, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def _index_text(i: tuple) -> str:
    return "index " + ", ".join(str(int(k)) for k in i) if i else "its only element"


def _get_path(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _set_path(obj, path: str, value) -> None:
    *head, last = path.split(".")
    for part in head:
        obj = getattr(obj, part)
    current = getattr(obj, last, None)
    if (isinstance(current, np.ndarray) and isinstance(value, np.ndarray) and current.shape == value.shape
            and current.dtype == value.dtype):
        current[...] = value  # in place: other objects may hold a view of it
    elif isinstance(current, np.ndarray) and isinstance(value, np.ndarray):
        setattr(obj, last, value.astype(current.dtype, copy=True) if value.shape == current.shape else value.copy())
    else:
        setattr(obj, last, value)


def _json_ready(value, where: str):
    """numpy scalars and tuples as plain JSON values; anything else that JSON cannot hold is a bug."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _json_ready(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v, where) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"state attribute {where!r} holds a {type(value).__name__}, which a state file cannot hold; "
                    "list its arrays in state_attrs instead")
