"""What the invoice page refuses: links that are not ours or have expired, a session used on
another invoice's page, forms without their CSRF token; and the headers every answer carries."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.common.links import invoice_token
from tests.support.dispatcher import consumer
from tests.support.ledger import LINK_SECRET, TenantClient, invoice_request, today
from tests.support.portal import Customer, PortalWorld, csrf_of

pytestmark = pytest.mark.integration


async def _delivered(world: PortalWorld, tenant: TenantClient, name: str, **request: object) -> str:
    """An invoice to a customer called `name`, once the dispatcher has sent it; its id."""
    number = f"S-{uuid.uuid4().hex[:8]}"
    invoice = await tenant.issue(
        invoice_request(customer=consumer(number, name=name, consents={"email": True}), **request)  # type: ignore[arg-type]
    )
    await world.dispatch.wait_deliveries(tenant, invoice.id, lambda ds: any(d.status != "queued" for d in ds))
    return invoice.id


async def test_links_that_are_not_ours_or_expired(portal_world: PortalWorld) -> None:
    tenant = await portal_world.dispatch.tenant()
    invoice_id = await _delivered(portal_world, tenant, "Ola Nordmann")
    now = portal_world.portal.clock.now()
    good = portal_world.link(invoice_id)
    ident, expiry, signature = good.removeprefix("/i/").split(".")
    longer = format(int(expiry, 36) + 86400 * 400, "x")
    async with Customer(portal_world.portal) as customer:
        for bad in (
            f"/i/{ident}.{longer}.{signature}",  # the expiry moved
            f"/i/{ident}.{expiry}.{signature[:-2]}AA",  # the signature changed
            "/i/" + invoice_token(invoice_id, "another deployment's secret", expires=now + timedelta(days=9)),
            f"/i/{ident}",
        ):
            refused = await customer.get(bad)
            assert refused.status_code == 404, bad
            assert "Lenken er ikke gyldig" in refused.text
            assert "Ola Nordmann" not in refused.text
            assert "frame-ancestors 'none'" in refused.headers["content-security-policy"]
        expired = await customer.get(portal_world.link(invoice_id, expires=now - timedelta(minutes=1)))
        assert expired.status_code == 410
        assert "Lenken er utløpt" in expired.text
        assert not customer.set_cookies

        # A link printed before links had an expiry still works (within FORDRING_LEGACY_LINK_DAYS).
        old_kind = await customer.get("/i/" + invoice_token(invoice_id, LINK_SECRET))
        assert old_kind.status_code == 200
        assert "Ola Nordmann" in old_kind.text


async def test_an_old_link_expires_with_the_invoice_age(portal_world: PortalWorld) -> None:
    tenant = await portal_world.dispatch.tenant()
    issued = today() - timedelta(days=portal_world.portal.settings.legacy_link_days + 2)
    invoice_id = await _delivered(portal_world, tenant, "Per Hansen", issue_date=issued, due_in_days=14)
    async with Customer(portal_world.portal) as customer:
        assert (await customer.get("/i/" + invoice_token(invoice_id, LINK_SECRET))).status_code == 410
        assert (await customer.get(portal_world.link(invoice_id))).status_code == 200


async def test_a_session_is_good_for_its_own_invoice_only(portal_world: PortalWorld) -> None:
    mine = await _delivered(portal_world, await portal_world.dispatch.tenant(), "Kari Nordmann")
    theirs = await _delivered(portal_world, await portal_world.dispatch.tenant(), "Nils Nilsen")
    async with Customer(portal_world.portal) as customer:
        page = await customer.get(portal_world.link(mine))
        assert "Kari Nordmann" in page.text
        assert "Nils Nilsen" not in page.text
        csrf = csrf_of(page.text)
        other = portal_world.link(theirs)
        # My cookie and my CSRF token on another invoice's forms, stream and PDF: refused.
        for path in ("/message", "/dispute", "/channel"):
            refused = await customer.post(
                other + path, {"csrf": csrf, "text": "x", "reason": "x", "channel": "sms"}
            )
            assert refused.status_code == 403, path
        assert (await customer.get(other + "/live")).status_code == 403
        assert (await customer.get(other + "/pdf")).status_code == 403
        # My own form, token and all, posted from another site's page: refused.
        mine_link = portal_world.link(mine)
        forged = await customer.http.post(
            mine_link + "/message",
            data={"csrf": csrf, "text": "x"},
            headers={**customer.headers(), "origin": "https://evil.example"},
        )
        assert forged.status_code == 403
        # My own forms without the token, or with another one: refused too.
        assert (await customer.post(portal_world.link(mine) + "/message", {"text": "x"})).status_code == 403
        wrong = await customer.post(portal_world.link(mine) + "/message", {"csrf": "x" * 43, "text": "x"})
        assert wrong.status_code == 403
    async with Customer(portal_world.portal) as stranger:
        # Without the page's session: no stream, no PDF, no forms.
        assert (await stranger.get(portal_world.link(mine) + "/live")).status_code == 403
        assert (
            await stranger.post(portal_world.link(mine) + "/message", {"csrf": csrf, "text": "x"})
        ).status_code == 403


async def test_headers_on_an_invoice_page(portal_world: PortalWorld) -> None:
    invoice_id = await _delivered(portal_world, await portal_world.dispatch.tenant(), "Eva Olsen")
    async with Customer(portal_world.portal) as customer:
        page = await customer.get(portal_world.link(invoice_id))
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "<script>" not in page.text  # no inline script: the one script comes from /static
        assert " style=" not in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "same-origin"
        assert page.headers["x-content-type-options"] == "nosniff"
