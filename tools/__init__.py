"""The permitnet command line, the demo network and operator tools."""

__all__: list[str] = []
