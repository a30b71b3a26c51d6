"""The operator's journey in a real browser (headless Chromium): signs in, finds the invoice, sees the
dispute and the held reminder, resolves a review-queue payment from its suggestion, and looks at a
dunning policy's dry run as a chart. Every page passes an automated accessibility scan (axe);
screenshots and reports are kept as test artefacts (test-artefacts/console/, git-ignored)."""

from __future__ import annotations

import pytest
from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]
from playwright.async_api import Page, expect

from tests.support.browser import artefacts, chromium
from tests.support.console import PASSWORD, ConsoleWorld, operator_scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


async def _checked(page: Page, name: str) -> None:
    """Scanned by axe (no violation) and photographed."""
    folder = artefacts("console")
    results = await Axe().run(page)
    (folder / f"{name}.axe.txt").write_text(results.generate_report(), encoding="utf-8")
    await page.screenshot(path=folder / f"{name}.png", full_page=True)
    assert results.violations_count == 0, results.generate_report()


async def test_an_operator_in_the_browser(console_world: ConsoleWorld) -> None:
    world = console_world
    scenario = await operator_scenario(world)
    email = await world.account(scenario.tenant.tenant.id, "operator")
    number = scenario.disputed.invoice_number
    base = f"http://localhost:{world.portal.port}"

    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        page = await context.new_page()
        await page.goto(f"{base}/console/queues/review")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to the console")
        await _checked(page, "login")
        await page.get_by_label("E-mail").fill(email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        # Back where it was going.
        await expect(page.get_by_role("heading", level=1)).to_have_text("Payments to review")

        await page.get_by_role("link", name="Search").click()
        await page.get_by_label("Invoice number, KID, customer name").fill(number)
        await page.get_by_role("button", name="Search").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(f"Invoice {number}")
        await expect(page.get_by_role("heading", name="Disputed")).to_be_visible()
        await expect(page.get_by_text("I never received the goods.")).to_be_visible()
        await expect(page.get_by_role("heading", name="Held, and why")).to_be_visible()
        await expect(page.locator("ul.holds")).to_contain_text("the customer disputes the claim")
        await _checked(page, "invoice-disputed")

        await page.get_by_role("link", name="Review queue").click()
        await expect(
            page.get_by_label(f"invoice {scenario.unpaid.invoice_number}", exact=False)
        ).to_be_checked()
        await _checked(page, "review-queue")
        await page.get_by_role("button", name="Allocate").click()
        await expect(page.get_by_role("status")).to_contain_text("Payment allocated")
        await expect(page.get_by_text("The queue is empty.")).to_be_visible()
        await _checked(page, "review-queue-done")

        await page.get_by_role("link", name="Dunning").click()
        await page.get_by_text("Change it: edit, then see its dry run").first.click()
        await page.get_by_role("button", name="Dry run").first.click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Dry run of the policy")
        await expect(page.get_by_role("img", name="Steps the policy would take")).to_be_visible()
        await _checked(page, "dunning-dry-run")

        await page.get_by_role("link", name="Dashboard").click()
        await expect(page.get_by_role("img", name="Invoices by status")).to_be_visible()
        await _checked(page, "dashboard")
        await context.close()

        # In Norwegian (the browser's language), the same pages.
        norsk = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="nb-NO")
        side = await norsk.new_page()
        await side.goto(f"{base}/console/invoices/{scenario.disputed.id}")
        await side.get_by_label("E-post").fill(email)
        await side.get_by_label("Passord").fill(PASSWORD)
        await side.get_by_role("button", name="Logg inn").click()
        await expect(side.get_by_role("heading", level=1)).to_contain_text(f"Faktura {number}")
        await expect(side.get_by_role("heading", name="Historikk")).to_be_visible()
        await _checked(side, "invoice-nb")
        await side.get_by_role("link", name="Oversikt").click()
        await expect(side.get_by_role("img", name="Fakturaer etter status")).to_be_visible()
        await _checked(side, "dashboard-nb")
        await norsk.close()
