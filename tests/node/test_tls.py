"""HTTPS from certificate and key files (node/tls.py), served and fetched on loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from permitnet.node.errors import ConfigError
from permitnet.node.tls import client_ssl_context, server_ssl_context

if TYPE_CHECKING:
    from pathlib import Path


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / f"{name}.crt"
    key_file = directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_https_round_trip_on_loopback(tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path, "node")
    app = web.Application()

    async def hello(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(cert_file, key_file))
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            async with session.get(
                f"https://127.0.0.1:{port}/healthz", ssl=client_ssl_context(cert_file)
            ) as response:
                assert await response.json() == {"status": "ok"}
            # A client that does not trust the certificate is refused: TLS really is on.
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"https://127.0.0.1:{port}/healthz", ssl=client_ssl_context())
    finally:
        await runner.cleanup()


def test_bad_tls_files_are_named(tmp_path: Path) -> None:
    cert_a, key_a = _self_signed(tmp_path, "a")
    _cert_b, key_b = _self_signed(tmp_path, "b")
    junk = tmp_path / "junk.pem"
    junk.write_text("not PEM")
    cases = [
        ("missing cert", tmp_path / "none.crt", key_a, "certificate file .* not found"),
        ("missing key", cert_a, tmp_path / "none.key", "private key file .* not found"),
        ("key of another cert", cert_a, key_b, "does not match|cannot load"),
        ("junk cert", junk, key_a, "cannot load TLS certificate"),
        ("junk key", cert_a, junk, "cannot load TLS certificate"),
    ]
    for name, cert, key, message in cases:
        with pytest.raises(ConfigError, match=message):
            server_ssl_context(cert, key)
        assert name
    with pytest.raises(ConfigError, match="not found"):
        client_ssl_context(tmp_path / "none.pem")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        client_ssl_context(junk)
