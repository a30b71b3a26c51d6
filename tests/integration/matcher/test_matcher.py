"""The matcher on the real broker and database with its ledger: bank files uploaded through the
gRPC API pay the invoices they name by every rule (KID, a KID with a typo, free text, a known payer
paying several invoices), part- and over-payments land right in the ledger, the ambiguous ones wait
in review with suggestions, a file imported twice pays nothing twice, a bad file is refused whole,
an operator's decision is applied and teaches the payer's account."""

from __future__ import annotations

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.matcher.v1 import matcher_pb2 as mpb

from services.matcher.domain.open_items import keying_error
from services.sandbox.bankfiles import FilePayment, ocr_giro_file
from tests.support.ledger import (
    TenantClient,
    customer_input,
    eventually,
    field_violations,
    invoice_request,
    line,
)
from tests.support.matcher import MatchWorld

pytestmark = pytest.mark.integration

_ORG = {
    "A": "974760673",
    "B": "923609016",
    "C": "914778271",
    "D": "982463718",
    "E": "986105174",
    "F": "937884117",
}


def customer(letter: str, *accounts: str) -> pb.CustomerInput:
    c = customer_input(f"{letter}-1", name=f"Kunde {letter} AS", org_number=_ORG[letter])
    c.bank_accounts.extend(accounts)
    return c


async def issue(tenant: TenantClient, who: pb.CustomerInput, net_minor: int) -> pb.Invoice:
    """An invoice of net_minor + 25 % VAT."""
    return await tenant.issue(invoice_request(customer=who, lines=[line(unit_price_minor=net_minor)]))


def gross(invoice: pb.Invoice) -> int:
    return int(invoice.gross_total.minor_units)


def ambiguous_typo(kid_a: str, kid_b: str) -> str:
    """A reference one keying error from both KIDs (and neither of them)."""
    for i in range(len(kid_a)):
        for digit in "0123456789":
            typed = kid_a[:i] + digit + kid_a[i + 1 :]
            if typed not in (kid_a, kid_b) and keying_error(typed, kid_a) and keying_error(typed, kid_b):
                return typed
    raise AssertionError(f"no reference is one error from both {kid_a} and {kid_b}")


def swapped(kid: str) -> str:
    for i in range(len(kid) - 1):
        if kid[i] != kid[i + 1]:
            return kid[:i] + kid[i + 1] + kid[i] + kid[i + 2 :]
    raise AssertionError(kid)


async def statuses(tenant: TenantClient, invoices: dict[str, pb.Invoice]) -> dict[str, tuple[str, int]]:
    out = {}
    for name, invoice in invoices.items():
        now = await tenant.get(invoice.id)
        out[name] = (
            pb.InvoiceStatus.Name(now.status).removeprefix("INVOICE_STATUS_"),
            now.balance.minor_units,
        )
    return out


async def test_a_bank_file_pays_each_invoice_by_the_rule_that_fits_and_the_rest_waits_in_review(
    match_world: MatchWorld,
) -> None:
    world = match_world
    tenant = await world.tenant()
    a, b, c = customer("A"), customer("B"), customer("C")
    d = customer("D", "15030012345")
    e, f = customer("E"), customer("F")
    inv = {
        "exact": await issue(tenant, a, 1000_00),
        "part": await issue(tenant, a, 2000_00),
        "over": await issue(tenant, b, 800_00),
        "typo": await issue(tenant, b, 1234_00),
        "text": await issue(tenant, c, 500_00),
        "set1": await issue(tenant, d, 300_00),
        "set2": await issue(tenant, d, 700_00),
        "twin1": await issue(tenant, e, 888_00),
        "twin2": await issue(tenant, e, 888_00),
        "untouched": await issue(tenant, f, 4321_00),
    }
    await world.known(tenant, list(inv.values()))
    await world.customers_known(tenant, 6)
    payments = [
        FilePayment(gross(inv["exact"]), reference=inv["exact"].kid),
        FilePayment(100_000, reference=inv["part"].kid),
        FilePayment(gross(inv["over"]) + 20_000, reference=inv["over"].kid),
        FilePayment(gross(inv["typo"]), reference=swapped(inv["typo"].kid)),
        FilePayment(gross(inv["text"]), free_text=f"Betaling faktura {inv['text'].invoice_number}"),
        FilePayment(gross(inv["set1"]) + gross(inv["set2"]), payer_account="15030012345"),
        FilePayment(gross(inv["twin1"]), reference=ambiguous_typo(inv["twin1"].kid, inv["twin2"].kid)),
        FilePayment(77_700, payer_account="99998877764"),
    ]
    content = ocr_giro_file(payments)
    reply = await world.import_file(tenant, content, "OCR.20261201.dat")
    summary = reply.summary
    assert not reply.already_imported
    assert (summary.format, summary.state, summary.payments) == ("ocr_giro", "done", 8)
    assert (summary.matched, summary.review, summary.duplicates) == (6, 2, 0)
    assert dict(summary.by_method) == {"kid": 3, "kid_typo": 1, "free_text": 1, "payer_set": 1}

    expected = {
        "exact": ("PAID", 0),
        "part": ("PART_PAID", gross(inv["part"]) - 100_000),
        "over": ("PAID", 0),  # the excess is the customer's credit balance
        "typo": ("PAID", 0),
        "text": ("PAID", 0),
        "set1": ("PAID", 0),
        "set2": ("PAID", 0),
        "twin1": ("OPEN", gross(inv["twin1"])),
        "twin2": ("OPEN", gross(inv["twin2"])),
        "untouched": ("OPEN", gross(inv["untouched"])),
    }
    found = await eventually(
        lambda: statuses(tenant, inv), lambda s: s == expected, timeout=30, what="payments applied"
    )
    assert found == expected
    credit = (await tenant.customer("B-1")).credit_balance.minor_units
    assert credit == 20_000

    listed = await world.payments(tenant, import_id=summary.id)
    assert [p.location for p in listed] == sorted(
        (p.location for p in listed), key=lambda x: int(x.split()[-1])
    )
    by_ref = {p.reference or p.payer_account or p.free_text: p for p in listed}
    typo = by_ref[swapped(inv["typo"].kid)]
    assert (typo.status, typo.method) == ("matched", "kid_typo")
    assert [(x.invoice_number, x.amount_minor) for x in typo.allocations] == [
        (inv["typo"].invoice_number, gross(inv["typo"]))
    ]
    assert typo.bank_ids["transaction_number"]
    assert typo.bank_ids["archive_reference"]
    assert any("swapped" in line for line in typo.evidence)
    await eventually(
        lambda: world.payments(tenant, import_id=summary.id),
        lambda ps: all(p.ledger_state == "applied" for p in ps if p.status == "matched"),
        what="the ledger's answers",
    )

    queue = await world.review(tenant)
    assert len(queue) == 2
    # The queue in file order (listed is), oldest import first.
    assert [p.location for p in queue] == [p.location for p in listed if p.status == "review"]
    twin = next(p for p in queue if p.suggestions)
    assert {n for s in twin.suggestions for n in s.invoice_numbers} == {
        inv["twin1"].invoice_number,
        inv["twin2"].invoice_number,
    }
    assert twin.reason

    # The same file again: nothing is paid twice, and the answer says so.
    again = await world.import_file(tenant, content, "OCR.20261201-copy.dat")
    assert again.already_imported
    assert again.summary.id == summary.id
    assert len(await world.payments(tenant)) == 8
    assert await statuses(tenant, inv) == expected


async def test_the_same_bank_transaction_in_a_second_file_is_a_duplicate(match_world: MatchWorld) -> None:
    world = match_world
    tenant = await world.tenant()
    who = customer("A")
    first, second = await issue(tenant, who, 100_00), await issue(tenant, who, 200_00)
    await world.known(tenant, [first, second])
    paid_first = FilePayment(gross(first), reference=first.kid, archive_reference="987654321")
    one = await world.import_file(
        tenant, ocr_giro_file([paid_first], transmission_number="1000001", assignment_number="4000001")
    )
    assert one.summary.matched == 1
    both = ocr_giro_file(
        [paid_first, FilePayment(gross(second), reference=second.kid)],
        transmission_number="1000002",
        assignment_number="4000001",
    )
    two = await world.import_file(tenant, both)
    assert not two.already_imported
    assert (two.summary.payments, two.summary.matched, two.summary.duplicates) == (2, 1, 1)
    listed = await world.payments(tenant)
    assert [p.import_id for p in listed] == [two.summary.id, one.summary.id]  # newest import first
    await eventually(
        lambda: statuses(tenant, {"first": first, "second": second}),
        lambda s: s == {"first": ("PAID", 0), "second": ("PAID", 0)},
        what="both paid once",
    )
    history = await tenant.history(first.id)
    assert sum(1 for h in history if h.type == "payment_applied") == 1


async def test_a_broken_file_is_refused_whole_with_its_problems(match_world: MatchWorld) -> None:
    world = match_world
    tenant = await world.tenant()
    invoice = await issue(tenant, customer("A"), 100_00)
    await world.known(tenant, [invoice])
    content = ocr_giro_file([FilePayment(gross(invoice), reference=invoice.kid)], declared_total=1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.import_file(tenant, content)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    problems = field_violations(caught.value)
    assert any("total" in text.lower() for text in problems.values()), problems
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await world.import_file(tenant, b"hello, this is not a bank file\n")
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await world.payments(tenant) == []
    imports = await world.stub.ListImports(mpb.ListImportsRequest(), metadata=tenant.metadata)
    assert list(imports.imports) == []
    assert (await tenant.get(invoice.id)).status == pb.INVOICE_STATUS_OPEN


async def test_an_operator_allocates_a_review_payment_and_the_payers_account_is_learned(
    match_world: MatchWorld,
) -> None:
    world = match_world
    tenant = await world.tenant()
    who = customer("C")
    march, april = await issue(tenant, who, 640_00), await issue(tenant, who, 640_00)
    await world.known(tenant, [march, april])
    await world.customers_known(tenant, 1)
    unknown_account = "12035555550"
    first = await world.import_file(
        tenant,
        ocr_giro_file(
            [FilePayment(gross(march), payer_account=unknown_account)], transmission_number="2000001"
        ),
    )
    assert first.summary.review == 1
    [waiting] = await world.review(tenant)
    resolved = await world.stub.ResolvePayment(
        mpb.ResolvePaymentRequest(
            payment_id=waiting.id,
            allocate=mpb.Allocate(
                allocations=[
                    mpb.AllocationInput(invoice_number=march.invoice_number, amount_minor=gross(march))
                ]
            ),
            note="customer phoned: March invoice",
        ),
        metadata=tenant.metadata,
    )
    assert (resolved.payment.status, resolved.payment.method) == ("resolved", "manual")
    assert resolved.payment.resolved_by == tenant.key_name
    await eventually(
        lambda: tenant.get(march.id), lambda i: i.status == pb.INVOICE_STATUS_PAID, what="march paid"
    )
    assert await world.review(tenant) == []
    # Deciding it twice is refused.
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await world.stub.ResolvePayment(
            mpb.ResolvePaymentRequest(payment_id=waiting.id, refund=mpb.Refund()), metadata=tenant.metadata
        )
    assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # Next month the same account pays the April invoice with no reference: matched by itself.
    second = await world.import_file(
        tenant,
        ocr_giro_file(
            [FilePayment(gross(april), payer_account=unknown_account)], transmission_number="2000002"
        ),
    )
    assert (second.summary.matched, second.summary.review) == (1, 0)
    assert dict(second.summary.by_method) == {"payer_account_amount": 1}
    await eventually(
        lambda: tenant.get(april.id), lambda i: i.status == pb.INVOICE_STATUS_PAID, what="april paid"
    )


async def test_a_file_sent_the_moment_the_invoices_are_issued_still_finds_them(
    match_world: MatchWorld,
) -> None:
    """The import waits until the matcher has taken in what the ledger published before deciding."""
    world = match_world
    tenant = await world.tenant()
    who = customer("F", "16020011118")
    invoices = [await issue(tenant, who, 100_00 + n) for n in range(20)]
    content = ocr_giro_file(
        [FilePayment(gross(i), reference=i.kid) for i in invoices], transmission_number="3000001"
    )
    reply = await world.import_file(tenant, content)
    assert (reply.summary.matched, reply.summary.review) == (20, 0)
