"""Routes over the road graph: polylines built from node paths, and positions along them by arc length.

Every model that moves people or vehicles along the roads (flood evacuation, tourist travel) holds
its routes here, as flat arrays in CSR form, so that placing thousands of walkers is one vectorised
lookup and no Python loop runs per walker:

* route ``k`` owns the vertices ``indptr[k]:indptr[k + 1]``: ``xy`` (metres, city CRS), ``cum`` (arc
  length from the route's start at each vertex), ``node`` (the graph node at each vertex, -1 for a
  point off the nodes) and ``edge`` (the road-graph edge of the segment that starts at each vertex;
  -1 for a segment that is not a graph edge and at a route's last vertex).
* ``position(route, s)`` is the point at arc length ``s`` along each route (clipped to its ends);
  ``segment(route, s)`` the vertex index of the segment under it (to read the edge a walker is on).

Node paths come from ``RoadGraph.shortest``'s predecessor arrays: ``paths_from_predecessors`` walks
all paths of a query at once, one numpy step per node along the longest path, and ``Routes.build``
turns them into polylines. A route may start
off the network (a walker in the middle of a segment): ``Routes.build(..., starts=...)`` prepends
that point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_EDGE = -1


def paths_from_predecessors(paths, rows, ends) -> tuple[np.ndarray, np.ndarray]:
    """Node paths of a shortest-path query (``RoadGraph.shortest``'s ``Paths``), all at once.

    ``rows[j]`` is the source row and ``ends[j]`` the end node of path j. Returns CSR ``(indptr,
    nodes)``: path j runs from ``ends[j]`` back to its source, which on an undirected graph is the
    route from ``ends[j]`` to the source (reverse it for the other direction). A path whose end is
    unreachable is empty; one whose end is the source holds that one node.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cur = np.asarray(ends, dtype=np.int64).copy()
    n = len(cur)
    pred = paths.pred
    reach = np.isfinite(paths.cost[rows, cur]) if n else np.zeros(0, bool)
    steps = [np.where(reach, cur, -1)]
    active = reach & (pred[rows, cur] >= 0) if n else reach
    while active.any():
        cur = np.where(active, pred[rows, cur], cur)
        steps.append(np.where(active, cur, -1))
        active &= pred[rows, cur] >= 0
    table = np.stack(steps, axis=1) if n else np.zeros((0, 1), np.int64)  # -1 after a path's end
    lengths = (table >= 0).sum(axis=1)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return indptr, table[table >= 0].astype(np.int64)


class EdgeLookup:
    """The graph edge between two nodes, vectorised (the shortest one where roads run in parallel;
    -1 where none)."""

    def __init__(self, graph):
        n = np.int64(graph.n_nodes)
        u, v = graph.edge_u.astype(np.int64), graph.edge_v.astype(np.int64)
        key = np.concatenate([u * n + v, v * n + u])
        edge = np.tile(np.arange(graph.n_edges, dtype=np.int64), 2)
        order = np.lexsort((graph.edge_len[edge], key))  # by key, then shortest first
        key, edge = key[order], edge[order]
        first = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
        self._key, self._edge, self._n = key[first], edge[first], n

    def __call__(self, a, b) -> np.ndarray:
        k = np.asarray(a, np.int64) * self._n + np.asarray(b, np.int64)
        if not len(self._key):
            return np.full(k.shape, NO_EDGE, np.int64)
        i = np.minimum(np.searchsorted(self._key, k), len(self._key) - 1)
        return np.where(self._key[i] == k, self._edge[i], NO_EDGE).astype(np.int64)


@dataclass
class Routes:
    """A growing set of routes (see the module docstring); every array is plain numpy, so a model can
    keep them in its saved state."""

    indptr: np.ndarray
    xy: np.ndarray
    cum: np.ndarray
    edge: np.ndarray
    node: np.ndarray

    ARRAYS = ("indptr", "xy", "cum", "edge", "node")

    @classmethod
    def empty(cls) -> "Routes":
        return cls(np.zeros(1, np.int64), np.zeros((0, 2)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Length of each route (m)."""
        if len(self) == 0:
            return np.zeros(0)
        return self.cum[self.indptr[1:] - 1]

    @staticmethod
    def build(graph, indptr, nodes, starts=None, start_edges=None, edges: EdgeLookup | None = None) -> "Routes":
        """Routes from node paths in CSR form (``paths_from_predecessors``).

        ``starts`` (k, 2), optional: a point to prepend to each route (a walker off the nodes), with
        ``start_edges[k]`` the edge that first piece lies on (-1 if none). A NaN start adds nothing."""
        edges = edges or EdgeLookup(graph)
        indptr = np.asarray(indptr, np.int64)
        nodes = np.asarray(nodes, np.int64)
        k = len(indptr) - 1
        counts = np.diff(indptr)
        xy = graph.node_xy[nodes]
        # the edge of each segment: between consecutive nodes of the same path
        seg = np.full(len(nodes), NO_EDGE, np.int64)
        if len(nodes) > 1:
            same = np.ones(len(nodes) - 1, bool)
            ends = indptr[1:-1] - 1
            same[ends[(ends >= 0) & (ends < len(same))]] = False  # no segment from one path's end to the next
            i = np.flatnonzero(same)
            seg[i] = edges(nodes[i], nodes[i + 1])
        if starts is not None:
            starts = np.asarray(starts, np.float64).reshape(k, 2)
            add = np.isfinite(starts).all(axis=1) & (counts > 0)
            start_edges = np.full(k, NO_EDGE, np.int64) if start_edges is None else np.asarray(start_edges, np.int64)
            new_counts = counts + add
            new_indptr = np.zeros(k + 1, np.int64)
            np.cumsum(new_counts, out=new_indptr[1:])
            dest = np.arange(len(nodes)) + np.repeat(new_indptr[:-1] - indptr[:-1] + add, counts)
            xy2 = np.empty((new_indptr[-1], 2))
            seg2 = np.full(new_indptr[-1], NO_EDGE, np.int64)
            node2 = np.full(new_indptr[-1], -1, np.int64)
            xy2[dest] = xy
            seg2[dest] = seg
            node2[dest] = nodes
            head = new_indptr[:-1][add]
            xy2[head] = starts[add]
            seg2[head] = start_edges[add]
            indptr, xy, seg, nodes, counts = new_indptr, xy2, seg2, node2, new_counts
        step = np.zeros(len(xy))
        if len(xy) > 1:
            step[1:] = np.hypot(*(xy[1:] - xy[:-1]).T)
        step[indptr[:-1][counts > 0]] = 0.0  # each route starts at 0
        cum = np.cumsum(step)
        cum -= np.repeat(cum[indptr[:-1][counts > 0]], counts[counts > 0]) if len(cum) else 0.0
        return Routes(indptr, xy, cum, seg, nodes)

    def extend(self, other: "Routes") -> np.ndarray:
        """Append ``other``'s routes; returns their indices in this set."""
        first = len(self)
        self.indptr = np.concatenate([self.indptr, other.indptr[1:] + self.indptr[-1]])
        self.xy = np.concatenate([self.xy, other.xy])
        self.cum = np.concatenate([self.cum, other.cum])
        self.edge = np.concatenate([self.edge, other.edge])
        self.node = np.concatenate([self.node, other.node])
        return np.arange(first, len(self), dtype=np.int64)

    # -- reading -------------------------------------------------------------------------------------
    def segment(self, route, s) -> np.ndarray:
        """Index (into ``xy``) of the vertex starting the segment at arc length ``s`` of each route;
        the route's last vertex at or past its end."""
        route = np.asarray(route, np.int64)
        s = np.asarray(s, np.float64)
        a, b = self.indptr[route], self.indptr[route + 1]
        # cum restarts at 0 on every route: search within each route through a global offset
        offset = self._offsets()
        g = offset[route] + np.clip(s, 0.0, None)
        i = np.searchsorted(self._global_cum(), g, side="right") - 1
        return np.clip(i, a, np.maximum(b - 1, a))

    def position(self, route, s) -> np.ndarray:
        """(n, 2) points at arc length ``s`` along each route, clipped to the route's ends."""
        route = np.asarray(route, np.int64)
        s = np.asarray(s, np.float64)
        if len(route) == 0:
            return np.zeros((0, 2))
        i = self.segment(route, s)
        last = self.indptr[route + 1] - 1
        j = np.minimum(i + 1, last)
        seg_len = self.cum[j] - self.cum[i]
        f = np.where(seg_len > 0, np.clip((s - self.cum[i]) / np.where(seg_len > 0, seg_len, 1.0), 0.0, 1.0), 0.0)
        return self.xy[i] + (self.xy[j] - self.xy[i]) * f[:, None]

    def edge_at(self, route, s) -> np.ndarray:
        """The graph edge under arc length ``s`` of each route (-1 off the graph or at the end)."""
        return self.edge[self.segment(route, s)]

    def _offsets(self) -> np.ndarray:
        lengths = self.lengths
        off = np.zeros(len(lengths) + 1)
        # a gap of 1 m between routes keeps the global arc length strictly ordered across them
        np.cumsum(lengths + 1.0, out=off[1:])
        return off[:-1]

    def _global_cum(self) -> np.ndarray:
        counts = np.diff(self.indptr)
        return self.cum + np.repeat(self._offsets(), counts)
