"""``FloodSolver``: the flood engine's state, forcing, time stepping and water balance.

The solver owns the arrays of the local-inertial scheme (``hydraulics``) and advances them with
Courant-limited steps to any time asked for, landing on it exactly. It knows nothing of cities or
models: cells are (row, col) of a north-up raster, volumes are m³, times are seconds.

Order of one step of length Δt, from t to t + Δt
-------------------------------------------------
1. Δt = min(α Δx / √(g h_max), dt_max, time to the next sync point, time to the target).
2. Inflow hydrographs add their exact volume over [t, t + Δt] to their cells (a line's cells
   share it equally).
3. Drain inlets, then pumps, take capacity × (active part of Δt), at most what their cell holds.
4. Face flows (pass 1), then limited continuity with the rain of [t, t + Δt] on every open cell
   and uniform drainage (pass 2); maxima and arrival times are updated with the new depth.

Every volume that enters or leaves is summed in float64 as it is applied, so that
``stored - initial = rain + inflow - drained - pumped - outflow`` up to round-off.

Pausing
-------
With ``sync_interval_s = S``, no step crosses a multiple of S: a step that would is shortened to
end on it. Since Δt depends only on the state, a run stopped at any multiple of S and resumed
takes exactly the same steps as one that was not stopped (``advance`` to a time that is not a
multiple of S shortens one step and so changes what follows, by round-off).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numba
import numpy as np
from numba import njit

from agents.flood import hydraulics as hy
from agents.flood.forcing import Hydrograph, Hyetograph
from twin.core.errors import UserError

G = hy.G
# Grids smaller than this run on one thread: a step then takes well under a millisecond, and on a
# shared machine the threads' meeting at the end of a step can cost a scheduler slice (measured here
# under load: 22 ms a step for 5,000 cells on 2 threads). Results are the same on any thread count.
SERIAL_BELOW_CELLS = 250_000
MAX_DEPTH_M = 1000.0  # deeper water than any flood: an initial or restored depth beyond it is refused


@dataclass(frozen=True)
class PointSink:
    """A drain inlet or a pump at cell (row, col): ``capacity_m3s`` while ``start_s <= t < stop_s``."""

    cell: tuple[int, int]
    capacity_m3s: float
    start_s: float = 0.0
    stop_s: float = math.inf
    name: str = ""


@dataclass(frozen=True)
class Inflow:
    """An inflow hydrograph into one cell (a point) or shared equally by several (a line)."""

    cells: np.ndarray  # (k, 2) int rows and columns
    hydrograph: Hydrograph
    name: str = ""


@dataclass(frozen=True)
class WaterBody:
    """Cells of a river or pond filled to ``level_m`` at the start: h = max(level - z, 0)."""

    mask: np.ndarray  # bool (ny, nx)
    level_m: float
    name: str = ""


@njit(cache=True)
def _add_volumes(h, rows, cols, vol_per_cell, area):
    for k in range(rows.size):
        h[rows[k], cols[k]] += vol_per_cell / area


@njit(cache=True)
def _take_sinks(h, rows, cols, cap, start, stop, t0, t1, area, n_drains, sink_m3, totals):
    """Every drain inlet, then every pump, in order, takes capacity × its active part of [t0, t1],
    at most what its cell holds; adds to ``sink_m3`` and to ``totals`` (drains, pumps)."""
    for k in range(rows.size):
        active = min(t1, stop[k]) - max(t0, start[k])
        if active > 0.0 and cap[k] > 0.0:
            r, c = rows[k], cols[k]
            got = min(cap[k] * active, h[r, c] * area)
            h[r, c] = max(h[r, c] - got / area, 0.0)
            sink_m3[k] += got
            totals[0 if k < n_drains else 1] += got


SIDES = ("north", "south", "west", "east")


def _edge_flags(boundary) -> np.ndarray:
    """uint8 flags (north, south, west, east): 1 where water may leave over that edge."""
    kinds = {"closed": 0, "open": 1}
    if isinstance(boundary, str):
        boundary = dict.fromkeys(SIDES, boundary)
    if not isinstance(boundary, dict) or set(boundary) - set(SIDES):
        raise UserError(f'boundary must be "closed", "open" or a mapping of {", ".join(SIDES)} to one of them, '
                        f"got {boundary!r}")
    flags = np.zeros(4, np.uint8)
    for k, side in enumerate(SIDES):
        kind = boundary.get(side, "closed")
        if kind not in kinds:
            raise UserError(f'boundary of the {side} edge must be "closed" or "open", got "{kind}"')
        flags[k] = kinds[kind]
    return flags


def _as_cells(cells, shape, what: str) -> np.ndarray:
    a = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    if a.size == 0:
        raise UserError(f"{what}: no cells given")
    bad = (a[:, 0] < 0) | (a[:, 0] >= shape[0]) | (a[:, 1] < 0) | (a[:, 1] >= shape[1])
    if bad.any():
        r, c = a[bad][0]
        raise UserError(f"{what}: cell (row {r}, col {c}) is outside the {shape[0]} × {shape[1]} grid")
    return a


class FloodSolver:
    """Local-inertial flood engine on a raster (see ``agents.flood.hydraulics`` for the scheme).

    Static inputs (constructor): bed ``z`` (m, (ny, nx)), ``cell_size_m``, ``blocked`` cells
    (walls), ``manning_n`` (scalar or per cell), ``boundary`` ("closed", "open", or per edge as
    {"north": .., "south": .., "west": .., "east": ..}; an edge left out is closed), the forcing
    (``rain``, ``drainage_mm_per_h``, ``drains``, ``pumps``, ``inflows``) and the initial water
    (``initial_depth``, ``water_bodies``). Dynamic state: see ``get_state``."""

    STATE_ARRAYS = ("h", "qx", "qy", "max_depth", "max_speed", "arrival_time", "sink_m3")
    STATE_SCALARS = ("t", "n_steps", "initial_m3", "rain_m3", "inflow_m3", "drained_uniform_m3",
                     "drained_inlets_m3", "pumped_m3", "outflow_m3")

    def __init__(self, z, cell_size_m: float, *, blocked=None, manning_n=0.03, boundary: str = "closed",
                 rain: Hyetograph | None = None, drainage_mm_per_h: float = 0.0,
                 drains: Sequence[PointSink] = (), pumps: Sequence[PointSink] = (),
                 inflows: Sequence[Inflow] = (), initial_depth=None, water_bodies: Sequence[WaterBody] = (),
                 cfl: float = 0.6, theta: float = 0.8, h_min_m: float = 1e-3, dt_max_s: float = 10.0,
                 sync_interval_s: float | None = None, arrival_depth_m: float = 0.1,
                 speed_min_depth_m: float = 0.01, block_rows: int = 16,
                 serial_below_cells: int = SERIAL_BELOW_CELLS):
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or min(z.shape) < 1:
            raise UserError(f"the bed elevation must be a 2-D raster, got shape {z.shape}")
        if not np.all(np.isfinite(z)):
            raise UserError("the bed elevation has no-data cells (NaN or infinite); fill them before the run")
        if not cell_size_m > 0:
            raise UserError(f"cell_size_m must be positive, got {cell_size_m}")
        self.open_edges = _edge_flags(boundary)
        for name, v, lo, hi in (("cfl", cfl, 0.0, 1.0), ("theta", theta, 0.0, 1.0)):
            if not lo < v <= hi:
                raise UserError(f"{name} must lie in ({lo}, {hi}], got {v}")
        if cfl > math.sqrt(theta / 2.0):
            raise UserError(f"cfl {cfl} is above the stability limit √(θ/2) = {math.sqrt(theta / 2):.3f} of the "
                            f"scheme with theta {theta} in 2-D; lower cfl or raise theta (at most 1)")
        if sync_interval_s is not None and not sync_interval_s > 0:
            raise UserError(f"sync_interval_s must be positive, got {sync_interval_s}")
        if drainage_mm_per_h < 0:
            raise UserError(f"drainage_mm_per_h cannot be negative, got {drainage_mm_per_h}")
        ny, nx = z.shape
        self.shape = (ny, nx)
        self.dx = float(cell_size_m)
        self.area = self.dx * self.dx
        self.blocked = np.zeros(z.shape, bool) if blocked is None else np.asarray(blocked, bool)
        if self.blocked.shape != z.shape:
            raise UserError(f"the blocked mask has shape {self.blocked.shape}, the bed {z.shape}")
        # the kernels read the bed in float32 (1e-5 m at 100 m): levels are set against that same bed
        self.bed_m = z.astype(np.float32).astype(np.float64)
        self.z = np.where(self.blocked, hy.WALL_Z, self.bed_m).astype(np.float32)
        n = np.broadcast_to(np.asarray(manning_n, dtype=np.float64), z.shape)
        if not (np.all(np.isfinite(n)) and np.all(n >= 0)):
            raise UserError("manning_n must be a finite number, 0 or more, everywhere")
        self.gn2 = (G * n * n).astype(np.float32)
        uniform = bool(np.all(self.gn2 == self.gn2.flat[0]))
        self._gn2_kernel = self.gn2[:1, :1].copy() if uniform else self.gn2  # 1 × 1: one value everywhere
        self.rain_cell = ~self.blocked
        self.n_open = int(self.rain_cell.sum())
        self.rain = rain
        self.drain_rate_m_per_s = drainage_mm_per_h / 3.6e6
        self.drains = tuple(drains)
        self.pumps = tuple(pumps)
        for kind, sinks in (("drain inlet", self.drains), ("pump", self.pumps)):
            for s in sinks:
                (r, c), = _as_cells([s.cell], z.shape, f"{kind} {s.name or s.cell}")
                if s.capacity_m3s < 0:
                    raise UserError(f"{kind} {s.name or s.cell}: capacity_m3s cannot be negative")
                if self.blocked[r, c]:
                    raise UserError(f"{kind} {s.name or s.cell} lies inside a building (cell row {r}, col {c}); "
                                    "move it onto open ground")
        self.inflows = tuple(inflows)
        self._inflow_cells = []
        for f in self.inflows:
            cells = _as_cells(f.cells, z.shape, f"inflow {f.name}")
            if self.blocked[cells[:, 0], cells[:, 1]].any():
                raise UserError(f"inflow {f.name}: a cell lies inside a building; move it onto open ground")
            self._inflow_cells.append((cells[:, 0].copy(), cells[:, 1].copy()))
        self.cfl, self.theta, self.h_min = float(cfl), float(theta), float(h_min_m)
        self.dt_max = float(dt_max_s)
        self.sync = None if sync_interval_s is None else float(sync_interval_s)
        self.arrival_depth, self.speed_min_depth = float(arrival_depth_m), float(speed_min_depth_m)
        self.block_rows = int(block_rows)
        self.serial = z.size < serial_below_cells
        # scratch (not state): the other half of the double buffers, per-row sums, per-thread blocks
        self._h2 = np.zeros(z.shape)
        self._qx2 = np.zeros((ny, nx + 1), np.float32)
        self._qy2 = np.zeros((ny + 1, nx), np.float32)
        self._row_stats = np.zeros((ny, 4))
        self._scratch = hy.scratch(ny, nx, self.block_rows, numba.config.NUMBA_NUM_THREADS)
        self._par = np.zeros(hy.N_PAR)
        self._par[hy.P_DX] = self.dx
        self._par[hy.P_G] = G
        self._par[hy.P_THETA] = self.theta
        self._par[hy.P_HMIN] = self.h_min
        self._par[hy.P_HSPEED] = self.speed_min_depth
        self._par[hy.P_HARRIVE] = self.arrival_depth
        # state
        h = np.zeros(z.shape)
        if initial_depth is not None:
            d = np.asarray(initial_depth, dtype=np.float64)
            if d.shape != z.shape:
                raise UserError(f"initial_depth has shape {d.shape}, the grid {z.shape}")
            if not np.all(np.isfinite(d)) or np.any(d < 0):
                raise UserError("initial_depth must be finite and not negative everywhere")
            h = d.copy()
        for w in water_bodies:
            m = np.asarray(w.mask, bool)
            if m.shape != z.shape:
                raise UserError(f"water body {w.name}: mask shape {m.shape} differs from the grid {z.shape}")
            h = np.where(m, np.maximum(h, w.level_m - self.bed_m), h)
        h[self.blocked] = 0.0
        self.h = h
        self.qx = np.zeros((ny, nx + 1), np.float32)
        self.qy = np.zeros((ny + 1, nx), np.float32)
        self.max_depth = h.astype(np.float32)
        self.max_speed = np.zeros(z.shape, np.float32)
        self.arrival_time = np.where(self.max_depth > np.float32(self.arrival_depth), 0.0, np.nan)
        self.sink_m3 = np.zeros(self.n_sinks)
        sinks = self.drains + self.pumps  # as arrays: one kernel call per step takes them all
        self._sink_rows = np.array([s.cell[0] for s in sinks], dtype=np.int64)
        self._sink_cols = np.array([s.cell[1] for s in sinks], dtype=np.int64)
        self._sink_cap = np.array([s.capacity_m3s for s in sinks], dtype=np.float64)
        self._sink_start = np.array([s.start_s for s in sinks], dtype=np.float64)
        self._sink_stop = np.array([s.stop_s for s in sinks], dtype=np.float64)
        self.t = 0.0
        self.n_steps = 0
        self.initial_m3 = self._stored()
        self.rain_m3 = self.inflow_m3 = self.drained_uniform_m3 = 0.0
        self.drained_inlets_m3 = self.pumped_m3 = self.outflow_m3 = 0.0
        self._h_peak = float(h.max())
        self.limited_cells = 0

    # -- time stepping ----------------------------------------------------------------------------
    @property
    def n_sinks(self) -> int:
        """Drains (and station entrances), then pumps: the entries of ``sink_m3``."""
        return len(self.drains) + len(self.pumps)

    def _next_dt(self, t_target: float) -> tuple[float, float]:
        """(dt, t_new): the Courant step clipped at the next sync point and at the target."""
        dt = self.dt_max
        if self._h_peak > 0.0:
            dt = min(dt, self.cfl * self.dx / math.sqrt(G * self._h_peak))
        t_new = self.t + dt
        if self.sync is not None:
            t_sync = (math.floor(self.t / self.sync) + 1.0) * self.sync
            if t_sync - self.t <= 1e-9 * self.sync:  # already on a sync point (round-off)
                t_sync += self.sync
            if t_new >= t_sync:
                t_new = t_sync
        if t_new >= t_target:
            t_new = t_target
        return t_new - self.t, t_new

    def step(self, t_target: float = math.inf) -> float:
        """One Courant step (never past ``t_target``); returns its length."""
        dt, t_new = self._next_dt(t_target)
        t0 = self.t
        h = self.h
        for f, (rows, cols) in zip(self.inflows, self._inflow_cells):
            vol = f.hydrograph.volume_between_m3(t0, t_new)
            if vol > 0.0:
                _add_volumes(h, rows, cols, vol / rows.size, self.area)
                self.inflow_m3 += vol
        if self._sink_rows.size:
            totals = np.array([self.drained_inlets_m3, self.pumped_m3])
            _take_sinks(h, self._sink_rows, self._sink_cols, self._sink_cap, self._sink_start, self._sink_stop, t0,
                        t_new, self.area, len(self.drains), self.sink_m3, totals)
            self.drained_inlets_m3, self.pumped_m3 = float(totals[0]), float(totals[1])
        rain = self.rain.depth_between_m(t0, t_new) if self.rain is not None else 0.0
        p = self._par
        p[hy.P_DT] = dt
        p[hy.P_RAIN] = rain
        p[hy.P_DRAIN] = self.drain_rate_m_per_s * dt
        p[hy.P_TNEW] = t_new
        hy.step(h, self.z, self._gn2_kernel, self.qx, self.qy, self.rain_cell, p, self.open_edges, self._h2, self._qx2,
                self._qy2, self.max_depth, self.max_speed, self.arrival_time, self._row_stats, *self._scratch,
                self.block_rows)
        self.h, self._h2 = self._h2, h
        self.qx, self._qx2 = self._qx2, self.qx
        self.qy, self._qy2 = self._qy2, self.qy
        # the rows' sums added in row order, whatever the threads (math.fsum of each column cost
        # 2 % of the storm; a thousand float64 additions lose at most ~1e-13 of the total)
        sums = self._row_stats.sum(axis=0)
        self.rain_m3 += rain * self.n_open * self.area
        self.drained_uniform_m3 += float(sums[0]) * self.area
        self.outflow_m3 += float(sums[1]) * dt * self.dx
        self._h_peak = float(self._row_stats[:, 2].max())
        self.limited_cells = int(sums[3])  # cells whose outflow was scaled down in this step
        self.t = t_new
        self.n_steps += 1
        return dt

    def advance(self, t_target: float) -> int:
        """Step until ``t`` equals ``t_target`` exactly; returns the number of steps taken."""
        if t_target < self.t:
            raise UserError(f"cannot go back in time: the flood is at {self.t} s, asked for {t_target} s")
        n = 0
        threads = numba.get_num_threads()
        if self.serial and threads > 1:
            numba.set_num_threads(1)
        try:
            while self.t < t_target:
                self.step(t_target)
                n += 1
        finally:
            numba.set_num_threads(threads)
        return n

    # -- results ----------------------------------------------------------------------------------
    def _stored(self) -> float:
        return math.fsum(self.h.sum(axis=1)) * self.area

    def balance(self) -> dict[str, float]:
        """The water balance (m³) since the start, and its relative error."""
        stored = self._stored()
        drained = self.drained_uniform_m3 + self.drained_inlets_m3
        inputs = self.initial_m3 + self.rain_m3 + self.inflow_m3
        error = stored - (inputs - drained - self.pumped_m3 - self.outflow_m3)
        return {
            "initial_volume_m3": self.initial_m3, "rain_volume_m3": self.rain_m3,
            "inflow_volume_m3": self.inflow_m3, "drained_volume_m3": drained,
            "drained_uniform_m3": self.drained_uniform_m3, "drained_inlets_m3": self.drained_inlets_m3,
            "pumped_volume_m3": self.pumped_m3, "outflow_volume_m3": self.outflow_m3,
            "stored_volume_m3": stored, "volume_error_m3": error,
            "volume_error_rel": abs(error) / inputs if inputs > 0 else 0.0,
        }

    def speed(self) -> np.ndarray:
        """Flow speed now (m/s) where deeper than the speed threshold, 0 elsewhere: the mean of the
        unit discharges through opposite faces over the depth, as the kernel takes ``max_speed``."""
        u = self.qx[:, :-1] + self.qx[:, 1:]
        v = self.qy[:-1, :] + self.qy[1:, :]
        h = self.h.astype(np.float32)
        wet = h > np.float32(self.speed_min_depth)
        out = np.zeros(h.shape, np.float32)
        out[wet] = 0.5 * np.sqrt(u[wet] ** 2 + v[wet] ** 2) / h[wet]
        return out

    def water_surface(self) -> np.ndarray:
        """z + h where wet, NaN where dry or blocked."""
        return np.where((self.h > 0) & ~self.blocked, self.bed_m + self.h, np.nan)

    # -- state ------------------------------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray | float | int]:
        """Every dynamic quantity (copies): the arrays of ``STATE_ARRAYS`` and the scalars of
        ``STATE_SCALARS``. A solver built from the same static inputs and given this state with
        ``set_state`` continues bit for bit as this one would."""
        d: dict[str, np.ndarray | float | int] = {k: getattr(self, k).copy() for k in self.STATE_ARRAYS}
        d.update({k: getattr(self, k) for k in self.STATE_SCALARS})
        return d

    def set_state(self, d: dict) -> None:
        missing = [k for k in self.STATE_ARRAYS + self.STATE_SCALARS if k not in d]
        if missing:
            raise UserError(f"flood state is missing {', '.join(missing)}")
        for k in self.STATE_ARRAYS:
            cur = getattr(self, k)
            a = np.asarray(d[k])
            if a.shape != cur.shape:
                raise UserError(f"flood state '{k}' has shape {a.shape}, this grid needs {cur.shape}")
            setattr(self, k, a.astype(cur.dtype, copy=True))
        self.t = float(d["t"])
        self.n_steps = int(d["n_steps"])
        for k in self.STATE_SCALARS[2:]:
            setattr(self, k, float(d[k]))
        self._h_peak = float(self.h.max())
