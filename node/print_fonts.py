"""The print font: where it is, and which characters it can draw.

DejaVu Sans, from Debian's fonts-dejavu-core (installed by ``make setup``), covers Latin, Greek
and Cyrillic, so names and addresses print as written; the PDF core fonts are Latin-1 only and
would mangle them. A character it has no glyph for is refused before printing, with the field
named: fpdf2 would print an empty box in its place, and a box in place of a name is not a
document.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Final

from fontTools.ttLib import TTFont, TTLibError

from permitnet.node.errors import NodeError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["FONT_DIR", "FONT_FILES", "PrintError", "check_printable"]

#: Where Debian's fonts-dejavu-core puts the fonts.
FONT_DIR: Final = Path("/usr/share/fonts/truetype/dejavu")
#: The regular and bold faces, by fpdf2 style.
FONT_FILES: Final = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}

# fpdf2 subsets the fonts with fontTools, which logs every table it prunes at INFO: that is
# library chatter, not news for an operator, and it would bury a command's one-line answer.
logging.getLogger("fontTools").setLevel(logging.WARNING)


class PrintError(NodeError):
    """A document that cannot be printed: no font, a character it lacks, or too large a QR."""

    status_hint = 500
    code = "print_error"


@functools.lru_cache(maxsize=4)
def _covered(font_dir: Path) -> frozenset[int]:
    """Return the code points both faces can draw."""
    covered: frozenset[int] | None = None
    for name in FONT_FILES.values():
        try:
            with TTFont(font_dir / name, lazy=True) as font:
                cmap = frozenset(font.getBestCmap())
        except (OSError, TTLibError) as e:
            raise PrintError(
                f"cannot load the DejaVu fonts from {font_dir} (Debian package "
                f"fonts-dejavu-core): {e}"
            ) from e
        covered = cmap if covered is None else covered & cmap
    assert covered is not None
    return covered


def check_printable(texts: Iterable[tuple[str, str]], font_dir: Path = FONT_DIR) -> None:
    """Refuse text the font cannot draw.

    Args:
        texts: (where, text) pairs; ``where`` names the field in the error.
        font_dir: where the fonts are.

    Raises:
        PrintError: the fonts cannot be loaded, or a text holds a character they lack; the
            message names the field and the characters.
    """
    covered = _covered(font_dir)
    for where, text in texts:
        missing = sorted({c for c in text if ord(c) not in covered and not c.isspace()})
        if missing:
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing[:5])
            raise PrintError(
                f"cannot print {where!r}: the font (DejaVu Sans) has no glyph for {shown}; "
                "give the text in Latin script"
            )
