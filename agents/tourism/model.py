"""Tourist flow across a city (model ``tourist_flow``): arrivals by train and coach, room search,
sightseeing with entry queues at the attractions, evening check-in (docs/tourist_flow.md).

The places are POIs of the city: entry points (kind ``station``, ``railway_station`` or
``coach_stop``), attractions (kind ``attraction``) and hotels (kind ``hotel``). Travel times
between them come from shortest paths on the platform's road graph, on foot and by shuttle
(``routes.Network``). The queueing itself is the discrete-event engine (``engine.TourismEngine``,
Numba over numpy arrays): time is event-driven, so ``_advance(t)`` asks the engine to process every
event up to t and any pause point is exact (``time_quantum_s`` 0). The model clock starts at 0;
the engine's clock is the time of day, ``day_start_s`` + model time, so arrival profiles and
opening hours are written in time of day.

The view draws every tourist: travelling groups interpolated along the nodes of their route,
the others in crowds at their place (``view``), coloured by state; per-attraction queues and
occupancy, tourists on each road, and a crowding field (tourists per m² on a grid).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from twin.core import features
from twin.core.errors import UserError
from twin.core.formats import time_of_day
from twin.core.grid import GridField
from agents.water_hazard import CLASSES as HAZARD_CLASSES, people_by_hazard
from twin.core.model_contract import (
    KPI, AlertRule, Exchange, CityModel, ColumnSpec, FeatureFrame, FeatureStyle, FieldStyle, Numbers, Param, Series, Snapshot,
    StateSpec, TimeSeries,
)

from . import kpis as K
from . import layout as L
from .engine import MAX_GROUP, STATE_FIELDS, TourismEngine
from .inputs import Attractions, Demand, Entries, Hotels, Interventions, one_plus_poisson_pmf
from .layout import (
    A_CAP_NOMINAL, A_GATES, A_SVC_MEAN, C_NEXT_ARR, H_DESK_MEAN, H_DESKS, CHECKED_IN, D_INSIDE, D_PQP, D_QP, DESK, DESK_QUEUE, F_ARR,
    F_BUDGET_END, F_DEP, F_FOLLOW,
    F_MARK, F_ONLINE, F_PLATFORM, F_RESERVE, F_SHUTTLE, G_FLAGS, G_FROM, G_MODE, G_PLACE, G_SIZE, G_STATE, G_TO,
    G_VISIT, GATE, H_ROOMS, HD_FREE, HD_QP, IDLE, INSIDE, LEFT, N_STATES, QUEUE, SEARCH_ENQUIRY, SEARCH_PLATFORM,
    SEARCH_TRAVEL, TRAVEL_ATTR, TRAVEL_EXIT, TRAVEL_HOTEL, TRAVELLING_STATES, V_ENTER, V_JOIN, WAIT_SLOT,
)
from .routes import Network
from .view import MEMBER_SCALE_M, count_grid, crowd_ranks, members, sunflower
from .city_import import CITY_LAYERS, BUILDING_USES, IMPORT_HOOK, POI_KINDS
from . import city_check

TRAIN_KINDS = ("station", "railway_station")
COACH_KINDS = ("coach_stop",)
ENTRY_KINDS = TRAIN_KINDS + COACH_KINDS
DAY_S = 86400.0
REPORT_INTERVAL_S = 300.0
DISTRIBUTIONS = ("exponential", "deterministic", "lognormal")

# The view's states (Snapshot.states) and which engine states they gather; -1: not drawn (not yet
# arrived, or done for the day).
VIEW_STATES = ("travelling", "queueing", "visiting", "searching_room", "checking_in", "waiting")
VIEW_OF = np.full(N_STATES, -1, np.int8)
VIEW_OF[[TRAVEL_ATTR, TRAVEL_HOTEL, TRAVEL_EXIT]] = 0
VIEW_OF[[QUEUE, GATE]] = 1
VIEW_OF[INSIDE] = 2
VIEW_OF[[SEARCH_TRAVEL, SEARCH_ENQUIRY, SEARCH_PLATFORM]] = 3
VIEW_OF[[DESK_QUEUE, DESK]] = 4
VIEW_OF[[WAIT_SLOT, IDLE]] = 5
DONE_STATES = (CHECKED_IN, LEFT)
TRAVELLING = np.isin(np.arange(N_STATES), TRAVELLING_STATES)
# What a group does under the interventions (drawn per group at construction); a run continued as
# another variant takes these from the variant.
BEHAVIOUR_FLAGS = F_PLATFORM | F_ONLINE | F_FOLLOW | F_RESERVE | F_SHUTTLE

# Crowds at places (view), as the scale of their sunflower discs: π·scale² of area per person,
# 0.5 m² in a queue (2 persons/m², a dense queue), 2 m² inside an attraction.
QUEUE_SCALE_M = 0.4
INSIDE_SCALE_M = 0.8
SUNFLOWER_CHUNK = 4096

P = Param
PARAMS = (
    # -- time and demand
    P("day_start_s", "s", 6 * 3600.0, "Time of day when the run starts (seconds after midnight). Arrival profiles and "
      "opening hours are in time of day; the run's clock counts from here.", float, 0.0, DAY_S),
    P("arrival_rate_per_h", "persons/h", 1500.0, "Tourists arriving per hour in the whole city (all entry points "
      "together), when no arrival_profile is given.", float, 0.0, 1e6),
    P("arrival_profile", "persons/h", [], "Tourists arriving per hour in the whole city by time of day: "
      "[[t_s, rate], ...] (t_s in seconds after midnight) or a two-column CSV. Each rate holds until the next time, "
      "the last one to the end of the run (end with 0 to stop arrivals); the first time must be at or before "
      "day_start_s. Replaces arrival_rate_per_h.", TimeSeries, 0.0, 1e6),
    P("arrival_process", "-", "poisson", "poisson (non-homogeneous Poisson arrivals) or deterministic (evenly "
      "spaced at the rate).", str, choices=("poisson", "deterministic")),
    P("coach_share", "-", 0.4, "Share of tourists arriving by coach (POIs of kind coach_stop); the others arrive by "
      "train (kind station or railway_station). A city with only one kind sends everybody there. An optional POI "
      "column arrival_weight splits a kind's arrivals between its entry points (default: evenly).", float, 0.0, 1.0),
    P("group_size_mean", "persons", 2.5, "Mean size of a tourist group (1 + Poisson). A group travels, queues and "
      "is served together; every measure counts persons.", float, 1.0, 50.0),
    P("group_size_max", "persons", 8, "Largest group (the Poisson tail is folded into it).", int, 1, 255),
    P("time_budget_s", "s", 6 * 3600.0, "Mean sightseeing time from arrival (lognormal); a group drops the "
      "attractions it could not finish within its budget.", float, 60.0, 7 * DAY_S),
    P("time_budget_cv", "-", 0.25, "Coefficient of variation of the time budget (0: the same for all).", float, 0.0, 3.0),
    P("max_visits", "-", 3, "Attractions a group visits at most; drawn by popularity (the POI column popularity, "
      "else the capacity).", int, 1, 50),
    P("alternatives", "-", 1, "Further attractions on each group's list, visited instead of a closed, too late or "
      "(for recommendation followers) busier one.", int, 0, 50),
    P("overnight_share", "-", 0.3, "Share of groups staying the night: they look for a room on arrival and check in "
      "when their sightseeing ends; the others leave by their entry point.", float, 0.0, 1.0),
    P("persons_per_room", "persons", 2, "A group needs ceil(size / persons_per_room) rooms.", int, 1, 10),
    P("rooms_free_share", "-", 0.5, "Share of each hotel's rooms (its capacity) free at the start; a POI column "
      "rooms_free overrides it.", float, 0.0, 1.0),
    P("enquiry_s", "s", 120.0, "Time a walk-in room searcher spends asking at a hotel's desk.", float, 0.0, 3600.0),
    P("max_hotel_enquiries", "-", 0, "Hotels a walk-in searcher asks before giving up (nearest first; 0: all).",
      int, 0, 10_000),
    # -- attractions and hotels (POI columns give the rest)
    P("opening_hours_s", "s", [], "[open_s, close_s] in seconds after midnight for attractions without the POI "
      "columns open_s/close_s; closing is the last admission. Empty: open all day.", Numbers, 0.0, 7 * DAY_S),
    P("dwell_mean_s", "s", 3600.0, "Mean time inside an attraction (a POI column dwell_mean_s overrides).",
      float, 0.0, DAY_S),
    P("dwell_distribution", "-", "lognormal", "Distribution of the time inside.", str, choices=DISTRIBUTIONS),
    P("dwell_cv", "-", 0.5, "Coefficient of variation of a lognormal time inside.", float, 0.0, 5.0),
    P("service_time_distribution", "-", "exponential", "Distribution of the entry time per person at a gate "
      "(mean: the POI's service_time_s).", str, choices=DISTRIBUTIONS),
    P("service_cv", "-", 0.5, "Coefficient of variation of a lognormal entry time.", float, 0.0, 5.0),
    P("checkin_distribution", "-", "exponential", "Distribution of a group's time at the front desk (mean: the "
      "hotel's service_time_s).", str, choices=DISTRIBUTIONS),
    # -- travel
    P("walk_speed_mps", "m/s", 1.34, "Walking speed on the roads (Weidmann 1993's free walking speed).", float, 0.3, 3.0),
    P("max_snap_m", "m", 250.0, "A place (POI) farther than this from the road network is an error.", float, 1.0, 10_000.0),
    # -- interventions
    P("reservation_share", "-", 0.0, "Timed entry: share of groups who book an entry slot when they set out for an "
      "attraction; they use a reservation lane served first.", float, 0.0, 1.0),
    P("slot_length_s", "s", 1800.0, "Length of a timed-entry slot, from the opening.", float, 60.0, DAY_S),
    P("slot_quota_share", "-", 0.5, "Slot quota as a share of the gates' throughput in a slot.", float, 0.0, 1.0),
    P("recommend_share", "-", 0.0, "Live recommendation: share of groups who go to the attraction on their list that "
      "the platform ranks best now.", float, 0.0, 1.0),
    P("recommend_objective", "-", "wait", "What the recommendation minimises: wait (predicted entry wait) or "
      "crowding (share of the capacity taken).", str, choices=("wait", "crowding")),
    P("extra_gates", "-", 0, "Entry gates added at each attraction of extra_gates_at.", int, 0, 100),
    P("extra_gates_at", "-", [], "Attractions that get extra_gates: ids, names or selectors such as "
      '"class=museum" (empty: every attraction).', list, refers_to="pois:attraction"),
    P("entry_time_factor", "-", 1.0, "Faster entry (e-ticket, face check): multiplies every entry time.", float, 0.01, 10.0),
    # -- uncertainties (citytwin explore / calibrate): multipliers on top of the inputs and the measures
    P("arrival_scale", "-", 1.0, "Demand: multiplies every arrival rate (arrival_rate_per_h or arrival_profile).",
      float, 0.0, 100.0),
    P("compliance", "-", 1.0, "Share of the tourists a measure reaches who follow it: multiplies reservation_share, "
      "recommend_share, room_platform_share, online_checkin_share and shuttle_share.", float, 0.0, 1.0),
    P("service_time_scale", "-", 1.0, "Multiplies every entry time per person (on top of entry_time_factor): how "
      "long a gate really takes.", float, 0.01, 10.0),
    P("capacity_cap_share", "-", 1.0, "Capacity cap: an attraction admits at most this share of its capacity "
      "(1: no cap).", float, 0.01, 1.0),
    P("room_platform_share", "-", 0.0, "Share of overnight groups who find their room on the platform (the free room "
      "nearest their entry point, in platform_search_s) instead of walking from hotel to hotel.", float, 0.0, 1.0),
    P("platform_search_s", "s", 10.0, "Room search time on the platform (Haikou's promise: 10 s).", float, 0.0, 3600.0),
    P("online_checkin_share", "-", 0.0, "Share of groups checked in online: they skip the desk queue.", float, 0.0, 1.0),
    P("online_checkin_s", "s", 30.0, "Key pick-up time after online check-in (Haikou's promise: 30 s).",
      float, 0.0, 3600.0),
    P("shuttle_share", "-", 0.0, "Share of groups who ride the shuttle where it is faster than walking, the wait "
      "included (0: no shuttle).", float, 0.0, 1.0),
    P("shuttle_headway_s", "s", 600.0, "Time between shuttle departures at every stop.", float, 0.0, 7200.0),
    P("shuttle_kmh", "km/h", 30.0, "Shuttle speed limit (roads open to cars, at most their speed_kmh).",
      float, 5.0, 120.0),
    P("shuttle_stops", "-", [], "POIs the shuttle serves: ids, names or selectors (empty: every entry "
      "point and attraction).", list, refers_to="pois:station,railway_station,coach_stop,attraction,hotel"),
    # -- view
    P("flood_road_closed_depth_m", "m", 0.3, "Coupled with a flood (docs/coupling.md): roads where the water now stands "
      "deeper than this are impassable on foot (Shand et al. 2011; AIDR H2 and above) and tourists setting out route "
      "round them.", float, 0.0, 10.0),
    P("flood_vehicle_closed_depth_m", "m", 0.3, "Coupled with a flood: roads where the water now stands deeper than "
      "this are closed to the shuttle (Shand et al. 2011's interim limit for small vehicles, 0.3 m); rides set out "
      "round them, or on foot where the shuttle is cut off. Coaches do not stop at a coach stop this deep in water: "
      "their tourists still to come arrive at the nearest dry one.", float, 0.0, 10.0),
    P("flood_close_depth_m", "m", 0.15, "Coupled with a flood: an attraction whose water has stood deeper than this "
      "closes for the rest of the day (its queue is turned away, those inside finish their visit); a hotel lets no more "
      "rooms (walk-in searchers ask the next; its guests stay).", float, 0.0, 10.0),
    P("crowding_cell_m", "m", 25.0, "Cell size of the crowding field.", float, 5.0, 500.0),
)

KPIS = (
    KPI("tourists_total", "persons", "Tourists arrived so far."),
    KPI("visits_completed", "person-visits", "Attraction visits finished (a group of n counts n).", headline=True,
        better="higher"),
    KPI("mean_entry_wait_s", "s", "Mean wait from joining an entry queue to reaching a gate, per person (0 before "
        "anyone).", headline=True, better="lower"),
    KPI("p95_entry_wait_s", "s", "95th percentile of the entry wait, per person.", better="lower"),
    KPI("mean_room_search_s", "s", "Mean time from arrival to a booked room (or giving up), overnight tourists.",
        headline=True, better="lower"),
    KPI("mean_checkin_s", "s", "Mean time from reaching the hotel to having the key (desk queue + desk).",
        better="lower"),
    KPI("queue_hours_total", "person-h", "Time spent in entry and front-desk queues, all tourists together.",
        headline=True, better="lower"),
    KPI("peak_occupancy_ratio", "-", "Highest occupancy of any attraction so far / its capacity.", headline=True,
        better="lower"),
    KPI("turned_away", "person-visits", "Visits cut short by closing time while queueing.", better="lower"),
    KPI("room_search_failed", "persons", "Overnight tourists who found no free room.", better="lower"),
    KPI("tourists_in_city", "persons", "Tourists arrived and not yet checked in or gone."),
    KPI("tourists_from_station", "persons", "Tourists handed over by a station model of a coupled run: passengers "
        "who are tourists, arrived in the city at the exit they left by (docs/coupling.md); 0 alone."),
    KPI("people_in_water", "persons", "Tourists outdoors (on their way, queueing) standing in flood water now, by hazard class H1..H6 (AIDR 2017; H3 and "
        "above is unsafe for children and the elderly). Coupled with a flood only (docs/coupling.md).", keyed=True),
    KPI("attraction_queue", "persons", "Persons in each attraction's entry queue now.", keyed=True),
    KPI("attraction_occupancy", "persons", "Visitors inside each attraction now.", keyed=True),
    KPI("tourists_by_state", "persons", "Tourists in each state now (the view's states, plus checked_in and left "
        "for the day); they sum to tourists_total.", keyed=True),
)


ATTRACTION_WATER_RADIUS_M = 10.0  # the water at an attraction: the deepest this close to its point
# Coupling: tourists handed over at the features of this exchange's layer (a station's exits)
ARRIVALS = Exchange("station_exit__tourists_left", "features", "persons", "Tourists who left through each exit so far "
                    "(cumulative): the new ones since the last sync point arrive in the city at that exit now.",
                    layer="gates")
ARRIVAL_KIND = "exit"  # the features of ARRIVALS.layer that become entry points (all when the layer has no kind)
MAX_HANDED_GROUPS = 2**18  # groups a restored state may hold beyond those drawn at construction


class TouristFlowModel(CityModel):
    name = "tourist_flow"
    title = "Tourist flow"
    description = ("Tourists arrive by train and coach, look for a room, travel on the roads to the attractions on "
                   "their itineraries, queue at the gates, visit, and check in at their hotel in the evening.")
    params = PARAMS
    kpis = KPIS
    building_uses = BUILDING_USES
    poi_kinds = POI_KINDS
    import_hook = IMPORT_HOOK
    city_layers = CITY_LAYERS
    required_layers = ("roads", "pois")
    optional_layers = ("buildings",)

    @classmethod
    def check_city(cls, city, params=None):
        return city_check.check(super().check_city(city, params), city, ENTRY_KINDS)
    aoi_layers = ("pois:attraction,station,railway_station,coach_stop",)  # where tourists arrive and go
    state_names = VIEW_STATES
    report_interval_s = REPORT_INTERVAL_S
    field_styles = (
        FieldStyle("crowding", "persons/m2", "Tourists per m² of each crowding_cell_m cell (all tourists drawn: on "
                   "the roads, in queues, inside attractions, at hotels).", kind="heat", cmap="YlOrRd",
                   clim=(0.0, 0.5), cutoff=1e-6),
    )
    feature_styles = (
        FeatureStyle("pois", "queue", "persons", "Persons in an attraction's entry queue, or in a hotel's front-desk "
                     "queue, now.", cmap="YlOrRd", clim=(0.0, 500.0), label=True),
        FeatureStyle("pois", "occupancy_ratio", "-", "Attractions: visitors inside / capacity; hotels: share of the "
                     "rooms taken.", cmap="RdYlGn_r", clim=(0.0, 1.0)),
        FeatureStyle("roads", "tourists", "persons", "Tourists on the road now (walking, or riding a shuttle).",
                     cmap="YlOrRd", clim=(0.0, 100.0)),
        FeatureStyle("pois", "queue_wait_s", "s", "Time to get through the queue for a person joining now: the queue "
                     "divided by the gates' (hotels: desks') throughput, gates / mean service time. When the "
                     "capacity inside sets the pace the wait is longer.", cmap="YlOrRd", clim=(0.0, 3600.0)),
    )
    # Command-room alerts (a scenario's [alerts] edits them).
    alerts = (
        AlertRule("queue_wait", "A long queue at an attraction or a hotel desk: 15 minutes (amber), 30 (red).",
                  amber=900.0, red=1800.0, layer="pois", value="queue_wait_s"),
    )
    # Coupling (docs/coupling.md): the water closes roads (while deep) and attractions (for the day).
    accepts = (
        Exchange("surface_water__depth", "field", "m", "Water depth now: roads deeper than flood_road_closed_depth_m "
                 "are impassable."),
        Exchange("surface_water__max_depth", "field", "m", "Deepest water so far: attractions where it exceeded "
                 "flood_close_depth_m close."),
        Exchange("surface_water__speed", "field", "m/s", "Flow speed now: with the depth, the hazard class of the "
                 "water tourists stand in (people_in_water)."),
        ARRIVALS,
    )
    # The engine's whole dynamic state, array by array (``EngineState`` maps the names onto the
    # engine's World); the road network, the routes and the static inputs are rebuilt.
    state_attrs = tuple(f"engine_state.{f}" for f in STATE_FIELDS) + ("flood_closed_at", "hotel_flood_closed_at",
                                                                         "handed_over")
    # What a restored state may hold (docs/state_file.md). The group, visit and counter tables mix
    # columns of several kinds: each column is bounded by what the kernels index with it (a place,
    # an attraction, a hotel, a group, a visit row; -1 where the kernels read -1 as "none") or by its
    # codes; how the tables agree with each other (queues, heap, plans) is check_restored_state's.
    _E = "engine_state."
    _W = "engine.world."
    _COL = ColumnSpec
    state_specs = (
        StateSpec("flood_closed_at", nan=True, low=0.0),  # engine time each attraction closed by water; NaN: open
        StateSpec("hotel_flood_closed_at", nan=True, low=0.0),  # each hotel: when it stopped letting rooms; NaN: lets
        StateSpec("handed_over", low=0),  # persons handed over at each exit so far (coupled runs)
        StateSpec(_E + "key"),
        # groups handed over by another model are appended: the group tables may be longer than fresh
        StateSpec(_E + "plan", index_of=_W + "af", low=-1, rows="state_group_rows"),
        StateSpec(_E + "plan_st", low=L.P_PENDING, high=L.P_TURNED, rows="state_group_rows"),
        StateSpec(_E + "gi", rows="state_group_rows", columns=(
            _COL(L.G_STATE, "G_STATE", low=0, high=L.N_STATES - 1),
            _COL(L.G_SIZE, "G_SIZE", low=1, high=MAX_GROUP),
            _COL(L.G_ENTRY, "G_ENTRY", index_of=_W + "entry_place"),
            _COL(L.G_FLAGS, "G_FLAGS", low=0, high=2 * L.F_SHUTTLE - 1),  # the six flag bits
            _COL(L.G_ROOMS, "G_ROOMS", low=1, high=MAX_GROUP),
            _COL(L.G_PLACE, "G_PLACE", index_of="state_places"),
            _COL(L.G_FROM, "G_FROM", index_of="state_places", low=-1),
            _COL(L.G_TO, "G_TO", index_of="state_places", low=-1),
            _COL(L.G_MODE, "G_MODE", index_of=_W + "T"),  # 0 on foot, 1 shuttle (T's first axis)
            _COL(L.G_ATTR, "G_ATTR", index_of=_W + "af", low=-1),
            _COL(L.G_PLAN_K, "G_PLAN_K", index_of="state_plan_width"),
            _COL(L.G_HOTEL, "G_HOTEL", index_of=_W + "hf", low=-1),
            _COL(L.G_SEARCH_K, "G_SEARCH_K", low=0, high=_W + "hf"),  # = the hotels: all asked
            _COL(L.G_NEXT, "G_NEXT", index_of=_W + "gi", low=-1),
            _COL(L.G_VISIT, "G_VISIT", index_of=_W + "vi", low=-1),
            _COL(L.G_SLOT, "G_SLOT", index_of="state_slot_count", low=-1),
            _COL(L.G_VISITS, "G_VISITS", low=0, high="state_plan_width"),
        )),
        StateSpec(_E + "gf", nan=True, rows="state_group_rows"),  # NaN: not yet
        StateSpec(_E + "vf", nan=True, rows="state_visit_rows"),
        StateSpec(_E + "vi", rows="state_visit_rows", columns=(
            _COL(L.V_GROUP, "V_GROUP", index_of=_W + "gi"),
            _COL(L.V_ATTR, "V_ATTR", index_of=_W + "af"),
            _COL(L.V_OUTCOME, "V_OUTCOME", low=L.OUT_ACTIVE, high=L.OUT_TURNED),
            _COL(L.V_RESERVED, "V_RESERVED", low=0, high=1),
        )),
        # persons (or gates, desks, rooms) counted: not indices
        *StateSpec.each((_E + "ad", _E + "hd"), low=0, high="state_count_bound"),
        # sequence numbers: below ctr's C_SEQ (check_restored_state)
        StateSpec(_E + "hs", low=0, rows="state_heap_rows"),
        StateSpec(_E + "ctr", columns=(
            _COL(L.C_HEAP_N, "C_HEAP_N", low=0, high=_W + "ht"),
            _COL(L.C_SEQ, "C_SEQ", low=0),
            _COL(L.C_NEXT_ARR, "C_NEXT_ARR", low=0, high=_W + "gi"),
            _COL(L.C_NVISITS, "C_NVISITS", low=0, high=_W + "vi"),
            _COL(L.C_TODO, "C_TODO", low=0, high=0),  # the kernel empties the list before it returns
            _COL(L.C_N_DRAWN, "C_N_DRAWN", low=0, high=_W + "gi"),  # the rest were handed over
        )),
        *StateSpec.each((_E + "adf", _E + "hdf", _E + "now")),
        StateSpec(_E + "ht", rows="state_heap_rows"),
        *StateSpec.each((_E + "qh", _E + "qt"), index_of=_W + "gi", low=-1),
        StateSpec(_E + "todo", index_of=_W + "gi", rows="state_group_rows"),
        # a group, or -1-(2a+closing): attraction a opens or closes
        StateSpec(_E + "hid", index_of=_W + "gi", low="-state_heap_codes", rows="state_heap_rows"),
        StateSpec(_E + "slots", low=0, cols="max_booking_slots"),
    )
    del _E, _W, _COL

    def __init__(self, city, *, duration_s: float, seed: int, **params):
        super().__init__(city, duration_s=duration_s, seed=seed, **params)
        self.where = f"{city.root or city.name}, layer pois"
        self._read_places()
        self._build_network()
        self._build_engine()
        self.engine_state = EngineState(self.engine)
        self._setup_view()
        self.flood_closed_at = np.full(self.n_attr, np.nan)
        self.hotel_flood_closed_at = np.full(self.n_hotels, np.nan)
        self.handed_over = np.zeros(len(self.arrival_ids), np.int64)
        self._closed_edges = np.zeros(len(self.net.graph.edge_len), bool)
        self._closed_to_vehicles = np.zeros(len(self.net.graph.edge_len), bool)
        self._edge_cells = None  # (grid key, cell of each sample point, its edge) for road depths
        self._water: dict[str, GridField] = {}  # the flood's latest depth and speed (coupled runs)

    # -- setup steps --------------------------------------------------------------------------
    def _read_places(self) -> None:
        """Entry points, attractions and hotels from the POI layer; their columns checked."""
        pois = self.city.pois
        kinds = pois["kind"].astype(str)
        self.entries = pois[kinds.isin(ENTRY_KINDS)]
        self.attractions = pois[kinds == "attraction"]
        self.hotels = pois[kinds == "hotel"]
        found = ", ".join(sorted(set(kinds))) or "none"
        if not len(self.entries):
            raise UserError(f"{self.where}: model tourist_flow needs an entry point where tourists arrive: a POI of kind "
                            f"{', '.join(ENTRY_KINDS)}. This city has none (its POI kinds: {found}); add one.")
        if not len(self.attractions):
            raise UserError(f"{self.where}: model tourist_flow needs at least one POI of kind attraction (with columns "
                            f"gates, service_time_s, capacity). This city has none (its POI kinds: {found}); add one.")
        places = [self.entries, self.attractions, self.hotels]
        self.place_ids = [str(i) for df in places for i in df["id"]]
        self.place_xy = np.vstack([np.column_stack([df.geometry.x, df.geometry.y]) for df in places])
        self.n_entries, self.n_attr, self.n_hotels = (len(df) for df in places)
        self.attr_place = self.n_entries + np.arange(self.n_attr)
        self.hotel_place = self.n_entries + self.n_attr + np.arange(self.n_hotels)
        self._read_arrival_points()

    def _read_arrival_points(self) -> None:
        """Where tourists handed over by another model arrive (``ARRIVALS``): the features of its
        layer (of kind ``ARRIVAL_KIND``), as further entry points without arrivals of their own,
        places after the hotels. One too far from the roads hands its tourists to the nearest one
        that is not (or to the nearest entry point), so nobody handed over is lost."""
        city = self.city
        layer = city.layer(ARRIVALS.layer) if city.has(ARRIVALS.layer) else None
        if layer is not None and "kind" in layer.columns:
            layer = layer[layer["kind"].astype(str) == ARRIVAL_KIND]
        if layer is None or not len(layer):
            self.arrival_ids, self.arrival_entry, self.n_arrival_points = [], np.zeros(0, np.int64), 0
            return
        pts = layer.geometry.representative_point()
        xy = np.column_stack([pts.x, pts.y])
        g = city.road_graph()
        node = g.nearest_node(xy[:, 0], xy[:, 1], among=g.main_component())
        near = np.hypot(*(g.node_xy[node] - xy).T) <= self.p["max_snap_m"]
        self.arrival_ids = [str(i) for i in layer["id"]]
        kept = np.flatnonzero(near)
        to = kept if len(kept) else np.arange(self.n_entries)
        to_xy = xy[kept] if len(kept) else self.place_xy[:self.n_entries]
        gap = np.hypot(xy[:, None, 0] - to_xy[None, :, 0], xy[:, None, 1] - to_xy[None, :, 1])
        nearest = to[np.argmin(gap, axis=1)]
        # engine entry of each feature: the POI entries come first, then the kept features in order
        pos = np.full(len(xy), -1, np.int64)
        pos[kept] = self.n_entries + np.arange(len(kept))
        self.arrival_entry = pos[nearest] if len(kept) else nearest.astype(np.int64)
        self.n_arrival_points = len(kept)
        self.place_ids += [self.arrival_ids[i] for i in kept]
        self.place_xy = np.vstack([self.place_xy, xy[kept]])

    def _column(self, df, col: str, kind: str, default=np.nan, *, lo=None, integer=False, fix="") -> np.ndarray:
        """A numeric POI column (``default`` where absent or empty), checked per feature."""
        if col in df.columns:
            values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
            bad = np.flatnonzero(df[col].notna().to_numpy() & np.isnan(values))
            if bad.size:
                i = bad[0]
                raise UserError(f'{self.where}: {kind} "{df["id"].iloc[i]}" has {col} = {df[col].iloc[i]!r}, which is '
                                f"not a number. {fix}")
            values = np.where(np.isnan(values), default, values)
        else:
            values = np.broadcast_to(np.asarray(default, dtype=np.float64), (len(df),)).copy()
        checked = ~np.isnan(values)
        bad = checked & ~np.isfinite(values)
        if lo is not None:
            bad |= checked & (values < lo)
        if integer:
            bad |= checked & np.isfinite(values) & (values != np.round(values))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            need = f"a whole number >= {lo:g}" if integer else f"a number >= {lo:g}" if lo is not None else "finite"
            raise UserError(f'{self.where}: {kind} "{df["id"].iloc[i]}" has {col} = {values[i]:g}; it must be {need}. '
                            f"{fix}")
        return values

    def _build_network(self) -> None:
        p = self.p
        stops = None
        if p["shuttle_share"] > 0:
            if p["shuttle_stops"]:
                stops = np.isin(self.place_ids, self._ids("shuttle_stops"))
            else:
                stops = np.arange(len(self.place_ids)) < self.n_entries + self.n_attr
        self.net = Network(self.city.road_graph(), self.place_xy, self.place_ids, walk_mps=p["walk_speed_mps"],
                           max_snap_m=p["max_snap_m"], shuttle_stops=stops, shuttle_kmh=p["shuttle_kmh"])

    def _ids(self, key: str) -> list[str]:
        """The ids a feature parameter names (ids, names or selectors; twin.core.features)."""
        return features.check_params(type(self), {key: self.p[key]}, self.city,
                                     "parameters of model tourist_flow").get(key, [])

    def _build_engine(self) -> None:
        p = self.p
        self.start_s = p["day_start_s"]
        self.clock_start_s = self.start_s
        k = self.n_arrival_points  # entry points for tourists handed over only: no arrivals of their own
        places = np.r_[np.arange(self.n_entries), self.n_entries + self.n_attr + self.n_hotels + np.arange(k)]
        entries = Entries(place=places, arrival_rate_per_h=self._entry_rates() + [0.0] * k,
                          arrival_process=p["arrival_process"],
                          ids=list(self.entries["id"].astype(str)) + self.place_ids[len(self.place_ids) - k:])
        pmf = one_plus_poisson_pmf(p["group_size_mean"], p["group_size_max"])
        demand = Demand(group_size_pmf=pmf, time_budget_s=p["time_budget_s"], time_budget_cv=p["time_budget_cv"],
                        max_visits=p["max_visits"], alternatives=p["alternatives"],
                        overnight_share=p["overnight_share"], persons_per_room=p["persons_per_room"],
                        max_hotel_enquiries=p["max_hotel_enquiries"] or None)
        attractions, capacity = self._attraction_inputs()
        attr_ids = list(self.attractions["id"].astype(str))
        extra = np.zeros(self.n_attr, np.int64)
        if p["extra_gates"]:
            at = self._ids("extra_gates_at") or attr_ids
            extra[np.isin(attr_ids, at)] = p["extra_gates"]
        cap = None
        if p["capacity_cap_share"] < 1.0:
            cap = np.maximum(np.floor(p["capacity_cap_share"] * capacity), 1).astype(np.int64)
        follow = p["compliance"]  # of those a measure reaches, the share who follow it
        iv = Interventions(
            reservation_share=follow * p["reservation_share"], slot_length_s=p["slot_length_s"],
            slot_quota_share=p["slot_quota_share"], recommend_share=follow * p["recommend_share"],
            recommend_objective=p["recommend_objective"], extra_gates=extra,
            entry_time_factor=p["entry_time_factor"] * p["service_time_scale"],
            capacity_cap=cap, room_platform_share=follow * p["room_platform_share"],
            platform_search_s=p["platform_search_s"], online_checkin_share=follow * p["online_checkin_share"],
            online_checkin_s=p["online_checkin_s"],
            shuttle_share=follow * p["shuttle_share"] if self.net.n_modes > 1 else 0.0,
            shuttle_headway_s=p["shuttle_headway_s"])
        try:
            self.engine = TourismEngine(self.net.T, entries, attractions, self._hotel_inputs(), demand, iv,
                                        start_s=self.start_s, end_s=self.start_s + self.duration_s, rng=self.rng)
        except UserError as e:
            raise UserError(f"model tourist_flow on {self.where}: {e}") from None

    def _entry_rates(self):
        """Per entry point: persons per hour, a number or a (t_s, rate) profile in time of day."""
        p = self.p
        kinds = self.entries["kind"].astype(str).to_numpy()
        weight = self._column(self.entries, "arrival_weight", "entry point", 1.0, lo=0.0,
                              fix="arrival_weight splits a kind's arrivals between its entry points.")
        coach = np.isin(kinds, COACH_KINDS)
        share = np.zeros(self.n_entries)
        for mask, mode_share in ((coach, p["coach_share"]), (~coach, 1.0 - p["coach_share"])):
            if not mask.any():
                continue
            if not (~mask).any():
                mode_share = 1.0
            w = weight[mask]
            share[mask] = mode_share * (w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w)))
        profile = p["arrival_profile"]
        if not isinstance(profile, Series):
            return [float(p["arrival_rate_per_h"] * p["arrival_scale"] * s) for s in share]
        t, v = profile.arrays
        if t[0] > self.start_s:
            raise UserError(
                f'parameters of model tourist_flow: "arrival_profile" starts at {time_of_day(t[0])} (t_s = {t[0]:g}) but the '
                f"run starts at {time_of_day(self.start_s)} (day_start_s = {self.start_s:g}); the profile must cover the "
                f"whole run: add a first value at or before {self.start_s:g} s (its last value holds to the end).")
        return [(t, v * p["arrival_scale"] * s) for s in share]

    def _attraction_inputs(self) -> tuple[Attractions, np.ndarray]:
        a, p = self.attractions, self.p
        col = lambda c, **kw: self._column(a, c, "attraction", **kw)  # noqa: E731
        gates = col("gates", lo=1, integer=True, fix="An attraction needs at least 1 entry gate: set its gates column "
                    "to 1 or more (the extra_gates intervention adds more).")
        capacity = col("capacity", lo=1, integer=True, fix="Set its capacity column to the most visitors inside at once.")
        service = col("service_time_s", lo=0.0, fix="Set its service_time_s column to the mean entry time per person.")
        popularity = col("popularity", default=capacity, lo=0.0, fix="popularity weighs how often tourists choose it.")
        dwell = col("dwell_mean_s", default=p["dwell_mean_s"], lo=0.0, fix="dwell_mean_s is the mean time inside, s.")
        hours = p["opening_hours_s"]
        if hours and (len(hours) != 2 or hours[1] <= hours[0]):
            raise UserError(f'parameters of model tourist_flow: "opening_hours_s" = {hours}; give [open_s, close_s] '
                            "(seconds after midnight, close after open), e.g. [28800, 64800] for 08:00-18:00, or [] "
                            "for open all day.")
        opn = col("open_s", default=hours[0] if hours else np.nan, lo=0.0, fix="open_s is seconds after midnight.")
        cls = col("close_s", default=hours[1] if hours else np.nan, lo=0.0, fix="close_s is seconds after midnight.")
        none = lambda v: [None if np.isnan(x) else float(x) for x in v]  # noqa: E731
        return Attractions(place=self.attr_place, gates=gates.astype(np.int64), service_time_s=service,
                           service_time_distribution=p["service_time_distribution"], service_cv=p["service_cv"],
                           capacity=capacity.astype(np.int64), dwell_mean_s=dwell,
                           dwell_distribution=p["dwell_distribution"], dwell_cv=p["dwell_cv"], popularity=popularity,
                           open_s=none(opn), close_s=none(cls), ids=list(a["id"].astype(str))), capacity

    def _hotel_inputs(self) -> Hotels | None:
        h, p = self.hotels, self.p
        if not len(h):
            return None
        col = lambda c, **kw: self._column(h, c, "hotel", **kw)  # noqa: E731
        rooms = col("capacity", lo=0, integer=True, fix="A hotel's capacity column is its number of rooms.")
        free = col("rooms_free", default=np.floor(p["rooms_free_share"] * rooms), lo=0, integer=True,
                   fix="rooms_free is the number of rooms free at the start.")
        desks = col("gates", lo=1, integer=True, fix="A hotel's gates column is its number of front-desk servers: "
                    "set it to 1 or more.")
        checkin = col("service_time_s", lo=0.0, fix="A hotel's service_time_s is the mean check-in time.")
        return Hotels(place=self.hotel_place, rooms=rooms.astype(np.int64), rooms_free=np.minimum(free, rooms).astype(np.int64),
                      desks=desks.astype(np.int64), checkin_time_s=checkin, checkin_distribution=p["checkin_distribution"],
                      enquiry_s=p["enquiry_s"], ids=list(h["id"].astype(str)))

    def _setup_view(self) -> None:
        """Person ids, crowd anchors, the crowding grid and the road ids (all static)."""
        w = self.engine.world
        sizes = w.gi[:, G_SIZE]
        self._person0 = np.cumsum(sizes) - sizes  # id of a group's first member; the others follow
        self._fresh = {f: np.array(getattr(w, f), copy=True) for f in ("slots",)}
        self._fresh_flags = w.gi[:, G_FLAGS].copy()
        self._fresh_shapes = {f: getattr(w, f).shape for f in STATE_FIELDS}
        # queues gather round the entrance (the POI); the visitors inside round a point behind it,
        # away from the road the POI is snapped to
        xy, node_xy = self.place_xy, self.net.graph.node_xy[self.net.node]
        away = xy - node_xy
        norm = np.hypot(*away.T)
        away = np.where(norm[:, None] > 1e-6, away / np.maximum(norm, 1e-6)[:, None], [0.0, 1.0])
        capacity = np.zeros(len(xy))
        capacity[self.attr_place] = self.attractions["capacity"].to_numpy(dtype=float)
        inside_r = INSIDE_SCALE_M * np.sqrt(capacity)
        self.crowd_anchor = np.vstack([xy, xy + away * (inside_r + 5.0)[:, None]])
        self.crowd_scale = np.r_[np.full(len(xy), QUEUE_SCALE_M), np.full(len(xy), INSIDE_SCALE_M)]
        self._sunflower_table = sunflower(np.arange(SUNFLOWER_CHUNK), 1.0)
        self.grid = GridField.empty("crowding", self.city.bounds, self.p["crowding_cell_m"], unit="persons/m2")
        self.road_ids = np.asarray(self.net.graph.road_ids, dtype=object)
        pois = slice(self.n_entries, self.n_entries + self.n_attr + self.n_hotels)  # not the exits after them
        self.poi_ids = np.array(self.place_ids[pois], dtype=object)

    # -- time ------------------------------------------------------------------------------------
    @property
    def time_quantum_s(self) -> float:
        return 0.0  # event-driven: every pause point is exact

    def _advance(self, t_s: float) -> None:
        self.engine.advance(self.start_s + t_s)

    @property
    def finished(self) -> bool:
        w = self.engine.world
        return int(w.ctr[C_NEXT_ARR]) == self.engine.n_drawn and bool(np.isin(w.gi[:, G_STATE], DONE_STATES).all())

    # -- outputs ---------------------------------------------------------------------------------
    def current_kpis(self) -> dict:
        k = {name: (0.0 if math.isnan(v) else float(v)) for name, v in self.engine.kpis().items()}
        av = self.engine.attraction_values()
        k["attraction_queue"] = {a: float(v) for a, v in av["queue_length"].items()}
        k["attraction_occupancy"] = {a: float(v) for a, v in av["occupancy"].items()}
        k["tourists_by_state"] = self.persons_by_state()
        k["people_in_water"] = self._in_water()
        k["tourists_from_station"] = float(self.handed_over.sum())
        return k

    def _in_water(self) -> dict[str, float]:
        """Tourists outdoors (travelling, queueing) by the hazard class of the water where they are."""
        depth = self._water.get("surface_water__depth")
        if depth is None:  # not coupled with a flood: nobody stands in water
            return dict.fromkeys(HAZARD_CLASSES, 0.0)
        ppl = self.people()
        out = (ppl["states"] == 0) | (ppl["states"] == 1)
        return people_by_hazard(depth, self._water.get("surface_water__speed"), ppl["positions"][out])

    def persons_by_state(self) -> dict[str, float]:
        """Persons in each view state, plus checked_in and left; they sum to tourists_total."""
        sp = K.state_persons(self.engine.world)
        shown = VIEW_OF >= 0
        by_view = np.bincount(VIEW_OF[shown], weights=sp[shown], minlength=len(VIEW_STATES))
        out = {name: float(v) for name, v in zip(VIEW_STATES, by_view)}
        out["checked_in"] = float(sp[CHECKED_IN])
        out["left"] = float(sp[LEFT])
        return out

    def people(self) -> dict[str, np.ndarray]:
        """Every tourist in the city now: id, view state, position, and the road index (-1: off the
        roads). Worked out per group (a travelling group's point on its route, or a crowd's anchor and
        the persons before it there), then spread over its members on a sunflower disc."""
        w = self.engine.world
        now = float(w.now[0])
        gi, gf = w.gi, w.gf  # the groups not yet arrived are not drawn (VIEW_OF)
        g = np.flatnonzero(VIEW_OF[gi[:, G_STATE]] >= 0)
        st, size = gi[g, G_STATE], gi[g, G_SIZE]
        base = np.empty((len(g), 2))
        road = np.full(len(g), -1, np.int64)
        before = np.zeros(len(g), np.int64)  # persons before the group in its crowd
        scale = np.full(len(g), MEMBER_SCALE_M)
        moving = TRAVELLING[st]
        t = np.flatnonzero(moving)
        if t.size:
            tg = g[t]
            P, R = self.net.P, self.net.routes
            walk = gi[tg, G_FROM] * P + gi[tg, G_TO]
            route = np.minimum(gi[tg, G_MODE], self.net.n_modes - 1) * P * P + walk
            # a ride begun in another variant (continued from a state) with a shuttle this one lacks: its walk route
            route = np.where(R.end[route] - R.start[route] >= 2, route, walk)
            dep, arr = gf[tg, F_DEP], gf[tg, F_ARR]
            frac = np.clip((now - dep) / np.maximum(arr - dep, 1e-9), 0.0, 1.0)
            base[t], road[t] = R.locate(route, frac * R.total[route])
        c = np.flatnonzero(~moving)
        if c.size:
            cg, cs = g[c], st[c]
            place = gi[cg, G_PLACE]
            crowd = np.where(cs == INSIDE, self.net.P + place, place)
            visit = np.maximum(gi[cg, G_VISIT], 0)
            order = np.zeros(len(c))
            order = np.where(cs == QUEUE, w.vf[visit, V_JOIN], order)
            order = np.where(cs == INSIDE, w.vf[visit, V_ENTER], order)
            order = np.where(cs == DESK_QUEUE, gf[cg, F_MARK], order)
            order = np.where((cs == GATE) | (cs == DESK), -np.inf, order)  # being served: at the front
            order = np.where(cs == WAIT_SLOT, np.inf, order)  # waiting for their slot: behind the queue
            before[c] = crowd_ranks(crowd, order, size[c])
            base[c] = self.crowd_anchor[crowd]
            scale[c] = self.crowd_scale[crowd]
        row, member = members(g, size)
        xy = base[row] + self._sunflower(before[row] + member) * scale[row, None]
        return {"ids": self.person0[g][row] + member, "states": VIEW_OF[st][row], "positions": xy,
                "road": road[row]}

    @property
    def person0(self) -> np.ndarray:
        """Id of each group's first member (the others follow): groups handed over later come after
        all others, so nobody's id changes."""
        sizes = self.engine.world.gi[:, G_SIZE]
        if len(self._person0) != len(sizes):
            self._person0 = np.cumsum(sizes) - sizes
        return self._person0

    def _sunflower(self, k: np.ndarray) -> np.ndarray:
        """Unit-scale sunflower offsets of points k, from a table that grows as crowds do, in
        fixed chunks (so an entry never depends on when the table grew)."""
        top = int(k.max()) + 1 if len(k) else 0
        while top > len(self._sunflower_table):
            n = len(self._sunflower_table)
            self._sunflower_table = np.vstack([self._sunflower_table, sunflower(np.arange(n, n + SUNFLOWER_CHUNK), 1.0)])
        return self._sunflower_table[k]

    def snapshot(self) -> Snapshot:
        ppl = self.people()
        kpis = self.current_kpis()
        return Snapshot(
            time_s=self.time_s, positions=ppl["positions"], states=ppl["states"].astype(np.int8),
            state_names=self.state_names, ids=ppl["ids"].astype(np.int64),
            fields={"crowding": self.crowding(ppl["positions"])},
            kpis={k: v for k, v in kpis.items() if not isinstance(v, dict)},
            features=self._features(ppl["road"]),
        )

    def crowding(self, positions: np.ndarray) -> GridField:
        g = self.grid
        counts = count_grid(positions, 1.0, g.x0, g.y0, g.cell_m, g.shape)
        style = self.field_style("crowding")
        return GridField("crowding", (counts / g.cell_m ** 2).astype(np.float32), g.x0, g.y0, g.cell_m,
                         unit=style.unit, doc=style.doc)

    def _features(self, road: np.ndarray) -> dict[str, FeatureFrame]:
        w = self.engine.world
        on = road >= 0
        per_road = np.bincount(road[on], minlength=len(self.road_ids)).astype(float)
        a_queue = (w.ad[:, D_QP] + w.ad[:, D_PQP]).astype(float)
        a_ratio = w.ad[:, D_INSIDE] / w.ai[:, A_CAP_NOMINAL]
        rooms = w.hi[:, H_ROOMS].astype(float)
        h_taken = np.where(rooms > 0, (rooms - w.hd[:, HD_FREE]) / np.maximum(rooms, 1.0), 0.0)
        h_queue = w.hd[:, HD_QP].astype(float)
        a_rate = w.ai[:, A_GATES] / np.maximum(w.af[:, A_SVC_MEAN], 1e-9)  # persons per second through the gates
        h_rate = w.hi[:, H_DESKS] / np.maximum(w.hf[:, H_DESK_MEAN], 1e-9)
        pois = FeatureFrame(self.poi_ids, {"queue": np.r_[a_queue, h_queue],
                                           "occupancy_ratio": np.r_[a_ratio, h_taken],
                                           "queue_wait_s": np.r_[a_queue / np.maximum(a_rate, 1e-9),
                                                                 h_queue / np.maximum(h_rate, 1e-9)]})
        return {"pois": pois, "roads": FeatureFrame(self.road_ids, {"tourists": per_road})}

    # -- state -------------------------------------------------------------------------------------
    def reseed(self, entropy) -> None:
        """Fresh generators and a fresh key for the engine's counter-based draws (service and dwell
        times), which would otherwise repeat in every replication of a branch."""
        super().reseed(entropy)
        self.engine_state.key = self.rng.integers(0, 2**63, size=1, dtype=np.int64).astype(np.uint64)

    # -- counts that bound the columns of a restored state (state_specs) --
    @property
    def state_places(self) -> int:
        return self.engine.world.T.shape[1]

    @property
    def state_plan_width(self) -> int:
        return self.engine.world.plan.shape[1]

    @property
    def state_slot_count(self) -> int:
        return self.engine.world.slots.shape[1]

    @property
    def state_group_rows(self) -> int:
        """The most groups a restored state may hold: those drawn at construction and those handed over."""
        return self.engine.n_drawn + MAX_HANDED_GROUPS

    @property
    def state_visit_rows(self) -> int:
        return self.state_group_rows * self.engine.world.plan.shape[1]

    @property
    def state_heap_rows(self) -> int:
        return self.state_group_rows + 2 * len(self.engine.world.af) + 2

    @property
    def state_heap_codes(self) -> int:
        """Opening and closing events: -1-(2a+closing) for attraction a."""
        return 2 * len(self.engine.world.af)

    @property
    def state_count_bound(self) -> int:
        """The most persons any counter of an attraction or hotel may reach: every visit of the largest groups."""
        w = self.engine.world
        return MAX_GROUP * max(len(w.vi), len(w.gi), 1) + int(w.hi[:, L.H_ROOMS].max(initial=0))

    @property
    def max_booking_slots(self) -> int:
        """The most entry slots a booking table may have (the shortest slot, 60 s, over the day)."""
        w = self.engine.world
        budget = np.nanmax(w.gf[:, F_BUDGET_END]) if len(w.gf) else self.engine.end_s
        horizon = max(self.engine.end_s, float(budget))
        return max(int(math.ceil((horizon - self.engine.start_s) / 60.0)) + 1, w.slots.shape[1])

    def check_restored_state(self) -> None:
        """How the restored tables agree with each other, each column already within its own range:
        what a group's state says it holds (an attraction, a visit row, a hotel, a destination), the
        queues (lists through G_NEXT without loops or shared groups), the event heap (each group at
        most once, in a state that waits for an event) and room for the visits still to come. The
        kernels check no bounds: each of these would otherwise let them write past a table or loop
        for ever."""
        w = self.engine.world
        gi, st, ctr = w.gi, w.gi[:, L.G_STATE], w.ctr
        n_a, n_groups = len(w.af), len(gi)

        # the tables of groups (their visits, their events) have a row per group: those drawn at the
        # start and those handed over since
        n_drawn, k = self.engine.n_drawn, w.plan.shape[1]
        rows = {"gf": len(w.gf), "plan": len(w.plan), "plan_st": len(w.plan_st), "todo": len(w.todo),
                "vi": len(w.vi) // k, "vf": len(w.vf) // k, "ht": len(w.ht) - 2 * n_a - 2,
                "hs": len(w.hs) - 2 * n_a - 2, "hid": len(w.hid) - 2 * n_a - 2}
        off = {f: n for f, n in rows.items() if n != n_groups} if n_groups >= n_drawn else {"gi": n_groups}
        if off or len(w.vi) != len(w.vf) or len(w.vi) % k:
            f = next(iter(off), "vi")
            raise UserError(f"'engine_state.{f}' does not have the rows of the {n_groups} groups of 'engine_state.gi' "
                            f"(at least the {n_drawn} drawn at the start, and the visit and event rows that go with "
                            "them); the state file does not come from a run of this model.")

        def refuse(g, text):
            raise UserError(f"'engine_state.gi' row {int(g)} (state {L.STATE_NAMES[st[g]]}): {text}; the state "
                            "file does not come from a run of this model.")

        def first(mask):
            return int(np.flatnonzero(mask)[0])

        at_attr = np.isin(st, (L.TRAVEL_ATTR, L.WAIT_SLOT, L.QUEUE, L.GATE, L.INSIDE))
        if (at_attr & (gi[:, L.G_ATTR] < 0)).any():
            refuse(first(at_attr & (gi[:, L.G_ATTR] < 0)), "column G_ATTR is -1, but the group is at an attraction")
        rows = np.flatnonzero(at_attr)
        k = gi[rows, L.G_PLAN_K]
        bad = (w.plan[rows, k] != gi[rows, L.G_ATTR]) | (w.plan_st[rows, k] != L.P_PENDING)
        if bad.any():
            refuse(rows[bad][0], "column G_PLAN_K does not point at the pending plan entry of its attraction G_ATTR "
                   "('engine_state.plan', 'engine_state.plan_st')")
        in_visit = np.isin(st, (L.WAIT_SLOT, L.QUEUE, L.GATE, L.INSIDE))
        bad = in_visit & ((gi[:, L.G_VISIT] < 0) | (gi[:, L.G_VISIT] >= ctr[L.C_NVISITS]))
        if bad.any():
            refuse(first(bad), f"column G_VISIT = {gi[first(bad), L.G_VISIT]} is not one of the "
                   f"{ctr[L.C_NVISITS]} visit rows written ('engine_state.ctr' column C_NVISITS)")
        bad = np.isin(st, L.TRAVELLING_STATES) & (gi[:, L.G_TO] < 0)
        if bad.any():
            refuse(first(bad), "column G_TO is -1, but the group is travelling")
        bad = np.isin(st, (L.SEARCH_TRAVEL, L.SEARCH_ENQUIRY)) & (gi[:, L.G_SEARCH_K] >= w.hotel_order.shape[1])
        if bad.any():
            refuse(first(bad), f"column G_SEARCH_K is beyond the {w.hotel_order.shape[1]} hotels it asks in turn")
        bad = np.isin(st, (L.TRAVEL_HOTEL, L.DESK_QUEUE, L.DESK)) & (gi[:, L.G_HOTEL] < 0)
        if bad.any():
            refuse(first(bad), "column G_HOTEL is -1, but the group is at its hotel or on its way there")
        # the groups drawn at the start arrive in index order; those handed over arrived when appended
        bad = ((np.arange(n_groups) >= ctr[L.C_NEXT_ARR]) & (np.arange(n_groups) < n_drawn)) != (st == L.NOT_ARRIVED)
        if bad.any():
            refuse(first(bad), f"the groups from 'engine_state.ctr' column C_NEXT_ARR = {ctr[L.C_NEXT_ARR]} on, and "
                   "only those, are not_arrived")

        # queues: list a = regular queue of attraction a, A+a its reservation lane, 2A+h hotel h's desk
        listed = np.zeros(n_groups, bool)
        for lst in range(len(w.qh)):
            g, last = w.qh[lst], -1
            want_state, want = (L.QUEUE, (L.G_ATTR, lst % n_a)) if lst < 2 * n_a else \
                (L.DESK_QUEUE, (L.G_HOTEL, lst - 2 * n_a))
            while g >= 0:
                if listed[g]:
                    raise UserError(f"'engine_state.qh' list {lst}: group {g} comes twice in the queues "
                                    "('engine_state.gi' column G_NEXT makes a loop).")
                if st[g] != want_state or gi[g, want[0]] != want[1]:
                    refuse(g, f"the group is in queue list {lst} ('engine_state.qh'), which does not match its "
                           "state, G_ATTR or G_HOTEL")
                listed[g] = True
                last, g = g, gi[g, L.G_NEXT]
            if w.qt[lst] != last:
                raise UserError(f"'engine_state.qt' list {lst} holds {w.qt[lst]}, but that queue ends at group {last}.")
        bad = np.isin(st, (L.QUEUE, L.DESK_QUEUE)) & ~listed
        if bad.any():
            refuse(first(bad), "the group is queueing but in no queue ('engine_state.qh', column G_NEXT)")

        # the event heap: its first C_HEAP_N entries
        n = int(ctr[L.C_HEAP_N])
        hid, hs = w.hid[:n], w.hs[:n]
        if (hs >= ctr[L.C_SEQ]).any():
            raise UserError(f"'engine_state.hs' holds {hs.max()}, not below the next sequence number "
                            f"('engine_state.ctr' column C_SEQ = {ctr[L.C_SEQ]}).")
        groups, codes = hid[hid >= 0], hid[hid < 0]
        if len(np.unique(groups)) != len(groups) or len(np.unique(codes)) != len(codes):
            raise UserError("'engine_state.hid': a group or an attraction's opening/closing has two pending events; "
                            "each has at most one.")
        waiting = np.isin(st[groups], (L.NOT_ARRIVED, L.QUEUE, L.DESK_QUEUE, L.CHECKED_IN, L.LEFT))
        if waiting.any():
            refuse(groups[waiting][0], "the group has an event in the heap ('engine_state.hid'), but no event "
                   "comes in its state")
        # every visit still to come takes a pending plan entry, and a row of the visit table
        pending = int(((w.plan >= 0) & (w.plan_st == L.P_PENDING)).sum()) - int(in_visit.sum())
        if ctr[L.C_NVISITS] + pending > len(w.vi):
            raise UserError(f"'engine_state.ctr' column C_NVISITS = {ctr[L.C_NVISITS]} leaves too few of the "
                            f"{len(w.vi)} visit rows for the {pending} visits still planned ('engine_state.plan_st').")

    # -- coupling --------------------------------------------------------------------------------
    def accept(self, name: str, value, *, restored: bool = False) -> None:
        if name in ("surface_water__depth", "surface_water__speed"):
            self._water[name] = value
        if name == "surface_water__max_depth":
            self._close_flooded_attractions(value)
        elif name == "surface_water__depth":
            self._close_flooded_roads(value)
            self._divert_coaches(value)
        elif name == ARRIVALS.name:
            self._take_arrivals(value)

    def _take_arrivals(self, frame: FeatureFrame) -> None:
        """Tourists who left through each exit so far (cumulative, ``ARRIVALS``): those not yet
        handed over arrive now at that exit. A function of the counts and ``handed_over`` (state),
        so the same counts handed again after a restore add nobody."""
        if not len(self.arrival_ids) or not len(frame.ids):
            return
        pos = {i: k for k, i in enumerate(self.arrival_ids)}
        ids = [str(i) for i in frame.ids]
        unknown = [i for i in ids if i not in pos]
        if unknown:
            raise UserError(f"coupled run: tourists left through {unknown[0]!r}, which is no feature of kind "
                            f"{ARRIVAL_KIND} in layer {ARRIVALS.layer} of this city.")
        rows = np.array([pos[i] for i in ids], np.int64)
        total = np.zeros(len(self.arrival_ids), np.int64)
        total[rows] = np.rint(np.asarray(next(iter(frame.values.values())), np.float64)).astype(np.int64)
        new = np.maximum(total - self.handed_over, 0)
        if not new.any():
            return
        self.handed_over = self.handed_over + new
        at = np.flatnonzero(new)
        self.engine.add_arrivals(self.arrival_entry[at], new[at])

    def _close_flooded_attractions(self, depth) -> None:
        """Attractions the water reached close now: closing is the last admission, so the engine's
        closing turns their queues away (an event at this moment). Hotels the water reached let no
        more rooms from now (H_LET_UNTIL, read by the room search)."""
        from .kernels import heap_push

        xy = self.place_xy[self.n_entries:self.n_entries + self.n_attr + self.n_hotels]
        d = depth.sample_near(xy[:, 0], xy[:, 1], ATTRACTION_WATER_RADIUS_M)
        w = self.engine.world
        now = float(w.now[0])
        wet = d > self.p["flood_close_depth_m"]
        hotels = np.isnan(self.hotel_flood_closed_at) & wet[self.n_attr:]
        if hotels.any():  # a flooded hotel lets no more rooms (searchers ask the next); its guests stay
            self.hotel_flood_closed_at[hotels] = now
            w.hf[hotels, L.H_LET_UNTIL] = now
        shut = np.isnan(self.flood_closed_at) & wet[:self.n_attr]
        if not shut.any():
            return
        for a in np.flatnonzero(shut):
            self.flood_closed_at[a] = now
            if w.af[a, L.A_CLOSE] > now:
                w.af[a, L.A_CLOSE] = now  # the gates admit nobody from now on
                if w.ctr[L.C_HEAP_N] < len(w.ht):  # the kernels check no bounds; a full heap turns the queue
                    heap_push(w.ht, w.hs, w.hid, w.ctr, now, -1 - (2 * int(a) + 1))  # away at the usual closing

    def _divert_coaches(self, depth) -> None:
        """Coaches do not drive into water deeper than flood_vehicle_closed_depth_m: the groups still
        to come by coach to a flooded coach stop come to the nearest dry one instead (else to the
        nearest dry entry point). A function of the depth and the groups' entries (state), so a
        restore that hands the same depth again diverts nobody twice."""
        kinds = self.entries["kind"].astype(str).to_numpy()
        coach = np.isin(kinds, COACH_KINDS)
        if not coach.any():
            return
        xy = self.place_xy[:self.n_entries]
        dry = ~(depth.sample_near(xy[:, 0], xy[:, 1], ATTRACTION_WATER_RADIUS_M) > self.p["flood_vehicle_closed_depth_m"])
        w = self.engine.world
        first, drawn = int(w.ctr[C_NEXT_ARR]), int(w.ctr[L.C_N_DRAWN])
        entry = w.gi[first:drawn, L.G_ENTRY]  # a view: the groups not yet arrived
        for e in np.flatnonzero(coach & ~dry):
            pool = np.flatnonzero(coach & dry)
            pool = pool if len(pool) else np.flatnonzero(dry)
            if not len(pool):
                continue  # nowhere dry to stop: they come as planned
            to = pool[np.argmin(np.hypot(*(xy[pool] - xy[e]).T))]
            entry[entry == e] = to

    def _apply_flood_closures(self) -> None:
        """After a restore: the attractions the water closed keep their closing time (the heap
        already held and ran their closing)."""
        af = self.engine.world.af
        shut = ~np.isnan(self.flood_closed_at)
        af[shut, L.A_CLOSE] = np.minimum(af[shut, L.A_CLOSE], self.flood_closed_at[shut])
        hotels = ~np.isnan(self.hotel_flood_closed_at)
        self.engine.world.hf[hotels, L.H_LET_UNTIL] = self.hotel_flood_closed_at[hotels]

    def _close_flooded_roads(self, depth) -> None:
        """Walking times between places avoid the road segments now deeper than
        flood_road_closed_depth_m (groups already on their way keep their route); they open again
        when the water falls."""
        g = self.net.graph
        key = (depth.x0, depth.y0, depth.cell_m, depth.values.shape)
        if self._edge_cells is None or self._edge_cells[0] != key:
            a, b = g.node_xy[g.edge_u], g.node_xy[g.edge_v]
            n = np.maximum(np.ceil(np.hypot(*(b - a).T) / (0.5 * depth.cell_m)).astype(np.int64), 1) + 1
            edge = np.repeat(np.arange(len(n)), n)
            f = np.concatenate([np.linspace(0.0, 1.0, k) for k in n])
            pts = a[edge] + (b[edge] - a[edge]) * f[:, None]
            row, col = depth.index_of(pts[:, 0], pts[:, 1])
            ok = depth.inside(row, col)
            self._edge_cells = (key, row[ok], col[ok], edge[ok])
        _, row, col, edge = self._edge_cells
        d = np.nan_to_num(depth.plane()[row, col])
        closed = np.zeros((2, len(g.edge_len)), bool)  # on foot, to vehicles
        closed[0, edge[d > self.p["flood_road_closed_depth_m"]]] = True
        closed[1, edge[d > self.p["flood_vehicle_closed_depth_m"]]] = True
        if np.array_equal(closed[0], self._closed_edges) and np.array_equal(closed[1], self._closed_to_vehicles):
            return
        self._closed_edges, self._closed_to_vehicles = closed
        T, self.net.routes = self.net.closed(*closed)
        self.net.T[:] = T
        self.engine.world.T[:] = T

    def on_restore(self, same_params: bool) -> None:
        """A run continued as another variant keeps the history and takes this variant's levers from
        here on: the behaviour flags drawn for it (the draws are the same, the shares differ) and
        its booking table. Only interventions may differ: other demand gives other tourists."""
        self._apply_flood_closures()
        w = self.engine.world
        for f, shape in self._fresh_shapes.items():
            have = getattr(w, f).shape
            grows = self._state_spec(f"engine_state.{f}").rows is not None  # tables of groups handed over
            if f != "slots" and (have[1:] != shape[1:] or have[0] < shape[0] if grows else have != shape):
                raise UserError(f"the saved state has {getattr(w, f).shape} for the engine's {f}, this variant "
                                f"{shape}: a run can continue as another variant only if it changes interventions, "
                                "not the demand or the city. Run the variant from the start instead.")
        if same_params:
            return
        # (groups handed over keep the behaviour drawn when they arrived)
        n = len(self._fresh_flags)
        w.gi[:n, G_FLAGS] = (w.gi[:n, G_FLAGS] & ~BEHAVIOUR_FLAGS) | (self._fresh_flags & BEHAVIOUR_FLAGS)
        slots = w.slots
        if slots.shape != self._fresh["slots"].shape:
            fresh = np.zeros_like(self._fresh["slots"])
            k = min(fresh.shape[1], slots.shape[1])
            fresh[:, :k] = slots[:, :k]
            self.engine_state.slots = fresh


class EngineState:
    """The engine's state arrays as attributes (``engine_state.gi``), for ``state_attrs``: reading
    gives the engine's array, setting replaces it in the engine's World."""

    def __init__(self, engine: TourismEngine):
        object.__setattr__(self, "_engine", engine)

    def __getattr__(self, name: str):
        if name in STATE_FIELDS:
            return getattr(self._engine.world, name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value) -> None:
        if name not in STATE_FIELDS:
            raise AttributeError(f"{name} is not a state field of the tourism engine")
        eng = self._engine
        old = getattr(eng.world, name)
        eng.world = eng.world._replace(**{name: np.array(value, dtype=old.dtype, copy=True)})
