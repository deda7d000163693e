"""Every POI kind the models declare has its own colour in the 3D view."""


def test_every_poi_kind_has_a_colour():
    from twin.declarations import poi_kinds
    from twin.view.scene import poi_colours

    assert set(poi_colours()) == set(poi_kinds())
    assert all(c.startswith("#") and len(c) == 7 for c in poi_colours().values())
