"""What the matcher's API refuses, and what one tenant never sees of another's payments."""

from __future__ import annotations

import grpc
import pytest
from fordring.matcher.v1 import matcher_pb2 as mpb

from services.common.errors import FailedPrecondition
from services.ledger.profiles import change_profile
from services.matcher.importing import Importer
from services.sandbox.bankfiles import FilePayment, ocr_giro_file
from tests.integration.matcher.test_matcher import customer, gross, issue
from tests.support.ledger import eventually, field_violations
from tests.support.matcher import MatchWorld, upload

pytestmark = pytest.mark.integration


async def test_bad_requests_are_refused_with_the_field_named(match_world: MatchWorld) -> None:
    world = match_world
    tenant = await world.tenant()
    invoice = await issue(tenant, customer("A"), 100_00)
    content = ocr_giro_file(
        [FilePayment(gross(invoice) + 1, reference="1234567890")], transmission_number="5000001"
    )

    async def refused(requests: list[mpb.ImportPaymentsRequest]) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await world.stub.ImportPayments(iter(requests), metadata=tenant.metadata)
        return caught.value

    no_header = await refused(upload(content)[1:])
    assert no_header.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header" in field_violations(no_header)
    bidi = await refused(upload(content, filename="OCR\u202etxt.exe"))
    assert bidi.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header.filename" in field_violations(bidi)
    empty = await refused(upload(b""))
    assert "chunk" in field_violations(empty)
    wrong_format = await refused(upload(content, fmt="mt940"))
    assert "format" in field_violations(wrong_format)
    as_camt = await refused(upload(content, fmt="camt.054"))
    assert as_camt.code() == grpc.StatusCode.INVALID_ARGUMENT

    reply = await world.import_file(tenant, content)
    assert reply.summary.review == 1
    [waiting] = await world.review(tenant)

    async def resolve_refused(request: mpb.ResolvePaymentRequest) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await world.stub.ResolvePayment(request, metadata=tenant.metadata)
        return caught.value

    too_much = await resolve_refused(
        mpb.ResolvePaymentRequest(
            payment_id=waiting.id,
            allocate=mpb.Allocate(
                allocations=[mpb.AllocationInput(invoice_id=invoice.id, amount_minor=gross(invoice) + 1)]
            ),
        )
    )
    assert too_much.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "allocate.allocations[0].amount_minor" in field_violations(too_much)
    unknown = await resolve_refused(
        mpb.ResolvePaymentRequest(
            payment_id=waiting.id,
            allocate=mpb.Allocate(
                allocations=[mpb.AllocationInput(invoice_number="NO-SUCH", amount_minor=1)]
            ),
        )
    )
    assert "allocate.allocations[0]" in field_violations(unknown)
    overlong = await resolve_refused(
        mpb.ResolvePaymentRequest(
            payment_id=waiting.id,
            allocate=mpb.Allocate(allocations=[mpb.AllocationInput(invoice_number="9" * 65, amount_minor=1)]),
        )
    )
    assert "allocate.allocations[0]" in field_violations(overlong)
    nothing = await resolve_refused(mpb.ResolvePaymentRequest(payment_id=waiting.id))
    assert "action" in field_violations(nothing)
    missing = await resolve_refused(
        mpb.ResolvePaymentRequest(payment_id="no-such-payment", refund=mpb.Refund())
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    # A refused decision left it in the queue; the 1 øre more than owed needs a customer's credit.
    assert [p.id for p in await world.review(tenant)] == [waiting.id]
    done = await world.stub.ResolvePayment(
        mpb.ResolvePaymentRequest(
            payment_id=waiting.id,
            allocate=mpb.Allocate(
                allocations=[mpb.AllocationInput(invoice_id=invoice.id, amount_minor=gross(invoice))],
                customer_number="A-1",
            ),
            note="paid with the wrong KID; 1 øre extra",
        ),
        metadata=tenant.metadata,
    )
    assert done.payment.credit_minor == 1
    await eventually(
        lambda: tenant.customer("A-1"), lambda c: c.credit_balance.minor_units == 1, what="credit"
    )


async def test_one_tenant_never_sees_anothers_payments(match_world: MatchWorld) -> None:
    world = match_world
    first, second = await world.tenant(), await world.tenant()
    invoice = await issue(first, customer("B"), 100_00)
    await world.known(first, [invoice])
    content = ocr_giro_file(
        [FilePayment(gross(invoice), reference=invoice.kid)], transmission_number="6000001"
    )
    mine = await world.import_file(first, content)
    assert mine.summary.matched == 1
    [payment] = await world.payments(first)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.stub.GetPayment(mpb.GetPaymentRequest(payment_id=payment.id), metadata=second.metadata)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await world.payments(second) == []
    with pytest.raises(grpc.aio.AioRpcError) as other_import:
        await world.payments(second, import_id=mine.summary.id)
    assert other_import.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await world.stub.ListImports(mpb.ListImportsRequest(), metadata=second.metadata)
    assert list(listed.imports) == []
    # The same bytes are the second tenant's own file: its KID is none of its invoices'.
    theirs = await world.import_file(second, content)
    assert not theirs.already_imported
    assert (theirs.summary.matched, theirs.summary.review) == (0, 1)
    with pytest.raises(grpc.aio.AioRpcError) as resolve:
        await world.stub.ResolvePayment(
            mpb.ResolvePaymentRequest(payment_id=payment.id, refund=mpb.Refund()), metadata=second.metadata
        )
    assert resolve.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_file_for_another_account_than_the_creditors_is_flagged_or_refused(
    match_world: MatchWorld,
) -> None:
    """It may be someone else's money whose KIDs are this creditor's by chance: by default it is
    imported with a warning on the import; with other_account=refuse it is refused whole."""
    world = match_world
    tenant = await world.tenant()
    await change_profile(
        world.ledger.store,
        tenant.tenant.id,
        {
            "legal_name": "Testkreditor AS",
            "org_number": "974760673",
            "address_lines": ("Storgata 1",),
            "postal_code": "0155",
            "city": "Oslo",
            "bank_account": "15030012345",
        },
        now=world.ledger.clock.now(),
        actor="test",
    )
    first, second = await issue(tenant, customer("C"), 100_00), await issue(tenant, customer("C"), 200_00)
    await world.known(tenant, [first, second])
    matcher = world.matcher
    strict = Importer(
        matcher.store,
        matcher.books,
        matcher.clock,
        own_accounts=matcher._own_accounts,
        other_account="refuse",
    )
    theirs = ocr_giro_file([FilePayment(gross(first), reference=first.kid)], account="86011117947")
    with pytest.raises(FailedPrecondition) as refused:
        await strict.import_file(tenant.tenant.id, theirs, filename="theirs.dat", format="")
    assert refused.value.reason == "NOT_OUR_ACCOUNT"
    assert await world.payments(tenant) == []

    warned = await world.import_file(tenant, theirs)
    assert warned.summary.matched == 1
    assert any("86011117947" in w for w in warned.summary.warnings)
    ours = ocr_giro_file([FilePayment(gross(second), reference=second.kid)], account="15030012345")
    clean = await world.import_file(tenant, ours)
    assert (clean.summary.matched, list(clean.summary.warnings)) == (1, [])
