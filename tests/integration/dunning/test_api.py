"""The dunning API as an operator and an ERP use it: policies (the lawful default, an unlawful one
refused naming each rule, versions), the dry run, the payer history, and what a caller may not do
(another tenant's invoice, bad input)."""

from __future__ import annotations

import json
from datetime import timedelta

import grpc
import pytest
from fordring.common.v1 import common_pb2 as cpb
from fordring.dunning.v1 import dunning_pb2 as dpb

from tests.support.dunning import DunWorld, all_day_policy, consumer
from tests.support.ledger import eventually, field_violations, invoice_request


async def test_every_tenant_starts_with_the_lawful_default(dun_world: DunWorld) -> None:
    tenant = await dun_world.ledger_tenant()
    reply = await dun_world.stub.ListPolicies(dpb.ListPoliciesRequest(), metadata=tenant.metadata)
    assert len(reply.policies) == 4
    assert all(p.is_default for p in reply.policies)
    norway = await dun_world.stub.GetPolicy(
        dpb.GetPolicyRequest(jurisdiction="NO", debtor_kind="consumer"), metadata=tenant.metadata
    )
    steps = json.loads(norway.policy_json)["steps"]
    assert [s["kind"] for s in steps] == ["nudge", "reminder", "collection_notice", "collection_handoff"]
    assert steps[0]["offset_days"] == 3
    assert steps[0]["fee_minor"] == 0
    assert steps[1]["fee_minor"] == 3_500
    assert steps[1]["offset_days"] == 14
    assert steps[1]["deadline_days"] == 14


async def test_an_unlawful_policy_is_refused_naming_every_rule(dun_world: DunWorld) -> None:
    tenant = await dun_world.ledger_tenant()
    doc = json.loads(all_day_policy("consumer"))
    doc["steps"][1]["fee_minor"] = 10_000
    doc["steps"][1]["deadline_days"] = 7
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await dun_world.stub.SetPolicy(
            dpb.SetPolicyRequest(policy_json=json.dumps(doc)), metadata=tenant.metadata
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    text = refused.value.details() or ""
    assert "NO.reminder_fee.max" in text
    assert "NO.reminder.deadline" in text
    assert "steps[1]" in field_violations(refused.value)
    # Nothing was saved.
    current = await dun_world.stub.GetPolicy(
        dpb.GetPolicyRequest(jurisdiction="NO", debtor_kind="consumer"), metadata=tenant.metadata
    )
    assert current.is_default


async def test_saving_a_policy_versions_it_and_refuses_a_stale_edit(dun_world: DunWorld) -> None:
    tenant = await dun_world.ledger_tenant()
    first = await dun_world.stub.SetPolicy(
        dpb.SetPolicyRequest(policy_json=all_day_policy("consumer"), actor="ops@example"),
        metadata=tenant.metadata,
    )
    assert first.version == 1
    assert not first.is_default
    assert first.updated_by == "ops@example"
    second = await dun_world.stub.SetPolicy(
        dpb.SetPolicyRequest(policy_json=all_day_policy("consumer"), expected_version=1),
        metadata=tenant.metadata,
    )
    assert second.version == 2
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await dun_world.stub.SetPolicy(
            dpb.SetPolicyRequest(policy_json=all_day_policy("consumer"), expected_version=1),
            metadata=tenant.metadata,
        )
    assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "policy_json"),
        ("{not json", "policy"),
        ('{"jurisdiction": "DK", "debtor_kind": "consumer", "steps": []}', "jurisdiction"),
    ],
)
async def test_a_malformed_policy_is_refused(dun_world: DunWorld, text: str, field: str) -> None:
    tenant = await dun_world.ledger_tenant()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await dun_world.stub.SetPolicy(dpb.SetPolicyRequest(policy_json=text), metadata=tenant.metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(f.startswith(field) for f in field_violations(refused.value))


async def test_the_dry_run_reports_what_a_policy_would_have_done(dun_world: DunWorld) -> None:
    world = dun_world
    tenant = await world.tenant()
    today = world.clock.today()
    unpaid = await tenant.issue(invoice_request(customer=consumer("S-1"), issue_date=today, due_in_days=10))
    late = await tenant.issue(invoice_request(customer=consumer("S-2"), issue_date=today, due_in_days=10))
    # Paid 5 days late: after the nudge, before the reminder.
    await tenant.pay(late, late.gross_total.minor_units, paid_on=(today + timedelta(days=15)).isoformat())
    await world.known(unpaid.id)
    await world.known(late.id, version=2)
    world.at(today + timedelta(days=90))
    reply = await world.stub.SimulatePolicy(
        dpb.SimulatePolicyRequest(
            policy_json=all_day_policy("consumer"),
            due_from=today.isoformat(),
            due_to=(today + timedelta(days=10)).isoformat(),
        ),
        metadata=tenant.metadata,
    )
    assert reply.invoices == 2
    counts = {(s.step, s.channel): s.count for s in reply.steps}
    assert counts[("nudge", "sms")] == 2
    assert counts[("reminder", "email")] == 1
    assert counts[("collection_notice", "email")] == 1
    assert reply.handed_off == 1
    assert reply.spared_by_payment == 1
    fees = {s.step: s.fees_minor for s in reply.steps}
    assert fees["reminder"] == 3_500
    assert list(reply.refusals) == []
    # Nothing was sent: the ledger has no dunning entries.
    assert "nudged" not in await world.history_types(tenant, unpaid.id)

    unlawful = json.loads(all_day_policy("consumer"))
    unlawful["steps"][1]["deadline_days"] = 7
    refused = await world.stub.SimulatePolicy(
        dpb.SimulatePolicyRequest(policy_json=json.dumps(unlawful), days=30), metadata=tenant.metadata
    )
    assert "NO.reminder.deadline" in {r.rule_id for r in refused.refusals}


async def test_the_payer_history_counts_late_payments_and_reminders(dun_world: DunWorld) -> None:
    world = dun_world
    tenant = await world.tenant()
    today = world.clock.today()
    on_time = await tenant.issue(invoice_request(customer=consumer("P-1"), issue_date=today, due_in_days=10))
    await tenant.pay(on_time, on_time.gross_total.minor_units, paid_on=today.isoformat())
    late = await tenant.issue(invoice_request(customer=consumer("P-1"), issue_date=today, due_in_days=10))
    await world.known(late.id)
    world.at(today + timedelta(days=13))
    await world.sweep()
    await world.wait_history(tenant, late.id, "nudged")
    await tenant.pay(late, late.gross_total.minor_units, paid_on=(today + timedelta(days=16)).isoformat())
    customer = await tenant.customer("P-1")

    async def history() -> dpb.PayerHistory:
        reply: dpb.PayerHistory = await world.stub.GetPayerHistory(
            dpb.GetPayerHistoryRequest(customer_id=customer.id), metadata=tenant.metadata
        )
        return reply

    found = await eventually(history, lambda h: h.invoices_settled == 2, what="both invoices settled")
    assert found.paid_on_time == 1
    assert found.on_time_rate == pytest.approx(0.5)
    assert found.average_days_late == pytest.approx(3.0)
    assert found.reminders_needed == 1
    assert found.late_before
    assert [(c.channel, c.reminders, c.paid_after) for c in found.by_channel] == [("sms", 1, 1)]


async def test_another_tenants_invoice_is_not_found(dun_world: DunWorld) -> None:
    world = dun_world
    owner = await world.tenant()
    other = await world.ledger_tenant()
    today = world.clock.today()
    invoice = await owner.issue(invoice_request(customer=consumer("T-1"), issue_date=today, due_in_days=10))
    await world.known(invoice.id)
    for call in (
        world.stub.GetCase(dpb.GetCaseRequest(invoice_id=invoice.id), metadata=other.metadata),
        world.stub.Pause(dpb.PauseRequest(invoice_id=invoice.id, reason="x"), metadata=other.metadata),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert await world.dunning.store.pauses.count_documents({}) == 0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (dpb.PauseRequest(invoice_id="", reason="x"), "invoice_id"),
        (dpb.PauseRequest(invoice_id="x" * 101, reason="x"), "invoice_id"),
        (dpb.PauseRequest(invoice_id="abc", reason=""), "reason"),
        (dpb.PauseRequest(invoice_id="abc", reason="x", kind="forever"), "kind"),
        (dpb.PauseRequest(invoice_id="abc", reason="x", until="yesterday"), "until"),
        (dpb.PauseRequest(invoice_id="abc", reason="x", until="2001-01-01"), "until"),
    ],
)
async def test_a_bad_pause_is_refused(dun_world: DunWorld, request_: dpb.PauseRequest, field: str) -> None:
    tenant = await dun_world.ledger_tenant()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await dun_world.stub.Pause(request_, metadata=tenant.metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(refused.value)


async def test_calls_without_a_key_are_refused(dun_world: DunWorld) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await dun_world.stub.ListHeld(dpb.ListHeldRequest())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_open_disputes_are_listed_until_resumed(dun_world: DunWorld) -> None:
    world = dun_world
    tenant = await world.tenant()
    other = await world.tenant()
    today = world.clock.today()
    invoices = [
        await tenant.issue(invoice_request(customer=consumer(f"L-{n}"), issue_date=today, due_in_days=10))
        for n in range(3)
    ]
    for invoice in invoices:
        await world.known(invoice.id)
    for invoice in invoices:
        await world.stub.Pause(
            dpb.PauseRequest(
                invoice_id=invoice.id, reason=f"disputes {invoice.invoice_number}", kind="dispute"
            ),
            metadata=tenant.metadata,
        )
    await world.stub.Pause(
        dpb.PauseRequest(invoice_id=invoices[0].id, reason="on holiday", kind="pause"),
        metadata=tenant.metadata,
    )

    async def listed(kind: str, size: int = 2) -> list[dpb.OpenPause]:
        found: list[dpb.OpenPause] = []
        token = ""
        while True:
            page = await world.stub.ListPauses(
                dpb.ListPausesRequest(kind=kind, page=cpb.PageRequest(page_size=size, page_token=token)),
                metadata=tenant.metadata,
            )
            found.extend(page.pauses)
            token = page.page.next_page_token
            if not token:
                return found

    disputes = await listed("dispute")
    assert [(p.invoice_id, p.invoice_number, p.kind) for p in disputes] == [
        (i.id, i.invoice_number, "dispute") for i in invoices
    ]
    assert {p.reason for p in disputes} == {f"disputes {i.invoice_number}" for i in invoices}
    assert all(
        p.balance_minor == invoices[0].gross_total.minor_units and p.currency == "NOK" for p in disputes
    )
    assert len(await listed("")) == 4
    assert [p.reason for p in await listed("pause")] == ["on holiday"]

    await world.stub.Resume(
        dpb.ResumeRequest(invoice_id=invoices[1].id, reason="settled"), metadata=tenant.metadata
    )
    assert [p.invoice_id for p in await listed("dispute", 50)] == [invoices[0].id, invoices[2].id]
    # Another tenant sees none of them; a kind that does not exist is refused.
    assert list((await world.stub.ListPauses(dpb.ListPausesRequest(), metadata=other.metadata)).pauses) == []
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.stub.ListPauses(dpb.ListPausesRequest(kind="holiday"), metadata=tenant.metadata)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "kind" in field_violations(refused.value)
