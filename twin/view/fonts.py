"""A font for Chinese, Japanese and Korean text in reports (matplotlib) and in the 3D view (VTK).

Scenario, intervention, gate and station names are the user's own, often in Chinese. matplotlib's
default font (DejaVu Sans) and VTK's built-in fonts have no CJK glyphs: matplotlib then prints a
warning per missing glyph and draws boxes. Here a CJK font is found on the system and added as a
*fallback*: Latin text keeps its usual font, and only the glyphs it lacks come from the CJK one.

The font comes from the system: ``scripts/setup.sh`` installs the Debian package
``fonts-wqy-microhei`` (WenQuanYi Micro Hei, Apache 2.0 / GPLv3, 4.5 MB); Noto Sans CJK, Source Han
Sans, Microsoft YaHei (Windows) and PingFang (macOS) are found too. ``CITYTWIN_CJK_FONT=/path/font.ttc``
picks a file explicitly.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import warnings
from pathlib import Path

# Family names, best first (as matplotlib names them).
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Micro Hei",
                "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "SimHei",
                "Droid Sans Fallback")
# Files of those fonts, best first, and the folders they are installed in.
CJK_FILES = ("NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf", "SourceHanSansSC-Regular.otf",
             "wqy-microhei.ttc", "wqy-zenhei.ttc", "msyh.ttc", "msyh.ttf", "PingFang.ttc", "Hiragino Sans GB.ttc",
             "simhei.ttf", "DroidSansFallbackFull.ttf")
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts",
             "/System/Library/Fonts", "/Library/Fonts", "C:/Windows/Fonts")
ENV = "CITYTWIN_CJK_FONT"


@functools.cache
def cjk_font_file() -> Path | None:
    """The file of a font with CJK glyphs, or None when the system has none."""
    given = os.environ.get(ENV)
    if given and Path(given).is_file():
        return Path(given)
    found: dict[str, Path] = {}
    for d in FONT_DIRS:
        root = Path(d).expanduser()
        if not root.is_dir():
            continue
        for folder, _, files in os.walk(root):
            for f in files:
                if f in CJK_FILES and f not in found:
                    found[f] = Path(folder) / f
    for name in CJK_FILES:
        if name in found:
            return found[name]
    return _fontconfig_cjk()


def _fontconfig_cjk() -> Path | None:
    """Any font fontconfig says covers Chinese (a system with an unlisted CJK font)."""
    exe = shutil.which("fc-list")
    if not exe:
        return None
    try:
        text = subprocess.run([exe, ":lang=zh", "file"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted(line.split(":")[0].strip() for line in text.splitlines() if line.strip())
    files = [f for f in files if f.lower().endswith((".ttf", ".ttc", ".otf"))]
    return Path(files[0]) if files else None


@functools.cache
def matplotlib_cjk_family() -> str | None:
    """A CJK family registered with matplotlib (added from its file if matplotlib's cache predates it)."""
    from matplotlib import font_manager

    known = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in known:
            return family
    path = cjk_font_file()
    if path is None:
        return None
    try:
        font_manager.fontManager.addfont(str(path))
        return font_manager.FontProperties(fname=str(path)).get_name()
    except (OSError, RuntimeError, ValueError):
        return None


def use_cjk_fallback() -> bool:
    """Let matplotlib draw CJK glyphs from a CJK font after its usual ones. True when one was found.

    Without such a font the glyphs stay boxes, but the per-glyph warnings are silenced: they are
    noise for the user, who can install ``fonts-wqy-microhei`` (or set ``CITYTWIN_CJK_FONT``).
    """
    import matplotlib

    family = matplotlib_cjk_family()
    if family is None:
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        return False
    families = list(matplotlib.rcParams["font.family"])
    if family not in families:
        matplotlib.rcParams["font.family"] = families + [family]
    return True


def needs_cjk(texts) -> bool:
    """True when some text has characters beyond Latin, Greek and Cyrillic (what default fonts cover)."""
    return any(ord(ch) > 0x052F for t in texts for ch in str(t))


def label_font_file(texts) -> str | None:
    """A font file for VTK text (``font_file=``) when ``texts`` need CJK glyphs, else None (VTK's own)."""
    if not needs_cjk(texts):
        return None
    path = cjk_font_file()
    return str(path) if path is not None else None
