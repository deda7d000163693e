"""Values of OpenStreetMap tags as numbers: heights, storeys and floor levels.

The platform's importer (twin/gis/osm.py) and the models' import hooks read tags with these."""
from __future__ import annotations

import math
import re

__all__ = ["parse_height_m", "parse_levels", "parse_level_list", "single_level"]

_NUM = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


def parse_height_m(value) -> float | None:
    """'12', '12.5 m', '12,5', '40\\'' (feet), '40 ft', '10\\'6"' → metres; None when unusable."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip().lower()
    if not s:
        return None
    feet_inches = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:'|ft|feet)\s*(?:(\d+(?:\.\d+)?)\s*(?:\"|in|inch(?:es)?))?", s)
    if feet_inches:
        ft = float(feet_inches.group(1)) + float(feet_inches.group(2) or 0) / 12.0
        h = ft * 0.3048
    else:
        m = _NUM.search(s)
        if not m:
            return None
        h = float(m.group(0).replace(",", "."))
        if re.search(r"\d\s*(cm)\b", s):
            h /= 100.0
    return h if 0.0 < h < 1000.0 else None


def parse_levels(value) -> float | None:
    """'6', '5;6', '2-3', '4.5' → storeys (the largest number given); None when unusable."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    nums = [float(n.replace(",", ".")) for n in re.findall(r"\d+(?:[.,]\d+)?", str(value))]
    nums = [n for n in nums if 0 < n < 250]
    return max(nums) if nums else None


def parse_level_list(value) -> list[float]:
    """OSM ``level`` values: "1", "0;1", "-1;0", "0-2" (a range) -> the levels, [] when absent."""
    text = str(value or "").strip()
    if not text or text.lower() == "nan":
        return []
    out = []
    for part in text.replace(",", ";").split(";"):
        part = part.strip()
        lo, sep, hi = part[1:].partition("-")
        try:
            if sep:  # a range "0-2" (the leading sign belongs to the first number)
                out += [float(part[0] + lo), float(hi)]
            else:
                out.append(float(part))
        except ValueError:
            return []
    return out


def single_level(value) -> int:
    """The floor of an area: its level tag when that is one whole number, else 0."""
    levels = parse_level_list(value)
    return int(levels[0]) if len(levels) == 1 and levels[0] == int(levels[0]) else 0
