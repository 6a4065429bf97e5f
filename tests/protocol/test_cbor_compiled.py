"""The compiled decoder (setup.py, mypyc) is never older than the source it was built from."""

from __future__ import annotations

from pathlib import Path

import permitnet.protocol.cbor as cbor_module

SOURCE = Path(__file__).resolve().parents[2] / "protocol" / "cbor.py"


def test_compiled_decoder_is_not_stale() -> None:
    loaded = Path(cbor_module.__file__ or "")
    if loaded.suffix == ".py":
        return  # Running as Python (PERMITNET_PURE_PYTHON=1): nothing can be stale.
    if loaded.parent.resolve() != SOURCE.parent.resolve():
        return  # A plain install: the extension was built from the installed source.
    assert loaded.stat().st_mtime >= SOURCE.stat().st_mtime, (
        "protocol/cbor.py changed after it was compiled: run `make setup` (or "
        "`pip install -e .`) to rebuild the extension, or tests run the old decoder"
    )
