"""Video export: one run, or runs side by side, as an H.264 MP4 (imageio-ffmpeg, which ships its own
ffmpeg), with the time stamp and the headline tiles burnt in. No Qt here: the CLI (`citytwin
render`) and the app (File → Export video, in a worker process) both call ``render_video``.

Each variant is re-run (``twin.runs.replay.RunSource``) and drawn by a ``SceneRenderer`` in its own
off-screen plotter; one camera serves all views. The frame is composed with Pillow: the views side
by side on top, a band of tiles below (headline KPIs of each variant, with the difference from the
baseline and the alert colours of the scenario's rules), the time stamp and the variant names.
The file is written beside ``out`` under a temporary name and moved into place only when complete:
a cancel or Ctrl-C leaves no half-written video.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.view.alerts import AlertMonitor, Places
from twin.core.formats import fmt_number as fmt_value
from twin.core.formats import time_label
from twin.core.formats import kpi_label
from twin.view.video_spec import VideoSpec, time_span

BAR_SHARE = 0.2  # of the frame's height: the tiles band
UI_DARK = {"bg": (16, 21, 28), "tile": (31, 39, 50), "text": (236, 240, 245), "muted": (150, 162, 178)}
LEVEL_RGB = {0: None, 1: (255, 176, 0), 2: (232, 17, 45)}
DELTA_RGB = {"better": (64, 190, 100), "worse": (240, 90, 90), None: (150, 162, 178)}


class VideoCancelled(Exception):
    """The export was cancelled; nothing was written."""


@dataclass
class VideoResult:
    path: Path
    frames: int
    size: tuple[int, int]
    fps: float
    wall_s: float
    render_s: float  # simulating and drawing
    encode_s: float  # handing frames to the encoder (ffmpeg encodes in parallel, in its own process)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s else math.nan


def _font(size_px: int, bold: bool = False):
    from matplotlib import font_manager
    from PIL import ImageFont

    prop = font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal")
    return ImageFont.truetype(font_manager.findfont(prop), max(8, int(size_px)))


class OffscreenView:
    """One variant's 3D view in an off-screen plotter."""

    def __init__(self, city, scene, model_cls, size: tuple[int, int], dark: bool, font_scale: float):
        import pyvista as pv

        from twin.view.render import SceneRenderer

        self.plotter = pv.Plotter(off_screen=True, window_size=list(size))
        self.renderer = SceneRenderer(self.plotter)
        self.renderer.font_scale = font_scale
        self.renderer.set_city(city, scene)
        self.renderer.set_model(model_cls)
        self.renderer.set_theme(dark)

    def image(self) -> np.ndarray:
        self.plotter.render()
        return np.asarray(self.plotter.screenshot(None, return_img=True))[..., :3]

    def close(self) -> None:
        self.plotter.close()


def headline_kpis(model_cls, limit: int = 4) -> list:
    heads = [k for k in model_cls.kpis if k.headline and not k.keyed] or [k for k in model_cls.kpis if not k.keyed]
    return heads[:limit]


def _verdict(delta: float, better: str | None) -> str | None:
    if not delta or better not in ("lower", "higher"):
        return None
    return "better" if (delta < 0) == (better == "lower") else "worse"


class Overlay:
    """Time stamp, variant names and the tiles band, drawn with Pillow over the composed views."""

    def __init__(self, size: tuple[int, int], n_views: int, model_cls, title: str):
        w, h = size
        self.size, self.n = size, n_views
        self.bar_h = int(round(h * BAR_SHARE))
        self.view_w, self.view_h = w // n_views, h - self.bar_h
        self.kpis = headline_kpis(model_cls)
        self.title = title
        self.clock_start_s = getattr(model_cls, "clock_start_s", None)  # a model's own day (set per run)
        u = h / 1080.0
        self.u = u
        self.f_clock = _font(46 * u, bold=True)
        self.f_label = _font(30 * u, bold=True)
        self.f_value = _font(40 * u, bold=True)
        self.f_caption = _font(19 * u)
        self.f_small = _font(18 * u)

    def view_sizes(self) -> list[tuple[int, int]]:
        return [(self.view_w, self.view_h)] * self.n

    def compose(self, images: list[np.ndarray], labels: list[str], time_s: float, values: list[dict],
                levels: list[dict], alerts: list[list]) -> np.ndarray:
        from PIL import Image, ImageDraw

        w, h = self.size
        canvas = Image.new("RGB", (w, h), UI_DARK["bg"])
        for i, img in enumerate(images):
            canvas.paste(Image.fromarray(np.ascontiguousarray(img)), (i * self.view_w, 0))
        d = ImageDraw.Draw(canvas, "RGBA")
        u = self.u
        for i in range(1, self.n):  # a rule between views
            d.rectangle([i * self.view_w - int(2 * u), 0, i * self.view_w + int(2 * u), self.view_h], fill=UI_DARK["bg"])
        # time stamp, bottom left of the views (the legend holds the top left); names, top centre of each view
        clock = time_label(time_s, self.clock_start_s)
        pad = int(14 * u)
        bb = d.textbbox((0, 0), clock, font=self.f_clock)
        cy = self.view_h - bb[3] - 3 * pad
        d.rounded_rectangle([pad, cy, pad + bb[2] + 2 * pad, cy + bb[3] + 2 * pad], radius=int(10 * u),
                            fill=(0, 0, 0, 190))
        d.text((2 * pad, cy + pad // 2), clock, font=self.f_clock, fill=UI_DARK["text"])
        for i, label in enumerate(labels):
            tb = d.textbbox((0, 0), label, font=self.f_label)
            x = i * self.view_w + (self.view_w - (tb[2] - tb[0])) // 2
            y = pad
            d.rounded_rectangle([x - pad, y, x + tb[2] + pad, y + tb[3] + pad], radius=int(8 * u), fill=(0, 0, 0, 170))
            d.text((x, y + pad // 3), label, font=self.f_label, fill=UI_DARK["text"])
        if self.title:
            tb = d.textbbox((0, 0), self.title, font=self.f_small)
            tx, ty = w - tb[2] - 2 * pad, self.view_h - tb[3] - 2 * pad
            d.rounded_rectangle([tx - pad, ty - pad // 2, w - pad, ty + tb[3] + pad], radius=int(8 * u),
                                fill=(0, 0, 0, 170))
            d.text((tx, ty), self.title, font=self.f_small, fill=(230, 230, 230))
        # tiles band
        y0 = self.view_h
        d.rectangle([0, y0, w, h], fill=UI_DARK["bg"])
        for i in range(self.n):
            self._tiles(d, i, values[i], values[0] if i else None, levels[i], alerts[i])
        return np.asarray(canvas)

    def _tiles(self, d, i, vals, base, levels, alerts) -> None:
        u, gap = self.u, int(10 * self.u)
        x0, y0 = i * self.view_w + gap, self.view_h + gap
        n = len(self.kpis) + 1
        tw = (self.view_w - gap * (n + 1)) // n
        th = self.bar_h - 2 * gap
        for j, k in enumerate(self.kpis):
            x = x0 + j * (tw + gap)
            lvl = levels.get(k.name, 0)
            edge = LEVEL_RGB[lvl]
            d.rounded_rectangle([x, y0, x + tw, y0 + th], radius=int(10 * u),
                                fill=tuple(int(c * 0.35) for c in edge) if edge else UI_DARK["tile"],
                                outline=edge or (60, 72, 88), width=max(2, int((5 if lvl else 2) * u)))
            v = vals.get(k.name)
            inner = tw - 2 * gap
            d.text((x + gap, y0 + gap), _fit(d, fmt_value(v) if v is not None else "–", self.f_value, inner),
                   font=self.f_value, fill=UI_DARK["text"])
            unit = f" [{k.unit}]" if k.unit and k.unit != "-" else ""
            d.text((x + gap, y0 + th - int(30 * u)), _fit(d, kpi_label(k.name) + unit, self.f_caption, inner),
                   font=self.f_caption, fill=UI_DARK["muted"])
            if base is not None and isinstance(v, (int, float)) and isinstance(base.get(k.name), (int, float)):
                delta = float(v) - float(base[k.name])
                txt = f"Δ {'+' if delta > 0 else ''}{fmt_value(delta)}"
                d.text((x + gap, y0 + int(58 * u)), txt, font=self.f_small, fill=DELTA_RGB[_verdict(delta, k.better)])
        # the alert tile: how many items are amber and red, and the worst
        x = x0 + len(self.kpis) * (tw + gap)
        worst = alerts[0] if alerts else None
        lvl = worst.level if worst else 0
        edge = LEVEL_RGB[lvl]
        d.rounded_rectangle([x, y0, x + tw, y0 + th], radius=int(10 * u),
                            fill=tuple(int(c * 0.35) for c in edge) if edge else UI_DARK["tile"],
                            outline=edge or (60, 72, 88), width=max(2, int((5 if lvl else 2) * u)))
        reds = sum(a.level == 2 for a in alerts)
        ambers = sum(a.level == 1 for a in alerts)
        inner = tw - 2 * gap
        head = "no alerts" if not alerts else f"{reds} red"
        d.text((x + gap, y0 + gap), _fit(d, head, self.f_value, inner), font=self.f_value, fill=UI_DARK["text"])
        if alerts:
            d.text((x + gap, y0 + int(58 * u)), _fit(d, f"{ambers} amber", self.f_small, inner), font=self.f_small,
                   fill=UI_DARK["text"])
        if worst is not None:
            d.text((x + gap, y0 + int(84 * u)), _fit(d, worst.text(), self.f_small, inner), font=self.f_small,
                   fill=UI_DARK["text"])
        d.text((x + gap, y0 + th - int(30 * u)), "alerts", font=self.f_caption, fill=UI_DARK["muted"])


def _fit(d, text: str, font, width: int) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if d.textlength(text, font=font) <= width:
        return text
    while text and d.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _first_field(model_cls, snap) -> str | None:
    for st in model_cls.field_styles:
        if st.name in (snap.fields or {}):
            return st.name
    return next(iter(snap.fields), None) if snap.fields else None


def render_video(sources, out, spec: VideoSpec, progress=None, should_stop=None, camera=None) -> VideoResult:
    """Re-run ``sources`` (``twin.runs.replay.RunSource``; the first is the reference for differences) and
    write the video to ``out``. ``progress(i, n)`` after each frame; ``should_stop()`` polled (a
    cancel raises VideoCancelled); ``camera``: a pyvista camera position for every view (default:
    the model's area of interest)."""
    import imageio_ffmpeg

    from twin.core.files import atomic_file
    from twin.view.scene import build_scene

    from twin.view.render import difference_field

    started = time.perf_counter()
    out = Path(out)
    sc0 = sources[0].scenario
    starts = [float(s.state.time_s) if s.state is not None else 0.0 for s in sources]
    start, end = time_span(spec, starts, sc0.duration_s)
    times = spec.frame_times(start, end)
    runs = [s.make_run() for s in sources]
    model_cls = type(runs[0].model)
    city = sc0.load_city()
    scene = build_scene(city)
    overlay = Overlay(spec.size, len(sources), model_cls, sc0.name)
    overlay.clock_start_s = runs[0].model.clock_start_s  # the time of day, as the window shows it
    font_scale = max(1.0, overlay.view_h / 900)
    views = [OffscreenView(city, scene, model_cls, sz, spec.dark, font_scale) for sz in overlay.view_sizes()]
    places = Places(city)
    monitors = [AlertMonitor(tuple(s.scenario.alerts), places) for s in sources]
    if camera is None:
        views[0].renderer.view_area_of_interest(model_cls)
        camera = views[0].plotter.camera_position
    for v in views:
        v.plotter.camera_position = camera
        v.plotter.renderer.ResetCameraClippingRange()
    render_s = encode_s = 0.0
    w, h = spec.size
    try:
        with atomic_file(out, "path") as tmp:
            writer = imageio_ffmpeg.write_frames(
                str(tmp), (w, h), fps=spec.fps, codec="libx264", quality=None, macro_block_size=2,
                pix_fmt_in="rgb24", pix_fmt_out="yuv420p", ffmpeg_log_level="error",
                output_params=["-crf", str(spec.crf), "-preset", "veryfast", "-movflags", "+faststart", "-f", "mp4"])
            writer.send(None)
            try:
                for i, t in enumerate(times):
                    if should_stop is not None and should_stop():
                        raise VideoCancelled("video export cancelled; nothing was written")
                    t0 = time.perf_counter()
                    snaps = []
                    for run in runs:
                        run.advance(float(t))
                        snaps.append(run.model.snapshot())
                    field0 = _first_field(model_cls, snaps[0])
                    images, values, levels, alerts = [], [], [], []
                    for k, (view, snap, mon) in enumerate(zip(views, snaps, monitors)):
                        diff = None
                        if spec.difference and k and field0 and field0 in snap.fields:
                            diff = difference_field(snap.fields[field0], snaps[0].fields[field0],
                                                    model_cls.field_style(field0))
                        view.renderer.show_frame(snap, field0, *(diff or (None, None)))
                        mon.update(snap)
                        view.renderer.set_alert_markers(mon.active)
                        images.append(view.image())
                        kp = run_kpis(snap)
                        values.append(kp)
                        levels.append({kk.name: mon.kpi_level(kk.name) for kk in overlay.kpis})
                        alerts.append(mon.active)
                    frame = overlay.compose(images, [s.label for s in sources], float(snaps[0].time_s), values,
                                            levels, alerts)
                    t1 = time.perf_counter()
                    writer.send(np.ascontiguousarray(frame, dtype=np.uint8))
                    t2 = time.perf_counter()
                    render_s += t1 - t0
                    encode_s += t2 - t1
                    if progress is not None:
                        progress(i + 1, len(times))
            finally:
                writer.close()
    finally:
        for v in views:
            v.close()
    return VideoResult(out, len(times), (w, h), spec.fps, time.perf_counter() - started, render_s, encode_s)


def run_kpis(snap) -> dict:
    return {k: v for k, v in (snap.kpis or {}).items() if not isinstance(v, dict)}


def describe(result: VideoResult) -> str:
    return (f"{result.path}: {result.frames} frames at {result.fps:g} fps, {result.size[0]}x{result.size[1]}, "
            f"{result.frames / result.fps:.1f} s of video, made in {result.wall_s:.1f} s "
            f"({result.frames_per_s:.2f} frames/s; drawing {result.render_s:.1f} s, encoding {result.encode_s:.1f} s)")


__all__ = ["VideoCancelled", "VideoResult", "describe", "render_video"]
