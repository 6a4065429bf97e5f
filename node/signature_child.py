"""The signature worker process: Ed25519 verifications for the node, in batches.

Started by ``node/signature_worker.py`` as ``python -S signature_child.py`` with nothing in its
environment but the path to PyNaCl; it imports nothing of permitnet (a light process that
starts fast) and holds nothing secret: it sees public keys, signatures and signed bytes.

Frames on stdin, each ``u32 length`` (big-endian) then that many bytes::

    u32 count, then count times: public key (32) | signature (64) | u32 n | n bytes signed

and, per request frame, one answer frame on stdout: ``u32 count`` then one byte per check,
1 when the signature verifies, else 0. The verification is libsodium's ``crypto_sign_open``,
as ``Ed25519Check.holds`` (``protocol/cose.py``) calls it. The process ends at the end of
stdin, which is also what happens when the node dies.
"""

from __future__ import annotations

import signal
import sys
from typing import BinaryIO

import nacl.bindings
import nacl.exceptions

_HEAD = 4
_KEY = 32
_SIGNATURE = 64


def answer(body: bytes) -> bytes:
    """Check every signature of one request frame's body; return the answer frame's body."""
    count = int.from_bytes(body[:_HEAD], "big")
    results = bytearray()
    offset = _HEAD
    for _ in range(count):
        key = body[offset : offset + _KEY]
        offset += _KEY
        signature = body[offset : offset + _SIGNATURE]
        offset += _SIGNATURE
        size = int.from_bytes(body[offset : offset + _HEAD], "big")
        offset += _HEAD
        message = body[offset : offset + size]
        offset += size
        try:
            nacl.bindings.crypto_sign_open(signature + message, key)
        except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
            results.append(0)
        else:
            results.append(1)
    if offset != len(body):
        raise ValueError(f"frame of {len(body)} bytes, {offset} used: the frame is malformed")
    return count.to_bytes(_HEAD, "big") + bytes(results)


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer frames until stdin ends."""
    while True:
        head = stdin.read(_HEAD)
        if len(head) < _HEAD:
            return
        size = int.from_bytes(head, "big")
        body = stdin.read(size)
        if len(body) < size:
            return
        reply = answer(body)
        stdout.write(len(reply).to_bytes(_HEAD, "big") + reply)
        stdout.flush()


def main() -> None:
    """Serve the node on stdin and stdout."""
    # Ctrl-C in a terminal reaches the whole process group, and a service manager's stop
    # (systemd's default KillMode) sends SIGTERM to every process of the service: the node
    # decides when this ends (it closes stdin, or it dies and stdin ends), so the child neither
    # dies first, which the node would log as a failure, nor prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
