"""What a video export is asked to do (`citytwin render`, the app's File → Export video), checked
before anything is rendered or written. The rendering itself lives with the 3D view (twin/view/video.py).

Time: a video of ``length_s`` seconds at ``fps`` has ``round(length_s × fps)`` frames; frame i shows
the simulation at ``start + (end − start) × i / (n − 1)`` (moved up onto the model's time step), so the
first frame is the start and the last the end. ``speed`` (simulated seconds per video second) sets
the length instead: ``length_s = (end − start) / speed``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.core.errors import UserError

NAMED_SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "hd": (1920, 1080), "1440p": (2560, 1440),
               "4k": (3840, 2160), "2160p": (3840, 2160), "uhd": (3840, 2160)}
MAX_SIDE = 7680
MAX_FRAMES = 100_000


@dataclass(frozen=True)
class VideoSpec:
    size: tuple[int, int] = (1920, 1080)
    fps: float = 30.0
    length_s: float | None = 30.0
    speed: float | None = None  # simulated seconds per video second (instead of length_s)
    start_s: float | None = None  # default: where the runs start (T for a branch's futures)
    end_s: float | None = None  # default: the scenario's end
    dark: bool = True
    difference: bool = False  # draw the intervention's field as (intervention − baseline)
    crf: int = 20  # H.264 quality: 18 visually lossless ... 28 small

    def n_frames(self, start: float, end: float) -> int:
        length = (end - start) / self.speed if self.speed else self.length_s
        return max(2, int(round(length * self.fps)))

    def frame_times(self, start: float, end: float) -> np.ndarray:
        return start + (end - start) * np.arange(self.n_frames(start, end)) / (self.n_frames(start, end) - 1)


def parse_size(text: str) -> tuple[int, int]:
    """``3840x2160``, ``1920×1080``, ``1080p`` or ``4K``; both sides even (H.264's 4:2:0 needs it)."""
    t = str(text).strip().lower()
    if t in NAMED_SIZES:
        return NAMED_SIZES[t]
    m = re.fullmatch(r"(\d+)\s*[x×]\s*(\d+)", t)
    if not m:
        raise UserError(f"--size {text!r}: write WIDTHxHEIGHT in pixels, e.g. 1920x1080 or 3840x2160 (or 1080p, 4K).")
    w, h = int(m.group(1)), int(m.group(2))
    if not (16 <= w <= MAX_SIDE and 16 <= h <= MAX_SIDE):
        raise UserError(f"--size {text}: each side must be between 16 and {MAX_SIDE} pixels.")
    if w % 2 or h % 2:
        raise UserError(f"--size {text}: both sides must be even numbers (H.264 video needs it), e.g. "
                        f"{w + w % 2}x{h + h % 2}.")
    return w, h


def check_video(out, size="1920x1080", fps: float = 30.0, length_s: float | None = None, speed: float | None = None,
                start_s: float | None = None, end_s: float | None = None, **kw) -> VideoSpec:
    """The video options, checked; ``out`` must be a new or replaceable .mp4 file in an existing folder."""
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise UserError(f"--out {out}: the video is an MP4 file; give a name ending in .mp4.")
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; give a file name ending in .mp4.")
    if not out.parent.exists():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist; create it or give another path.")
    w, h = parse_size(size) if not isinstance(size, tuple) else size
    for name, v, lo in (("--fps", fps, 1), ("--length-s", length_s, 0), ("--speed", speed, 0)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0
                              or (name == "--fps" and not lo <= v <= 240)):
            raise UserError(f"{name} {v}: must be a positive number" + (" up to 240." if name == "--fps" else "."))
    if length_s is not None and speed is not None:
        raise UserError("give --length-s (the video's length) or --speed (simulated seconds per video second), "
                        "not both.")
    if length_s is None and speed is None:
        length_s = 30.0
    if length_s is not None and length_s * fps > MAX_FRAMES:
        raise UserError(f"--length-s {length_s:g} at {fps:g} fps is {length_s * fps:,.0f} frames; at most "
                        f"{MAX_FRAMES:,} fit one export.")
    for name, v in (("--from", start_s), ("--to", end_s)):
        if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0):
            raise UserError(f"{name} {v}: give a time in seconds, at least 0.")
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise UserError(f"--to {end_s:g} must come after --from {start_s:g}.")
    return VideoSpec((w, h), float(fps), length_s, speed, start_s, end_s, **kw)


def time_span(spec: VideoSpec, starts: list[float], duration_s: float) -> tuple[float, float]:
    """The simulated span a video shows: from where every run has started to the end (or as asked)."""
    start = max(starts) if spec.start_s is None else spec.start_s
    end = duration_s if spec.end_s is None else min(spec.end_s, duration_s)
    if start < max(starts) - 1e-9:
        raise UserError(f"--from {start:g}: the runs start at {max(starts):g} s (a branch's futures start at T); "
                        "give a later time.")
    if end <= start:
        raise UserError(f"nothing to film: the span {start:g} s to {end:g} s is empty (the run lasts "
                        f"{duration_s:g} s).")
    if spec.speed is not None and (end - start) / spec.speed * spec.fps > MAX_FRAMES:
        raise UserError(f"--speed {spec.speed:g}: {end - start:g} simulated seconds would take more than "
                        f"{MAX_FRAMES:,} frames; raise --speed.")
    return start, end
