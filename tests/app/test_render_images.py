"""Off-screen image regression of the rendered scene, and the shaders with their fallback.

References live in tests/app/reference_images/. To (re)make them after an intended change:
    CITYTWIN_UPDATE_REFERENCE_IMAGES=1 xvfb-run -a ... pytest tests/app/test_render_images.py
The comparison blurs both pictures (block means of 8 × 8 pixels) before comparing, so llvmpipe's
anti-aliasing noise and one-pixel shifts pass, while a missing layer or a wrong colour map fails.
"""
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DEMO_CITY

REF = Path(__file__).resolve().parent / "reference_images"
SIZE = (800, 500)
UPDATE = os.environ.get("CITYTWIN_UPDATE_REFERENCE_IMAGES") == "1"


def blocks(img: np.ndarray, k: int = 8) -> np.ndarray:
    h, w = (img.shape[0] // k) * k, (img.shape[1] // k) * k
    a = img[:h, :w, :3].astype(np.float64)
    return a.reshape(h // k, k, w // k, k, 3).mean(axis=(1, 3))


def image_error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and 99th-percentile absolute difference (0..255) of the blurred pictures."""
    d = np.abs(blocks(a) - blocks(b)).max(axis=2)
    return float(d.mean()), float(np.percentile(d, 99))


def check(img: np.ndarray, name: str, mean_tol: float = 3.0, p99_tol: float = 40.0) -> None:
    from PIL import Image

    path = REF / f"{name}.png"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"no reference image {path}; make it with CITYTWIN_UPDATE_REFERENCE_IMAGES=1")
        REF.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., :3]).save(path, optimize=True)
        return
    ref = np.asarray(Image.open(path).convert("RGB"))
    assert ref.shape[:2] == img.shape[:2], f"{name}: size {img.shape[:2]} != reference {ref.shape[:2]}"
    mean, p99 = image_error(img, ref)
    if mean > mean_tol or p99 > p99_tol:
        out = Path(os.environ.get("PYTEST_IMAGE_FAILURES", "/tmp")) / f"citytwin_{name}_actual.png"
        Image.fromarray(img[..., :3]).save(out)
        pytest.fail(f"{name}: differs from the reference (mean {mean:.1f}, p99 {p99:.1f}); actual picture: {out}")


def station_model():
    from agents.registry import get_model

    return get_model("station_dispersal")


def render(city, preset="oblique", hide=(), field=None, aoi=None, model=None):
    """``model``: the class whose declarations style the field (the station's density by default)."""
    import pyvista as pv

    from twin.view.render import SceneRenderer

    p = pv.Plotter(off_screen=True, window_size=SIZE)
    try:
        r = SceneRenderer(p)
        r.set_city(city)
        r.set_model(model or (station_model() if field is not None or aoi else None))
        if field is not None:
            r.update_field(field)
        for layer in hide:
            r.set_layer_visible(layer, False)
        if aoi:
            r.view_area_of_interest(aoi)
        else:
            r.camera_preset(preset)
        return np.asarray(p.screenshot(None, return_img=True)), r
    finally:
        p.close()


@pytest.fixture(scope="module")
def tiny(tiny_city, qapp):
    from twin.core.city import City

    return City.load(tiny_city)


def density_field(city):
    from twin.core.grid import GridField

    g = GridField.empty("density", city.bounds, 2.0, unit="persons/m2")
    xs, ys = g.cell_centres()
    X, Y = np.meshgrid(xs - xs[0], ys - ys[-1])
    g.values = (3.0 * np.exp(-((X - 100) ** 2 + (Y - 50) ** 2) / 2000)).astype(np.float32)
    return g


def test_tiny_city_matches_reference(tiny):
    img, _ = render(tiny, "oblique")
    check(img, "tiny_city_oblique")


def test_missing_buildings_are_caught(tiny):
    """The comparison is strict enough to notice the buildings are gone."""
    img, _ = render(tiny, "oblique", hide=("buildings",))
    from PIL import Image

    ref = np.asarray(Image.open(REF / "tiny_city_oblique.png").convert("RGB"))
    mean, p99 = image_error(img, ref)
    assert p99 > 40.0 or mean > 3.0, (mean, p99)


def test_density_shader_matches_reference_and_colours_the_peak_red(tiny, monkeypatch):
    monkeypatch.delenv("CITYTWIN_NO_SHADERS", raising=False)
    img, r = render(tiny, "top", field=density_field(tiny))
    assert r.field_shader is not None, __import__("twin.view.shaders", fromlist=["last_error"]).last_error
    check(img, "tiny_city_density_shader")
    # The density peak (3 persons/m², LOS F) is drawn dark red.
    centre = img[SIZE[1] // 2 - 3:SIZE[1] // 2 + 3, SIZE[0] // 2 - 3:SIZE[0] // 2 + 3, :3].mean(axis=(0, 1))
    assert centre[0] > 120 and centre[1] < 70 and centre[2] < 70, centre


def test_colour_map_fallback_without_shaders(tiny, monkeypatch):
    monkeypatch.setenv("CITYTWIN_NO_SHADERS", "1")
    img, r = render(tiny, "top", field=density_field(tiny))
    assert r.field_shader is None
    assert "field" in r.actors
    check(img, "tiny_city_density_fallback")
    centre = img[SIZE[1] // 2 - 3:SIZE[1] // 2 + 3, SIZE[0] // 2 - 3:SIZE[0] // 2 + 3, :3].mean(axis=(0, 1))
    assert centre[0] > 120 and centre[1] < 90, centre


class WaterDepth:
    """Declarations of a model with a water-depth field (what the view reads of a model class)."""

    from twin.core.model_contract import FieldStyle

    state_names = ()
    aoi_layers = ()
    field_styles = (FieldStyle("depth", "m", "water depth", kind="surface", clim=(0.0, 2.0), shader="rippled_surface",
                               cutoff=0.01),)

    @classmethod
    def field_style(cls, name):
        return next(s for s in cls.field_styles if s.name == name)


def test_water_shader_animates(tiny, monkeypatch):
    import pyvista as pv

    from twin.view.render import SceneRenderer
    from twin.core.grid import GridField

    monkeypatch.delenv("CITYTWIN_NO_SHADERS", raising=False)
    g = GridField.empty("depth", tiny.bounds, 2.0, unit="m")
    g.values[:] = 1.0
    p = pv.Plotter(off_screen=True, window_size=(400, 250))
    try:
        r = SceneRenderer(p)
        r.set_city(tiny)
        r.set_model(WaterDepth)
        r.update_field(g)
        assert r.field_shader is not None and r.field_kind == "surface"
        r.camera_preset("top")
        a = np.asarray(p.screenshot(None, return_img=True)).astype(float)
        r.tick(1.7)
        p.render()
        b = np.asarray(p.screenshot(None, return_img=True)).astype(float)
    finally:
        p.close()
    assert np.abs(a - b).mean() > 0.5  # the ripples moved
    assert b[125, 200, 2] > b[125, 200, 0]  # blue water


def test_demo_city_matches_reference(qapp):
    from twin.core.city import City

    city = City.load(DEMO_CITY)
    img, r = render(city, "oblique")
    assert len(np.unique(r.scene.buildings.cell_data["building_id"])) == len(city.buildings)
    check(img, "demo_city_oblique", mean_tol=4.0, p99_tol=50.0)
    img, _ = render(city, aoi=station_model())
    check(img, "demo_city_station", mean_tol=4.0, p99_tol=50.0)
