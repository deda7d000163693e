"""Crowd dispersal at a railway station (model ``station_dispersal``).

Trains release passengers (``sources``); they walk through the station (collision-free speed model
or social force model, Numba kernels over numpy arrays) to an exit gate chosen by route cost,
leave, walk to their onward metro entrance, bus stop or taxi rank, queue there and board.

Per-step state (positions, velocities, desired speeds, targets, states) lives in numpy arrays;
one ``step`` calls a handful of whole-array operations and no per-agent Python code. Mesa is used
for the model clock, the seeded generator and the data collector; passengers are rows, not Mesa
agents.

Density (for ``max_density_ppm2``, the ``density`` field and LOS): every ``density_interval_s``
the walking passengers are counted on a 1 m grid, the counts are smoothed with a separable
[1/4, 1/2, 1/4] tent (about a 2 x 2 m window) and divided by the walkable area under the same
tent. Fruin's walkway LOS of the worst (densest) cell is accumulated in ``los_seconds`` while
anyone is in the station.
"""
from __future__ import annotations

import math

import numpy as np
import shapely

from twin.core.errors import UserError
from twin.core.grid import GridField
from twin.core.los import LOS_COLOURS, LOS_DENSITY_PPM2, LOS_LETTERS, los_letter
from twin.core.model_contract import (KPI, AlertRule, CityModel, FeatureFrame, FeatureStyle, FieldStyle, Param,
                                      Snapshot)

from . import kernels as K
from .crowd import Crowd, MotionParams
from .geometry import MODES, ONWARD_KINDS, TICKET_SERVICE_S, build_station, check_connectivity
from .navigation import build_navigation
from .transport import Onward

WALKING, QUEUEING, EXITED, ONWARD, BOARDED = 0, 1, 2, 3, 4
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


P = Param
_MP = MotionParams()  # the physical defaults live in one place: crowd.MotionParams
PARAMS = (
    P("motion_model", "-", "collision_free",
      "Walking model: collision_free (Tordeux et al. 2016, as JuPedSim's CollisionFreeSpeedModel) or "
      "social_force (Helbing et al. 2000).", str, choices=("collision_free", "social_force")),
    P("desired_speed_mps", "m/s", 1.34, "Mean free walking speed (Weidmann 1993).", float, 0.3, 3.0),
    P("desired_speed_sd_mps", "m/s", 0.26, "Standard deviation of free speeds; draws are truncated to 0.5-2.0 m/s.",
      float, 0.0, 1.0),
    P("body_radius_m", "m", _MP.radius, "Body radius; 2 x radius is the contact distance of the speed model.",
      float, 0.1, 0.35),
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
    P("share_metro", "-", 0.45, "Share of passengers continuing by metro.", float, 0.0, 1.0),
    P("share_bus", "-", 0.25, "Share continuing by bus.", float, 0.0, 1.0),
    P("share_taxi", "-", 0.05, "Share continuing by taxi.", float, 0.0, 1.0),
    P("share_walk", "-", 0.25, "Share leaving on foot (done at the gate).", float, 0.0, 1.0),
    P("open_gates", "-", [], "Gate ids to open regardless of the gates layer.", list),
    P("closed_gates", "-", [], "Gate ids to close regardless of the gates layer.", list),
    P("guidance_share", "-", 0.0, "Share of passengers guided by live crowd information (city brain).",
      float, 0.0, 1.0),
    P("guidance_gates", "-", [], "Gates guided passengers may be sent to (empty: all open gates).", list),
    P("barriers", "-", [], "Extra obstacles: WKT polygons/lines in the city CRS, or ids of obstacles with "
      "optional = true.", list),
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
    KPI("max_density_ppm2", "persons/m2", "Highest density so far (1 m grid, ~2 x 2 m tent window).", headline=True, better="lower"),
    KPI("density_ppm2", "persons/m2", "Highest density now."),
    KPI("agents_in_station", "persons", "Passengers walking in the station now."),
    KPI("agents_waiting_onward", "persons", "Passengers walking to or queueing at their onward transport."),
    KPI("agents_done", "persons", "Passengers who boarded or walked away.", better="higher"),
    KPI("exited_by_gate", "persons", "Passengers who left through each gate so far.", keyed=True),
    KPI("los_seconds", "s", "Seconds the densest area spent at each Fruin walkway LOS (A-F).", per_step=False,
        keyed=True),
    KPI("boarded_by_poi", "persons", "Passengers who boarded at each onward POI.", per_step=False, keyed=True),
    KPI("passed_by_ticket_gate", "persons", "Passengers who validated at each ticket gate.", per_step=False,
        keyed=True),
)


class StationDispersalModel(CityModel):
    name = "station_dispersal"
    title = "Station crowd dispersal"
    description = ("Passengers leave trains, walk through the station to an exit (collision-free speed or "
                   "social force model) and continue by metro, bus, taxi or on foot.")
    params = PARAMS
    kpis = KPIS
    required_layers = ("walkable", "gates", "sources")
    optional_layers = ("obstacles", "pois")
    state_names = ("walking", "queueing", "exited", "onward", "boarded")
    report_interval_s = REPORT_INTERVAL_S
    aoi_layers = ("walkable", "gates", "sources")
    field_styles = (
        FieldStyle("density", "persons/m2", "Walking passengers per m² (1 m grid, ~2 x 2 m tent window), coloured "
                   "by Fruin's walkway level of service.", kind="density", clim=(0.0, 3.0),
                   bands=LOS_DENSITY_PPM2, colours=LOS_COLOURS, shader="density_heat", cutoff=0.02),
        FieldStyle("max_density", "persons/m2", "Highest density each cell reached during the run.", kind="density",
                   clim=(0.0, 3.0), bands=LOS_DENSITY_PPM2, colours=LOS_COLOURS, shader="density_heat", cutoff=0.02),
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
    # Everything a step changes; the rest (geometry, fields, draws per passenger) is rebuilt from
    # the city, the parameters and the seed.
    state_attrs = (
        "crowd.x", "crowd.y", "crowd.vx", "crowd.vy", "crowd.v0", "crowd.tgt", "crowd.ids", "crowd.exit_gate",
        "crowd.n", "crowd.step_no",
        "state", "t_appear", "t_exit", "t_poi", "t_done", "gate_of", "poi_of", "exit_xy", "src_ptr", "n_released",
        "lane_of", "hold_until", "lane_free_at", "passed_by_ticket",
        "queue_s", "_next_reroute", "exited_by_gate", "last_exit_t", "last_done_t",
        "d_field", "d_max", "_next_density", "density_now", "max_density", "los",
        "onward.next_dep", "onward.boarded_by_poi", "onward.departures",
    )

    def __init__(self, city, *, duration_s: float, seed: int, **params):
        super().__init__(city, duration_s=duration_s, seed=seed, **params)
        p = self.p
        shares = self._mode_shares()
        self.station = build_station(city, p)
        self.motion = MotionParams(model=p["motion_model"], radius=p["body_radius_m"], time_gap=p["time_gap_s"],
                                   t_narrow=p["narrow_time_gap_s"], a_rep=p["repulsion_strength"], d_rep=p["repulsion_range_m"])
        # the step divides the report interval, so rows and pauses land on whole steps
        wanted = p["time_step_s"] or self.motion.default_dt()
        self.dt_s = self.report_interval_s / math.ceil(self.report_interval_s / wanted - 1e-9)
        self._build_navigation()
        self._draw_passengers(shares)
        self._setup_tickets(self.N)
        self._setup_routes()
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
        """Floor fields to every target: the exits, then the open ticket gate banks (walked through)."""
        st, p = self.station, self.p
        self.banks = [t for t in st.tickets if t.open]
        targets = [(g.id, g.geom) for g in st.gates] + [(t.id, t.target) for t in self.banks]
        self.nav = build_navigation(st.free, targets, cell_m=p["grid_cell_m"])
        self.gate_open = np.array([g.open for g in st.gates], dtype=np.bool_)
        check_connectivity(st, self.nav, self.gate_open)
        self.G = len(st.gates)

    def _draw_passengers(self, shares: np.ndarray) -> None:
        """Release times and the per-passenger draws (speed, mode, guidance, route taste); a
        passenger's index is their id for the whole run."""
        st, p, rng = self.station, self.p, self.rng
        G, B = self.G, len(self.banks)
        # blocks per source, sorted by release time
        order = sorted(range(len(st.sources)), key=lambda i: (st.sources[i].release_s, i))
        rank = {s: k for k, s in enumerate(order)}
        spread = p["release_spread_s"]
        rel, src_of = [], []
        self.src_ranges = []
        n0 = 0
        for si, src in enumerate(st.sources):
            t0 = src.release_s + rank[si] * p["stagger_releases_s"]
            m = src.count
            times = t0 + (np.arange(m) + 0.5) / max(m, 1) * spread if spread > 0 else np.full(m, t0)
            rel.append(times)
            src_of.append(np.full(m, si))
            self.src_ranges.append((n0, n0 + m))
            n0 += m
        self.N = N = n0
        self.release_t = np.concatenate(rel) if rel else np.zeros(0)
        self.src_of = np.concatenate(src_of).astype(np.int32) if src_of else np.zeros(0, np.int32)
        self.src_ptr = [a for a, _ in self.src_ranges]
        self.v0 = np.clip(rng.normal(p["desired_speed_mps"], p["desired_speed_sd_mps"], N), 0.5, 2.0)
        self.mode = rng.choice(4, size=N, p=shares / shares.sum()).astype(np.int32)
        self.guided = rng.random(N) < p["guidance_share"]
        self.route_noise = (rng.normal(0.0, p["route_noise_s"], (N, G + B)) if p["route_noise_s"] > 0
                            else np.zeros((N, G + B)))
        self.must_validate = np.array([st.sources[k].must_validate for k in self.src_of], dtype=bool)
        self.state = np.full(N, PENDING, dtype=np.int8)
        self.t_appear = np.full(N, np.nan)
        self.t_exit = np.full(N, np.nan)
        self.t_poi = np.full(N, np.nan)
        self.t_done = np.full(N, np.nan)
        self.gate_of = np.full(N, -1, dtype=np.int32)
        self.poi_of = np.full(N, -1, dtype=np.int32)
        self.exit_xy = np.zeros((N, 2))

    def _setup_routes(self) -> None:
        """Route choice tables: onward destinations per gate, guidance, queue capacities."""
        st, p, rng, nav = self.station, self.p, self.rng, self.nav
        G, B, N = self.G, len(self.banks), self.N
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
        column_mode = np.array([mi for mi, _ in columns])
        self.dest = np.zeros(N, dtype=np.int32)
        for mi in range(1, len(MODES)):
            cols = np.flatnonzero(column_mode == mi)
            who = np.flatnonzero(self.mode == mi)
            if len(cols) and len(who):
                self.dest[who] = cols[rng.integers(len(cols), size=len(who))]
        guided_allowed = self.gate_open.copy()
        if p["guidance_gates"]:
            guided_allowed = np.array([g.id in p["guidance_gates"] for g in st.gates]) & self.gate_open
        self.allowed_guided = guided_allowed
        # queue time = people near a target / what it serves per second (exits by width, banks by lanes)
        self.gate_cap = np.array([p["gate_flow_pps_per_m"] * g.width_m for g in st.gates]
                                 + [t.capacity_pps for t in self.banks])
        self.queue_s = np.zeros(G + B)
        # walk from beyond each bank to each exit
        bx = np.array([t.exit_point[0] for t in self.banks])
        by = np.array([t.exit_point[1] for t in self.banks])
        self.bank_exit = (np.stack([nav.sample(nav.floor[g], bx, by) for g in range(G)], axis=1)
                          if B else np.zeros((0, G)))
        self._next_reroute = 0.0

    def _setup_release_cells(self) -> None:
        """Release candidates: free cells well clear of walls and gates, per source."""
        from .navigation import rasterize

        st, nav = self.station, self.nav
        xs, ys = nav.cell_centres()
        ok = nav.free & (nav.wall_d >= self.motion.radius + RELEASE_WALL_CLEARANCE_M) & (nav.zone < 0)
        self.src_cells = []
        for src in st.sources:
            m = rasterize(src.geom, nav.x0, nav.y0, nav.cell_m, nav.free.shape) & ok
            if not m.any():
                m = rasterize(src.geom, nav.x0, nav.y0, nav.cell_m, nav.free.shape) & nav.free & (
                    nav.wall_d >= self.motion.radius)
            if not m.any():
                raise UserError(f'layer sources: source "{src.id}" has no room for a person (it is narrower than '
                                f"{2 * self.motion.radius:.2f} m between walls). Enlarge it.")
            r, c = np.nonzero(m)
            self.src_cells.append(np.c_[xs[c], ys[r]])

    def _setup_crowd(self) -> None:
        """The walking crowd (empty at first), density grids and counters."""
        B = len(self.banks)
        self.crowd = Crowd(self.nav, max(self.N, 1), self.motion, cell_size=1.0,
                           gate_open=np.r_[self.gate_open, np.zeros(B, dtype=np.bool_)])
        self._setup_density()
        self.exited_by_gate = np.zeros(self.G, dtype=np.int64)
        self.los = dict.fromkeys(LOS_LETTERS, 0.0)
        self._next_density = 0.0
        self.density_now = 0.0
        self.max_density = 0.0
        self.n_released = 0
        self.last_exit_t = 0.0
        self.last_done_t = 0.0

    # -- setup helpers ------------------------------------------------------------------------
    def _setup_tickets(self, N: int) -> None:
        """Ticket lanes as a raster of lane numbers. A lane serves one passenger at a time: whoever
        enters it stands there until the lane has served everyone who entered before (a FIFO
        server per lane, so that a passenger who squeezes past a validating one gains nothing)."""
        from .navigation import rasterize

        nav, tickets = self.nav, self.station.tickets
        self.lane_zone = np.full(nav.free.shape, -1, dtype=np.int32)
        bank_of_lane, service = [], []
        # Lanes are numbered by the banks' geometry, open or closed, so every variant numbers them alike
        # and a state continued as another variant (a closed bank opened) keeps its lanes' queues.
        for b, t in enumerate(tickets):
            for slot in shapely.get_parts(t.slots):
                z = rasterize(slot, nav.x0, nav.y0, nav.cell_m, nav.free.shape)
                if z.any():
                    self.lane_zone[z & nav.free] = len(bank_of_lane)
                    bank_of_lane.append(b)
                    service.append(t.service_s)
        self.bank_of_lane = np.array(bank_of_lane, dtype=np.int64)
        self.lane_service = np.array(service, dtype=float)
        self.lane_free_at = np.zeros(len(service))
        self.lane_of = np.full(N, -1, dtype=np.int32)
        self.hold_until = np.full(N, -np.inf)
        self.passed_by_ticket = np.zeros(len(tickets), dtype=np.int64)
        self.has_tickets = len(service) > 0

    def _setup_density(self) -> None:
        nav = self.nav
        rows_f, cols_f = nav.free.shape
        h = nav.cell_m
        cols = int(math.ceil(cols_f * h))
        rows = int(math.ceil(rows_f * h))
        cr = np.minimum((np.arange(rows_f) + 0.5) * h, rows - 1e-9).astype(int)
        cc = np.minimum((np.arange(cols_f) + 0.5) * h, cols - 1e-9).astype(int)
        area = np.zeros((rows, cols))
        R, C = np.meshgrid(cr, cc, indexing="ij")
        np.add.at(area, (R[nav.free], C[nav.free]), h * h)
        from scipy.ndimage import convolve

        w = np.array([0.25, 0.5, 0.25])
        self.d_area = convolve(area, np.outer(w, w), mode="constant", cval=0.0)
        self.d_rows, self.d_cols = rows, cols
        self.d_counts = np.zeros((rows, cols))
        self.d_field = np.zeros((rows, cols))
        self.d_max = np.zeros((rows, cols))

    # -- stepping -----------------------------------------------------------------------------
    def step(self) -> None:
        cr = self.crowd
        cr.build_cells()
        cr.move(self.dt_s)
        cr.step_no += 1
        t_new = self.next_time_s
        self._release(t_new)  # uses this step's cell lists: before exits compact the arrays
        if self.has_tickets:
            self._validate_tickets(t_new)
        ex = cr.take_exits()
        if ex is not None:
            self._on_exit(t_new, *ex)
        if t_new >= self._next_reroute - 1e-9:
            self._reroute(force=False)
            self._next_reroute = t_new + self.p["reroute_interval_s"]
        self._onward(t_new)
        if t_new >= self._next_density - 1e-9:
            self._density(self.p["density_interval_s"])
            self._next_density = t_new + self.p["density_interval_s"]

    def _release(self, t: float) -> None:
        cr = self.crowd
        gap = 2.0 * self.motion.radius + RELEASE_GAP_M
        for si, (a, b) in enumerate(self.src_ranges):
            ptr = self.src_ptr[si]
            if ptr >= b or self.release_t[ptr] > t:
                continue
            end = ptr + int(np.searchsorted(self.release_t[ptr:b], t, side="right"))
            end = min(end, ptr + MAX_RELEASE_PER_STEP)
            m = end - ptr
            cells = self.src_cells[si]
            pick = self.rng.integers(0, len(cells), size=(m, RELEASE_CANDIDATES))
            jit = self.rng.uniform(-0.5, 0.5, size=(m, RELEASE_CANDIDATES, 2)) * self.nav.cell_m
            cx = cells[pick, 0] + jit[..., 0]
            cy = cells[pick, 1] + jit[..., 1]
            px, py = cr.place(cx, cy, gap)
            k = len(px)
            if k == 0:
                continue
            ids = np.arange(ptr, ptr + k)
            self.src_ptr[si] = ptr + k
            self.state[ids] = WALKING
            self.t_appear[ids] = t
            self.n_released += k
            tgt = self._choose(px, py, ids, np.zeros(k, dtype=np.int32), force=True)
            cr.add(px, py, self.v0[ids], tgt, ids=ids)

    def _validate_tickets(self, t: float) -> None:
        cr, nav = self.crowd, self.nav
        n = cr.n
        ids = cr.ids[:n]
        r, c = nav.index_of(cr.x[:n], cr.y[:n])
        rows, cols = self.lane_zone.shape
        lane = self.lane_zone[np.clip(r, 0, rows - 1), np.clip(c, 0, cols - 1)]
        new = (lane >= 0) & (self.lane_of[ids] < 0)
        if new.any():
            who, ln = ids[new], lane[new]
            order = np.lexsort((who, ln))
            who, ln = who[order], ln[order]
            # k-th newcomer to a lane in this step queues behind the k-1 before it
            first = np.r_[True, ln[1:] != ln[:-1]]
            k = np.arange(len(ln)) - np.maximum.accumulate(np.where(first, np.arange(len(ln)), 0))
            svc = self.lane_service[ln]
            done = np.maximum(self.lane_free_at[ln], t) + (k + 1) * svc
            self.lane_of[who] = ln
            self.hold_until[who] = done
            np.maximum.at(self.lane_free_at, ln, done)
            self.passed_by_ticket += np.bincount(self.bank_of_lane[ln], minlength=len(self.passed_by_ticket))
            # through the fare line: from now on they head for an exit
            slots = np.flatnonzero(new)
            cr.tgt[slots] = self._choose(cr.x[slots], cr.y[slots], ids[slots], cr.tgt[slots], force=True)
        # a passenger in a lane stands still until the lane has served them
        cr.v0[:n] = np.where(self.hold_until[ids] > t, 0.0, self.v0[ids])

    def _choose(self, x, y, ids, cur, force):
        """New targets for passengers ``ids`` at ``x, y``: a ticket gate bank for those still in a
        paid area, else an exit."""
        G = self.G
        allowed = np.where(self.guided[ids][:, None], self.allowed_guided[None, :], self.gate_open[None, :])
        perceive = np.where(self.guided[ids], -1.0, self.p["perception_radius_m"])
        nav = self.nav
        via = self.must_validate[ids] & (self.lane_of[ids] < 0) if self.banks else np.zeros(len(ids), bool)
        out = np.empty(len(ids), dtype=np.int32)
        rest = np.flatnonzero(~via)
        if len(rest):
            out[rest] = K.route_costs(x, y, self.v0[ids], self.dest[ids], rest, nav.floor[:G], nav.x0, nav.y0,
                                      nav.inv_h, allowed[rest], self.onward_m, self.queue_s[:G], perceive[rest],
                                      self.route_noise[ids], cur, self.p["reroute_hysteresis_s"], force)
        sel = np.flatnonzero(via)
        if len(sel):
            out[sel] = K.via_bank_costs(x, y, self.v0[ids], self.dest[ids], sel, nav.floor, G, nav.x0, nav.y0,
                                        nav.inv_h, np.ones(len(self.banks), np.bool_), self.bank_exit,
                                        allowed[sel], self.onward_m, self.queue_s, perceive[sel],
                                        self.route_noise[ids], cur, self.p["reroute_hysteresis_s"], force)
        return out

    def _reroute(self, force: bool) -> None:
        cr = self.crowd
        n = cr.n
        nav = self.nav
        counts = K.gate_counts(cr.x, cr.y, n, nav.floor, nav.x0, nav.y0, nav.inv_h, self.p["queue_radius_m"])
        self.queue_s = counts / self.gate_cap
        if n == 0:
            return
        ids = cr.ids[:n]
        cr.tgt[:n] = self._choose(cr.x[:n], cr.y[:n], ids, cr.tgt[:n], force)

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
        nav = self.nav
        best = K.density_grid(cr.x, cr.y, cr.n, nav.x0, nav.y0, self.d_rows, self.d_cols, self.d_counts,
                              self.d_area, self.d_field)
        np.maximum(self.d_max, self.d_field, out=self.d_max)
        self.density_now = best
        self.max_density = max(self.max_density, best)
        if cr.n > 0:
            self.los[los_letter(best)] += interval

    # -- contract -----------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        if self.n_released < self.N:
            return False
        return not np.any((self.state == WALKING) | (self.state == ONWARD) | (self.state == QUEUEING))

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
        remaining = self.n_released < self.N or np.any((s == WALKING) | (s == ONWARD) | (s == QUEUEING))
        inside = self.n_released < self.N or np.any(s == WALKING)
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
            "agents_waiting_onward": int(np.count_nonzero((s == ONWARD) | (s == QUEUEING))),
            "agents_done": int(np.count_nonzero((s == EXITED) | boarded)),
            "exited_by_gate": {g.id: int(c) for g, c in zip(self.station.gates, self.exited_by_gate)},
            "los_seconds": {k: float(v) for k, v in self.los.items()},
            "boarded_by_poi": {q.id: int(c) for q, c in zip(self.station.pois, self.onward.boarded_by_poi)},
            "passed_by_ticket_gate": {t.id: int(c) for t, c in zip(self.station.tickets, self.passed_by_ticket)},
        }

    def snapshot(self) -> Snapshot:
        cr = self.crowd
        n = cr.n
        pos = [np.c_[cr.x[:n], cr.y[:n]]]
        states = [np.full(n, WALKING, dtype=np.int8)]
        on = np.flatnonzero(self.state == ONWARD)
        if len(on):
            poi_xy = self.onward.poi_xy()[self.poi_of[on]]
            frac = np.clip((self.time_s - self.t_exit[on]) / np.maximum(self.t_poi[on] - self.t_exit[on], 1e-9), 0, 1)
            pos.append(self.exit_xy[on] + (poi_xy - self.exit_xy[on]) * frac[:, None])
            states.append(np.full(len(on), ONWARD, dtype=np.int8))
        q = np.flatnonzero(self.state == QUEUEING)
        if len(q):
            poi_xy = self.onward.poi_xy()[self.poi_of[q]]
            k = q % QUEUE_SPIRAL_WRAP
            r = QUEUE_SPACING_M * np.sqrt(k)
            a = k * GOLDEN_ANGLE
            pos.append(poi_xy + np.c_[r * np.cos(a), r * np.sin(a)])
            states.append(np.full(len(q), QUEUEING, dtype=np.int8))
        ids = np.concatenate([cr.ids[:n], on, q]).astype(np.int64)
        return Snapshot(
            time_s=self.time_s,
            positions=np.concatenate(pos).astype(np.float64),
            states=np.concatenate(states),
            state_names=self.state_names,
            ids=ids,
            fields={"density": self._grid("density", self.d_field)},
            kpis={k: v for k, v in self.current_kpis().items() if not isinstance(v, dict)},
            features=self._features(),
        )

    def _features(self) -> dict[str, FeatureFrame]:
        st, G = self.station, self.G
        gates = FeatureFrame(np.array([g.id for g in st.gates], dtype=object), {
            "queue": np.rint(self.queue_s[:G] * self.gate_cap[:G]),
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
        """The highest density now within queue_radius_m of each gate (the density cells near it are
        found once: static geometry)."""
        if getattr(self, "_gate_cells", None) is None:
            xs, ys = self._grid("density", self.d_field).cell_centres()
            r = self.p["queue_radius_m"]
            self._gate_cells = []
            for g in self.station.gates:
                rows, cols = np.flatnonzero(np.abs(ys - g.y) <= r), np.flatnonzero(np.abs(xs - g.x) <= r)
                R, C = np.meshgrid(rows, cols, indexing="ij")
                near = ((xs[C] - g.x) ** 2 + (ys[R] - g.y) ** 2 <= r * r) & (self.d_area[R, C] > MIN_DENSITY_AREA_M2)
                self._gate_cells.append((R[near], C[near]))
        return np.array([float(self.d_field[r, c].max()) if len(r) else 0.0 for r, c in self._gate_cells])

    def on_restore(self, same_params: bool) -> None:
        if not same_params:
            # another variant from here on: gates, banks and guidance may differ, so everyone chooses again
            self._reroute(force=True)

    def _grid(self, name: str, values: np.ndarray) -> GridField:
        v = values.astype(np.float32).copy()
        v[self.d_area <= MIN_DENSITY_AREA_M2] = np.nan
        style = self.field_style(name)
        return GridField(name, v, self.nav.x0, self.nav.y0, DENSITY_CELL_M, unit=style.unit, doc=style.doc)

    def rasters(self) -> dict[str, GridField]:
        return {"max_density": self._grid("max_density", self.d_max)}
