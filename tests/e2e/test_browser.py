"""Officials at work in a real browser: Debian's Chromium, driven by Playwright.

Against the real network of the e2e fixture (a registry server and two nodes exchanging over
loopback HTTP), people log in to each node's pages and trade: a clerk in Germany drafts an
import certificate, an officer approves it, France's officer issues the export authorization,
Germany endorses a smaller quantity, and France sees the discrepancy alert. Around that: an
over-estimate certificate explains why it is held, a printed PDF verifies on the public verify
page and a tampered one fails, a form without its CSRF token is refused, and a clerk cannot
approve a draft. Screenshots of the main pages are written to ``$PERMITNET_SCREENSHOTS`` (or the
test's temporary directory) to be looked at.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest
from playwright.async_api import Page, async_playwright

from permitnet.node.print_layout import ItemRow, draw_sheet
from permitnet.node.printing import document_sheet
from permitnet.node.web import ACCOUNTS_KEY
from permitnet.protocol.signed import SignedDocument

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from playwright.async_api import Browser

    from .conftest import Network, RunningNode

pytestmark = pytest.mark.browser

CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD: Final = "correct horse battery staple"
#: Who works at each authority: a clerk, two signing officers and a viewer.
STAFF: Final = {
    "clerk": ["clerk"],
    "officer": ["officer"],
    "chief": ["officer"],
    "auditor": ["viewer"],
    "admin": ["admin"],
}


@pytest.fixture
def chromium() -> str:
    assert Path(CHROMIUM).exists(), "Debian's chromium is required: run `make apt`"
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def screens(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("PERMITNET_SCREENSHOTS", tmp_path / "screens"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def staff(node: RunningNode) -> None:
    accounts = node.app[ACCOUNTS_KEY]
    for username, roles in STAFF.items():
        await accounts.create_user(
            username=username,
            display_name=f"{username.title()} of {node.country}",
            password=PASSWORD,
            roles=roles,
        )


async def new_page(browser: Browser) -> Page:
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(15_000)
    return await context.new_page()


async def log_in(page: Page, node: RunningNode, username: str) -> None:
    await page.context.clear_cookies()
    await page.goto(f"{node.url}/login")
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Log in").click()
    if page.url != f"{node.url}/":
        pytest.fail(f"login of {username} failed: {await page.locator('main').inner_text()}")
    assert await page.get_by_role("heading", name="What needs doing").is_visible()


async def fill_certificate(page: Page, *, substance: str, quantity: str, number: str) -> None:
    await page.get_by_role("link", name="New import certificate").click()
    await page.get_by_label("Exporting country").select_option("FR")
    await page.get_by_label("Certificate number").fill(number)
    for who, name in (("importer", "Pharma GmbH"), ("exporter", "Laboratoires SA")):
        await page.locator(f"#{who}_name").fill(name)
        await page.locator(f"#{who}_address").fill(f"{name}, 1 Main Street")
        await page.locator(f"#{who}_licence").fill(f"L-{who}")
    await page.locator("#item1_substance").select_option(substance)
    await page.locator("#item1_preparation").fill("bulk powder")
    await page.locator("#item1_quantity").fill(quantity)


def _id_from(url: str, kind: str) -> str:
    match = re.search(rf"/{kind}/([0-9a-f]+)$", url)
    assert match is not None, url
    return match.group(1)


#: WCAG contrast of an element's text against the first opaque background behind it.
_CONTRAST_JS: Final = """element => {
  const rgb = c => c.match(/[0-9.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => v / 255)
    .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  let node = element, background = "rgb(255, 255, 255)";
  for (; node; node = node.parentElement) {
    const c = getComputedStyle(node).backgroundColor;
    if (c !== "transparent" && !/, 0\\)$/.test(c)) { background = c; break; }
  }
  const [a, b] = [lum(rgb(getComputedStyle(element).color)), lum(rgb(background))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


async def assert_legible(page: Page, selector: str) -> None:
    """Every element matching ``selector`` has text contrast of at least 4.5:1 (WCAG AA)."""
    elements = page.locator(selector)
    assert await elements.count() > 0, selector
    for index in range(await elements.count()):
        element = elements.nth(index)
        ratio = await element.evaluate(_CONTRAST_JS)
        assert ratio >= 4.5, f"{selector} #{index} ({await element.inner_text()!r}): {ratio:.2f}:1"


async def approve(page: Page, node: RunningNode, draft_url: str, officer: str) -> str:
    await log_in(page, node, officer)
    await page.goto(draft_url)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Approve and sign").click()
    if "/approve" in page.url:
        pytest.fail(f"approval refused: {await page.locator('main').inner_text()}")
    return page.url


async def test_trade_through_the_browser(
    network: Network, browser: Browser, screens: Path, tmp_path: Path
) -> None:
    de, fr = await network.start("DE", "FR")
    await staff(de)
    await staff(fr)
    page = await new_page(browser)

    # Germany: the clerk drafts the certificate and sees the live anhydrous-base figure.
    await log_in(page, de, "clerk")
    await page.screenshot(path=screens / "dashboard-empty.png", full_page=True)
    await fill_certificate(
        page, substance="morphine-sulfate-pentahydrate", quantity="2 kg", number="DE-IC-7"
    )
    preview = page.locator("#preview")
    await preview.get_by_text("1.5042 kg of morphine (anhydrous base)").wait_for()
    await page.screenshot(path=screens / "certificate-form.png", full_page=True)
    await page.get_by_role("button", name="Save as draft").click()
    await page.wait_for_url(re.compile(r".*/drafts/[0-9a-f]+$"))
    draft_url = page.url
    # A clerk gets no approve button, and a forged approval is refused server-side.
    assert await page.get_by_role("button", name="Approve and sign").count() == 0
    csrf = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = await page.request.post(f"{draft_url}/approve", form={"csrf_token": csrf or ""})
    assert refused.status == 403
    assert "needs the role Signing officer" in await refused.text()

    # Germany: an officer approves; the node signs and delivers it to France.
    document_url = await approve(page, de, draft_url, "officer")
    ic_id = _id_from(document_url, "documents")
    await page.screenshot(path=screens / "certificate-signed.png", full_page=True)
    await network.wait_until(lambda: fr.holds(ic_id))

    # France: the certificate waits for an authorization on the dashboard.
    await log_in(page, fr, "clerk")
    await page.locator(f'a[href="/documents/{ic_id}"]').first.click()
    await page.get_by_role("link", name="Issue an export authorization").click()
    await page.get_by_label("Authorization number").fill("FR-EA-3")
    await page.get_by_label("Mode of transport").select_option("air")
    await page.locator("#item1_quantity").fill("2 kg")
    await page.get_by_role("button", name="Save as draft").click()
    await page.wait_for_url(re.compile(r".*/drafts/[0-9a-f]+$"))
    ea_url = await approve(page, fr, page.url, "chief")
    ea_id = _id_from(ea_url, "documents")
    await network.wait_until(lambda: de.holds(ea_id))

    # Germany: 1.9 kg arrived of the 2 kg authorized.
    await log_in(page, de, "clerk")
    await page.goto(f"{de.url}/documents/{ea_id}")
    await page.get_by_role("link", name="Record the endorsement").click()
    await page.locator("#line0_received").fill("1.9 kg")
    await page.get_by_role("button", name="Save as draft").click()
    await page.wait_for_url(re.compile(r".*/drafts/[0-9a-f]+$"))
    await approve(page, de, page.url, "officer")

    # France: the discrepancy alert is on the dashboard and on the authorization.
    async def alerted() -> bool:
        return await fr.count("SELECT count(*) FROM alerts") > 0

    await network.wait_until(alerted)
    await log_in(page, fr, "auditor")
    alert = page.locator("#h-alerts + .count", has_text="1")
    await alert.wait_for()
    alert = page.get_by_text(re.compile(r"authorized 2 kg.*received 1.9 kg"))
    await alert.first.wait_for()
    await page.screenshot(path=screens / "dashboard-alert.png", full_page=True)
    await page.goto(f"{fr.url}/documents/{ea_id}")
    await page.get_by_role("alert").first.wait_for()
    await page.screenshot(path=screens / "authorization-document.png", full_page=True)
    for link in (ic_id, ea_id):
        assert await page.locator(f'.chain a[href="/documents/{link}"]').count() == 1
    # The print stylesheet leaves out navigation and forms.
    await page.emulate_media(media="print")
    assert await page.get_by_role("navigation", name="Main").is_hidden()
    assert await page.get_by_role("link", name="Print (PDF)").is_hidden()
    await page.screenshot(path=screens / "authorization-print.png", full_page=True)
    await page.emulate_media(media="screen")

    # The printed certificate verifies on France's public verify page; a reprint that changes
    # the quantity does not.
    await log_in(page, de, "auditor")
    await page.goto(f"{de.url}/documents/{ic_id}")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Print (PDF)").click()
    pdf_path = tmp_path / "certificate.pdf"
    await (await download_info.value).save_as(pdf_path)
    assert pdf_path.read_bytes().startswith(b"%PDF-")

    await page.context.clear_cookies()
    await page.goto(f"{fr.url}/verify")
    await page.get_by_label("PDF, image of the QR code").set_input_files(pdf_path)
    await page.get_by_role("button", name="Verify").click()
    await page.get_by_role("heading", name=re.compile("Authentic: Import certificate")).wait_for()
    await page.screenshot(path=screens / "verify-authentic.png", full_page=True)

    record = await de.store.get_document(ic_id)
    sheet = document_sheet(SignedDocument.verify(record.raw, de.key.public_key))
    first = sheet.items[0].cells
    forged = ItemRow(cells=(*first[:4], "20 kg\n20 000 000 mg", *first[5:]))
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(draw_sheet(dataclasses.replace(sheet, items=(forged, *sheet.items[1:]))))
    await page.get_by_label("PDF, image of the QR code").set_input_files(tampered)
    await page.get_by_role("button", name="Verify").click()
    await page.get_by_role("heading", name="Not authentic").wait_for()
    assert await page.get_by_text("printed text was altered").count() >= 1
    await page.screenshot(path=screens / "verify-tampered.png", full_page=True)

    # The month's trade shows on both sides' trends.
    for node, name in ((de, "trends-de.png"), (fr, "trends-fr.png")):
        await log_in(page, node, "auditor")
        await page.goto(f"{node.url}/trends")
        await page.get_by_role("heading", name="morphine").wait_for()
        await page.screenshot(path=screens / name, full_page=True)


async def test_over_estimate_certificate_is_held_with_its_reason(
    network: Network, browser: Browser, screens: Path
) -> None:
    de, _fr = await network.start("DE", "FR")
    # Germany's codeine estimate is 10 g; the certificate asks for 12 g.
    await network.registry.set_estimate("DE", 10_000, substance="codeine")
    await network.registry.publish()
    await network.refresh_all()
    await staff(de)
    page = await new_page(browser)
    await log_in(page, de, "clerk")
    await fill_certificate(page, substance="codeine", quantity="12 g", number="DE-IC-8")
    await page.get_by_text("This certificate exceeds the estimate by 2 g").wait_for()
    # Without JavaScript the same explanation comes from the "check" button.
    await page.get_by_role("button", name="Check against the estimate").click()
    await page.get_by_text("it will be held, not signed").first.wait_for()
    await page.get_by_role("button", name="Save as draft").click()
    await page.wait_for_url(re.compile(r".*/drafts/[0-9a-f]+$"))
    held = await approve(page, de, page.url, "officer")
    assert "/drafts/" in held
    await page.get_by_text("Held by the estimate, not signed.").wait_for()
    assert await page.get_by_text("already authorized 0 mg, requested 12 g").count() == 1
    await page.screenshot(path=screens / "certificate-held.png", full_page=True)
    # The drafts page lists it under its own state; the state links read as links, not as
    # the header's white-on-blue (the header's nav style once reached this nav too).
    await page.get_by_role("link", name="Drafts", exact=True).click()
    await page.get_by_role("link", name="Held by the estimate").click()
    await page.wait_for_url(re.compile(r".*/drafts\?state=held$"))
    assert await page.get_by_role("cell", name="DE-IC-8").count() == 1
    await assert_legible(page, "nav.filters a")
    await assert_legible(page, "header.masthead nav a")
    await page.goto(f"{de.url}/estimates")
    await page.screenshot(path=screens / "estimates.png", full_page=True)


async def test_csrf_and_four_eyes_in_the_browser(
    network: Network, browser: Browser, screens: Path
) -> None:
    de, _fr = await network.start("DE", "FR")
    await staff(de)
    page = await new_page(browser)
    # Keyboard: the first Tab reaches the skip link, and Enter moves to the content.
    await page.goto(f"{de.url}/verify")
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "content"
    # An officer drafts, then finds the approval refused: four eyes.
    await log_in(page, de, "officer")
    await fill_certificate(page, substance="morphine", quantity="1 g", number="DE-IC-9")
    await page.get_by_role("button", name="Save as draft").click()
    await page.wait_for_url(re.compile(r".*/drafts/[0-9a-f]+$"))
    assert await page.get_by_role("button", name="Approve and sign").is_disabled()
    assert await page.get_by_text("four eyes").first.is_visible()
    await page.screenshot(path=screens / "draft-four-eyes.png", full_page=True)

    # The same form with its CSRF token removed is refused with a clear page.
    await fill_certificate(page, substance="morphine", quantity="1 g", number="DE-IC-10")
    await page.evaluate(
        "document.querySelector('form[data-preview] input[name=csrf_token]').remove()"
    )
    await page.get_by_role("button", name="Check against the estimate").click()
    await page.get_by_role("heading", name="Not allowed").wait_for()
    assert await page.get_by_text("missing or wrong CSRF token").count() == 1
    await page.screenshot(path=screens / "csrf-refused.png", full_page=True)
    await page.goto(f"{de.url}/trends")
    await page.screenshot(path=screens / "trends.png", full_page=True)
    await page.goto(f"{de.url}/status")
    await page.screenshot(path=screens / "status.png", full_page=True)
    # The administrator sees the node's settings as loaded from node.toml.
    await log_in(page, de, "admin")
    await page.get_by_role("link", name="Settings").click()
    await page.get_by_text("Authority DE").first.wait_for()
    assert await page.get_by_text("(encrypted)").count() == 1
    await page.screenshot(path=screens / "settings.png", full_page=True)
    await page.get_by_role("link", name="Audit log").click()
    await page.get_by_text("rows verify: none was changed or removed").wait_for()
    await page.screenshot(path=screens / "audit-log.png", full_page=True)
    # A small screen keeps the layout usable.
    await page.set_viewport_size({"width": 380, "height": 800})
    await page.goto(f"{de.url}/documents")
    await page.screenshot(path=screens / "documents-small-screen.png", full_page=True)
    await log_in(page, de, "officer")
    await page.screenshot(path=screens / "dashboard-small-screen.png", full_page=True)
    # Nothing is wider than the screen: tables scroll inside their own box.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 380, width
