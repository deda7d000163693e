"""The crowd engine: agents walking in free space towards targets, all state in numpy arrays.

``Crowd`` holds the compact arrays of the agents now walking (slots ``0..n-1``), the cell-list
buffers (allocated once) and the motion-model constants, and advances them with the Numba kernels.
It knows nothing of trains, modes or KPIs; the station model, the verification tests and the
benchmark all drive it directly. Agents walk on levels (``lv``, an index into ``floors.levels``);
neighbours interact on the same level only.

Physical parameters (defaults, tuned against Weidmann's fundamental diagram, the bottleneck
flows and the Jülich run in VERIFICATION.md, the ticket-lane rate and the queue density; see
tests/agents/station/test_verification.py and docs/station.md):
collision-free speed model (Tordeux et al. 2016) with a speed-dependent body as in the
generalised centrifugal-force model (Chraibi et al. 2010): radius ``radius`` = 0.14 m walking at
the free speed, growing linearly to ``radius_standing`` = 0.21 m when standing (contact distance
0.28 m between walkers, 0.42 m between standing people: queues pack to about 6.5 persons/m²);
time gap T = 1.1 s, falling linearly to 0.6 s from 0.9 m to 0.5 m of clear width (passages too
narrow for two abreast, where people close up and interleave: the "zipper" of Hoogendoorn &
Daamen 2005 and Seyfried et al. 2009); neighbour repulsion a = 5, D = 0.2 m (JuPedSim: 8 and
0.1 m), cut off where a single neighbour's push falls below ``rep_eps`` = 0.01 (2.0 m between
standing people); walls: the direction loses its component into a wall when the body overlaps
it and gets a linear push (a_w = 1), and a hard constraint keeps centres >= r_hard = 0.07 m from
walls; a small deterministic heading noise (+-0.1 rad, x4 for agents that stood still) dissolves
symmetric standstills. Social force model (Helbing et al. 2000): tau = 0.5 s, m = 80 kg,
A = 2000 N, B = 0.08 m, k = 1.2e5 kg/s², kappa = 2.4e5 kg/(m s), anisotropy lambda = 0.5
(Helbing & Johansson 2007), walls A_w = 2000 N, B_w = 0.08 m, speed capped at 1.3 v0, one
radius (``radius``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from . import kernels as K
from .navigation import Floors, NavGrid


@dataclass
class MotionParams:
    model: str = "collision_free"  # or "social_force"
    radius: float = 0.14  # walking at the free speed (and the social force model's one radius)
    radius_standing: float = 0.21
    v_body: float = 0.3  # m/s: the body has shrunk to ``radius`` at this speed (0: at the agent's v0)
    time_gap: float = 1.1
    a_rep: float = 5.0
    d_rep: float = 0.2
    rep_eps: float = 0.03  # neighbours whose push would be below this are not looked at
    rep_cap: float = 1.0e9  # no cap: the plain model
    a_wall: float = 1.0
    d_wall: float = 0.0
    r_hard: float = 0.07
    noise: float = 0.1  # rad, uniform +-: breaks symmetric standstills
    # narrow passages: the time gap falls linearly from time_gap at clear width w_wide to
    # t_narrow at w_single and below
    t_narrow: float = 0.6
    w_single: float = 0.5
    w_wide: float = 1.1
    # social force
    tau: float = 0.5
    mass: float = 80.0
    a_soc: float = 2000.0
    b_soc: float = 0.08
    k_body: float = 1.2e5
    kappa: float = 2.4e5
    lam: float = 0.5
    a_w: float = 2000.0
    b_w: float = 0.08

    def default_dt(self) -> float:
        """1/12 s for the collision-free model (a first-order model, collision-free for dt < T; the
        verification figures hold from 0.05 s to 0.1 s), 0.01 s for the social force model."""
        return 1.0 / 12.0 if self.model == "collision_free" else 0.01

    @property
    def r_stand(self) -> float:
        """Standing radius (the social force model keeps one radius)."""
        return max(self.radius_standing, self.radius) if self.model == "collision_free" else self.radius

    @property
    def r_cut(self) -> float:
        """Repulsion cut-off: a neighbour pushes with a·exp((2 radius - d) / D) < rep_eps beyond it."""
        if self.a_rep <= 0:
            return 0.0
        return 2.0 * self.radius + self.d_rep * math.log(max(self.a_rep / self.rep_eps, 1.0))


class Crowd:
    """Walking agents; ``ids[k]`` maps slot ``k`` to the caller's agent index.

    ``floors`` is a ``navigation.Floors`` (or one ``NavGrid``, whose gates become the targets).
    Per slot: position, velocity, desired speed ``v0``, target ``tgt``, level ``lv``, ``hold``
    (stand still until this time), ``board`` (the connector entry the agent waits at, -1),
    ``paid`` (still has to pass a ticket lane) and the event of the last step ``ev``.

    Crowds of at least ``parallel_min`` agents use the threaded kernels (``prange``); smaller ones
    the serial twins, which avoid thread start-up and behave well on a busy machine. Both give
    identical results.
    """

    parallel_min = 1500

    def __init__(self, floors, capacity: int, motion: MotionParams | None = None,
                 cell_size: float = 1.0, period_x: float = 0.0, gate_open=None, n_exit: int | None = None):
        if isinstance(floors, NavGrid):
            floors = Floors.single(floors)
        self.floors = floors
        self.motion = motion or MotionParams()
        self.cap = int(max(capacity, 1))
        self.n = 0
        self.step_no = 0
        # the heading noise is a hash of (passenger, step); a replication's own key gives it its own noise
        # (0: the stream every run had before keys; reseed draws another)
        self.noise_key = 0
        self.t = 0.0  # the time at the start of the next step (for holds)
        cap = self.cap
        self.x = np.zeros(cap)
        self.y = np.zeros(cap)
        self.vx = np.zeros(cap)
        self.vy = np.zeros(cap)
        self.v0 = np.zeros(cap)
        self.tgt = np.zeros(cap, dtype=np.int32)
        self.ids = np.zeros(cap, dtype=np.int64)
        self.lv = np.zeros(cap, dtype=np.int32)
        self.hold = np.full(cap, -np.inf)
        self.board = np.full(cap, -1, dtype=np.int32)
        self.paid = np.zeros(cap, dtype=np.bool_)
        self.ev = np.full(cap, K.EV_NONE, dtype=np.int32)
        # cell lists over the plan extent of all levels, one grid per level
        xmin, ymin, xmax, ymax = floors.bounds
        self.period_x = float(period_x)
        if period_x > 0:
            ncx = int(round(period_x / cell_size))
            cell_size = period_x / ncx
        else:
            ncx = max(1, int(np.ceil((xmax - xmin) / cell_size)))
        self.cell_size = float(cell_size)
        self.xmin, self.ymin = float(xmin), float(ymin)
        self.ncx = ncx
        self.ncy = max(1, int(np.ceil((ymax - ymin) / cell_size)))
        ncell = self.ncx * self.ncy * floors.n_levels
        self.start = np.zeros(ncell + 1, dtype=np.int64)
        self.cursor = np.zeros(ncell, dtype=np.int64)
        self.cell_of = np.zeros(cap, dtype=np.int64)
        self.order = np.zeros(cap, dtype=np.int64)
        self.sx = np.zeros(cap)
        self.sy = np.zeros(cap)
        self.sr = np.zeros(cap)
        self.svx = np.zeros(cap)
        self.svy = np.zeros(cap)
        T = floors.n_targets
        self.n_exit = T if n_exit is None else int(n_exit)
        self.t_open = np.ones(max(T, 1), dtype=np.bool_)
        self.t_to_level = np.full(max(T, 1), -1, dtype=np.int32)  # connector entries: the level they lead to
        if gate_open is not None:
            self.t_open[:len(gate_open)] = np.asarray(gate_open, dtype=np.bool_)

    @property
    def gate_open(self) -> np.ndarray:
        return self.t_open

    # -- agents ---------------------------------------------------------------------------
    def add(self, x, y, v0, tgt, ids=None, lv=None, paid=None) -> None:
        m = len(x)
        if self.n + m > self.cap:
            raise ValueError("crowd capacity exceeded")
        s = slice(self.n, self.n + m)
        self.x[s] = x
        self.y[s] = y
        self.vx[s] = 0.0
        self.vy[s] = 0.0
        self.v0[s] = v0
        self.tgt[s] = tgt
        self.ids[s] = np.arange(self.n, self.n + m) if ids is None else ids
        self.lv[s] = 0 if lv is None else lv
        self.hold[s] = -np.inf
        self.board[s] = -1
        self.paid[s] = False if paid is None else paid
        self.ev[s] = K.EV_NONE
        self.n += m

    SLOT_ARRAYS = ("x", "y", "vx", "vy", "v0", "tgt", "ids", "lv", "hold", "board", "paid")  # ev: rewritten each step

    def remove(self, keep: np.ndarray) -> None:
        """Keep slots where ``keep`` (length n) is true, in order."""
        n = self.n
        m = int(keep.sum())
        if m == n:
            return
        for name in self.SLOT_ARRAYS:
            arr = getattr(self, name)
            arr[:m] = arr[:n][keep]
        self.n = m

    # -- stepping -------------------------------------------------------------------------
    def build_cells(self) -> None:
        mp = self.motion
        K.build_cells(self.x, self.y, self.vx, self.vy, self.v0, self.lv, self.n, self.xmin, self.ymin,
                      1.0 / self.cell_size, self.ncx, self.ncy, self.floors.n_levels, mp.radius, mp.r_stand, mp.v_body,
                      self.floors.grid, self.floors.wall_d, self.cell_of, self.cursor, self.start, self.order, self.sx, self.sy, self.sr)

    def _kernel_args(self):
        f = self.floors
        cells = (self.xmin, self.ymin, 1.0 / self.cell_size, self.ncx, self.ncy, self.period_x)
        flds = (f.walls, f.zone, f.lane)
        targ = (f.toff, f.dir_xy, self.t_open, self.n_exit, f.n_targets, self.t_to_level)
        return cells, f.grid, flds, targ

    def _repulsion_table(self) -> np.ndarray:
        mp = self.motion
        key = (mp.a_rep, mp.d_rep, mp.radius, mp.r_cut)
        if getattr(self, "_rep_key", None) != key:  # the motion parameters may be changed between steps
            self._rep_key = key
            self._rep_tab = K.repulsion_table(*key)
        return self._rep_tab

    def move(self, dt: float) -> None:
        """Advance every agent by ``dt`` (cells must have been built from current positions);
        writes the events ``ev``."""
        mp = self.motion
        n = self.n
        if n == 0:
            return
        cells, grid, flds, targ = self._kernel_args()
        par = n >= self.parallel_min and numba.get_num_threads() > 1  # one thread (a worker of a pool): no pool to start
        if mp.model == "collision_free":
            prm = (mp.radius, mp.r_stand, mp.time_gap, mp.t_narrow, mp.w_single, mp.w_wide, mp.a_rep, mp.d_rep,
                   mp.r_cut, mp.rep_cap, mp.a_wall, mp.d_wall, mp.r_hard, mp.noise, dt)
            (K.cfsm_step if par else K.cfsm_step_serial)(
                self.t, self.x, self.y, self.vx, self.vy, self.v0, self.tgt, self.ids, self.lv, self.hold, self.board,
                self.paid, self.ev, self.step_no + (self.noise_key << 32), n, self.order, self.start, self.sx, self.sy, self.sr,
                cells, grid, flds, targ, prm, self._repulsion_table())
        else:
            K.gather_sorted(self.order, n, self.vx, self.vy, self.svx, self.svy)
            prm = (mp.radius, mp.tau, mp.mass, mp.a_soc, mp.b_soc, mp.k_body, mp.kappa, mp.lam, mp.a_w, mp.b_w,
                   mp.r_hard, dt)
            (K.sfm_step if par else K.sfm_step_serial)(
                self.t, self.x, self.y, self.vx, self.vy, self.v0, self.tgt, self.lv, self.hold, self.board,
                self.paid, self.ev, n, self.order, self.start, self.sx, self.sy, self.svx, self.svy,
                cells, grid, flds, targ, prm)

    def step(self, dt: float) -> None:
        self.build_cells()
        self.move(dt)
        self.step_no += 1
        self.t += dt

    def take_exits(self):
        """Remove agents that entered an open exit zone; returns (ids, exit index, x, y)."""
        n = self.n
        ev = self.ev[:n]
        out = (ev >= 0) & (ev < self.n_exit)
        if not out.any():
            return None
        res = (self.ids[:n][out].copy(), ev[out].copy(), self.x[:n][out].copy(), self.y[:n][out].copy())
        self.remove(~out)
        return res

    def place(self, cand_x: np.ndarray, cand_y: np.ndarray, min_gap: float, level: int = 0, group=None):
        """Non-overlapping release points on ``level`` (see ``kernels.place_agents``); call after
        ``step`` so the cell lists are fresh. Returns (x, y) of every agent, NaN where one found no
        room (with ``group`` None, all are one group: the placed ones are a prefix)."""
        m = cand_x.shape[0]
        out_x = np.empty(m)
        out_y = np.empty(m)
        group = np.zeros(m, dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64)
        K.place_agents(cand_x, cand_y, group, int(group.max()) + 1 if m else 1, int(level), self.x, self.y, self.n,
                       self.order, self.start, self.xmin, self.ymin, 1.0 / self.cell_size, self.ncx, self.ncy,
                       min_gap, out_x, out_y)
        return out_x, out_y
