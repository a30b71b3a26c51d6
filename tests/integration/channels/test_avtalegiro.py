"""AvtaleGiro against the sandbox's Nets: claim files collected from outbound/ and read with
`netsgiro` as Nets reads them, each claim (KID + due date) taken once however often its file is
written, signed receipts that parse into the claim's receipt, and Nets' faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from services.common.clock import FixedClock
from services.dispatcher.adapters import avtalegiro as module
from services.dispatcher.adapters.avtalegiro import AvtaleGiroAdapter
from services.dispatcher.adapters.base import ChannelError, Receipt
from tests.support.avtalegiro import ACCOUNT, KID, NETS, TRANSMITTER, claim
from tests.support.http_channels import body_of, fault, records
from tests.support.sandbox import Sandbox, running_sandbox

pytestmark = pytest.mark.integration

# Monday 16 June 2025, 09:00 in Oslo; claims fall due on 30 June.
NOW = datetime(2025, 6, 16, 7, 0, tzinfo=UTC)
DUE = "2025-06-30"
OTHER_KID = "0000000018"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path) as running:
        yield running


@pytest.fixture
def nets(sandbox: Sandbox) -> AvtaleGiroAdapter:
    return AvtaleGiroAdapter(sandbox.settings.nets_dir, TRANSMITTER, NETS, clock=FixedClock(NOW))


def _outbound(sandbox: Sandbox) -> Path:
    return sandbox.settings.nets_dir / "outbound"


async def _collected(sandbox: Sandbox, name: str) -> Path:
    """The file as Nets kept it, once collected from outbound/."""
    kept = sandbox.settings.root / "avtalegiro" / name
    for _ in range(100):
        if kept.exists() and not (_outbound(sandbox) / name).exists():
            return kept
        await asyncio.sleep(0.05)
    raise AssertionError(f"Nets did not collect {name}")


async def _receipts(sandbox: Sandbox, nets: AvtaleGiroAdapter, count: int) -> list[Receipt]:
    payloads: list[dict[str, Any]] = await sandbox.webhooks.wait_for(
        lambda hooks: hooks.of("avtalegiro") if len(hooks.of("avtalegiro")) >= count else None,
        what=f"{count} Nets receipts",
    )
    assert sandbox.webhooks.refused == []
    return [
        receipt
        for payload in payloads
        for receipt in nets.parse_receipts(body_of(payload), "application/json")
    ]


def _results(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["key"], r["result"]) for r in found]


async def test_nets_collects_the_claims_and_confirms_each(sandbox: Sandbox, nets: AvtaleGiroAdapter) -> None:
    first = await nets.send(claim())
    second = await nets.send(claim(kid=OTHER_KID, amount_minor=29))
    name = await nets.close_batch()

    assert name is not None
    kept = await _collected(sandbox, name)
    assert kept.read_bytes().startswith(b"NY000010" + TRANSMITTER.encode())
    found = await records(sandbox, "avtalegiro")
    assert sorted(_results(found)) == [(f"{OTHER_KID}:{DUE}", "accepted"), (f"{KID}:{DUE}", "accepted")]
    amounts = {r["kid"]: (r["amount_minor"], r["notice"], r["file"]) for r in found}
    assert amounts == {KID: (125_000, True, name), OTHER_KID: (29, True, name)}

    receipts = await _receipts(sandbox, nets, 2)
    assert sorted((r.provider_ref, r.delivery_id, r.status) for r in receipts) == sorted(
        [
            (first.provider_ref, first.provider_ref, "delivered"),
            (second.provider_ref, second.provider_ref, "delivered"),
        ]
    )


async def test_a_delivery_sent_twice_is_claimed_once(sandbox: Sandbox, nets: AvtaleGiroAdapter) -> None:
    out = claim()
    await nets.send(out)
    await nets.send(out)
    name = await nets.close_batch()
    assert name is not None
    await _collected(sandbox, name)
    await nets.send(out)
    assert await nets.close_batch() is None

    assert _results(await records(sandbox, "avtalegiro")) == [(f"{KID}:{DUE}", "accepted")]
    await _receipts(sandbox, nets, 1)
    await asyncio.sleep(0.5)
    assert len(sandbox.webhooks.of("avtalegiro")) == 1


async def test_a_file_rewritten_after_a_crash_claims_nothing_twice(
    sandbox: Sandbox, nets: AvtaleGiroAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    await nets.send(claim())
    original = module._Spool.mark_sent

    def crash(self: module._Spool, batch: Path) -> None:
        raise OSError("power cut")

    # The file reaches outbound/ but the crash comes before the batch is marked sent.
    monkeypatch.setattr(module._Spool, "mark_sent", crash)
    with pytest.raises(OSError, match="power cut"):
        await nets.close_batch()
    [written] = list(_outbound(sandbox).glob("*.txt"))
    await _collected(sandbox, written.name)
    monkeypatch.setattr(module._Spool, "mark_sent", original)

    assert await nets.close_batch() == written.name
    for _ in range(100):
        if len(await records(sandbox, "avtalegiro")) == 2:
            break
        await asyncio.sleep(0.05)
    assert _results(await records(sandbox, "avtalegiro")) == [
        (f"{KID}:{DUE}", "accepted"),
        (f"{KID}:{DUE}", "duplicate"),
    ]
    await _receipts(sandbox, nets, 1)
    await asyncio.sleep(0.5)
    assert len(sandbox.webhooks.of("avtalegiro")) == 1


async def test_a_due_date_too_soon_never_reaches_nets(sandbox: Sandbox, nets: AvtaleGiroAdapter) -> None:
    with pytest.raises(ChannelError) as refused:
        await nets.send(claim(due_date=date(2025, 6, 19)))
    assert (refused.value.retryable, refused.value.code) == (False, "deadline")
    assert await nets.close_batch() is None
    assert list(_outbound(sandbox).glob("*.txt")) == []


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ("reject", "The payer's bank refused the claim"),
        ("fail", "No active AvtaleGiro agreement for this KID"),
    ],
)
async def test_a_refused_claim_comes_back_rejected_with_its_reason(
    sandbox: Sandbox, nets: AvtaleGiroAdapter, outcome: str, reason: str
) -> None:
    await fault(sandbox, "avtalegiro", outcome)
    await nets.send(claim())
    refused_one = await nets.send(claim(kid=OTHER_KID))  # first in the file: it meets the fault
    await nets.close_batch()

    receipts = {r.provider_ref: r for r in await _receipts(sandbox, nets, 2)}
    refused = receipts[refused_one.provider_ref]
    assert (refused.status, refused.reason, refused.contact) == ("rejected", reason, None)
    assert receipts[f"{KID}:{DUE}"].status == "delivered"


async def test_a_claim_nets_could_not_take_now_is_taken_when_sent_again(
    sandbox: Sandbox, nets: AvtaleGiroAdapter
) -> None:
    await fault(sandbox, "avtalegiro", "error")
    out = claim()
    await nets.send(out)
    await nets.close_batch()
    [receipt] = await _receipts(sandbox, nets, 1)
    assert (receipt.status, "temporary" in receipt.reason) == ("rejected", True)

    # The dispatcher sends it again as a new delivery (the first one is settled).
    again = claim()
    await nets.send(again)
    await nets.close_batch()
    receipts = await _receipts(sandbox, nets, 2)
    assert [r.status for r in receipts] == ["rejected", "delivered"]
    assert [r["result"] for r in await records(sandbox, "avtalegiro")] == ["refused", "accepted"]


async def test_a_delayed_confirmation_arrives_late(sandbox: Sandbox, nets: AvtaleGiroAdapter) -> None:
    await fault(sandbox, "avtalegiro", "delay", seconds=1.0)
    await nets.send(claim())
    name = await nets.close_batch()
    assert name is not None
    await _collected(sandbox, name)

    await asyncio.sleep(0.4)
    assert sandbox.webhooks.of("avtalegiro") == []
    [receipt] = await _receipts(sandbox, nets, 1)
    assert receipt.status == "delivered"


async def test_a_file_that_is_not_a_claim_file_is_refused_and_kept(sandbox: Sandbox) -> None:
    _outbound(sandbox).mkdir(parents=True, exist_ok=True)
    (_outbound(sandbox) / "garbage.txt").write_bytes(b"NY0000 this is not an OCR file\n")

    await _collected(sandbox, "garbage.txt")
    for _ in range(100):
        found = await records(sandbox, "avtalegiro")
        if found:
            break
        await asyncio.sleep(0.05)
    assert [(r["key"], r["result"], r["error"]) for r in found] == [
        ("file:garbage.txt", "refused", "invalid_file")
    ]
    assert sandbox.webhooks.of("avtalegiro") == []


async def test_each_creditor_account_is_its_own_assignment_at_nets(
    sandbox: Sandbox, nets: AvtaleGiroAdapter
) -> None:
    await nets.send(claim())
    await nets.send(claim(kid=OTHER_KID, settings={"avtalegiro.agreement": "86011117947"}))
    name = await nets.close_batch()
    assert name is not None
    kept = await _collected(sandbox, name)

    accounts = [
        line[24:35] for line in kept.read_text(encoding="iso-8859-1").splitlines() if line[6:8] == "20"
    ]
    assert sorted(accounts) == sorted([ACCOUNT, "86011117947"])
    await _receipts(sandbox, nets, 2)
