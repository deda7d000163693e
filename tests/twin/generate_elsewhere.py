"""Run gis_data/make_demo_city.py as on another machine: numpy's CPU-dependent routines (vectorised
sin, cos, exp, power, hypot: SIMD paths such as AVX-512 SVML; norm, dot, matmul: the BLAS kernel
chosen for the CPU) give results off by one ulp here and there, as another CPU's would.

    python tests/twin/generate_elsewhere.py OUT SEED

Prints how many results it changed (on stderr), so a test can tell the wobble was live."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
_rng = np.random.default_rng(12345)
changed = 0


def _wobble(fn):
    def off_by_an_ulp(*args, **kw):
        global changed
        r = fn(*args, **kw)
        if isinstance(r, np.ndarray) and r.dtype == np.float64 and r.size:
            flip = _rng.random(r.shape) < 0.3
            r = np.where(flip, np.nextafter(r, np.where(_rng.random(r.shape) < 0.5, np.inf, -np.inf)), r)
            changed += int(flip.sum())
        elif isinstance(r, (float, np.floating)) and _rng.random() < 0.3:
            r = type(r)(np.nextafter(r, np.inf if _rng.random() < 0.5 else -np.inf))
            changed += 1
        return r

    return off_by_an_ulp


for name in ("sin", "cos", "exp", "power", "hypot", "dot", "matmul"):
    setattr(np, name, _wobble(getattr(np, name)))
np.linalg.norm = _wobble(np.linalg.norm)

if __name__ == "__main__":
    out, seed = sys.argv[1], sys.argv[2]
    sys.argv = ["make_demo_city.py", "--out", out, "--seed", seed]
    try:
        runpy.run_path(str(ROOT / "gis_data" / "make_demo_city.py"), run_name="__main__")
    finally:
        print(f"results off by one ulp: {changed}", file=sys.stderr)
