"""Build hook: compile the strict CBOR decoder with mypyc (docs/adr/0004-compiled-decoder.md).

Everything else about the distribution is declared in pyproject.toml. The decoder is plain,
mypy --strict Python; mypyc compiles that same file to a C extension about 2.5 times faster,
which keeps verification plus strict decoding near the raw Ed25519 verify rate. Set
PERMITNET_PURE_PYTHON=1 to install without compiling; the module then runs as Python.
"""

from __future__ import annotations

import os

from setuptools import setup

ext_modules = []
if os.environ.get("PERMITNET_PURE_PYTHON") != "1":
    from mypyc.build import mypycify  # [build-system] requires mypy

    # The .typing symlinks present protocol/ as permitnet/protocol, so that mypyc names the
    # extension permitnet.protocol.cbor (see pyproject.toml [tool.mypy]). Other modules are
    # type-checked by `make typecheck`, not here: the build follows them silently.
    ext_modules = mypycify(
        [
            "--follow-imports=silent",
            "--ignore-missing-imports",
            ".typing/permitnet/protocol/cbor.py",
        ],
        opt_level="3",
    )

setup(ext_modules=ext_modules)
