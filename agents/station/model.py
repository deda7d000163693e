"""Crowd dispersal at a railway station (model ``station_dispersal``).

Trains release passengers (``sources``, or the scenario's own timetable); they walk through the
station (collision-free speed model or social force model, Numba kernels over numpy arrays), up
or down stairs and escalators between levels, through the ticket gates to an exit gate chosen by
route cost, leave, walk to their onward metro entrance, bus stop or taxi rank, queue there and
board. docs/station.md describes the model, its parameters, references and measured figures.

Per-step state (positions, velocities, desired speeds, targets, levels, holds, states) lives in
numpy arrays; one ``step`` calls a handful of whole-array operations and no per-agent Python
code. Mesa is used for the model clock, the seeded generator and the data collector; passengers
are rows, not Mesa agents.

Levels and connectors: each level has its own navigation fields; a passenger on a level heads
for an exit, a ticket gate bank or the foot of a stair or escalator on that level, chosen by the
expected time to her onward destination over the waypoint graph (``kernels.route_tables``). At
the foot she queues: the connector admits one passenger per headway (stairs: a specific flow per
metre of effective width; escalators: the capacity of their steps), she leaves the walking crowd,
climbs or rides for the connector's travel time and appears beyond its other end on the other
level (later if the landing is full: nobody ends between levels).

Density (for ``max_density_ppm2``, the ``density`` field and LOS): every ``density_interval_s``
the walking passengers of each level are counted on a 1 m grid, the counts are smoothed with a
separable [1/4, 1/2, 1/4] tent (about a 2 x 2 m window) and divided by the walkable area under
the same tent. Fruin's walkway LOS of the worst (densest) cell is accumulated in ``los_seconds``
while anyone is in the station.
"""
from __future__ import annotations

import math
from operator import attrgetter

import numpy as np
import shapely

from twin.core.errors import UserError
from twin.core.grid import GridField
from agents.water_hazard import CLASSES as HAZARD_CLASSES, people_by_hazard, wading_speed_factor
from .los import LOS_COLOURS, LOS_DENSITY_PPM2, LOS_LETTERS, los_letter
from twin.core.model_contract import (KPI, AlertRule, CityModel, Exchange, FeatureFrame, FeatureStyle, FieldStyle, FilePath,
                                      Forcing, LayerSpec, Param, Snapshot, StateSpec)

from . import kernels as K
from .crowd import Crowd, MotionParams
from .demand import Train, apply_delays, cancelled_trains, check_total, scaled, trains_from_params
from .geometry import MODES, ONWARD_KINDS, TICKET_SERVICE_S, build_station, select_ids
from .navigation import Floors, build_navigation, rasterize
from .transport import Onward
from .city_import import CITY_LAYERS, LAYER_VIEWS, BUILDING_USES, POI_KINDS
from .drawing_import import STATION_IMPORT_HOOK
from . import city_check

WALKING, QUEUEING, EXITED, ONWARD, BOARDED, CHANGING_LEVEL = 0, 1, 2, 3, 4, 5
PENDING = -1

REPORT_INTERVAL_S = 10.0
# Release: each step a source lets at most this many passengers appear (a train door's worth), each
# placed at the first of a few random candidate points that keeps a small gap to everyone.
MAX_RELEASE_PER_STEP = 64
RELEASE_CANDIDATES = 6
RELEASE_GAP_M = 0.02  # clearance between bodies at release, beyond touching
RELEASE_WALL_CLEARANCE_M = 0.2  # release points keep this much beyond a body radius from walls
# Density: a 1 m grid; cells with less walkable area than this under the tent are not drawn/counted.
DENSITY_CELL_M = 1.0
MIN_DENSITY_AREA_M2 = 0.25
# The view draws people queueing at an onward POI on a sunflower spiral around it (golden angle);
# the index is taken modulo a prime so large queues wrap without lining up.
QUEUE_SPACING_M = 0.45
GOLDEN_ANGLE = 2.39996
QUEUE_SPIRAL_WRAP = 997
# Stairs and escalators.
STAIR_EDGE_M = 0.15  # boundary layer on each side of a stair (SFPE Handbook: effective width = width - 0.3 m)
STAIR_MAX_DENSITY_PPM2 = 2.5  # a stair holds at most this many people per m² of its slope (a standing queue)
ESCALATOR_STEP_DEPTH_M = 0.4  # EN 115-1: the capacity formula's step depth
# EN 115-1 (Annex H / §5.4): persons per step by nominal step width (0.6, 0.8, 1.0 m)
ESCALATOR_PERSONS_PER_STEP = ((0.6, 1.0), (0.8, 1.5), (1.0, 2.0))
LANDING_FALLBACK_M = 2.0
LANE_DWELL_SHARE = 0.5  # a passenger stands in a ticket lane at least this share of its service time
V_REF_MPS = 1.34  # the speed at which route costs compare metres with seconds


P = Param
_MP = MotionParams()  # the physical defaults live in one place: crowd.MotionParams
PARAMS = (
    P("motion_model", "-", "collision_free",
      "Walking model: collision_free (Tordeux et al. 2016, as JuPedSim's CollisionFreeSpeedModel) or "
      "social_force (Helbing et al. 2000).", str, choices=("collision_free", "social_force")),
    P("desired_speed_mps", "m/s", 1.34, "Mean free walking speed (Weidmann 1993).", float, 0.3, 3.0),
    P("desired_speed_sd_mps", "m/s", 0.26, "Standard deviation of free speeds; draws are truncated to 0.5-2.0 m/s.",
      float, 0.0, 1.0),
    P("body_radius_m", "m", _MP.radius, "Body radius when walking at the free speed; 2 x radius is the contact "
      "distance of two walkers (the social force model's one radius).", float, 0.1, 0.35),
    P("body_radius_standing_m", "m", _MP.radius_standing,
      "Body radius when standing (queueing): the body grows linearly from body_radius_m as a person slows "
      "down, as the lateral semi-axis of the generalised centrifugal-force model (Chraibi et al. 2010); "
      "0.21 m packs standing queues to about 6.5 persons/m².", float, 0.1, 0.4),
    P("time_gap_s", "s", _MP.time_gap, "Collision-free model: time gap T in v = min(v0, spacing / T).",
      float, 0.3, 3.0),
    P("narrow_time_gap_s", "s", _MP.t_narrow,
      f"Collision-free model: time gap in passages too narrow for two abreast (clear width <= {_MP.w_single} m; "
      f"it rises linearly to time_gap_s at {_MP.w_wide} m): people close up and interleave there (zipper).",
      float, 0.3, 3.0),
    P("repulsion_strength", "-", _MP.a_rep, "Collision-free model: neighbour repulsion strength a.", float, 0.0, 20.0),
    P("repulsion_range_m", "m", _MP.d_rep, "Collision-free model: neighbour repulsion range D.", float, 0.02, 1.0),
    P("time_step_s", "s", 0.0, "Time step; 0 = automatic (0.05 s collision-free, 0.01 s social force).",
      float, 0.0, 0.2),
    P("release_spread_s", "s", 60.0, "Each train's passengers appear spread evenly over this period.", float, 0.0, 1800.0),
    P("stagger_releases_s", "s", 0.0, "Extra spacing added between successive train releases (intervention).",
      float, 0.0, 1800.0),
    P("timetable", "-", "", "Trains of this scenario: a CSV file with the columns platform,arrival_s,passengers "
      "(platform = a source id). Replaces the count and release_s of the city's sources.", FilePath,
      suffixes=(".csv", ".txt")),
    P("trains", "-", [], 'Trains inline, one text per train: "platform arrival_s passengers", e.g. "P1 0 1500". '
      "Replaces the city's source counts (added to the timetable's trains when both are given).", list),
    P("train_delays", "-", [], 'Delays reported live (GTFS-realtime), one text each: "platform delay_s reported_s", '
      'e.g. "P3 480 300": the platform\'s trains not arrived by the report come delay_s later (a later report '
      "replaces it for the trains still to come).", list),
    P("train_cancellations", "-", [], 'Trains cancelled live (GTFS-realtime), one text each: "platform arrival_s '
      'reported_s", e.g. "P3 900 300": the platform\'s train planned to arrive nearest to arrival_s (within 90 s) does '
      "not come, unless it had arrived by the report; its passengers are not simulated.", list),
    P("gtfs_stop_times", "-", "", "A GTFS stop_times.txt: every trip arriving at gtfs_stop_ids after gtfs_start_time "
      "and within the run is a train of passengers_per_train (on the source whose id is the stop id, else on the "
      "platforms in turn).", FilePath, suffixes=(".txt", ".csv")),
    P("gtfs_stop_ids", "-", [], "The station's stop ids in the GTFS feed (empty: every stop in the file).", list),
    P("gtfs_start_time", "-", "", "Clock time (HH:MM:SS) of the start of the run in the GTFS feed (empty: the first "
      "arrival).", str),
    P("passengers_per_train", "persons", 300, "Passengers leaving each GTFS train at the station.", int, 0, 5000),
    P("demand_scale", "-", 1.0, "Multiplies every train's passengers (or the sources' counts).", float, 0.0, 10.0),
    P("share_metro", "-", 0.45, "Share of passengers continuing by metro.", float, 0.0, 1.0),
    P("share_bus", "-", 0.25, "Share continuing by bus.", float, 0.0, 1.0),
    P("share_taxi", "-", 0.05, "Share continuing by taxi.", float, 0.0, 1.0),
    P("share_walk", "-", 0.25, "Share leaving on foot (done at the gate).", float, 0.0, 1.0),
    P("open_gates", "-", [], 'Gates to open regardless of the gates layer: ids, or selectors such as '
      '"kind=ticket_gate level=0" (every ticket gate on level 0).', list,
      refers_to="gates"),
    P("closed_gates", "-", [], "Gates to close regardless of the gates layer (ids or selectors).", list,
      refers_to="gates"),
    P("tourist_share", "-", 0.0, "Share of the passengers who are tourists: they leave on foot (whatever the share_* "
      "draw), and in a run coupled with a tourist model they arrive in the city at the exit they left by "
      "(docs/coupling.md).", float, 0.0, 1.0),
    P("flood_close_depth_m", "m", 0.15, "Coupled with a flood (docs/coupling.md): an exit whose water has stood deeper "
      "than this closes for the rest of the run; passengers heading for it choose another exit.", float, 0.0, 10.0),
    P("flood_stop_depth_m", "m", 0.5, "Coupled with a flood: passengers on the street level (level 0) stop where the "
      "water is deeper than this; shallower water slows them (docs/coupling.md).", float, 0.05, 10.0),
    P("guidance_share", "-", 0.0, "Share of passengers guided by live crowd information (city brain).",
      float, 0.0, 1.0),
    P("guidance_gates", "-", [], "Gates guided passengers may be sent to (ids or selectors; empty: all open gates).",
      list, refers_to="gates"),
    P("barriers", "-", [], "Extra obstacles: WKT polygons/lines in the city CRS (on level 0), or ids of obstacles "
      "with optional = true.", list,
      refers_to="obstacles", draws=("Polygon", "LineString")),
    P("closed_connectors", "-", [], 'Stairs and escalators to close (ids, or selectors such as "kind=escalator '
      'level=1").', list, refers_to="connectors"),
    P("open_connectors", "-", [], "Stairs and escalators to open though the connectors layer has them closed "
      '(open = false), e.g. spare stairs: ids or selectors such as "kind=stairs".', list,
      refers_to="connectors"),
    P("reverse_connectors", "-", [], 'Escalators (or one-way stairs) to run the other way: ids or selectors such as '
      '"kind=escalator direction=up" (every up escalator runs down).', list,
      refers_to="connectors"),
    P("stair_speed_up_mps", "m/s", 0.61, "Horizontal walking speed up stairs of a person with the mean free speed "
      "(Weidmann 1993: 0.61 m/s); each person's scales with her own free speed.", float, 0.1, 2.0),
    P("stair_speed_down_mps", "m/s", 0.694, "Horizontal walking speed down stairs (Weidmann 1993: 0.694 m/s).",
      float, 0.1, 2.0),
    P("stair_flow_pps_per_m", "1/(m s)", 1.01, "Most persons per second a stair passes per metre of effective width "
      "(width - 0.3 m; SFPE Handbook, Nelson & Mowrer: 1.01 for 7/11 in. steps; Fruin's LOS E bound is 0.93).",
      float, 0.1, 3.0),
    P("escalator_fill", "-", 0.73, "Share of the EN 115 theoretical capacity an escalator carries in practice "
      "(0.73 x 150/min = 110/min for a 1 m step at 0.5 m/s; observed 100-120/min).", float, 0.1, 1.0),
    P("escalator_walk_share", "-", 0.25, "Share of escalator users who walk on the moving steps (at their stair "
      "speed plus the belt); the others stand.", float, 0.0, 1.0),
    P("lift_share", "-", 0.1, "Share of passengers who take a lift where their route offers one (luggage, prams, "
      "wheelchairs); the others keep to stairs and escalators unless a lift is the only way.", float, 0.0, 1.0),
    P("reroute_interval_s", "s", 3.0, "How often exit choice is re-evaluated.", float, 0.5, 60.0),
    P("reroute_hysteresis_s", "s", 10.0, "A passenger switches exit only if it saves more than this.", float, 0.0, 300.0),
    P("perception_radius_m", "m", 20.0, "Unguided passengers see a gate's queue only within this walking distance.",
      float, 0.0, 1000.0),
    P("route_noise_s", "s", 5.0, "Spread of personal preferences between exits (sd of a fixed cost offset).",
      float, 0.0, 120.0),
    P("ticket_service_time_s", "s", TICKET_SERVICE_S,
      "Ticket gates (gates of kind ticket_gate): time a lane needs per passenger (validate, wing cycle, step "
      "through); 2.4 s is 25 passengers/min, the design figure of ticket-gate standards (RIS, London "
      "Underground SPSG). A gate's own service_time_s column overrides it.", float, 0.1, 30.0),
    P("gate_flow_pps_per_m", "1/(m s)", 1.3, "Specific flow a gate serves, for the expected queue time.", float, 0.2, 5.0),
    P("queue_radius_m", "m", 6.0, "Passengers within this walking distance of a gate count as its queue.",
      float, 1.0, 50.0),
    P("onward_detour_factor", "-", 1.3, "Walking distance gate to POI = straight distance x this.", float, 1.0, 3.0),
    P("metro_headway_s", "s", 120.0, "Metro: time between trains.", float, 30.0, 3600.0),
    P("metro_capacity", "persons", 400, "Metro: boarders per train per entrance (POI capacity overrides).", int, 1, 5000),
    P("bus_headway_s", "s", 300.0, "Bus: time between buses at each stop.", float, 30.0, 7200.0),
    P("bus_capacity", "persons", 80, "Bus: passengers per bus (POI capacity overrides).", int, 1, 300),
    P("extra_buses_per_hour", "1/h", 0.0, "Extra buses per hour at every stop (intervention).", float, 0.0, 120.0),
    P("taxi_rate_per_min", "1/min", 10.0, "Taxis departing per minute at each rank.", float, 0.1, 120.0),
    P("taxi_pax_per_car", "persons", 2, "Passengers per taxi.", int, 1, 8),
    P("grid_cell_m", "m", 0.25, "Cell size of the navigation fields.", float, 0.05, 1.0),
    P("density_interval_s", "s", 1.0, "How often density, max density and LOS are sampled.", float, 0.1, 60.0),
)

KPIS = (
    KPI("agents_total", "persons", "Passengers released so far (all of them at the end)."),
    KPI("agents_exited", "persons", "Passengers who left the station through a gate.", headline=True, better="higher"),
    KPI("clearance_time_s", "s", "Time the last passenger boarded or left the area (elapsed time while "
        "anyone remains).", headline=True, better="lower"),
    KPI("station_clearance_time_s", "s", "Time the last passenger left the station through a gate (elapsed time "
        "while anyone remains inside or is still to arrive).", better="lower"),
    KPI("mean_egress_time_s", "s", "Mean time from appearing to boarding / leaving the area (finished ones; 0 before).",
        headline=True, better="lower"),
    KPI("p95_egress_time_s", "s", "95th percentile of the egress time (finished ones; 0 before).", better="lower"),
    KPI("mean_station_time_s", "s", "Mean time from appearing to passing a gate (0 before anyone).", better="lower"),
    KPI("mean_onward_wait_s", "s", "Mean wait in the onward queue of those who boarded (0 before).", better="lower"),
    KPI("max_density_ppm2", "persons/m2", "Highest density so far on any level (1 m grid, ~2 x 2 m tent window).",
        headline=True, better="lower"),
    KPI("density_ppm2", "persons/m2", "Highest density now."),
    KPI("agents_in_station", "persons", "Passengers walking in the station now."),
    KPI("agents_changing_level", "persons", "Passengers on stairs or escalators now."),
    KPI("agents_waiting_onward", "persons", "Passengers walking to or queueing at their onward transport."),
    KPI("agents_done", "persons", "Passengers who boarded or walked away.", better="higher"),
    KPI("people_in_water", "persons", "Passengers outside the station (on their way onward, queueing at a stop) standing in flood water now, by hazard class H1..H6 (AIDR 2017; H3 and "
        "above is unsafe for children and the elderly). Coupled with a flood only (docs/coupling.md).", keyed=True),
    KPI("exited_by_gate", "persons", "Passengers who left through each gate so far.", keyed=True),
    KPI("tourists_exited", "persons", "Passengers who are tourists (tourist_share) and left through a gate so far."),
    KPI("los_seconds", "s", "Seconds the densest area spent at each Fruin walkway LOS (A-F).", per_step=False,
        keyed=True),
    KPI("boarded_by_poi", "persons", "Passengers who boarded at each onward POI.", per_step=False, keyed=True),
    KPI("passed_by_ticket_gate", "persons", "Passengers who validated at each ticket gate.", per_step=False,
        keyed=True),
    KPI("passed_by_connector", "persons", "Passengers who took each stair or escalator.", per_step=False, keyed=True),
    KPI("max_density_by_level", "persons/m2", "Highest density so far on each level.", per_step=False, keyed=True),
)

CONNECTORS = LayerSpec(
    "connectors", "vector",
    "stairs, escalators and lifts between levels: a LineString from the lower end to the upper end (a lift: "
    "from its lower door to its upper door) with id, kind (stairs, escalator or lift), from_level, to_level, "
    "width_m, and optionally direction (both, up, down), speed_mps (escalators, default 0.5), capacity and "
    "cycle_s (lifts: persons per trip, default 13, and the round trip, default 60 s) and open (default true)",
    geometry="LineString", columns=("id", "kind", "from_level", "to_level", "width_m"))


def persons_per_step(width_m: float) -> float:
    """EN 115-1: 1, 1.5 or 2 persons per step for 0.6, 0.8 or 1.0 m steps (interpolated)."""
    w, k = zip(*ESCALATOR_PERSONS_PER_STEP)
    return float(np.interp(width_m, w, k))


# the per-passenger draws, each from streams of its own beside the model's seed (_per_passenger): a
# share changes no other draw
TOURIST_STREAM = 0x746F7572  # who is a tourist
LIFT_STREAM = 0x6C696674  # who takes lifts
SPEED_STREAM, MODE_STREAM, GUIDED_STREAM, ROUTE_STREAM, ESCALATOR_STREAM, DEST_STREAM = range(1, 7)
LIFT_AVOID_S = 3600.0  # what a lift (or a waypoint that only leads on by lift) costs the others' routes
GATE_WATER_RADIUS_M = 3.0  # the water at an exit: the deepest within this of its middle (the street outside)


# The state arrays with a row per passenger, and the walking crowd's (a row per place, as many as
# passengers): a run continued with another demand_scale has other numbers of them (adapt_state).
# the parameters that change only trains yet to come: a run continued with others keeps its routes (adapt_state)
TIMETABLE_PARAMS = ("demand_scale", "train_delays", "train_cancellations")
NOISE_KEYS = 2 ** 30  # keys of the heading noise (shifted past the step count, which stays below 2**32)
TRAIN_KEYS = 2 ** 62  # keys of a train's per-passenger draws (0: the model's seed alone)
TRAIN_KEY_STREAM = 0x7472616E  # the reseed entropy's stream for the keys of the trains yet to come
PASSENGER_ARRAYS = ("state", "t_appear", "t_exit", "t_poi", "t_done", "gate_of", "poi_of", "exit_xy", "lane_of",
                    "t_validated", "conn_e", "came_from", "t_on", "t_off")
CROWD_ARRAYS = ("crowd.x", "crowd.y", "crowd.vx", "crowd.vy", "crowd.v0", "crowd.tgt", "crowd.ids", "crowd.lv",
                "crowd.hold", "crowd.board", "crowd.paid")

class StationDispersalModel(CityModel):
    name = "station_dispersal"
    title = "Station crowd dispersal"
    description = ("Passengers leave trains, walk through the station, up and down its stairs and escalators, to "
                   "an exit (collision-free speed or social force model) and continue by metro, bus, taxi or on foot.")
    params = PARAMS
    kpis = KPIS
    building_uses = BUILDING_USES
    poi_kinds = POI_KINDS
    import_hook = STATION_IMPORT_HOOK
    city_layers = CITY_LAYERS
    layer_views = LAYER_VIEWS
    required_layers = ("walkable", "gates", "sources")
    optional_layers = ("obstacles", "pois")
    extra_layers = (CONNECTORS,)

    @classmethod
    def check_city(cls, city, params=None):
        return city_check.check(super().check_city(city, params), city, CONNECTORS)
    state_names = ("walking", "queueing", "exited", "onward", "boarded", "changing_level")
    report_interval_s = REPORT_INTERVAL_S
    aoi_layers = ("walkable", "gates", "sources")
    field_styles = (
        FieldStyle("density", "persons/m2", "Walking passengers per m² (1 m grid, ~2 x 2 m tent window; one band per "
                   "level), coloured by Fruin's walkway level of service.", kind="heat", clim=(0.0, 3.0),
                   bands=LOS_DENSITY_PPM2, colours=LOS_COLOURS, shader="banded_heat", cutoff=0.02),
        FieldStyle("max_density", "persons/m2", "Highest density each cell reached during the run (one band per "
                   "level).", kind="heat", clim=(0.0, 3.0), bands=LOS_DENSITY_PPM2, colours=LOS_COLOURS,
                   shader="banded_heat", cutoff=0.02),
    )
    feature_styles = (
        FeatureStyle("gates", "state", "-", "Open or closed in this variant.", kind="state",
                     states=("closed", "open"), colours=("#d62728", "#2ca02c")),
        FeatureStyle("gates", "queue", "persons", "Passengers within queue_radius_m walking distance of the gate.",
                     cmap="YlOrRd", clim=(0.0, 100.0), label=True),
        FeatureStyle("gates", "exited", "persons", "Passengers who left through the gate so far.", cmap="Blues"),
        FeatureStyle("gates", "density", "persons/m2", "Highest density within queue_radius_m of the gate now (Fruin "
                     "walkway LOS E from 1.08, F from 2.17 persons/m²).", cmap="YlOrRd", clim=(0.0, 3.0)),
        FeatureStyle("pois", "waiting", "persons", "Passengers queueing for this metro, bus or taxi.", cmap="YlOrRd",
                     clim=(0.0, 200.0), label=True),
    )
    # Command-room alerts (scenario [alerts] edits them): Fruin's walkway LOS E is amber, F red.
    # What live feeds may drive (docs/live.md): the railway's GTFS-realtime delays, per platform.
    forcings = (Forcing("train_delay_s", "s", "A train's delay at its platform (the GTFS-realtime stop id is the "
                        "platform, a source id): the platform's trains not arrived yet come that much later.",
                        ("train_delays",), layer="sources"),
                Forcing("cancelled_arrival_in_s", "s", "A cancelled train (a GTFS-realtime trip CANCELED, or its stop "
                        "SKIPPED): the seconds from the report to its planned arrival at its platform (the stop id, "
                        "a source id); that train does not come.", ("train_cancellations",), layer="sources"))
    alerts = (
        AlertRule("density_los", "The densest area now at Fruin walkway level of service E (amber) or F (red).",
                  amber=LOS_DENSITY_PPM2[3], red=LOS_DENSITY_PPM2[4], kpi="density_ppm2", field="density"),
        AlertRule("gate_los", "Level of service E (amber) or F (red) at a gate: the highest density within "
                  "queue_radius_m of it.", amber=LOS_DENSITY_PPM2[3], red=LOS_DENSITY_PPM2[4], layer="gates",
                  value="density"),
        AlertRule("gate_queue", "A long queue at a gate (passengers within queue_radius_m).", amber=60, red=120,
                  layer="gates", value="queue"),
        AlertRule("onward_queue", "Many passengers waiting for a metro, bus or taxi.", amber=150, red=300,
                  layer="pois", value="waiting"),
    )
    # Coupling (docs/coupling.md): the deepest water so far closes the exits it reached.
    accepts = (Exchange("surface_water__max_depth", "field", "m", "Deepest water each place has held (the flood's "
                        "max_depth): exits where it exceeds flood_close_depth_m close."),
               Exchange("surface_water__depth", "field", "m", "Water depth now, where passengers outside stand."),
               Exchange("surface_water__speed", "field", "m/s", "Flow speed now (hazard classes, people_in_water)."))
    publishes = (Exchange("station_exit__tourists_left", "features", "persons", "Passengers who are tourists "
                          "(tourist_share) and left through each exit so far (cumulative, on the gates layer)",
                          layer="gates"),)
    # Everything a step changes; the rest (geometry, fields, draws per passenger) is rebuilt from
    # the city, the parameters and the seed.
    state_attrs = (
        "crowd.x", "crowd.y", "crowd.vx", "crowd.vy", "crowd.v0", "crowd.tgt", "crowd.ids", "crowd.lv",
        "crowd.hold", "crowd.board", "crowd.paid", "crowd.n", "crowd.step_no", "crowd.noise_key",
        "state", "t_appear", "t_exit", "t_poi", "t_done", "gate_of", "poi_of", "exit_xy", "src_ptr", "src_sizes", "n_released",
        "train_keys", "lane_of", "lane_free_at", "passed_by_ticket", "t_validated",
        "conn_e", "came_from", "t_on", "t_off", "entry_free_at", "entry_places", "conn_load", "passed_by_connector",
        "n_transit",
        "queue_s", "_next_reroute", "exited_by_gate", "last_exit_t", "last_done_t",
        "d_field", "d_max", "_next_density", "density_now", "max_density", "los",
        "onward.next_dep", "onward.boarded_by_poi", "onward.departures",
    )
    # What a restored state may hold (docs/state_file.md): the kernels index with these integers.
    state_specs = (
        *StateSpec.each(("crowd.x", "crowd.y", "crowd.vx", "crowd.vy", "exit_xy", "last_exit_t", "last_done_t",
                         "onward.next_dep")),
        *StateSpec.each(("crowd.v0", "lane_free_at", "entry_free_at", "d_field", "d_max", "density_now",
                         "max_density", "los"), low=0.0),
        # per target: a run continued as another variant (other ticket banks open) has another number
        StateSpec("queue_s", low=0.0, rows="max_targets"),
        StateSpec("crowd.hold", inf=True),  # -inf: not held; a time: held until then
        *StateSpec.each(("_next_reroute", "_next_density"), inf=True),
        *StateSpec.each(("t_appear", "t_exit", "t_poi", "t_done", "t_validated", "t_on", "t_off"), nan=True),  # NaN: not yet
        StateSpec("crowd.tgt", index_of="max_targets"),  # and below this variant's T: on_restore
        StateSpec("crowd.ids", index_of="state"),
        StateSpec("crowd.lv", index_of="floors.navs"),
        StateSpec("came_from", index_of="floors.navs", low=-1),
        *StateSpec.each(("crowd.board", "conn_e"), index_of="entries", low=-1),
        StateSpec("crowd.n", low=0, high="crowd.cap"),
        StateSpec("crowd.step_no", low=0),
        StateSpec("crowd.noise_key", low=0, high=NOISE_KEYS - 1),
        StateSpec("crowd.paid"),
        StateSpec("state", low=PENDING, high=CHANGING_LEVEL),
        StateSpec("gate_of", index_of="exited_by_gate", low=-1),
        StateSpec("poi_of", index_of="onward.next_dep", low=-1),
        StateSpec("lane_of", index_of="lane_free_at", low=-1),
        *StateSpec.each(("src_ptr", "src_sizes", "n_released", "n_transit"), low=0, high="state"),
        StateSpec("train_keys", low=0, high=TRAIN_KEYS),
        *StateSpec.each(("passed_by_ticket", "conn_load", "passed_by_connector", "exited_by_gate", "entry_places",
                         "onward.boarded_by_poi", "onward.departures"), low=0),
    )

    def __init__(self, city, *, duration_s: float, seed: int, **params):
        super().__init__(city, duration_s=duration_s, seed=seed, **params)
        p = self.p
        shares = self._mode_shares()
        self.station = build_station(city, p, city.extra_layer(CONNECTORS))
        self.motion = MotionParams(model=p["motion_model"], radius=p["body_radius_m"],
                                   radius_standing=max(p["body_radius_standing_m"], p["body_radius_m"]),
                                   time_gap=p["time_gap_s"], t_narrow=p["narrow_time_gap_s"],
                                   a_rep=p["repulsion_strength"], d_rep=p["repulsion_range_m"])
        # the step divides the report interval, so rows and pauses land on whole steps
        wanted = p["time_step_s"] or self.motion.default_dt()
        self.dt_s = self.report_interval_s / math.ceil(self.report_interval_s / wanted - 1e-9)
        self._water: dict[str, GridField] = {}  # the flood's latest depth and speed (coupled runs)
        self._build_navigation()
        self._setup_connectors()
        self._draw_passengers(shares)
        self._setup_tickets(self.N)
        self._setup_routes()
        self._check_connectivity()
        self._setup_release_cells()
        self._setup_crowd()

    # -- setup steps --------------------------------------------------------------------------
    def _mode_shares(self) -> np.ndarray:
        p = self.p
        shares = np.array([p["share_walk"], p["share_metro"], p["share_bus"], p["share_taxi"]])
        if abs(shares.sum() - 1.0) > 1e-6:
            raise UserError(
                f"parameters share_metro + share_bus + share_taxi + share_walk = {shares.sum():.3f}; "
                "they must sum to 1 (e.g. 0.45, 0.25, 0.05, 0.25)."
            )
        return shares

    def _build_navigation(self) -> None:
        """Floor fields per level to every target on it: the exits, the open ticket gate banks
        (walked through) and both ends of every stair and escalator (stepped on)."""
        st, p = self.station, self.p
        self.banks = [t for t in st.tickets if t.open]
        self.G, B = len(st.gates), len(self.banks)
        # a connector entry: (connector index, upwards); it lies at the lower end when upwards
        self.entries = [(ci, up) for ci in range(len(st.connectors)) for up in (True, False)]
        tg = ([(g.id, g.geom, g.level) for g in st.gates]
              + [(f"bank:{t.id}", t.target, t.level) for t in self.banks]
              + [(f"{'up' if up else 'down'}:{st.connectors[ci].id}", st.connectors[ci].entry_zone(not up),
                  st.connectors[ci].from_level if up else st.connectors[ci].to_level) for ci, up in self.entries])
        self.T = len(tg)
        self.E0 = self.G + B  # first connector entry
        navs, glob = [], []
        for lv in st.levels:
            mine = [k for k, (_, _, l2) in enumerate(tg) if l2 == lv]
            navs.append(build_navigation(st.free[lv], [(tg[k][0], tg[k][1]) for k in mine], cell_m=p["grid_cell_m"]))
            glob.append(mine)
        self.floors = Floors.shared(navs, glob, st.levels)
        self.nav = navs[0]
        self.gate_open = np.array([g.open for g in st.gates], dtype=np.bool_)
        self.t_open = np.r_[self.gate_open, np.ones(B, np.bool_),
                            [st.connectors[ci].runs(up) for ci, up in self.entries]].astype(np.bool_)
        self.level_z = np.array([self.city.level_z(lv) for lv in st.levels])
        for g, gate in enumerate(st.gates):
            if gate.open and not (self.floors.zone == g).any():
                raise UserError(f'layer gates: gate "{gate.id}" touches the walkable area only where obstacles '
                                "block it (no free floor within 0.3 m). Move it or the obstacle.")

    def _setup_connectors(self) -> None:
        """Per entry: the level it leads to, where arrivals appear, its headway, travel times and
        what it costs a route; per connector: how many people it holds."""
        st, p, fl = self.station, self.p, self.floors
        E = len(self.entries)
        self.entry_conn = np.array([ci for ci, _ in self.entries], dtype=np.int64)
        self.entry_to = np.zeros(E, dtype=np.int64)  # level index where the entry leads
        self.entry_headway = np.zeros(E)
        self.entry_cap_pps = np.zeros(E)
        self.entry_equiv_m = np.zeros(E)  # walking metres that take as long as the stairs (at V_REF)
        self.entry_ride_s = np.zeros(E)  # seconds standing on an escalator
        self.entry_h_speed = np.zeros(E)  # stairs: horizontal speed of a mean walker
        self.entry_lift = np.zeros(E, dtype=np.bool_)
        self.entry_trip_cap = np.zeros(E, dtype=np.int64)  # lifts: persons per trip
        self.entry_cycle_s = np.zeros(E)  # lifts: time between the car's departures from this door
        self.entry_landing: list[np.ndarray] = []
        self.t_to_level = np.full(self.T, -1, dtype=np.int32)  # where a connector entry leads (level index)
        self.entry_landing_xy = np.zeros((E, 2))
        self.conn_slope_m = np.zeros(len(st.connectors))
        self.conn_length_m = np.array([c.length_m for c in st.connectors], dtype=float)
        self.conn_belt_mps = np.array([c.speed_mps for c in st.connectors], dtype=float)
        self.conn_cap = np.zeros(len(st.connectors), dtype=np.int64)
        # where people on a connector are drawn (agents(), at every trajectory frame): its ends, their
        # heights, its axis and width per connector, and per entry whether it goes up
        cs = st.connectors
        self.conn_draw = (np.array([c.lower for c in cs], dtype=float).reshape(-1, 2),
                          np.array([c.upper for c in cs], dtype=float).reshape(-1, 2),
                          np.array([self.city.level_z(c.from_level) for c in cs], dtype=float),
                          np.array([self.city.level_z(c.to_level) for c in cs], dtype=float),
                          np.array([c.axis for c in cs], dtype=float).reshape(-1, 2),
                          np.array([c.width_m for c in cs], dtype=float),
                          np.array([u for _, u in self.entries], dtype=bool))
        v_mean = p["desired_speed_mps"]
        for ci, c in enumerate(st.connectors):
            rise = self.city.level_z(c.to_level) - self.city.level_z(c.from_level)
            slope = math.hypot(c.length_m, rise)
            self.conn_slope_m[ci] = slope
            if c.kind == "stairs":
                self.conn_cap[ci] = max(1, int(math.ceil(slope * c.width_m * STAIR_MAX_DENSITY_PPM2)))
            elif c.kind == "lift":  # a trip each way per cycle, each ride half a cycle: one load each way
                self.conn_cap[ci] = 2 * c.capacity
            else:
                self.conn_cap[ci] = max(1, int(math.ceil(slope / ESCALATOR_STEP_DEPTH_M * persons_per_step(c.width_m))))
        r = self.motion.r_stand
        for e, (ci, up) in enumerate(self.entries):
            c = st.connectors[ci]
            arrive = c.to_level if up else c.from_level
            L = st.level_index(arrive)
            self.entry_to[e] = L
            self.t_to_level[self.E0 + e] = L
            if c.kind == "stairs":
                v_h = p["stair_speed_up_mps"] if up else p["stair_speed_down_mps"]
                self.entry_h_speed[e] = v_h
                self.entry_cap_pps[e] = p["stair_flow_pps_per_m"] * max(c.width_m - 2 * STAIR_EDGE_M, 0.3)
                self.entry_equiv_m[e] = c.length_m * V_REF_MPS / v_h
            elif c.kind == "lift":
                # the car leaves this door every cycle (the lower door at 0, cycle, ..., the upper one
                # half a cycle later) with up to capacity aboard; a route expects half a cycle's wait
                self.entry_lift[e] = True
                self.entry_trip_cap[e] = c.capacity
                self.entry_cycle_s[e] = c.cycle_s
                self.entry_cap_pps[e] = c.capacity / c.cycle_s
                self.entry_ride_s[e] = c.cycle_s  # half a cycle waiting, half riding
            else:
                self.entry_cap_pps[e] = (p["escalator_fill"] * c.speed_mps * persons_per_step(c.width_m)
                                         / ESCALATOR_STEP_DEPTH_M)
                self.entry_ride_s[e] = self.conn_slope_m[ci] / c.speed_mps
                self.entry_h_speed[e] = p["stair_speed_up_mps"] if up else p["stair_speed_down_mps"]
            self.entry_headway[e] = 1.0 / self.entry_cap_pps[e]
            nav = fl.navs[L]
            ok = nav.free & (nav.wall_d >= r)
            free = st.free[arrive]
            area = shapely.intersection(c.landing(up), free)
            m = rasterize(area, nav.x0, nav.y0, nav.cell_m, nav.free.shape) & ok if area.area > 0.2 else ok & False
            if m.sum() < 4:  # the floor does not go on straight beyond the end: any free floor near it
                near = shapely.difference(shapely.intersection(shapely.Point(c.end(up)).buffer(LANDING_FALLBACK_M),
                                                               free), c.footprint)
                m = rasterize(near, nav.x0, nav.y0, nav.cell_m, nav.free.shape) & ok
            if not m.any():
                raise UserError(f'layer connectors: connector "{c.id}" ({c.kind}) has no free floor beyond its '
                                f"{'upper' if up else 'lower'} end on level {arrive} for people to step off onto; "
                                "move the end or the obstacles there.")
            xs, ys = nav.cell_centres()
            rr, cc = np.nonzero(m)
            pts = np.c_[xs[cc], ys[rr]]
            self.entry_landing.append(pts)
            self.entry_landing_xy[e] = pts.mean(axis=0)

    def _planned_trains(self, p: dict, notes: list[str] | None = None) -> list[Train]:
        """The trains of parameters ``p`` (the scenario's timetable, else the sources' counts), scaled;
        ``notes`` gains what was cut to the platforms' ``max_per_train``."""
        st = self.station
        trains = trains_from_params(p, [s.id for s in st.sources], self.duration_s,
                                    [s.max_per_train for s in st.sources], [] if notes is None else notes)
        if trains is None:
            trains = [Train(si, s.release_s, scaled(s.count, p["demand_scale"])) for si, s in enumerate(st.sources)]
            check_total([t.passengers for t in trains], "layer sources (count × demand_scale)")
        return trains

    def _draw_passengers(self, shares: np.ndarray, sizes: list[int] | None = None,
                         keys: list[int] | None = None) -> None:
        """Trains, their release times and the per-passenger draws (speed, mode, guidance, route
        taste, escalator walking); a passenger's index is their id for the whole run. ``sizes``: each
        train's passengers as a restored run continued with another demand has them (adapt_state);
        ``keys``: each train's draw key (``train_keys``) as that run had them."""
        st, p = self.station, self.p
        notes: list[str] = []
        trains = self._planned_trains(p, notes)
        for note in notes:
            self.warn(note)
        if sizes is not None:
            trains = [Train(t.source, t.arrival_s, n) for t, n in zip(trains, sizes)]
        planned = trains
        if p["train_delays"]:
            trains = apply_delays(trains, p["train_delays"], [s.id for s in st.sources])
        cancelled = cancelled_trains(planned, p["train_cancellations"], [s.id for s in st.sources],
                                     [t.arrival_s for t in trains]) if p["train_cancellations"] else set()
        # blocks per train, released in order of arrival (stagger: each later train a bit later)
        order = sorted(range(len(trains)), key=lambda k: (trains[k].arrival_s, k))
        rank = {k: r for r, k in enumerate(order)}
        spread = p["release_spread_s"]
        rel, src_of = [], []
        self.src_ranges = []
        self.block_source = []
        n0 = 0
        for k, tr in enumerate(trains):
            t0 = tr.arrival_s + rank[k] * p["stagger_releases_s"]
            m = tr.passengers
            times = t0 + (np.arange(m) + 0.5) / max(m, 1) * spread if spread > 0 else np.full(m, t0)
            if k in cancelled:  # its rows stay (a saved state's rows are the timetable's), never released
                times = np.full(m, np.inf)
            rel.append(times)
            src_of.append(np.full(m, tr.source))
            self.src_ranges.append((n0, n0 + m))
            self.block_source.append(tr.source)
            n0 += m
        self.trains = trains
        self.N = N = n0
        self.n_arriving = N - sum(trains[k].passengers for k in cancelled)  # those who will ever be released
        self.release_t = np.concatenate(rel) if rel else np.zeros(0)
        self.src_of = np.concatenate(src_of).astype(np.int32) if src_of else np.zeros(0, np.int32)
        self.src_ptr = [a for a, _ in self.src_ranges]
        self.src_sizes = [int(b - a) for a, b in self.src_ranges]
        self.train_keys = [int(k) for k in keys] if keys is not None else [0] * len(trains)
        self._draw_per_passenger(shares)
        self.must_validate = np.array([st.sources[k].must_validate for k in self.src_of], dtype=bool)
        self.state = np.full(N, PENDING, dtype=np.int8)
        self.t_appear = np.full(N, np.nan)
        self.t_exit = np.full(N, np.nan)
        self.t_poi = np.full(N, np.nan)
        self.t_done = np.full(N, np.nan)
        self.gate_of = np.full(N, -1, dtype=np.int32)
        self.poi_of = np.full(N, -1, dtype=np.int32)
        self.exit_xy = np.zeros((N, 2))
        self.conn_e = np.full(N, -1, dtype=np.int32)
        self.came_from = np.full(N, -1, dtype=np.int32)  # the level index a passenger last left
        self.t_on = np.full(N, np.nan)
        self.t_off = np.full(N, np.nan)

    def _draw_per_passenger(self, shares: np.ndarray) -> None:
        """Every passenger's speed, mode, guidance, route taste, escalator walking, lift use and
        destination draw, each train's from its own generator (``_per_passenger``)."""
        p, N, T = self.p, self.N, self.T
        draw = self._per_passenger
        self.v0 = np.clip(draw(SPEED_STREAM, lambda g, m: g.normal(p["desired_speed_mps"], p["desired_speed_sd_mps"], m)),
                          0.5, 2.0)
        self.mode = draw(MODE_STREAM, lambda g, m: g.choice(4, size=m, p=shares / shares.sum())).astype(np.int32)
        # tourists from a stream of their own, so the share changes no other draw; they leave on foot
        self.is_tourist = draw(TOURIST_STREAM, lambda g, m: g.random(m)) < p["tourist_share"]
        self.mode[self.is_tourist] = 0
        self.guided = draw(GUIDED_STREAM, lambda g, m: g.random(m)) < p["guidance_share"]
        self.route_noise = (draw(ROUTE_STREAM, lambda g, m: g.normal(0.0, p["route_noise_s"], (m, T)))
                            if p["route_noise_s"] > 0 else np.zeros((N, T)))
        self.walks_escalator = draw(ESCALATOR_STREAM, lambda g, m: g.random(m)) < p["escalator_walk_share"]
        self.takes_lift = draw(LIFT_STREAM, lambda g, m: g.random(m)) < p["lift_share"]
        self.dest_draw = draw(DEST_STREAM, lambda g, m: g.random(m))  # which of its mode's destinations
        self._drawn_keys = list(self.train_keys)

    def _per_passenger(self, stream: int, draw) -> np.ndarray:
        """``draw(generator, m)`` for each train's ``m`` passengers, each train from a generator of its
        own (the model's seed, ``stream``, the train and its key), concatenated in the order of
        ``src_ranges``. A passenger's draws then depend on their train and place in it, not on how many
        others there are: a run continued with another demand (adapt_state) keeps every kept passenger's
        speed, mode and route taste, and a walker does not change their mind. A train's key is 0 (the
        model's seed alone) until a reseeded copy of a state gives the trains yet to come keys of its own
        (``reseed``)."""
        parts = [np.asarray(draw(np.random.default_rng([self.seed, stream, k] + ([key] if key else [])), int(b - a)))
                 for k, ((a, b), key) in enumerate(zip(self.src_ranges, self.train_keys))]
        return np.concatenate(parts) if parts else np.asarray(draw(np.random.default_rng(0), 0))

    def _setup_routes(self) -> None:
        """Route choice tables: onward destinations per gate, guidance, queue capacities and the
        best routes from every waypoint (bank, stair or escalator foot) to every exit."""
        st, p, rng, fl = self.station, self.p, self.rng, self.floors
        G, B, N, T = self.G, len(self.banks), self.N, self.T
        # A destination is a column of onward_m: walking away, the nearest metro entrance, the
        # nearest taxi rank, or one particular bus stop (each stop serves its own lines, so a bus
        # passenger is bound to a stop and cannot switch to another one).
        self.onward = Onward(st.pois, p, rng)
        poi_xy = self.onward.poi_xy()
        kinds = np.array([q.kind for q in st.pois])
        gate_xy = np.array([(g.x, g.y) for g in st.gates], dtype=float).reshape(-1, 2)
        columns: list[tuple[int, np.ndarray | None]] = [(0, None)]
        for mi, mode in enumerate(MODES):
            if mode == "walk":
                continue
            idx = np.flatnonzero(kinds == ONWARD_KINDS[mode])
            if mode == "bus":
                columns += [(mi, idx[k:k + 1]) for k in range(len(idx))]
            elif len(idx):
                columns.append((mi, idx))
        self.onward_m = np.zeros((G, len(columns)))
        self.onward_poi = np.full((G, len(columns)), -1, dtype=np.int32)
        for c, (_, idx) in enumerate(columns):
            if idx is None:
                continue
            d = np.hypot(poi_xy[idx, 0][None, :] - gate_xy[:, :1], poi_xy[idx, 1][None, :] - gate_xy[:, 1:])
            d *= p["onward_detour_factor"]
            self.onward_m[:, c] = d.min(axis=1)
            self.onward_poi[:, c] = idx[d.argmin(axis=1)]
        self._column_mode = np.array([mi for mi, _ in columns])
        self._assign_destinations()
        guided = set(_guided_ids(st, p))
        guided_allowed = self.gate_open.copy()
        if p["guidance_gates"]:
            guided_allowed = np.array([g.id in guided for g in st.gates]) & self.gate_open
        self.allowed_guided = guided_allowed
        # queue time = people near a target / what it serves per second (exits by width, banks by
        # lanes, stairs and escalators by their capacity)
        self.target_cap = np.r_[[p["gate_flow_pps_per_m"] * g.width_m for g in st.gates],
                                [t.capacity_pps for t in self.banks], self.entry_cap_pps]
        self.queue_s = np.zeros(T)
        # who may head for what: state 0 may leave (exits, connectors), state 1 must validate first
        # (banks, connectors)
        self.cand = np.zeros((2, T), dtype=np.bool_)
        self.cand[0, :G] = self.gate_open
        self.cand[:, self.E0:] = self.t_open[self.E0:]
        self.cand[1, G:self.E0] = True
        succ = []  # (from, to, metres, seconds, state after)
        for b, t in enumerate(self.banks):
            succ += self._successors(G + b, fl.levels.index(t.level), t.exit_point, 0.0, 0.0, 0)
        for e, (ci, up) in enumerate(self.entries):
            other = self.E0 + self.entries.index((ci, not up))
            succ += [s for s in self._successors(self.E0 + e, int(self.entry_to[e]), self.entry_landing_xy[e],
                                                 self.entry_equiv_m[e], self.entry_ride_s[e], 1) if s[1] != other]
        succ.sort(key=lambda s: s[0])
        frm = np.array([s[0] for s in succ], dtype=np.int64)
        s_start = np.searchsorted(frm, np.arange(T + 1)).astype(np.int64)
        self._succ = (G, s_start, np.array([s[1] for s in succ], dtype=np.int64),
                      np.array([s[2] for s in succ], dtype=float), np.array([s[3] for s in succ], dtype=float),
                      np.array([s[4] for s in succ], dtype=np.int64))
        self.r_dist, self.r_ride, self.r_via = K.route_tables(*self._succ, self.cand, V_REF_MPS)
        self.qdown = np.zeros_like(self.r_dist)
        lift_t = self.E0 + np.flatnonzero(self.entry_lift)
        self._shun = np.zeros(T, dtype=bool)
        if len(lift_t):  # those who do not take lifts shun them, and the waypoints that only lead on by lift
            via = self.r_via[:, :, :, lift_t].any(axis=3)
            reach = self.r_dist < K.UNREACHABLE_M
            self._shun = ((reach & via).any(axis=2) & ~(reach & ~via).any(axis=2)).any(axis=0)
            self._shun[:G] = False
            self._shun[lift_t] = True
        self._shun_lifts()
        self._next_reroute = 0.0

    def _assign_destinations(self) -> None:
        """Each passenger's onward destination (a column of ``onward_m``) from their mode and draw."""
        self.dest = np.zeros(self.N, dtype=np.int32)
        for mi in range(1, len(MODES)):
            cols = np.flatnonzero(self._column_mode == mi)
            who = np.flatnonzero(self.mode == mi)
            if len(cols) and len(who):
                self.dest[who] = cols[np.minimum((self.dest_draw[who] * len(cols)).astype(np.int64), len(cols) - 1)]

    def _shun_lifts(self) -> None:
        """Those who do not take lifts: the lifts and the waypoints that only lead on by lift cost them
        LIFT_AVOID_S more (on the route taste just drawn)."""
        if self._shun.any():
            self.route_noise[np.ix_(~self.takes_lift, self._shun)] += LIFT_AVOID_S

    def _successors(self, u: int, L: int, xy, metres: float, seconds: float, state: int) -> list:
        fl = self.floors
        out = []
        for q in range(fl.lt_start[L], fl.lt_start[L + 1]):
            w = int(fl.lt_idx[q])
            d = float(fl.sample_target(w, np.array([xy[0]]), np.array([xy[1]]))[0])
            if d < K.UNREACHABLE_M:
                out.append((u, w, d + metres, seconds, state))
        return out

    def _reaches_exit(self, L: int, x: np.ndarray, y: np.ndarray, s: int) -> np.ndarray:
        """Which points on level index ``L`` have a way to an open exit in state ``s``."""
        fl, G = self.floors, self.G
        ok = np.zeros(len(x), dtype=bool)
        for q in range(fl.lt_start[L], fl.lt_start[L + 1]):
            u = int(fl.lt_idx[q])
            if not self.cand[s, u] or not (u < G or (self.r_dist[s, u] < K.BIG).any()):
                continue
            ok |= fl.sample_target(u, x, y) < K.UNREACHABLE_M
        return ok

    def _check_connectivity(self) -> None:
        """Every source and every walkable part must reach an open exit (through ticket gates,
        stairs and escalators if need be)."""
        st, fl = self.station, self.floors
        closed = [t.id for t in st.tickets if not t.open]
        shut = [c.id for c in st.connectors if not c.open]
        for si, src in enumerate(st.sources):
            L = st.level_index(src.level)
            nav = fl.navs[L]
            m = rasterize(src.geom, nav.x0, nav.y0, nav.cell_m, nav.free.shape) & nav.free
            if not m.any():
                continue
            xs, ys = nav.cell_centres()
            rr, cc = np.nonzero(m)
            if self._reaches_exit(L, xs[cc], ys[rr], int(src.must_validate)).any():
                continue
            if not any(g.open and g.level == src.level for g in st.gates) and len(st.levels) > 1:
                hint = f" (closed: {', '.join(shut)})" if shut else ""
                raise UserError(f'layer sources: source "{src.id}" on level {src.level} has no way to an open exit: '
                                f"there is no exit on level {src.level} and no open stairs or escalator in the "
                                f"right direction leads from it to one{hint}. Add or open a connector (connectors "
                                "layer, or parameters open_connectors / reverse_connectors) or an exit.")
            hint = f" (closed ticket gates {', '.join(closed)} are walls)" if closed else ""
            raise UserError(f'layer sources: source "{src.id}" lies in a part of the walkable area from which '
                            f"no open exit can be reached{hint}. Open a gate there or connect that part.")
        for name, geom, lv in st.walkable_parts:
            L = st.level_index(lv)
            nav = fl.navs[L]
            m = rasterize(geom, nav.x0, nav.y0, nav.cell_m, nav.free.shape) & nav.free
            if m.sum() <= 8:
                continue
            xs, ys = nav.cell_centres()
            rr, cc = np.nonzero(m)
            pick = np.linspace(0, len(rr) - 1, min(len(rr), 200)).astype(int)
            x, y = xs[cc[pick]], ys[rr[pick]]
            if not (self._reaches_exit(L, x, y, 0) | self._reaches_exit(L, x, y, 1)).any():
                where = f" on level {lv}" if len(st.levels) > 1 else ""
                raise UserError(f'layer walkable: part "{name}"{where} is not connected to any open exit gate. '
                                "Connect it to the rest of the station, add an exit gate on its edge, or open one.")

    def _setup_release_cells(self) -> None:
        """Release candidates: free cells well clear of walls and gates, per source."""
        st, fl = self.station, self.floors
        self.src_cells = []
        for src in st.sources:
            L = st.level_index(src.level)
            nav = fl.navs[L]
            xs, ys = nav.cell_centres()
            ok = nav.free & (nav.wall_d >= self.motion.r_stand + RELEASE_WALL_CLEARANCE_M) & (nav.zone < 0)
            m = rasterize(src.geom, nav.x0, nav.y0, nav.cell_m, nav.free.shape) & ok
            if not m.any():
                m = rasterize(src.geom, nav.x0, nav.y0, nav.cell_m, nav.free.shape) & nav.free & (
                    nav.wall_d >= self.motion.r_stand)
            if not m.any():
                raise UserError(f'layer sources: source "{src.id}" has no room for a person (it is narrower than '
                                f"{2 * self.motion.r_stand:.2f} m between walls). Enlarge it.")
            r, c = np.nonzero(m)
            # not in a pocket with no way out (a shaft or cupboard walled off inside a drawn room)
            out = self._reaches_exit(L, xs[c], ys[r], int(src.must_validate))
            if out.any():
                r, c = r[out], c[out]
            self.src_cells.append(np.c_[xs[c], ys[r]])

    def _setup_crowd(self) -> None:
        """The walking crowd (empty at first), density grids and counters."""
        self.crowd = Crowd(self.floors, max(self.N, 1), self.motion, cell_size=1.0, n_exit=self.G)
        self.crowd.t_open[:] = self.t_open
        self.crowd.t_to_level[:] = self.t_to_level
        self._setup_density()
        self.exited_by_gate = np.zeros(self.G, dtype=np.int64)
        self.los = dict.fromkeys(LOS_LETTERS, 0.0)
        self._next_density = 0.0
        self.density_now = 0.0
        self.max_density = 0.0
        self.n_released = 0
        self.last_exit_t = 0.0
        self.last_done_t = 0.0
        E = len(self.entries)
        # stairs and escalators: when the next place is free; lifts: the departure being boarded
        # (the lower door's at 0, the upper door's half a cycle later) and the places taken on it
        self.entry_free_at = np.where(self.entry_lift & ~np.array([up for _, up in self.entries], dtype=bool),
                                      self.entry_cycle_s / 2, 0.0)
        self.entry_places = np.zeros(E, dtype=np.int64)
        self.conn_load = np.zeros(len(self.station.connectors), dtype=np.int64)
        self.passed_by_connector = np.zeros(len(self.station.connectors), dtype=np.int64)
        self.n_transit = 0
        self._next_release = self._next_release_s()
        self._next_arrival = math.inf

    # -- setup helpers ------------------------------------------------------------------------
    def _setup_tickets(self, N: int) -> None:
        """Ticket lanes as a raster of lane numbers. A lane serves one passenger at a time: whoever
        enters it stands there until the lane has served everyone who entered before (a FIFO
        server per lane, so that a passenger who squeezes past a validating one gains nothing)."""
        fl, st = self.floors, self.station
        bank_of_lane, service = [], []
        # Lanes are numbered by the banks' geometry, open or closed, so every variant numbers them alike
        # and a state continued as another variant (a closed bank opened) keeps its lanes' queues.
        for b, t in enumerate(st.tickets):
            L = st.level_index(t.level)
            nav = fl.navs[L]
            lane = fl.level_view(fl.lane, L)
            for slot in shapely.get_parts(t.slots):
                z = rasterize(slot, nav.x0, nav.y0, nav.cell_m, nav.free.shape)
                if z.any():
                    lane[z & nav.free] = len(bank_of_lane)
                    bank_of_lane.append(b)
                    service.append(t.service_s)
        self.bank_of_lane = np.array(bank_of_lane, dtype=np.int64)
        self.lane_service = np.array(service, dtype=float)
        self.lane_free_at = np.zeros(len(service))
        self.lane_of = np.full(N, -1, dtype=np.int32)
        self.t_validated = np.full(N, np.nan)  # when the lane let each passenger through
        self.passed_by_ticket = np.zeros(len(st.tickets), dtype=np.int64)

    def _setup_density(self) -> None:
        fl = self.floors
        minx, miny, maxx, maxy = fl.bounds
        self.d_x0, self.d_y0 = math.floor(minx), math.ceil(maxy)
        cols = int(math.ceil(maxx - self.d_x0))
        rows = int(math.ceil(self.d_y0 - miny))
        nl = fl.n_levels
        area = np.zeros((nl, rows, cols))
        for L, nav in enumerate(fl.navs):
            xs, ys = nav.cell_centres()
            rr, cc = np.nonzero(nav.free)
            r = np.clip(np.floor(self.d_y0 - ys[rr]).astype(int), 0, rows - 1)
            c = np.clip(np.floor(xs[cc] - self.d_x0).astype(int), 0, cols - 1)
            np.add.at(area[L], (r, c), nav.cell_m ** 2)
        from scipy.ndimage import convolve

        w = np.array([0.25, 0.5, 0.25])
        self.d_area = np.stack([convolve(a, np.outer(w, w), mode="constant", cval=0.0) for a in area])
        self.d_counts = np.zeros((nl, rows, cols))
        self.d_field = np.zeros((nl, rows, cols))
        self.d_max = np.zeros((nl, rows, cols))

    # -- stepping -----------------------------------------------------------------------------
    def step(self) -> None:
        cr = self.crowd
        cr.t = self.time
        cr.build_cells()
        cr.move(self.dt_s)
        cr.step_no += 1
        t_new = self.next_time_s
        # arrivals and releases use this step's cell lists: before events compact the arrays
        if self.n_transit:
            self._arrive(t_new)
        self._release(t_new)
        self._events(t_new)
        if t_new >= self._next_reroute - 1e-9:
            self._reroute(force=False)
            self._next_reroute = t_new + self.p["reroute_interval_s"]
        self._onward(t_new)
        if t_new >= self._next_density - 1e-9:
            self._density(self.p["density_interval_s"])
            self._next_density = t_new + self.p["density_interval_s"]

    def _appear(self, t, px, py, ids, L: int) -> None:
        """Passengers ``ids`` join the walking crowd at ``px, py`` on level index ``L``."""
        k = len(ids)
        paid = self.must_validate[ids] & (self.lane_of[ids] < 0)
        lv = np.full(k, L, dtype=np.int32)
        tgt = self._choose(px, py, lv, paid, ids, np.zeros(k, dtype=np.int32), force=True)
        self.state[ids] = WALKING
        self.crowd.add(px, py, self.v0[ids], tgt, ids=ids, lv=lv, paid=paid)

    def _place(self, t, ids: np.ndarray, cells: dict, groups: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Place passengers ``ids`` (in groups: a train, one stair's arrivals; each keeps its order)
        at random candidate points of their group's ``cells`` ({group: (k, 2) cell centres}) on
        their levels; those placed join the crowd. Returns which were placed."""
        gap = 2.0 * self.motion.r_stand + RELEASE_GAP_M
        ok = np.zeros(len(ids), dtype=bool)
        pick = self.rng.integers(0, np.iinfo(np.int64).max, size=(len(ids), RELEASE_CANDIDATES))
        jit = self.rng.uniform(-0.5, 0.5, size=(len(ids), RELEASE_CANDIDATES, 2)) * self.floors.cell_m
        cx = np.empty((len(ids), RELEASE_CANDIDATES))
        cy = np.empty((len(ids), RELEASE_CANDIDATES))
        for g, c in cells.items():
            a = groups == g
            k = pick[a] % len(c)
            cx[a] = c[k, 0] + jit[a, :, 0]
            cy[a] = c[k, 1] + jit[a, :, 1]
        for L in np.unique(level):
            on = np.flatnonzero(level == L)
            px, py = self.crowd.place(cx[on], cy[on], gap, level=int(L), group=groups[on])
            got = np.isfinite(px)
            if got.any():
                ok[on[got]] = True
                self._appear(t, px[got], py[got], ids[on[got]], int(L))
        return ok

    def _next_release_s(self) -> float:
        due = [self.release_t[ptr] for ptr, (_, b) in zip(self.src_ptr, self.src_ranges) if ptr < b]
        return float(min(due)) if due else math.inf

    def _release(self, t: float) -> None:
        if t < self._next_release - 1e-9:
            return
        st = self.station
        ids, cells, groups, level = [], {}, [], []
        for bi, (a, b) in enumerate(self.src_ranges):
            ptr = self.src_ptr[bi]
            if ptr >= b or self.release_t[ptr] > t:
                continue
            end = ptr + int(np.searchsorted(self.release_t[ptr:b], t, side="right"))
            end = min(end, ptr + MAX_RELEASE_PER_STEP)
            si = self.block_source[bi]
            ids.append(np.arange(ptr, end))
            cells[bi] = self.src_cells[si]
            groups.append(np.full(end - ptr, bi))
            level.append(np.full(end - ptr, st.level_index(st.sources[si].level)))
        if ids:
            ids, groups = np.concatenate(ids), np.concatenate(groups)
            self.t_appear[ids] = t  # reset below for those who found no room
            ok = self._place(t, ids, cells, groups, np.concatenate(level))
            self.t_appear[ids[~ok]] = np.nan
            self.n_released += int(ok.sum())
            for bi in np.unique(groups[ok]):
                self.src_ptr[bi] += int(np.count_nonzero(groups[ok] == bi))
        self._next_release = self._next_release_s()

    def _arrive(self, t: float) -> None:
        """Passengers whose climb or ride is over step off at the other end, in the order they
        got on; when the landing is full they wait on the stairs (a blocked stair blocks all
        behind)."""
        if t < self._next_arrival - 1e-9:
            return
        on = np.flatnonzero(self.state == CHANGING_LEVEL)
        due = on[self.t_off[on] <= t]
        self._next_arrival = float(self.t_off[on].min()) if len(on) else math.inf
        if not len(due):
            return
        e = self.conn_e[due]
        order = np.lexsort((due, self.t_off[due], e))
        due, e = due[order], e[order]
        first = np.r_[True, e[1:] != e[:-1]]
        k = np.arange(len(e)) - np.maximum.accumulate(np.where(first, np.arange(len(e)), 0))
        keep = k < MAX_RELEASE_PER_STEP
        due, e = due[keep], e[keep]
        ok = self._place(t, due, {x: self.entry_landing[x] for x in np.unique(e)}, e, self.entry_to[e])
        if ok.any():
            np.subtract.at(self.conn_load, self.entry_conn[e[ok]], 1)
            self.n_transit -= int(ok.sum())

    def _events(self, t: float) -> None:
        """What the step set off: exits, ticket lanes entered, feet of connectors reached,
        boarding a connector."""
        cr = self.crowd
        n = cr.n
        ev = cr.ev[:n]
        hit = np.flatnonzero(ev != K.EV_NONE)
        if not len(hit):
            return
        e = ev[hit]
        lane = e >= self.T
        if lane.any():
            self._validate(t, hit[lane], e[lane] - self.T)
        foot = (e >= self.E0) & (e < self.T)
        if foot.any():
            self._queue_at_foot(t, hit[foot], e[foot] - self.E0)
        leave = np.zeros(n, dtype=bool)
        board = e == K.EV_BOARD
        if board.any():
            leave[self._board(t, hit[board])] = True
        out = (e >= 0) & (e < self.G)
        if out.any():
            s = hit[out]
            leave[s] = True
            self._on_exit(t, cr.ids[s].copy(), e[out].astype(np.int32), cr.x[s].copy(), cr.y[s].copy())
        if leave.any():
            cr.remove(~leave)

    def _validate(self, t: float, slots: np.ndarray, lane: np.ndarray) -> None:
        cr = self.crowd
        who = cr.ids[slots]
        order = np.lexsort((who, lane))
        slots, who, ln = slots[order], who[order], lane[order]
        # k-th newcomer to a lane in this step queues behind the k-1 before it
        first = np.r_[True, ln[1:] != ln[:-1]]
        k = np.arange(len(ln)) - np.maximum.accumulate(np.where(first, np.arange(len(ln)), 0))
        # a lane lets a passenger through one service time after the one before (its cycle: 2.4 s
        # is the design rate of 25/min, stepping in included) and no sooner than half a service
        # time after she stepped in (validating, the wings opening)
        svc = self.lane_service[ln]
        done = np.maximum(self.lane_free_at[ln] + (k + 1) * svc, t + (k + LANE_DWELL_SHARE) * svc)
        self.lane_of[who] = ln
        cr.hold[slots] = done  # a passenger in a lane stands still until the lane has served them
        self.t_validated[who] = done
        np.maximum.at(self.lane_free_at, ln, done)
        self.passed_by_ticket += np.bincount(self.bank_of_lane[ln], minlength=len(self.passed_by_ticket))
        cr.paid[slots] = False
        # through the fare line: from now on they head for an exit
        cr.tgt[slots] = self._choose(cr.x[slots], cr.y[slots], cr.lv[slots], cr.paid[slots], who, cr.tgt[slots],
                                     force=True)

    def _queue_at_foot(self, t: float, slots: np.ndarray, entry: np.ndarray) -> None:
        """Newcomers at the foot of a stair or escalator get the next free places on it (one per
        headway, first come first served) and stand until theirs."""
        cr = self.crowd
        who = cr.ids[slots]
        order = np.lexsort((who, entry))
        slots, en = slots[order], entry[order]
        first = np.r_[True, en[1:] != en[:-1]]
        k = np.arange(len(en)) - np.maximum.accumulate(np.where(first, np.arange(len(en)), 0))
        h = self.entry_headway[en]
        at = np.maximum(self.entry_free_at[en], t) + k * h
        lift = self.entry_lift[en]
        if lift.any():
            at[lift] = self._lift_departures(t, en[lift], k[lift])
        cr.hold[slots] = at
        cr.board[slots] = en
        np.maximum.at(self.entry_free_at, en[~lift], at[~lift] + h[~lift])

    def _lift_departures(self, t: float, en: np.ndarray, k: np.ndarray) -> np.ndarray:
        """The departures of lift doors ``en`` (sorted, ``k``-th newcomer at each) for newcomers: the
        places left on the trip being boarded (a later one if that car has gone), then the next
        trips, ``capacity`` each, a cycle apart."""
        cyc, cap = self.entry_cycle_s[en], self.entry_trip_cap[en]
        dep, taken = self.entry_free_at[en], self.entry_places[en]
        gone = dep < t - 1e-9
        dep = np.where(gone, dep + np.ceil((t - dep) / cyc - 1e-9) * cyc, dep)
        q = np.where(gone, 0, taken) + k  # place number counted from the trip being boarded
        at = dep + (q // cap) * cyc
        last = np.r_[en[1:] != en[:-1], True]
        self.entry_free_at[en[last]] = at[last]
        self.entry_places[en[last]] = q[last] % cap[last] + 1
        return at

    def _board(self, t: float, slots: np.ndarray) -> np.ndarray:
        """Passengers whose place on a connector has come step on (those that find it full wait
        one more headway); returns the slots that left the walking crowd."""
        cr = self.crowd
        en = cr.board[slots].astype(np.int64)
        who = cr.ids[slots]
        order = np.lexsort((who, en))
        slots, en, who = slots[order], en[order], who[order]
        ci = self.entry_conn[en]
        first = np.r_[True, ci[1:] != ci[:-1]]
        k = np.arange(len(ci)) - np.maximum.accumulate(np.where(first, np.arange(len(ci)), 0))
        fits = self.conn_load[ci] + k < self.conn_cap[ci]
        wait = slots[~fits]
        cr.hold[wait] += self.entry_headway[en[~fits]]
        go, en, ci, who = slots[fits], en[fits], ci[fits], who[fits]
        if not len(go):
            return go
        np.add.at(self.conn_load, ci, 1)
        np.add.at(self.passed_by_connector, ci, 1)
        self.n_transit += len(go)
        self.state[who] = CHANGING_LEVEL
        self.came_from[who] = cr.lv[go]
        self.conn_e[who] = en
        self.t_on[who] = t
        self.t_off[who] = t + self._travel_s(who, en)
        self._next_arrival = min(self._next_arrival, float(self.t_off[who].min()))
        return go

    def _travel_s(self, who: np.ndarray, en: np.ndarray) -> np.ndarray:
        """Seconds on the connector: stairs at the person's stair speed (her free speed scaled by
        the published stair speed of a mean walker); escalators at the belt speed, walkers adding
        their stair speed along the slope."""
        ci = self.entry_conn[en]
        length = self.conn_length_m[ci]
        slope = self.conn_slope_m[ci]
        belt = self.conn_belt_mps[ci]
        stairs = belt == 0.0
        v_h = np.maximum(self.entry_h_speed[en], 1e-9) * self.v0[who] / self.p["desired_speed_mps"]
        walk_slope = v_h * slope / length
        ride = slope / np.where(stairs, 1.0, belt + np.where(self.walks_escalator[who], walk_slope, 0.0))
        # a lift's ride: half a cycle, door to door
        return np.where(self.entry_lift[en], self.entry_cycle_s[en] / 2, np.where(stairs, length / v_h, ride))

    def _choose(self, x, y, lv, paid, ids, cur, force):
        """New targets for passengers ``ids`` at ``x, y`` on levels ``lv``: the next waypoint or
        exit (``kernels.route_choice``)."""
        fl = self.floors
        allowed = np.where(self.guided[ids][:, None], self.allowed_guided[None, :], self.gate_open[None, :])
        perceive = np.where(self.guided[ids], -1.0, self.p["perception_radius_m"])
        return K.route_choice(x, y, lv, paid, self.v0[ids], self.dest[ids], np.arange(len(ids)), fl.grid, fl.floor,
                              fl.toff, fl.lt_start, fl.lt_idx, self.cand, self.G, self.r_dist, self.r_ride, self.qdown,
                              allowed, self.onward_m, self.queue_s, perceive, self.route_noise[ids], cur,
                              self.p["reroute_hysteresis_s"], force, self.came_from[ids], self.t_to_level)

    def _reroute(self, force: bool) -> None:
        cr, fl = self.crowd, self.floors
        n = cr.n
        counts = K.target_counts(cr.x, cr.y, cr.lv, cr.tgt, n, fl.grid, fl.floor, fl.toff, self.p["queue_radius_m"],
                                 self.T)
        self.queue_s = counts / np.maximum(self.target_cap, 1e-9)
        self.qdown = np.einsum("sugw,w->sug", self.r_via, self.queue_s)
        if n == 0:
            return
        free = np.flatnonzero(cr.board[:n] < 0)  # those waiting at a stair's foot keep their place
        if len(free):
            cr.tgt[free] = self._choose(cr.x[free], cr.y[free], cr.lv[free], cr.paid[free], cr.ids[free],
                                        cr.tgt[free], force)

    def _on_exit(self, t, ids, gates, x, y) -> None:
        self.t_exit[ids] = t
        self.gate_of[ids] = gates
        self.exit_xy[ids, 0] = x
        self.exit_xy[ids, 1] = y
        self.exited_by_gate += np.bincount(gates, minlength=len(self.exited_by_gate))
        self.last_exit_t = t
        mode = self.mode[ids]
        walk = mode == 0
        self.state[ids[walk]] = EXITED
        self.t_done[ids[walk]] = t
        if walk.any():
            self.last_done_t = t
        on = ids[~walk]
        if len(on):
            dest = self.dest[ids][~walk]
            poi = self.onward_poi[gates[~walk], dest]
            self.poi_of[on] = poi
            self.state[on] = ONWARD
            dist = self.onward_m[gates[~walk], dest]
            self.t_poi[on] = t + dist / self.v0[on]

    def _onward(self, t: float) -> None:
        onward = np.flatnonzero(self.state == ONWARD)
        if len(onward):
            arrived = onward[self.t_poi[onward] <= t]
            self.state[arrived] = QUEUEING
        if len(self.onward.due(t)):
            waiting = np.flatnonzero(self.state == QUEUEING)
            sel = self.onward.serve(t, waiting, self.poi_of[waiting], self.t_poi[waiting])
            if len(sel):
                b = waiting[sel]
                self.state[b] = BOARDED
                self.t_done[b] = t
                self.last_done_t = t

    def _density(self, interval: float) -> None:
        cr = self.crowd
        best = K.density_grid(cr.x, cr.y, cr.lv, cr.n, float(self.d_x0), float(self.d_y0), self.d_counts, self.d_area,
                              self.d_field)
        np.maximum(self.d_max, self.d_field, out=self.d_max)
        self.density_now = best
        self.max_density = max(self.max_density, best)
        if cr.n > 0:
            self.los[los_letter(best)] += interval

    # -- contract -----------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        if self.n_released < self.n_arriving or self.crowd.n or self.n_transit:
            return False
        s = self.state
        return not np.any((s == ONWARD) | (s == QUEUEING))

    def counts(self) -> dict[str, int]:
        s = self.state
        return {name: int(np.count_nonzero(s == code)) for code, name in enumerate(self.state_names)} | {
            "pending": int(np.count_nonzero(s == PENDING)), "released": self.n_released}

    def current_kpis(self) -> dict:
        s = self.state
        done = np.isfinite(self.t_done)
        eg = (self.t_done - self.t_appear)[done]
        st_t = (self.t_exit - self.t_appear)[np.isfinite(self.t_exit)]
        boarded = s == BOARDED
        waits = (self.t_done - self.t_poi)[boarded]
        inside_now = (s == WALKING) | (s == CHANGING_LEVEL)
        remaining = self.n_released < self.n_arriving or np.any(inside_now | (s == ONWARD) | (s == QUEUEING))
        inside = self.n_released < self.n_arriving or np.any(inside_now)
        st = self.station
        return {
            "agents_total": int(self.n_released),
            "agents_exited": int(np.isfinite(self.t_exit).sum()),
            "clearance_time_s": float(self.time_s if remaining else self.last_done_t),
            "station_clearance_time_s": float(self.time_s if inside else self.last_exit_t),
            "mean_egress_time_s": float(eg.mean()) if len(eg) else 0.0,
            "p95_egress_time_s": float(np.percentile(eg, 95)) if len(eg) else 0.0,
            "mean_station_time_s": float(st_t.mean()) if len(st_t) else 0.0,
            "mean_onward_wait_s": float(waits.mean()) if len(waits) else 0.0,
            "max_density_ppm2": float(self.max_density),
            "density_ppm2": float(self.density_now),
            "agents_in_station": int(np.count_nonzero(s == WALKING)),
            "agents_changing_level": int(np.count_nonzero(s == CHANGING_LEVEL)),
            "agents_waiting_onward": int(np.count_nonzero((s == ONWARD) | (s == QUEUEING))),
            "agents_done": int(np.count_nonzero((s == EXITED) | boarded)),
            "exited_by_gate": {g.id: int(c) for g, c in zip(st.gates, self.exited_by_gate)},
            "tourists_exited": int(np.count_nonzero(self.is_tourist & np.isfinite(self.t_exit))),
            "people_in_water": self._in_water(),
            "los_seconds": {k: float(v) for k, v in self.los.items()},
            "boarded_by_poi": {q.id: int(c) for q, c in zip(st.pois, self.onward.boarded_by_poi)},
            "passed_by_ticket_gate": {t.id: int(c) for t, c in zip(st.tickets, self.passed_by_ticket)},
            "passed_by_connector": {c.id: int(k) for c, k in zip(st.connectors, self.passed_by_connector)},
            "max_density_by_level": {str(lv): float(self.d_max[L].max()) if self.d_max[L].size else 0.0
                                     for L, lv in enumerate(st.levels)},
        }

    def snapshot(self) -> Snapshot:
        return self.agents(full=True)

    def agents(self, full: bool = False) -> Snapshot:
        """Where everybody is; ``full`` adds the density field, the KPIs and the per-gate values."""
        cr = self.crowd
        n = cr.n
        ch = np.flatnonzero(self.state == CHANGING_LEVEL)
        on = np.flatnonzero(self.state == ONWARD)
        q = np.flatnonzero(self.state == QUEUEING)
        # filled in place, group by group (walking, on a connector, onward, queueing): a trajectory
        # frame reads this four times a second, so no lists of parts to concatenate
        m = n + len(ch) + len(on) + len(q)
        pos, z = np.empty((m, 2)), np.zeros(m)
        states = np.empty(m, dtype=np.int8)
        ids = np.empty(m, dtype=np.int64)
        level = np.full(m, -1, dtype=np.int64)
        pos[:n, 0], pos[:n, 1] = cr.x[:n], cr.y[:n]
        z[:n] = self.level_z[cr.lv[:n]]
        states[:n] = WALKING
        ids[:n] = cr.ids[:n]
        level[:n] = cr.lv[:n]
        k = n
        if len(ch):
            K.on_connector(ch, self.conn_e, self.entry_conn, *self.conn_draw, self.t_on, self.t_off, self.time_s,
                           pos[k:k + len(ch)], z[k:k + len(ch)])
            states[k:k + len(ch)] = CHANGING_LEVEL
            ids[k:k + len(ch)] = ch
            k += len(ch)
        if len(on):
            poi_xy = self.onward.poi_xy()[self.poi_of[on]]
            frac = np.clip((self.time_s - self.t_exit[on]) / np.maximum(self.t_poi[on] - self.t_exit[on], 1e-9), 0, 1)
            pos[k:k + len(on)] = self.exit_xy[on] + (poi_xy - self.exit_xy[on]) * frac[:, None]
            states[k:k + len(on)] = ONWARD
            ids[k:k + len(on)] = on
            k += len(on)
        if len(q):
            poi_xy = self.onward.poi_xy()[self.poi_of[q]]
            spiral = q % QUEUE_SPIRAL_WRAP
            r = QUEUE_SPACING_M * np.sqrt(spiral)
            a = spiral * GOLDEN_ANGLE
            pos[k:, 0] = poi_xy[:, 0] + r * np.cos(a)
            pos[k:, 1] = poi_xy[:, 1] + r * np.sin(a)
            states[k:] = QUEUEING
            ids[k:] = q
        return Snapshot(
            time_s=self.time_s,
            positions=pos,
            states=states,
            state_names=self.state_names,
            ids=ids,
            fields={"density": self._grid("density", self.d_field)} if full else {},
            kpis={k: v for k, v in self.current_kpis().items() if not isinstance(v, dict)} if full else {},
            features=self._features() if full else {},
            z=z,
            level=level,
        )

    def walkable_areas(self) -> dict:
        """Each level's walkable floor without obstacles, ticket cabinets and stair wells."""
        st = self.station
        return {int(lv): st.free[lv] for lv in st.levels}

    def _features(self) -> dict[str, FeatureFrame]:
        st, G = self.station, self.G
        gates = FeatureFrame(np.array([g.id for g in st.gates], dtype=object), {
            "queue": np.rint(self.queue_s[:G] * self.target_cap[:G]),
            "exited": self.exited_by_gate.astype(float),
            "state": self.gate_open.astype(np.int8),
            "density": self._gate_density(),
        })
        waiting = self.poi_of[self.state == QUEUEING]
        pois = FeatureFrame(np.array([q.id for q in st.pois], dtype=object), {
            "waiting": np.bincount(waiting[waiting >= 0], minlength=len(st.pois)).astype(float),
        })
        return {"gates": gates, "pois": pois}

    def _gate_density(self) -> np.ndarray:
        """The highest density now within queue_radius_m of each gate, on its level (the density
        cells near it are found once: static geometry)."""
        if getattr(self, "_gate_cells", None) is None:
            _, rows, cols = self.d_field.shape
            xs = self.d_x0 + (np.arange(cols) + 0.5) * DENSITY_CELL_M
            ys = self.d_y0 - (np.arange(rows) + 0.5) * DENSITY_CELL_M
            r = self.p["queue_radius_m"]
            self._gate_cells = []
            for g in self.station.gates:
                L = self.station.level_index(g.level)
                R, C = np.meshgrid(np.flatnonzero(np.abs(ys - g.y) <= r), np.flatnonzero(np.abs(xs - g.x) <= r),
                                   indexing="ij")
                near = ((xs[C] - g.x) ** 2 + (ys[R] - g.y) ** 2 <= r * r) & (self.d_area[L, R, C] > MIN_DENSITY_AREA_M2)
                self._gate_cells.append((L, R[near], C[near]))
        return np.array([float(self.d_field[L, r, c].max()) if len(r) else 0.0 for L, r, c in self._gate_cells])

    @property
    def max_targets(self) -> int:
        """Targets with every ticket bank open: the most any variant of this station has (state checks)."""
        return self.G + len(self.station.tickets) + len(self.entries)

    def forced_parameters(self, quantity, readings):
        if quantity == "cancelled_arrival_in_s":  # a feed repeats a cancellation in every snapshot: once is enough
            first: dict[tuple[str, float], float] = {}
            for t, platform, lead in readings:
                first.setdefault((platform, round(t + lead)), t)
            return {"train_cancellations": [f"{platform} {arrival} {t:g}" for (platform, arrival), t in first.items()]}
        if quantity != "train_delay_s":
            return {}
        return {"train_delays": [f"{platform} {delay:g} {t:g}" for t, platform, delay in readings]}

    def forcing_values(self, quantity):
        if quantity != "train_delay_s" or not self.p["train_delays"]:
            return {}
        out: dict[str, float] = {}
        for item in self.p["train_delays"]:  # the reports known by now: what the railway's feed says
            platform, delay, at = str(item).replace(",", " ").split()
            if float(at) <= self.time_s + 1e-9:
                out[platform] = float(delay)
        return out

    # -- a run continued with another demand (demand_scale: the passengers yet to come) ----------------
    def saved_rows(self, saved, shapes):
        attrs = saved.get("attrs") if isinstance(saved, dict) else None
        sizes = attrs.get("src_sizes") if isinstance(attrs, dict) else None
        if sizes is None or sizes == self.src_sizes:
            return {}  # a missing entry is named by set_state
        if not (isinstance(sizes, list) and len(sizes) == len(self.src_sizes)
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes)):
            raise UserError(f"'src_sizes' = {str(sizes)[:60]} must give the passengers of each of this run's "
                            f"{len(self.src_sizes)} trains (whole numbers from 0).")
        check_total(sizes, "'src_sizes' (the saved run's passengers per train)")
        n = sum(sizes)
        held = shapes.get("state")
        if held is not None and tuple(held[:1]) != (n,):
            raise UserError(f"'src_sizes' gives {n:,} passengers, but array 'state' holds {held[0] if held else 0:,}; "
                            "the state was edited or damaged.")
        return {**dict.fromkeys(PASSENGER_ARRAYS, n), **dict.fromkeys(CROWD_ARRAYS, max(n, 1))}

    def adapt_state(self, arrays, meta):
        """A state saved with another demand (``demand_scale``): those already released keep their
        state, the trains yet to come are this run's. A train that has begun releasing keeps its
        passengers and its schedule (a new demand would otherwise step off at once: a burst on the
        platform at every change, which a particle filter's kernel makes at every resampling). Those
        kept keep their per-passenger draws (speed, mode, route taste: _per_passenger, with their
        train's key). A state saved before trains had keys has every key 0, as its draws were."""
        attrs = meta.get("attrs", {})
        if isinstance(attrs, dict) and "train_keys" not in attrs and isinstance(attrs.get("src_sizes"), list):
            attrs = {**attrs, "train_keys": [0] * len(attrs["src_sizes"])}
            meta = {**meta, "attrs": attrs}
        old, ptr = attrs.get("src_sizes"), attrs.get("src_ptr")
        # the routes are the saved run's when only the trains yet to come differ (their size, a delay or a
        # cancellation a feed reports): nobody in the station chooses again (on_restore)
        self._same_routes = self.same_params(meta.get("params"), ignore=TIMETABLE_PARAMS)
        if (not isinstance(old, list) or old == self.src_sizes or not isinstance(ptr, list) or len(ptr) != len(old)
                or any(len(arrays.get(k, ())) != sum(old) for k in PASSENGER_ARRAYS)):
            return arrays, meta  # as it is; set_state's checks say what is wrong, if anything
        state = arrays["state"]
        starts = np.r_[0, np.cumsum(old)].astype(np.int64)
        released = []
        for k, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
            seen = np.flatnonzero(state[a:b] != PENDING)
            released.append(int(min(max(int(ptr[k]) - a, (seen[-1] + 1) if len(seen) else 0, 0), b - a)))
        # a train that has begun releasing keeps its count (its passengers are on the platform: a new
        # demand stepping off at once would be a burst no train makes); one to come takes this run's
        sizes = [o if r > 0 else int(n) for n, r, o in zip(self.src_sizes, released, old)]
        keys = attrs.get("train_keys")
        keys = keys if (isinstance(keys, list) and len(keys) == len(sizes)
                        and all(isinstance(k, int) and 0 <= k < TRAIN_KEYS for k in keys)) else None
        if sizes != self.src_sizes:  # this run's layout of passengers, with room for those released
            self._draw_passengers(self._mode_shares(), sizes, keys)
            self._setup_tickets(self.N)
            self._setup_routes()
            self._setup_crowd()
        new_starts = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        old_idx = np.concatenate([np.arange(a, a + r) for a, r in zip(starts[:-1], released)] + [np.zeros(0, np.int64)])
        new_idx = np.concatenate([np.arange(a, a + r) for a, r in zip(new_starts[:-1], released)] + [np.zeros(0, np.int64)])
        out = dict(arrays)
        for path in PASSENGER_ARRAYS:
            a = attrgetter(path)(self).copy()
            a[new_idx] = arrays[path][old_idx]
            out[path] = a
        n = int(attrs.get("crowd.n", 0)) if isinstance(attrs.get("crowd.n", 0), int) else 0
        n = min(max(n, 0), len(arrays["crowd.ids"]), self.crowd.cap)
        where = np.full(len(state), -1, dtype=np.int64)
        where[old_idx] = new_idx
        for path in CROWD_ARRAYS:
            a = attrgetter(path)(self).copy()
            a[:n] = arrays[path][:n]
            out[path] = a
        ids = arrays["crowd.ids"][:n]
        ok = (ids >= 0) & (ids < len(where))
        out["crowd.ids"][:n] = np.where(ok, where[np.where(ok, ids, 0)], -1)  # -1: refused by the index check
        new_attrs = {**attrs, "src_ptr": [int(a + r) for a, r in zip(new_starts[:-1], released)], "src_sizes": sizes}
        return out, {**meta, "attrs": new_attrs}

    def reseed(self, entropy) -> None:
        """Also a key of its own for the crowd's heading noise (a hash of passenger and step, not a
        draw): else the copies of one state (a branch's replications, a particle filter's resampled
        members, an ensemble forecast's members) walk alike, step for step."""
        super().reseed(entropy)
        self.crowd.noise_key = int(self.rng.integers(1, NOISE_KEYS))
        # and the passengers of the trains yet to come are drawn anew (speed, mode, route taste):
        # else copies of one state share every future passenger, and their futures differ by the
        # heading noise alone
        key = int(np.random.SeedSequence([*(int(e) for e in entropy), TRAIN_KEY_STREAM]).generate_state(
            1, np.uint64)[0] % np.uint64(TRAIN_KEYS - 1)) + 1
        for k, (a, _) in enumerate(self.src_ranges):
            if self.src_ptr[k] == a:
                self.train_keys[k] = key
        self._redraw_if_keyed_anew()

    def _redraw_if_keyed_anew(self) -> None:
        """The per-passenger draws again where a train's key is not the one they were drawn with."""
        if self.train_keys != self._drawn_keys:
            self._draw_per_passenger(self._mode_shares())
            self._assign_destinations()
            self._shun_lifts()

    def on_restore(self, same_params: bool) -> None:
        # another demand, delay or cancellation only: the gates, banks and guidance are the saved run's,
        # nobody chooses again (a delay reported to a live twin does not send everyone in the station
        # to choose their exit anew, as it does not in the truth)
        same_params = same_params or getattr(self, "_same_routes", False)
        self._redraw_if_keyed_anew()  # the draws of the saved run's trains, each with its key
        T = self.T
        if same_params:  # the state's targets are this model's: its numbers must index them
            if len(self.queue_s) != T or (self.crowd.tgt >= max(T, 1)).any():
                raise UserError(f"'queue_s' has {len(self.queue_s)} entries and 'crowd.tgt' reaches "
                                f"{int(self.crowd.tgt.max())}; this station has {T} targets.")
        elif (self.crowd.tgt >= max(T, 1)).any():  # the walkers are routed again below, counted first
            raise UserError(f"the walkers head for target {int(self.crowd.tgt.max())}, but this variant has {T} "
                            "targets (it opens fewer ticket banks than the saved run): continue as a variant that "
                            "opens at least the same banks, or run this one from the start.")
        else:  # another variant: queues per target are counted again when everyone chooses again
            self.queue_s = np.zeros(T)
        self._next_release = self._next_release_s()
        on = np.flatnonzero(self.state == CHANGING_LEVEL)
        self._next_arrival = float(self.t_off[on].min()) if len(on) else math.inf
        if not same_params:
            # another variant from here on: gates, banks and guidance may differ, so everyone chooses again
            self._reroute(force=True)

    def publish(self, name: str) -> FeatureFrame:
        """``station_exit__tourists_left``: tourists who left through each exit so far, a function of
        the state (who left where), so a restored run publishes the same counts again."""
        out = self.is_tourist & np.isfinite(self.t_exit) & (self.gate_of >= 0)
        counts = np.bincount(self.gate_of[out], minlength=len(self.station.gates)).astype(np.float64)
        return FeatureFrame(np.array([g.id for g in self.station.gates], dtype=object), {"tourists_left": counts})

    def accept(self, name: str, value, *, restored: bool = False) -> None:
        if name == "surface_water__max_depth":
            self._close_flooded_gates(value, restored)
        else:
            self._water[name] = value
        if name == "surface_water__depth":
            self._wade(value)

    def _wade(self, depth) -> None:
        """Water on the street level (level 0, the level the flood's surface covers) slows those
        walking in it by the depth-speed relation of ``agents.water_hazard`` and stops them where it is
        deeper than flood_stop_depth_m, until the next depth handed over. A function of the depth
        and the crowd, so a restored run sets the same speeds again."""
        cr, levels = self.crowd, self.station.levels
        n = cr.n
        if n == 0 or 0 not in levels:
            return
        on = np.flatnonzero(cr.lv[:n] == levels.index(0))
        d = np.zeros(n)
        d[on] = np.nan_to_num(depth.sample(cr.x[on], cr.y[on], outside=0.0))
        factor = np.where(d > self.p["flood_stop_depth_m"], 0.0, wading_speed_factor(d))
        cr.v0[:n] = self.v0[cr.ids[:n]] * factor

    def _in_water(self) -> dict[str, float]:
        """Passengers outside (on their way onward, queueing at a stop) by the hazard class of the water."""
        depth = self._water.get("surface_water__depth")
        if depth is None:  # not coupled with a flood: nobody stands in water
            return dict.fromkeys(HAZARD_CLASSES, 0.0)
        a = self.agents()
        out = (a.states == ONWARD) | (a.states == QUEUEING)
        return people_by_hazard(depth, self._water.get("surface_water__speed"), a.positions[out])

    def _close_flooded_gates(self, value, restored: bool) -> None:
        """The flood's deepest water so far (``surface_water__max_depth``): every open exit it reached
        deeper than flood_close_depth_m closes (the deepest water never falls, so a closed exit stays
        closed and after a restore the same exits close again). The last open exit stays open: the
        passengers inside must leave somewhere."""
        gates = self.station.gates
        depth = value.sample_near(np.array([g.x for g in gates]), np.array([g.y for g in gates]), GATE_WATER_RADIUS_M)
        shut = self.gate_open & (depth > self.p["flood_close_depth_m"])
        if not shut.any():
            return
        if not (self.gate_open & ~shut).any():
            shut[np.flatnonzero(shut)[-1]] = False
            if not shut.any():
                return
        self.gate_open = self.gate_open & ~shut
        G = self.G
        self.t_open[:G] = self.gate_open
        self.crowd.t_open[:G] = self.gate_open
        self.allowed_guided = self.allowed_guided & self.gate_open
        self.cand[0, :G] = self.gate_open
        self.r_dist, self.r_ride, self.r_via = K.route_tables(*self._succ, self.cand, V_REF_MPS)
        self.qdown = np.einsum("sugw,w->sug", self.r_via, self.queue_s)
        if not restored:  # those heading for a closed exit choose again now (a restored crowd already has)
            self._reroute(force=True)

    def _grid(self, name: str, values: np.ndarray) -> GridField:
        v = values.astype(np.float32).copy()
        v[self.d_area <= MIN_DENSITY_AREA_M2] = np.nan
        style = self.field_style(name)
        levels = self.station.levels
        if len(levels) == 1:
            return GridField(name, v[0], float(self.d_x0), float(self.d_y0), DENSITY_CELL_M, unit=style.unit,
                             doc=style.doc)
        return GridField(name, v, float(self.d_x0), float(self.d_y0), DENSITY_CELL_M, unit=style.unit, doc=style.doc,
                         band_names=tuple(f"level {lv}" for lv in levels), band_z_m=tuple(self.level_z.tolist()))

    def rasters(self) -> dict[str, GridField]:
        return {"max_density": self._grid("max_density", self.d_max)}


def _guided_ids(st, p) -> list[str]:
    """The exits guided passengers may be sent to (``guidance_gates``: ids or selectors)."""
    feats = [{"id": g.id, "kind": g.kind, "level": g.level} for g in st.gates] + [
        {"id": t.id, "kind": "ticket_gate", "level": t.level} for t in st.tickets]
    return select_ids(p.get("guidance_gates", []), feats, "gates", "guidance_gates")
