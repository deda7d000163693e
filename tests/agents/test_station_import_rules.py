"""The station import's rules on small made-up inputs (agents/station/city_import.py): platforms by
track, the floor of a way, stairs placed from the floors of the ways at their ends, tagged ticket
barriers as a bank across the passage."""
import geopandas as gpd
import shapely

from agents.station import city_import as ci

CRS = "EPSG:32635"


def test_platform_fragments_merge_per_track_and_take_its_ref():
    frags = [("a", "1", shapely.box(0, 0, 5, 50)), ("b", "1", shapely.box(0, 50, 5, 90)),  # one track, two pieces
             ("c", "2", shapely.box(5, 0, 10, 90)),  # the other side of the island: its own track
             ("d", "3;4", shapely.box(20, 0, 30, 20)),  # shared by two tracks: floor, not a platform
             ("e", "", shapely.box(40, 0, 45, 30)), ("f", "", shapely.box(40, 30.5, 45, 60)),  # untagged, touching
             ("g", "10", shapely.box(60, 0, 65, 50))]
    plats = gpd.GeoDataFrame({"id": [f[0] for f in frags], "ref": [f[1] for f in frags], "railway": True,
                              "name": ""}, geometry=[f[2] for f in frags], crs=CRS)
    tracks = ci.merge_platforms(plats)
    assert [t["name"] for t in tracks] == ["Platform 1", "Platform 2", "Platform 10", "platform"]
    assert [t["id"] for t in tracks] == ["P1", "P2", "P10", ""]
    assert tracks[0]["geometry"].area == 5 * 90 and {"a", "b", "d"} <= tracks[0]["ids"]
    assert tracks[3]["geometry"].area == 5 * 59.5 and tracks[3]["ids"] >= {"e", "f"}


def test_the_floor_of_a_way():
    assert ci.way_level({"level": "2"}) == 2
    assert ci.way_level({"level": "0;1", "layer": "-1"}) == -1  # two levels: not one floor; below ground by layer
    assert ci.way_level({"tunnel": "yes"}) == -1  # OSM implies layer=-1 for a tunnel
    assert ci.way_level({"tunnel": "building_passage"}) == 0
    assert ci.way_level({"tunnel": "yes", "layer": "-2"}) == -2 and ci.way_level({}) == 0


def test_stairs_placed_from_the_floors_of_the_ways_at_their_ends():
    street = shapely.LineString([(0, 10), (20, 10)])
    tunnel = shapely.LineString([(20, 0), (40, 0)])
    ways = [("street", "footway", "", "", street), ("tunnel", "footway", "yes", "", tunnel),
            ("stairs", "steps", "", "", shapely.LineString([(20, 10), (20, 0)])),  # drawn downwards, no tags
            ("escalator", "steps", "", "yes", shapely.LineString([(0, 10), (20, 0)]))]
    roads = gpd.GeoDataFrame({"id": [w[0] for w in ways], "kind": [w[1] for w in ways], "tunnel": [w[2] for w in ways],
                              "conveying": [w[3] for w in ways], "level": "", "layer": "", "width": ""},
                             geometry=[w[4] for w in ways], crs=CRS)
    floors = {0: street.buffer(2), -1: tunnel.buffer(3)}
    layer, info = ci.infer_connectors(roads, shapely.box(-10, -10, 50, 20), floors, CRS, set())
    got = {r["id"]: r for _, r in layer.iterrows()}
    assert set(got) == {"stairs", "escalator"}
    assert got["stairs"].geometry.coords[0] == (20.0, 0.0)  # reversed: from the lower end up
    assert (got["stairs"]["from_level"], got["stairs"]["to_level"], got["stairs"]["kind"]) == (-1, 0, "stairs")
    assert got["escalator"]["kind"] == "escalator" and got["escalator"]["direction"] == "up"
    assert info["estimated_direction"] == 1


def test_tagged_turnstiles_are_one_bank_across_the_passage():
    corridor = shapely.box(0, 0, 40, 10)
    pts = gpd.GeoDataFrame({"id": ["t1", "t2", "t3"], "barrier": "turnstile", "entrance": None, "railway": None,
                            "highway": None, "name": None, "ref": None, "level": None},
                           geometry=shapely.points([(20, 2), (20, 5), (20, 8)]), crs=CRS)
    gates, note = ci._ticket_gates({"points": pts, "areas": None}, corridor, [], CRS)
    assert note == "1 tagged" and len(gates) == 1 and not gates["estimated"].any()
    line = gates.geometry.iloc[0]
    assert abs(line.length - 10.0) < 1e-6 and line.distance(shapely.Point(20, 5)) < 1e-6  # wall to wall


def test_stairs_between_a_tagged_tunnel_and_one_only_implied_rise_to_the_floor_above():
    """Both ends meet ways of level -1, but one only by tunnel=yes without a layer (often an indoor
    passage at street level) and the other tagged layer=-1: the steps say the floors differ, so the
    implied end is level 0 where level 0's floor is. Steps whose second end meets no way but lies on
    the street level's floor are floor, not a connector, and not reported."""
    passage = shapely.LineString([(0, 20), (0, 40)])  # tunnel=yes, no layer: indoors, at street level
    tunnel = shapely.LineString([(0, 0), (30, 0)])  # layer=-1
    street = shapely.LineString([(30, 20), (30, 40)])
    ways = [("passage", "footway", "yes", "", "", passage), ("tunnel", "footway", "yes", "-1", "", tunnel),
            ("street", "footway", "", "", "", street),
            ("up", "steps", "yes", "-1", "yes", shapely.LineString([(0, 0), (0, 20)])),  # escalator, layer -1
            ("door steps", "steps", "", "", "", shapely.LineString([(30, 20), (30, 16)]))]
    roads = gpd.GeoDataFrame({"id": [w[0] for w in ways], "kind": [w[1] for w in ways], "tunnel": [w[2] for w in ways],
                              "layer": [w[3] for w in ways], "conveying": [w[4] for w in ways], "level": "",
                              "width": ""}, geometry=[w[5] for w in ways], crs=CRS)
    floors = {0: shapely.box(-5, 15, 35, 45), -1: tunnel.buffer(3)}
    layer, info = ci.infer_connectors(roads, shapely.box(-10, -10, 50, 50), floors, CRS, set())
    assert list(layer["id"]) == ["up"] and info["not_placed"] == []
    up = layer.iloc[0]
    assert (up["kind"], up["from_level"], up["to_level"], up["direction"]) == ("escalator", -1, 0, "up")
    assert ci._level_implied({"tunnel": "yes"}) and not ci._level_implied({"tunnel": "yes", "layer": "-1"})


def test_a_lift_node_between_two_floors_is_a_lift_with_doors_onto_both():
    """A highway=elevator node over the tunnel and in the hall: a lift from level -1 to 0, its car
    turned so that both doors open onto floor; a node over one floor only is reported."""
    hall, tunnel = shapely.box(0, 0, 20, 20), shapely.box(8, -30, 12, 10)  # the tunnel runs under the hall's south
    pts = gpd.GeoDataFrame({"id": ["osm_node_1", "osm_node_2"], "highway": "elevator", "level": None},
                           geometry=shapely.points([(10, 8), (10, 18)]), crs=CRS)
    layer, info = ci.place_lifts({"points": pts, "areas": None}, shapely.box(-5, -40, 25, 25), {0: hall, -1: tunnel},
                                 CRS)
    assert list(layer["id"]) == ["osm_node_1"] and [x["id"] for x in info["not_placed"]] == ["osm_node_2"]
    lift = layer.iloc[0]
    assert (lift["kind"], lift["from_level"], lift["to_level"], lift["direction"]) == ("lift", -1, 0, "both")
    lower, upper = (shapely.Point(c) for c in lift.geometry.coords)
    assert abs(lift.geometry.length - ci.LIFT_CAR_M) < 1e-9
    assert tunnel.contains(lower) and hall.contains(upper)
