"""The 3D view: a pyvistaqt QtInteractor drawing a SceneRenderer, with camera presets, fly-to and
click picking (a click that does not drag picks; a drag rotates as usual)."""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget
from pyvistaqt import QtInteractor

from twin.view.render import SceneRenderer


class Viewport(QWidget):
    picked = Signal(object)  # dict of attributes, or None

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.plotter = QtInteractor(self, auto_update=False)
        lay.addWidget(self.plotter.interactor)
        self.renderer = SceneRenderer(self.plotter)
        self.plotter.enable_anti_aliasing("fxaa")
        self._press = None
        self.tool = None  # a MapTool (app/map_tools.py) that takes the clicks instead of the selection
        iren = self.plotter.iren
        iren.add_observer("LeftButtonPressEvent", self._on_press)
        iren.add_observer("LeftButtonReleaseEvent", self._on_release)
        self._render_pending = False
        # Ripples: a slow tick while a rippled_surface field is shown (off in tests: CITYTWIN_NO_ANIMATION).
        self.anim = QTimer(self)
        self.anim.setInterval(100)
        self.anim.timeout.connect(self._tick)
        if not os.environ.get("CITYTWIN_NO_ANIMATION"):
            self.anim.start()

    # -- rendering -----------------------------------------------------------------------------
    def request_render(self) -> None:
        """Coalesce many updates into one render on the next event-loop turn."""
        if not self._render_pending:
            self._render_pending = True
            QTimer.singleShot(0, self._do_render)

    def _do_render(self) -> None:
        if self._render_pending:  # not yet done by flush_render
            self._render_pending = False
            self.render_now()

    def flush_render(self) -> None:
        """Render now if a render was requested (so its cost is measured where it is caused)."""
        self._do_render()

    def render_now(self) -> None:
        self.plotter.render()

    def _tick(self) -> None:
        r = self.renderer
        if r.field_shader is not None and r.field_kind == "surface" and r.is_layer_visible("field"):
            r.tick(0.1)
            self.request_render()

    # -- scene ---------------------------------------------------------------------------------
    def set_city(self, city):
        scene = self.renderer.set_city(city)
        self.render_now()
        return scene

    def set_layer_visible(self, layer: str, visible: bool) -> None:
        self.renderer.set_layer_visible(layer, visible)
        self.request_render()

    def show_frame(self, frame, field_name: str | None = None, field=None, field_style=None) -> None:
        self.renderer.show_frame(frame, field_name, field, field_style)
        self.request_render()

    def camera(self, preset: str, model_cls=None) -> None:
        if preset == "aoi":
            self.renderer.view_area_of_interest(model_cls)
        elif preset == "reset":
            self.renderer.camera_preset("oblique")
        else:
            self.renderer.camera_preset(preset)
        self.render_now()

    def fly_to_world(self, wx: float, wy: float, distance: float = 250.0) -> None:
        s = self.renderer.scene
        xl, yl = s.to_local(wx, wy)
        self.renderer.fly_to(float(xl), float(yl), distance)
        self.render_now()

    # -- picking -------------------------------------------------------------------------------
    # The positions come from the interactor: pyvista registers the release observer on the
    # interactor style (the interactor swallows release events), which has no event position.
    def _on_press(self, obj, event):
        self._press = self.plotter.iren.interactor.GetEventPosition()

    def _on_release(self, obj, event):
        pos = self.plotter.iren.interactor.GetEventPosition()
        if self._press is None:
            return
        dx, dy = pos[0] - self._press[0], pos[1] - self._press[1]
        self._press = None
        if dx * dx + dy * dy <= 16:
            self.click_display(*pos)

    def click_display(self, x: int, y: int) -> None:
        """A click at display pixel (x, y): the active tool's point on the ground, else a pick."""
        if self.tool is None:
            self.pick_display(x, y)
            return
        from .map_tools import ground_point

        point = ground_point(self.renderer, x, y)
        if point is not None:
            self.tool.click(*point)

    def set_tool(self, tool) -> None:
        """Give the map's clicks to ``tool`` (None: clicks select again)."""
        if self.tool is not None and self.tool is not tool:
            self.tool.deactivate()
        self.tool = tool

    def pick_display(self, x: int, y: int) -> dict | None:
        info = self.renderer.pick_display(x, y)
        self.picked.emit(info)
        return info

    def pick_world(self, wx: float, wy: float) -> dict | None:
        info = self.renderer.pick_world(wx, wy)
        self.picked.emit(info)
        return info

    def screenshot(self, path, width: int | None = None, height: int | None = None) -> np.ndarray:
        """Save the 3D view at any resolution (e.g. 3840 × 2160)."""
        return export_screenshot(self.plotter, path, width, height)

    def close_plotter(self) -> None:
        self.anim.stop()
        try:
            self.plotter.close()
        except Exception:
            pass


def export_screenshot(plotter, path, width=None, height=None) -> np.ndarray:
    """Render ``plotter`` to an image of width × height (default: the window) and write it.

    Renders at an integer magnification of the window (VTK tiles it), then resamples to the exact
    size, so labels and line widths scale with the image.
    """
    from PIL import Image

    w0, h0 = plotter.window_size
    if width is None or height is None:
        img = plotter.screenshot(None, return_img=True)
    else:
        # Match the aspect of the requested image by rendering a same-aspect magnified view.
        scale = int(np.ceil(max(width / max(w0, 1), height / max(h0, 1))))
        img = plotter.screenshot(None, return_img=True, scale=max(1, scale))
        im = Image.fromarray(np.asarray(img))
        # Crop to the requested aspect, centred, then resize.
        W, H = im.size
        target = width / height
        if W / H > target:
            nw = int(round(H * target))
            im = im.crop(((W - nw) // 2, 0, (W - nw) // 2 + nw, H))
        else:
            nh = int(round(W / target))
            im = im.crop((0, (H - nh) // 2, W, (H - nh) // 2 + nh))
        im = im.resize((width, height), Image.LANCZOS)
        img = np.asarray(im)
    if path is not None:
        Image.fromarray(np.asarray(img)).save(str(path))
    return np.asarray(img)
