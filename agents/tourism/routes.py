"""The tourist-flow model's places on the platform's road graph: travel times and routes.

A place is a POI (an entry point, an attraction or a hotel). Each is snapped to the nearest node of
the road graph's main component (``RoadGraph.nearest_node``); the walk from the POI to that node
is straight, at walking speed, and a POI farther than ``max_snap_m`` from the network is an error.
Shuttles use the roads open to cars (``RoadGraph.edge_seconds("drive", max_kmh=shuttle_kmh)``: no footways, at most
``shuttle_kmh``); a shuttle stop snaps to the largest connected part of that network, and only
stops within ``max_snap_m`` of it are served.

``T[mode][i, j]`` (seconds, mode 0 on foot, mode 1 by shuttle, ``inf`` where no shuttle runs) =
access walk at i + shortest path on the graph (``RoadGraph.shortest``: Dijkstra, scipy) + access
walk at j. That is the travel-time matrix the engine expects.

For the view every ordered pair of places has, per mode, a route: the polyline POI i → the nodes
of the shortest path → POI j, with the time at which a traveller passes each vertex. All routes
sit in flat arrays, one block of vertices per route, and a key (route base + time along the
route) increases along the whole array, so locating every traveller on its route is one
``np.searchsorted`` and a linear interpolation between two vertices: no Python loop per
traveller. Interpolating by time is interpolating by arc length where the speed is constant (on
foot) and follows the road speeds by shuttle.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.core.errors import UserError

GAP_S = 1.0  # separates consecutive routes in the flat key, so a traveller never lands on the next route


@dataclass
class Routes:
    """Flat route arrays: vertex positions, key (route base + seconds along the route) and the road
    index of the segment that starts at each vertex (-1: an access walk, or the last vertex)."""

    xy: np.ndarray  # (V, 2)
    key: np.ndarray  # (V,)
    road: np.ndarray  # (V,) int64
    start: np.ndarray  # (R,) first vertex of each route
    end: np.ndarray  # (R,) one past its last vertex
    base: np.ndarray  # (R,) key of its first vertex
    total: np.ndarray  # (R,) seconds from end to end

    def locate(self, route: np.ndarray, elapsed_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (n, 2) and the road index (-1 off the roads) of travellers ``elapsed_s`` into
        their ``route``; the elapsed time is clipped to the route."""
        route = np.asarray(route, dtype=np.int64)
        if len(route) == 0:
            return np.zeros((0, 2)), np.zeros(0, np.int64)
        q = self.base[route] + np.clip(elapsed_s, 0.0, self.total[route])
        j = np.searchsorted(self.key, q, side="right") - 1
        j = np.clip(j, self.start[route], self.end[route] - 2)
        span = self.key[j + 1] - self.key[j]
        f = np.clip((q - self.key[j]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
        xy = self.xy[j] + f[:, None] * (self.xy[j + 1] - self.xy[j])
        return xy, self.road[j]


class Network:
    """Travel times and routes between places (``xy``, ids for messages) on a city's road graph."""

    def __init__(self, graph, xy: np.ndarray, ids: list[str], *, walk_mps: float, max_snap_m: float,
                 shuttle_stops: np.ndarray | None = None, shuttle_kmh: float = 30.0):
        self.graph = graph
        self.xy = np.asarray(xy, dtype=np.float64)
        self.ids = list(ids)
        self.P = len(self.xy)
        self.walk_mps = walk_mps
        main = graph.main_component()
        self.node, dist = self._snap(main)
        far = np.flatnonzero(dist > max_snap_m)
        if far.size:
            i = far[np.argmax(dist[far])]
            listed = ", ".join(f'"{self.ids[k]}" ({dist[k]:.0f} m)' for k in far[:5])
            raise UserError(
                f"pois: {len(far)} place(s) lie farther than max_snap_m = {max_snap_m:g} m from the road network "
                f"(its main connected part): {listed}. Tourists reach places by road: move POI \"{self.ids[i]}\" "
                "next to a road, add a road (or footway) to it in the roads layer, or raise max_snap_m.")
        self.access_s = dist / walk_mps
        walk_edges = graph.edge_seconds("walk", walk_mps=walk_mps)
        # The routes are drawn by the view only: built when first asked for (a run that keeps only
        # its KPIs, as each of an exploration's thousands does, never builds them: a third of its time)
        self._modes = [(walk_edges, self.node, self.access_s, np.ones(self.P, bool), ("tourist_flow walk", walk_mps))]
        self._routes: Routes | None = None
        self.T = self._mode(*self._modes[0], routes=False)[0][None]
        self.n_modes = 1
        self.shuttle_served = np.zeros(self.P, bool)
        if shuttle_stops is not None and shuttle_stops.any():
            self._add_shuttle(shuttle_stops, shuttle_kmh, max_snap_m)

    # -- building ---------------------------------------------------------------------------------
    def _snap(self, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        node = self.graph.nearest_node(self.xy[:, 0], self.xy[:, 1], among=among)
        return node, np.hypot(*(self.graph.node_xy[node] - self.xy).T)

    def _add_shuttle(self, stops: np.ndarray, shuttle_kmh: float, max_snap_m: float) -> None:
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        g = self.graph
        edges = g.edge_seconds("drive", max_kmh=shuttle_kmh)
        ok = np.isfinite(edges)
        if not ok.any():
            return
        n = g.n_nodes
        m = csr_matrix((np.ones(int(ok.sum())), (g.edge_u[ok], g.edge_v[ok])), shape=(n, n))
        lab = connected_components(m, directed=False)[1]
        touched = np.zeros(n, bool)
        touched[g.edge_u[ok]] = touched[g.edge_v[ok]] = True
        big = np.bincount(lab[touched]).argmax()
        node, dist = self._snap(touched & (lab == big))
        served = stops & (dist <= max_snap_m)
        if served.sum() < 2:
            return
        access = dist / self.walk_mps
        self._modes.append((edges, node, access, served, ("tourist_flow shuttle", shuttle_kmh)))
        T_bus = self._mode(*self._modes[1], routes=False)[0]
        self._shuttle = (edges, node, access, served)  # to route again round closed roads
        self.T = np.stack([self.T[0], T_bus])
        self.n_modes = 2
        self.shuttle_served = served

    def closed(self, walk_closed: np.ndarray, drive_closed: np.ndarray):
        """(T, routes) with the road segments closed to walkers and to vehicles (the shuttle) cut:
        pairs cut off get an infinite time."""
        walk = np.where(walk_closed, np.inf, self.graph.edge_seconds("walk", walk_mps=self.walk_mps))
        T_walk, routes = self._mode(walk, self.node, self.access_s, np.ones(self.P, bool), None)
        if self.n_modes == 1:
            return T_walk[None], routes
        edges, node, access, served = self._shuttle
        T_bus, bus_routes = self._mode(np.where(drive_closed, np.inf, edges), node, access, served, None)
        return np.stack([T_walk, T_bus]), _concat(routes, bus_routes, self.P * self.P)

    @property
    def routes(self) -> Routes:
        """Every mode's route of every ordered pair of places (mode m's route a -> b is m P² + a P + b)."""
        if self._routes is None:
            built = [self._mode(*mode)[1] for mode in self._modes]
            self._routes = built[0] if len(built) == 1 else _concat(built[0], built[1], self.P * self.P)
        return self._routes

    @routes.setter
    def routes(self, routes: Routes) -> None:
        self._routes = routes

    def _mode(self, edge_s: np.ndarray, node: np.ndarray, access_s: np.ndarray, served: np.ndarray, cache_key,
              routes: bool = True):
        """Travel times between the served places and their routes (one route per ordered pair;
        pairs not served get a route of zero vertices and an infinite time); routes None if not ``routes``."""
        P = self.P
        src = np.flatnonzero(served)
        uniq, row_of = np.unique(node[src], return_inverse=True)
        paths = self.graph.shortest(uniq, edge_s, cache_key=cache_key)
        T = np.full((P, P), np.inf)
        cost = paths.cost[row_of][:, node[src]]  # (served, served) node to node
        T[np.ix_(src, src)] = access_s[src][:, None] + cost + access_s[src][None, :]
        T[src, src] = 0.0
        if not routes:
            return T, None
        edge_road = _edge_lookup(self.graph, edge_s)
        parts: dict[int, tuple] = {}
        for r, u in enumerate(uniq):
            chains = _paths_from(paths.pred[r], int(u), node[src])
            t_along = paths.cost[r]
            for a in src[row_of == r]:
                for b, nodes in zip(src, chains):
                    if nodes is None:  # cut off (an infinite time): a straight line, for groups already on their way
                        parts[a * P + b] = (self.xy[[a, b]], np.zeros(2), np.full(2, -1, np.int64))
                        continue
                    parts[a * P + b] = self._route(a, b, nodes, access_s[a] + t_along[nodes], T[a, b], edge_road)
        return T, _flatten(parts, P * P)

    def _route(self, a: int, b: int, nodes: np.ndarray, t_nodes: np.ndarray, t_end: float, edge_road):
        """(vertices, seconds at each, road of the segment from each) from POI a along ``nodes`` to POI b."""
        if a == b:
            return self.xy[[a, a]], np.zeros(2), np.full(2, -1, np.int64)
        xy = np.vstack([self.xy[a], self.graph.node_xy[nodes], self.xy[b]])
        t = np.concatenate([[0.0], t_nodes, [t_end]])
        road = np.full(len(t), -1, np.int64)  # the first and last segments are the access walks
        road[1:len(nodes)] = edge_road(nodes[:-1], nodes[1:])
        return xy, t, road


def _paths_from(pred: np.ndarray, source: int, targets: np.ndarray) -> list[np.ndarray | None]:
    """Node paths from ``source`` to every target, following the predecessors of all targets at once;
    None for a target cut off from the source (roads closed by water)."""
    cur = targets.astype(np.int64).copy()
    chain = [cur]
    cut = np.zeros(len(cur), bool)
    active = cur != source
    while active.any():
        cur = np.where(active, pred[np.where(active, cur, 0)], cur)
        cut |= cur < 0
        cur = np.where(cut, source, cur)
        chain.append(cur)
        active = cur != source
    chain = np.array(chain)  # (steps, targets), each column ends at the source and then repeats it
    length = (chain != source).sum(axis=0) + 1
    return [None if cut[j] else chain[:length[j], j][::-1] for j in range(len(targets))]


def _edge_lookup(graph, edge_s: np.ndarray):
    """A function (a, b) node arrays -> the road index of the quickest edge joining them."""
    n = graph.n_nodes
    lo = np.minimum(graph.edge_u, graph.edge_v)
    hi = np.maximum(graph.edge_u, graph.edge_v)
    key = lo * n + hi
    order = np.lexsort((edge_s, key))
    key_sorted = key[order]
    first = np.r_[True, key_sorted[1:] != key_sorted[:-1]]
    keys, roads = key_sorted[first], graph.edge_road[order][first]

    def road_of(a, b):
        k = np.minimum(a, b) * n + np.maximum(a, b)
        return roads[np.searchsorted(keys, k)]

    return road_of


def _flatten(parts: dict[int, tuple], n_routes: int) -> Routes:
    """Routes 0..n_routes-1 in one set of flat arrays; a route missing from ``parts`` has no vertices."""
    counts = np.zeros(n_routes, np.int64)
    total = np.zeros(n_routes)
    for k, (_, t, _) in parts.items():
        counts[k] = len(t)
        total[k] = t[-1]
    end = np.cumsum(counts)
    start = end - counts
    base = np.concatenate([[0.0], np.cumsum(total + GAP_S)[:-1]])
    keys = sorted(parts)
    xy = np.vstack([parts[k][0] for k in keys])
    t = np.concatenate([parts[k][1] for k in keys])
    road = np.concatenate([parts[k][2] for k in keys])
    return Routes(xy, t + np.repeat(base, counts), road, start, end, base, total)


def _concat(a: Routes, b: Routes, offset_routes: int) -> Routes:
    """Routes of ``b`` appended after those of ``a`` (``b``'s route k becomes ``offset_routes + k``)."""
    shift = a.base[-1] + a.total[-1] + GAP_S if len(a.base) else 0.0
    nv = len(a.key)
    return Routes(np.vstack([a.xy, b.xy]), np.concatenate([a.key, b.key + shift]), np.concatenate([a.road, b.road]),
                  np.concatenate([a.start, b.start + nv]), np.concatenate([a.end, b.end + nv]),
                  np.concatenate([a.base, b.base + shift]), np.concatenate([a.total, b.total]))
