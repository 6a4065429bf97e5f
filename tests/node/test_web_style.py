"""The stylesheet's colours meet WCAG 2.x contrast (4.5:1 for text) in every pairing used.

The pairs are those the pages put together: body text, muted hints and links on white and on the
light panels, white on the header band and on the buttons, and the state colours on white.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import permitnet.node.web

CSS = (Path(permitnet.node.web.__file__).parent / "static" / "app.css").read_text()
VARIABLES = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", CSS))


def luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_palette_is_read_from_the_stylesheet() -> None:
    assert {
        "ink",
        "muted",
        "paper",
        "band",
        "band-ink",
        "link",
        "soft",
        "ok",
        "warn",
        "bad",
    } <= set(VARIABLES)


@pytest.mark.parametrize(
    ("foreground", "background"),
    [
        ("ink", "paper"),
        ("ink", "soft"),
        ("muted", "paper"),
        ("muted", "soft"),
        ("link", "paper"),
        ("link", "soft"),
        ("band-ink", "band"),
        ("paper", "bad"),
        ("ok", "paper"),
        ("warn", "paper"),
        ("bad", "paper"),
    ],
)
def test_text_contrast_is_at_least_4_5(foreground: str, background: str) -> None:
    ratio = contrast(VARIABLES[foreground], VARIABLES[background])
    assert ratio >= 4.5, f"{foreground} on {background}: {ratio:.2f}:1"


def test_disabled_buttons_and_chart_colours_are_legible() -> None:
    # Disabled button: white on grey; chart bars: navy and orange against white.
    assert contrast("#ffffff", "#6b7580") >= 4.5
    assert contrast("#1f3a5f", "#ffffff") >= 3.0
    assert contrast("#b35c00", "#ffffff") >= 3.0


def test_the_focus_ring_shows_on_white_and_on_the_header() -> None:
    assert "box-shadow: 0 0 0 6px var(--ink)" in CSS
    assert contrast(VARIABLES["ink"], VARIABLES["paper"]) >= 3.0
    assert contrast(VARIABLES["focus"], VARIABLES["band"]) >= 3.0
