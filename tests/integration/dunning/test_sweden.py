"""A Swedish creditor: no påminnelseavgift unless its terms agree one, the inkassokrav with the 180 SEK
fee (lag 1981:739), Swedish holidays and Stockholm time."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from fordring.dunning.v1 import dunning_pb2 as dpb
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.tenancy import Tenant
from services.dunning.domain.policy import default_policy
from tests.support.dunning import DunWorld, consumer
from tests.support.ledger import TenantClient, eventually, invoice_request


async def swedish_tenant(world: DunWorld, *, fee_agreed: bool, fee_minor: int = 6_000) -> TenantClient:
    tenant = Tenant(
        id=f"tenant-se-{uuid.uuid4()}",
        name="Testborgenär AB",
        jurisdiction="SE",
        default_currency="SEK",
        timezone="Europe/Stockholm",
    )
    api_key, key_name = uuid.uuid4().hex, "erp-test"
    await world.ledger.store.ensure_tenant(tenant, api_key, key_name=key_name, now=world.ledger.clock.now())
    client = TenantClient(tenant=tenant, api_key=api_key, key_name=key_name, stub=world.ledger_stub)
    doc = json.loads(default_policy("SE", "consumer").to_json())
    doc.update(window_opens="00:00:00", window_closes="23:59:00", bank_files_cutoff=None)
    # The fee of the reminder step: charged where the tenant's terms (reminder_fee_agreed) or the
    # invoice's own agree it.
    doc["steps"][1]["fee_minor"] = fee_minor
    doc["reminder_fee_agreed"] = fee_agreed
    await world.stub.SetPolicy(dpb.SetPolicyRequest(policy_json=json.dumps(doc)), metadata=client.metadata)
    return client


def swedish(number: str) -> pb.CustomerInput:
    who = consumer(number, name="Sven Svensson")
    who.address.country = "SE"
    who.address.postal_code = "11122"
    who.address.city = "Stockholm"
    who.language = "sv"
    return who


async def reminded_fees(
    world: DunWorld, tenant: TenantClient, *, invoice_agreed: bool | None = None
) -> dict[str, int]:
    today = world.clock.today()
    request = invoice_request(
        customer=swedish(f"SE-{uuid.uuid4().hex[:6]}"), issue_date=today, due_in_days=10, currency="SEK"
    )
    if invoice_agreed is not None:
        request.reminder_fee_agreed = invoice_agreed
    invoice = await tenant.issue(request)
    assert invoice.HasField("reminder_fee_agreed") == (invoice_agreed is not None)
    await world.known(invoice.id)
    world.at(today + timedelta(days=13))
    await world.sweep()
    await world.wait_history(tenant, invoice.id, "nudged")
    await world.next_step(tenant, invoice.id, "reminder")
    await world.wait_history(tenant, invoice.id, "reminded")
    await world.next_step(tenant, invoice.id, "collection_notice")
    await world.wait_history(tenant, invoice.id, "collection_notice")
    ledger = await eventually(
        lambda: tenant.get(invoice.id),
        lambda i: any(c.kind.startswith("collection_notice") for c in i.charges),
        what="the inkassokrav's charges",
    )
    return {c.kind: c.amount_minor for c in ledger.charges if c.kind.endswith("_fee")}


async def test_no_reminder_fee_without_the_customers_agreement(dun_world: DunWorld) -> None:
    tenant = await swedish_tenant(dun_world, fee_agreed=False)
    fees = await reminded_fees(dun_world, tenant)
    # The inkassokrav's 180 SEK (inkassoförordningen), no påminnelseavgift.
    assert fees == {"collection_notice_fee": 18_000}


async def test_an_agreed_reminder_fee_is_charged_once(dun_world: DunWorld) -> None:
    tenant = await swedish_tenant(dun_world, fee_agreed=True)
    fees = await reminded_fees(dun_world, tenant)
    assert fees == {"reminder_fee": 6_000, "collection_notice_fee": 18_000}


async def test_an_invoice_s_own_agreement_decides_its_reminder_fee(dun_world: DunWorld) -> None:
    # The tenant's terms agree no fee, but this debt's own terms did (the ERP said so when issuing it).
    tenant = await swedish_tenant(dun_world, fee_agreed=False)
    fees = await reminded_fees(dun_world, tenant, invoice_agreed=True)
    assert fees == {"reminder_fee": 6_000, "collection_notice_fee": 18_000}
