"""Gate and POI labels in Chinese are drawn in the 3D view (issue 10): VTK's own fonts have no CJK
glyphs and drop them, so the renderer gives such labels a CJK font file (twin.view.fonts)."""
from __future__ import annotations

import numpy as np
import pyvista as pv
import shapely

from twin.view.fonts import label_font_file


def _label_image(text: str, font_file: str | None) -> np.ndarray:
    p = pv.Plotter(off_screen=True, window_size=(200, 120))
    p.set_background("white")
    p.add_point_labels(np.array([[0.0, 0.0, 0.0]]), [text], font_size=48, font_file=font_file, text_color="black",
                       shape_opacity=0.0, show_points=False, always_visible=True)
    img = p.screenshot(return_img=True)
    p.close()
    return img[..., 0]


def test_vtk_draws_chinese_labels_with_the_cjk_font_and_drops_them_without():
    font = label_font_file(["北门"])
    assert font is not None, "no CJK font on this system: install fonts-wqy-microhei (scripts/setup.sh)"
    north, gate = _label_image("北", font), _label_image("门", font)
    assert (north < 128).sum() > 50 and (north != gate).sum() > 50  # two different glyphs, drawn
    # VTK's built-in font draws nothing for them: the reason for the font file.
    assert (_label_image("北", None) < 128).sum() < 10


def test_scene_renderer_gives_chinese_gate_labels_the_cjk_font(qapp):
    from twin.view.render import SceneRenderer
    from tests.agents.station.conftest import X0, Y0, make_city

    gates = [{"id": "北门", "kind": "exit", "open": True,
              "geometry": shapely.LineString([(X0 + 10, Y0 + 30), (X0 + 14, Y0 + 30)])},
             {"id": "S1", "kind": "exit", "open": True,
              "geometry": shapely.LineString([(X0 + 28, Y0), (X0 + 32, Y0)])}]
    plotter = pv.Plotter(off_screen=True, window_size=(320, 240))
    try:
        r = SceneRenderer(plotter)
        r.set_city(make_city(gates=gates))
        # Each label actor draws a vtkPointSetToLabelHierarchy; its text property holds the font file.
        files = {a.GetMapper().GetInputConnection(0, 0).GetProducer().GetTextProperty().GetFontFile()
                 for a in r.actors["labels"]}
        assert label_font_file(["北门"]) in files
    finally:
        plotter.close()
