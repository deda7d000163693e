"""`citytwin render` needs nothing of the desktop app: it runs from a copy of the repository without app/.

The renderer the command uses lives in twin/view/ (the app draws with the same one), and the command in
twin/runs/render.py; import-linter keeps twin from importing app statically, and this test keeps it from
reaching app/ any other way (an entry point, importlib).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import write_scenario

ROOT = Path(__file__).resolve().parents[2]
# What the command could need; everything else (app/ above all) stays behind.
COPIED = ("twin", "agents", "citytwin", "shaders", "tests/__init__.py", "tests/toy_model.py")
# The editable install puts this checkout on sys.path through a .pth file: take it off again, so that
# only the copy can be imported.
SITECUSTOMIZE = """import os, sys
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != {root!r}]
"""


def copy_without_app(dest: Path) -> Path:
    for rel in COPIED:
        src, dst = ROOT / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    (dest / "sitecustomize.py").write_text(SITECUSTOMIZE.format(root=os.path.realpath(ROOT)))
    return dest


def in_copy(copy: Path, *args):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # off screen, as on a server
    env["PYTHONPATH"] = str(copy)
    env["CITYTWIN_MODELS"] = "toy=tests.toy_model:ToyModel"
    return subprocess.run([sys.executable, *map(str, args)], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_render_runs_from_a_copy_of_the_repository_without_app(tmp_path, tiny_city):
    copy = copy_without_app(tmp_path / "repo")
    where = in_copy(copy, "-c", "import importlib.util, twin; print(twin.__file__); print(importlib.util.find_spec('app'))")
    assert where.returncode == 0, where.stderr
    twin_file, app_spec = where.stdout.split()[:2]
    assert Path(twin_file).is_relative_to(copy) and app_spec == "None"  # the copy's twin, and no app at all
    sc = write_scenario(tmp_path, tiny_city, "[parameters]\nwalkers = 20\ndistance_m = 30.0\n", duration_s=10)
    out = tmp_path / "video.mp4"
    r = in_copy(copy, "-m", "twin.cli", "render", sc, "--out", out, "--size", "160x90", "--fps", "4",
                "--length-s", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "4 frames at 4 fps, 160x90" in r.stdout
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["size"] == (160, 90) and sum(1 for _ in reader) == 4
