"""The web pages for competent national authorities, served by the node."""

from __future__ import annotations

__all__: list[str] = []
