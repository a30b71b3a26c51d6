"""The renderer against the real ledger, broker and database: ledger events in, documents stored in
the invoice hotel and `DocumentRendered` out; each document read back as a customer would see it."""

from __future__ import annotations

import asyncio
import email
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.policy import default
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.renderer.v1 import renderer_pb2 as rpb

from services.common.events import (
    DLQ_SUFFIX,
    DUNNING_TOPIC,
    INVOICE_TOPIC,
    DunningActionTaken,
    DunningActionTakenData,
    InvoiceIssued,
    parse_event,
)
from services.common.links import invoice_from_token
from services.ledger.profiles import change_profile
from services.renderer.adapters.ehf import render_ehf as real_render
from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.kafka import TopicReader, publish
from tests.support.ledger import (
    LINK_SECRET,
    customer_input,
    eventually,
    invoice_request,
    line,
    today,
)
from tests.support.metrics import sample
from tests.support.peppol import official_validator
from tests.support.renderer import FORMS, RenderWorld, by_form, documents_of, pdf_text, read_document

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.integration


def consumer() -> pb.CustomerInput:
    return pb.CustomerInput(
        number="P-77",
        name="Kari Nordmann",
        kind=pb.CUSTOMER_KIND_CONSUMER,
        email="kari@example.no",
        phone="+4791234567",
        address=customer_input().address,
        language="nb",
        consents=pb.Consents(email=True, sms=True),
    )


def rendered_events(reader: TopicReader, tenant_id: str, invoice_id: str) -> list[dict[str, Any]]:
    return [
        e["data"]
        for _, e in reader.events(tenant_id=tenant_id)
        if e["type"] == "DocumentRendered" and e["subject"] == invoice_id
    ]


async def test_an_issued_invoice_gets_every_form_once_and_announces_each(
    render_world: RenderWorld, tmp_path: Path
) -> None:
    w = render_world
    renderer_stub = w.stub
    document_events = w.document_events
    tenant = await w.tenant()
    invoice = await tenant.issue(
        invoice_request(lines=[line(unit_price_minor=12_345_00, description="Strøm & nettleie <mars>")])
    )

    docs = by_form(await documents_of(renderer_stub, tenant, invoice.id, at_least=5))
    assert set(docs) == {"pdf", "html", "ehf", "email", "sms"}

    def five() -> list[dict[str, Any]] | None:
        found = rendered_events(document_events, tenant.tenant.id, invoice.id)
        return found if len(found) >= 5 else None

    announced = await document_events.wait_for(five, what="DocumentRendered for every form")
    assert sorted(e["form"] for e in announced) == ["ehf", "email", "html", "pdf", "sms"]
    assert {e["document_id"] for e in announced} == {d.id for d in docs.values()}
    assert len({e["rendering_id"] for e in announced}) == 1
    assert all(sorted(e["forms_available"]) == ["ehf", "email", "html", "pdf", "sms"] for e in announced)
    assert {e["sha256"] for e in announced} == {d.sha256 for d in docs.values()}

    # The PDF, read back as text, says who asks for what, how much, by when, and the KID.
    _, pdf = await read_document(renderer_stub, tenant, docs["pdf"].id)
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    gross = invoice.gross_total.minor_units
    amount = f"{gross // 100:,}".replace(",", " ") + f",{gross % 100:02d}"
    for expected in ("Fjordlys Energi AS", "Fjordbris Kaffe AS", invoice.invoice_number, amount):
        assert expected in text, expected
    assert invoice.kid.replace(" ", "") in text.replace(" ", "")
    due = datetime.fromisoformat(invoice.due_date)
    assert f"{due:%d.%m.%Y}" in text

    # The EHF passes the official validator (XSD, CEN and Peppol rules, NO-R included).
    _, ehf = await read_document(renderer_stub, tenant, docs["ehf"].id)
    path = tmp_path / "invoice.xml"
    path.write_bytes(ehf)
    checked = subprocess.run(
        [str(official_validator()), "--json", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert invoice.kid.encode() in ehf

    # The e-mail has a subject, text and HTML with the amount and the invoice's page; the SMS the link.
    _, raw = await read_document(renderer_stub, tenant, docs["email"].id)
    message = email.message_from_bytes(raw, policy=default)
    assert invoice.invoice_number in str(message["Subject"])
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    assert amount in plain.get_content()
    _, sms = await read_document(renderer_stub, tenant, docs["sms"].id)
    link = next(word for word in sms.decode().split() if "/i/" in word)
    assert invoice_from_token(link.rsplit("/i/", 1)[1].rstrip("."), LINK_SECRET) == invoice.id
    assert len(sms.decode()) <= 160


async def test_a_consumer_gets_no_ehf(render_world: RenderWorld) -> None:
    w = render_world
    renderer_stub = w.stub
    tenant = await w.tenant()
    invoice = await tenant.issue(invoice_request(customer=consumer()))

    docs = by_form(await documents_of(renderer_stub, tenant, invoice.id, at_least=4))
    await asyncio.sleep(0.5)
    assert set(by_form(await documents_of(renderer_stub, tenant, invoice.id))) == {
        "pdf",
        "html",
        "email",
        "sms",
    }
    assert set(docs) == {"pdf", "html", "email", "sms"}


async def test_a_credit_note_names_the_invoice_it_credits(render_world: RenderWorld, tmp_path: Path) -> None:
    w = render_world
    renderer_stub = w.stub
    tenant = await w.tenant()
    invoice = await tenant.issue(invoice_request())
    credited = await tenant.credit(invoice, reason="Feil antall")
    note = credited.credit_note

    docs = by_form(
        await documents_of(renderer_stub, tenant, note.id, at_least=4), rpb.DOCUMENT_KIND_CREDIT_NOTE
    )
    assert set(docs) == {"pdf", "html", "email", "ehf"}
    _, pdf = await read_document(renderer_stub, tenant, docs["pdf"].id)
    text = pdf_text(pdf)
    assert invoice.invoice_number in text
    assert "Feil antall" in text
    _, ehf = await read_document(renderer_stub, tenant, docs["ehf"].id)
    assert b"<cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>" in ehf
    assert f"<cbc:ID>{invoice.invoice_number}</cbc:ID>".encode() in ehf
    path = tmp_path / "credit.xml"
    path.write_bytes(ehf)
    checked = subprocess.run(
        [str(official_validator()), str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout


async def test_a_reminder_states_the_claim_the_fee_and_the_deadline(
    render_world: RenderWorld, producer: AIOKafkaProducer
) -> None:
    w = render_world
    renderer_stub = w.stub
    topics = w.topics
    tenant = await w.tenant()
    invoice = await tenant.issue(invoice_request(issue_date=today() - timedelta(days=40), due_in_days=14))
    deadline = today() + timedelta(days=14)
    action = DunningActionTaken(
        tenant_id=tenant.tenant.id,
        subject=invoice.id,
        occurred_at=datetime.now(UTC),
        data=DunningActionTakenData(
            action_id=f"action-{uuid.uuid4()}",
            invoice_id=invoice.id,
            based_on_version=invoice.version,
            action="reminder",
            fee_minor=35_00,
            description="Purregebyr",
            deadline=deadline.isoformat(),
        ),
    )
    await publish(producer, topics[DUNNING_TOPIC], action)

    docs = by_form(
        await documents_of(renderer_stub, tenant, invoice.id, at_least=8, timeout=60),
        rpb.DOCUMENT_KIND_REMINDER,
    )
    assert set(docs) == {"pdf", "html", "email", "sms"}
    _, pdf = await read_document(renderer_stub, tenant, docs["pdf"].id)
    text = pdf_text(pdf)
    assert f"{deadline:%d.%m.%Y}" in text
    assert "35,00" in text
    gross = invoice.gross_total.minor_units
    assert f"{gross // 100:,}".replace(",", " ") + f",{gross % 100:02d}" in text


async def test_a_nudge_is_a_friendly_email_and_sms_with_the_payment_link(
    render_world: RenderWorld, producer: AIOKafkaProducer
) -> None:
    w = render_world
    tenant = await w.tenant()
    invoice = await tenant.issue(
        invoice_request(customer=consumer(), issue_date=today() - timedelta(days=20), due_in_days=14)
    )
    await documents_of(w.stub, tenant, invoice.id, at_least=4)  # the invoice's own forms first
    nudge = DunningActionTaken(
        tenant_id=tenant.tenant.id,
        subject=invoice.id,
        occurred_at=datetime.now(UTC),
        data=DunningActionTakenData(
            action_id=f"action-{uuid.uuid4()}",
            invoice_id=invoice.id,
            based_on_version=invoice.version,
            action="nudge",
            channels=["sms", "email"],
            payment_link=True,
        ),
    )
    await publish(producer, w.topics[DUNNING_TOPIC], nudge)

    docs = by_form(await documents_of(w.stub, tenant, invoice.id, at_least=6), rpb.DOCUMENT_KIND_NUDGE)
    assert set(docs) == {"email", "sms"}  # no PDF, no page, no EHF: only the message
    _, sms = await read_document(w.stub, tenant, docs["sms"].id)
    text = sms.decode()
    assert len(text) <= 160
    gross = invoice.gross_total.minor_units
    assert f"{gross // 100:,}".replace(",", " ") + f",{gross % 100:02d}" in text
    assert f"{datetime.fromisoformat(invoice.due_date):%d.%m.%Y}" in text
    link = text.split()[-1]
    assert invoice_from_token(link.rsplit("/i/", 1)[1], LINK_SECRET) == invoice.id
    _, raw = await read_document(w.stub, tenant, docs["email"].id)
    message = email.message_from_bytes(raw, policy=default)
    assert str(message["Subject"]).startswith("Vennlig påminnelse: faktura " + invoice.invoice_number)
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None
    assert link in plain.get_content()
    assert "PDF" not in plain.get_content()

    def announced() -> list[dict[str, Any]] | None:
        found = [
            e
            for e in rendered_events(w.document_events, tenant.tenant.id, invoice.id)
            if e["kind"] == "nudge"
        ]
        return found if len(found) >= 2 else None

    events = await w.document_events.wait_for(announced, what="DocumentRendered for the nudge")
    assert sorted(e["form"] for e in events) == ["email", "sms"]
    assert all(e["channels"] == ["sms", "email"] for e in events)
    assert all(sorted(e["forms_available"]) == ["email", "sms"] for e in events)
    assert {e["source_event_id"] for e in events} != {nudge.id}  # rendered for the ledger's ChargeAdded


async def test_a_business_reminder_states_its_compensation_and_the_interest_to_date(
    render_world: RenderWorld, producer: AIOKafkaProducer
) -> None:
    w = render_world
    tenant = await w.tenant()
    invoice = await tenant.issue(invoice_request(issue_date=today() - timedelta(days=40), due_in_days=14))
    deadline = today() + timedelta(days=14)
    reminder = DunningActionTaken(
        tenant_id=tenant.tenant.id,
        subject=invoice.id,
        occurred_at=datetime.now(UTC),
        data=DunningActionTakenData(
            action_id=f"action-{uuid.uuid4()}",
            invoice_id=invoice.id,
            based_on_version=invoice.version,
            action="reminder",
            fee_minor=35_00,
            compensation_minor=435_00,
            interest_to_date_minor=9_87,
            description="Purregebyr",
            deadline=deadline.isoformat(),
            channels=["email", "print"],
        ),
    )
    await publish(producer, w.topics[DUNNING_TOPIC], reminder)

    docs = by_form(
        await documents_of(w.stub, tenant, invoice.id, at_least=9, timeout=60), rpb.DOCUMENT_KIND_REMINDER
    )
    assert set(docs) == {"pdf", "html", "email", "sms"}
    _, pdf = await read_document(w.stub, tenant, docs["pdf"].id)
    text = " ".join(pdf_text(pdf).split())
    assert "Standardkompensasjon (forsinkelsesrenteloven § 3a)" in text
    assert "435,00" in text
    assert "Påløpt forsinkelsesrente per" in text
    assert "9,87" in text
    _, raw = await read_document(w.stub, tenant, docs["email"].id)
    plain = email.message_from_bytes(raw, policy=default).get_body(preferencelist=("plain",))
    assert plain is not None
    assert "Påløpt forsinkelsesrente" in plain.get_content()


async def test_a_redelivered_event_renders_nothing_twice(
    render_world: RenderWorld, producer: AIOKafkaProducer
) -> None:
    w = render_world
    renderer_stub = w.stub
    topics = w.topics
    invoice_events = w.invoice_events
    document_events = w.document_events
    tenant = await w.tenant()
    invoice = await tenant.issue(invoice_request())
    first = await documents_of(renderer_stub, tenant, invoice.id, at_least=5)
    record = await invoice_events.wait_for(
        lambda: next(
            (
                r
                for r, e in invoice_events.events(tenant_id=tenant.tenant.id)
                if e["type"] == "InvoiceIssued" and e["subject"] == invoice.id
            ),
            None,
        ),
        what="InvoiceIssued",
    )
    issued = parse_event(record.value)
    assert isinstance(issued, InvoiceIssued)

    for _ in range(3):
        await publish(producer, topics[INVOICE_TOPIC], issued)
    # A later event on the same key proves the redeliveries were read: they come before it.
    await tenant.credit(invoice)
    await documents_of(renderer_stub, tenant, invoice.id, at_least=1)
    credit_docs = await eventually(
        lambda: tenant.stub.GetInvoice(pb.GetInvoiceRequest(invoice_id=invoice.id), metadata=tenant.metadata),
        lambda reply: bool(reply.invoice.credit_note_ids),
        what="credit note",
    )
    note_id = credit_docs.invoice.credit_note_ids[0]
    await documents_of(renderer_stub, tenant, note_id, at_least=4)

    again = await documents_of(renderer_stub, tenant, invoice.id)
    assert sorted(d.id for d in again) == sorted(d.id for d in first)
    assert len(rendered_events(document_events, tenant.tenant.id, invoice.id)) == len(first)


async def test_an_event_that_cannot_be_rendered_is_dead_lettered_and_the_rest_flows(
    render_world: RenderWorld, producer: AIOKafkaProducer, backend: Backend
) -> None:
    w = render_world
    renderer_stub = w.stub
    topics = w.topics
    invoice_events = w.invoice_events
    tenant = await w.tenant()
    real = await tenant.issue(invoice_request())
    record = await invoice_events.wait_for(
        lambda: next(
            (r for r, e in invoice_events.events(tenant_id=tenant.tenant.id) if e["type"] == "InvoiceIssued"),
            None,
        ),
        what="InvoiceIssued",
    )
    issued = parse_event(record.value)
    assert isinstance(issued, InvoiceIssued)
    # The same event shape for an invoice the ledger never had.
    ghost_id = str(uuid.uuid4())
    ghost = issued.model_copy(
        update={
            "id": str(uuid.uuid4()),
            "subject": ghost_id,
            "data": issued.data.model_copy(
                update={"invoice": issued.data.invoice.model_copy(update={"invoice_id": ghost_id})}
            ),
        }
    )
    await publish(producer, topics[INVOICE_TOPIC], ghost)
    after = await tenant.issue(invoice_request())

    dlq = TopicReader(backend.kafka_bootstrap, topics[INVOICE_TOPIC + DLQ_SUFFIX])
    await dlq.start()
    try:
        parked = await dlq.wait_for(
            lambda: next((r for r in dlq.records if r.envelope() and r.envelope()["id"] == ghost.id), None),  # type: ignore[index]
            timeout=60,
            what="the ghost event on the DLQ",
        )
    finally:
        await dlq.stop()
    assert b"NotFound" in parked.headers["x-dlq-reason"]
    assert parked.headers["x-dlq-consumer"] == b"renderer"
    assert len(await documents_of(renderer_stub, tenant, after.id, at_least=5)) == 5
    assert len(await documents_of(renderer_stub, tenant, real.id, at_least=5)) == 5


async def test_an_ehf_that_breaks_peppol_rules_is_dead_lettered_with_the_rules_and_the_rest_stored(
    render_world: RenderWorld, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A defect in the EHF writer (here: the buyer reference dropped for one invoice) must not reach
    the buyer's access point: the real validator refuses it, the other forms are stored, and the event
    goes to the dead-letter topic with the rule it broke."""
    w = render_world
    tenant = await w.tenant()

    def render_ehf(view: Any, *, pdf: bytes | None = None) -> bytes:
        xml = real_render(view, pdf=pdf)
        if view.kind != "credit_note":
            return xml
        return re.sub(rb"<cbc:BuyerReference>.*?</cbc:BuyerReference>", b"", xml, flags=re.S)

    monkeypatch.setattr("services.renderer.forms.render_ehf", render_ehf)
    credited = await tenant.issue(invoice_request())
    faulty = (await tenant.credit(credited, reason="Feil pris")).credit_note
    after = await tenant.issue(invoice_request())

    dlq = TopicReader(backend.kafka_bootstrap, w.topics[INVOICE_TOPIC + DLQ_SUFFIX])
    await dlq.start()
    try:
        parked = await dlq.wait_for(
            lambda: next(
                (
                    r
                    for r in dlq.records
                    if (e := r.envelope())
                    and e["type"] == "CreditNoteIssued"
                    and e["data"]["credit_note"]["invoice_id"] == faulty.id
                ),
                None,
            ),
            timeout=60,
            what="the credit note on the DLQ",
        )
    finally:
        await dlq.stop()
    reason = parked.headers["x-dlq-reason"].decode()
    assert reason.startswith("ehf refused:")
    assert "PEPPOL-EN16931-R003" in reason
    assert parked.headers["x-dlq-consumer"] == b"renderer"
    stored = by_form(await documents_of(w.stub, tenant, faulty.id, at_least=3), rpb.DOCUMENT_KIND_CREDIT_NOTE)
    assert set(stored) == {"pdf", "html", "email"}
    assert set(by_form(await documents_of(w.stub, tenant, after.id, at_least=5))) == set(FORMS)


async def test_every_rpc_keeps_tenants_apart(render_world: RenderWorld) -> None:
    w = render_world
    renderer_stub = w.stub
    owner = await w.tenant()
    other = await w.tenant(legal_name="Annen Kreditor AS")
    invoice = await owner.issue(invoice_request())
    docs = await documents_of(renderer_stub, owner, invoice.id, at_least=5)

    listed = await renderer_stub.ListDocuments(
        rpb.ListDocumentsRequest(invoice_id=invoice.id), metadata=other.metadata
    )
    assert list(listed.documents) == []
    listed = await renderer_stub.ListDocuments(
        rpb.ListDocumentsRequest(invoice_number=invoice.invoice_number), metadata=other.metadata
    )
    assert list(listed.documents) == []
    calls: list[Callable[[Any], Awaitable[Any]]] = [
        lambda md: _drain(
            renderer_stub.GetDocument(rpb.GetDocumentRequest(document_id=docs[0].id), metadata=md)
        ),
        lambda md: _drain(
            renderer_stub.GetDocument(
                rpb.GetDocumentRequest(latest=rpb.LatestDocument(invoice_id=invoice.id, form=FORMS["pdf"])),
                metadata=md,
            )
        ),
        lambda md: renderer_stub.RenderPreview(
            rpb.RenderPreviewRequest(invoice_id=invoice.id, form=FORMS["pdf"]), metadata=md
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(other.metadata)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await call((("authorization", "Bearer not-a-key"),))
        assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The owner still reads everything.
    await _drain(
        renderer_stub.GetDocument(rpb.GetDocumentRequest(document_id=docs[0].id), metadata=owner.metadata)
    )


async def _drain(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


async def test_a_preview_renders_any_form_without_storing_it(render_world: RenderWorld) -> None:
    w = render_world
    renderer_stub = w.stub
    tenant = await w.tenant()
    invoice = await tenant.issue(invoice_request())
    stored = await documents_of(renderer_stub, tenant, invoice.id, at_least=5)

    for name, form in FORMS.items():
        preview = await renderer_stub.RenderPreview(
            rpb.RenderPreviewRequest(invoice_number=invoice.invoice_number, form=form, language="en"),
            metadata=tenant.metadata,
        )
        assert preview.content, name
    reminder = await renderer_stub.RenderPreview(
        rpb.RenderPreviewRequest(invoice_id=invoice.id, kind=rpb.DOCUMENT_KIND_REMINDER, form=FORMS["pdf"]),
        metadata=tenant.metadata,
    )
    assert "Purring" in pdf_text(reminder.content) or "purring" in pdf_text(reminder.content).lower()
    assert len(await documents_of(renderer_stub, tenant, invoice.id)) == len(stored)


async def test_documents_keep_the_profile_of_their_invoice(render_world: RenderWorld) -> None:
    w = render_world
    renderer_stub = w.stub
    ledger_app = w.ledger
    tenant = await w.tenant()
    before = await tenant.issue(invoice_request())
    await documents_of(renderer_stub, tenant, before.id, at_least=5)
    profile = (
        await tenant.stub.GetCreditorProfile(pb.GetCreditorProfileRequest(), metadata=tenant.metadata)
    ).profile
    # What the operator's `tenants update` does.
    await change_profile(
        ledger_app.store,
        tenant.tenant.id,
        {"legal_name": "Fjordlys Energi Nord AS"},
        now=ledger_app.clock.now(),
        actor="test",
    )
    after = await tenant.issue(invoice_request())
    new_docs = by_form(await documents_of(renderer_stub, tenant, after.id, at_least=5))
    old_preview = await renderer_stub.RenderPreview(
        rpb.RenderPreviewRequest(invoice_id=before.id, form=FORMS["pdf"]), metadata=tenant.metadata
    )

    _, new_pdf = await read_document(renderer_stub, tenant, new_docs["pdf"].id)
    assert "Fjordlys Energi Nord AS" in pdf_text(new_pdf)
    assert "Fjordlys Energi Nord AS" not in pdf_text(old_preview.content)
    assert profile.legal_name in pdf_text(old_preview.content)


async def test_retention_keeps_documents_their_time_and_not_longer(
    render_world: RenderWorld, clock: MovableClock
) -> None:
    w = render_world
    renderer_stub = w.stub
    renderer_app = w.renderer
    tenant = await w.tenant()
    invoice = await tenant.issue(invoice_request())
    await documents_of(renderer_stub, tenant, invoice.id, at_least=5)

    clock.advance(timedelta(days=renderer_app.settings.document_retention_days - 1))
    assert await renderer_app.sweep_documents() == 0
    assert len(await documents_of(renderer_stub, tenant, invoice.id)) == 5
    clock.advance(timedelta(days=2))
    assert await renderer_app.sweep_documents() >= 5
    listed = await renderer_stub.ListDocuments(
        rpb.ListDocumentsRequest(invoice_id=invoice.id), metadata=tenant.metadata
    )
    assert list(listed.documents) == []


async def test_the_renderer_reports_health_readiness_and_what_it_rendered(render_world: RenderWorld) -> None:
    w = render_world
    port = w.renderer.runtime.http.port

    async def get(path: str) -> tuple[int, str]:
        def fetch() -> tuple[int, str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                return reply.status, reply.read().decode()

        return await asyncio.to_thread(fetch)

    assert await get("/healthz") == (200, "ok\n")
    status, readiness = await get("/readyz")
    assert status == 200
    assert {line.split(":")[0] for line in readiness.splitlines()} >= {"mongodb", "kafka", "outbox"}

    def stored(text: str) -> float:
        return sample(text, "fordring_documents_rendered_total", 0.0, form="pdf", outcome="stored")

    before = stored((await get("/metrics"))[1])
    tenant = await w.tenant()
    invoice = await tenant.issue(invoice_request())
    await documents_of(w.stub, tenant, invoice.id, at_least=5)

    async def metrics() -> str:
        return (await get("/metrics"))[1]

    text = await eventually(metrics, lambda t: stored(t) >= before + 1, what="the PDF counted")
    assert sample(text, "fordring_render_seconds_count", kind="invoice") >= 1
    assert sample(text, "fordring_events_published_total", type="DocumentRendered") >= 5
