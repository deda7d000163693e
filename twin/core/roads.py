"""The road network as a graph, built once per city and shared by every model.

Nodes are the distinct vertices of the ``roads`` layer (rounded to 1 cm), so roads that share a
vertex are connected (OpenStreetMap ways share their junction nodes; the demo city's segments meet
end to end) and a bridge that only crosses another road in plan is not. Each pair of consecutive
vertices is an undirected edge that remembers its road (``edge_road``, an index into the layer, whose
``id`` column gives the stable road id).

Travel times by mode (seconds per edge): ``walk`` on every road at a walking speed; ``drive`` on
every road but footways, at the road's ``speed_kmh`` (a vehicle with a speed limit of its own, a
model's shuttle, gives ``max_kmh``). Shortest paths use ``scipy.sparse.csgraph.dijkstra`` on a CSR matrix; closures
(roads that cannot be used) and per-edge factors (e.g. slower walking where a model says so) are applied at run
time, and the results of the last queries are cached.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .errors import UserError

WALK_MPS = 1.34  # Weidmann 1993, free walking speed
NO_CARS = ("footway", "path", "pedestrian", "steps", "cycleway")
MODES = ("walk", "drive")


@dataclass
class Paths:
    """Result of a shortest-path query from ``sources`` (node indices)."""

    sources: np.ndarray
    cost: np.ndarray  # (len(sources), n_nodes) seconds; inf where unreachable
    pred: np.ndarray  # (len(sources), n_nodes) predecessor node, -9999 at the source / unreachable


class RoadGraph:
    def __init__(self, node_xy: np.ndarray, edge_u: np.ndarray, edge_v: np.ndarray, edge_road: np.ndarray,
                 road_ids: np.ndarray, road_kind: np.ndarray, road_speed_kmh: np.ndarray):
        self.node_xy = node_xy
        self.edge_u, self.edge_v = edge_u, edge_v
        self.edge_road = edge_road
        self.edge_len = np.hypot(*(node_xy[edge_v] - node_xy[edge_u]).T)
        self.road_ids = road_ids
        self.road_kind = road_kind
        self.road_speed_kmh = road_speed_kmh
        self.road_len = np.bincount(edge_road, weights=self.edge_len, minlength=len(road_ids))
        self._cache: OrderedDict = OrderedDict()
        self._tree = None

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def from_city(cls, city) -> "RoadGraph":
        import shapely

        roads = city.roads
        if not len(roads):
            where = city.root or city.name
            raise UserError(f"{where}: this city has no roads layer; a road graph needs one (see CONTRACT §1).")
        geoms = roads.geometry.to_numpy()
        parts, owner = shapely.get_parts(geoms, return_index=True)
        coords, line_of = shapely.get_coordinates(parts, return_index=True)
        road_of_vertex = owner[line_of]
        key = np.round(coords[:, :2] * 100.0).astype(np.int64)  # 1 cm
        uniq, node_of = np.unique(key, axis=0, return_inverse=True)
        node_of = node_of.ravel()
        same_line = line_of[1:] == line_of[:-1]
        u, v = node_of[:-1][same_line], node_of[1:][same_line]
        road = road_of_vertex[:-1][same_line]
        keep = u != v  # repeated vertices
        u, v, road = u[keep], v[keep], road[keep]
        node_xy = np.zeros((len(uniq), 2))
        np.add.at(node_xy, node_of, coords[:, :2])
        node_xy /= np.bincount(node_of, minlength=len(uniq))[:, None]
        return cls(node_xy, u.astype(np.int64), v.astype(np.int64), road.astype(np.int64),
                   roads["id"].astype(str).to_numpy(), roads["kind"].astype(str).to_numpy(),
                   roads["speed_kmh"].astype(float).to_numpy())

    @property
    def n_nodes(self) -> int:
        return len(self.node_xy)

    @property
    def n_edges(self) -> int:
        return len(self.edge_u)

    # -- travel times -------------------------------------------------------------------------------
    def edge_seconds(self, mode: str = "walk", walk_mps: float = WALK_MPS, max_kmh: float | None = None) -> np.ndarray:
        """Travel time of each edge by ``mode``; inf where the mode may not go. ``max_kmh``: the
        vehicle's own speed limit when driving (None: the roads' speeds)."""
        if mode == "walk":
            return self.edge_len / walk_mps
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; the modes are {', '.join(MODES)}")
        kmh = self.road_speed_kmh[self.edge_road]
        if max_kmh is not None:
            kmh = np.minimum(kmh, max_kmh)
        t = self.edge_len / np.maximum(kmh / 3.6, 0.1)
        t[np.isin(self.road_kind[self.edge_road], NO_CARS)] = np.inf
        return t

    def road_index(self, ids, where: str = "") -> np.ndarray:
        """Indices of roads by id; an unknown id is a UserError naming it."""
        lookup = {r: i for i, r in enumerate(self.road_ids)}
        out = []
        for r in ids:
            if str(r) not in lookup:
                from .errors import nearest

                raise UserError(f'{where}: no road with id "{r}"{nearest(str(r), lookup)}; road ids are in the '
                                "id column of the roads layer (generated as R00001, … when the layer has none).")
            out.append(lookup[str(r)])
        return np.asarray(out, dtype=np.int64)

    def shortest(self, sources, edge_seconds: np.ndarray, closed_edges: np.ndarray | None = None,
                 cache_key=None) -> Paths:
        """Shortest travel times from each source node to every node (undirected).

        ``closed_edges`` is a boolean mask of edges that cannot be used. Give ``cache_key`` (any
        hashable naming the weights and closures) to reuse a recent result.
        """
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import dijkstra

        sources = np.atleast_1d(np.asarray(sources, dtype=np.int64))
        key = None if cache_key is None else (cache_key, sources.tobytes())
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        w = np.asarray(edge_seconds, dtype=np.float64)
        ok = np.isfinite(w)
        if closed_edges is not None:
            ok &= ~closed_edges
        # scipy treats explicit zeros as missing edges: a zero-length edge costs a hair instead
        w = np.maximum(w[ok], 1e-9)
        u, v = np.minimum(self.edge_u[ok], self.edge_v[ok]), np.maximum(self.edge_u[ok], self.edge_v[ok])
        # two roads between the same two vertices: keep the faster (a sparse matrix would add them up)
        order = np.lexsort((w, v, u))
        u, v, w = u[order], v[order], w[order]
        first = np.ones(len(u), dtype=bool)  # also right when every edge is closed
        first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
        n = self.n_nodes
        m = csr_matrix((w[first], (u[first], v[first])), shape=(n, n))
        cost, pred = dijkstra(m, directed=False, indices=sources, return_predecessors=True)
        res = Paths(sources, cost, pred)
        if key is not None:
            self._cache[key] = res
            while len(self._cache) > 16:
                self._cache.popitem(last=False)
        return res

    @staticmethod
    def node_path(paths: Paths, row: int, target: int) -> list[int]:
        """Nodes from ``paths.sources[row]`` to ``target`` (empty when unreachable)."""
        if not np.isfinite(paths.cost[row, target]):
            return []
        out = [int(target)]
        pred = paths.pred[row]
        while pred[out[-1]] >= 0:
            out.append(int(pred[out[-1]]))
        return out[::-1]

    def nearest_node(self, x, y, among: np.ndarray | None = None) -> np.ndarray:
        """The node nearest to each point (optionally only nodes where ``among`` is true)."""
        from scipy.spatial import cKDTree

        pts = np.column_stack([np.atleast_1d(x), np.atleast_1d(y)])
        if among is None:
            if self._tree is None:
                self._tree = cKDTree(self.node_xy)
            return self._tree.query(pts)[1].astype(np.int64)
        idx = np.flatnonzero(among)
        return idx[cKDTree(self.node_xy[idx]).query(pts)[1]].astype(np.int64)

    def components(self) -> np.ndarray:
        """Connected-component label of every node (all roads open, every mode)."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        n = self.n_nodes
        m = csr_matrix((np.ones(self.n_edges), (self.edge_u, self.edge_v)), shape=(n, n))
        return connected_components(m, directed=False)[1]

    def main_component(self) -> np.ndarray:
        """Mask of the nodes in the largest connected part of the network."""
        lab = self.components()
        return lab == np.bincount(lab).argmax()
