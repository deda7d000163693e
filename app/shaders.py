"""GLSL shader replacements for the field layer (see shaders/README.md); plain colour maps otherwise."""
from __future__ import annotations


def apply_field_shader(actor, kind: str, clim):
    return None
