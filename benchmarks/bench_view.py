"""How fast the 3D view is: launch → demo city on screen, and frame rates while layers update.

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/bench_view.py [--seconds 5]

(re-runs itself under xvfb-run when there is no display). Measures
  1. launch: a fresh `python -m app.main` process until the demo city has rendered in the window
     (CITYTWIN_EXIT_AFTER_LOAD=1), target < 5 s;
  2. frames per second at 1920 × 1080 while 100,000 agent points move every frame (one point cloud,
     arrays rewritten in place);
  3. frames per second while a 1000 × 1000 water-depth field changes every frame (scalars rewritten
     in place, never rebuilt), with the water shader and with the colour-map fallback.
Prints a table; the renderer's name is printed too (llvmpipe = software rendering on the CPU).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "gis_data" / "demo_city"


def launch_time(city: Path, repeats: int = 2) -> tuple[float, str]:
    """Process start → the app prints that the city is on screen (its own exit is not counted)."""
    env = dict(os.environ, CITYTWIN_EXIT_AFTER_LOAD="1", CITYTWIN_NO_DIALOGS="1")
    best, line = float("inf"), ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "app.main", str(city)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        found, took = "", float("inf")
        for ln in proc.stdout:
            if ln.startswith("launch_to_city_s"):
                took, found = time.perf_counter() - t0, ln.strip()
        err = proc.stderr.read()
        if proc.wait(timeout=300) != 0 or not found:
            raise SystemExit(f"app launch failed:\n{err[-3000:]}")
        if took < best:
            best, line = took, found
    return best, line


def fps_loop(plotter, update, seconds: float) -> tuple[float, float, float]:
    """(frames per second, ms per update, ms per render) over ``seconds``."""
    n, t_upd, t_ren = 0, 0.0, 0.0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or n < 3:
        a = time.perf_counter()
        update(n)
        b = time.perf_counter()
        plotter.render_window.Render()  # Plotter.render() skips plotters never shown
        c = time.perf_counter()
        t_upd += b - a
        t_ren += c - b
        n += 1
    return n / (t_upd + t_ren), 1000 * t_upd / n, 1000 * t_ren / n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per frame-rate measurement")
    ap.add_argument("--agents", type=int, default=100_000)
    ap.add_argument("--field", type=int, default=1000, help="field size (cells per side)")
    ap.add_argument("--city", type=Path, default=DEMO)
    ap.add_argument("--no-launch", action="store_true", help="skip the launch measurement")
    args = ap.parse_args()
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run") and not os.environ.get("_BENCH_XVFB"):
        os.environ["_BENCH_XVFB"] = "1"
        return subprocess.call(["xvfb-run", "-a", "-s", "-screen 0 1920x1080x24", sys.executable, *sys.argv])
    if not (args.city / "city.toml").exists():
        raise SystemExit(f"{args.city}: no city package (make demo-city)")

    import numpy as np
    import pyvista as pv

    from twin.view.render import SceneRenderer
    from twin.core.city import City
    from twin.core.grid import GridField

    rows = []
    if not args.no_launch:
        launch, detail = launch_time(args.city)
        rows.append(("launch → demo city on screen", f"{launch:.2f} s", f"target < 5 s; {detail}"))

    t0 = time.perf_counter()
    city = City.load(args.city)
    t_load = time.perf_counter() - t0
    p = pv.Plotter(off_screen=True, window_size=(1920, 1080))
    r = SceneRenderer(p)
    t0 = time.perf_counter()
    scene = r.set_city(city)
    p.render_window.Render()
    t_scene = time.perf_counter() - t0
    rows.append(("load city package", f"{t_load:.2f} s", f"{len(city.buildings)} buildings, {len(city.roads)} roads"))
    rows.append(("build meshes + first render", f"{t_scene:.2f} s",
                 f"{scene.buildings.n_cells:,} building faces in one mesh"))
    renderer_name = ""
    try:
        info = p.render_window.ReportCapabilities()
        renderer_name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                              if ln.strip().lower().startswith("opengl renderer string")), "")
    except Exception:
        pass
    fps0, _, ren0 = fps_loop(p, lambda i: None, min(args.seconds, 3))
    rows.append(("static city, 1920×1080", f"{fps0:.1f} fps", f"render {ren0:.0f} ms"))

    # 100k agents moving every frame.
    rng = np.random.default_rng(0)
    minx, miny, maxx, maxy = city.bounds
    pos = np.column_stack([rng.uniform(minx, maxx, args.agents), rng.uniform(miny, maxy, args.agents)])
    states = rng.integers(0, 3, args.agents).astype(np.int8)
    r.set_state_names(("walking", "queueing", "exited"))
    r.update_agents(pos, states)
    mesh = r.agents.mesh

    def move(i):
        pos[:] += rng.normal(0, 1.0, pos.shape)
        r.update_agents(pos, states)

    fps, upd, ren = fps_loop(p, move, args.seconds)
    assert r.agents.mesh is mesh, "the agent cloud was rebuilt"
    rows.append((f"{args.agents:,} agents updating", f"{fps:.1f} fps", f"update {upd:.0f} ms, render {ren:.0f} ms"))
    r.set_layer_visible("agents", False)

    # A 1000 × 1000 water field changing every frame.
    n = args.field
    cell = max(maxx - minx, maxy - miny) / n
    g = GridField.empty("depth", (minx, miny, minx + n * cell, miny + n * cell), cell, unit="m")
    xs, ys = g.cell_centres()
    X, Y = np.meshgrid((xs - xs[0]) / 200.0, (ys - ys[-1]) / 200.0)
    base = (np.sin(X) * np.cos(Y)).astype(np.float32)

    def flood(i):
        g.values = np.clip(base + 0.05 * i - 0.2, 0, None).astype(np.float32)
        r.update_field(g)

    for mode in ("shader", "colour map"):
        os.environ.pop("CITYTWIN_NO_SHADERS", None)
        if mode == "colour map":
            os.environ["CITYTWIN_NO_SHADERS"] = "1"
        r._remove_layer("field")
        r.field = None
        flood(0)
        fmesh = r.field.mesh
        fps, upd, ren = fps_loop(p, flood, args.seconds)
        assert r.field.mesh is fmesh, "the field was rebuilt"
        active = "shader" if r.field_shader is not None else "colour map"
        rows.append((f"{n}×{n} water field updating ({active})", f"{fps:.1f} fps",
                     f"update {upd:.0f} ms, render {ren:.0f} ms"))
    p.close()

    print(f"\nCityTwin view benchmark — renderer: {renderer_name or 'unknown'}, {os.cpu_count()} CPU cores\n")
    w = max(len(a) for a, _, _ in rows)
    print(f"{'measure':<{w}}  {'result':>10}  notes")
    print(f"{'-' * w}  {'-' * 10}  {'-' * 40}")
    for a, b, c in rows:
        print(f"{a:<{w}}  {b:>10}  {c}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
