"""Light and dark themes (the command room is dark: a bright wall in a dim room tires the eyes and
washes out the map) and the UI scale for reading a wall from a distance."""
from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

# Legibility: comfortable reading needs letters of about 1/250 of the viewing distance (the
# signage rule of thumb of ~1 inch per 10 ft, ~7 mm per metre): from 5 m, ~35 mm. A 4K wall 2 m
# wide has 0.52 mm pixels, so ~35 mm is ~65 px of cap height: indicator values at 20 pt × 2.5
# (≈ 67 px) and captions at 9 pt × 2.5 (≈ 30 px) on a 96 dpi screen; hence the default below.
AUTO_SCALE_PER_1080 = 1.25  # UI scale per 1080 pixels of screen height (2.5 on a 4K wall)
SCALES = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)


def auto_scale(screen_height_px: int) -> float:
    """The command room's default UI scale for a screen (1.25 at 1080p, 2.5 at 4K)."""
    return max(1.0, round(AUTO_SCALE_PER_1080 * screen_height_px / 1080 * 4) / 4)


def dark_palette() -> QPalette:
    p = QPalette()
    base, panel, text, muted = QColor("#141a21"), QColor("#1f2732"), QColor("#e8edf3"), QColor("#8f9bab")
    for role, colour in ((QPalette.Window, panel), (QPalette.WindowText, text), (QPalette.Base, base),
                         (QPalette.AlternateBase, panel), (QPalette.ToolTipBase, panel), (QPalette.ToolTipText, text),
                         (QPalette.Text, text), (QPalette.Button, panel), (QPalette.ButtonText, text),
                         (QPalette.BrightText, QColor("#ff5060")), (QPalette.Highlight, QColor("#2f6fb8")),
                         (QPalette.HighlightedText, QColor("#ffffff")), (QPalette.PlaceholderText, muted),
                         (QPalette.Link, QColor("#6aa9ff"))):
        p.setColor(role, colour)
    for role in (QPalette.Text, QPalette.ButtonText, QPalette.WindowText):
        p.setColor(QPalette.Disabled, role, muted)
    return p


def apply_theme(dark: bool) -> None:
    """Set the application's palette (Fusion style follows it)."""
    app = QApplication.instance()
    if app is None:
        return
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
