"""The creditor's profile in the ledger: every change a new version, announced once on Kafka; every
version readable for good (GetCreditorProfile, the tenant directory), each tenant only its own."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import tenants_pb2 as tpb

from services.common.errors import InvalidArgument, NotFound
from services.common.events import TENANT_TOPIC
from services.ledger.app import LedgerApp
from services.ledger.directory_api import TenantDirectoryApi
from services.ledger.profiles import change_profile
from services.ledger.sandbox import SANDBOX_LOGO
from tests.support.backends import Backend
from tests.support.kafka import Record, TopicReader, create_topics
from tests.support.ledger import MakeTenant, TenantClient, field_violations, invoice_request

if TYPE_CHECKING:
    from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

pytestmark = pytest.mark.integration

ORG = "974760673"
OTHER_ORG = "923609016"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
    b"\x00\x00\x00\nIDATx\x9cc\xe8\x00\x00\x01\x01\x00\x80\x9a\x0b\xa9\xd6\x00\x00\x00\x00IEND\xaeB`\x82"
)
PROFILE: dict[str, Any] = {
    "legal_name": "Fjordbris AS",
    "company_form": "AS",
    "address_lines": ("Storgata 1",),
    "postal_code": "0155",
    "city": "Oslo",
    "bank_account": "8601.11.17947",
    "iban": "NO93 8601 1117 947",
    "bic": "DNBANOKKXXX",
    "email": "faktura@fjordbris.no",
    "phone": "+47 22 33 44 55",
    "website": "https://fjordbris.no",
    "logo": SANDBOX_LOGO,
    "footer": "Takk for handelen!",
}


@pytest.fixture(scope="module")
async def tenant_events(
    ledger_app: LedgerApp, backend: Backend, topic_prefix: str
) -> AsyncIterator[TopicReader]:
    """Everything on the ledger's tenant topic, read without a consumer group."""
    topic = topic_prefix + TENANT_TOPIC
    await create_topics(backend.kafka_bootstrap, [topic])
    reader = TopicReader(backend.kafka_bootstrap, topic)
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


async def update(ledger_app: LedgerApp, tenant: TenantClient, **changes: Any) -> tuple[int, bool]:
    profile, made = await change_profile(
        ledger_app.store,
        tenant.tenant.id,
        changes,
        now=ledger_app.clock.now(),
        actor="test",
        on_commit=ledger_app.relay.wake,
    )
    return profile.version, made


def at_least(count: int, reader: TopicReader, tenant: TenantClient) -> list[tuple[Record, dict[str, Any]]]:
    found = reader.events(tenant_id=tenant.tenant.id)
    return found if len(found) >= count else []


async def creditor_profile(tenant: TenantClient, version: int = 0) -> tpb.CreditorProfile:
    reply = await tenant.stub.GetCreditorProfile(
        pb.GetCreditorProfileRequest(version=version), metadata=tenant.metadata
    )
    return reply.profile


async def test_each_change_is_a_new_version_announced_once_and_issued_invoices_keep_theirs(
    ledger_app: LedgerApp,
    make_tenant: MakeTenant,
    tenant_events: TopicReader,
    invoice_events: TopicReader,
) -> None:
    tenant = await make_tenant(org_number=ORG)
    before_any = await tenant.issue(invoice_request())

    assert await update(ledger_app, tenant, **PROFILE) == (1, True)
    under_first = await tenant.issue(invoice_request())
    assert await update(ledger_app, tenant, logo=PNG, accent_colour="#AA3300") == (2, True)
    # The same again (as typed differently): nothing changes, nothing is announced.
    assert await update(ledger_app, tenant, accent_colour="#aa3300", phone="22334455") == (2, False)
    under_second = await tenant.issue(invoice_request())

    assert (before_any.profile_version, under_first.profile_version, under_second.profile_version) == (
        0,
        1,
        2,
    )
    # A new logo never rewrites history: what was issued keeps its version.
    assert (await tenant.get(under_first.id)).profile_version == 1
    assert (await tenant.get(before_any.id)).profile_version == 0
    versions = await ledger_app.store.profiles.count_documents({"tenant_id": tenant.tenant.id})
    assert versions == 2

    # The relay publishes the outbox in order: once the last invoice is on Kafka, so is every
    # profile event written before it.
    await invoice_events.wait_for(
        lambda: any(
            e["subject"] == under_second.id for _, e in invoice_events.events(tenant_id=tenant.tenant.id)
        ),
        what="the last invoice",
    )
    announced = await tenant_events.wait_for(lambda: at_least(2, tenant_events, tenant), what="two events")
    assert [e["type"] for _, e in announced] == ["TenantProfileChanged"] * 2
    assert [e["data"]["version"] for _, e in announced] == [1, 2]
    record, second = announced[1]
    assert record.key == tenant.tenant.id.encode()
    assert second["subject"] == second["data"]["tenant_id"] == tenant.tenant.id
    profile = second["data"]["profile"]
    assert "logo" not in profile
    assert profile["logo_sha256"] == hashlib.sha256(PNG).hexdigest()
    assert profile["logo_media_type"] == "image/png"
    assert (profile["accent_colour"], profile["vat_id"], profile["iban"]) == (
        "#AA3300",
        f"NO{ORG}MVA",
        "NO9386011117947",
    )
    assert PNG not in record.value
    issued = next(
        e for _, e in invoice_events.events(tenant_id=tenant.tenant.id) if e["subject"] == under_first.id
    )
    assert issued["data"]["invoice"]["profile_version"] == 1


async def test_every_version_can_be_read_and_an_unknown_one_is_not_found(
    ledger_app: LedgerApp, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant(org_number=ORG)
    await update(ledger_app, tenant, **PROFILE)
    await update(ledger_app, tenant, legal_name="Fjordbris Holding AS", logo=PNG)

    current = await creditor_profile(tenant)
    first = await creditor_profile(tenant, 1)
    second = await creditor_profile(tenant, 2)

    assert current == second
    assert (current.version, current.legal_name, current.logo) == (2, "Fjordbris Holding AS", PNG)
    assert (first.version, first.legal_name, first.logo) == (1, "Fjordbris AS", SANDBOX_LOGO)
    assert first.logo_media_type == "image/svg+xml"
    assert first.logo_sha256 == hashlib.sha256(SANDBOX_LOGO).hexdigest()
    assert (first.vat_id, first.in_enterprise_register) == (f"NO{ORG}MVA", True)
    assert (first.org_number, first.jurisdiction, first.company_form) == (ORG, "NO", "AS")
    assert list(first.address.lines) == ["Storgata 1"]
    assert (first.address.postal_code, first.address.city, first.address.country) == ("0155", "Oslo", "NO")
    assert (first.bank_account, first.iban, first.bic) == ("86011117947", "NO9386011117947", "DNBANOKKXXX")
    assert (first.email, first.phone, first.website) == (
        "faktura@fjordbris.no",
        "+4722334455",
        "https://fjordbris.no",
    )
    assert (first.payment_terms_days, first.ehf_attach_pdf, first.footer) == (14, True, "Takk for handelen!")
    assert first.updated_at

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await creditor_profile(tenant, 3)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await creditor_profile(tenant, -1)
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "version" in field_violations(negative.value)


async def test_a_tenant_reads_only_its_own_profile(ledger_app: LedgerApp, make_tenant: MakeTenant) -> None:
    mine = await make_tenant(org_number=ORG)
    theirs = await make_tenant(org_number=OTHER_ORG)
    await update(ledger_app, mine, **PROFILE)
    await update(ledger_app, mine, footer="Ny bunntekst")
    await update(ledger_app, theirs, **{**PROFILE, "legal_name": "Fjellvann Drikke AS"})

    assert (await creditor_profile(theirs)).legal_name == "Fjellvann Drikke AS"
    assert (await creditor_profile(theirs, 1)).org_number == OTHER_ORG
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await creditor_profile(theirs, 2)  # the other tenant has a version 2; this one has not
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await creditor_profile(mine, 1)).org_number == ORG


async def test_a_tenant_without_a_profile_shows_its_name_until_it_has_one(
    make_tenant: MakeTenant, ledger_stub: LedgerServiceAsyncStub
) -> None:
    tenant = await make_tenant(org_number=ORG)

    provisional = await creditor_profile(tenant)

    assert (provisional.version, provisional.legal_name, provisional.org_number) == (
        0,
        "Testkreditor AS",
        ORG,
    )
    assert provisional.vat_id == f"NO{ORG}MVA"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await creditor_profile(tenant, 1)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_wrong_change_names_every_field_and_changes_nothing(
    ledger_app: LedgerApp, make_tenant: MakeTenant, tenant_events: TopicReader
) -> None:
    tenant = await make_tenant(org_number=ORG)
    await update(ledger_app, tenant, **PROFILE)

    with pytest.raises(InvalidArgument) as caught:
        await update(
            ledger_app, tenant, iban="NO00", email="x@", logo=b"<svg onload='x()'/>", bank_account=""
        )
    with pytest.raises(InvalidArgument) as renumbered:
        await update(ledger_app, tenant, org_number=OTHER_ORG)

    assert {v.field for v in caught.value.violations} == {"iban", "email", "logo", "bic", "payment_means"}
    assert [v.field for v in renumbered.value.violations] == ["org_number"]
    assert (await creditor_profile(tenant)).version == 1
    assert await ledger_app.store.profiles.count_documents({"tenant_id": tenant.tenant.id}) == 1


async def test_a_tenant_without_a_number_is_given_one_by_its_profile(
    ledger_app: LedgerApp, make_tenant: MakeTenant
) -> None:
    await make_tenant(org_number="921000022")
    tenant = await make_tenant()  # made before tenants had to have a number
    org = "921000014"

    with pytest.raises(InvalidArgument) as duplicate:
        await update(ledger_app, tenant, **{**PROFILE, "org_number": "921000022"})
    assert await update(ledger_app, tenant, **{**PROFILE, "org_number": org}) == (1, True)

    assert "exists already" in duplicate.value.violations[0].description
    doc = await ledger_app.store.tenants.find_one({"_id": tenant.tenant.id})
    assert doc is not None
    assert (doc["settings"]["org_number"], doc["profile_version"]) == (org, 1)


# --- the tenant directory (for Fordring's own services) ---------------------------------------------


@pytest.fixture
def directory(ledger_app: LedgerApp) -> TenantDirectoryApi:
    return TenantDirectoryApi(ledger_app.store, ledger_app.tenants)


NO_CONTEXT = cast("grpc.aio.ServicerContext[Any, Any]", None)


async def test_the_directory_resolves_a_key_to_its_tenant(
    ledger_app: LedgerApp, make_tenant: MakeTenant, directory: TenantDirectoryApi
) -> None:
    tenant = await make_tenant(org_number=ORG, kid_scheme="mod11", kid_length=12)
    await update(ledger_app, tenant, **PROFILE)

    reply = await directory.ResolveApiKey(tpb.ResolveApiKeyRequest(api_key=tenant.api_key), NO_CONTEXT)

    info = reply.tenant
    assert (info.id, info.name, info.key_name) == (tenant.tenant.id, "Testkreditor AS", tenant.key_name)
    assert (info.org_number, info.jurisdiction, info.default_currency) == (ORG, "NO", "NOK")
    assert (info.kid_scheme, info.kid_length, info.timezone) == ("mod11", 12, "Europe/Oslo")
    assert (info.invoice_number_start, info.credit_note_prefix, info.profile_version) == (1, "CN-", 1)
    assert tenant.api_key not in str(reply)


async def test_the_directory_does_not_know_an_unknown_key(directory: TenantDirectoryApi) -> None:
    for key in ("fdr_" + uuid.uuid4().hex, "x" * 10_000):
        with pytest.raises(NotFound) as caught:
            await directory.ResolveApiKey(tpb.ResolveApiKeyRequest(api_key=key), NO_CONTEXT)
        assert key not in caught.value.message
    with pytest.raises(InvalidArgument):
        await directory.ResolveApiKey(tpb.ResolveApiKeyRequest(), NO_CONTEXT)


async def test_the_directory_gives_a_tenant_and_its_profile_versions(
    ledger_app: LedgerApp, make_tenant: MakeTenant, directory: TenantDirectoryApi
) -> None:
    tenant = await make_tenant(org_number=ORG)
    await update(ledger_app, tenant, **PROFILE)
    await update(ledger_app, tenant, logo=PNG)
    tid = tenant.tenant.id

    got = await directory.GetTenant(tpb.GetTenantRequest(tenant_id=tid), NO_CONTEXT)
    first = await directory.GetTenantProfile(
        tpb.GetTenantProfileRequest(tenant_id=tid, version=1), NO_CONTEXT
    )
    current = await directory.GetTenantProfile(tpb.GetTenantProfileRequest(tenant_id=tid), NO_CONTEXT)

    assert (got.tenant.id, got.tenant.key_name, got.tenant.profile_version) == (tid, "", 2)
    assert (first.profile.version, first.profile.logo, first.profile.logo_media_type) == (
        1,
        SANDBOX_LOGO,
        "image/svg+xml",
    )
    assert (first.profile.vat_id, first.profile.in_enterprise_register) == (f"NO{ORG}MVA", True)
    assert (current.profile.version, current.profile.logo) == (2, PNG)
    with pytest.raises(NotFound):
        await directory.GetTenantProfile(tpb.GetTenantProfileRequest(tenant_id=tid, version=3), NO_CONTEXT)
    with pytest.raises(NotFound):
        await directory.GetTenant(tpb.GetTenantRequest(tenant_id=f"tenant-{uuid.uuid4()}"), NO_CONTEXT)
    with pytest.raises(NotFound):
        await directory.GetTenantProfile(tpb.GetTenantProfileRequest(tenant_id="no-such-tenant"), NO_CONTEXT)
    with pytest.raises(InvalidArgument):
        await directory.GetTenant(tpb.GetTenantRequest(), NO_CONTEXT)
