"""AvtaleGiro claims as Nets reads them: the claim file parsed back with `netsgiro`, one transmission
per batch whatever crashes in between, a delivery claimed once, refusals that make the dispatcher
fall back, and Nets' receipts read strictly."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import netsgiro
import pytest

from services.common.clock import FixedClock
from services.dispatcher.adapters import avtalegiro as module
from services.dispatcher.adapters.avtalegiro import AvtaleGiroAdapter
from services.dispatcher.adapters.base import BadReceipt, ChannelError, Outgoing, Receipt
from tests.support.avtalegiro import ACCOUNT, DUE, KID, MORNING, NETS, OTHER_ACCOUNT, TRANSMITTER, claim


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MORNING)


@pytest.fixture
def adapter(tmp_path: Path, clock: FixedClock) -> AvtaleGiroAdapter:
    return AvtaleGiroAdapter(tmp_path, TRANSMITTER, NETS, clock=clock)


def outbound(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "outbound").iterdir() if not p.name.startswith("."))


def read(path: Path) -> netsgiro.Transmission:
    return netsgiro.parse(path.read_text(encoding="iso-8859-1"))


def requests(transmission: netsgiro.Transmission) -> list[netsgiro.PaymentRequest]:
    return [
        t for a in transmission.assignments for t in a.transactions if isinstance(t, netsgiro.PaymentRequest)
    ]


# The claim file


async def test_the_claim_file_says_what_nets_needs(tmp_path: Path, adapter: AvtaleGiroAdapter) -> None:
    out = claim()
    sent = await adapter.send(out)
    name = await adapter.close_batch()

    assert (sent.state, sent.provider_ref) == ("accepted", f"{KID}:2025-06-30")
    assert name is not None
    assert [p.name for p in outbound(tmp_path)] == [name]
    raw = (tmp_path / "outbound" / name).read_bytes()
    assert all(len(line) == 80 and line.startswith(b"NY") for line in raw.splitlines())
    transmission = read(tmp_path / "outbound" / name)
    assert (transmission.data_transmitter, transmission.data_recipient) == (TRANSMITTER, NETS)
    [assignment] = transmission.assignments
    assert (assignment.service_code, assignment.type, assignment.account) == (
        netsgiro.ServiceCode.AVTALEGIRO,
        netsgiro.AssignmentType.TRANSACTIONS,
        ACCOUNT,
    )
    [request] = requests(transmission)
    assert (request.kid, request.amount, request.date) == (KID, Decimal("1250.00"), DUE)
    assert request.reference == "Faktura 10042"
    assert request.payer_name == "1001"


async def test_the_bank_notifies_the_payer_with_the_notice_text_by_default(
    tmp_path: Path, adapter: AvtaleGiroAdapter
) -> None:
    await adapter.send(claim(kind="reminder"))
    name = await adapter.close_batch()

    assert name is not None
    raw = (tmp_path / "outbound" / name).read_bytes()
    assert "Beløp: kr 1 250,00".encode("iso-8859-1") in raw  # ISO-8859-1, as Nets reads it
    [request] = requests(read(tmp_path / "outbound" / name))
    assert request.type == netsgiro.TransactionType.AVTALEGIRO_WITH_BANK_NOTIFICATION
    assert request.text is not None
    lines = [line.rstrip() for line in request.text.splitlines()]
    assert lines[:5] == [
        "Betalingsvarsel fra Fjordlys Økonomi AS",
        "Purring på faktura 10042",
        "Beløp: kr 1 250,00",
        "Forfallsdato: 30.06.2025",
        f"KID: {KID}",
    ]


async def test_a_creditor_who_notifies_payers_itself_sends_no_notice_text(
    tmp_path: Path, adapter: AvtaleGiroAdapter
) -> None:
    await adapter.send(claim(settings={"avtalegiro.agreement": ACCOUNT, "avtalegiro.notice": "payee"}))
    name = await adapter.close_batch()

    assert name is not None
    assert b"NY212149" not in (tmp_path / "outbound" / name).read_bytes()
    [request] = requests(read(tmp_path / "outbound" / name))
    assert request.type == netsgiro.TransactionType.AVTALEGIRO_WITH_PAYEE_NOTIFICATION
    assert not request.text


async def test_one_transmission_holds_an_assignment_per_agreement_account(
    tmp_path: Path, adapter: AvtaleGiroAdapter
) -> None:
    await adapter.send(claim(amount_minor=29))
    await adapter.send(claim(kid="0000000018", amount_minor=100))
    await adapter.send(claim(settings={"avtalegiro.agreement": OTHER_ACCOUNT}, amount_minor=99_999))
    name = await adapter.close_batch()

    assert name is not None
    transmission = read(tmp_path / "outbound" / name)
    by_account = {
        a.account: sorted(r.amount for r in a.transactions if isinstance(r, netsgiro.PaymentRequest))
        for a in transmission.assignments
    }
    # Øre exactly: never a float on the way (0.29 stays 29 øre).
    assert by_account == {ACCOUNT: [Decimal("0.29"), Decimal("1.00")], OTHER_ACCOUNT: [Decimal("999.99")]}
    assert len({a.number for a in transmission.assignments} | {transmission.number}) == 3


async def test_each_batch_has_its_own_file_and_none_is_written_for_nothing(
    tmp_path: Path, adapter: AvtaleGiroAdapter
) -> None:
    assert await adapter.close_batch() is None
    await adapter.send(claim())
    first = await adapter.close_batch()
    await adapter.send(claim(kid="0000000018"))
    second = await adapter.close_batch()

    assert first is not None
    assert second is not None
    assert first != second
    assert read(tmp_path / "outbound" / first).number != read(tmp_path / "outbound" / second).number
    assert await adapter.close_batch() is None


# Once and only once


async def test_the_same_delivery_again_replaces_its_claim(tmp_path: Path, adapter: AvtaleGiroAdapter) -> None:
    out = claim()
    await adapter.send(out)
    await adapter.send(replace(claim(amount_minor=130_000), delivery_id=out.delivery_id))
    name = await adapter.close_batch()

    assert name is not None
    assert [r.amount for r in requests(read(tmp_path / "outbound" / name))] == [Decimal("1300.00")]


async def test_a_delivery_already_sent_is_not_claimed_again(
    tmp_path: Path, adapter: AvtaleGiroAdapter
) -> None:
    out = claim()
    first = await adapter.send(out)
    await adapter.close_batch()
    again = await adapter.send(out)

    assert again.provider_ref == first.provider_ref
    assert again.detail == "already in a batch"
    assert await adapter.close_batch() is None
    assert len(outbound(tmp_path)) == 1


async def test_a_crash_before_the_file_is_written_is_finished_by_the_next_close(
    tmp_path: Path, adapter: AvtaleGiroAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = [claim(), claim(kid="0000000018")]
    for out in ours:
        await adapter.send(out)
    original = module._Spool.publish

    def crash(self: module._Spool, name: str, content: bytes) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(module._Spool, "publish", crash)
    with pytest.raises(OSError, match="power cut"):
        await adapter.close_batch()
    monkeypatch.setattr(module._Spool, "publish", original)
    # A claim sent meanwhile waits for the next batch: the interrupted one is finished as it was.
    await adapter.send(claim(kid="0000000026"))
    finished = await adapter.close_batch()

    files = outbound(tmp_path)
    assert finished is not None
    assert len(files) == 2
    kids = [sorted(str(r.kid) for r in requests(read(path))) for path in files]
    assert kids == [["0000000018", KID], ["0000000026"]]


async def test_a_crash_after_the_file_is_written_rewrites_the_same_file(
    tmp_path: Path, adapter: AvtaleGiroAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    await adapter.send(claim())
    original = module._Spool.mark_sent

    def crash(self: module._Spool, batch: Path) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(module._Spool, "mark_sent", crash)
    with pytest.raises(OSError, match="power cut"):
        await adapter.close_batch()
    [written] = outbound(tmp_path)
    content = written.read_bytes()
    monkeypatch.setattr(module._Spool, "mark_sent", original)

    assert await adapter.close_batch() == written.name
    [rewritten] = outbound(tmp_path)
    assert (rewritten.name, rewritten.read_bytes()) == (written.name, content)
    assert await adapter.close_batch() is None


async def test_a_new_adapter_on_the_same_directory_carries_on(tmp_path: Path, clock: FixedClock) -> None:
    first = AvtaleGiroAdapter(tmp_path, TRANSMITTER, NETS, clock=clock)
    out = claim()
    await first.send(out)
    await first.close_batch()
    await first.send(claim(kid="0000000018"))

    restarted = AvtaleGiroAdapter(tmp_path, TRANSMITTER, NETS, clock=clock)
    assert (await restarted.send(out)).detail == "already in a batch"
    name = await restarted.close_batch()
    assert name is not None
    assert [r.kid for r in requests(read(tmp_path / "outbound" / name))] == ["0000000018"]
    assert len({read(path).number for path in outbound(tmp_path)}) == 2


async def test_a_full_disk_is_a_retryable_refusal(
    adapter: AvtaleGiroAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, content: bytes, *, part: Path | None = None) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, "_write_atomic", full)
    with pytest.raises(ChannelError) as refused:
        await adapter.send(claim())
    assert (refused.value.retryable, refused.value.code) == (True, "spool")


# Refusals: the dispatcher falls back to another channel


@pytest.mark.parametrize(
    ("out", "code"),
    [
        (replace(claim(), payment=None), "no_payment"),
        (claim(settings={}), "no_agreement"),
        (claim(settings={"avtalegiro.agreement": "12345678900"}), "no_agreement"),
        (claim(currency="SEK"), "currency"),
        (claim(amount_minor=0), "invalid_amount"),
        (claim(kid="123456783"), "invalid_kid"),
        (claim(kid="1234567-"), "invalid_kid"),
        (claim(due_date=date(2025, 6, 19)), "deadline"),
        (claim(due_date=date(2026, 6, 17)), "deadline"),
        (claim(delivery_id="../escape"), "invalid_delivery_id"),
    ],
)
async def test_a_claim_nets_would_refuse_is_refused_for_good(
    tmp_path: Path, adapter: AvtaleGiroAdapter, out: Outgoing, code: str
) -> None:
    with pytest.raises(ChannelError) as refused:
        await adapter.send(out)
    assert (refused.value.retryable, refused.value.code, refused.value.contact) == (False, code, None)
    assert await adapter.close_batch() is None
    assert outbound(tmp_path) == []


async def test_the_constructor_default_agreement_serves_creditors_without_one(
    tmp_path: Path, clock: FixedClock
) -> None:
    adapter = AvtaleGiroAdapter(tmp_path, TRANSMITTER, NETS, agreement_account="8601.11.17947", clock=clock)
    await adapter.send(claim(settings={}))
    name = await adapter.close_batch()
    assert name is not None
    assert [a.account for a in read(tmp_path / "outbound" / name).assignments] == [OTHER_ACCOUNT]


def test_nets_ids_and_the_default_agreement_are_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data_transmitter"):
        AvtaleGiroAdapter(tmp_path, "1234", NETS)
    with pytest.raises(ValueError, match="data_recipient"):
        AvtaleGiroAdapter(tmp_path, TRANSMITTER, "nets")
    with pytest.raises(ValueError, match="agreement_account"):
        AvtaleGiroAdapter(tmp_path, TRANSMITTER, NETS, agreement_account="1234")


async def test_a_claim_that_misses_the_cut_off_while_spooled_is_reported_rejected(
    tmp_path: Path, adapter: AvtaleGiroAdapter, clock: FixedClock
) -> None:
    early = claim(due_date=date(2025, 6, 20))  # possible at 09:00, too soon from 14:00
    await adapter.send(early)
    await adapter.send(claim(kid="0000000018"))
    clock.advance(timedelta(hours=5))  # 14:00 in Oslo
    name = await adapter.close_batch()

    assert name is not None
    assert [r.kid for r in requests(read(tmp_path / "outbound" / name))] == ["0000000018"]
    [receipt] = adapter.refusals()
    assert (receipt.delivery_id, receipt.provider_ref, receipt.status) == (
        early.delivery_id,
        f"{KID}:2025-06-20",
        "rejected",
    )
    assert "deadline" in receipt.reason
    assert adapter.refusals() == [receipt]  # the same event until the dispatcher has applied it
    adapter.forget_refusals([early.delivery_id])
    assert adapter.refusals() == []


# Nets' receipts


def _parse(adapter: AvtaleGiroAdapter, payload: object) -> list[Receipt]:
    return adapter.parse_receipts(json.dumps(payload).encode(), "application/json")


def test_a_receipt_names_the_claim_by_kid_and_due_date(adapter: AvtaleGiroAdapter) -> None:
    [receipt] = _parse(
        adapter,
        {
            "event_id": "e1",
            "kid": KID,
            "due_date": "2025-06-30",
            "file": "claims-0000001.txt",
            "status": "rejected",
            "reason": "No active AvtaleGiro agreement for this KID",
            "at": "2025-06-16T10:00:00.000Z",
        },
    )
    assert (receipt.delivery_id, receipt.provider_ref, receipt.status, receipt.reason) == (
        f"{KID}:2025-06-30",
        f"{KID}:2025-06-30",
        "rejected",
        "No active AvtaleGiro agreement for this KID",
    )
    assert receipt.occurred_at == datetime(2025, 6, 16, 10, 0, tzinfo=UTC)
    [echoed] = _parse(
        adapter,
        {
            "event_id": "e2",
            "kid": KID,
            "due_date": "2025-06-30",
            "delivery_id": "d-1",
            "status": "delivered",
            "reason": "",
            "at": "2025-06-16T10:00:00Z",
        },
    )
    assert (echoed.delivery_id, echoed.status) == ("d-1", "delivered")


@pytest.mark.parametrize(
    "payload",
    [
        {"kid": KID, "due_date": "2025-06-30", "status": "delivered", "at": "2025-06-16T10:00:00Z"},
        {"event_id": "e", "due_date": "2025-06-30", "status": "delivered", "at": "2025-06-16T10:00:00Z"},
        {
            "event_id": "e",
            "kid": "12-4",
            "due_date": "2025-06-30",
            "status": "delivered",
            "at": "2025-06-16T10:00:00Z",
        },
        {
            "event_id": "e",
            "kid": KID,
            "due_date": "30.06.2025",
            "status": "delivered",
            "at": "2025-06-16T10:00:00Z",
        },
        {
            "event_id": "e",
            "kid": KID,
            "due_date": "2025-06-30",
            "status": "paid",
            "at": "2025-06-16T10:00:00Z",
        },
        {"event_id": "e", "kid": KID, "due_date": "2025-06-30", "status": "delivered"},
        [],
        "delivered",
    ],
)
def test_what_is_not_a_nets_receipt_is_refused(adapter: AvtaleGiroAdapter, payload: object) -> None:
    with pytest.raises(BadReceipt):
        _parse(adapter, payload)


async def test_old_sent_batches_are_pruned_at_a_close(tmp_path: Path, adapter: AvtaleGiroAdapter) -> None:
    await adapter.send(claim())
    await adapter.close_batch()
    (sent,) = (tmp_path / ".spool" / "sent").iterdir()
    long_ago = time.time() - 401 * 86400
    os.utime(sent, (long_ago, long_ago))
    await adapter.send(claim())
    await adapter.close_batch()
    left = list((tmp_path / ".spool" / "sent").iterdir())
    assert sent not in left
    assert len(left) == 1
