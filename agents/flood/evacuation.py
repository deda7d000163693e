"""Evacuation on foot: residents of flooded buildings walk to the shelters over the roads still passable.

Households and people
---------------------
When a building floods (``exposure``), the residents who must leave become a ``Household``, a Mesa
agent: those of the ground floor (people / storeys; the others stay upstairs, sheltering in place,
and count as exposed), or all of them with ``evacuate_upper_floors``. The
household sets off after the warning: at max(time its building flooded, ``warning_time_s``) plus a
response delay drawn uniformly from 0 to ``response_time_s``. Its members are rows of flat arrays
(position along a route, speed, state), so every step of the walk is a handful of numpy operations
over all walkers at once; the Mesa agents make decisions only at events (setting off).

Routes and what people know
---------------------------
Every update (``sync_interval_s``) a road-graph edge is impassable while its water is deeper than
``road_closed_depth_m``. People do not see the whole city: they know the roads the police have
closed (``closed_roads``, from ``road_closure_s``), and every road someone has found impassable
(a walker who reaches one, or a household whose street is under water, reports it: the list is
shared, as by phone and radio, and a reported road stays closed). A road that floods where nobody
has been is found when someone gets there: a walker looks at the edge they are on and the next one,
and turns back if it is impassable. One Dijkstra search from the open shelters (those not flooded)
over the roads not known to be closed (``RoadGraph.shortest`` with ``closed_edges``), by walking
time, gives for every node the time to each shelter and the path there. A person going to a shelter
takes the nearest one that can be reached and still has room: places are reserved when the shelter
is chosen, in the order people set off (by household, then person), so no shelter ever takes more
than its ``capacity``. Routes are polylines (``twin.core.routes``); positions are arc lengths along
them.

Walking in water
----------------
Speed = free speed (normal, mean ``walk_speed_mps``, sd ``walk_speed_sd_mps``, within 0.5-2.0 m/s)
× ``speed_factor(depth)``: 1 in dry streets, falling linearly to 0.58 at 0.35 m and held there
deeper: Li, Song, Zhang & Bode (2026), "Impacts of water depth on pedestrian speed, gait, and
stability", Acta Polytechnica CTU Proceedings 57, measured speeds 38.6 % (men) and 44.8 % (women)
lower at 0.35 m than in the dry, with smaller further changes at 0.6 and 0.9 m. Where the water at a
walker is deeper than ``walk_stop_depth_m`` they stop (stranded) until it falls again.

Cut off
-------
A walker whose remaining route crosses a road now known to be closed, or whose shelter has flooded,
turns at the next node and takes a new route (the same shelter if still reachable). Someone with no
shelter in reach, or none with room, is stranded where they are and tries again at every update.

KPIs: people set off, evacuated (in a shelter), stranded, walking, waiting, mean time from setting
off to arriving, evacuation completion (evacuated / those who must leave), person-hours of wading
(walking in water deeper than 0.1 m: where people fall, are swept off or meet open manholes),
occupancy per shelter.
"""
from __future__ import annotations

import math

import mesa
import numpy as np

from twin.core.errors import UserError
from agents.water_hazard import wading_speed_factor as speed_factor
from twin.core.routes import NO_EDGE, EdgeLookup, Routes, paths_from_predecessors

WAITING, WALKING, STRANDED, SHELTERED = 0, 1, 2, 3
STATE_NAMES = ("waiting", "walking", "stranded", "sheltered")
STATE_COLOURS = ("#9467bd", "#f28e2b", "#111111", "#2ca02c")  # purple, orange, black (red is for roads), green
SPEED_MIN_MPS, SPEED_MAX_MPS = 0.5, 2.0
# People sheltered at a shelter are drawn on a sunflower spiral around it (the golden angle).
SPIRAL_SPACING_M = 0.7
GOLDEN_ANGLE = 2.39996
WADING_DEPTH_M = 0.1  # walking in water deeper than this counts as wading (a KPI of the danger on the way)


class Household(mesa.Agent):
    """The residents of one flooded building. A view onto row ``k`` of the evacuation's arrays, so
    that the arrays alone are the state (saved and restored) and the agents are rebuilt from them."""

    def __init__(self, model, evac: "Evacuation", k: int):
        super().__init__(model)
        self.evac = evac
        self.k = k

    @property
    def building(self) -> int:
        return int(self.evac.hh_building[self.k])

    @property
    def members(self) -> np.ndarray:
        e = self.evac
        return np.arange(e.hh_first[self.k], e.hh_first[self.k] + e.hh_size[self.k])

    @property
    def ready_s(self) -> float:
        return float(self.evac.hh_ready[self.k])

    @property
    def departed(self) -> bool:
        return bool(self.evac.hh_departed[self.k])

    def set_off(self) -> np.ndarray:
        """Leave home: every member becomes a walker to be routed (returns their rows)."""
        e = self.evac
        e.hh_departed[self.k] = True
        m = self.members
        e.p_state[m] = STRANDED  # until a route is found in this update
        e.p_node[m] = e.home_node[self.building]
        e.p_xy[m] = e.graph.node_xy[e.p_node[m]] if e.graph is not None else e.home_xy[self.building]
        return m


class Evacuation:
    """Households, walkers and shelters (see the module docstring)."""

    STATE = ("hh_building", "hh_first", "hh_size", "hh_ready", "hh_departed",
             "p_state", "p_route", "p_s", "p_v0", "p_shelter", "p_node", "p_xy", "p_t_depart", "p_t_arrive",
             "sh_taken", "sh_arrived", "sh_open", "wading_s", "known_closed") + tuple(f"routes.{a}" for a in Routes.ARRAYS)

    def __init__(self, model, graph, buildings, shelters, p, people_per_building, levels):
        self.model = model
        self.p = p
        self.graph = graph
        people = np.asarray(people_per_building, np.int64)
        ground = np.where(people > 0, np.maximum(1, np.round(people / np.maximum(levels, 1))), 0).astype(np.int64)
        self.people = people if p["evacuate_upper_floors"] else ground  # who leaves a flooded building
        nb = len(buildings)
        pts = buildings.geometry.representative_point() if nb else None
        self.home_xy = np.column_stack([pts.x.to_numpy(), pts.y.to_numpy()]) if nb else np.zeros((0, 2))
        self.shelter_ids = shelters["id"].astype(str).to_numpy()
        self.sh_capacity = shelters["capacity"].fillna(0).astype(np.int64).to_numpy()
        self.shelter_xy = np.column_stack([shelters.geometry.x.to_numpy(), shelters.geometry.y.to_numpy()]) \
            if len(shelters) else np.zeros((0, 2))
        if graph is not None:
            main = graph.main_component()
            self.home_node = graph.nearest_node(self.home_xy[:, 0], self.home_xy[:, 1], among=main) if nb \
                else np.zeros(0, np.int64)
            self.shelter_node = graph.nearest_node(self.shelter_xy[:, 0], self.shelter_xy[:, 1], among=main) \
                if len(shelters) else np.zeros(0, np.int64)
            self.edges = EdgeLookup(graph)
            self.walk_s = graph.edge_seconds("walk", walk_mps=p["walk_speed_mps"])
            # the edges at each node (CSR), to see the streets around a household's door
            ends = np.concatenate([graph.edge_u, graph.edge_v])
            order = np.argsort(ends, kind="stable")
            self.node_edge = np.tile(np.arange(graph.n_edges), 2)[order]
            self.node_ptr = np.zeros(graph.n_nodes + 1, np.int64)
            np.cumsum(np.bincount(ends, minlength=graph.n_nodes), out=self.node_ptr[1:])
        else:
            self.home_node = np.zeros(nb, np.int64)
            self.shelter_node = np.zeros(0, np.int64)
        S = len(shelters)
        self.hh_building = np.zeros(0, np.int64)
        self.hh_first = np.zeros(0, np.int64)
        self.hh_size = np.zeros(0, np.int64)
        self.hh_ready = np.zeros(0)
        self.hh_departed = np.zeros(0, bool)
        self.p_state = np.zeros(0, np.int8)
        self.p_route = np.zeros(0, np.int64)
        self.p_s = np.zeros(0)
        self.p_v0 = np.zeros(0)
        self.p_shelter = np.zeros(0, np.int64)
        self.p_node = np.zeros(0, np.int64)
        self.p_xy = np.zeros((0, 2))
        self.p_t_depart = np.zeros(0)
        self.p_t_arrive = np.zeros(0)
        self.sh_taken = np.zeros(S, np.int64)
        self.sh_arrived = np.zeros(S, np.int64)
        self.sh_open = np.ones(S, bool)
        self.wading_s = 0.0  # person-seconds walked in water deeper than WADING_DEPTH_M
        self.known_closed = np.zeros(graph.n_edges if graph is not None else 0, bool)  # reported impassable
        self.routes = Routes.empty()
        self.households: list[Household] = []
        self._plan = None

    # -- bounds of a restored state (FloodModel.state_specs) -------------------------------------------
    MAX_ROUTE_POINTS = 2**26  # points of all routes so far (1 GiB of coordinates): far beyond a city's evacuation

    @property
    def max_people(self) -> int:
        return int(self.people.sum())

    @property
    def n_nodes(self) -> int:
        return self.graph.n_nodes if self.graph is not None else 0

    @property
    def n_edges(self) -> int:
        return self.graph.n_edges if self.graph is not None else 0

    def check_restored(self) -> None:
        """Relations among the restored arrays (their types and ranges are checked one by one)."""
        hh = [a for a in self.STATE if a.startswith("hh_")]
        people = [a for a in self.STATE if a.startswith("p_")]
        R = self.routes
        for group in (hh, people, ["routes.xy", "routes.cum", "routes.edge", "routes.node"]):
            n = {a: len(self._get(a)) for a in group}
            if len(set(n.values())) > 1:
                raise UserError(f"the arrays {', '.join(f'evacuation.{a}' for a in group)} must have equal lengths, "
                                f"not {', '.join(str(v) for v in n.values())}.")
        ip = R.indptr
        if len(ip) == 0 or ip[0] != 0 or ip[-1] != len(R.xy) or (np.diff(ip) < 0).any():
            raise UserError(f"evacuation.routes.indptr must increase from 0 to the {len(R.xy)} route points of "
                            "evacuation.routes.xy.")
        if len(self.hh_first) and ((self.hh_first + self.hh_size) > len(self.p_state)).any():
            raise UserError(f"evacuation.hh_first + hh_size must not exceed the {len(self.p_state)} people.")

    def _get(self, a: str):
        return getattr(self.routes, a[7:]) if a.startswith("routes.") else getattr(self, a)

    # -- households ---------------------------------------------------------------------------------
    def add_households(self, t: float, buildings: np.ndarray) -> None:
        """Residents of newly flooded ``buildings`` (sorted) become households waiting to set off."""
        size = self.people[buildings]
        keep = size > 0
        buildings, size = buildings[keep], size[keep]
        if not len(buildings):
            return
        p, rng = self.p, self.model.rng
        n0 = len(self.p_state)
        first = n0 + np.concatenate([[0], np.cumsum(size)[:-1]])
        ready = max(t, p["warning_time_s"]) + rng.uniform(0.0, 1.0, len(buildings)) * p["response_time_s"]
        n = int(size.sum())
        v0 = np.clip(rng.normal(p["walk_speed_mps"], p["walk_speed_sd_mps"], n), SPEED_MIN_MPS, SPEED_MAX_MPS)
        k0 = len(self.hh_building)
        self.hh_building = np.concatenate([self.hh_building, buildings])
        self.hh_first = np.concatenate([self.hh_first, first])
        self.hh_size = np.concatenate([self.hh_size, size])
        self.hh_ready = np.concatenate([self.hh_ready, ready])
        self.hh_departed = np.concatenate([self.hh_departed, np.zeros(len(buildings), bool)])
        home = np.repeat(buildings, size)
        self.p_state = np.concatenate([self.p_state, np.full(n, WAITING, np.int8)])
        self.p_route = np.concatenate([self.p_route, np.full(n, -1, np.int64)])
        self.p_s = np.concatenate([self.p_s, np.zeros(n)])
        self.p_v0 = np.concatenate([self.p_v0, v0])
        self.p_shelter = np.concatenate([self.p_shelter, np.full(n, -1, np.int64)])
        self.p_node = np.concatenate([self.p_node, self.home_node[home]])
        self.p_xy = np.concatenate([self.p_xy, self.home_xy[home]])
        self.p_t_depart = np.concatenate([self.p_t_depart, np.full(n, np.nan)])
        self.p_t_arrive = np.concatenate([self.p_t_arrive, np.full(n, np.nan)])
        for k in range(k0, len(self.hh_building)):
            self.households.append(Household(self.model, self, k))

    def rebuild_agents(self) -> None:
        """After a restore: one Household agent per row of the household arrays."""
        for h in self.households:
            h.remove()
        self.households = [Household(self.model, self, k) for k in range(len(self.hh_building))]

    # -- one update ---------------------------------------------------------------------------------------
    def update(self, t: float, dt: float, h: np.ndarray, cell_of, impassable: np.ndarray, announced: np.ndarray,
               shelter_flooded: np.ndarray) -> None:
        """Move the walkers over the last ``dt`` seconds, then reroute, retry and set off households.

        ``cell_of(xy)`` gives flat cell indices into ``h`` (-1 off the grid); ``impassable``: road
        graph edges under too much water now; ``announced``: edges the police have closed;
        ``shelter_flooded``: shelters closed to newcomers."""
        self._plan = None
        self.sh_open = ~shelter_flooded
        self._move(t, dt, h, cell_of)
        if self.graph is None:
            return
        self._impassable = impassable
        self._announced = announced
        self._start_edge = np.full(len(self.p_state), NO_EDGE, np.int64)
        self._look_ahead()
        todo = [self._cut_off(), np.flatnonzero((self.p_state == STRANDED) & (self.p_route < 0))]
        due = np.flatnonzero(~self.hh_departed & (self.hh_ready <= t + 1e-9))
        for k in due:  # events: the households that set off now, in order
            todo.append(self.households[k].set_off())
            self.p_t_depart[self.households[k].members] = t
        rows = np.unique(np.concatenate(todo)) if todo else np.zeros(0, np.int64)
        if len(rows):
            self._look_around(self.p_node[rows])
            self._route(rows)

    @property
    def closed(self) -> np.ndarray:
        """Edges people know they cannot use: closed by the police or reported under water."""
        return self._announced | self.known_closed

    def _look_ahead(self) -> None:
        """Walkers see the edge they are on and the next one: impassable ones are reported."""
        w = np.flatnonzero(self.p_state == WALKING)
        if not len(w):
            return
        R = self.routes
        seg = R.segment(self.p_route[w], self.p_s[w])
        last = R.indptr[self.p_route[w] + 1] - 1
        for k in (seg, np.minimum(seg + 1, last)):
            e = R.edge[k]
            e = e[e >= 0]
            self.known_closed[e[self._impassable[e]]] = True

    def _look_around(self, nodes: np.ndarray) -> None:
        """People about to choose a route see the streets at their node."""
        nodes = np.unique(nodes)
        counts = self.node_ptr[nodes + 1] - self.node_ptr[nodes]
        idx = np.repeat(self.node_ptr[nodes] - np.cumsum(np.r_[0, counts[:-1]]), counts) + np.arange(counts.sum())
        e = self.node_edge[idx]
        self.known_closed[e[self._impassable[e]]] = True

    def _move(self, t: float, dt: float, h: np.ndarray, cell_of) -> None:
        on = np.flatnonzero((self.p_state == WALKING) | ((self.p_state == STRANDED) & (self.p_route >= 0)))
        if not len(on) or dt <= 0:
            return
        r = self.p_route[on]
        xy = self.routes.position(r, self.p_s[on])
        cells = cell_of(xy)
        depth = np.where(cells >= 0, h.ravel()[np.maximum(cells, 0)], 0.0)
        stop = depth > self.p["walk_stop_depth_m"]
        self.p_state[on] = np.where(stop, STRANDED, WALKING)
        go = on[~stop]
        self.wading_s += dt * float(np.count_nonzero(depth[~stop] > WADING_DEPTH_M))
        v = self.p_v0[go] * speed_factor(depth[~stop])
        s = self.p_s[go] + v * dt
        length = self.routes.lengths[self.p_route[go]]
        arrived = s >= length
        self.p_s[go] = np.minimum(s, length)
        self.p_xy[on] = self.routes.position(self.p_route[on], self.p_s[on])
        a = go[arrived]
        if len(a):
            # the moment each one reached the end, within the step
            self.p_t_arrive[a] = t - (s[arrived] - length[arrived]) / np.maximum(v[arrived], 1e-9)
            self.p_state[a] = SHELTERED
            sh = self.p_shelter[a]
            self.p_xy[a] = self._spiral(sh, self.sh_arrived[sh] + _rank_within(sh))
            np.add.at(self.sh_arrived, sh, 1)

    def _spiral(self, shelter: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Where the k-th person in a shelter is drawn: a sunflower spiral around it."""
        r = SPIRAL_SPACING_M * np.sqrt(k)
        a = k * GOLDEN_ANGLE
        return self.shelter_xy[shelter] + np.column_stack([r * np.cos(a), r * np.sin(a)])

    def _cut_off(self) -> np.ndarray:
        """Walkers whose remaining route crosses a closed edge or leads to a closed shelter: they turn
        at the next node (returned, ready to be routed again)."""
        w = np.flatnonzero(self.p_state == WALKING)
        if not len(w):
            return np.zeros(0, np.int64)
        R = self.routes
        m = len(R.edge)
        closed = np.zeros(m + 1, bool)
        has = R.edge >= 0
        closed[:m][has] = self.closed[R.edge[has]]
        idx = np.where(closed, np.arange(m + 1), m + 1)
        next_closed = np.minimum.accumulate(idx[::-1])[::-1]
        seg = R.segment(self.p_route[w], self.p_s[w])
        last = R.indptr[self.p_route[w] + 1] - 1
        ahead = next_closed[np.minimum(seg + 1, m)] < last
        lost = ~self.sh_open[self.p_shelter[w]]
        turn = w[ahead | lost]
        if not len(turn):
            return turn
        seg_t = R.segment(self.p_route[turn], self.p_s[turn])
        nxt = np.minimum(seg_t + 1, R.indptr[self.p_route[turn] + 1] - 1)
        node = R.node[nxt]
        self.p_node[turn] = np.where(node >= 0, node, self.p_node[turn])
        self._start_edge[turn] = R.edge[seg_t]  # the first piece of the new route: back along this edge
        self.p_state[turn] = STRANDED
        self.p_route[turn] = -1
        return turn

    # -- routing ------------------------------------------------------------------------------------------
    def plan(self):
        """Shortest walking times from every open shelter over the roads not known to be closed, now
        (once per update)."""
        if self._plan is None:
            rows = np.flatnonzero(self.sh_open)
            paths = self.graph.shortest(self.shelter_node[rows], self.walk_s, closed_edges=self.closed) \
                if len(rows) else None
            self._plan = (rows, paths)
        return self._plan

    def _route(self, rows: np.ndarray) -> None:
        """Choose a shelter for each of ``rows`` (people to route, in order) and give them a route."""
        open_rows, paths = self.plan()
        n = len(rows)
        if paths is None or not len(open_rows):
            self._strand(rows)
            return
        cost = paths.cost[:, self.p_node[rows]]  # (open shelters, people)
        # people who still hold a place at a shelter they can reach keep it
        cur = self.p_shelter[rows]
        col = np.full(len(self.sh_taken), -1)
        col[open_rows] = np.arange(len(open_rows))
        keep = (cur >= 0) & (col[np.maximum(cur, 0)] >= 0)
        keep[keep] &= np.isfinite(cost[col[cur[keep]], np.flatnonzero(keep)])
        release = rows[(cur >= 0) & ~keep]
        np.add.at(self.sh_taken, self.p_shelter[release], -1)
        self.p_shelter[release] = -1
        choice = np.where(keep, col[np.maximum(cur, 0)], -1)
        # the others take places, nearest shelter first, in order of rows
        order = np.argsort(cost, axis=0, kind="stable")
        for rank in range(len(open_rows)):
            free = np.flatnonzero(choice < 0)
            if not len(free):
                break
            cand = order[rank, free]
            ok = np.isfinite(cost[cand, free])
            free, cand = free[ok], cand[ok]
            room = self.sh_capacity[open_rows] - self.sh_taken[open_rows]
            k = _rank_within(cand)
            take = k < room[cand]
            free, cand = free[take], cand[take]
            choice[free] = cand
            np.add.at(self.sh_taken, open_rows[cand], 1)
            self.p_shelter[rows[free]] = open_rows[cand]
        got = choice >= 0
        self._strand(rows[~got])
        if not got.any():
            return
        rows, choice = rows[got], choice[got]
        starts = self.p_xy[rows]
        edges = self._start_edge[rows]
        # one route per distinct (start point, node, shelter)
        key = np.column_stack([starts, self.p_node[rows], choice])
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        inv = inv.ravel()
        first = np.zeros(len(uniq), np.int64)
        first[inv[::-1]] = np.arange(len(rows))[::-1]
        indptr, nodes = paths_from_predecessors(paths, uniq[:, 3].astype(np.int64), uniq[:, 2].astype(np.int64))
        new = Routes.build(self.graph, indptr, nodes, starts=uniq[:, :2], start_edges=edges[first], edges=self.edges)
        idx = self.routes.extend(new)
        self.p_route[rows] = idx[inv]
        self.p_s[rows] = 0.0
        self.p_state[rows] = WALKING

    def _strand(self, rows: np.ndarray) -> None:
        self.p_state[rows] = STRANDED
        self.p_route[rows] = -1

    # -- reading ---------------------------------------------------------------------------------------------
    def kpis(self) -> dict:
        s = self.p_state
        done = s == SHELTERED
        times = (self.p_t_arrive - self.p_t_depart)[done]
        evacuated = int(done.sum())
        return {
            "evacuees": int(np.count_nonzero(~np.isnan(self.p_t_depart))),
            "evacuated": evacuated,
            "stranded": int(np.count_nonzero(s == STRANDED)),
            "walking": int(np.count_nonzero(s == WALKING)),
            "waiting": int(np.count_nonzero(s == WAITING)),
            "mean_evacuation_time_s": float(times.mean()) if len(times) else 0.0,
            "evacuation_completion": evacuated / len(s) if len(s) else 0.0,
            "wading_person_h": self.wading_s / 3600.0,
            "shelter_occupancy": {sid: int(c) for sid, c in zip(self.shelter_ids, self.sh_arrived)},
        }


def _rank_within(keys: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions hold the same key (0 for the first)."""
    if not len(keys):
        return np.zeros(0, np.int64)
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    start = np.r_[True, k[1:] != k[:-1]]
    pos = np.arange(len(k))
    first = np.maximum.accumulate(np.where(start, pos, 0))
    out = np.empty(len(k), np.int64)
    out[order] = pos - first
    return out
