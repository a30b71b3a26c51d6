"""The sandbox tenant starts with a realistic Norwegian profile, made once: what an operator changes
afterwards survives every restart."""

from __future__ import annotations

import secrets
import uuid

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub

from services.ledger.app import SANDBOX_TENANT_ID, LedgerApp
from services.ledger.profiles import change_profile
from services.ledger.sandbox import SANDBOX_LOGO, SANDBOX_ORG_NUMBER
from tests.support.backends import Backend
from tests.support.ledger import invoice_request, replica_settings

pytestmark = pytest.mark.integration


async def test_the_sandbox_gets_a_profile_once_and_keeps_an_operators_changes(backend: Backend) -> None:
    api_key = secrets.token_urlsafe(24)
    settings = replica_settings(
        backend.kafka_bootstrap, backend.mongo_uri, f"s{uuid.uuid4().hex[:10]}.", sandbox_api_key=api_key
    )
    metadata = (("authorization", f"Bearer {api_key}"),)

    first = LedgerApp(settings)
    await first.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first.grpc.port}") as channel:
            stub = LedgerServiceStub(channel)
            seeded = (
                await stub.GetCreditorProfile(pb.GetCreditorProfileRequest(), metadata=metadata)
            ).profile
            invoice = (await stub.IssueInvoice(invoice_request(), metadata=metadata)).invoice
        await change_profile(
            first.store, SANDBOX_TENANT_ID, {"footer": "Endret av drift"}, now=first.clock.now(), actor="test"
        )
    finally:
        await first.stop()

    assert (seeded.version, seeded.legal_name, seeded.company_form) == (1, "Sandbox AS", "AS")
    assert (seeded.org_number, seeded.vat_id) == (SANDBOX_ORG_NUMBER, f"NO{SANDBOX_ORG_NUMBER}MVA")
    assert seeded.in_enterprise_register
    assert (seeded.address.city, seeded.address.country) == ("Oslo", "NO")
    assert (seeded.bank_account, seeded.iban, seeded.bic) == ("86011117947", "NO9386011117947", "DNBANOKKXXX")
    assert (seeded.email, seeded.phone, seeded.website) == (
        "faktura@sandbox.fordring.example",
        "+4722123456",
        "https://sandbox.fordring.example",
    )
    assert (seeded.logo, seeded.logo_media_type) == (SANDBOX_LOGO, "image/svg+xml")
    assert (seeded.payment_terms_days, seeded.ehf_attach_pdf, seeded.accent_colour) == (14, True, "#0B4F6C")
    assert seeded.footer.startswith("Sandbox AS er et testmiljø")
    assert invoice.profile_version == 1

    again = LedgerApp(settings)
    await again.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{again.grpc.port}") as channel:
            stub = LedgerServiceStub(channel)
            kept = (await stub.GetCreditorProfile(pb.GetCreditorProfileRequest(), metadata=metadata)).profile
        versions = await again.store.profiles.count_documents({"tenant_id": SANDBOX_TENANT_ID})
    finally:
        await again.stop()

    assert (kept.version, kept.footer, versions) == (2, "Endret av drift", 2)
