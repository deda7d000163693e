"""The static grids a flood model makes from its city (the resampled DEM, the building mask, the
cells of each footprint and road segment), kept per process for the next model of the same city.

An ensemble rebuilds the same model many times: every member of a live forecast, every member a
filter restores with new parameters. Rasterising the city's footprints and roads is most of a build
(about 70 % at 10 m cells on the demo city). The key is a digest of the inputs themselves (values,
geometries as WKB, grid), so a city edited in place is never served stale; callers copy what they
change."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

MAX_ENTRIES = 8  # a few grids (the twin's and its members' cell sizes) of one city

_CACHE: OrderedDict[str, Any] = OrderedDict()


def digest(*parts) -> str:
    """A digest of arrays (dtype, shape, bytes), geometries (WKB) and plain values."""
    import shapely

    h = hashlib.blake2b(digest_size=20)
    for p in parts:
        if isinstance(p, np.ndarray) and p.dtype != object:
            h.update(f"{p.dtype}{p.shape}".encode())
            h.update(np.ascontiguousarray(p).tobytes())
        elif isinstance(p, (list, tuple, np.ndarray)) and len(p) and isinstance(p[0], shapely.Geometry):
            wkb = shapely.to_wkb(np.asarray(list(p), dtype=object))
            h.update(b"".join(b"-" if w is None else w for w in wkb))
        else:
            h.update(repr(p).encode())
        h.update(b"|")
    return h.hexdigest()


def cached(kind: str, key: str, make: Callable[[], Any]) -> Any:
    """``make()``'s value, made once for ``(kind, key)`` while it stays among the latest entries."""
    k = f"{kind}:{key}"
    if k in _CACHE:
        _CACHE.move_to_end(k)
        return _CACHE[k]
    value = make()
    _CACHE[k] = value
    while len(_CACHE) > MAX_ENTRIES:
        _CACHE.popitem(last=False)
    return value
