"""The command room's figures: the time to branch, how fast the futures run, and video encoding.

    python benchmarks/bench_command_room.py                    # the evening peak, branched at 600 s
    python benchmarks/bench_command_room.py --at 300 --skip-video

1. Time to branch on the evening peak (scenarios/station_evening_peak.toml) at ``--at`` seconds:
   the run gets there once, then
   * snapshot: ``Run.state_bytes()`` (the complete state as a state file in memory);
   * copy: a new run of the intervention built from the city and parameters and the state restored
     into it (``Run(..., state=...)``), the work the app's branch does before the copy can run on.
   Each measured ``--repeat`` times (median). The continued run needs no copy: it goes on.
2. How fast the two futures run ahead: simulated seconds per wall second over ``--ahead`` s, one
   future alone, then both at once in two threads (as the app runs them).
3. Video: frames per second of ``citytwin render`` at 1920 × 1080 (simulating, drawing off screen,
   composing the tiles and encoding), and of the encoder alone (imageio-ffmpeg's libx264, veryfast,
   CRF 20) fed with the same frames.

All on this machine's cores (printed); other work on the machine slows every figure.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))


def branch_figures(scenario: Path, at: float, intervention: str, repeat: int, ahead: float) -> None:
    from twin.core.state_file import state_from_bytes
    from twin.runs.runner import Run
    from twin.scenario.scenario import load_scenario

    sc = load_scenario(scenario)
    t0 = time.perf_counter()
    run = Run(sc)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run.advance(at)
    prefix_s = time.perf_counter() - t0
    print(f"evening peak: model built in {build_s:.2f} s, run to t = {run.time_s:g} s in {prefix_s:.1f} s "
          f"({run.time_s / prefix_s:.2f} simulated s per wall s)", flush=True)
    snaps, copies = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        data = run.state_bytes()
        snaps.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        copy = Run(sc, intervention, state=state_from_bytes(data))
        copies.append(time.perf_counter() - t0)
    snap, cp = statistics.median(snaps), statistics.median(copies)
    print(f"time to branch at {run.time_s:g} s: snapshot {snap:.3f} s ({len(data) / 1e6:.2f} MB state file, "
          f"{run.model.crowd.n} walking, {run.model.N} passengers), copy {cp:.2f} s "
          f"(build + restore of '{intervention}'), total {snap + cp:.2f} s  [median of {repeat}]", flush=True)

    def speed(runs) -> list[float]:
        out = [0.0] * len(runs)

        def go(i, r):
            start, w0 = r.time_s, time.perf_counter()
            r.advance(start + ahead)
            out[i] = (r.time_s - start) / (time.perf_counter() - w0)

        threads = [threading.Thread(target=go, args=(i, r)) for i, r in enumerate(runs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    alone = speed([Run(sc, intervention, state=state_from_bytes(data))])[0]
    both = speed([Run(sc, state=state_from_bytes(data)), Run(sc, intervention, state=state_from_bytes(data))])
    print(f"futures over {ahead:g} s from {run.time_s:g} s: one alone {alone:.2f}× real time; two at once in threads "
          f"{both[0]:.2f}× and {both[1]:.2f}× real time", flush=True)


def video_figures(scenario: Path, intervention: str, frames: int) -> None:
    import imageio_ffmpeg
    import numpy as np

    from twin.view.video import render_video
    from twin.runs.replay import sources_from_scenario
    from twin.scenario.scenario import load_scenario
    from twin.view.video_spec import VideoSpec

    sc = load_scenario(scenario)
    tmp = Path(tempfile.mkdtemp())
    fps = 30.0
    spec = VideoSpec((1920, 1080), fps, length_s=frames / fps, end_s=frames * 2.0)
    res = render_video(sources_from_scenario(sc, intervention), tmp / "side.mp4", spec)
    print(f"render 1920x1080, side by side, {res.frames} frames ({spec.end_s:g} simulated s): "
          f"{res.frames_per_s:.2f} frames/s overall; drawing {res.render_s / res.frames:.3f} s/frame, "
          f"handing to the encoder {res.encode_s / res.frames:.3f} s/frame", flush=True)
    reader = imageio_ffmpeg.read_frames(str(tmp / "side.mp4"))
    meta = next(reader)
    w, h = meta["size"]
    pictures = [np.frombuffer(f, np.uint8).reshape(h, w, 3).copy() for f in reader]
    t0 = time.perf_counter()
    writer = imageio_ffmpeg.write_frames(str(tmp / "enc.mp4"), (w, h), fps=fps, codec="libx264", quality=None,
                                         macro_block_size=2, ffmpeg_log_level="error",
                                         output_params=["-crf", "20", "-preset", "veryfast"])
    writer.send(None)
    for p in pictures:
        writer.send(p)
    writer.close()
    enc = time.perf_counter() - t0
    print(f"encoder alone (libx264 veryfast CRF 20) at 1920x1080: {len(pictures) / enc:.1f} frames/s "
          f"({len(pictures)} frames in {enc:.2f} s)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", type=Path, default=ROOT / "scenarios" / "station_evening_peak.toml")
    ap.add_argument("--at", type=float, default=600.0)
    ap.add_argument("--intervention", default="open more gates")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ahead", type=float, default=60.0)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--skip-branch", action="store_true")
    ap.add_argument("--skip-video", action="store_true")
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}", flush=True)
    if not args.skip_branch:
        branch_figures(args.scenario, args.at, args.intervention, args.repeat, args.ahead)
    if not args.skip_video:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
        video_figures(args.scenario, args.intervention, args.frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
