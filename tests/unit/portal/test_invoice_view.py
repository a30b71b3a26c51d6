"""The invoice page's content from what the services answer: amounts in the reader's language, the
history a customer may see (and none of the bookkeeping), the consents, a dispute's state."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

from fordring.common.v1 import common_pb2 as cpb
from fordring.dispatcher.v1 import dispatcher_pb2 as dpb
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import notes_pb2 as npb
from fordring.ledger.v1 import tenants_pb2 as tpb

from services.portal.customer.view import account_of, invoice_page, notes_of
from services.portal.i18n import STRINGS, Translator, pick_language


def _invoice(**changes: object) -> pb.Invoice:
    values: dict[str, object] = {
        "id": "inv-1",
        "invoice_number": "1042",
        "kid": "0000010428",
        "customer_id": "c-1",
        "customer_name": "Kari Nordmann",
        "due_date": "2027-01-15",
        "currency": "NOK",
        "gross_total": cpb.Money(minor_units=125_000, currency="NOK"),
        "paid_total": cpb.Money(minor_units=50_000, currency="NOK"),
        "balance": cpb.Money(minor_units=75_000, currency="NOK"),
        "status": pb.INVOICE_STATUS_PART_PAID,
        "version": 3,
        "order_reference": "PO-77",
        "lines": [
            pb.InvoiceLine(
                description="Strøm",
                quantity="1",
                unit_price_minor=100_000,
                vat_rate="25",
                net_amount_minor=100_000,
            )
        ],
    }
    values.update(changes)
    return pb.Invoice(**values)  # type: ignore[arg-type]


def _history() -> list[pb.HistoryEntry]:
    return [
        pb.HistoryEntry(type="issued", at="2026-12-01T09:00:00Z"),
        pb.HistoryEntry(type="proposal_rejected", at="2026-12-01T09:30:00Z"),
        pb.HistoryEntry(
            type="payment_applied", at="2026-12-02T10:00:00Z", status_after=pb.INVOICE_STATUS_PART_PAID
        ),
    ]


def test_the_page_in_norwegian() -> None:
    profile = tpb.CreditorProfile(
        legal_name="Fjordkraft AS", bank_account="86011117947", email="kunde@fjord.no"
    )
    customer = pb.Customer(consents=pb.Consents(email=True, efaktura=True))
    deliveries = [
        dpb.Delivery(
            channel="email",
            document_kind="invoice",
            status="opened",
            sent_at="2026-12-01T09:01:00Z",
            opened_at="2026-12-01T12:00:00Z",
        )
    ]
    page = invoice_page(_invoice(), customer, profile, _history(), deliveries, [], Translator("nb"))
    assert page.amount_left == "750,00 kr"
    assert page.total == "1 250,00 kr"
    assert page.status_text == "Delvis betalt"
    assert page.account == "8601 11 17947"
    assert page.due_date == date(2027, 1, 15)
    assert page.open_to_pay
    assert page.consents == frozenset({"email", "efaktura"})
    assert page.references == (("reference.order", "PO-77"),)
    # Newest first; the rejected proposal is bookkeeping, not the customer's business.
    assert [h.text for h in page.history] == [
        "Delbetaling mottatt",
        "Du åpnet fakturaen",
        "Faktura sendt på e-post",
        "Fakturaen ble utstedt",
    ]


def test_the_page_in_english_and_swedish() -> None:
    english = invoice_page(_invoice(), None, None, [], [], [], Translator("en"))
    assert english.amount_left == "NOK 750.00"
    assert english.status_text == "Part-paid"
    swedish = invoice_page(
        _invoice(currency="SEK", balance=cpb.Money(minor_units=75_000, currency="SEK")),
        None,
        tpb.CreditorProfile(bankgiro="5050-1055"),
        [],
        [],
        [],
        Translator("sv"),
    )
    assert swedish.amount_left == "750,00 kr"
    assert swedish.account == "Bankgiro 5050-1055"


def test_a_paid_or_credited_invoice_asks_for_nothing() -> None:
    paid = _invoice(status=pb.INVOICE_STATUS_PAID, balance=cpb.Money(minor_units=0, currency="NOK"))
    assert not invoice_page(paid, None, None, [], [], [], Translator("nb")).open_to_pay
    credited = _invoice(status=pb.INVOICE_STATUS_CREDITED)
    assert not invoice_page(credited, None, None, [], [], [], Translator("nb")).open_to_pay


def test_a_dispute_stands_until_it_is_resolved() -> None:
    def note(kind: int, author: int = npb.NOTE_AUTHOR_CUSTOMER) -> npb.InvoiceNote:
        return npb.InvoiceNote(kind=kind, author=author, text="x", created_at="2026-12-02T10:00:00Z")  # type: ignore[arg-type]

    disputed = notes_of([note(npb.NOTE_KIND_MESSAGE), note(npb.NOTE_KIND_DISPUTE)])
    assert invoice_page(_invoice(), None, None, [], [], disputed, Translator("nb")).disputed
    resolved = notes_of(
        [note(npb.NOTE_KIND_DISPUTE), note(npb.NOTE_KIND_DISPUTE_RESOLVED, npb.NOTE_AUTHOR_STAFF)]
    )
    assert not invoice_page(_invoice(), None, None, [], [], resolved, Translator("nb")).disputed
    assert [n.author for n in resolved] == ["customer", "staff"]
    assert resolved[0].at == datetime(2026, 12, 2, 10, tzinfo=UTC)


def test_accounts_as_banks_ask_for_them() -> None:
    assert account_of(tpb.CreditorProfile(iban="NO9386011117947", bic="DNBANOKK"), "EUR") == (
        "IBAN NO9386011117947 (BIC DNBANOKK)"
    )
    assert account_of(None, "NOK") == ""


def test_languages_and_words() -> None:
    assert pick_language("sv-SE,sv;q=0.9,en;q=0.8") == "sv"
    assert pick_language("de-DE", "nn") == "nb"
    assert pick_language("fr", "") == "nb"
    assert pick_language("en-GB", "xx", "sv") == "sv"
    assert Translator("nb").date(date(2026, 12, 2)) == "2. desember 2026"
    assert Translator("en").when(datetime(2026, 7, 1, 10, 5, tzinfo=UTC)) == "1 July 2026 12:05"
    assert Translator("sv")("history.sent", what="Faktura", channel="sms") == "Faktura skickad via sms"


def test_every_word_of_the_customer_pages_in_every_language() -> None:
    templates = Path(__file__).parents[3] / "services" / "portal" / "templates"
    pages = [
        *templates.glob("customer/*.html"),
        *(templates / name for name in ("base.html", "error.html", "home.html")),
    ]
    used = {
        key for page in pages for key in re.findall(r"""t\(["']([a-z_.]+)["']""", page.read_text("utf-8"))
    }
    assert "amount_left" in used
    # A key built at run time ("status." + status) is checked by the tests that render it.
    missing = {k for k in used if not k.endswith(".") and set(STRINGS.get(k, {})) != {"nb", "sv", "en"}}
    assert not missing
