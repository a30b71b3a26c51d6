"""The console's locks: every page asks for a sign-in, a form without its CSRF token is refused, the
session cookie is HttpOnly, SameSite=Strict and Secure, logins are limited, one tenant's account never
sees another tenant's invoice, and the roles hold."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fordring.ledger.v1 import notes_pb2 as notes_pb
from fordring.ledger.v1.notes_pb2_grpc import InvoiceNoteServiceStub

from services.portal.store import AUDIT, CONSOLE_ACCOUNTS
from tests.support.console import ConsoleClient, ConsoleWorld
from tests.support.ledger import customer_input, invoice_request
from tests.support.matcher import new_tenant

pytestmark = pytest.mark.integration

PAGES = [
    "/console/",
    "/console/search?q=1",
    "/console/invoices/x",
    "/console/customers/x",
    "/console/queues/deviations",
    "/console/queues/review",
    "/console/queues/disputes",
    "/console/queues/flagged",
    "/console/queues/handoffs",
    "/console/dunning",
    "/console/audit",
]


@pytest.fixture
async def client(console_world: ConsoleWorld) -> AsyncIterator[ConsoleClient]:
    browser = ConsoleClient.of(console_world.portal)
    try:
        yield browser
    finally:
        await browser.aclose()


async def test_every_page_asks_for_a_sign_in_first(client: ConsoleClient) -> None:
    for path in PAGES:
        response = await client.request("GET", path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/login?next=%2Fconsole"), path
    for path in ("/console/invoices/x/comment", "/console/payments/x/allocate", "/console/logout"):
        response = await client.post(path, {"text": "hello"})
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/login"), path


async def test_a_session_cookie_a_browser_keeps_to_itself(
    console_world: ConsoleWorld, client: ConsoleClient
) -> None:
    tenant = await new_tenant(console_world.dun.ledger, console_world.dun.ledger_stub)
    email = await console_world.account(tenant.tenant.id, "customer_service")
    login = await client.request("GET", "/console/login")
    headers = login.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"

    signed_in = await client.login(email)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/console"
    [session] = [c for c in signed_in.headers.get_list("set-cookie") if c.startswith("__Host-console=")]
    attributes = {part.strip().lower() for part in session.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)

    dashboard = await client.get("/console/")
    assert dashboard.status_code == 200
    assert "Receivables" in dashboard.text
    assert "<svg" in dashboard.text

    await client.post("/console/logout", {})
    assert (await client.request("GET", "/console/")).status_code == 303


async def test_a_form_without_its_csrf_token_is_refused(
    console_world: ConsoleWorld, client: ConsoleClient
) -> None:
    tenant = await new_tenant(console_world.dun.ledger, console_world.dun.ledger_stub)
    invoice = await tenant.issue(invoice_request(customer=customer_input("K-1")))
    email = await console_world.account(tenant.tenant.id, "operator")
    await client.login(email)
    await client.get(f"/console/invoices/{invoice.id}")
    for form in ({"text": "no token"}, {"text": "wrong token", "csrf": "x" * 43}):
        refused = await client.post(f"/console/invoices/{invoice.id}/comment", form, csrf=False)
        assert refused.status_code == 403
    notes = InvoiceNoteServiceStub(console_world.portal.clients.channel("ledger"))
    reply = await notes.ListInvoiceNotes(
        notes_pb.ListInvoiceNotesRequest(invoice_id=invoice.id), metadata=tenant.metadata
    )
    assert list(reply.notes) == []
    # With the token the same comment goes through, and the audit log says who, what, when, which trace.
    done = await client.post(
        f"/console/invoices/{invoice.id}/comment", {"text": "Called the customer", "token": "t1"}
    )
    assert done.status_code == 303
    reply = await notes.ListInvoiceNotes(
        notes_pb.ListInvoiceNotesRequest(invoice_id=invoice.id), metadata=tenant.metadata
    )
    assert [n.text for n in reply.notes] == ["Called the customer"]
    entry = await console_world.portal.store.db[AUDIT].find_one(
        {"tenant_id": tenant.tenant.id, "action": "invoice.comment"}
    )
    assert entry is not None
    assert entry["actor"] == f"console:{email}"
    assert entry["subject"] == invoice.id
    assert len(entry["trace_id"]) == 32
    assert entry["at"] is not None


async def test_a_login_from_elsewhere_and_too_many_failures_are_refused(
    console_world: ConsoleWorld, client: ConsoleClient
) -> None:
    tenant = await new_tenant(console_world.dun.ledger, console_world.dun.ledger_stub)
    email = await console_world.account(tenant.tenant.id, "operator")
    forged = await client.post("/console/login", {"email": email, "password": "whatever"}, csrf=False)
    assert forged.status_code == 403
    limit = console_world.portal.settings.console_login_limit
    for _ in range(limit):
        wrong = await client.login(email, "not the password at all")
        assert wrong.status_code == 401
    blocked = await client.login(email)
    assert blocked.status_code == 429
    assert "__Host-console" not in client.cookies


async def test_one_tenants_account_never_sees_another_tenants_invoice(
    console_world: ConsoleWorld, client: ConsoleClient
) -> None:
    world = console_world.dun
    ours, theirs = (
        await new_tenant(world.ledger, world.ledger_stub),
        await new_tenant(world.ledger, world.ledger_stub),
    )
    mine = await ours.issue(invoice_request(customer=customer_input("K-1", name="Vår Kunde AS")))
    foreign = await theirs.issue(invoice_request(customer=customer_input("K-1", name="Hemmelig Kunde AS")))
    assert mine.invoice_number == foreign.invoice_number
    await client.login(await console_world.account(ours.tenant.id, "admin"))

    page = await client.get(f"/console/invoices/{foreign.id}")
    assert page.status_code == 404
    assert "Hemmelig" not in page.text
    found = await client.get("/console/search", q=foreign.invoice_number)
    assert found.status_code == 303
    assert found.headers["location"] == f"/console/invoices/{mine.id}"
    by_name = await client.get("/console/search", q="Hemmelig")
    assert "Hemmelig" not in by_name.text.replace('value="Hemmelig"', "")
    customer = await client.get(f"/console/customers/{foreign.customer_id}")
    assert customer.status_code == 404
    # The tenant cannot be chosen by the request: switching to one the account has no role on is refused.
    switched = await client.post("/console/tenant", {"tenant": theirs.tenant.id})
    assert switched.status_code == 403


async def test_customer_service_may_not_allocate_payments(
    console_world: ConsoleWorld, client: ConsoleClient
) -> None:
    tenant = await new_tenant(console_world.dun.ledger, console_world.dun.ledger_stub)
    await client.login(await console_world.account(tenant.tenant.id, "customer_service"))
    await client.get("/console/queues/review")
    refused = await client.post("/console/payments/some-payment/allocate", {"suggestion": "0"})
    assert refused.status_code == 403
    assert (await client.get("/console/audit")).status_code == 403


async def test_a_disabled_account_is_signed_out_at_once(
    console_world: ConsoleWorld, client: ConsoleClient
) -> None:
    tenant = await new_tenant(console_world.dun.ledger, console_world.dun.ledger_stub)
    email = await console_world.account(tenant.tenant.id, "operator")
    await client.login(email)
    assert (await client.get("/console/queues/flagged")).status_code == 200
    accounts = console_world.portal.store.db[CONSOLE_ACCOUNTS]
    await accounts.update_one({"email": email}, {"$set": {"disabled": True}})
    assert (await client.get("/console/queues/flagged")).status_code == 303
    assert (await client.login(email)).status_code == 401


async def test_the_console_speaks_the_browsers_language(client: ConsoleClient) -> None:
    norwegian = await client.http.get("/console/login", headers={"accept-language": ""})
    assert '<html lang="nb">' in norwegian.text
    assert "Logg inn i konsollen" in norwegian.text
    swedish = await client.http.get("/console/login", headers={"accept-language": "sv-SE,sv;q=0.9"})
    assert "Logga in i konsolen" in swedish.text
