"""Clicking on the map: a ``MapTool`` takes the viewport's clicks (a press and release without a drag;
a drag still turns the camera) as points of the city CRS, found by picking the ground, the floors or
the roofs under the cursor (VTK's cell picker). ``MapSketch`` and ``FeatureOverlay`` draw what is
being drawn and the features being edited above the terrain, on their floor level."""
from __future__ import annotations

import numpy as np
import pyvista as pv
import shapely
from PySide6.QtCore import QTimer


class MapTool:
    """What the map's clicks do while this tool is the viewport's (``Viewport.set_tool``)."""

    def click(self, wx: float, wy: float) -> None:  # a point of the city CRS
        raise NotImplementedError

    def deactivate(self) -> None:
        """The viewport gave the clicks to another tool (or back to the selection)."""


def ground_point(renderer, x: int, y: int) -> tuple[float, float] | None:
    """The map point (city CRS) under display pixel (x, y) (VTK's convention: origin bottom left)."""
    import vtk

    if renderer.scene is None:
        return None
    picker = vtk.vtkCellPicker()
    picker.SetTolerance(0.002)
    if not picker.Pick(x, y, 0, renderer.plotter.renderer):
        return None
    px, py, _ = picker.GetPickPosition()
    wx, wy = renderer.scene.to_world(px, py)
    return float(wx), float(wy)


def _z(renderer, wx, wy, levels=None, lift: float = 0.8) -> np.ndarray:
    """Heights (local scene z) of map points: the terrain, plus their floor's height, plus ``lift``."""
    s, city = renderer.scene, renderer.city
    xl, yl = s.to_local(np.asarray(wx, float), np.asarray(wy, float))
    z = np.asarray(s.elevation(np.atleast_1d(xl), np.atleast_1d(yl)), float) + lift
    if levels is not None:
        z = z + np.array([city.level_z(int(lv)) if lv == lv else 0.0 for lv in np.atleast_1d(levels)])
    return z


def _lines_mesh(renderer, parts: list[np.ndarray], levels: list) -> pv.PolyData:
    """One PolyData of polylines (each an array of map x, y) at their floor's height."""
    pts, cells = [], []
    n = 0
    for xy, lv in zip(parts, levels):
        if len(xy) < 2:
            continue
        z = _z(renderer, xy[:, 0], xy[:, 1], np.full(len(xy), lv))
        xl, yl = renderer.scene.to_local(xy[:, 0], xy[:, 1])
        pts.append(np.column_stack([xl, yl, z]))
        cells.append(np.concatenate([[len(xy)], np.arange(n, n + len(xy))]))
        n += len(xy)
    if not pts:
        return pv.PolyData()
    return pv.PolyData(np.vstack(pts), lines=np.concatenate(cells))


def _points_mesh(renderer, xy: np.ndarray, levels) -> pv.PolyData:
    if not len(xy):
        return pv.PolyData()
    xl, yl = renderer.scene.to_local(xy[:, 0], xy[:, 1])
    return pv.PolyData(np.column_stack([xl, yl, _z(renderer, xy[:, 0], xy[:, 1], levels, lift=1.5)]))


class MapSketch:
    """The shape being drawn: its points and the line (or closed outline) through them."""

    def __init__(self, viewport, name: str = "map_sketch", colour: str = "#ff7f0e"):
        self.viewport, self.name, self.colour = viewport, name, colour

    def show(self, points, closed: bool = False, level: int = 0) -> None:
        r = self.viewport.renderer
        self.clear(render=False)
        if r.scene is None or not len(points):
            self.viewport.request_render()
            return
        xy = np.asarray(points, float)
        p = self.viewport.plotter
        p.add_mesh(_points_mesh(r, xy, np.full(len(xy), level)), color=self.colour, point_size=14,
                   render_points_as_spheres=True, pickable=False, name=f"{self.name}_points", reset_camera=False,
                   render=False)
        if len(xy) > 1:
            ring = np.vstack([xy, xy[:1]]) if closed and len(xy) > 2 else xy
            p.add_mesh(_lines_mesh(r, [ring], [level]), color=self.colour, line_width=5, render_lines_as_tubes=True,
                       pickable=False, name=f"{self.name}_line", reset_camera=False, render=False)
        self.viewport.request_render()

    def clear(self, render: bool = True) -> None:
        for part in ("points", "line"):
            self.viewport.plotter.remove_actor(f"{self.name}_{part}", reset_camera=False, render=False)
        if render:
            self.viewport.request_render()


class FeatureOverlay:
    """The features of the layer being edited, drawn over the scene (the selected one in another
    colour), rebuilt after every edit: the scene itself shows the package as last saved."""

    def __init__(self, viewport, name: str = "edit_overlay", colour: str = "#1f77b4", selected: str = "#e377c2"):
        self.viewport, self.name, self.colour, self.selected_colour = viewport, name, colour, selected

    def show(self, gdf, selected: int | None = None) -> None:
        r = self.viewport.renderer
        self.clear(render=False)
        if r.scene is None or gdf is None or not len(gdf):
            self.viewport.request_render()
            return
        levels = gdf["level"].to_numpy() if "level" in gdf.columns else np.zeros(len(gdf))
        for tag, rows, colour in (("all", [i for i in range(len(gdf)) if i != selected], self.colour),
                                  ("selected", [] if selected is None else [selected], self.selected_colour)):
            parts, part_levels, points, point_levels = [], [], [], []
            for i in rows:
                g = gdf.geometry.iloc[i]
                if g is None or g.is_empty:
                    continue
                lv = levels[i] if levels[i] == levels[i] else 0
                if g.geom_type in ("Point", "MultiPoint"):
                    points.append(shapely.get_coordinates(g))
                    point_levels += [lv] * len(points[-1])
                    continue
                for piece in shapely.get_parts(g):
                    rings = [piece.exterior, *piece.interiors] if piece.geom_type == "Polygon" else [piece]
                    for ring in rings:
                        parts.append(shapely.get_coordinates(ring))
                        part_levels.append(lv)
            width = 4 if tag == "all" else 7
            p = self.viewport.plotter
            if parts:
                p.add_mesh(_lines_mesh(r, parts, part_levels), color=colour, line_width=width,
                           render_lines_as_tubes=True, pickable=False, name=f"{self.name}_{tag}_lines",
                           reset_camera=False, render=False)
            if points:
                p.add_mesh(_points_mesh(r, np.vstack(points), np.array(point_levels)), color=colour,
                           point_size=12 + width, render_points_as_spheres=True, pickable=False,
                           name=f"{self.name}_{tag}_points", reset_camera=False, render=False)
        self.viewport.request_render()

    def clear(self, render: bool = True) -> None:
        for tag in ("all", "selected"):
            for part in ("lines", "points"):
                self.viewport.plotter.remove_actor(f"{self.name}_{tag}_{part}", reset_camera=False, render=False)
        if render:
            self.viewport.request_render()


class FindingMarkers:
    """The city check's findings on the map: a labelled point at each feature a finding names."""

    def __init__(self, viewport, name: str = "check_findings"):
        self.viewport, self.name = viewport, name

    def show(self, places: list[tuple[float, float, str]]) -> None:
        r = self.viewport.renderer
        self.clear(render=False)
        if r.scene is None or not places:
            self.viewport.request_render()
            return
        xy = np.array([(x, y) for x, y, _ in places], float)
        mesh = _points_mesh(r, xy, np.zeros(len(xy)))
        mesh.points[:, 2] += 6.0
        self.viewport.plotter.add_point_labels(mesh, [t for _, _, t in places], point_color="#c0392b", point_size=16,
                                               render_points_as_spheres=True, font_size=14, text_color="#c0392b",
                                               shape_color="white", shape_opacity=0.8, always_visible=True,
                                               pickable=False, name=self.name, reset_camera=False, render=False)
        self.viewport.request_render()

    @property
    def shown(self) -> bool:
        return f"{self.name}-labels" in self.viewport.plotter.actors

    def clear(self, render: bool = True) -> None:
        for part in ("points", "labels"):  # the actors pyvista's add_point_labels makes
            self.viewport.plotter.remove_actor(f"{self.name}-{part}", reset_camera=False, render=False)
        if render:
            self.viewport.request_render()


class VertexHandles:
    """The selected feature's vertices as handles to drag: VTK's contour widget, whose nodes a terrain
    point placer keeps on the ground (lifted to the feature's floor, as the overlay draws it). A drag
    ends, or the Delete key removes the handle under the cursor: ``moved`` gets the new vertices (map
    x, y), and the editor turns them into one checked edit. While a handle is dragged, ``moving`` (if
    given) says whether the shape is valid as it stands; an invalid one is drawn in red."""

    def __init__(self, viewport, moved, moving=None, colour: str = "#e377c2", active: str = "#ff7f0e",
                 invalid: str = "#d62728"):
        import vtk

        self.viewport, self.moved, self.moving = viewport, moved, moving
        self.colour, self.invalid = colour, invalid
        self.closed = False
        self.widget = vtk.vtkContourWidget()
        self.rep = vtk.vtkOrientedGlyphContourRepresentation()
        self.widget.SetRepresentation(self.rep)
        self.rep.SetLineInterpolator(vtk.vtkLinearContourLineInterpolator())  # straight edges, as saved
        self.rep.AlwaysOnTopOn()  # handles over the roofs and floors
        self.rep.GetProperty().SetColor(*_rgb(colour))
        self.rep.GetActiveProperty().SetColor(*_rgb(active))
        self.rep.GetLinesProperty().SetColor(*_rgb(colour))
        self.rep.GetLinesProperty().SetLineWidth(3)
        ball = vtk.vtkSphereSource()  # the handles: balls (the default glyph is a thin cross)
        ball.SetRadius(0.002)  # the representation scales its glyph to the screen: ~25-30 px across at any zoom
        ball.SetThetaResolution(16)
        ball.SetPhiResolution(12)
        ball.Update()
        self.rep.SetCursorShape(ball.GetOutput())
        self.rep.SetActiveCursorShape(ball.GetOutput())
        self.rep.SetHandleSize(7)
        self.placer = vtk.vtkTerrainDataPointPlacer()
        self.rep.SetPointPlacer(self.placer)
        self.widget.ContinuousDrawOff()
        self.widget.AddObserver("StartInteractionEvent", self._start)
        self.widget.AddObserver("EndInteractionEvent", self._end)
        self.widget.AddObserver("InteractionEvent", self._interaction)
        self._dragging = False
        self._terrain = None

    @property
    def shown(self) -> bool:
        return bool(self.widget.GetEnabled())

    def show(self, points, closed: bool, level: float = 0.0) -> None:
        """Handles at ``points`` (map x, y); ``closed``: an area's outline."""
        r = self.viewport.renderer
        self.clear(render=False)
        terrain = self.viewport.plotter.actors.get("terrain")
        if r.scene is None or terrain is None or not len(points):
            return
        if terrain is not self._terrain:  # a city (re)opened: place on its terrain
            self.placer.RemoveAllProps()
            self.placer.AddProp(terrain)
            self._terrain = terrain
        self.placer.SetHeightOffset(0.8 + (r.city.level_z(int(level)) if level else 0.0))  # as _z lifts
        xy = np.asarray(points, float)
        xl, yl = r.scene.to_local(xy[:, 0], xy[:, 1])
        z = _z(r, xy[:, 0], xy[:, 1], np.full(len(xy), level))
        ids = list(range(len(xy))) + ([0] if closed and len(xy) > 2 else [])
        mesh = pv.PolyData(np.column_stack([xl, yl, z]), lines=[len(ids), *ids])
        self.closed = closed
        self.widget.SetInteractor(self.viewport.plotter.iren.interactor)
        self.widget.SetDefaultRenderer(self.viewport.plotter.renderer)
        self.widget.SetCurrentRenderer(self.viewport.plotter.renderer)
        self.widget.On()
        self.widget.Initialize(mesh, 1)  # 1: manipulate, not define
        self.viewport.request_render()

    def nodes(self) -> list[tuple[float, float]]:
        """The handles' map points, as they are now."""
        s = self.viewport.renderer.scene
        out = []
        pos = [0.0, 0.0, 0.0]
        for i in range(self.rep.GetNumberOfNodes()):
            self.rep.GetNthNodeWorldPosition(i, pos)
            x, y = s.to_world(pos[0], pos[1])
            out.append((float(x), float(y)))
        return out

    def display_of(self, index: int) -> tuple[int, int]:
        pos = [0.0, 0.0]
        self.rep.GetNthNodeDisplayPosition(index, pos)
        return int(round(pos[0])), int(round(pos[1]))

    def drag(self, index: int, wx: float, wy: float) -> None:
        """Drag handle ``index`` to map point (wx, wy) with the mouse events a user's drag makes."""
        iren = self.viewport.plotter.iren.interactor
        x0, y0 = self.display_of(index)
        x1, y1 = self.viewport.renderer.world_to_display(wx, wy)
        for x, y, event in ((x0, y0, "MouseMoveEvent"), (x0, y0, "LeftButtonPressEvent"),
                            ((x0 + x1) // 2, (y0 + y1) // 2, "MouseMoveEvent"), (x1, y1, "MouseMoveEvent"),
                            (x1, y1, "LeftButtonReleaseEvent")):
            iren.SetEventInformation(x, y, 0, 0, "\0", 0)
            iren.InvokeEvent(event)

    def press_delete(self, index: int) -> None:
        """The Delete key over handle ``index``, as a user removes a vertex."""
        iren = self.viewport.plotter.iren.interactor
        x, y = self.display_of(index)
        iren.SetEventInformation(x, y, 0, 0, "\0", 0)
        iren.InvokeEvent("MouseMoveEvent")
        iren.SetKeySym("Delete")
        iren.InvokeEvent("KeyPressEvent")

    def _start(self, *_):
        self._dragging = True

    def _end(self, *_):
        if self._dragging:
            self._dragging = False
            self._report()

    def _interaction(self, *_):
        if not self._dragging:  # the Delete key: no drag around it
            self._report()
        elif self.moving is not None:
            self.show_valid(self.moving(self.nodes()))

    def show_valid(self, ok: bool) -> None:
        self.rep.GetLinesProperty().SetColor(*_rgb(self.colour if ok else self.invalid))

    @property
    def valid_shown(self) -> bool:
        return self.rep.GetLinesProperty().GetColor() == _rgb(self.colour)

    def _report(self) -> None:
        # after the widget's event: the edit shows the handles again, which re-initialises the widget
        nodes = self.nodes()
        QTimer.singleShot(0, lambda: self.moved(nodes))

    def clear(self, render: bool = True) -> None:
        if self.widget.GetEnabled():
            self.widget.Off()
        self._dragging = False
        self.show_valid(True)
        if render:
            self.viewport.request_render()


def _rgb(colour: str) -> tuple[float, float, float]:
    return tuple(int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
