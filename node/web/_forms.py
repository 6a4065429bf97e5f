"""From the fields of the pages' forms to the bodies the lifecycle services take, and back.

Officials type quantities with their unit ("1.5 kg"); the services take integer milligrams.
Every error names the field as the form labels it, so the page can say what to correct.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from permitnet.node.errors import ValidationError
from permitnet.node.web._base import PageContext, registry, render, services
from permitnet.protocol.catalogue import DEFAULT_CATALOGUE, Catalogue, CatalogueError
from permitnet.protocol.errors import DocumentError
from permitnet.protocol.quantities import base_equivalent_mg, format_mg, parse_quantity

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiohttp import web

    from permitnet.node.checks import Balance

__all__ = [
    "ITEM_ROWS",
    "Preview",
    "authorization_body",
    "certificate_body",
    "declaration_body",
    "endorsement_body",
    "preview",
    "substance_groups",
]

#: How many item lines the certificate and authorization forms offer.
ITEM_ROWS: Final = 3


def _quantity(text: str, label: str) -> int:
    try:
        value = parse_quantity(text)
    except DocumentError as e:
        raise ValidationError(f"{label}: {e}") from e
    if value <= 0:
        raise ValidationError(f"{label}: the quantity must be more than 0 mg")
    return value


def _date(text: str, label: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError as e:
        raise ValidationError(f"{label}: {text!r} is not a date such as 2026-03-31") from e


def _year(text: str) -> int:
    if not text.isdigit() or not 1961 <= int(text) <= 9999:
        raise ValidationError(f"Estimate year: {text!r} is not a year such as 2026")
    return int(text)


def _party(get: Callable[[str], str], prefix: str) -> dict[str, str]:
    return {
        "name": get(f"{prefix}_name"),
        "address": get(f"{prefix}_address"),
        "licence": get(f"{prefix}_licence"),
    }


def certificate_items(get: Callable[[str], str]) -> list[dict[str, Any]]:
    """Read the item lines of the certificate form; blank lines are skipped.

    Raises:
        ValidationError: a line is half filled, or a quantity is not a quantity.
    """
    items = []
    for n in range(1, ITEM_ROWS + 1):
        substance, quantity = get(f"item{n}_substance"), get(f"item{n}_quantity")
        preparation = get(f"item{n}_preparation")
        if not substance and not quantity:
            continue
        if not substance or not quantity or not preparation:
            raise ValidationError(f"Item {n}: give the substance, the preparation and the quantity")
        items.append(
            {
                "substance": substance,
                "quantity_mg": _quantity(quantity, f"Item {n} quantity"),
                "preparation": preparation,
            }
        )
    if not items:
        raise ValidationError("Item 1: give at least one substance and quantity")
    return items


def certificate_body(get: Callable[[str], str]) -> dict[str, Any]:
    """Build the import certificate draft body from the form.

    Raises:
        ValidationError: a field cannot be read (the message names it).
    """
    return {
        "exporting_country": get("exporting_country").upper(),
        "number": get("number"),
        "date_of_issue": _date(get("date_of_issue"), "Date of issue"),
        "importer": _party(get, "importer"),
        "exporter": _party(get, "exporter"),
        "items": certificate_items(get),
        "valid_from": _date(get("valid_from"), "Valid from"),
        "valid_until": _date(get("valid_until"), "Valid until"),
        "several_consignments": get("several_consignments") == "yes",
        "conditions": get("conditions"),
        "estimate_year": _year(get("estimate_year")),
    }


def declaration_body(get: Callable[[str], str]) -> dict[str, Any]:
    """Build the export declaration draft body (1971 Schedules III and IV) from the form.

    Raises:
        ValidationError: a field cannot be read (the message names it).
    """
    items = certificate_items(get)
    for n, item in enumerate(items, start=1):
        try:
            entry = DEFAULT_CATALOGUE.get(item["substance"])
        except CatalogueError as e:
            raise ValidationError(f"Item {n}: {e}") from e
        if entry.regime != "export_declaration":
            raise ValidationError(
                f"Item {n}: {entry.code} is in Schedule {entry.schedule} of the "
                f"{entry.convention} Convention, which needs an import certificate and an export "
                "authorization, not an export declaration"
            )
    return {
        "importing_country": get("importing_country").upper(),
        "number": get("number"),
        "date_of_export": _date(get("date_of_export"), "Date of export"),
        "exporter": _party(get, "exporter"),
        "importer": _party(get, "importer"),
        "items": items,
    }


def authorization_body(
    get: Callable[[str], str], certificate_id: str, lines: int
) -> dict[str, Any]:
    """Build the export authorization draft body from the form.

    Raises:
        ValidationError: a field cannot be read (the message names it).
    """
    items = []
    for n in range(1, lines + 1):
        quantity = get(f"item{n}_quantity")
        if not quantity:
            continue
        items.append(
            {
                "substance": get(f"item{n}_substance"),
                "quantity_mg": _quantity(quantity, f"Item {n} quantity"),
                "preparation": get(f"item{n}_preparation"),
            }
        )
    if not items:
        raise ValidationError("Items: authorize a quantity for at least one item")
    transit = [c.strip().upper() for c in get("transit_countries").split(",") if c.strip()]
    return {
        "import_certificate": certificate_id,
        "number": get("number"),
        "date_of_issue": _date(get("date_of_issue"), "Date of issue"),
        "items": items,
        "valid_from": _date(get("valid_from"), "Valid from"),
        "valid_until": _date(get("valid_until"), "Valid until"),
        "route": get("route"),
        "transport_mode": get("transport_mode"),
        "transit_countries": transit,
    }


def endorsement_body(
    get: Callable[[str], str], authorization_id: str, lines: int
) -> dict[str, Any]:
    """Build the endorsement draft body: the quantity actually received on each line.

    Raises:
        ValidationError: a field cannot be read (the message names it).
    """
    received = []
    for line in range(lines):
        text = get(f"line{line}_received")
        if not text:
            raise ValidationError(
                f"Line {line + 1} received: give the quantity received (0 mg if none arrived)"
            )
        try:
            quantity = parse_quantity(text)
        except DocumentError as e:
            raise ValidationError(f"Line {line + 1} received: {e}") from e
        received.append({"line": line, "quantity_mg": quantity})
    return {
        "export_authorization": authorization_id,
        "date_received": _date(get("date_received"), "Date received"),
        "received": received,
        "remarks": get("remarks"),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Preview:
    """What the certificate form shows beside the quantity: base equivalent and the estimate."""

    ok: bool
    blocking: bool
    message: str

    def to_json(self) -> dict[str, object]:
        """Return the preview for the form's script."""
        return {"ok": self.ok, "blocking": self.blocking, "message": self.message}


def base_totals(
    items: list[dict[str, Any]], catalogue: Catalogue = DEFAULT_CATALOGUE
) -> dict[str, int]:
    """Total anhydrous base per base substance of the form's items.

    Raises:
        ValidationError: a substance is not in the catalogue.
    """
    totals: dict[str, int] = {}
    for item in items:
        try:
            entry = catalogue.get(item["substance"])
        except CatalogueError as e:
            raise ValidationError(str(e)) from e
        base_mg = base_equivalent_mg(item["quantity_mg"], entry.factor)
        totals[entry.base] = totals.get(entry.base, 0) + base_mg
    return totals


def preview(totals: dict[str, int], balances: dict[str, Balance], year: int) -> Preview:
    """Explain the request against each substance's estimate, and whether it would be held."""
    parts: list[str] = []
    blocking: list[str] = []
    for base, mg in sorted(totals.items()):
        b = balances[base]
        if b.total_mg is None:
            blocking.append(
                f"{base}: no estimate or assessment for {year} is published for this country, "
                f"so {format_mg(mg)} of {base} cannot be authorized."
            )
            continue
        remaining = b.total_mg - b.authorized_mg
        line = (
            f"{format_mg(mg)} of {base} (anhydrous base). Estimate {year}: "
            f"{format_mg(b.estimate_mg or 0)}"
            + (f" + supplementary {format_mg(b.supplementary_mg)}" if b.supplementary_mg else "")
            + f"; already authorized {format_mg(b.authorized_mg)}; "
            f"remaining {_signed_mg(remaining)}."
        )
        if mg > remaining:
            blocking.append(
                line + f" This certificate exceeds the estimate by {format_mg(mg - remaining)}: "
                "it will be held, not signed, until a supplementary estimate is published "
                "that covers it."
            )
        else:
            parts.append(line + f" After this certificate: {format_mg(remaining - mg)}.")
    if blocking:
        return Preview(ok=False, blocking=True, message=" ".join(blocking + parts))
    return Preview(ok=True, blocking=False, message=" ".join(parts))


def _signed_mg(value: int) -> str:
    return format_mg(value) if value >= 0 else f"-{format_mg(-value)} (already exceeded)"


def substance_groups(
    regime: str, catalogue: Catalogue = DEFAULT_CATALOGUE
) -> list[tuple[str, list[tuple[str, str]]]]:
    """The substance picker: per base (by name), the base and its salts as (code, label)."""
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for base in sorted(
        (s for s in catalogue.substances if s.is_base and s.regime == regime),
        key=lambda s: s.name.lower(),
    ):
        options = [(base.code, f"{base.name} (base)")]
        options += [
            (salt.code, f"{salt.name} (factor {salt.factor})")
            for salt in catalogue.salts_of(base.code)
        ]
        groups.append((f"{base.name} - {base.convention} Schedule {base.schedule}", options))
    return groups


def partner_countries(request: web.Request) -> list[tuple[str, str]]:
    """The countries the registry lists, other than this node's own, as (code, name) pairs."""
    view = registry(request).view
    if view is None:
        return []
    own = services(request).country
    return sorted((c.code, c.name) for c in view.countries.values() if c.code != own)


def render_trade_form(
    request: web.Request,
    ctx: PageContext,
    template: str,
    *,
    title: str,
    regime: str,
    status: int = 200,
    **extra: Any,
) -> web.Response:
    """Render a form with item rows: the substances of ``regime``, and the partner countries.

    The import certificate, paper certificate and export declaration forms share this.
    """
    return render(
        request,
        ctx,
        template,
        status=status,
        title=title,
        groups=substance_groups(regime),
        countries=partner_countries(request),
        rows=range(1, ITEM_ROWS + 1),
        **extra,
    )
