"""The crowd engine: agents walking in free space towards gates, all state in numpy arrays.

``Crowd`` holds the compact arrays of the agents now walking (slots ``0..n-1``), the cell-list
buffers (allocated once) and the motion-model constants, and advances them with the Numba kernels.
It knows nothing of trains, modes or KPIs; the station model, the verification tests and the
benchmark all drive it directly.

Physical parameters (defaults, tuned against Weidmann's fundamental diagram and the bottleneck
flows in VERIFICATION.md; see tests/agents/station/test_verification.py):
collision-free speed model (Tordeux et al. 2016): body radius 0.14 m (contact distance 0.28 m),
time gap T = 1.1 s, falling linearly to 0.6 s from 0.9 m to 0.5 m of clear width (passages too
narrow for two abreast, where people close up and interleave: the "zipper" of Hoogendoorn & Daamen
2005 and Seyfried et al. 2009; one T cannot fit both the corridor diagram and the narrow
bottleneck), neighbour repulsion a = 5, D = 0.2 m (JuPedSim: 8 and 0.1 m); walls: the
direction loses its component into a wall when the body overlaps it and gets a linear push
(a_w = 1), and a hard constraint keeps centres >= r_hard = 0.07 m from walls; a small
deterministic heading noise (+-0.1 rad, x4 for agents that stood still) dissolves symmetric
standstills. Social force model (Helbing et al. 2000): tau = 0.5 s, m = 80 kg, A = 2000 N,
B = 0.08 m, k = 1.2e5 kg/s², kappa = 2.4e5 kg/(m s), anisotropy lambda = 0.5 (Helbing &
Johansson 2007), walls A_w = 2000 N, B_w = 0.08 m, speed capped at 1.3 v0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import kernels as K
from .navigation import NavGrid


@dataclass
class MotionParams:
    model: str = "collision_free"  # or "social_force"
    radius: float = 0.14
    time_gap: float = 1.1
    a_rep: float = 5.0
    d_rep: float = 0.2
    rep_cap: float = 1.0e9  # no cap: the plain model
    a_wall: float = 1.0
    d_wall: float = 0.0
    r_hard: float = 0.07
    noise: float = 0.1  # rad, uniform +-: breaks symmetric standstills
    # narrow passages: the time gap falls linearly from time_gap at clear width w_wide to
    # t_narrow at w_single and below
    t_narrow: float = 0.6
    w_single: float = 0.5
    w_wide: float = 0.9
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
        return 0.05 if self.model == "collision_free" else 0.01


class Crowd:
    """Walking agents; ``ids[k]`` maps slot ``k`` to the caller's agent index.

    Crowds of at least ``parallel_min`` agents use the threaded kernels (``prange``); smaller ones
    the serial twins, which avoid thread start-up and behave well on a busy machine. Both give
    identical results.
    """

    parallel_min = 3000

    def __init__(self, nav: NavGrid, capacity: int, motion: MotionParams | None = None,
                 cell_size: float = 1.0, period_x: float = 0.0, gate_open=None):
        self.nav = nav
        self.motion = motion or MotionParams()
        self.cap = int(max(capacity, 1))
        self.n = 0
        self.step_no = 0
        cap = self.cap
        self.x = np.zeros(cap)
        self.y = np.zeros(cap)
        self.vx = np.zeros(cap)
        self.vy = np.zeros(cap)
        self.v0 = np.zeros(cap)
        self.tgt = np.zeros(cap, dtype=np.int32)
        self.ids = np.zeros(cap, dtype=np.int64)
        self.exit_gate = np.full(cap, -1, dtype=np.int32)
        # cell lists over the navigation grid's extent
        xmin, ymin, xmax, ymax = nav.bounds
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
        ncell = self.ncx * self.ncy
        self.start = np.zeros(ncell + 1, dtype=np.int64)
        self.cursor = np.zeros(ncell, dtype=np.int64)
        self.cell_of = np.zeros(cap, dtype=np.int64)
        self.order = np.zeros(cap, dtype=np.int64)
        self.sx = np.zeros(cap)
        self.sy = np.zeros(cap)
        self.svx = np.zeros(cap)
        self.svy = np.zeros(cap)
        G = nav.floor.shape[0]
        self.gate_open = np.ones(G, dtype=np.bool_) if gate_open is None else np.asarray(gate_open, dtype=np.bool_)

    # -- agents ---------------------------------------------------------------------------
    def add(self, x, y, v0, tgt, ids=None) -> None:
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
        self.exit_gate[s] = -1
        self.n += m

    def remove(self, keep: np.ndarray) -> None:
        """Keep slots where ``keep`` (length n) is true, in order."""
        n = self.n
        m = int(keep.sum())
        if m == n:
            return
        for arr in (self.x, self.y, self.vx, self.vy, self.v0, self.tgt, self.ids, self.exit_gate):
            arr[:m] = arr[:n][keep]
        self.n = m

    # -- stepping -------------------------------------------------------------------------
    def build_cells(self) -> None:
        kernel = K.build_cells_parallel if self.n >= self.parallel_min else K.build_cells
        kernel(self.x, self.y, self.n, self.xmin, self.ymin, 1.0 / self.cell_size,
               self.ncx, self.ncy, self.cell_of, self.cursor, self.start, self.order, self.sx, self.sy)

    def move(self, dt: float) -> None:
        """Advance every agent by ``dt`` (cells must have been built from current positions)."""
        nav, mp = self.nav, self.motion
        if self.n == 0:
            return
        args_grid = (nav.dir_x, nav.dir_y, nav.wall_d, nav.wall_nx, nav.wall_ny, nav.zone,
                     self.gate_open, nav.x0, nav.y0, nav.inv_h)
        cells = (self.xmin, self.ymin, 1.0 / self.cell_size, self.ncx, self.ncy, self.period_x)
        par = self.n >= self.parallel_min
        if mp.model == "collision_free":
            (K.cfsm_step if par else K.cfsm_step_serial)(self.x, self.y, self.vx, self.vy, self.v0, self.tgt, self.ids,
                        self.step_no, mp.noise, self.n,
                        self.order, self.start, self.sx, self.sy, *cells, *args_grid,
                        mp.radius, mp.time_gap, mp.a_rep, mp.d_rep, mp.rep_cap, mp.a_wall, mp.d_wall,
                        mp.r_hard, dt, self.exit_gate, nav.width, mp.t_narrow, mp.w_single, mp.w_wide)
        else:
            K.gather_sorted(self.order, self.n, self.vx, self.vy, self.svx, self.svy)
            (K.sfm_step if par else K.sfm_step_serial)(self.x, self.y, self.vx, self.vy, self.v0, self.tgt, self.n,
                       self.order, self.start, self.sx, self.sy, self.svx, self.svy, *cells,
                       *args_grid, mp.radius, mp.tau, mp.mass, mp.a_soc, mp.b_soc, mp.k_body,
                       mp.kappa, mp.lam, mp.a_w, mp.b_w, mp.r_hard, dt, self.exit_gate)

    def step(self, dt: float) -> None:
        self.build_cells()
        self.move(dt)
        self.step_no += 1

    def take_exits(self):
        """Remove agents that entered an open gate zone; returns (ids, gate index, x, y)."""
        n = self.n
        eg = self.exit_gate[:n]
        out = eg >= 0
        if not out.any():
            return None
        res = (self.ids[:n][out].copy(), eg[out].copy(), self.x[:n][out].copy(), self.y[:n][out].copy())
        self.remove(~out)
        return res

    def place(self, cand_x: np.ndarray, cand_y: np.ndarray, min_gap: float) -> tuple[np.ndarray, np.ndarray]:
        """Non-overlapping release points (see ``kernels.place_agents``); call after ``step``
        so the cell lists are fresh."""
        m = cand_x.shape[0]
        out_x = np.empty(m)
        out_y = np.empty(m)
        k = K.place_agents(cand_x, cand_y, self.x, self.y, self.n, self.order, self.start,
                           self.xmin, self.ymin, 1.0 / self.cell_size, self.ncx, self.ncy,
                           min_gap, out_x, out_y)
        return out_x[:k], out_y[:k]
