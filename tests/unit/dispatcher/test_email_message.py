"""The e-mail as the customer's mail program sees it (the renderer's message, addressed, with the PDF),
and the provider's receipts as the dispatcher reads them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from typing import Any

import pytest

from services.dispatcher.adapters.base import BadReceipt, ChannelError, Creditor, Outgoing, Recipient
from services.dispatcher.adapters.email import EmailAdapter, build_message
from services.renderer.forms import Forms
from tests.support.renderer_samples import credit_note, no_consumer_invoice, se_invoice

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
SENT_AT = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def outgoing(**changes: Any) -> Outgoing:
    out = Outgoing(
        delivery_id="0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        tenant_id="tenant-1",
        invoice_id="inv-10024",
        invoice_number="10024",
        kind="invoice",
        channel="email",
        recipient=Recipient(
            customer_id="cus-1",
            customer_number="118204",
            name="Kari Nordmann",
            kind="consumer",
            email="kari.nordmann@example.no",
        ),
        creditor=Creditor(tenant_id="tenant-1", legal_name="Fjordline Energi AS", org_number="974760673"),
        documents={"email": Forms.email(no_consumer_invoice()), "pdf": PDF},
    )
    return replace(out, **changes)


def received(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def test_the_message_carries_our_headers_the_renderers_content_and_the_pdf() -> None:
    rendered = received(Forms.email(no_consumer_invoice()))

    raw = build_message(outgoing(), sender="faktura@fjordline-energi.no", now=SENT_AT)

    message = received(raw)
    assert message["From"] == "Fjordline Energi AS <faktura@fjordline-energi.no>"
    assert message["To"] == "Kari Nordmann <kari.nordmann@example.no>"
    assert message["Reply-To"] == "faktura@fjordline-energi.no"
    assert message["Date"].datetime == SENT_AT
    assert message["Message-ID"] == "<0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b@fordring.invalid>"
    assert message["X-Fordring-Delivery"] == "0195a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    assert message["Subject"] == rendered["Subject"]
    assert message.get_content_type() == "multipart/mixed"
    for kind in ("plain", "html"):
        part, original = message.get_body((kind,)), rendered.get_body((kind,))
        assert part is not None
        assert original is not None
        assert part.get_content() == original.get_content()
    (attachment,) = message.iter_attachments()
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "invoice-10024.pdf"
    assert attachment.get_content() == PDF


def test_the_wire_form_is_crlf_with_short_lines() -> None:
    raw = build_message(outgoing(), sender="faktura@fjordline-energi.no")

    lines = raw.split(b"\r\n")
    assert b"\n" not in b"".join(lines)
    assert max(len(line) for line in lines) <= 998
    assert raw.isascii()


def test_names_beyond_ascii_and_international_domains() -> None:
    out = outgoing(
        creditor=Creditor(tenant_id="t", legal_name="Ström & Söner Bygg AB", org_number="5566778899"),
        recipient=replace(outgoing().recipient, name="Åsa Ødegård", email="asa@blåbær.no"),
        documents={"email": Forms.email(se_invoice()), "pdf": PDF},
    )

    message = received(build_message(out, sender="faktura@stromsoner.se"))

    assert message["From"].addresses[0].display_name == "Ström & Söner Bygg AB"
    assert message["To"].addresses[0].display_name == "Åsa Ødegård"
    assert message["To"].addresses[0].addr_spec == "asa@xn--blbr-roah.no"


def test_a_credit_note_is_attached_under_the_renderers_name() -> None:
    out = outgoing(
        kind="credit_note",
        invoice_number="K-2025/7",
        documents={"email": Forms.email(credit_note()), "pdf": PDF},
    )

    (attachment,) = received(build_message(out, sender="a@b.no")).iter_attachments()

    assert attachment.get_filename() == "credit-note-K-2025-7.pdf"


def test_headers_the_renderer_set_are_replaced_or_kept_never_doubled() -> None:
    rendered = b"From: someone@else.no\r\nMessage-ID: <x@y>\r\nContent-Language: nb\r\n" + Forms.email(
        no_consumer_invoice()
    )

    message = received(build_message(outgoing(documents={"email": rendered, "pdf": PDF}), sender="a@b.no"))

    assert message.get_all("From") == ["Fjordline Energi AS <a@b.no>"]
    assert len(message.get_all("Message-ID") or []) == 1
    assert message.get_all("MIME-Version") == ["1.0"]
    # The message's language stays the message's.
    assert message["Content-Language"] == "nb"


def test_reply_to_is_the_one_given() -> None:
    message = received(build_message(outgoing(), sender="noreply@fordring.no", reply_to="kunde@fjordline.no"))

    assert message["Reply-To"] == "kunde@fjordline.no"


@pytest.mark.parametrize(
    ("changes", "code", "contact"),
    [
        ({"recipient": replace(outgoing().recipient, email="")}, "no_email", "email"),
        ({"recipient": replace(outgoing().recipient, email="kari@@example.no")}, "no_email", "email"),
        ({"recipient": replace(outgoing().recipient, email="kari <k@example.no>")}, "no_email", "email"),
        ({"recipient": replace(outgoing().recipient, email="kåri@example.no")}, "unsupported_address", None),
        ({"documents": {"email": b"x"}}, "no_document", None),
        ({"documents": {"pdf": PDF}}, "no_document", None),
        ({"documents": {"email": b"Content-Type: text/plain\r\n\r\nhei", "pdf": PDF}}, "no_document", None),
        ({"delivery_id": "a b>"}, "invalid_delivery_id", None),
    ],
)
def test_what_cannot_be_sent_is_refused_for_good(
    changes: dict[str, Any], code: str, contact: str | None
) -> None:
    with pytest.raises(ChannelError) as refused:
        build_message(outgoing(**changes), sender="a@b.no")

    assert (refused.value.retryable, refused.value.code, refused.value.contact) == (False, code, contact)


def test_no_sender_at_all_is_refused() -> None:
    adapter = EmailAdapter(host="127.0.0.1", port=1)

    with pytest.raises(ChannelError) as refused:
        adapter.sender_for(outgoing())
    assert (refused.value.retryable, refused.value.code) == (False, "no_sender")
    assert EmailAdapter(host="h", sender="post@fordring.no").sender_for(outgoing()) == "post@fordring.no"
    with_own = outgoing(creditor=replace(outgoing().creditor, email="faktura@fjordline.no"))
    assert EmailAdapter(host="h", sender="post@fordring.no").sender_for(with_own) == "faktura@fjordline.no"


# Receipts (PROTOCOLS.md, e-mail).

ADAPTER = EmailAdapter(host="127.0.0.1")


def receipt_body(**fields: Any) -> bytes:
    item = {
        "event_id": "evt-1",
        "delivery_id": "d-1",
        "message_id": "d-1@fordring.invalid",
        "status": "bounced",
        "reason": "550 5.1.1 mailbox unavailable",
        "at": "2025-03-14T09:31:00Z",
        **fields,
    }
    return json.dumps({k: v for k, v in item.items() if v is not None}).encode()


def test_a_bounce_flags_the_address() -> None:
    (receipt,) = ADAPTER.parse_receipts(receipt_body(), "application/json")

    assert (receipt.event_id, receipt.delivery_id, receipt.provider_ref) == (
        "evt-1",
        "d-1",
        "d-1@fordring.invalid",
    )
    assert (receipt.status, receipt.contact) == ("bounced", "email")
    assert receipt.occurred_at == datetime(2025, 3, 14, 9, 31, tzinfo=UTC)
    assert receipt.reason == "550 5.1.1 mailbox unavailable"


def test_a_soft_bounce_and_a_delivery_flag_nothing() -> None:
    soft, delivered = ADAPTER.parse_receipts(
        b"[" + receipt_body(reason="452 4.2.2 mailbox full") + b"," + receipt_body(status="delivered") + b"]",
        "application/json; charset=utf-8",
    )

    assert (soft.status, soft.contact) == ("bounced", None)
    assert (delivered.status, delivered.contact) == ("delivered", None)


def test_the_delivery_is_found_by_our_message_id() -> None:
    (receipt,) = ADAPTER.parse_receipts(
        receipt_body(delivery_id=None, message_id="<d-9@fordring.invalid>"), ""
    )

    assert (receipt.delivery_id, receipt.provider_ref) == ("d-9", "d-9@fordring.invalid")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", "application/json"),
        (receipt_body(), "text/plain"),
        (b"[]", "application/json"),
        (b'"bounced"', "application/json"),
        (receipt_body(status="opened"), "application/json"),
        (receipt_body(event_id=None), "application/json"),
        (receipt_body(at="yesterday"), "application/json"),
        (receipt_body(delivery_id=None, message_id="<abc@elsewhere.example>"), "application/json"),
        (receipt_body(delivery_id=None, message_id=None), "application/json"),
    ],
)
def test_what_is_not_a_receipt_is_refused(body: bytes, content_type: str) -> None:
    with pytest.raises(BadReceipt):
        ADAPTER.parse_receipts(body, content_type)


def test_a_nudge_goes_without_an_attachment() -> None:
    nudge = replace(no_consumer_invoice(), kind="nudge")
    rendered = received(Forms.email(nudge))

    message = received(
        build_message(
            outgoing(kind="nudge", documents={"email": Forms.email(nudge)}),
            sender="faktura@fjordline-energi.no",
        )
    )

    assert message["Subject"] == rendered["Subject"]
    assert list(message.iter_attachments()) == []
    plain = message.get_body(("plain",))
    assert plain is not None
    assert nudge.payment_link in plain.get_content()


def test_a_reminder_without_its_pdf_is_still_refused() -> None:
    with pytest.raises(ChannelError, match="no pdf form"):
        build_message(
            outgoing(kind="reminder", documents={"email": Forms.email(no_consumer_invoice())}),
            sender="faktura@fjordline-energi.no",
        )
