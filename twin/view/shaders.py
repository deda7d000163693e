"""GLSL shader replacements for the field layer (see shaders/README.md), with a colour-map fallback.

``apply_field_shader(actor, style, clim)`` (a model's ``FieldStyle``) returns a ``FieldShader`` (set ``time`` and other uniforms)
or None when shaders are off (CITYTWIN_NO_SHADERS=1) or unsupported: a one-off probe renders a
test quad off-screen with the shader and checks its colour. On None the actor keeps the plain
colour map it was created with.
"""
from __future__ import annotations

import os
from pathlib import Path

SHADER_DIR = Path(__file__).resolve().parents[2] / "shaders"  # the repository's shaders/ folder
BAND_UNIFORMS = ("band_1", "band_2", "band_3", "band_4", "band_5")  # banded_heat.glsl: five band bounds

_support: bool | None = None
last_error: str = ""

VS_DEC = """//VTK::Normal::Dec
in float fieldValue;
out float fieldValueVSOut;
out vec2 fieldXY;
"""
VS_IMPL = """//VTK::Normal::Impl
fieldValueVSOut = fieldValue;
fieldXY = vertexMC.xy;
"""
FS_DEC = """//VTK::Normal::Dec
in float fieldValueVSOut;
in vec2 fieldXY;
{body}
"""
FS_COLOR = """//VTK::Color::Impl
vec4 citytwinC = citytwin_field_colour(fieldValueVSOut);
if (citytwinC.a <= 0.003) discard;
diffuseColor = citytwinC.rgb * {diffuse};
ambientColor = citytwinC.rgb * {ambient};
opacity = citytwinC.a;
"""
# A rippled surface shades itself: a perturbed up-normal lit by a fixed sun, so ripples show whether or not
# VTK lights the layer (VTK only declares its normal when the actor is lit).
FS_RIPPLE_SHADE = """
vec3 citytwinN = citytwin_perturb_normal(vec3(0.0, 0.0, 1.0), fieldXY);
float citytwinSun = max(dot(citytwinN, normalize(vec3(0.35, 0.45, 0.82))), 0.0);
float citytwinGlint = pow(max(dot(citytwinN, normalize(vec3(0.2, 0.3, 0.93))), 0.0), 60.0);
diffuseColor = diffuseColor * (0.55 + 0.45 * citytwinSun) + vec3(0.6) * citytwinGlint;
"""


def shaders_enabled() -> bool:
    return os.environ.get("CITYTWIN_NO_SHADERS", "").strip() not in ("1", "true", "yes")


def read_glsl(name: str) -> str:
    """The file's GLSL without its ``uniform`` lines: VTK declares custom uniforms itself."""
    text = (SHADER_DIR / name).read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("uniform "))


class FieldShader:
    def __init__(self, actor, kind: str):
        self.actor = actor
        self.kind = kind
        self.uniforms = actor.GetShaderProperty().GetFragmentCustomUniforms()

    def set(self, name: str, value: float) -> None:
        self.uniforms.SetUniformf(name, float(value))

    def set_time(self, t: float) -> None:
        self.set("time", t)


def _install(actor, kind: str, clim, bands=(), cutoff: float = 0.0) -> FieldShader:
    """``kind``: "rippled_surface" or "banded_heat" (the GLSL file); ``bands`` the heat shader's five bounds."""
    import vtk

    mapper = _polydata_mapper(actor)
    mapper.MapDataArrayToVertexAttribute("fieldValue", "value", vtk.vtkDataObject.FIELD_ASSOCIATION_POINTS, -1)
    sp = actor.GetShaderProperty()
    sp.ClearAllShaderReplacements()
    sp.AddVertexShaderReplacement("//VTK::Normal::Dec", True, VS_DEC, False)
    sp.AddVertexShaderReplacement("//VTK::Normal::Impl", True, VS_IMPL, False)
    if kind == "rippled_surface":
        body = read_glsl("rippled_surface.glsl")
        sp.AddFragmentShaderReplacement("//VTK::Normal::Dec", True, FS_DEC.format(body=body), False)
        sp.AddFragmentShaderReplacement(
            "//VTK::Color::Impl", True, FS_COLOR.format(diffuse="1.0", ambient="0.0") + FS_RIPPLE_SHADE, False)
    else:
        body = read_glsl("banded_heat.glsl")
        sp.AddFragmentShaderReplacement("//VTK::Normal::Dec", True, FS_DEC.format(body=body), False)
        sp.AddFragmentShaderReplacement("//VTK::Color::Impl", True, FS_COLOR.format(diffuse="1.0", ambient="0.0"), False)
    fs = FieldShader(actor, kind)
    fs.set("time", 0.0)
    fs.set("cutoff", cutoff)
    fs.set("max_opacity", 0.85)
    if kind == "rippled_surface":
        fs.set("value_max", clim[1])
        fs.set("ripple_strength", 0.12)
        fs.set("ripple_scale", 6.0)
    else:
        fs.set("vmax", clim[1])
        for name, v in zip(BAND_UNIFORMS, bands):
            fs.set(name, v)
    return fs


def _polydata_mapper(actor):
    """PyVista draws through a vtkDataSetMapper, which cannot map vertex attributes; swap in a
    vtkPolyDataMapper with the same input, colour table and scalar settings."""
    import vtk

    old = actor.GetMapper()
    if isinstance(old, vtk.vtkPolyDataMapper):
        return old
    m = vtk.vtkPolyDataMapper()
    m.SetInputConnection(old.GetInputConnection(0, 0)) if old.GetNumberOfInputConnections(0) else m.SetInputData(old.GetInput())
    m.SetLookupTable(old.GetLookupTable())
    m.SetScalarRange(old.GetScalarRange())
    m.SetUseLookupTableScalarRange(old.GetUseLookupTableScalarRange())
    m.SetScalarVisibility(old.GetScalarVisibility())
    m.SetScalarMode(old.GetScalarMode())
    m.SetColorMode(old.GetColorMode())
    m.SetInterpolateScalarsBeforeMapping(old.GetInterpolateScalarsBeforeMapping())
    name = old.GetArrayName()
    if name:
        m.SelectColorArray(name)
    m.SetArrayAccessMode(old.GetArrayAccessMode())
    actor.SetMapper(m)
    return m


def _remove(actor) -> None:
    try:
        actor.GetShaderProperty().ClearAllShaderReplacements()
        actor.GetMapper().RemoveAllVertexAttributeMappings()
    except Exception:
        pass


def probe_support() -> bool:
    """Render a quad of a high value with the banded heat shader off-screen; True if it came out heat-red."""
    global _support, last_error
    if _support is not None:
        return _support
    try:
        import numpy as np
        import pyvista as pv
        import vtk

        out = vtk.vtkFileOutputWindow()  # keep shader compile errors off the console
        out.SetFileName(os.devnull)
        prev = vtk.vtkOutputWindow.GetInstance()
        vtk.vtkOutputWindow.SetInstance(out)
        verbosity = vtk.vtkLogger.GetCurrentVerbosityCutoff()
        vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
        try:
            p = pv.Plotter(off_screen=True, window_size=(64, 64))
            p.set_background("white")
            quad = pv.Plane(i_resolution=2, j_resolution=2)
            quad.point_data["value"] = np.full(quad.n_points, 2.9, np.float32)
            actor = p.add_mesh(quad, scalars="value", cmap="gray", clim=(0, 3), lighting=False, show_scalar_bar=False)
            # five bands below the probe's value: it lies in the top band, drawn dark red
            _install(actor, "banded_heat", (0.0, 3.0), (0.5, 1.0, 1.5, 2.0, 2.5), 0.02)
            p.view_xy()
            img = p.screenshot(None, return_img=True)
            p.close()
        finally:
            vtk.vtkOutputWindow.SetInstance(prev)
            vtk.vtkLogger.SetStderrVerbosity(verbosity)
        r, g, b = (float(x) for x in img[32, 32, :3])
        # The colour map alone would give light grey; the shader gives a dark red (the top band).
        _support = r > 80 and g < 80 and b < 80
        if not _support:
            last_error = f"probe pixel {r:.0f},{g:.0f},{b:.0f} is not the expected dark red"
    except Exception as e:  # no GL, compile error, ...
        _support = False
        last_error = f"{type(e).__name__}: {e}"
    return _support


def apply_field_shader(actor, style, clim):
    """Install the shader a ``FieldStyle`` names on ``actor`` (a field layer); None means: keep the
    colour map (shaders off, unsupported, or a heat style without five bands)."""
    if not shaders_enabled() or not probe_support():
        return None
    if style.shader not in ("rippled_surface", "banded_heat"):
        return None
    if style.shader == "banded_heat" and len(style.bands) != len(BAND_UNIFORMS):
        return None
    try:
        return _install(actor, style.shader, clim, style.bands, style.cutoff)
    except Exception as e:
        global last_error
        last_error = f"{type(e).__name__}: {e}"
        _remove(actor)
        return None
