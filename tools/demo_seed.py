"""What the demo network holds: its countries, estimates, users and a few trades.

Everything here goes through the real components: the registry's admin HTTP API (as the INCB
operator would), signed key enrollment requests, the nodes' own account store and lifecycle
services (drafted by a clerk, approved by a different signing officer), and real delivery between
the nodes over HTTP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from permitnet.node.accounts import AccountStore
from permitnet.node.app import SERVICES_KEY, STORE_KEY
from permitnet.node.store import Store
from permitnet.node.tokens import create_token
from permitnet.protocol.catalogue import DEFAULT_CATALOGUE
from permitnet.protocol.registry_requests import build_enrollment_request
from permitnet.tools.cli import CliError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    import aiohttp
    from aiohttp import web

    from permitnet.node.keystore import SigningKey
    from permitnet.node.store import DocumentRecord

__all__ = [
    "AUTHORITIES",
    "PEOPLE",
    "ROLES",
    "Operator",
    "create_api_token",
    "create_users",
    "publish_facts",
    "seed_trades",
]

#: The demo's countries and their competent authorities.
AUTHORITIES: Final = {
    "DE": "Bundesinstitut für Arzneimittel und Medizinprodukte - Bundesopiumstelle",
    "FR": "Agence nationale de sécurité du médicament et des produits de santé",
    "IN": "Narcotics Commissioner of India - Central Bureau of Narcotics",
}
#: One user per role on each node (username suffix, roles).
ROLES: Final = (
    ("viewer", ("viewer",)),
    ("clerk", ("clerk",)),
    ("officer", ("officer",)),
    ("admin", ("admin",)),
)
#: The demo users' names, per country, in the order of ROLES.
PEOPLE: Final = {
    "DE": ("Jonas Weber", "Anna Schmidt", "Dr. Klaus Becker", "Petra Wagner"),
    "FR": ("Louis Bernard", "Camille Dubois", "Claire Martin", "Hugo Laurent"),
    "IN": ("Rahul Verma", "Priya Sharma", "Anil Kumar", "Deepa Iyer"),
}
_KG: Final = 1_000_000
#: Annual estimates (narcotic drugs) and assessments (psychotropics), mg of anhydrous base.
#: India's fentanyl estimate is small on purpose: the demo's third trade is held over it.
ESTIMATES: Final = {
    "DE": {"morphine": 40_000 * _KG, "codeine": 15_000 * _KG, "oxycodone": 9_000 * _KG},
    "FR": {"morphine": 25_000 * _KG, "codeine": 30_000 * _KG, "oxycodone": 4_000 * _KG},
    "IN": {"morphine": 8_000 * _KG, "codeine": 60_000 * _KG, "fentanyl": 50_000},
}
ASSESSMENTS: Final = {"DE": {"diazepam": 3_000 * _KG}, "FR": {"diazepam": 2_500 * _KG}}


def _today(offset_days: int = 0) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=offset_days)).isoformat()


@dataclass
class Operator:
    """The INCB operator's session on the registry's admin API."""

    url: str
    token: str
    session: aiohttp.ClientSession

    async def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST to the admin API; return the JSON answer.

        Raises:
            CliError: the registry refused the operation.
        """
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.post(
            f"{self.url}/v1/admin/{path}", json=body or {}, headers=headers
        ) as response:
            answer = await response.json(content_type=None)
            if response.status not in {200, 201}:
                raise CliError(f"registry refused {path}: HTTP {response.status} {answer}")
            return answer

    async def enroll(self, country: str, endpoint: str, key: SigningKey) -> None:
        """Register ``country`` with its endpoint; enroll and approve its key by signed request.

        Raises:
            CliError: the registry refused a step.
        """
        await self.admin(
            "countries",
            {"code": country, "authority": AUTHORITIES[country], "endpoints": [endpoint]},
        )
        now = int(time.time())
        request = build_enrollment_request(
            key.seed, country=country, valid_from=now - 86_400, requested_at=now
        )
        async with self.session.post(f"{self.url}/v1/key-requests", data=request) as response:
            answer = await response.json(content_type=None)
            if response.status != 201:
                raise CliError(f"registry refused {country}'s key request: {answer}")
        await self.admin(f"key-requests/{answer['id']}/approve", {"fingerprint": key.kid.hex()})

    async def publish(self) -> int:
        """Sign and publish the next snapshot; return its version."""
        return int((await self.admin("publish"))["version"])


async def publish_facts(operator: Operator, countries: dict[str, tuple[str, SigningKey]]) -> int:
    """Enroll the countries, publish estimates, assessments and the catalogue, and a snapshot.

    Args:
        operator: the registry operator's session.
        countries: country code -> (node endpoint, signing key).

    Returns:
        The version of the snapshot published.
    """
    year = dt.datetime.now(dt.UTC).year
    for country, (endpoint, key) in countries.items():
        await operator.enroll(country, endpoint, key)
        for substance, mg in ESTIMATES.get(country, {}).items():
            await operator.admin(
                "estimates",
                {
                    "country": country,
                    "substance": substance,
                    "year": year,
                    "quantity_mg": mg,
                    "kind": "estimate",
                    "effective": f"{year}-01-01",
                },
            )
        for substance, mg in ASSESSMENTS.get(country, {}).items():
            await operator.admin(
                "estimates",
                {
                    "country": country,
                    "substance": substance,
                    "year": year,
                    "quantity_mg": mg,
                    "kind": "assessment",
                    "effective": f"{year}-01-01",
                },
            )
    await operator.admin(
        "catalogue",
        {"edition": DEFAULT_CATALOGUE.edition, "digest": DEFAULT_CATALOGUE.digest().hex()},
    )
    return await operator.publish()


async def create_users(database: Path, country: str) -> dict[str, dict[str, str]]:
    """Create one user of each role on a node; return their names, roles and passwords."""
    credentials: dict[str, dict[str, str]] = {}
    async with AccountStore.open(database) as accounts:
        for (suffix, roles), person in zip(ROLES, PEOPLE[country], strict=True):
            username = f"{country.lower()}-{suffix}"
            password = secrets.token_urlsafe(12)
            await accounts.create_user(
                username=username, display_name=person, password=password, roles=roles
            )
            credentials[username] = {
                "password": password,
                "roles": ",".join(roles),
                "name": person,
            }
    return credentials


async def create_api_token(database: Path, country: str) -> str:
    """Create an API token (read and draft scopes) for a national system; return its secret."""
    async with Store.opened(database) as store:
        _token, secret = await create_token(
            store,
            name="national-system",
            actor=f"{country.lower()}-clerk",
            scopes=["read", "draft"],
            created_by="demo",
        )
    return secret


async def _wait(condition: Callable[[], Awaitable[bool]], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise CliError(f"the demo network did not settle: {what} within {within:g} s")
        await asyncio.sleep(0.05)


class _Node:
    def __init__(self, country: str, app: web.Application) -> None:
        self.country = country
        self.app = app

    async def issue(self, doc_type: str, body: dict[str, Any]) -> DocumentRecord | None:
        services = self.app[SERVICES_KEY]
        who = self.country.lower()
        draft = await services.create_draft(doc_type, body, actor=f"{who}-clerk")
        result = await services.approve_draft(draft.id, actor=f"{who}-officer")
        return result.document

    async def holds(self, document_id: str) -> bool:
        async with self.app[STORE_KEY].read() as tx:
            return bool(await tx.has_document(document_id))

    async def delivered(self, document_id: str) -> bool:
        async with self.app[STORE_KEY].read() as tx:
            rows = await tx.outbox_for_document(document_id)
        return bool(rows) and all(r.delivered_at is not None and r.receipt for r in rows)


def _items(substance: str, mg: int, preparation: str) -> list[dict[str, Any]]:
    return [{"substance": substance, "quantity_mg": mg, "preparation": preparation}]


def _certificate(number: str, exporter: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "number": number,
        "date_of_issue": _today(),
        "importer": {"name": "Pharma Import Ltd", "address": "1 Main Street", "licence": "L-1"},
        "exporter": {"name": "Export Laboratories", "address": "2 Harbour Road", "licence": "L-2"},
        "exporting_country": exporter,
        "items": items,
        "valid_from": _today(),
        "valid_until": _today(180),
        "several_consignments": False,
        "conditions": "",
        "estimate_year": dt.datetime.now(dt.UTC).year,
    }


def _authorization(number: str, ic_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "import_certificate": ic_id,
        "number": number,
        "date_of_issue": _today(),
        "items": items,
        "valid_from": _today(),
        "valid_until": _today(90),
        "route": "by air",
        "transport_mode": "air",
        "transit_countries": [],
    }


async def _trade(
    importer: _Node, exporter: _Node, *, tag: str, items: list[dict[str, Any]], received_mg: int
) -> dict[str, str]:
    """Certificate, authorization and endorsement, each delivered before the next.

    Each authority numbers its own documents: the certificate carries the importing country's
    reference, the authorization the exporting country's.
    """
    ic_ref = f"IC-{importer.country}-{tag}"
    ea_ref = f"EA-{exporter.country}-{tag}"
    ic = await importer.issue("import_certificate", _certificate(ic_ref, exporter.country, items))
    if ic is None:
        raise CliError(f"the demo certificate {ic_ref} was held unexpectedly")
    await _wait(lambda: importer.delivered(ic.id), f"{ic_ref} delivered to {exporter.country}")
    ea = await exporter.issue("export_authorization", _authorization(ea_ref, ic.id, items))
    if ea is None:
        raise CliError(f"the demo authorization {ea_ref} was not signed")
    await _wait(lambda: exporter.delivered(ea.id), f"{ea_ref} delivered to {importer.country}")
    endorsement = await importer.issue(
        "endorsement",
        {
            "export_authorization": ea.id,
            "date_received": _today(),
            "received": [{"line": 0, "quantity_mg": received_mg}],
        },
    )
    if endorsement is None:
        raise CliError(f"the demo endorsement of {ea_ref} was not signed")
    await _wait(lambda: importer.delivered(endorsement.id), f"endorsement of {ea_ref} delivered")
    return {
        "import_certificate": ic.id,
        "export_authorization": ea.id,
        "endorsement": endorsement.id,
    }


async def seed_trades(apps: dict[str, web.Application]) -> dict[str, dict[str, str]]:
    """Make three trades in different states; return their document identifiers.

    * ``delivered``: France imports 20 kg of codeine phosphate from India; authorized,
      delivered and endorsed in full.
    * ``discrepancy``: Germany imports 5 kg of morphine from France; the endorsement records
      4.8 kg received, so France's node raises a quantity alert.
    * ``held``: India requests 80 g of fentanyl from Germany, over its 50 g estimate; the
      certificate is held with the reason, not signed.
    """
    de, fr, india = (_Node(c, apps[c]) for c in ("DE", "FR", "IN"))
    trades = {
        "delivered": await _trade(
            fr,
            india,
            tag="2026-001",
            items=_items("codeine-phosphate-hemihydrate", 20 * _KG, "bulk powder"),
            received_mg=20 * _KG,
        ),
        "discrepancy": await _trade(
            de,
            fr,
            tag="2026-001",
            items=_items("morphine", 5 * _KG, "bulk powder"),
            received_mg=4_800_000,
        ),
    }
    services = india.app[SERVICES_KEY]
    draft = await services.create_draft(
        "import_certificate",
        _certificate("IC-IN-2026-001", "DE", _items("fentanyl", 80_000, "citrate, bulk")),
        actor="in-clerk",
    )
    result = await services.approve_draft(draft.id, actor="in-officer")
    if result.document is not None or result.draft.state != "held":
        raise CliError("the over-estimate fentanyl certificate was not held")
    trades["held"] = {"draft": result.draft.id, "reason": result.draft.held_reason or ""}
    return trades
