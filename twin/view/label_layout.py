"""One placement for the labels of every layer: where labels of different layers would cover each
other on screen, only the one of the more urgent layer is drawn.

VTK's ``vtkLabelPlacementMapper`` drops a label that would overlap another of the same actor, but each
layer's labels are their own actor (each layer has its own colours), so a value label was drawn over
a place name, an alert over both. Before every render this pass projects the anchors of all label
sets, measures each text as VTK will draw it (``vtkTextRenderer``), keeps a label only if its box is
clear of the legends and colour bars and of the boxes already kept, more urgent sets first and each set in its own order, and hands each
set's label hierarchy only the labels it kept. A label that does not fit up and to the right of its
anchor, where VTK puts it, may go to its left or below it (its anchor is moved on screen); one that
would be cut by the window's edge in every place is not drawn. It redoes this only when the camera, the window size
or a set has changed: a few hundred labels cost well under a millisecond of numpy then.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyvista as pv
from vtkmodules.vtkRenderingCore import vtkTextRenderer

# a clear gap between kept boxes, in pixels, so neighbouring labels stay readable
GAP_PX = 2
# where a label may go, as shares of its box's width and height from its anchor, in the order tried:
# up and right of it (where VTK puts it), left, below, below left (a map's usual candidate positions)
SHIFTS = np.array([(0.0, 0.0), (-1.0, 0.0), (0.0, -1.0), (-1.0, -1.0)])


@dataclass
class LabelSet:
    actor: object  # the vtkActor2D pyvista's add_point_labels made
    hierarchy: object  # its vtkPointSetToLabelHierarchy, fed the kept labels
    points: np.ndarray  # (n, 3) scene coordinates of the anchors
    texts: list
    priority: int  # lower is more urgent
    order: int  # sets of equal priority: the earlier first
    sizes: np.ndarray = field(default=None)  # (n, 2) width, height of each text's box in pixels
    kept: np.ndarray = field(default=None)
    drawn_at: np.ndarray = field(default=None)  # the anchors handed to VTK (moved where a label went aside)


class LabelLayout:
    """The labels of one renderer. ``add`` a set after pyvista's ``add_point_labels``; the rest runs
    on its own before each render."""

    def __init__(self, renderer):
        self.renderer = renderer
        self.sets: dict[int, LabelSet] = {}  # by the actor's address
        self._count = 0
        self._key = None
        self._text = vtkTextRenderer()
        renderer.AddObserver("StartEvent", self._before_render)

    def add(self, actor, points, texts, priority: int) -> None:
        mapper = actor.GetMapper()
        hierarchy = mapper.GetInputAlgorithm()
        margin = mapper.GetMargin()
        tprop = hierarchy.GetTextProperty()
        dpi = self._dpi()
        sizes = np.array([self._box(tprop, str(t), dpi) for t in texts], dtype=float).reshape(-1, 2) + 2 * margin
        self._count += 1
        self.sets[id(actor)] = LabelSet(actor, hierarchy, np.asarray(points, float).reshape(-1, 3), list(texts),
                                        priority, self._count, sizes)
        self._key = None

    def layout(self) -> None:
        """Choose the labels to draw for the current camera (called before each render)."""
        ren = self.renderer
        self.sets = {k: s for k, s in self.sets.items() if ren.HasViewProp(s.actor)}
        cam = ren.GetActiveCamera()
        w, h = ren.GetSize()
        visible = tuple(sorted(k for k, s in self.sets.items() if s.actor.GetVisibility()))
        key = (cam.GetMTime(), w, h, visible, tuple(self.sets), self._panels().tobytes())
        if key == self._key or not w or not h:
            return
        self._key = key
        matrix = np.array([[cam.GetCompositeProjectionTransformMatrix(ren.GetTiledAspectRatio(), -1, 1).GetElement(i, j)
                            for j in range(4)] for i in range(4)])
        taken = self._panels()  # x0, y0, x1, y1 of the boxes kept so far: first the legends and colour bars
        for s in sorted(self.sets.values(), key=lambda s: (s.priority, s.order)):
            keep = np.zeros(len(s.texts), bool)
            points = s.points.copy()
            if s.actor.GetVisibility() and len(s.texts):
                xy, ndc_z, in_front = _to_display(matrix, s.points, w, h)
                for i in np.flatnonzero(in_front):
                    for shift in SHIFTS * s.sizes[i]:
                        x0, y0 = xy[i] + shift
                        x1, y1 = x0 + s.sizes[i, 0], y0 + s.sizes[i, 1]
                        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:  # cut by the window's edge: another place
                            continue
                        if not len(taken) or not np.any((taken[:, 0] < x1 + GAP_PX) & (x0 < taken[:, 2] + GAP_PX)
                                                         & (taken[:, 1] < y1 + GAP_PX) & (y0 < taken[:, 3] + GAP_PX)):
                            keep[i] = True
                            taken = np.vstack([taken, (x0, y0, x1, y1)])
                            if shift.any():  # VTK puts the lower left at the anchor: move the anchor
                                points[i] = _to_scene(matrix, x0, y0, ndc_z[i], w, h)
                            break
                keep |= ~in_front  # behind the camera VTK draws nothing anyway; keeps the set's input stable
            if s.kept is None or not np.array_equal(keep, s.kept) or not np.array_equal(points, s.drawn_at):
                s.kept, s.drawn_at = keep, points
                s.hierarchy.SetInputData(_label_points(points[keep], [t for t, k in zip(s.texts, keep) if k]))

    def _panels(self) -> np.ndarray:
        """Where the legends and colour bars lie over the scene (viewport pixels): no label goes under them."""
        ren = self.renderer
        ox, oy = ren.GetOrigin()
        boxes = []
        props = ren.GetViewProps()
        for i in range(props.GetNumberOfItems()):
            a = props.GetItemAsObject(i)
            if a.GetVisibility() and (a.IsA("vtkLegendBoxActor") or a.IsA("vtkScalarBarActor")):
                x0, y0 = a.GetPositionCoordinate().GetComputedDisplayValue(ren)
                x1, y1 = a.GetPosition2Coordinate().GetComputedDisplayValue(ren)
                boxes.append((min(x0, x1) - ox, min(y0, y1) - oy, max(x0, x1) - ox, max(y0, y1) - oy))
        return np.array(boxes, dtype=float).reshape(-1, 4)

    def _before_render(self, *_):
        self.layout()

    def _dpi(self) -> int:
        win = self.renderer.GetRenderWindow()
        return win.GetDPI() if win is not None else 72

    def _box(self, tprop, text: str, dpi: int) -> tuple[float, float]:
        bbox = [0, 0, 0, 0]
        if not self._text.GetBoundingBox(tprop, text, bbox, dpi):
            return 0.6 * tprop.GetFontSize() * len(text), 1.2 * tprop.GetFontSize()
        return bbox[1] - bbox[0] + 1, bbox[3] - bbox[2] + 1


def _to_display(matrix: np.ndarray, points: np.ndarray, w: int, h: int):
    """Display pixels (origin lower left) of scene points, their depth (normalised device z), and
    which lie in front of the camera."""
    hom = np.column_stack([points, np.ones(len(points))]) @ matrix.T
    in_front = hom[:, 3] > 1e-9
    ndc = hom[:, :3] / np.where(in_front, hom[:, 3], 1.0)[:, None]
    return np.column_stack([(ndc[:, 0] + 1) * 0.5 * w, (ndc[:, 1] + 1) * 0.5 * h]), ndc[:, 2], in_front


def _to_scene(matrix: np.ndarray, x: float, y: float, ndc_z: float, w: int, h: int) -> np.ndarray:
    """The scene point at display pixel (x, y) and depth ``ndc_z``: an anchor moved on screen."""
    hom = np.linalg.solve(matrix, [2 * x / w - 1, 2 * y / h - 1, ndc_z, 1.0])
    return hom[:3] / hom[3]


def _label_points(points: np.ndarray, texts: list):
    from vtkmodules.vtkCommonCore import vtkStringArray

    poly = pv.PolyData(points if len(points) else np.zeros((0, 3)))
    labels = vtkStringArray()
    labels.SetName("labels")
    for t in texts:
        labels.InsertNextValue(str(t))
    poly.GetPointData().AddArray(labels)
    return poly
