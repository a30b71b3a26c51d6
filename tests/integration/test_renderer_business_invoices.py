"""Invoices as many different businesses would send them, through the real ledger and renderer: every
EHF that is due passes the official validator, every PDF names its document, and nothing is refused.

The requests are generated (seeded) across what an ERP may legally send: Norwegian and Swedish
creditors, buyers in Norway, Sweden and Denmark, consumers, VAT categories S/Z/E/AE/G/O with their
reasons, currencies with 0 and 2 decimals, fractional quantities, long and awkward descriptions,
references or none, and partial and full credit notes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.renderer.v1 import renderer_pb2 as rpb

from services.common.events import DLQ_SUFFIX, INVOICE_TOPIC
from tests.support.backends import Backend
from tests.support.kafka import TopicReader
from tests.support.ledger import TenantClient, today
from tests.support.peppol import official_validator
from tests.support.renderer import RenderWorld, by_form, documents_of, pdf_text, read_document
from tests.support.renderer_views import no_org_number, se_org_number

pytestmark = pytest.mark.integration
INVOICES = 36

DESCRIPTIONS = (
    "Konsulenttimer, prosjekt «Nordlys» – fase 2",  # noqa: RUF001 - what ERPs send
    "Strøm & nettleie <januar> \"kampanje\" 'vinter'",
    "Frakt Tromsø–Kirkenes (inkl. ferje)",  # noqa: RUF001 - what ERPs send
    "Licens för programvara, 12 mån.",
    "Årsavgift medlemskap\nInkluderer to kurs\nog én konferanse",
    "Rådgivning §§ 3-1 og 3-2; 50 % rabatt er trukket fra",
    "Ølkasse 24 × 0,33 l ☕ 🍺",  # noqa: RUF001 - what ERPs send
    "x" * 900,
    "Hyra lokal Södermalm, kvartal 1 (jan–mars)",  # noqa: RUF001 - what ERPs send
    "Reparasjon av varmepumpe, deler og arbeid",
)
EXEMPTIONS = {
    "NO": {
        "E": "Unntatt etter merverdiavgiftsloven § 3-2 (helsetjenester)",
        "AE": "Omvendt avgiftsplikt, merverdiavgiftsloven § 11-1",
        "G": "Fritatt, utførsel av varer (merverdiavgiftsloven § 6-21)",
        "O": "Utenfor merverdiavgiftslovens virkeområde",
    },
    "SE": {
        "E": "Undantag enligt 3 kap. 4 § mervärdesskattelagen (sjukvård)",
        "AE": "Omvänd betalningsskyldighet, 16 kap. 1 § mervärdesskattelagen",
        "G": "Export, 10 kap. mervärdesskattelagen",
        "O": "Utanför mervärdesskattelagens tillämpningsområde",
    },
}
RATES = {"NO": ("25", "15", "12"), "SE": ("25", "12", "6")}


@dataclass
class Issued:
    tenant: TenantClient
    document: pb.Invoice
    kind: int
    ehf_due: bool


def _address(rng: random.Random, country: str) -> common_pb2.Address:
    if country == "NO":
        return common_pb2.Address(
            lines=rng.choice((["Storgata 1"], ["Postboks 123 Sentrum", "c/o Ærlig & Ås"])),
            postal_code=rng.choice(("0155", "9008", "5003")),
            city=rng.choice(("Oslo", "Tromsø", "Bergen")),
            country="NO",
        )
    if country == "SE":
        return common_pb2.Address(lines=["Götgatan 14"], postal_code="118 46", city="Stockholm", country="SE")
    return common_pb2.Address(lines=["Strøget 3"], postal_code="1160", city="København K", country="DK")


def _customer(rng: random.Random, jurisdiction: str) -> tuple[pb.CustomerInput, bool]:
    """A customer and whether Peppol can address it (a Norwegian or Swedish business)."""
    number = f"C-{uuid.uuid4().hex[:8]}"
    roll = rng.random()
    if roll < 0.15:
        return (
            pb.CustomerInput(
                number=number,
                name=rng.choice(("Kari Nordmann", "Åsa Öberg-Lindström")),
                kind=pb.CUSTOMER_KIND_CONSUMER,
                email="kunde@example.no",
                address=_address(rng, jurisdiction),
                language=rng.choice(("nb", "sv", "en")),
            ),
            False,
        )
    country = rng.choices(("NO", "SE", "DK"), weights=(5, 3, 1) if jurisdiction == "NO" else (2, 5, 1))[0]
    org = {"NO": no_org_number, "SE": se_org_number}.get(country, lambda _: "")(rng)
    name = rng.choice(("Fjordbris Kaffe AS", "Nordic Widgets AB", "Müller & Søn ApS", "A/S Ærø <Trading>"))
    return (
        pb.CustomerInput(
            number=number,
            name=name,
            kind=pb.CUSTOMER_KIND_BUSINESS,
            org_number=org,
            email="faktura@example.com",
            address=_address(rng, country),
            language=rng.choice(("nb", "sv", "en", "")),
        ),
        country in ("NO", "SE"),
    )


def _lines(rng: random.Random, jurisdiction: str) -> list[pb.InvoiceLineInput]:
    """Lines in one or several VAT categories; outside the scope of VAT (O) only on its own (BR-O-11)."""
    lines = []
    kind = rng.choices(("taxable", "mixed", "outside"), weights=(6, 3, 1))[0]
    for index in range(rng.choice((1, 1, 2, 3, 7, 25))):
        if kind == "outside":
            category = "O"
        elif kind == "mixed":
            category = rng.choices(("S", "Z", "E", "AE", "G"), weights=(6, 1, 1, 1, 1))[0]
        else:
            category = "S"
        rate = rng.choice(RATES[jurisdiction]) if category == "S" else "0"
        lines.append(
            pb.InvoiceLineInput(
                description=rng.choice(DESCRIPTIONS),
                quantity=rng.choice(("1", "2", "2.5", "0.333", "1000", "12.75")),
                # The first line makes the total positive (a zero invoice claims nothing).
                unit_price_minor=rng.choice(
                    (12_345, 100_000, 9_999_999) if index == 0 else (1, 99, 12_345, 123_456_789)
                ),
                vat_rate=rate,
                vat_category=category if category != "S" or rng.random() < 0.5 else "",
                vat_exemption_reason=EXEMPTIONS[jurisdiction].get(category, ""),
                unit_code=rng.choice(("EA", "HUR", "KGM", "")),
            )
        )
    return lines


async def _issue(rng: random.Random, tenant: TenantClient, jurisdiction: str) -> Issued:
    customer, addressable = _customer(rng, jurisdiction)
    currency = rng.choices(
        ("NOK", "SEK", "EUR", "USD", "JPY"),
        weights=(6, 1, 2, 1, 1) if jurisdiction == "NO" else (1, 6, 2, 1, 1),
    )[0]
    request = pb.IssueInvoiceRequest(
        idempotency_key=f"erp-{uuid.uuid4()}",
        customer=customer,
        issue_date=today().isoformat(),
        payment_terms_days=rng.choice((10, 14, 30)),
        currency=currency,
        lines=_lines(rng, jurisdiction),
        buyer_reference=rng.choice(("", "Ola Innkjøper", "PO-REF/77")),
        order_reference=rng.choice(("", "4500012345")),
        contract_reference=rng.choice(("", "Avtale 2026-01")),
    )
    try:
        reply = await tenant.stub.IssueInvoice(request, metadata=tenant.metadata)
    except grpc.aio.AioRpcError as exc:  # pragma: no cover - the message says which field
        pytest.fail(f"the ledger refused a legal invoice: {exc.details()}\n{request}")
    return Issued(tenant, reply.invoice, rpb.DOCUMENT_KIND_INVOICE, addressable)


async def _credit(rng: random.Random, issued: Issued) -> Issued:
    invoice = issued.document
    lines: list[pb.InvoiceLineInput] = []
    if rng.random() < 0.5 and len(invoice.lines) > 1:
        first = max(invoice.lines, key=lambda ln: ln.net_amount_minor)
        lines = [
            pb.InvoiceLineInput(
                description=first.description,
                quantity=first.quantity,
                unit_price_minor=first.unit_price_minor,
                vat_rate=first.vat_rate,
                vat_category=first.vat_category,
                vat_exemption_reason=first.vat_exemption_reason,
                unit_code=first.unit_code,
            )
        ]
    reply = await issued.tenant.credit(invoice, lines=lines, reason=rng.choice(("Feil pris", "Returvare")))
    return Issued(issued.tenant, reply.credit_note, rpb.DOCUMENT_KIND_CREDIT_NOTE, issued.ehf_due)


async def test_business_invoices_of_every_kind_render_and_every_ehf_passes_the_official_validator(
    render_world: RenderWorld, backend: Backend, tmp_path: Path
) -> None:
    w = render_world
    rng = random.Random(int(os.environ.get("FORDRING_TEST_SEED", "20261201")))
    norwegian = await w.tenant()
    swedish = await w.tenant(
        legal_name="Nordisk Ljus AB",
        settings={"jurisdiction": "SE", "default_currency": "SEK", "timezone": "Europe/Stockholm"},
        org_number="5560360793",
        jurisdiction="SE",
        company_form="AB",
        address_lines=("Götgatan 14",),
        postal_code="118 46",
        city="Stockholm",
        country="SE",
        bank_account="",
        iban="SE4550000000058398257466",
        bic="ESSESESS",
        bankgiro="5050-1055",
        f_tax_approved=True,
        footer="Godkänd för F-skatt.",
    )
    issued: list[Issued] = []
    for index in range(INVOICES):
        tenant, jurisdiction = (norwegian, "NO") if index % 3 else (swedish, "SE")
        issued.append(await _issue(rng, tenant, jurisdiction))
    issued.extend([await _credit(rng, invoice) for invoice in rng.sample(issued, 8)])

    async def forms_of(item: Issued) -> dict[str, rpb.DocumentInfo]:
        expected = {"pdf", "html", "email"}
        expected |= {"sms"} if item.kind == rpb.DOCUMENT_KIND_INVOICE else set()
        expected |= {"ehf"} if item.ehf_due else set()
        docs = by_form(
            await documents_of(w.stub, item.tenant, item.document.id, at_least=len(expected), timeout=120),
            item.kind,
        )
        assert set(docs) == expected, (item.document.invoice_number, item.document.currency)
        return docs

    every = await asyncio.gather(*(forms_of(item) for item in issued))
    ehf_files: list[Path] = []
    for item, docs in zip(issued, every, strict=True):
        number = item.document.invoice_number
        _, pdf = await read_document(w.stub, item.tenant, docs["pdf"].id)
        assert number in pdf_text(pdf), number
        if "ehf" in docs:
            _, xml = await read_document(w.stub, item.tenant, docs["ehf"].id)
            assert f"<cbc:ID>{number}</cbc:ID>".encode() in xml
            path = tmp_path / f"{len(ehf_files):03d}-{number}.xml"
            path.write_bytes(xml)
            ehf_files.append(path)
    assert len(ehf_files) >= INVOICES // 2, "too few EHF documents for the test to mean anything"

    checked = subprocess.run(
        [str(official_validator()), "--json", *map(str, ehf_files)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(checked.stdout)
    fatal = {
        Path(name).name: [f"{f['id']}: {f['text'][:160]}" for f in found if f["flag"] == "fatal"]
        for name, found in findings.items()
    }
    assert not {name: rules for name, rules in fatal.items() if rules}
    assert checked.returncode == 0, checked.stderr

    # Nothing was refused: the dead-letter topic holds none of these tenants' events.
    dlq = TopicReader(backend.kafka_bootstrap, w.topics[INVOICE_TOPIC + DLQ_SUFFIX])
    await dlq.start()
    try:
        await asyncio.sleep(1)
        ours = {norwegian.tenant.id, swedish.tenant.id}
        assert not [r for r in dlq.records if (e := r.envelope()) and e["tenant_id"] in ours]
    finally:
        await dlq.stop()
