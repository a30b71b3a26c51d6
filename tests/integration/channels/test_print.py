"""Letters through the print drop: spooled durably, closed in batches the print house can trust (each
letter once, `.ready` last, whatever step a crash interrupts), picked up by the sandbox's print
house, whose receipts arrive signed and read as deliveries or returns."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import services.dispatcher.adapters.print as print_adapter
from services.common.ids import new_id
from services.dispatcher.adapters.base import ChannelError, Creditor, Outgoing, PostalAddress, Recipient
from services.dispatcher.adapters.print import PrintAdapter
from tests.support.sandbox import Sandbox, running_sandbox


def letter(**changes: Any) -> Outgoing:
    delivery_id = new_id()
    out = Outgoing(
        delivery_id=delivery_id,
        tenant_id="tenant-print",
        invoice_id="inv-10024",
        invoice_number="10024",
        kind="reminder",
        channel="print",
        recipient=Recipient(
            customer_id="cus-1",
            customer_number="118204",
            name="Kari Nordmann",
            kind="consumer",
            address=PostalAddress(
                lines=("Bjørnstjerne Bjørnsons gate 7",), postal_code="3044", city="Drammen", country="NO"
            ),
        ),
        creditor=Creditor(tenant_id="tenant-print", legal_name="Fjordline Energi AS", org_number="974760673"),
        documents={"pdf": f"%PDF-1.7 letter {delivery_id}\n%%EOF\n".encode()},
    )
    return replace(out, **changes)


def ready_batches(drop: Path) -> dict[str, dict[str, Any]]:
    """The batches the print house may take (marked ready), with their manifests."""
    batches = {}
    for ready in sorted(drop.glob("*.ready")):
        batch_id = ready.name.removesuffix(".ready")
        batches[batch_id] = json.loads((drop / batch_id / "manifest.json").read_bytes())
    return batches


def printed_once(drop: Path, sent: list[Outgoing]) -> None:
    """Every letter sent is in exactly one ready batch, whole, and nothing else is."""
    seen: list[str] = []
    for batch_id, manifest in ready_batches(drop).items():
        assert manifest["batch_id"] == batch_id
        for entry in manifest["letters"]:
            pdf = (drop / batch_id / entry["file"]).read_bytes()
            assert hashlib.sha256(pdf).hexdigest() == entry["sha256"]
            seen.append(entry["delivery_id"])
        assert sorted(p.name for p in (drop / batch_id).iterdir()) == sorted(
            ["manifest.json", *(e["file"] for e in manifest["letters"])]
        )
    assert sorted(seen) == sorted(out.delivery_id for out in sent)
    by_id = {out.delivery_id: out for out in sent}
    for manifest in ready_batches(drop).values():
        for entry in manifest["letters"]:
            assert (drop / manifest["batch_id"] / entry["file"]).read_bytes() == by_id[
                entry["delivery_id"]
            ].documents["pdf"]


async def test_letters_are_spooled_then_closed_into_a_ready_batch(tmp_path: Path) -> None:
    adapter = PrintAdapter(tmp_path)
    sent = [letter(), letter()]

    results = [await adapter.send(out) for out in sent]

    assert [(r.state, r.provider_ref) for r in results] == [("accepted", out.delivery_id) for out in sent]
    assert ready_batches(tmp_path) == {}
    batch_id = await adapter.close_batch()
    assert batch_id is not None
    printed_once(tmp_path, sent)
    manifest = ready_batches(tmp_path)[batch_id]
    assert manifest["created_at"].endswith("Z")
    entry = next(e for e in manifest["letters"] if e["delivery_id"] == sent[0].delivery_id)
    assert entry["recipient"] == {
        "name": "Kari Nordmann",
        "address": {
            "lines": ["Bjørnstjerne Bjørnsons gate 7"],
            "postal_code": "3044",
            "city": "Drammen",
            "country": "NO",
        },
    }
    assert await adapter.close_batch() is None
    assert list(ready_batches(tmp_path)) == [batch_id]


async def test_a_repeated_send_is_one_letter_before_and_after_the_batch(tmp_path: Path) -> None:
    adapter = PrintAdapter(tmp_path)
    out = letter()

    await adapter.send(out)
    await adapter.send(replace(out, attempt=2))
    await adapter.close_batch()
    again = await adapter.send(replace(out, attempt=3))

    assert (again.state, again.provider_ref) == ("accepted", out.delivery_id)
    assert again.detail.startswith("duplicate")
    assert await adapter.close_batch() is None
    printed_once(tmp_path, [out])


async def test_letters_without_an_address_are_refused_and_flag_it(tmp_path: Path) -> None:
    adapter = PrintAdapter(tmp_path)
    nowhere = [
        PostalAddress(),
        PostalAddress(lines=("  ",), postal_code="3044", city="Drammen"),
        PostalAddress(lines=("Storgata 1",), postal_code="", city="Drammen"),
        PostalAddress(lines=("Storgata 1",), postal_code="3044", city=""),
    ]
    for address in nowhere:
        out = letter()
        with pytest.raises(ChannelError) as refused:
            await adapter.send(replace(out, recipient=replace(out.recipient, address=address)))
        assert (refused.value.retryable, refused.value.code, refused.value.contact) == (
            False,
            "no_address",
            "address",
        )
    with pytest.raises(ChannelError) as no_pdf:
        await adapter.send(letter(documents={}))
    assert (no_pdf.value.retryable, no_pdf.value.code) == (False, "no_document")
    assert await adapter.close_batch() is None


async def test_an_unwritable_drop_is_retryable(tmp_path: Path) -> None:
    (tmp_path / "drop").write_text("a file where the drop should be")
    adapter = PrintAdapter(tmp_path / "drop")

    with pytest.raises(ChannelError) as failed:
        await adapter.send(letter())

    assert (failed.value.retryable, failed.value.code) == (True, "drop_unavailable")


class Crash(Exception):
    """The process died here."""


def crash_at(step: int, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Make the `step`-th file-system step of the adapter (a rename or a flush to disk) crash."""
    done = 0

    def counted(real: Callable[..., Any]) -> Callable[..., Any]:
        def step_or_crash(*args: Any) -> Any:
            nonlocal done
            done += 1
            if done == step:
                raise Crash(f"step {step}")
            return real(*args)

        return step_or_crash

    monkeypatch.setattr(os, "replace", counted(os.replace))
    monkeypatch.setattr(print_adapter, "_fsync_dir", counted(print_adapter._fsync_dir))
    return lambda: done


async def test_a_close_interrupted_at_any_step_is_finished_by_the_next(tmp_path: Path) -> None:
    step = 1
    while True:
        drop = tmp_path / f"crash-{step}"
        sent = [letter() for _ in range(3)]
        for out in sent:
            await PrintAdapter(drop).send(out)
        with pytest.MonkeyPatch.context() as patch:
            steps = crash_at(step, patch)
            try:
                await PrintAdapter(drop).close_batch()
            except Crash:
                crashed = True
            else:
                crashed = False
        if crashed:
            # A letter sent again meanwhile (the dispatcher retrying) must not be printed twice.
            await PrintAdapter(drop).send(replace(sent[0], attempt=2))
        # Another process, after the restart.
        restarted = PrintAdapter(drop)
        await restarted.close_batch()
        printed_once(drop, sent)
        assert await restarted.close_batch() is None
        assert sorted(p.name for p in (drop / ".spool").iterdir()) == [".batched"]
        if not crashed:
            break
        step += 1
    assert step > 10, f"only {steps()} steps: the crash points were not exercised"


# With the sandbox's print house.


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path) as box:
        yield box


async def fault(sandbox: Sandbox, outcome: str, *, count: int = 1, seconds: float = 0) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sandbox.url}/control/faults",
            json={"channel": "print", "outcome": outcome, "count": count, "seconds": seconds},
        ) as reply,
    ):
        assert reply.status == 200, await reply.text()


async def records(sandbox: Sandbox) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{sandbox.url}/control/records/print") as reply:
        assert reply.status == 200
        result: list[dict[str, Any]] = await reply.json()
        return result


async def test_the_print_house_prints_each_letter_and_reports_it(sandbox: Sandbox) -> None:
    adapter = PrintAdapter(sandbox.settings.print_drop)
    sent = [letter(), letter()]
    for out in sent:
        await adapter.send(out)

    batch_id = await adapter.close_batch()

    payloads = await sandbox.webhooks.wait_for(lambda w: len(w.of("print")) == 2 and w.of("print"))
    assert sandbox.webhooks.refused == []
    receipts = [
        r for p in payloads for r in adapter.parse_receipts(json.dumps(p).encode(), "application/json")
    ]
    assert sorted((r.delivery_id, r.status, r.contact) for r in receipts) == sorted(
        (out.delivery_id, "delivered", None) for out in sent
    )
    kept = sandbox.settings.root / "print"
    for out in sent:
        assert (kept / f"{out.delivery_id}.pdf").read_bytes() == out.documents["pdf"]
        assert (
            json.loads((kept / f"{out.delivery_id}.json").read_bytes())["recipient"]["name"]
            == "Kari Nordmann"
        )
    assert {(r["key"], r["result"], r["batch"]) for r in await records(sandbox)} == {
        (out.delivery_id, "accepted", batch_id) for out in sent
    }
    # Taken out of the drop, as an SFTP pickup would.
    assert ready_batches(sandbox.settings.print_drop) == {}


async def test_a_returned_letter_flags_the_address(sandbox: Sandbox) -> None:
    await fault(sandbox, "return")
    adapter = PrintAdapter(sandbox.settings.print_drop)
    out = letter()
    await adapter.send(out)

    await adapter.close_batch()

    (payload,) = await sandbox.webhooks.wait_for(lambda w: w.of("print"))
    (receipt,) = adapter.parse_receipts(json.dumps(payload).encode(), "application/json")
    assert (receipt.delivery_id, receipt.status, receipt.contact) == (out.delivery_id, "returned", "address")
    assert receipt.reason == "addressee unknown"


async def test_a_letter_seen_before_is_not_printed_again(sandbox: Sandbox) -> None:
    drop = sandbox.settings.print_drop
    out = letter()
    await PrintAdapter(drop).send(out)
    await PrintAdapter(drop).close_batch()
    await sandbox.webhooks.wait_for(lambda w: w.of("print"))
    # The dispatcher's memory of batched letters is gone (a new drop volume): it sends again.
    for marks in (drop / ".spool" / ".batched").iterdir():
        for mark in marks.iterdir():
            mark.unlink()

    await PrintAdapter(drop).send(replace(out, attempt=2))
    await PrintAdapter(drop).close_batch()

    await wait_for_records(sandbox, 2)
    assert [r["result"] for r in await records(sandbox)] == ["accepted", "duplicate"]
    assert len(sandbox.webhooks.of("print")) == 1
    assert len(list((sandbox.settings.root / "print").glob("*.pdf"))) == 1


async def wait_for_records(sandbox: Sandbox, count: int) -> None:
    for _ in range(100):
        if len(await records(sandbox)) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the print house recorded fewer than {count} letters")


async def test_a_print_house_that_is_down_takes_the_batch_later(sandbox: Sandbox) -> None:
    await fault(sandbox, "error")
    await fault(sandbox, "delay", seconds=0.3)
    adapter = PrintAdapter(sandbox.settings.print_drop)
    out = letter()
    await adapter.send(out)

    await adapter.close_batch()

    (payload,) = await sandbox.webhooks.wait_for(lambda w: w.of("print"))
    (receipt,) = adapter.parse_receipts(json.dumps(payload).encode(), "application/json")
    assert (receipt.delivery_id, receipt.status) == (out.delivery_id, "delivered")
    assert [r["result"] for r in await records(sandbox)] == ["accepted"]
