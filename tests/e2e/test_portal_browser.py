"""The customer's invoice page in a real browser (headless Chromium) on `fordring up`: the link from
the delivered e-mail (read from the sandbox's mail folder), the amount, a part-payment from an
imported bank file appearing without a reload, a message to customer service, a dispute. Every page
passes an automated accessibility scan (axe); screenshots of the main pages are kept as test
artefacts (test-artefacts/portal/)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]
from playwright.async_api import Page, expect

from services.sandbox.bankfiles import FilePayment, ocr_giro_file
from tests.support.browser import artefacts, chromium
from tests.support.cli_stack import Stack, detached_stack
from tests.support.portal import link_in_mail

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
RUN = uuid.uuid4().hex[:8]
EMAIL = f"kari.{RUN}@example.no"
EXTERNAL_ID = f"PORTAL-BROWSER-{RUN}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with detached_stack(tmp_path_factory.mktemp("fordring-home")) as (running, started):
        assert "invoice pages" in started.stdout
        yield running


def _issue(stack: Stack, tmp_path: Path) -> dict[str, object]:
    today = date.today()
    record = {
        "external_id": EXTERNAL_ID,
        "customer": {
            "number": f"PB-{RUN}",
            "name": "Kari Nordmann",
            "kind": "consumer",
            "email": EMAIL,
            "address": {"lines": ["Storgata 1"], "postal_code": "0155", "city": "OSLO", "country": "NO"},
            "language": "nb",
            "consents": {"email": True},
        },
        "issue_date": today.isoformat(),
        "due_date": (today + timedelta(days=30)).isoformat(),
        "currency": "NOK",
        "lines": [
            {"description": "Strøm desember", "quantity": "1", "unit_price_minor": 100_000, "vat_rate": "25"}
        ],
    }
    path = tmp_path / "invoice.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    imported = stack.fordring("invoices", "import", str(path))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    (invoice,) = [i for i in stack.json("invoices", "list") if i["external_id"] == EXTERNAL_ID]
    return dict(invoice)


def _mail(stack: Stack) -> Path:
    folder = Path(stack.record()["sandbox"]["mail"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for path in folder.glob("*.eml"):
            if EMAIL in path.read_text(encoding="utf-8", errors="replace"):
                return path
        time.sleep(1)
    raise AssertionError(f"no e-mail to {EMAIL} in {folder}")


async def _accessible(page: Page, name: str) -> None:
    results = await Axe().run(page)
    (artefacts("portal") / f"{name}.axe.txt").write_text(results.generate_report(), encoding="utf-8")
    assert results.violations_count == 0, results.generate_report()


async def test_a_customer_pays_part_writes_and_disputes(stack: Stack, tmp_path: Path) -> None:
    invoice = await asyncio.to_thread(_issue, stack, tmp_path)
    mail = await asyncio.to_thread(_mail, stack)
    portal = stack.record()["http"]["portal"]
    link = portal + link_in_mail(mail)
    shots = artefacts("portal")

    async with chromium() as browser:
        phone = await browser.new_context(
            viewport={"width": 390, "height": 844}, locale="nb-NO", device_scale_factor=2, is_mobile=True
        )
        page = await phone.new_page()
        await page.goto(link)
        amount = page.locator(".amount")
        await expect(amount).to_have_text("1 250,00 kr")
        await expect(page.get_by_role("heading", level=1)).to_contain_text(str(invoice["invoice_number"]))
        await expect(page.get_by_text(str(invoice["kid"]), exact=True)).to_be_visible()
        await _accessible(page, "invoice")
        await page.screenshot(path=shots / "invoice-phone.png", full_page=True)

        # The bank's file pays 500 kr of it; the open page shows it without a reload.
        marker = await page.evaluate("() => (window.fordringMarker = Math.random())")
        payment = FilePayment(amount_minor=50_000, reference=str(invoice["kid"]), booking_date=date.today())
        bank_file = tmp_path / "ocr.txt"
        bank_file.write_bytes(ocr_giro_file([payment], transmission_number="7000001", nets_date=date.today()))
        imported = await asyncio.to_thread(stack.fordring, "payments", "import", str(bank_file))
        assert imported.returncode == 0, imported.stdout + imported.stderr
        await expect(amount).to_have_text("750,00 kr", timeout=90_000)
        await expect(page.locator("#history")).to_contain_text("Delbetaling mottatt")
        assert await page.evaluate("() => window.fordringMarker") == marker  # the same page: no reload
        await page.screenshot(path=shots / "invoice-part-paid.png", full_page=True)

        await page.get_by_label("Din melding til kundeservice").fill("Kan jeg betale resten neste måned?")
        await page.get_by_role("button", name="Send melding").click()
        await expect(page.get_by_role("status").first).to_contain_text("Meldingen er sendt")
        await expect(page.locator("#thread")).to_contain_text("Kan jeg betale resten neste måned?")

        await page.get_by_label("Hvorfor bestrider du fakturaen?").fill("Strømmen var borte i ti dager.")
        await page.get_by_role("button", name="Jeg bestrider fakturaen").click()
        await expect(page.locator("#summary")).to_contain_text("Du har bestridt fakturaen")
        await expect(page.locator("#thread")).to_contain_text("Strømmen var borte i ti dager.")
        await _accessible(page, "invoice-disputed")
        await page.screenshot(path=shots / "invoice-disputed.png", full_page=True)

        desktop = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        wide = await desktop.new_page()
        await wide.goto(link + "?lang=en")
        await expect(wide.locator(".amount")).to_have_text("NOK 750.00")
        await _accessible(wide, "invoice-en")
        await wide.screenshot(path=shots / "invoice-desktop-en.png", full_page=True)

        refused = await wide.goto(link[:-3] + "AAA")
        assert refused is not None
        assert refused.status == 404
        await _accessible(wide, "link-not-valid")
        await wide.screenshot(path=shots / "link-not-valid.png")
