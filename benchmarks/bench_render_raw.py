"""Frame rates of the view's two heavy workloads in plain VTK (no Qt, no PyVista), off screen, so
that they can be measured on a machine with a real GPU and nothing else of the stack installed.

    python benchmarks/bench_render_raw.py [--seconds 5] [--size 1920 1080] [--egl]

Same workloads as bench_view.py: (1) 100,000 agent points whose coordinates are rewritten in place
every frame; (2) a 1000 x 1000 water-depth field over a terrain, its scalars rewritten in place
every frame, on a surface built once (colour-mapped through a texture; the app's water shader is
not applied here). Prints the OpenGL renderer
(llvmpipe = software rendering on the CPU) and frames per second. ``--egl`` renders through EGL
(headless GPU machines); otherwise the default window (under Xvfb here).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--size", type=int, nargs=2, default=[1920, 1080])
    ap.add_argument("--egl", action="store_true")
    a = ap.parse_args()
    if a.egl:
        os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkEGLRenderWindow"
    from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
    from vtkmodules.vtkCommonCore import vtkPoints, vtkLookupTable
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData, vtkStructuredGrid
    from vtkmodules.vtkFiltersGeometry import vtkStructuredGridGeometryFilter
    from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkRenderer, vtkRenderWindow
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL back end)

    rng = np.random.default_rng(0)
    win = vtkRenderWindow()
    win.SetOffScreenRendering(1)
    win.SetSize(*a.size)
    ren = vtkRenderer()
    win.AddRenderer(ren)

    def frames(update) -> float:
        update(0)
        win.Render()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < a.seconds:
            n += 1
            update(n)
            win.Render()
        return n / (time.perf_counter() - t0)

    # (1) 100,000 points moving every frame
    n_pts = 100_000
    xyz = np.zeros((n_pts, 3), np.float32)
    xyz[:, :2] = rng.uniform(0, 2000, (n_pts, 2))
    pts = vtkPoints()
    pts.SetData(numpy_to_vtk(xyz, deep=False))
    verts = vtkCellArray()
    conn = np.arange(n_pts, dtype=np.int64)
    from vtkmodules.util.numpy_support import numpy_to_vtkIdTypeArray
    offsets = np.arange(n_pts + 1, dtype=np.int64)
    verts.SetData(numpy_to_vtkIdTypeArray(offsets, deep=True), numpy_to_vtkIdTypeArray(conn, deep=True))
    poly = vtkPolyData()
    poly.SetPoints(pts)
    poly.SetVerts(verts)
    pm = vtkPolyDataMapper()
    pm.SetInputData(poly)
    pa = vtkActor()
    pa.SetMapper(pm)
    pa.GetProperty().SetPointSize(3)
    ren.AddActor(pa)
    ren.ResetCamera()
    step = rng.normal(0, 0.5, (n_pts, 2)).astype(np.float32)

    def move(i):
        xyz[:, :2] += step
        pts.GetData().Modified()
        pts.Modified()

    win.Render()  # the context exists from the first render on
    renderer = win.ReportCapabilities().splitlines()
    name = next((ln.split(":", 1)[1].strip() for ln in renderer if "OpenGL renderer string" in ln), "?")
    print(f"VTK {__import__('vtkmodules').__version__}, {win.GetClassName()}, OpenGL renderer: {name}, "
          f"{a.size[0]} x {a.size[1]}")
    fps_points = frames(move)
    ren.RemoveActor(pa)

    # (2) a 1000 x 1000 water-depth field over a terrain, scalars rewritten every frame
    n = 1000
    x, y = np.meshgrid(np.arange(n) * 2.0, np.arange(n) * 2.0)
    z = 5.0 * np.sin(x / 150.0) * np.cos(y / 170.0)
    grid = vtkStructuredGrid()
    grid.SetDimensions(n, n, 1)
    gp = vtkPoints()
    gp.SetData(numpy_to_vtk(np.c_[x.ravel(), y.ravel(), z.ravel()].astype(np.float32), deep=True))
    grid.SetPoints(gp)
    # a surface built once, as the app's field layer is: per frame only the scalars change
    surf = vtkStructuredGridGeometryFilter()
    surf.SetInputData(grid)
    surf.Update()
    mesh = surf.GetOutput()
    depth = np.zeros(mesh.GetNumberOfPoints(), np.float32)
    arr = numpy_to_vtk(depth, deep=False)
    arr.SetName("depth")
    mesh.GetPointData().SetScalars(arr)
    lut = vtkLookupTable()
    lut.SetHueRange(0.55, 0.65)
    lut.Build()
    gm = vtkPolyDataMapper()
    gm.SetInputData(mesh)
    gm.SetLookupTable(lut)
    gm.SetScalarRange(0.0, 2.0)
    gm.SetInterpolateScalarsBeforeMapping(True)  # colours from a texture: the depth alone goes to the GPU
    ga = vtkActor()
    ga.SetMapper(gm)
    ren.AddActor(ga)
    ren.ResetCamera()
    cam = ren.GetActiveCamera()
    cam.Elevation(-50)
    mp = vtk_to_numpy(mesh.GetPoints().GetData())
    phase = ((mp[:, 0] + mp[:, 1]) / 300.0).astype(np.float32)

    def flood(i):
        np.multiply(np.sin(phase + i * 0.05, dtype=np.float32) + 1.0, 1.0, out=depth)
        arr.Modified()

    fps_field = frames(flood)
    print(f"{'100,000 points moving':<34} {fps_points:7.1f} frames/s")
    print(f"{'1000 x 1000 depth field changing':<34} {fps_field:7.1f} frames/s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
