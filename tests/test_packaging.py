"""The distribution maps every source package, so that a plain ``pip install .`` is complete."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = {
    "protocol": "permitnet.protocol",
    "node": "permitnet.node",
    "registry": "permitnet.registry",
    "tools": "permitnet.tools",
}


def _setuptools_config() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        config = tomllib.load(f)
    table = config["tool"]["setuptools"]
    assert isinstance(table, dict)
    return table


def test_every_package_directory_is_listed() -> None:
    listed = set(_setuptools_config()["packages"])  # type: ignore[call-overload]
    found = set()
    for folder, dotted in TOP_LEVEL.items():
        # Every directory that holds files is a package to setuptools, data-only ones too
        # (templates, static files): one left out is warned about and not installed.
        for directory in [ROOT / folder, *(ROOT / folder).rglob("*")]:
            relative = directory.relative_to(ROOT / folder)
            if not directory.is_dir() or any(
                part.startswith(".") or part == "__pycache__" for part in relative.parts
            ):
                continue
            if any(child.is_file() for child in directory.iterdir()):
                found.add(".".join([dotted, *relative.parts]))
    assert found == listed, f"packages in pyproject.toml differ: {found ^ listed}"


def test_no_generic_top_level_names() -> None:
    package_dir = _setuptools_config()["package-dir"]
    assert isinstance(package_dir, dict)
    assert all(name.startswith("permitnet.") for name in package_dir)
    assert package_dir == {dotted: folder for folder, dotted in TOP_LEVEL.items()}
