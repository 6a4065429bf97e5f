"""A node's configuration: one TOML file in the node's directory.

``permitnet node init`` writes ``node.toml``; ``permitnet node serve`` and the tests read it back
with :meth:`NodeConfig.load`. Paths in the file are relative to the node directory, so a node
directory can be moved or backed up as a whole.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import pycountry

from permitnet.node.errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_PASSPHRASE_ENV",
    "DEFAULT_REGISTRY_GRACE_SECONDS",
    "MAX_PULL_INTERVAL_SECONDS",
    "MIN_PULL_INTERVAL_SECONDS",
    "NodeConfig",
    "parse_pull_from",
    "validate_country",
]

#: The configuration file's name inside a node directory.
CONFIG_FILE: Final = "node.toml"
#: The environment variable the signing key's passphrase is read from by default.
DEFAULT_PASSPHRASE_ENV: Final = "PERMITNET_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
_FORMAT: Final = "permitnet-node-config-1"
#: The optional ``[exchange]`` table of ``node.toml`` and the settings it may hold.
_EXCHANGE_TABLE: Final = "exchange"
_EXCHANGE_SETTINGS: Final = frozenset({"pull_from", "pull_interval_seconds", "signature_worker"})
#: Bounds on how often a node behind NAT polls its peers: more often than once a second is
#: load without benefit, less often than once a day leaves documents waiting too long.
MIN_PULL_INTERVAL_SECONDS: Final = 1.0
MAX_PULL_INTERVAL_SECONDS: Final = 86_400.0


#: How long past its expiry the node keeps using registry data to accept documents.
DEFAULT_REGISTRY_GRACE_SECONDS: Final = 7 * 86_400


def validate_country(code: object) -> str:
    """Return ``code`` if it is an ISO 3166-1 alpha-2 code in upper case.

    Raises:
        ConfigError: it is not text, not upper case, or not an assigned code.
    """
    if not isinstance(code, str) or len(code) != 2 or not code.isascii() or not code.isupper():
        raise ConfigError(f"country must be an upper-case ISO 3166-1 alpha-2 code, got {code!r}")
    if pycountry.countries.get(alpha_2=code) is None:
        raise ConfigError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def parse_pull_from(value: object, *, own_country: str | None = None) -> tuple[str, ...]:
    """Check the countries a node pulls its documents from.

    Accepts a list of codes or one comma-separated text (the ``--pull-from FR,IN`` flag).

    Args:
        value: the configured countries.
        own_country: the node's own country, which it cannot pull from.

    Raises:
        ConfigError: a code is not an upper-case ISO 3166-1 alpha-2 code, is repeated, or is
            the node's own country.
    """
    if isinstance(value, str):
        items: list[object] = [part.strip() for part in value.split(",")] if value.strip() else []
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigError(f"pull_from must be a list of country codes, got {value!r}")
    countries: list[str] = []
    for item in items:
        try:
            code = validate_country(item)
        except ConfigError as e:
            raise ConfigError(f"pull_from: {e}") from e
        if code == own_country:
            raise ConfigError(f"pull_from: {code} is this node's own country")
        if code in countries:
            raise ConfigError(f"pull_from: {code} is listed twice")
        countries.append(code)
    return tuple(countries)


def _check_url(url: object, what: str) -> str:
    if not isinstance(url, str):
        raise ConfigError(f"{what} must be text")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"{what} must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """Everything a node needs to start, read from ``DIR/node.toml``.

    Attributes:
        data_dir: the node directory; relative paths below are resolved against it.
        country: the node's country (ISO 3166-1 alpha-2).
        authority_name: the competent national authority's name.
        registry_urls: the registry and its mirrors, tried in order.
        registry_root: the pinned registry root metadata file.
        public_url: the URL peers use to reach this node.
        host: address ``serve`` listens on.
        port: port ``serve`` listens on.
        database: the SQLite database file.
        key_file: the signing key file (encrypted unless ``insecure_plaintext_key``).
        passphrase_env: the environment variable holding the key's passphrase.
        insecure_plaintext_key: the key file is stored in plain text (demos only).
        registry_cache_dir: where the last good registry snapshot is cached.
        registry_refresh_seconds: how often the registry is polled.
        registry_grace_seconds: how long past a snapshot's expiry the node keeps exchanging.
        registry_head_check_seconds: how often the registry log head is compared with partner
            nodes' heads, to detect a split view (node/registry_gossip.py).
        overdue_check_seconds: how often authorizations past validity are flagged.
        max_request_bytes: requests with larger bodies are refused with 413.
        pull_from: peers this node fetches the documents addressed to it from, because it
            cannot accept inbound connections (``[exchange]`` table of ``node.toml``).
        pull_interval_seconds: how often those peers are polled.
        signature_worker: check received signatures in a worker process, on another core
            (``node/signature_worker.py``); false checks them on the event loop.
    """

    data_dir: Path
    country: str
    authority_name: str
    registry_urls: tuple[str, ...]
    registry_root: Path
    public_url: str
    host: str = "127.0.0.1"
    port: int = 8470
    database: Path = field(default=Path("node.sqlite3"))
    key_file: Path = field(default=Path("signing-key.json"))
    passphrase_env: str = DEFAULT_PASSPHRASE_ENV
    insecure_plaintext_key: bool = False
    registry_cache_dir: Path = field(default=Path("registry-cache"))
    registry_refresh_seconds: float = 300.0
    registry_grace_seconds: int = DEFAULT_REGISTRY_GRACE_SECONDS
    registry_head_check_seconds: float = 600.0
    overdue_check_seconds: float = 3600.0
    max_request_bytes: int = 1024 * 1024
    pull_from: tuple[str, ...] = ()
    pull_interval_seconds: float = 30.0
    signature_worker: bool = True

    def __post_init__(self) -> None:
        validate_country(self.country)
        if not self.authority_name.strip():
            raise ConfigError("authority_name must not be empty")
        if not self.registry_urls:
            raise ConfigError("at least one registry URL is required")
        for url in self.registry_urls:
            _check_url(url, "registry URL")
        _check_url(self.public_url, "public_url")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.registry_refresh_seconds <= 0 or self.overdue_check_seconds <= 0:
            raise ConfigError("registry_refresh_seconds and overdue_check_seconds must be positive")
        if not 10 <= self.registry_head_check_seconds <= 86_400:
            raise ConfigError(
                "registry_head_check_seconds must be 10 to 86400 seconds, got "
                f"{self.registry_head_check_seconds!r}"
            )
        if self.registry_grace_seconds < 0:
            raise ConfigError("registry_grace_seconds must not be negative")
        if self.max_request_bytes < 1024:
            raise ConfigError("max_request_bytes must be at least 1024")
        if not isinstance(self.pull_from, tuple):
            raise ConfigError(f"pull_from must be a tuple of country codes, got {self.pull_from!r}")
        parse_pull_from(self.pull_from, own_country=self.country)
        interval = self.pull_interval_seconds
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not math.isfinite(interval)
            or not MIN_PULL_INTERVAL_SECONDS <= interval <= MAX_PULL_INTERVAL_SECONDS
        ):
            raise ConfigError(
                f"pull_interval_seconds must be {MIN_PULL_INTERVAL_SECONDS:g} to "
                f"{MAX_PULL_INTERVAL_SECONDS:g} seconds, got {interval!r}"
            )
        if not isinstance(self.signature_worker, bool):
            raise ConfigError(
                f"signature_worker must be true or false, got {self.signature_worker!r}"
            )

    def path(self, relative: Path) -> Path:
        """Resolve a configured path against the node directory."""
        return relative if relative.is_absolute() else self.data_dir / relative

    @property
    def database_path(self) -> Path:
        """The SQLite database file's full path."""
        return self.path(self.database)

    @property
    def key_path(self) -> Path:
        """The signing key file's full path."""
        return self.path(self.key_file)

    @property
    def registry_root_path(self) -> Path:
        """The pinned registry root's full path."""
        return self.path(self.registry_root)

    @property
    def registry_cache_path(self) -> Path:
        """The registry cache directory's full path."""
        return self.path(self.registry_cache_dir)

    def with_overrides(self, **changes: object) -> NodeConfig:
        """Return a copy with some fields replaced (``serve --host --port``).

        Raises:
            ConfigError: a replaced value is invalid.
        """
        try:
            return replace(self, **changes)  # type: ignore[arg-type]  # validated in __post_init__
        except TypeError as e:
            raise ConfigError(str(e)) from e

    def to_toml(self) -> str:
        """Render the configuration as the TOML text of ``node.toml``."""

        # JSON strings with ensure_ascii are valid TOML basic strings, so json.dumps quotes safely.
        def q(value: str) -> str:
            return json.dumps(value, ensure_ascii=True)

        lines = [
            f"format = {q(_FORMAT)}",
            f"country = {q(self.country)}",
            f"authority_name = {q(self.authority_name)}",
            f"registry_urls = [{', '.join(q(u) for u in self.registry_urls)}]",
            f"registry_root = {q(str(self.registry_root))}",
            f"public_url = {q(self.public_url)}",
            f"host = {q(self.host)}",
            f"port = {self.port}",
            f"database = {q(str(self.database))}",
            f"key_file = {q(str(self.key_file))}",
            f"passphrase_env = {q(self.passphrase_env)}",
            f"insecure_plaintext_key = {'true' if self.insecure_plaintext_key else 'false'}",
            f"registry_cache_dir = {q(str(self.registry_cache_dir))}",
            f"registry_refresh_seconds = {float(self.registry_refresh_seconds)!r}",
            f"registry_grace_seconds = {self.registry_grace_seconds}",
            f"registry_head_check_seconds = {float(self.registry_head_check_seconds)!r}",
            f"overdue_check_seconds = {float(self.overdue_check_seconds)!r}",
            f"max_request_bytes = {self.max_request_bytes}",
            "",
            # A TOML table ends the top-level keys, so it comes last.
            f"[{_EXCHANGE_TABLE}]",
            "# Peers to fetch documents from when this node cannot accept inbound connections.",
            f"pull_from = [{', '.join(q(c) for c in self.pull_from)}]",
            f"pull_interval_seconds = {float(self.pull_interval_seconds)!r}",
            "# Check received signatures in a worker process, on another core (false: in-process).",
            f"signature_worker = {'true' if self.signature_worker else 'false'}",
        ]
        return "\n".join(lines) + "\n"

    def save(self) -> None:
        """Write ``node.toml`` into the node directory.

        Raises:
            ConfigError: the file cannot be written.
        """
        try:
            (self.data_dir / CONFIG_FILE).write_text(self.to_toml(), encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot write {self.data_dir / CONFIG_FILE}: {e}") from e

    @classmethod
    def load(cls, data_dir: Path) -> NodeConfig:
        """Read ``DIR/node.toml``.

        Raises:
            ConfigError: the file is missing, not TOML, of another format, or has bad values.
        """
        path = data_dir / CONFIG_FILE
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"{path} not found: is {data_dir} a node directory?") from e
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read {path}: {e}") from e
        return cls.from_mapping(data_dir, raw)

    @classmethod
    def from_mapping(cls, data_dir: Path, raw: dict[str, object]) -> NodeConfig:
        """Build a configuration from the parsed TOML table.

        Raises:
            ConfigError: a field is missing, unknown, or of the wrong type.
        """
        if raw.get("format") != _FORMAT:
            raise ConfigError(f"node.toml: format must be {_FORMAT!r}, got {raw.get('format')!r}")
        types: dict[str, tuple[type, ...]] = {
            "country": (str,),
            "authority_name": (str,),
            "registry_urls": (list,),
            "registry_root": (str,),
            "public_url": (str,),
            "host": (str,),
            "port": (int,),
            "database": (str,),
            "key_file": (str,),
            "passphrase_env": (str,),
            "insecure_plaintext_key": (bool,),
            "registry_cache_dir": (str,),
            "registry_refresh_seconds": (int, float),
            "registry_grace_seconds": (int,),
            "registry_head_check_seconds": (int, float),
            "overdue_check_seconds": (int, float),
            "max_request_bytes": (int,),
        }
        raw = dict(raw)
        exchange = _exchange_settings(raw.pop(_EXCHANGE_TABLE, {}))
        unknown = set(raw) - set(types) - {"format"}
        if unknown:
            raise ConfigError(f"node.toml: unknown settings {sorted(unknown)}")
        values: dict[str, object] = {}
        for name, allowed in types.items():
            if name not in raw:
                continue
            value = raw[name]
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                raise ConfigError(f"node.toml: {name} has the wrong type ({type(value).__name__})")
            values[name] = value
        for required in ("country", "authority_name", "registry_urls", "registry_root"):
            if required not in values:
                raise ConfigError(f"node.toml: {required} is required")
        urls = values.pop("registry_urls")
        assert isinstance(urls, list)
        if not all(isinstance(u, str) for u in urls):
            raise ConfigError("node.toml: registry_urls must be a list of text")
        for name in ("registry_root", "database", "key_file", "registry_cache_dir"):
            if name in values:
                values[name] = Path(str(values[name]))
        for name in ("registry_refresh_seconds", "overdue_check_seconds"):
            if name in values:
                values[name] = float(values[name])  # type: ignore[arg-type]  # checked int|float above
        values.setdefault("public_url", "http://127.0.0.1:8470")
        values.update(exchange)
        try:
            return cls(data_dir=data_dir, registry_urls=tuple(urls), **values)  # type: ignore[arg-type]  # each value type-checked above
        except TypeError as e:
            raise ConfigError(f"node.toml: {e}") from e


def _exchange_settings(table: object) -> dict[str, object]:
    """Check the ``[exchange]`` table's types; the values are checked by :class:`NodeConfig`."""
    if not isinstance(table, dict):
        raise ConfigError(f"node.toml: [{_EXCHANGE_TABLE}] must be a table")
    unknown = set(table) - _EXCHANGE_SETTINGS
    if unknown:
        raise ConfigError(f"node.toml: unknown settings in [{_EXCHANGE_TABLE}]: {sorted(unknown)}")
    values: dict[str, object] = {}
    if "pull_from" in table:
        if not isinstance(table["pull_from"], list):
            raise ConfigError(
                f"node.toml: [{_EXCHANGE_TABLE}] pull_from must be a list of country codes, "
                f'e.g. ["FR", "IN"]'
            )
        values["pull_from"] = tuple(table["pull_from"])
    if "pull_interval_seconds" in table:
        interval = table["pull_interval_seconds"]
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise ConfigError(
                f"node.toml: [{_EXCHANGE_TABLE}] pull_interval_seconds must be a number of "
                f"seconds, got {type(interval).__name__}"
            )
        values["pull_interval_seconds"] = float(interval)
    if "signature_worker" in table:
        if not isinstance(table["signature_worker"], bool):
            raise ConfigError(
                f"node.toml: [{_EXCHANGE_TABLE}] signature_worker must be true or false, got "
                f"{type(table['signature_worker']).__name__}"
            )
        values["signature_worker"] = table["signature_worker"]
    return values
