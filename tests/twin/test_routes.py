"""Routes over the road graph (twin/core/routes.py) against plain references: RoadGraph.node_path for
the paths, and a per-walker numpy interpolation for the positions."""
import numpy as np
import pytest

from tests.conftest import DEMO_CITY
from twin.core.city import City
from twin.core.routes import NO_EDGE, EdgeLookup, Routes, paths_from_predecessors


@pytest.fixture(scope="module")
def graph():
    return City.load(DEMO_CITY).road_graph()


def reference_position(xy: np.ndarray, s: float) -> np.ndarray:
    """Point at arc length s along a polyline, one walker at a time."""
    seg = np.hypot(*np.diff(xy, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = min(max(s, 0.0), cum[-1])
    k = min(int(np.searchsorted(cum, s, side="right")) - 1, len(seg) - 1)
    f = (s - cum[k]) / seg[k] if seg[k] > 0 else 0.0
    return xy[k] + f * (xy[k + 1] - xy[k])


@pytest.mark.slow
def test_paths_match_the_graph_s_own_paths(graph):
    rng = np.random.default_rng(4)
    sources = rng.choice(graph.n_nodes, 3, replace=False)
    paths = graph.shortest(sources, graph.edge_seconds("walk"))
    rows = rng.integers(0, 3, 40)
    ends = rng.choice(graph.n_nodes, 40)
    ends[0] = sources[rows[0]]  # a path of one node
    indptr, nodes = paths_from_predecessors(paths, rows, ends)
    for j in range(40):
        expected = graph.node_path(paths, int(rows[j]), int(ends[j]))[::-1]  # from the end to the source
        assert list(nodes[indptr[j]:indptr[j + 1]]) == expected


def test_unreachable_ends_give_empty_paths(graph):
    w = graph.edge_seconds("walk")
    closed = np.ones(graph.n_edges, bool)  # every road closed: only the source itself is reachable
    paths = graph.shortest([0], w, closed_edges=closed)
    indptr, nodes = paths_from_predecessors(paths, [0, 0], [0, 1])
    assert list(np.diff(indptr)) == [1, 0] and list(nodes) == [0]


def test_positions_and_edges_along_routes(graph):
    rng = np.random.default_rng(5)
    paths = graph.shortest([10], graph.edge_seconds("walk"))
    ends = rng.choice(np.flatnonzero(np.isfinite(paths.cost[0])), 25)
    indptr, nodes = paths_from_predecessors(paths, np.zeros(25, np.int64), ends)
    starts = np.full((25, 2), np.nan)
    starts[::2] = graph.node_xy[ends[::2]] + rng.normal(0, 20, (13, 2))  # off the network
    routes = Routes.empty()
    idx = routes.extend(Routes.build(graph, indptr, nodes, starts=starts))
    assert list(idx) == list(range(25))
    lengths = routes.lengths
    cost_m = paths.cost[0, ends] * 1.34  # the walking cost is length / 1.34 m/s
    on_net = np.isnan(starts[:, 0])
    assert np.allclose(lengths[on_net], cost_m[on_net], rtol=1e-9, atol=1e-6)
    assert (lengths[~on_net] >= cost_m[~on_net] - 1e-6).all()
    r = rng.integers(0, 25, 500)
    s = rng.uniform(-10, 1.1 * lengths.max(), 500)
    got = routes.position(r, s)
    for k in range(500):
        a, b = routes.indptr[r[k]], routes.indptr[r[k] + 1]
        assert np.allclose(got[k], reference_position(routes.xy[a:b], s[k]), atol=1e-6)
    # the edge under each walker joins the vertices around it
    edges = routes.edge_at(r, np.clip(s, 0, lengths[r] - 1e-6))
    seg = routes.segment(r, np.clip(s, 0, lengths[r] - 1e-6))
    on_graph = edges != NO_EDGE
    u, v = graph.edge_u[edges[on_graph]], graph.edge_v[edges[on_graph]]
    a, b = routes.node[seg[on_graph]], routes.node[seg[on_graph] + 1]
    assert ((u == a) & (v == b) | (u == b) & (v == a)).all()


def test_edge_lookup_finds_edges_both_ways(graph):
    look = EdgeLookup(graph)
    e = np.arange(0, graph.n_edges, 7)
    assert (look(graph.edge_u[e], graph.edge_v[e]) == e).all() or \
        (graph.edge_len[look(graph.edge_u[e], graph.edge_v[e])] <= graph.edge_len[e]).all()
    assert (look(graph.edge_v[e], graph.edge_u[e]) == look(graph.edge_u[e], graph.edge_v[e])).all()
    assert look(np.array([0]), np.array([0]))[0] == NO_EDGE
