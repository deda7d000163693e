"""`citytwin render`: an MP4 of a run, or of two variants side by side, off screen."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.factories import write_scenario

TOY = ('[parameters]\nwalkers = 40\ndistance_m = 60.0\n\n[[interventions]]\nname = "fast"\n'
       "[interventions.parameters]\nspeed_mps = 3.0\n\n[alerts.many_done]\namber = 5\nred = 10\n")


def cli(*args, **kw):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # off screen, as on a server
    return subprocess.run([sys.executable, "-m", "twin.cli", *map(str, args)], capture_output=True, text=True, env=env,
                          **kw)


def read_video(path):
    """Every frame, decoded again with the library that wrote it (imageio-ffmpeg)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]
    return meta, frames


@pytest.mark.slow
def test_render_writes_a_playable_side_by_side_mp4_of_the_asked_size_and_length(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, TOY, duration_s=40)
    out = tmp_path / "video.mp4"
    r = cli("render", sc, "--intervention", "fast", "--out", out, "--size", "640x360", "--fps", "12",
            "--length-s", "1.5", "--difference", "--quiet")
    assert r.returncode == 0, r.stderr
    meta, frames = read_video(out)
    assert meta["codec"] == "h264" and meta["size"] == (640, 360) and meta["fps"] == 12.0
    assert len(frames) == 18  # 1.5 s × 12 fps
    assert "18 frames at 12 fps, 640x360" in r.stdout
    first, last = frames[0].astype(float), frames[-1].astype(float)
    assert np.abs(first - last).mean() > 1.0  # the picture moves: walkers, clock, tiles
    # the two views differ (baseline left, "fast" right), and the tiles band sits at the bottom
    left, right = frames[-1][:280, :320].astype(float), frames[-1][:280, 320:].astype(float)
    assert np.abs(left - right).mean() > 2.0
    assert not list(tmp_path.glob(".video.mp4.*"))  # no temporary file left beside it


@pytest.mark.slow
def test_render_replays_a_run_folder(tmp_path, tiny_city):
    from twin.cli import main

    sc = write_scenario(tmp_path, tiny_city, TOY, duration_s=30)
    run = tmp_path / "run"
    assert main(["run", str(sc), "--intervention", "fast", "--out", str(run), "--quiet"]) == 0
    out = tmp_path / "run.mp4"
    r = cli("render", run, "--out", out, "--size", "320x180", "--fps", "5", "--speed", "10", "--quiet")
    assert r.returncode == 0, r.stderr
    meta, frames = read_video(out)
    assert meta["size"] == (320, 180) and len(frames) == 15  # 30 simulated s at 10 s per video s, 5 fps


@pytest.mark.slow
@pytest.mark.parametrize("case", ["odd size", "not mp4", "unknown intervention", "no folder", "length and speed",
                                  "not a run"])
def test_bad_render_arguments_exit_2_and_write_nothing(case, tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, TOY, duration_s=30)
    out = tmp_path / "v.mp4"
    args = [sc, "--out", out, "--size", "320x180"]
    expect = ""
    if case == "odd size":
        args, expect = [sc, "--out", out, "--size", "321x180"], "even numbers"
    elif case == "not mp4":
        out = tmp_path / "v.avi"
        args, expect = [sc, "--out", out], "ending in .mp4"
    elif case == "unknown intervention":
        args, expect = args + ["--intervention", "fsat"], 'no intervention named "fsat"'
    elif case == "no folder":
        out = tmp_path / "nowhere" / "v.mp4"
        args, expect = [sc, "--out", out], "does not exist"
    elif case == "length and speed":
        args, expect = args + ["--length-s", "2", "--speed", "3"], "not both"
    else:
        (tmp_path / "empty").mkdir()
        args, expect = [tmp_path / "empty", "--out", out], "neither a run folder"
    r = cli("render", *args, "--quiet")
    assert r.returncode == 2, r.stderr
    assert expect in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*")) if out.parent.exists() else True


@pytest.mark.slow
def _default_sigint() -> None:
    """A suite started in the background by a shell without job control runs with SIGINT ignored, the
    child inherits that, and Python then installs no KeyboardInterrupt handler: Ctrl-C would do
    nothing. A terminal's Ctrl-C reaches a process with the default disposition, so give it that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_leaves_no_half_written_video(tmp_path, tiny_city):
    sc = write_scenario(tmp_path, tiny_city, TOY.replace("walkers = 40", "walkers = 400"), duration_s=600)
    out = tmp_path / "long.mp4"
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err_file:
        p = subprocess.Popen([sys.executable, "-m", "twin.cli", "render", str(sc), "--out", str(out), "--size",
                              "320x180", "--fps", "10", "--length-s", "60"], env=env, stdout=subprocess.DEVNULL,
                             stderr=err_file, text=True, preexec_fn=_default_sigint)
        try:
            # Interrupt once frames are in the temporary file: the progress bar (on stderr) says how
            # many. A condition, not a fixed wait: the first frame needs the model built and the kernels
            # compiled, which takes from seconds to minutes on a loaded machine.
            def frames_written() -> int:
                counts = re.findall(r"(\d+)/\d+ \[", log.read_text(errors="replace"))
                return int(counts[-1]) if counts else 0

            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and p.poll() is None and frames_written() < 3:
                time.sleep(0.05)
            assert frames_written() >= 3 and list(tmp_path.glob(".long.mp4.*.partial")), \
                f"the video never started: {log.read_text()[-2000:]}"
            p.send_signal(signal.SIGINT)
            p.wait(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
    err = log.read_text()
    assert p.returncode == 130, err[-2000:]
    assert "interrupted" in err
    assert not out.exists()
    assert not list(tmp_path.glob(".long.mp4.*"))
