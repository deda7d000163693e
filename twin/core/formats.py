"""How numbers and times read, everywhere a person sees them: the indicator tiles, the comparison
table, the alert panel and log, the 3D labels, the video overlay, the HTML report and the CLI.
One rule each, so a KPI reads the same on a tile, in the video and in the report."""
from __future__ import annotations

import math
import numbers

__all__ = ["fmt_clock", "fmt_keyed", "fmt_number", "hms", "time_label", "time_of_day", "top_entries"]

KEYED_SHOWN = 8  # entries of a keyed KPI shown inline (tiles, console) before "… N more"


def fmt_number(v) -> str:
    """A value as people read it: whole counts with thousands separators (1,234); other numbers
    with three significant digits or so (1,235 · 150 · 45.0 · 3.25 · 0.5 · 0.0042); "–" for a
    missing or infinite value; keyed values as "key: value, ..."."""
    if isinstance(v, dict):
        return ", ".join(f"{k}: {fmt_number(x)}" for k, x in v.items())
    if v is None or isinstance(v, bool) or type(v).__name__ == "bool_":
        return "–" if v is None else str(bool(v))
    if isinstance(v, numbers.Integral):
        return f"{int(v):,}"
    if not isinstance(v, numbers.Real):
        return str(v)
    v = float(v)
    if not math.isfinite(v):
        return "–"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if a == 0 else f"{v:.2g}"


def top_entries(value: dict, n: int | None = None) -> list[tuple[str, float]]:
    """A keyed KPI's entries, largest first (ties by key, so the order never depends on dict order)."""
    def size(v):
        try:
            f = float(v)
            return f if math.isfinite(f) else -math.inf
        except (TypeError, ValueError):
            return -math.inf

    items = sorted(value.items(), key=lambda kv: (-size(kv[1]), str(kv[0])))
    return items if n is None else items[:n]


def fmt_keyed(value: dict, names: dict | None = None, n: int = KEYED_SHOWN) -> str:
    """A keyed KPI as people read it: its largest entries by name ("Kiasma: 58, Ateneum: 41, … 12 more")."""
    names = names or {}
    items = top_entries(value, n)
    text = ", ".join(f"{names.get(k, k)}: {fmt_number(v)}" for k, v in items)
    return text + (f", … {len(value) - n} more" if len(value) > n else "")


def hms(t_s: float) -> str:
    """Seconds as H:MM:SS (600 → "0:10:00"; hours go past 24 for long runs)."""
    m, s = divmod(int(round(float(t_s))), 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


def time_of_day(t_s: float) -> str:
    """Seconds after midnight as HH:MM (21600 → "06:00")."""
    t = int(round(float(t_s))) % 86400
    return f"{t // 3600:02d}:{t % 3600 // 60:02d}"


def fmt_clock(t_s: float, start_s: float | None = None) -> str:
    """A model time: elapsed ("0:10:00  (600 s)"), or the time of day for a model that keeps one
    (``start_s``, its ``clock_start_s``: "12:10:00  (t = 600 s)")."""
    t = float(t_s)
    if start_s is None:
        return f"{hms(t)}  ({t:.0f} s)"
    shown = (start_s + t) % 86400.0
    return f"{hms(shown).zfill(8)}  (t = {t:.0f} s)"


def time_label(t_s: float, start_s: float | None = None) -> str:
    """The time shown over a view (window, side by side, video): "t = 0:10:00  (600 s)", or the time of day."""
    return f"t = {fmt_clock(t_s)}" if start_s is None else fmt_clock(t_s, start_s)


# KPI names end in their unit (``mean_egress_time_s``); the label drops it.
UNIT_SUFFIXES = ("_ppm2", "_mps", "_m3s", "_m2", "_m3", "_km", "_m", "_s")


def kpi_label(name: str) -> str:
    """``mean_egress_time_s`` → "mean egress time"; ``exited_by_gate.N1`` → "exited by gate N1"."""
    base, _, key = name.partition(".")
    for suf in UNIT_SUFFIXES:
        if base.endswith(suf):
            base = base[: -len(suf)]
            break
    label = base.replace("_", " ")
    return f"{label} {key}" if key else label
