"""Static export: the registry's signed files laid out so that any web server can mirror them.

The layout matches the server's path-style URLs (all a node's fetcher uses)::

    v1/root/latest  v1/root/{v}
    v1/snapshot/latest  v1/snapshot/{v}   (the versions whose full snapshot is still kept)
    v1/head/latest  v1/head/{v}
    v1/delta/{N}                      chained signed deltas from N to the latest (last 100 N)
    v1/proof/consistency/{m}/{n}      between the log sizes of those versions

Mirrors are untrusted: every file is signed or verifiable against signed data. The export is
written to a temporary directory next to ``out`` and swapped in, so a web server never serves
a half-written tree.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from typing import TYPE_CHECKING

from permitnet.protocol.registry_snapshot import encode_delta_bundle
from permitnet.registry.base import DELTA_WINDOW
from permitnet.registry.errors import NotFoundError
from permitnet.registry.proofs import ProofCache

if TYPE_CHECKING:
    from pathlib import Path

    from permitnet.registry.service import Registry

__all__ = ["export"]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def export(registry: Registry, out: Path, *, window: int = DELTA_WINDOW) -> int:
    """Write the static mirror of ``registry`` to ``out``; return the number of files.

    Deltas are written from the last ``window`` versions, and consistency proofs between the
    log sizes of those versions, so that the export grows with the window, not with the
    square of the registry's age; a node further behind fetches the full snapshot, and the
    live registry serves any other proof.

    Raises:
        NotFoundError: nothing has been published yet.
        OSError: the files cannot be written.
    """
    store = registry.store
    latest = store.latest_version()
    if latest is None:
        raise NotFoundError("nothing published yet: run 'permitnet registry publish' first")
    tmp = out.with_name(out.name + ".export-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    count = 0

    def put(relative: str, data: bytes) -> None:
        nonlocal count
        _write(tmp / relative, data)
        count += 1

    root_versions = store.root_versions()
    for version in root_versions:
        put(f"v1/root/{version}", store.root(version))
    put("v1/root/latest", store.root())
    first_delta = max(1, latest - window)
    for version in range(1, latest + 1):
        put(f"v1/head/{version}", store.artefact("head", version))
        with contextlib.suppress(NotFoundError):  # only the latest few are kept
            put(f"v1/snapshot/{version}", store.artefact("snapshot", version))
    # One read of the deltas in the window; each file is the tail from its version on.
    deltas = store.deltas_since(first_delta)
    for version in range(first_delta, latest + 1):
        put(f"v1/delta/{version}", encode_delta_bundle(deltas[version - first_delta :]))
    put("v1/snapshot/latest", store.artefact("snapshot", latest))
    put("v1/head/latest", store.artefact("head", latest))
    proofs = ProofCache()
    sizes = store.published_sizes(since_version=first_delta)
    for second in sizes:
        for first in sizes:
            if first < second:
                put(
                    f"v1/proof/consistency/{first}/{second}",
                    proofs.consistency(registry, first, second),
                )
    index = {"latest_version": latest, "root_versions": root_versions, "log_sizes": sizes}
    put("index.json", json.dumps(index, indent=2).encode())
    old = out.with_name(out.name + ".export-old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    if old.exists():
        shutil.rmtree(old)
    return count
