"""Every POI kind of the vocabulary has its own colour in the 3D view."""


def test_every_poi_kind_has_a_colour():
    from twin.view.render import POI_COLOURS
    from twin.core.vocabulary import POI_KINDS

    assert set(POI_COLOURS) == set(POI_KINDS)
