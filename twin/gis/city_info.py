"""`citytwin city info DIR`: what a city package holds, in a few readable lines."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from twin.core.city import City, fmt_bounds, layer_specs


def _crs_label(crs) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def city_info(path) -> str:
    city = City.load(path)
    root = city.root or Path(path)
    lines = [f"City      {city.name}  ({root})",
             f"CRS       {_crs_label(city.crs)} ({city.crs.name})"]
    b = city.bounds
    w, h = (b[2] - b[0]) / 1000.0, (b[3] - b[1]) / 1000.0
    lines.append(f"Extent    {fmt_bounds(b)}  ({w:.2f} × {h:.2f} km)")
    lines.append("Layers")
    report = _import_report(root)
    specs = layer_specs()
    for name, spec in specs.items():
        gdf = city.layers.get(name)
        if gdf is None or not len(gdf):
            continue
        line = f"  {name:10s} {len(gdf):6d}"
        if name == "buildings":
            hm = gdf["height_m"].to_numpy(dtype=float)
            line += f"  height min {np.nanmin(hm):.1f} / median {np.nanmedian(hm):.1f} / max {np.nanmax(hm):.1f} m"
            if "height_source" in gdf.columns:
                vc = gdf["height_source"].value_counts()
                filled = int(vc.get("levels", 0) + vc.get("default", 0))
                line += (f"; from height {int(vc.get('height', 0))}, levels {int(vc.get('levels', 0))}, "
                         f"default {int(vc.get('default', 0))} (filled {filled})")
        elif "kind" in gdf.columns and spec.geometry in ("LineString", "Point", "Polygon") and not spec.ids_required:
            kinds = gdf["kind"].value_counts()
            line += "  " + ", ".join(f"{k} {v}" for k, v in kinds.head(6).items())
            if len(kinds) > 6:
                line += f", … ({len(kinds)} kinds)"
            if name == "roads":
                line += f"; {gdf.geometry.length.sum() / 1000.0:.1f} km"
        elif spec.geometry == "Polygon":
            line += f"  {gdf.geometry.area.sum():.0f} m²"
        if spec.ids_required and spec.geometry != "Polygon":  # the ids scenarios name
            line += "  ids " + ", ".join(gdf["id"].astype(str).head(10)) + (" …" if len(gdf) > 10 else "")
        lines.append(line)
    if not any(len(g) for g in city.layers.values()):
        lines.append("  (none)")
    from twin.core.sensors import describe, read_sensors

    lines += describe(read_sensors(city))
    if city.terrain is not None:
        g = city.terrain.grid
        z = g.values
        finite = np.isfinite(z)
        lines.append(f"DEM       {g.shape[1]} × {g.shape[0]} cells of {g.cell_m:g} m, elevation "
                     f"{np.nanmin(z):.1f}–{np.nanmax(z):.1f} m ({finite.mean() * 100:.0f}% valid)")
    else:
        lines.append("DEM       none (flat ground)")
    if report.get("crs_reason"):
        files = report.get("input_files", [])
        lines.append(f"Imported  from {', '.join(Path(s).name for s in files)}; CRS: {report['crs_reason']}")
    lines.append(f"Attribution  {city.attribution or '(none given)'}")
    return "\n".join(lines)


def _import_report(root: Path) -> dict:
    try:
        return json.loads((root / "import_report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def city_checks(path, model: str | None = None) -> list:
    """Every registered model's (or ``model``'s) ``CityCheck`` of the city package at ``path``
    (`citytwin city check`; twin.core.city_check). The models say what they read: nothing here does."""
    from agents.registry import MODELS
    from twin.core.errors import UserError

    if model is not None and model not in MODELS:
        raise UserError(f"--model {model!r} is not a registered model; use one of {', '.join(MODELS)} "
                        "(`citytwin models` lists them).")
    return checks_of(City.load(path), model)


def checks_of(city: City, model: str | None = None) -> list:
    """``city_checks`` of a city already loaded (the app's City → Check)."""
    from agents.registry import MODELS, get_model

    return [get_model(name).check_city(city) for name in ([model] if model else MODELS)]


def checks_text(checks, root) -> str:
    """The report `citytwin city check` prints."""
    parts = [f"City check of {root}: what each model found, took from the data, estimated, defaulted, and "
             "what is missing (with what to add)."]
    parts += [c.text() for c in checks]
    ready = [c.model for c in checks if c.can_run]
    blocked = [c.model for c in checks if not c.can_run]
    parts.append(f"Can run: {', '.join(ready) or 'none'}" + (f"; cannot run: {', '.join(blocked)}" if blocked else ""))
    return "\n\n".join(parts)
