"""node.toml: the [exchange] pull settings, read, written back, and refused when bad."""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Any

import pytest

from permitnet.node.config import CONFIG_FILE, NodeConfig, parse_pull_from
from permitnet.node.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

_BASE: dict[str, Any] = {
    "format": "permitnet-node-config-1",
    "country": "DE",
    "authority_name": "BfArM",
    "registry_urls": ["https://registry.example"],
    "registry_root": "registry-root.cbor",
}


def _config(tmp_path: Path, **over: Any) -> NodeConfig:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "country": "DE",
        "authority_name": "BfArM",
        "registry_urls": ("https://registry.example",),
        "registry_root": tmp_path / "root.cbor",
        "public_url": "https://node.example",
    }
    return NodeConfig(**(values | over))


GOOD: list[tuple[str, dict[str, object] | None, tuple[str, ...], float]] = [
    ("absent", None, (), 30.0),
    ("empty table", {}, (), 30.0),
    ("one peer", {"pull_from": ["FR"]}, ("FR",), 30.0),
    ("two peers, order kept", {"pull_from": ["IN", "FR"]}, ("IN", "FR"), 30.0),
    ("empty list", {"pull_from": []}, (), 30.0),
    ("integer interval", {"pull_interval_seconds": 60}, (), 60.0),
    ("float interval", {"pull_interval_seconds": 2.5}, (), 2.5),
    ("lower bound", {"pull_interval_seconds": 1}, (), 1.0),
    ("upper bound", {"pull_interval_seconds": 86_400}, (), 86_400.0),
]


@pytest.mark.parametrize(
    ("table", "pull_from", "interval"),
    [case[1:] for case in GOOD],
    ids=[case[0] for case in GOOD],
)
def test_exchange_table_is_read(
    tmp_path: Path,
    table: dict[str, object] | None,
    pull_from: tuple[str, ...],
    interval: float,
) -> None:
    raw = dict(_BASE) if table is None else _BASE | {"exchange": table}
    config = NodeConfig.from_mapping(tmp_path, raw)
    assert config.pull_from == pull_from
    assert config.pull_interval_seconds == interval


BAD = [
    ("not a table", "FR", r"\[exchange\] must be a table"),
    (
        "unknown setting",
        {"pull_form": ["FR"]},
        r"unknown settings in \[exchange\]: \['pull_form'\]",
    ),
    ("pull_from text", {"pull_from": "FR"}, "pull_from must be a list of country codes"),
    ("lower case", {"pull_from": ["fr"]}, "pull_from: country must be an upper-case"),
    ("three letters", {"pull_from": ["FRA"]}, "pull_from: country must be an upper-case"),
    ("unassigned code", {"pull_from": ["XX"]}, "pull_from: 'XX' is not an ISO 3166-1"),
    ("not text", {"pull_from": [33]}, "pull_from: country must be an upper-case"),
    ("own country", {"pull_from": ["FR", "DE"]}, "pull_from: DE is this node's own country"),
    ("repeated", {"pull_from": ["FR", "IN", "FR"]}, "pull_from: FR is listed twice"),
    ("interval text", {"pull_interval_seconds": "30"}, "must be a number of seconds, got str"),
    ("interval bool", {"pull_interval_seconds": True}, "must be a number of seconds, got bool"),
    ("interval zero", {"pull_interval_seconds": 0}, "must be 1 to 86400 seconds, got 0.0"),
    ("interval negative", {"pull_interval_seconds": -5}, "must be 1 to 86400 seconds"),
    ("interval too short", {"pull_interval_seconds": 0.5}, "must be 1 to 86400 seconds"),
    ("interval too long", {"pull_interval_seconds": 86_401}, "must be 1 to 86400 seconds"),
    ("interval nan", {"pull_interval_seconds": float("nan")}, "must be 1 to 86400 seconds"),
    ("interval inf", {"pull_interval_seconds": float("inf")}, "must be 1 to 86400 seconds"),
    ("worker text", {"signature_worker": "yes"}, "signature_worker must be true or false, got str"),
    ("worker number", {"signature_worker": 1}, "signature_worker must be true or false, got int"),
]


@pytest.mark.parametrize(
    ("table", "message"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_exchange_table_is_refused_with_a_clear_error(
    tmp_path: Path, table: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        NodeConfig.from_mapping(tmp_path, _BASE | {"exchange": table})


def test_pull_settings_survive_save_and_load(tmp_path: Path) -> None:
    config = _config(
        tmp_path, pull_from=("FR", "IN"), pull_interval_seconds=12.0, signature_worker=False
    )
    config.save()
    text = (tmp_path / CONFIG_FILE).read_text(encoding="utf-8")
    assert tomllib.loads(text)["exchange"] == {
        "pull_from": ["FR", "IN"],
        "pull_interval_seconds": 12.0,
        "signature_worker": False,
    }
    loaded = NodeConfig.load(tmp_path)
    assert loaded == config


def test_a_config_without_pull_writes_an_empty_list_and_reads_back(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.save()
    assert NodeConfig.load(tmp_path).pull_from == ()


def test_a_hand_edited_file_with_a_bad_peer_does_not_load(tmp_path: Path) -> None:
    _config(tmp_path).save()
    path = tmp_path / CONFIG_FILE
    path.write_text(
        path.read_text(encoding="utf-8").replace("pull_from = []", 'pull_from = ["ZZ"]'),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="pull_from: 'ZZ' is not an ISO 3166-1"):
        NodeConfig.load(tmp_path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("FR,IN", ("FR", "IN")), (" FR , IN ", ("FR", "IN")), ("", ()), (["FR"], ("FR",))],
    ids=["comma-separated", "spaces around", "empty", "list"],
)
def test_parse_pull_from_accepts_the_flag_form(value: object, expected: tuple[str, ...]) -> None:
    assert parse_pull_from(value, own_country="DE") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("FR,,IN", "pull_from: country must be an upper-case"),
        ("FR;IN", "pull_from: country must be an upper-case"),
        (42, "pull_from must be a list of country codes"),
    ],
    ids=["empty item", "wrong separator", "a number"],
)
def test_parse_pull_from_refuses_bad_flags(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_pull_from(value, own_country="DE")


def test_constructor_refuses_a_pull_from_that_is_not_a_tuple(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pull_from must be a tuple"):
        _config(tmp_path, pull_from="FR")


@pytest.mark.parametrize(
    ("seconds", "good"),
    [(600, True), (10, True), (86_400, True), (2.5, False), (9, False), (86_401, False)],
    ids=["default", "lower bound", "upper bound", "too often", "just under", "over a day"],
)
def test_registry_head_check_interval(tmp_path: Path, seconds: float, good: bool) -> None:
    if not good:
        with pytest.raises(ConfigError, match="registry_head_check_seconds must be 10 to 86400"):
            _config(tmp_path, registry_head_check_seconds=seconds)
        return
    config = _config(tmp_path, registry_head_check_seconds=seconds)
    config.save()
    assert NodeConfig.load(tmp_path).registry_head_check_seconds == seconds


def test_registry_head_check_interval_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    _config(tmp_path).save()
    path = tmp_path / CONFIG_FILE
    text = path.read_text().replace(
        "registry_head_check_seconds = 600.0", 'registry_head_check_seconds = "often"'
    )
    path.write_text(text)
    with pytest.raises(ConfigError, match="registry_head_check_seconds has the wrong type"):
        NodeConfig.load(tmp_path)
