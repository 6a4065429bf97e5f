"""A static export behind a plain web server works as a mirror, and its changes are refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from permitnet.node.registry_fetch import RegistryFetcher, RegistryFetchError
from permitnet.registry.export import export
from permitnet.registry.service import Registry

if TYPE_CHECKING:
    from pathlib import Path

T0 = 1_780_000_000
OPS = "cli:test"


def _published_registry(tmp_path: Path) -> Registry:
    """A registry with one country, DE, and its first snapshot published."""
    reg = Registry.init(
        tmp_path / "reg",
        root_keys_dir=tmp_path / "offline",
        root_keys=1,
        threshold=1,
        now=T0,
        actor=OPS,
    )
    reg.set_country("DE", authority="BfArM", endpoints=[], contact="", actor=OPS, now=T0)
    reg.publish(actor=OPS, now=T0)
    return reg


async def test_static_export_serves_full_snapshot_then_deltas(tmp_path: Path) -> None:
    reg = _published_registry(tmp_path)
    mirror = tmp_path / "mirror"
    export(reg, mirror)
    app = web.Application()
    app.router.add_static("/", mirror)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession() as session:
            fetcher = RegistryFetcher([url], tmp_path / "cache", reg.store.root(1), session, 0)
            assert (await fetcher.refresh(now=T0 + 1)).version == 1
            reg.set_country("FR", authority="ANSM", endpoints=[], contact="", actor=OPS, now=T0 + 5)
            reg.publish(actor=OPS, now=T0 + 5)
            export(reg, mirror)  # re-exported in place, as a mirror's cron job does
            view = await fetcher.refresh(now=T0 + 6)
            assert (view.version, view.country("FR") is not None) == (2, True)
            # Someone with write access to the mirror edits the latest delta file.
            delta = mirror / "v1" / "delta" / "2"
            reg.set_country("IN", authority="NCB", endpoints=[], contact="", actor=OPS, now=T0 + 7)
            reg.publish(actor=OPS, now=T0 + 7)
            export(reg, mirror)
            data = bytearray(delta.read_bytes())
            data[len(data) // 2] ^= 0xFF
            delta.write_bytes(bytes(data))
            with pytest.raises(RegistryFetchError):
                await fetcher.refresh(now=T0 + 8)
            assert fetcher.current is not None
            assert fetcher.current.version == 2
    finally:
        await server.close()
        reg.close()


async def test_conditional_get_against_a_static_mirror(tmp_path: Path) -> None:
    """Unchanged files answer 304 to If-None-Match: "checked, unchanged", nothing downloaded."""
    reg = _published_registry(tmp_path)
    mirror = tmp_path / "mirror"
    export(reg, mirror)
    seen: list[tuple[str, str | None, int]] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        # A file response decides between 200 and 304 as it is sent: record it then.
        seen.append((request.path, request.headers.get("If-None-Match"), response.status))

    app = web.Application()
    app.on_response_prepare.append(record)
    app.router.add_static("/", mirror)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession() as session:
            fetcher = RegistryFetcher([url], tmp_path / "cache", reg.store.root(1), session, 0)
            assert (await fetcher.refresh(now=T0 + 1)).version == 1
            assert (await fetcher.refresh(now=T0 + 2)).version == 1  # delta/1: empty, 200
            seen.clear()
            view = await fetcher.refresh(now=T0 + 3)
            delta = [s for s in seen if s[0] == "/v1/delta/1"]
            assert len(delta) == 1
            assert delta[0][1] is not None  # If-None-Match sent
            assert delta[0][2] == 304
            assert view.version == 1
            assert fetcher.status(T0 + 3).version == 1
            # A new publication changes the file: a 200 with the delta, and the view moves on.
            reg.set_country("FR", authority="ANSM", endpoints=[], contact="", actor=OPS, now=T0 + 5)
            reg.publish(actor=OPS, now=T0 + 5)
            export(reg, mirror)
            seen.clear()
            view = await fetcher.refresh(now=T0 + 6)
            assert view.version == 2
            assert [s[2] for s in seen if s[0] == "/v1/delta/1"] == [200]
    finally:
        await server.close()
        reg.close()
