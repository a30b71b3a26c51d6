"""The customer's invoice page, against the real ledger, renderer, dispatcher and dunning service:
the link from the delivered e-mail, the open recorded, the amount, a part-payment arriving live,
a message, a dispute that holds dunning, and a channel for future invoices."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from fordring.dunning.v1 import dunning_pb2 as dunpb
from fordring.dunning.v1.dunning_pb2_grpc import DunningServiceStub
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import notes_pb2 as npb
from fordring.ledger.v1 import terms_pb2 as tpb
from fordring.ledger.v1.notes_pb2_grpc import InvoiceNoteServiceStub
from fordring.ledger.v1.terms_pb2_grpc import InvoiceTermsServiceStub

from services.portal.i18n import Translator
from tests.support.dispatcher import consumer

if TYPE_CHECKING:
    from fordring.dunning.v1.dunning_pb2_grpc import DunningServiceAsyncStub
from tests.support.ledger import Metadata, eventually, invoice_request
from tests.support.metrics import sample
from tests.support.portal import Customer, PortalWorld, csrf_of, link_in_mail, next_invoice_event, version_of

pytestmark = pytest.mark.integration


async def test_the_customer_journey(portal_world: PortalWorld) -> None:
    world = portal_world.dispatch
    tenant = await world.tenant()
    number = f"P-{uuid.uuid4().hex[:8]}"
    address = f"kari.{number.lower()}@example.no"
    invoice = await tenant.issue(invoice_request(customer=consumer(number, consents={"email": True})))
    await world.wait_deliveries(
        tenant, invoice.id, lambda ds: any(d.channel == "email" and d.status != "queued" for d in ds)
    )
    mail = next(
        path for path in reversed(world.sandbox.mails()) if address in path.read_text(errors="replace")
    )
    link = link_in_mail(mail)

    async with Customer(portal_world.portal) as customer:
        page = await customer.get(link)
        assert page.status_code == 200, page.text
        assert '<html lang="nb">' in page.text
        assert "1 250,00 kr" in page.text
        assert invoice.kid in page.text
        assert page.headers["cache-control"] == "no-store"
        (session_cookie,) = customer.set_cookies
        assert "HttpOnly" in session_cookie
        assert "Secure" in session_cookie
        assert "SameSite=strict" in session_cookie
        assert session_cookie.startswith("__Host-")
        metrics = await customer.get("/metrics")
        assert sample(metrics.text, "fordring_invoice_pages_total", result="shown") >= 1
        deliveries = await world.deliveries(tenant, invoice.id)
        assert any(d.channel == "email" and d.opened_at for d in deliveries)

        pdf = await customer.get(f"{link}/pdf")
        assert pdf.status_code == 200
        assert pdf.content.startswith(b"%PDF")
        qr = await customer.get(f"{link}/qr.svg")
        assert qr.headers["content-type"].startswith("image/svg+xml")

        # A part-payment reaches the open page without a reload.
        async with customer.stream(f"{link}/live?v={version_of(page.text)}") as live:
            assert live.headers["content-type"].startswith("text/event-stream")
            lines = live.aiter_lines()
            await asyncio.sleep(0)  # the stream is open: what changes from now on reaches it
            await tenant.pay(invoice, 50_000)
            update = await asyncio.wait_for(
                next_invoice_event(lines, lambda data: "750,00 kr" in data["summary"]), timeout=30
            )
            assert "Delbetaling mottatt" in update["history"]
            assert update["said"] == "Delbetaling mottatt"

        csrf = csrf_of(page.text)
        sent = await customer.post(
            f"{link}/message", {"csrf": csrf, "text": "Hei!\nKan jeg dele opp betalingen?"}
        )
        assert sent.status_code == 303
        assert sent.headers["location"] == f"{link}?done=message#thread"
        after = await customer.get(link)
        assert "Kan jeg dele opp betalingen?" in after.text
        assert "Meldingen er sendt" in (await customer.get(sent.headers["location"])).text

        dunning: DunningServiceAsyncStub = DunningServiceStub(portal_world.dunning_channel)
        await eventually(
            lambda: _case(dunning, tenant.metadata, invoice.id),
            lambda case: case is not None,
            what="a dunning case",
        )
        disputed = await customer.post(f"{link}/dispute", {"csrf": csrf, "reason": "Varen kom aldri."})
        assert disputed.status_code == 303, disputed.text
        # Dunning holds the invoice: the same dispute again finds it held already.
        again = await dunning.Pause(
            dunpb.PauseRequest(
                invoice_id=invoice.id, kind="dispute", reason="disputed by the customer: Varen kom aldri."
            ),
            metadata=tenant.metadata,
        )
        assert again.already_paused
        thread = await InvoiceNoteServiceStub(portal_world.ledger_channel).ListInvoiceNotes(
            npb.ListInvoiceNotesRequest(invoice_id=invoice.id), metadata=tenant.metadata
        )
        assert [note.kind for note in thread.notes] == [npb.NOTE_KIND_MESSAGE, npb.NOTE_KIND_DISPUTE]
        assert "Du har bestridt fakturaen" in (await customer.get(link)).text

        asked = await customer.post(f"{link}/channel", {"csrf": csrf, "channel": "efaktura"})
        assert asked.status_code == 303
        got = await tenant.stub.GetCustomer(
            pb.GetCustomerRequest(customer_id=invoice.customer_id), metadata=tenant.metadata
        )
        assert got.customer.consents.efaktura
        assert got.customer.channel_preferences[0] == pb.CHANNEL_EFAKTURA


async def _case(stub: DunningServiceAsyncStub, metadata: Metadata, invoice_id: str) -> dunpb.Case | None:
    try:
        return await stub.GetCase(dunpb.GetCaseRequest(invoice_id=invoice_id), metadata=metadata)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


async def test_a_new_due_date_reaches_the_open_page(portal_world: PortalWorld) -> None:
    world = portal_world.dispatch
    tenant = await world.tenant()
    invoice = await tenant.issue(
        invoice_request(customer=consumer(f"P-{uuid.uuid4().hex[:8]}"), due_in_days=20)
    )
    await world.wait_deliveries(tenant, invoice.id, lambda ds: any(d.status != "queued" for d in ds))
    link = portal_world.link(invoice.id)
    later = date.fromisoformat(invoice.due_date) + timedelta(days=14)
    async with Customer(portal_world.portal) as customer:
        page = await customer.get(link + "?lang=en")
        async with customer.stream(f"{link}/live?v={version_of(page.text)}&lang=en") as live:
            lines = live.aiter_lines()
            await InvoiceTermsServiceStub(portal_world.ledger_channel).ChangeDueDate(
                tpb.ChangeDueDateRequest(
                    invoice_id=invoice.id,
                    due_date=later.isoformat(),
                    idempotency_key=f"more-time-{invoice.id}",
                ),
                metadata=tenant.metadata,
            )
            update = await asyncio.wait_for(
                next_invoice_event(lines, lambda data: later.isoformat() in data["summary"]), timeout=30
            )
    assert Translator("en").date(later) in update["summary"]
    assert "New due date" in update["history"]
    assert update["said"] == "New due date"
