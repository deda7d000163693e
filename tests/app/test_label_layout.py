"""Labels of different layers never cover each other on screen (twin.view.label_layout): where two
would, only the more urgent layer's is drawn, and the other comes back once the camera parts them."""
from __future__ import annotations

import numpy as np
import pyvista as pv
import pytest

from twin.view.label_layout import LabelLayout


def _drawn(layout: LabelLayout, actor) -> list[str]:
    """The labels the actor's label hierarchy was last handed (what VTK draws)."""
    poly = layout.sets[id(actor)].hierarchy.GetInputDataObject(0, 0)
    arr = poly.GetPointData().GetAbstractArray("labels")
    return [arr.GetValue(i) for i in range(arr.GetNumberOfValues())]


@pytest.fixture
def scene():
    p = pv.Plotter(off_screen=True, window_size=(640, 480))
    p.add_mesh(pv.Plane(i_size=200, j_size=200))
    layout = LabelLayout(p.renderer)

    def labels(points, texts, priority):
        points = np.asarray(points, float)
        actor = p.add_point_labels(points, texts, font_size=20, always_visible=True, show_points=False,
                                   name=f"labels{priority}", render=False)
        layout.add(actor, points, texts, priority)
        return actor

    alerts = labels([[0, 0, 1], [60, 60, 1]], ["alert A", "alert B"], 0)
    places = labels([[2, 0, 1], [-60, -60, 1]], ["a place under the alert", "a free place"], 4)
    p.view_xy()
    p.screenshot(return_img=True)  # the first render; pyvista renders on render() only after it
    yield p, layout, alerts, places
    p.close()


def test_the_less_urgent_label_under_another_is_not_drawn(scene):
    p, layout, alerts, places = scene
    p.render()
    assert _drawn(layout, alerts) == ["alert A", "alert B"]
    assert _drawn(layout, places) == ["a free place"]
    # the boxes are measured as VTK draws the texts: one line, wider the longer the text
    for s in layout.sets.values():
        assert (s.sizes[:, 0] > 2 * s.sizes[:, 1]).all()
        assert np.argmax(s.sizes[:, 0]) == np.argmax([len(t) for t in s.texts])


def test_zooming_in_parts_the_labels_and_the_covered_one_returns(scene):
    p, layout, alerts, places = scene
    p.render()
    assert "a place under the alert" not in _drawn(layout, places)
    p.camera.focal_point = (1.5, 0, 0)
    p.camera.position = (1.5, 0, 8)  # 2 m apart now fill half the window
    p.render()
    assert _drawn(layout, places)[0] == "a place under the alert"
    assert _drawn(layout, alerts)[0] == "alert A"


def test_a_hidden_layer_leaves_its_place_to_the_others(scene):
    p, layout, alerts, places = scene
    p.render()
    alerts.SetVisibility(False)
    p.render()
    assert _drawn(layout, places) == ["a place under the alert", "a free place"]


def test_a_removed_layer_is_forgotten(scene):
    p, layout, alerts, places = scene
    p.render()
    p.remove_actor(alerts, render=False)
    p.render()
    assert id(alerts) not in layout.sets
    assert len(_drawn(layout, places)) == 2


def test_no_label_goes_under_a_legend(scene):
    p, layout, alerts, places = scene
    # a legend box over the lower left quarter of the window, where "a free place" lies
    legend = p.add_legend([("something", "red")], loc="lower left", size=(0.45, 0.45))
    p.render()
    assert "a free place" not in _drawn(layout, places)
    legend.SetVisibility(False)
    p.render()
    assert "a free place" in _drawn(layout, places)


def test_a_label_at_the_right_edge_goes_to_the_left_of_its_point(scene):
    p, layout, alerts, places = scene
    s = layout.sets[id(alerts)]
    # "alert B" (x = 60 m) about 16 m left of the right edge: some 35 px, half its label's width
    p.camera.focal_point = (44, 60, 0)
    p.camera.position = (44, 60, 50)
    p.render()
    assert "alert B" in _drawn(layout, alerts)
    assert s.drawn_at[1, 0] < s.points[1, 0] - 1  # its anchor moved left by the box's width: the box ends at the point
