"""The road graph every model shares (twin/core/roads.py)."""
import numpy as np
import pytest

from tests.conftest import DATA, DEMO_CITY
from twin.core.city import City
from twin.core.errors import UserError


@pytest.fixture(scope="module")
def demo():
    return City.load(DEMO_CITY)


@pytest.mark.slow
def test_demo_city_roads_form_one_connected_graph(demo):
    g = demo.road_graph()
    assert g is demo.road_graph()  # built once per city
    assert g.n_nodes > 1000 and g.n_edges >= len(demo.roads)
    assert len(np.unique(g.components())) == 1
    # every road has stable ids and appears in the graph with its full length
    assert len(set(g.road_ids)) == len(demo.roads)
    np.testing.assert_allclose(g.road_len, demo.roads.length.to_numpy(), rtol=1e-9)


def test_shortest_paths_by_mode_and_with_closures(demo):
    g = demo.road_graph()
    a, b = g.nearest_node([500300.0, 501700.0], [3401700.0, 3400200.0])
    walk = g.edge_seconds("walk")
    res = g.shortest([a], walk, cache_key="walk")
    assert g.shortest([a], walk, cache_key="walk") is res  # cached
    path = g.node_path(res, 0, b)
    assert path[0] == a and path[-1] == b
    length = sum(np.hypot(*(g.node_xy[v] - g.node_xy[u])) for u, v in zip(path[:-1], path[1:]))
    assert res.cost[0, b] == pytest.approx(length / 1.34)
    straight = np.hypot(*(g.node_xy[b] - g.node_xy[a]))
    assert length >= straight
    # driving is faster than walking; closing the roads of the walking route makes it longer
    drive = g.shortest([a], g.edge_seconds("drive")).cost[0, b]
    assert drive < res.cost[0, b]
    used = np.zeros(g.n_edges, bool)
    pairs = set(zip(path[:-1], path[1:])) | set(zip(path[1:], path[:-1]))
    used[[i for i, (u, v) in enumerate(zip(g.edge_u, g.edge_v)) if (u, v) in pairs]] = True
    closed_roads = np.unique(g.edge_road[used])[:3]
    detour = g.shortest([a], walk, closed_edges=np.isin(g.edge_road, closed_roads)).cost[0, b]
    assert detour > res.cost[0, b]


def test_unknown_road_id_is_a_clear_error(demo):
    g = demo.road_graph()
    assert g.road_index([g.road_ids[3]], "here").tolist() == [3]
    with pytest.raises(UserError, match='no road with id "R99999x"'):
        g.road_index(["R99999x"], "scenario.toml closed_roads")


@pytest.mark.slow
def test_imported_helsinki_roads_are_one_network(tmp_path_factory):
    from twin.gis.city_import import import_city

    out = tmp_path_factory.mktemp("hel") / "city"
    import_city([DATA / "city" / "helsinki_central" / "Helsinki.osm.pbf"], out)
    city = City.load(out)
    g = city.road_graph()
    main = g.main_component()
    length_share = g.edge_len[main[g.edge_u]].sum() / g.edge_len.sum()
    print(f"Helsinki: {g.n_nodes} nodes, {g.n_edges} edges, main component {main.mean():.1%} of nodes, "
          f"{length_share:.1%} of length")
    # an extract cut at a bounding box leaves a few stubs outside the main network
    assert length_share > 0.95


def test_parallel_roads_between_the_same_vertices_keep_the_faster(demo):
    """Two roads joining the same two vertices: the shortest path uses the faster, not the sum."""
    from twin.core.roads import RoadGraph

    xy = np.array([[0.0, 0.0], [100.0, 0.0]])
    g = RoadGraph(xy, np.array([0, 0]), np.array([1, 1]), np.array([0, 1]), np.array(["slow", "fast"]),
                  np.array(["residential", "primary"]), np.array([10.0, 50.0]))
    cost = g.shortest([0], g.edge_seconds("drive")).cost[0, 1]
    assert cost == pytest.approx(100.0 / (50.0 / 3.6))
