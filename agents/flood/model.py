"""Urban flood (model ``flood``): rain and inflows on the city's terrain, what the water hits, and the
residents who walk to the shelters (docs/flood.md).

The engine (``solver``: local-inertial shallow water, Numba) advances the water with Courant-limited
steps that never cross a multiple of ``sync_interval_s``. Every such sync point the model reads the
water: per-feature depths (``exposure``), flooded buildings become households that evacuate on foot
(``evacuation``), roads close. The sync interval is the model's time quantum, so pausing anywhere
never changes a run and a saved state continues exactly.

Only the DEM is required; buildings (walls, people), roads (impassable roads, evacuation routes),
water (initial water bodies), drains, and POIs of kind shelter, pump, railway_station, hospital and
school are used when the city has them. Department measures are parameters: mobile pumps, larger
drains, barriers, an earlier warning, road closures, closing station entrances.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from twin.core import features
from twin.core.errors import UserError
from twin.core.grid import GridField
from agents.water_hazard import CLASSES as HAZARD_CLASSES, people_by_hazard
from twin.core.limits import MAX_DURATION_S
from twin.core.model_contract import (KPI, AlertRule, CityModel, Correctable, Exchange, FeatureFrame, FeatureStyle, FieldStyle, FilePath,
                                      Forcing, LayerSpec, splice_series,
                                      Numbers, Param, Snapshot, StateSpec, TimeSeries)

from . import city_check, inputs, regrid, site
from .evacuation import SHELTERED, STATE_COLOURS, STATE_NAMES, STRANDED, WAITING, WALKING, Evacuation
from .exposure import CRITICAL_KINDS, Exposure
from .forcing import SHANGHAI_PEAK_RATIO
from .solver import MAX_DEPTH_M, FloodSolver
from .city_import import CITY_LAYERS, IMPORT_HOOK, LAYER_VIEWS, POI_KINDS

FLOODED_DEPTH_M = 0.1  # "flooded" area and arrival times: deeper than this (as the arrival_time.tif)
ENTRANCE_KINDS = ("exit", "entrance")  # gates of these kinds are the station's entrances

P = Param
PARAMS = (
    # grid and hydraulics
    P("cell_size_m", "m", 0.0, "Cell size of the flood grid; 0 = the DEM's own. The DEM is resampled bilinearly; "
      "buildings block the cells whose centre they cover. Memory: about 80 bytes a cell.", float, 0.0, 1000.0),
    P("manning_n", "s/m^(1/3)", 0.03, "Manning's roughness of the ground (0.013 smooth asphalt .. 0.1 dense "
      "vegetation).", float, 0.0, 1.0),
    P("manning_by_landuse", "s/m^(1/3)", [], "Manning's n per land-use class of the city's landuse.tif (class k gets "
      "entry k); empty: manning_n everywhere.", Numbers, 0.0, 1.0),
    P("boundary", "-", "auto", "Domain edges: closed (no flow), open (water leaves, never enters) or auto: open "
      "where the terrain model runs out of the map, closed where a water body of the water layer reaches the edge "
      "(so a river cut by the map stays at rest).", str, choices=("auto", "closed", "open")),
    P("open_edges", "-", [], "With boundary = open: the edges water may leave over (north, south, west, east); "
      "empty: all four.", list, used_when=("boundary", ("open",))),
    P("initial_depth", "-", "", "A GeoTIFF of water depth (m) at the start, resampled onto the grid (0 where it has "
      "none).", FilePath, suffixes=(".tif", ".tiff")),
    P("water_level_rise_m", "m", 0.0, "Added to the level every water body of the water layer starts at (its "
      "level_m column, else the ground along its banks): a river already high when the storm begins.",
      float, -20.0, 20.0),
    P("cfl", "-", 0.6, "Courant number α of the time step Δt = α Δx / √(g h_max); at most √(theta/2).", float,
      0.05, 0.7),
    P("theta", "-", 0.8, "de Almeida et al. (2012) weighting θ of a face's own flow (1: none from its neighbours).",
      float, 0.5, 1.0),
    P("sync_interval_s", "s", 10.0, "The water is read (impacts, roads, evacuation) every this many seconds; the "
      "model's time quantum.", float, 1.0, 600.0),
    P("report_interval_s", "s", 60.0, "Time-series rows every this many seconds (a multiple of sync_interval_s).",
      float, 1.0, 3600.0),
    # rain
    P("rain", "-", "design_storm", "Which rain falls: design_storm (storm_* and idf_*), uniform (rain_mm_per_h), "
      "hyetograph, gauge_csv (rain_file) or none.", str,
      choices=("design_storm", "uniform", "hyetograph", "gauge_csv", "none")),
    P("rain_scale", "-", 1.0, "Every kind of rain × this: a storm heavier or lighter than its forecast (a synthetic "
      "truth: rain 1.5 × the forecast), a gauge's or a storm formula's bias, what `citytwin calibrate` fits to "
      "observed depths.", float, 0.0, 10.0),
    P("rain_mm_per_h", "mm/h", 30.0, "Uniform rain: intensity.", float, 0.0, 1000.0, used_when=("rain", ("uniform",))),
    P("rain_start_s", "s", 0.0, "Uniform rain: start.", float, 0.0, MAX_DURATION_S, used_when=("rain", ("uniform",))),
    P("rain_duration_s", "s", 3600.0, "Uniform rain: duration.", float, 1.0, MAX_DURATION_S, used_when=("rain", ("uniform",))),
    P("hyetograph", "mm/h", [], "Rain intensity over time: [[t_s, mm_per_h], ...] or a two-column CSV; each value "
      "holds until the next time (the last to the end of the run).", TimeSeries, 0.0, 1000.0, used_when=("rain", ("hyetograph",))),
    P("rain_file", "-", "", "A rain-gauge record (CSV: start_s,end_s,intensity_mm_per_h or depth_mm; or "
      "time_s,intensity_mm_per_h or depth_mm; see docs/flood.md).", FilePath, suffixes=(".csv",), used_when=("rain", ("gauge_csv",))),
    P("storm_return_period_yr", "yr", 5.0, "Design storm: return period P.", float, 0.1, 1000.0, used_when=("rain", ("design_storm",))),
    P("storm_duration_min", "min", 60.0, "Design storm: duration.", float, 1.0, 2880.0, used_when=("rain", ("design_storm",))),
    P("storm_peak_ratio", "-", SHANGHAI_PEAK_RATIO, "Design storm: position of the peak, as a share of the duration "
      "(Chicago hyetograph, Keifer & Chu 1957; 0.405 as used with Shanghai's formula).", float, 0.0, 1.0, used_when=("rain", ("design_storm",))),
    P("storm_step_min", "min", 5.0, "Design storm: length of its blocks.", float, 0.5, 60.0, used_when=("rain", ("design_storm",))),
    P("storm_start_s", "s", 0.0, "Design storm: start.", float, 0.0, MAX_DURATION_S, used_when=("rain", ("design_storm",))),
    P("idf_a", "L/(s·ha)", 1600.0, "Storm-intensity formula q = A (1 + C lg P) / (t + b)^n (GB 50014): A. Defaults: "
      "Shanghai, DB31/T 1043-2017.", float, 1.0, 1e5, used_when=("rain", ("design_storm",))),
    P("idf_c", "-", 0.846, "Storm-intensity formula: C.", float, 0.0, 10.0, used_when=("rain", ("design_storm",))),
    P("idf_b_min", "min", 7.0, "Storm-intensity formula: b.", float, 0.0, 100.0, used_when=("rain", ("design_storm",))),
    P("idf_n", "-", 0.656, "Storm-intensity formula: n.", float, 0.1, 2.0, used_when=("rain", ("design_storm",))),
    # inflows
    P("inflow_file", "-", "", "An inflow hydrograph (CSV: time_s,q_m3s or start_s,end_s,q_m3s), entering at "
      "inflow_at.", FilePath, suffixes=(".csv",)),
    P("inflow_at", "-", "", "Where inflow_file enters: WKT POINT or LINESTRING in the city CRS (a line's cells share "
      "it equally), or the id of a feature of the city's inflows layer.", str, draws=("Point", "LineString")),
    P("city_inflows", "-", True, "Use the inflows of the city's inflows layer (points or lines with a CSV named in "
      "their hydrograph column).", bool),
    # sinks
    P("drainage_mm_per_h", "mm/h", 0.0, "Uniform drainage (infiltration, sewers not modelled as inlets), at most the "
      "water there.", float, 0.0, 1000.0),
    P("use_drains", "-", True, "Drain inlets of the drains layer take up to their capacity_m3s.", bool),
    P("drain_capacity_factor", "-", 1.0, "Every drain inlet's capacity × this (larger drains).", float, 0.0, 100.0),
    P("use_pumps", "-", True, "The city's pumps (POIs of kind pump, capacity_m3s) run from the start.", bool),
    P("pump_capacity_m3s", "m3/s", 1.0, "Capacity of a city pump whose POI has no capacity_m3s.", float, 0.0, 100.0),
    P("mobile_pumps_xy", "m", [], "Mobile pumps (the water authority's): x, y pairs in the city CRS.", Numbers,
      draws=("Point",)),
    P("mobile_pump_capacity_m3s", "m3/s", [0.5], "Mobile pumps: capacity, one value for all or one per pump.",
      Numbers, 0.0, 100.0),
    P("mobile_pump_start_s", "s", [0.0], "Mobile pumps: when each starts pumping, one value for all or one per pump.",
      Numbers, 0.0, MAX_DURATION_S),
    P("barriers", "-", [], "Temporary barriers or levees: WKT LINESTRINGs in the city CRS or ids of the city's "
      "barriers layer; the cells they cross are raised by barrier_height_m.", list, refers_to="barriers",
      draws=("LineString",)),
    P("barrier_height_m", "m", 1.0, "Height of the barriers.", float, 0.0, 50.0),
    # the station
    P("closed_entrances", "-", [], "Station entrances (ids of gates of kind exit or entrance) the transport operator "
      "closes with flood gates at entrance_close_s; recorded per gate for the station model. Ids, names or "
      'selectors such as "kind=entrance".', list, refers_to="gates:exit,entrance"),
    P("entrance_close_s", "s", 0.0, "When closed_entrances close.", float, 0.0, MAX_DURATION_S),
    P("entrance_inflow_m3s", "m3/s", 0.5, "Water an open station entrance takes into the station (and the metro "
      "below) at most, when water stands at it.", float, 0.0, 100.0),
    # people and roads
    P("building_flood_depth_m", "m", 0.15, "A building is flooded once the water around it is deeper than this.",
      float, 0.0, 10.0),
    P("road_closed_depth_m", "m", 0.3, "A road is impassable (closed to evacuees) while deeper than this.", float,
      0.0, 10.0),
    P("closed_roads", "-", [], "Roads the police close (to everyone, evacuees included) from road_closure_s: ids, names or "
      'selectors such as "kind=primary".', list, refers_to="roads"),
    P("road_closure_s", "s", 0.0, "When closed_roads close.", float, 0.0, MAX_DURATION_S),
    P("evacuate", "-", True, "Residents of flooded buildings walk to the shelters after the warning.", bool),
    P("warning_time_s", "s", 1800.0, "When the evacuation warning is issued.", float, 0.0, MAX_DURATION_S),
    P("response_time_s", "s", 300.0, "Households set off after the warning (or their building's flooding, if later) "
      "with a delay drawn from 0 to this.", float, 0.0, 1e5),
    P("evacuate_upper_floors", "-", False, "Everyone in a flooded building leaves; false: only the ground floor's "
      "share (people / storeys), the others stay upstairs.", bool),
    P("walk_speed_mps", "m/s", 1.34, "Mean free walking speed (Weidmann 1993).", float, 0.3, 3.0),
    P("walk_speed_sd_mps", "m/s", 0.26, "Spread of free walking speeds (draws within 0.5-2.0 m/s).", float, 0.0, 1.0),
    P("walk_stop_depth_m", "m", 0.5, "Evacuees stop (stranded) where the water is deeper than this.", float, 0.05,
      3.0),
)

KPIS = (
    KPI("max_depth_m", "m", "Deepest water on land (outside the water bodies) so far.", better="lower"),
    KPI("flooded_area_m2", "m2", f"Land under more than {FLOODED_DEPTH_M} m of water now.", better="lower"),
    KPI("max_flooded_area_m2", "m2", f"Land that has been under more than {FLOODED_DEPTH_M} m of water "
        "(the extent of max_depth.tif).", headline=True, better="lower"),
    KPI("buildings_flooded", "-", "Buildings the water has reached deeper than building_flood_depth_m so far.",
        headline=True, better="lower"),
    KPI("people_exposed", "persons", "People in the flooded buildings (population column, else estimated: "
        "docs/flood.md).", headline=True, better="lower"),
    KPI("roads_impassable_km", "km", "Length of the roads deeper than road_closed_depth_m now.", better="lower"),
    KPI("roads_ever_impassable_km", "km", "Length of the roads that have been impassable so far.", better="lower"),
    KPI("critical_pois_flooded", "-", "Shelters, pumps, stations, hospitals and schools flooded so far.",
        better="lower"),
    KPI("rain_volume_m3", "m3", "Rain that fell on open ground so far."),
    KPI("inflow_volume_m3", "m3", "Water the inflow hydrographs brought in so far."),
    KPI("drained_volume_m3", "m3", "Water taken by uniform drainage, drain inlets and station entrances so far."),
    KPI("pumped_volume_m3", "m3", "Water pumped out so far.", better="higher"),
    KPI("outflow_volume_m3", "m3", "Water that left over open edges so far."),
    KPI("stored_volume_m3", "m3", "Water on the grid now."),
    KPI("volume_error_rel", "-", "Water balance error: |stored − (initial + rain + inflow − drained − pumped − "
        "outflow)| / (initial + rain + inflow)."),
    KPI("station_inflow_m3", "m3", "Water that flowed into the station through open entrances so far.",
        better="lower"),
    KPI("evacuees", "persons", "Residents of flooded buildings who have set off."),
    KPI("evacuated", "persons", "Evacuees who reached a shelter.", better="higher"),
    KPI("stranded", "persons", "Evacuees who cannot go on now (cut off, no shelter with room, or water too deep).",
        better="lower"),
    KPI("walking", "persons", "Evacuees on their way now."),
    KPI("waiting", "persons", "Residents of flooded buildings who have not set off yet."),
    KPI("mean_evacuation_time_s", "s", "Mean time from setting off to reaching a shelter (0 before anyone has).",
        better="lower"),
    KPI("evacuation_completion", "-", "Evacuated / residents who must leave their flooded buildings (all of them "
        "with evacuate_upper_floors, else the ground floors').", headline=True, better="higher"),
    KPI("wading_person_h", "person-h", "Time evacuees spent walking in water deeper than 0.1 m.", better="lower"),
    KPI("shelter_occupancy", "persons", "People in each shelter.", keyed=True),
    KPI("people_in_water", "persons", "Evacuees on their way or stranded standing in water now, by hazard class H1..H6 "
        "(AIDR 2017 by depth and speed; H3 and above is unsafe for children and the elderly).", keyed=True),
)


class FloodModel(CityModel):
    name = "flood"
    title = "Urban flood"
    description = ("Rain and inflows on the city's terrain (local-inertial shallow water), drains and pumps, what "
                   "the water reaches (buildings, roads, critical places) and the residents who walk to shelters.")
    params = PARAMS
    kpis = KPIS
    poi_kinds = POI_KINDS
    import_hook = IMPORT_HOOK
    city_layers = CITY_LAYERS
    layer_views = LAYER_VIEWS
    required_layers = ()
    optional_layers = ("buildings", "roads", "water", "drains", "pois", "gates")

    @classmethod
    def check_city(cls, city, params=None):
        return city_check.check(super().check_city(city, params), city, params)
    extra_layers = (
        LayerSpec("landuse", "raster", "land-use classes (0, 1, 2, ...) for manning_by_landuse"),
        LayerSpec("inflows", "vector", "inflow points or lines, each with id and hydrograph (a CSV path relative to "
                  "the city folder)", columns=("id", "hydrograph")),
        LayerSpec("barriers", "vector", "lines where temporary barriers can stand, with id (named in barriers)",
                  geometry="LineString", columns=("id",)),
    )
    aoi_layers = ("barriers",)  # the city's prepared barrier lines: where it expects water; else the city
    state_names = STATE_NAMES
    state_colours = STATE_COLOURS
    # Command-room alerts (a scenario's [alerts] edits them): water at a critical place (a shelter,
    # pump, the station, a hospital, a school): 0.15 m is over the kerb and into the ground floor,
    # 0.5 m stops people walking (walk_stop_depth_m); people stranded by the water.
    alerts = (
        AlertRule("critical_place_water", "Water at a shelter, pump, station, hospital or school: over 0.15 m "
                  "(amber), over 0.5 m (red).", amber=0.15, red=0.5, layer="pois", value="depth", unit="m"),
        AlertRule("stranded", "Evacuees stranded by the water (no passable road to a shelter with room).",
                  amber=1.0, red=50.0, kpi="stranded", unit="persons"),
        AlertRule("impassable_roads", "Length of road under more than road_closed_depth_m of water now.",
                  amber=1.0, red=5.0, kpi="roads_impassable_km", unit="km"),
    )
    # What live feeds may drive (docs/live.md): gauges' rain replaces the scenario's rain from its
    # first measurement on; the police's reports close and reopen roads.
    forcings = (
        Forcing("rain_mm_per_h", "mm/h", "Measured rain intensity (the mean of the gauges reporting at a time); from "
                "the first measurement on it replaces the scenario's rain.", ("rain", "hyetograph", "rain_scale")),
        Forcing("road_closed", "-", "A road the police report closed (1) or open again (0), by road id.",
                ("closed_roads", "road_closure_s"), layer="roads"),
    )
    field_styles = (
        FieldStyle("depth", "m", "Water depth now.", kind="surface", cmap="Blues", clim=(0.0, 1.0), shader="rippled_surface",
                   cutoff=0.03),
        FieldStyle("max_depth", "m", "Deepest water each cell has held.", kind="surface", cmap="Blues", clim=(0.0, 1.0),
                   shader="rippled_surface", cutoff=0.03),
        FieldStyle("velocity", "m/s", "Flow speed now (where deeper than 1 cm): the discharge through the cell's "
                   "faces divided by its depth.", cmap="magma", clim=(0.0, 2.0)),
        FieldStyle("max_velocity", "m/s", "Fastest flow each cell has seen (where deeper than 1 cm).", cmap="magma",
                   clim=(0.0, 2.0)),
        FieldStyle("arrival_time", "s", f"When the water first stood deeper than {FLOODED_DEPTH_M} m (no data: never).",
                   cmap="viridis"),
    )
    # Coupling (docs/coupling.md): the water, for models whose people or vehicles it stops.
    publishes = (
        Exchange("surface_water__depth", "field", "m", "Water depth now (NaN inside buildings)."),
        Exchange("surface_water__max_depth", "field", "m", "Deepest water each cell has held so far."),
        Exchange("surface_water__speed", "field", "m/s", "Flow speed now (0 where shallower than 1 cm)."),
    )
    feature_styles = (
        FeatureStyle("buildings", "flooded", "-", "Reached by water deeper than building_flood_depth_m.", kind="state",
                     states=("dry", "flooded"), colours=("", "#1f5fd6")),
        FeatureStyle("buildings", "max_depth", "m", "Deepest water around the building so far.", cmap="Blues",
                     clim=(0.0, 1.0)),
        FeatureStyle("buildings", "people", "persons", "People in the building (population column or estimate)."),
        FeatureStyle("roads", "state", "-", "Passable, impassable (deeper than road_closed_depth_m) or closed by the "
                     "police.", kind="state", states=("passable", "impassable", "closed"),
                     colours=("", "#d62728", "#ff7f0e")),
        FeatureStyle("roads", "depth", "m", "Deepest water on the road now.", cmap="Blues", clim=(0.0, 1.0)),
        FeatureStyle("pois", "depth", "m", "Water at a shelter, pump, station, hospital or school now.", label=True),
        FeatureStyle("pois", "sheltered", "persons", "People in the shelter.", label=True),
        FeatureStyle("gates", "entrance", "-", "Station entrance open or closed by the transport operator.",
                     kind="state", states=("open", "closed"), colours=("", "#d62728")),
    )

    def __init__(self, city, *, duration_s: float, seed: int, **params):
        super().__init__(city, duration_s=duration_s, seed=seed, **params)
        p = self.p
        self.report_interval_s = p["report_interval_s"]
        self._sync = p["sync_interval_s"]
        if abs(self.report_interval_s / self._sync - round(self.report_interval_s / self._sync)) > 1e-9:
            raise inputs.param_error("report_interval_s", f"{self.report_interval_s:g} s is not a multiple of "
                                     f"sync_interval_s ({self._sync:g} s).")
        self.buildings = city.buildings.reset_index(drop=True)
        self._build_grid()
        self._build_solver()
        self._build_roads()
        self.exposure = Exposure(self.raster, self.buildings, self.graph, self.critical, p["building_flood_depth_m"],
                                 p["road_closed_depth_m"], self.permanent)
        self.evacuation = Evacuation(self, self.graph, self.buildings, self.shelters, p, self.exposure.people,
                                     self.exposure.levels)

    # -- setup steps ----------------------------------------------------------------------------------
    def _build_grid(self) -> None:
        city, p = self.city, self.p
        self.raster = inputs.flood_raster(city, self.buildings, p["cell_size_m"])
        lines = inputs.parse_lines(p["barriers"], "barriers", city.extra_layer(self.extra_layers[2]), "barriers")
        self.barrier_cells = inputs.raise_barriers(self.raster, lines, p["barrier_height_m"], "barriers")
        self.water = inputs.water_bodies(city, p, self.raster)
        self.permanent = np.zeros(self.raster.grid.shape, bool)
        for w in self.water:
            self.permanent |= w.mask
        self.land = ~self.raster.blocked & ~self.permanent
        self.cell_area = self.raster.grid.cell_m ** 2

    def _build_solver(self) -> None:
        city, p, r = self.city, self.p, self.raster
        self.placer = inputs.PointPlacer(r, self.buildings)
        gates = city.layer("gates")
        self.entrance_ids = site.station_entrances(city, gates, ENTRANCE_KINDS)
        self.closed_entrance_ids = self._ids("closed_entrances")
        entrances = []
        for fid in self.entrance_ids:
            g = gates.geometry[gates["id"].astype(str) == fid].iloc[0]
            c = g.centroid
            entrances.append((fid, self.placer.cell(c.x, c.y, f"{city.gpkg}, layer 'gates', entrance {fid}")))
        self.sinks = inputs.point_sinks(city, p, self.placer, entrances, self.closed_entrance_ids)
        inflows = inputs.inflows(city, p, r, city.extra_layer(self.extra_layers[1]))
        manning = inputs.manning(city, p, r.grid, city.raster_path("landuse"))
        boundary = p["boundary"]
        if boundary == "auto":
            boundary = site.auto_boundary([w.mask for w in self.water])
        elif boundary == "open" and p["open_edges"]:
            bad = [e for e in p["open_edges"] if e not in ("north", "south", "west", "east")]
            if bad:
                raise inputs.param_error("open_edges", f'"{bad[0]}" is not an edge; use north, south, west or east.')
            boundary = {e: "open" for e in p["open_edges"]}
        rain = self.rain = inputs.rain(p, self.duration_s)
        depth = inputs.initial_depth(p, city.crs, r.grid)
        with inputs.reraise("cfl"):
            self.solver = FloodSolver(
                r.z, r.grid.cell_m, blocked=r.blocked, manning_n=manning, boundary=boundary, rain=rain,
                drainage_mm_per_h=p["drainage_mm_per_h"], drains=self.sinks.drains, pumps=self.sinks.pumps,
                inflows=inflows, initial_depth=depth, water_bodies=self.water, cfl=p["cfl"], theta=p["theta"],
                arrival_depth_m=FLOODED_DEPTH_M, sync_interval_s=self._sync)

    def _build_roads(self) -> None:
        city, p = self.city, self.p
        self.graph = city.road_graph() if city.has("roads") else None
        if self.graph is None:
            if p["closed_roads"]:
                raise inputs.param_error("closed_roads", "this city has no roads layer.")
            self.closed_road = np.zeros(0, bool)
            self.closed_edge = np.zeros(0, bool)
        else:
            idx = self.graph.road_index(self._ids("closed_roads"), f'{inputs.WHERE}: "closed_roads"')
            self.closed_road = np.zeros(len(self.graph.road_ids), bool)
            self.closed_road[idx] = True
            self.closed_edge = self.closed_road[self.graph.edge_road]
        pois = city.pois
        self.shelters = site.shelters(city, self.buildings, self.warn) if p["evacuate"] else \
            pois[pois["kind"] == "shelter"].reset_index(drop=True)
        # the shelters (tagged or estimated) last, in the evacuation's order; a school that stands in
        # as a shelter is listed once, as the shelter
        others = pois[pois["kind"].isin(CRITICAL_KINDS) & (pois["kind"] != "shelter")
                      & ~pois["id"].astype(str).isin(self.shelters["id"].astype(str))] if len(pois) else pois
        self.critical = pd.concat([others, self.shelters.drop(columns=["estimated"], errors="ignore")],
                                  ignore_index=True) if len(self.shelters) else others.reset_index(drop=True)

    def _ids(self, key: str) -> list[str]:
        """The ids a feature parameter names (ids, names or selectors; twin.core.features)."""
        return features.check_params(type(self), {key: self.p[key]}, self.city, inputs.WHERE).get(key, [])

    # -- time -----------------------------------------------------------------------------------------
    @property
    def time_quantum_s(self) -> float:
        return self._sync

    def _advance(self, t_s: float) -> None:
        while self.time < t_s and not math.isclose(self.time, t_s, rel_tol=0, abs_tol=1e-9 * max(1.0, t_s)):
            k = math.floor(self.time / self._sync + 1e-9) + 1
            t_next = min(k * self._sync, t_s)
            self.steps += self.solver.advance(t_next)
            dt = t_next - self.time
            self.time = t_next
            self._read_water(t_next, dt)

    def _read_water(self, t: float, dt: float) -> None:
        """After the water reached ``t``: impacts, closures, and the evacuees' last ``dt`` seconds."""
        s = self.solver
        new = self.exposure.update(t, s.h, s.max_depth)
        if self.p["evacuate"]:
            self.evacuation.add_households(t, new)
            announced = self.closed_edge if t >= self.p["road_closure_s"] else np.zeros_like(self.closed_edge)
            sh = self.exposure.poi_kind == "shelter"
            flooded = ~np.isnan(self.exposure.poi_flooded_at[sh])
            self.evacuation.update(t, dt, s.h, self._cell_of, self.exposure.edge_impassable(), announced, flooded)

    def _cell_of(self, xy: np.ndarray) -> np.ndarray:
        g = self.raster.grid
        r, c = g.index_of(xy[:, 0], xy[:, 1])
        return np.where(g.inside(r, c), r * g.nx + c, -1)

    # -- reading --------------------------------------------------------------------------------------
    def final_kpis(self) -> dict:
        held = site.held_water(self.solver.max_depth, self.land, self.solver.open_edges)
        if held:
            edges = ", ".join(f"{side} ({d:.1f} m)" for side, d in held.items())
            self.warn(f"the closed map edge(s) {edges} held water against them: the map cuts the terrain there, "
                      "and a closed edge acts as a wall. Use boundary = \"auto\" or \"open\" (or list them in "
                      "open_edges) to let the water run off.")
        return super().final_kpis()

    def current_kpis(self) -> dict:
        s, ex = self.solver, self.exposure
        b = s.balance()
        land_max = s.max_depth[self.land]
        flooded = ex.flooded
        people = int(ex.people[flooded].sum())
        roads_now = ex.road_impassable()
        n_entr = len(self.sinks.entrance_ids)
        entr = float(s.sink_m3[self.sinks.n_drains:self.sinks.n_drains + n_entr].sum())
        k = {
            "max_depth_m": float(land_max.max()) if land_max.size else 0.0,
            "flooded_area_m2": float(np.count_nonzero(s.h[self.land] > FLOODED_DEPTH_M)) * self.cell_area,
            "max_flooded_area_m2": float(np.count_nonzero(land_max > FLOODED_DEPTH_M)) * self.cell_area,
            "buildings_flooded": int(flooded.sum()),
            "people_exposed": people,
            "roads_impassable_km": float(ex.road_len_m[roads_now].sum()) / 1000.0,
            "roads_ever_impassable_km": float(ex.road_len_m[~np.isnan(ex.road_impassable_at)].sum()) / 1000.0,
            "critical_pois_flooded": int(np.count_nonzero(~np.isnan(ex.poi_flooded_at))),
            "rain_volume_m3": b["rain_volume_m3"],
            "inflow_volume_m3": b["inflow_volume_m3"],
            "drained_volume_m3": b["drained_volume_m3"],
            "pumped_volume_m3": b["pumped_volume_m3"],
            "outflow_volume_m3": b["outflow_volume_m3"],
            "stored_volume_m3": b["stored_volume_m3"],
            "volume_error_rel": b["volume_error_rel"],
            "station_inflow_m3": entr,
        }
        k.update(self.evacuation.kpis())
        k["people_in_water"] = self._in_water()
        return k

    def _in_water(self) -> dict[str, float]:
        """Evacuees outdoors (walking, stranded) by the hazard class of the water where they stand."""
        e = self.evacuation
        out = np.flatnonzero((e.p_state == WALKING) | (e.p_state == STRANDED)) if len(e.p_state) else []
        if not len(out):
            return dict.fromkeys(HAZARD_CLASSES, 0.0)
        return people_by_hazard(self.publish("surface_water__depth"), self.publish("surface_water__speed"),
                                np.asarray(e.p_xy[out], dtype=np.float64))

    def snapshot(self) -> Snapshot:
        e = self.evacuation
        show = np.flatnonzero(e.p_state != WAITING) if len(e.p_state) else np.zeros(0, np.int64)
        waiting = np.flatnonzero(e.p_state == WAITING)
        ids = np.concatenate([show, waiting]).astype(np.int64)
        return Snapshot(
            time_s=self.time_s,
            positions=np.asarray(e.p_xy[ids], dtype=np.float64).reshape(-1, 2),
            states=e.p_state[ids].astype(np.int8),
            state_names=self.state_names,
            ids=ids,
            fields={"depth": self._grid("depth", self.solver.h)},
            kpis={k: v for k, v in self.current_kpis().items() if not isinstance(v, dict)},
            features=self._features(),
        )

    def _features(self) -> dict[str, FeatureFrame]:
        ex = self.exposure
        out = {}
        if len(self.buildings):
            out["buildings"] = FeatureFrame(self.buildings["id"].astype(str).to_numpy(), {
                "flooded": ex.flooded.astype(np.int8),
                "max_depth": ex.bld_max_depth.copy(),
                "people": ex.people.astype(float),
            })
        if self.graph is not None:
            closed = self.closed_road & (self.time_s >= self.p["road_closure_s"])
            state = np.where(closed, 2, np.where(ex.road_impassable(), 1, 0)).astype(np.int8)
            out["roads"] = FeatureFrame(self.graph.road_ids, {"state": state, "depth": ex.road_depth.copy()})
        if len(self.critical):
            sheltered = np.full(len(self.critical), np.nan)
            sh = np.flatnonzero(ex.poi_kind == "shelter")
            sheltered[sh] = self.evacuation.sh_arrived.astype(float)
            out["pois"] = FeatureFrame(ex.poi_ids, {"depth": np.round(ex.poi_depth, 2), "sheltered": sheltered})
        if len(self.entrance_ids):
            closed = np.isin(self.entrance_ids, self.closed_entrance_ids) & (self.time_s >= self.p["entrance_close_s"])
            out["gates"] = FeatureFrame(self.entrance_ids, {"entrance": closed.astype(np.int8)})
        return out

    def _grid(self, name: str, values: np.ndarray, blocked_nan: bool = True) -> GridField:
        g = self.raster.grid
        v = np.asarray(values, dtype=np.float32).copy()
        if blocked_nan:
            v[self.raster.blocked] = np.nan
        style = self.field_style(name)
        return GridField(name, v, g.x0, g.y0, g.cell_m, unit=style.unit, doc=style.doc)

    def field_values(self, names, snapshot: Snapshot) -> dict[str, GridField]:
        out = super().field_values([n for n in names if n != "velocity"], snapshot)
        if "velocity" in names:
            out["velocity"] = self._grid("velocity", self.solver.speed())
        return out

    def publish(self, name: str) -> GridField:
        s = self.solver
        values = {"surface_water__depth": lambda: s.h, "surface_water__max_depth": lambda: s.max_depth,
                  "surface_water__speed": s.speed}[name]()
        g = self.raster.grid
        # a copy: the models that take it keep it until the next sync point, while the water moves on
        return GridField(name, np.array(values, dtype=np.float32), g.x0, g.y0, g.cell_m, unit="m/s" if
                         name.endswith("speed") else "m")

    def rasters(self) -> dict[str, GridField]:
        s = self.solver
        return {"max_depth": self._grid("max_depth", s.max_depth),
                "max_velocity": self._grid("max_velocity", s.max_speed),
                "arrival_time": self._grid("arrival_time", s.arrival_time)}

    def tables(self) -> dict:
        """``impacts.gpkg``: what the water reached, one row per wet building and road, every critical
        POI, and the station entrances (their state, for the station model)."""
        import geopandas as gpd

        ex, crs = self.exposure, self.city.crs
        layers = {}
        b = self.buildings
        if len(b):
            e = self.evacuation
            homes = e.hh_building[np.repeat(np.arange(len(e.hh_building)), e.hh_size)] if len(e.hh_size) else \
                np.zeros(0, np.int64)
            done = np.bincount(homes[e.p_state == SHELTERED], minlength=len(b)) if len(homes) else np.zeros(len(b))
            stuck = np.bincount(homes[e.p_state == STRANDED], minlength=len(b)) if len(homes) else np.zeros(len(b))
            wet = ex.bld_max_depth > 0
            layers["buildings"] = gpd.GeoDataFrame({
                "id": b["id"].astype(str)[wet], "name": b["name"][wet], "use": b["use"][wet],
                "people": ex.people[wet], "max_depth_m": ex.bld_max_depth[wet], "flooded": ex.flooded[wet],
                "flooded_at_s": ex.bld_flooded_at[wet], "evacuated": done[wet], "stranded": stuck[wet],
            }, geometry=b.geometry[wet].values, crs=crs)
        if self.graph is not None:
            roads = self.city.roads
            police = self.closed_road
            keep = (ex.road_max_depth > 0) | police
            layers["roads"] = gpd.GeoDataFrame({
                "id": self.graph.road_ids[keep], "name": roads["name"].to_numpy()[keep],
                "kind": roads["kind"].to_numpy()[keep], "length_m": ex.road_len_m[keep],
                "max_depth_m": ex.road_max_depth[keep], "impassable_at_s": ex.road_impassable_at[keep],
                "impassable_now": ex.road_impassable()[keep], "closed_by_police": police[keep],
            }, geometry=roads.geometry.values[keep], crs=crs)
        if len(self.critical):
            c = self.critical
            layers["pois"] = gpd.GeoDataFrame({
                "id": ex.poi_ids, "kind": ex.poi_kind, "name": c["name"].to_numpy(), "max_depth_m": ex.poi_max_depth,
                "flooded": ~np.isnan(ex.poi_flooded_at), "flooded_at_s": ex.poi_flooded_at,
            }, geometry=c.geometry.values, crs=crs)
        if len(self.entrance_ids):
            g = self.city.layer("gates")
            sel = g["id"].astype(str).isin(self.entrance_ids).to_numpy()
            ids = g["id"].astype(str).to_numpy()[sel]
            closed = np.isin(ids, self.closed_entrance_ids)
            pos = {fid: j for j, fid in enumerate(self.sinks.entrance_ids)}
            k = self.sinks.n_drains + np.array([pos[i] for i in ids], dtype=np.int64)
            layers["station_entrances"] = gpd.GeoDataFrame({
                "id": ids, "closed": closed, "closed_at_s": np.where(closed, self.p["entrance_close_s"], np.nan),
                "inflow_m3": self.solver.sink_m3[k],
            }, geometry=g.geometry.values[sel], crs=crs)
        return {"impacts": layers}

    # -- state ----------------------------------------------------------------------------------------
    state_attrs = (tuple(f"solver.{a}" for a in FloodSolver.STATE_ARRAYS + FloodSolver.STATE_SCALARS)
                   + tuple(f"exposure.{a}" for a in Exposure.STATE)
                   + tuple(f"evacuation.{a}" for a in Evacuation.STATE))
    # the water depths a filter may correct from the water-level gauges (docs/assimilation.md)
    correctable = (Correctable("solver.h", "depth", low=0.0),)

    # What a restored state may hold (docs/state_file.md): depths within physical bounds, the walkers'
    # route, shelter and node numbers within the tables they index.
    _EV = "evacuation."
    state_specs = (
        *StateSpec.each(("solver.h", "solver.max_depth"), low=0.0, high=MAX_DEPTH_M),
        *StateSpec.each(("solver.qx", "solver.qy", "solver.sink_m3", "solver.initial_m3", "solver.rain_m3",
                         "solver.inflow_m3", "solver.drained_uniform_m3", "solver.drained_inlets_m3",
                         "solver.pumped_m3", "solver.outflow_m3")),
        StateSpec("solver.max_speed", low=0.0),
        StateSpec("solver.arrival_time", nan=True, low=0.0),
        StateSpec("solver.t", low=0.0),
        StateSpec("solver.n_steps", low=0),
        *StateSpec.each(tuple(f"exposure.{a}" for a in Exposure.STATE if not a.endswith("_at")), low=0.0,
                        high=MAX_DEPTH_M),
        *StateSpec.each(tuple(f"exposure.{a}" for a in Exposure.STATE if a.endswith("_at")), nan=True, low=0.0),
        StateSpec(_EV + "hh_building", index_of=_EV + "people", rows=_EV + "people"),
        *StateSpec.each((_EV + "hh_first", _EV + "hh_size"), low=0, high=_EV + "max_people", rows=_EV + "people"),
        StateSpec(_EV + "hh_ready", rows=_EV + "people"),
        StateSpec(_EV + "hh_departed", rows=_EV + "people"),
        StateSpec(_EV + "p_state", low=0, high=len(STATE_NAMES) - 1, rows=_EV + "max_people"),
        StateSpec(_EV + "p_route", index_of=_EV + "routes", low=-1, rows=_EV + "max_people"),
        StateSpec(_EV + "p_shelter", index_of=_EV + "sh_taken", low=-1, rows=_EV + "max_people"),
        StateSpec(_EV + "p_node", index_of=_EV + "n_nodes", rows=_EV + "max_people"),
        *StateSpec.each((_EV + "p_s", _EV + "p_v0"), low=0.0, rows=_EV + "max_people"),
        StateSpec(_EV + "p_xy", rows=_EV + "max_people"),
        *StateSpec.each((_EV + "p_t_depart", _EV + "p_t_arrive"), nan=True, rows=_EV + "max_people"),
        *StateSpec.each((_EV + "sh_taken", _EV + "sh_arrived", _EV + "wading_s"), low=0),
        *StateSpec.each((_EV + "sh_open", _EV + "known_closed")),
        StateSpec(_EV + "routes.indptr", low=0, rows=_EV + "MAX_ROUTE_POINTS"),
        *StateSpec.each((_EV + "routes.xy", _EV + "routes.cum"), rows=_EV + "MAX_ROUTE_POINTS"),
        StateSpec(_EV + "routes.edge", index_of=_EV + "n_edges", low=-1, rows=_EV + "MAX_ROUTE_POINTS"),
        StateSpec(_EV + "routes.node", index_of=_EV + "n_nodes", low=-1, rows=_EV + "MAX_ROUTE_POINTS"),
    )
    del _EV

    def check_restored_state(self) -> None:
        self.evacuation.check_restored()

    # Two kinds of state saved with other parameters come back here. A branch into a variant with more
    # (mobile) pumps restores a state with fewer sinks: the pumps it adds come last and have taken
    # nothing yet. A state saved at another cell size (a live twin at 2 m, its forecast's members at
    # 4 m) is resampled onto this grid, its water volume kept (regrid).
    def saved_rows(self, saved, shapes):
        out = {}
        held = shapes.get("solver.sink_m3")
        if held and len(held) == 1 and held[0] < self.solver.n_sinks:
            out["solver.sink_m3"] = held[0]
        cell = self._saved_cell_m(saved, shapes.get("solver.h"))
        if cell is not None:
            out.update(regrid.saved_shapes(*shapes["solver.h"]))
        return out

    def adapt_state(self, arrays, meta):
        held = arrays.get("solver.sink_m3")
        n = self.solver.n_sinks
        if held is not None and np.ndim(held) == 1 and len(held) < n:
            arrays = {**arrays, "solver.sink_m3": np.concatenate([held, np.zeros(n - len(held), held.dtype)])}
        h = arrays.get("solver.h")
        cell = self._saved_cell_m(meta, None if h is None else h.shape)
        if cell is not None and all(np.shape(arrays.get(p)) == s for p, s in regrid.saved_shapes(*h.shape).items()):
            arrays = regrid.regrid(arrays, cell, self.raster.grid.cell_m, self.raster.blocked,
                                   FLOODED_DEPTH_M)
        return arrays, meta  # anything still not this model's: set_state's checks say what is wrong

    def _saved_cell_m(self, saved, shape) -> float | None:
        """The cell size of a state saved on a grid of another cell size over the same DEM (its
        grid arrays then have ``shape``), else None."""
        params = saved.get("params") if isinstance(saved, dict) else None
        cell = params.get("cell_size_m") if isinstance(params, dict) else None
        if shape is None or len(shape) != 2 or not isinstance(cell, (int, float)) or isinstance(cell, bool):
            return None
        dem = self.city.terrain.grid
        cell = float(cell) or float(dem.cell_m)
        if not cell > 0 or math.isclose(cell, self.raster.grid.cell_m, rel_tol=1e-9):
            return None
        ny, nx = dem.values.shape
        grid = (max(1, math.ceil(ny * dem.cell_m / cell - 1e-9)), max(1, math.ceil(nx * dem.cell_m / cell - 1e-9)))
        # (at most 8 times finer than this grid: what a file claims is not allocated unbounded)
        return cell if tuple(shape) == grid and grid[0] * grid[1] <= 64 * self.solver.h.size else None

    # -- live feeds ---------------------------------------------------------------------------------
    def forced_parameters(self, quantity, readings):
        if quantity == "rain_mm_per_h":
            r = self.rain
            planned = [] if r is None else ([[e, i] for e, i in zip(r.edges_s[:-1], r.intensity_mm_per_h)]
                                            + [[r.edges_s[-1], 0.0]])
            measured = [(t, min(max(v, 0.0), 1000.0)) for t, _, v in readings]  # a noisy gauge can read below 0
            # what the gauges measure is the rain: no factor on top of it
            return {"rain": "hyetograph", "hyetograph": splice_series(planned, measured), "rain_scale": 1.0}
        if quantity == "road_closed":
            last: dict[str, tuple[float, float]] = {}
            for t, road, v in readings:
                last[road] = (t, v)
            closed = sorted(r for r, (t, v) in last.items() if v >= 0.5)
            since = min((last[r][0] for r in closed), default=0.0)
            return {"closed_roads": closed, "road_closure_s": max(0.0, since)}
        return {}

    def forcing_values(self, quantity):
        t = self.time_s
        if quantity == "rain_mm_per_h":
            r = self.rain
            if r is None or t < r.edges_s[0] or t >= r.edges_s[-1]:
                return {"": 0.0}
            return {"": float(r.intensity_mm_per_h[np.searchsorted(r.edges_s, t, side="right") - 1])}
        if quantity == "road_closed" and self.p["closed_roads"]:
            return {str(r): float(t >= self.p["road_closure_s"]) for r in self.p["closed_roads"]}
        return {}

    def on_restore(self, same_params: bool) -> None:
        s = self.solver
        s._h_peak = float(s.h.max())  # the step length follows from the deepest water
        self.evacuation.rebuild_agents()
