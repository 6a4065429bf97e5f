"""HTTPS served directly by the node from a certificate and key file.

``permitnet node serve DIR --tls-cert FILE --tls-key FILE`` makes the node speak HTTPS itself,
for a country that does not put a reverse proxy in front of it (docs/operations.md shows both).
TLS 1.2 is the floor; Python's default cipher selection and ECDHE are kept. The files are read
once at start-up, and every failure names the file and why it was refused.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from permitnet.node.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["client_ssl_context", "server_ssl_context"]


def server_ssl_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Return a server TLS context from a PEM certificate chain and its private key.

    Args:
        cert_file: the PEM certificate, followed by any intermediate certificates.
        key_file: the PEM private key of that certificate (unencrypted: the node starts
            unattended; protect it with file permissions).

    Raises:
        ConfigError: a file is missing or unreadable, not PEM, or the key does not match.
    """
    for what, path in (("certificate", cert_file), ("private key", key_file)):
        if not path.is_file():
            raise ConfigError(f"TLS {what} file {path} not found")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=cert_file, keyfile=key_file)
    except ssl.SSLError as e:
        reason = getattr(e, "reason", None) or str(e)
        if "KEY_VALUES_MISMATCH" in str(reason).upper():
            raise ConfigError(f"TLS private key {key_file} does not match {cert_file}") from e
        raise ConfigError(
            f"cannot load TLS certificate {cert_file} with key {key_file}: {reason}"
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot read TLS files {cert_file}, {key_file}: {e}") from e
    return context


def client_ssl_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """Return a client TLS context trusting the system roots, or only ``ca_file`` if given.

    Raises:
        ConfigError: ``ca_file`` is missing or not a PEM certificate.
    """
    if ca_file is None:
        return ssl.create_default_context()
    if not ca_file.is_file():
        raise ConfigError(f"CA file {ca_file} not found")
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except ssl.SSLError as e:
        raise ConfigError(f"CA file {ca_file} is not a PEM certificate: {e}") from e
