"""The whole stack as processes, driven by the CLI like an ERP: the ledger is killed with SIGKILL in
the middle of an import and restarted; a re-import changes nothing. Every invoice exists exactly
once, numbers stay gapless, and every change was announced exactly once (per event id) on Kafka.
The renderer and the dispatcher are killed the same way while they work: every document is made
once, every invoice reaches its customer once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from pymongo import MongoClient

from services.cli.demo_data import generate_invoices
from services.common.events import INVOICE_TOPIC
from tests.support.dispatcher import consumer
from tests.support.kafka import TopicReader
from tests.support.ledger import invoice_request
from tests.support.stack_ports import stack_flags

pytestmark = pytest.mark.e2e

COUNT = 600


# A dead dispatcher's sends are taken by its successor once their lease runs out (30 s by default).
DISPATCHER_LEASE_SECONDS = 5


def fordring(home: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "FORDRING_TIMER_LEASE_SECONDS": str(DISPATCHER_LEASE_SECONDS)},
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    home = tmp_path / "fordring"
    started = fordring(home, "up", "--detach", *stack_flags(), timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    record = json.loads((home / "stack.json").read_text())
    record["home"] = home
    try:
        yield record
    finally:
        stopped = fordring(home, "down", timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def stack_client(stack: dict[str, Any]) -> MongoClient[dict[str, Any]]:
    """The test's own view of the stack's database. Each command gives up after 30 s: once (in three
    suite runs) the embedded server never answered the `endSessions` that `close()` sends after a
    ledger was killed, and the test hung past its timeout with every assertion passed."""
    return MongoClient(stack["mongo"], tz_aware=True, socketTimeoutMS=30_000)


def invoice_count(stack: dict[str, Any]) -> int:
    listed = fordring(stack["home"], "invoices", "list", "--json", timeout=30)
    return len(json.loads(listed.stdout)) if listed.returncode == 0 else -1


async def drained(outbox: Any, timeout: float = 60) -> int:
    """The outbox records still unsent once the relay has had `timeout` seconds to mark them."""
    deadline = time.monotonic() + timeout
    while (unsent := outbox.count_documents({"sent": False})) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return int(unsent)


def stack_pids(home: Path) -> dict[str, int]:
    return dict(json.loads((home / "stack.json").read_text())["pids"])


async def test_sigkill_in_the_middle_of_an_import(stack: dict[str, Any], tmp_path: Path) -> None:
    home: Path = stack["home"]
    batch = tmp_path / "invoices.jsonl"
    records = generate_invoices(COUNT, seed=7, today=date.today())
    batch.write_text("".join(json.dumps(r) + "\n" for r in records))
    importer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "--home",
            str(home),
            "invoices",
            "import",
            str(batch),
            "--concurrency",
            "8",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client: MongoClient[dict[str, Any]] = stack_client(stack)
    invoices = client["fordring_ledger"]["invoices"]
    deadline = time.monotonic() + 60
    while invoices.count_documents({}) < COUNT // 4:  # well into the batch, far from its end
        assert time.monotonic() < deadline, "the import did not get going"
        assert importer.poll() is None, importer.communicate()[0]
        time.sleep(0.05)
    killed = stack_pids(home)["ledger"]
    os.kill(killed, signal.SIGKILL)
    assert invoices.count_documents({}) < COUNT, "killed too late to test anything"

    output, _ = importer.communicate(timeout=240)
    # The importer retries (idempotency keys make that safe) while the supervisor restarts the ledger.
    assert stack_pids(home)["ledger"] != killed, "the supervisor did not restart the ledger"
    again = fordring(home, "invoices", "import", str(batch))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"0 created · {COUNT} already there · 0 failed" in " ".join(again.stdout.split()), again.stdout
    assert importer.returncode in (0, 1), output

    docs = list(invoices.find({}, {"external_id": 1, "invoice_number": 1, "kid": 1}))
    assert len(docs) == COUNT
    assert len({d["external_id"] for d in docs}) == COUNT
    assert sorted(int(d["invoice_number"]) for d in docs) == list(range(1, COUNT + 1))
    assert len({d["kid"] for d in docs}) == COUNT

    reader = TopicReader(stack["kafka"], INVOICE_TOPIC)
    await reader.start()
    try:

        def issued() -> dict[str, set[str]] | None:
            ids: dict[str, set[str]] = defaultdict(set)
            for record in reader.records:
                envelope = record.envelope()
                if envelope and envelope["type"] == "InvoiceIssued":
                    ids[envelope["subject"]].add(envelope["id"])
            return ids if len(ids) >= COUNT else None

        by_invoice = await reader.wait_for(issued, timeout=60, what=f"{COUNT} InvoiceIssued events")
    finally:
        await reader.stop()
    # Deduplicated by event id, each invoice was announced exactly once, and none is missing.
    assert set(by_invoice) == {str(d["_id"]) for d in docs}
    assert all(len(ids) == 1 for ids in by_invoice.values())
    # A copy published again after the crash is the same event (a replay), never a second change
    # under the same id: every copy of an id carries the same bytes.
    values: dict[str, set[bytes]] = defaultdict(set)
    for record in reader.records:
        envelope = record.envelope()
        if envelope is not None:
            values[envelope["id"]].add(record.value)
    assert all(len(v) == 1 for v in values.values())
    # Every record is marked sent once Kafka acknowledged it: the relay marks after the broker's ack,
    # so a consumer may see the last events a moment before their records are marked.
    assert await drained(client["fordring_ledger"]["outbox"]) == 0
    client.close()


RENDER_COUNT = 150


async def test_sigkill_the_renderer_while_it_renders(stack: dict[str, Any], tmp_path: Path) -> None:
    """The renderer dies mid-batch and is restarted: every invoice gets each of its documents exactly
    once (nothing lost, nothing twice), each announced once."""
    home: Path = stack["home"]
    batch = tmp_path / "render.jsonl"
    records = generate_invoices(RENDER_COUNT, seed=11, today=date.today())
    batch.write_text("".join(json.dumps(r) + "\n" for r in records))
    imported = fordring(home, "invoices", "import", str(batch), "--concurrency", "16", timeout=240)
    assert imported.returncode == 0, imported.stdout + imported.stderr

    client: MongoClient[dict[str, Any]] = stack_client(stack)
    files = client["fordring_renderer"]["hotel.files"]
    pdfs = {"metadata.form": "pdf"}
    deadline = time.monotonic() + 120
    while files.count_documents(pdfs) < RENDER_COUNT // 5:
        assert time.monotonic() < deadline, "the renderer did not get going"
        time.sleep(0.05)
    killed = stack_pids(home)["renderer"]
    os.kill(killed, signal.SIGKILL)
    assert files.count_documents(pdfs) < RENDER_COUNT, "killed too late to test anything"

    deadline = time.monotonic() + 240
    while files.count_documents(pdfs) < RENDER_COUNT:
        assert time.monotonic() < deadline, f"only {files.count_documents(pdfs)} PDFs after the restart"
        time.sleep(0.5)
    assert stack_pids(home)["renderer"] != killed, "the supervisor did not restart the renderer"
    time.sleep(2)  # anything rendered twice would show up by now

    invoice_ids = {
        str(d["_id"]) for d in client["fordring_ledger"]["invoices"].find({"kind": "invoice"}, {"_id": 1})
    }
    per_form: dict[tuple[str, str], int] = defaultdict(int)
    for doc in files.find({"metadata.kind": "invoice"}, {"metadata": 1}):
        per_form[(doc["metadata"]["invoice_id"], doc["metadata"]["form"])] += 1
    assert {invoice for invoice, form in per_form if form == "pdf"} == invoice_ids
    assert all(count == 1 for count in per_form.values()), [k for k, v in per_form.items() if v > 1]
    # Every stored chunk belongs to a stored document (a crash mid-write left nothing half-written).
    chunk_owners = set(client["fordring_renderer"]["hotel.chunks"].distinct("files_id"))
    assert chunk_owners <= {d["_id"] for d in files.find({}, {"_id": 1})}

    reader = TopicReader(stack["kafka"], "fordring.renderer.document.v1")
    await reader.start()
    try:

        def announced() -> dict[str, int] | None:
            seen: dict[str, set[str]] = defaultdict(set)
            for record in reader.records:
                envelope = record.envelope()
                if envelope and envelope["type"] == "DocumentRendered":
                    seen[envelope["data"]["document_id"]].add(envelope["id"])
            counts = {doc_id: len(ids) for doc_id, ids in seen.items()}
            return counts if len(counts) >= sum(per_form.values()) else None

        counts = await reader.wait_for(announced, timeout=60, what="a DocumentRendered per document")
    finally:
        await reader.stop()
    stored = {d["_id"] for d in files.find({"metadata.kind": "invoice"}, {"_id": 1})}
    assert stored <= set(counts)
    assert all(counts[doc_id] == 1 for doc_id in stored)
    client.close()


SEND_COUNT = 120


async def issue_all(stack: dict[str, Any], requests: list[pb.IssueInvoiceRequest]) -> list[pb.Invoice]:
    """Issue as an ERP would, 16 at a time, through the ledger's API with the stack's key."""
    metadata = (("authorization", f"Bearer {stack['api_key']}"),)
    slots = asyncio.Semaphore(16)
    async with grpc.aio.insecure_channel(stack["grpc"]["ledger"]) as channel:
        ledger = LedgerServiceStub(channel)

        async def issue(request: pb.IssueInvoiceRequest) -> pb.Invoice:
            async with slots:
                reply = await ledger.IssueInvoice(request, metadata=metadata, timeout=30)
                return reply.invoice

        return list(await asyncio.gather(*(issue(r) for r in requests)))


@pytest.mark.timeout(600)
async def test_sigkill_the_dispatcher_while_it_sends(stack: dict[str, Any]) -> None:
    """The dispatcher dies while it e-mails a batch of invoices and is restarted: each customer gets
    each invoice exactly once (one message kept by the mail provider, one accepted send, one
    "delivered" in the invoice's history), none is lost, none is sent twice (a send repeated after the restart
    is deduplicated by the provider under its Message-ID, and counted here)."""
    home: Path = stack["home"]
    mailbox = Path(stack["sandbox"]["mail"])
    run = uuid.uuid4().hex[:8]
    # Consumers who accepted e-mail and have no phone: e-mail is their channel, and nothing else
    # (no SMS fallback) goes out if an open is missed while the dispatcher is down.
    customers = [
        consumer(f"M-{run}-{n}", phone="", consents=pb.Consents(email=True)) for n in range(SEND_COUNT // 3)
    ]
    requests = [
        invoice_request(f"mail-{run}-{n}", customer=customers[n % len(customers)]) for n in range(SEND_COUNT)
    ]
    invoice_ids = {invoice.id for invoice in await issue_all(stack, requests)}
    assert len(invoice_ids) == SEND_COUNT

    def mails() -> set[str]:
        return {path.stem for path in mailbox.glob("*.eml")}

    deadline = time.monotonic() + 180
    while len(mails()) < SEND_COUNT // 10:
        assert time.monotonic() < deadline, f"the dispatcher did not get going ({len(mails())} mails)"
        time.sleep(0.05)
    killed = stack_pids(home)["dispatcher"]
    killed_at = time.time()
    os.kill(killed, signal.SIGKILL)
    assert len(mails()) < SEND_COUNT, "killed too late to test anything"
    deadline = time.monotonic() + 60
    while stack_pids(home)["dispatcher"] == killed:
        assert time.monotonic() < deadline, "the supervisor did not restart the dispatcher"
        time.sleep(0.2)

    client: MongoClient[dict[str, Any]] = stack_client(stack)
    deliveries = client["fordring_dispatcher"]["deliveries"]
    mine = {"invoice_id": {"$in": sorted(invoice_ids)}}
    # Timers leased by the dead process are sent again once their lease runs out.
    arrived = {**mine, "status": {"$in": ["delivered", "opened"]}}
    deadline = time.monotonic() + 300
    while (done := deliveries.count_documents(arrived)) < SEND_COUNT:
        assert time.monotonic() < deadline, f"{done} of {SEND_COUNT} delivered after the restart"
        time.sleep(0.5)

    invoices = client["fordring_ledger"]["invoices"]

    def dispatcher_entries(kind: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {invoice_id: [] for invoice_id in invoice_ids}
        for doc in invoices.find({"_id": {"$in": sorted(invoice_ids)}}, {"history": 1}):
            found[doc["_id"]] = [
                e["summary"] for e in doc["history"] if e["actor"] == "dispatcher" and e["type"] == kind
            ]
        return found

    deadline = time.monotonic() + 60
    while not all(dispatcher_entries("delivered").values()):
        assert time.monotonic() < deadline, "the ledger did not hear of every delivery"
        time.sleep(0.5)
    time.sleep(2)  # anything sent or announced twice would show up by now

    primary: dict[str, list[str]] = defaultdict(list)
    for d in deliveries.find(mine, {"invoice_id": 1, "route": 1, "channel": 1}):
        assert d["channel"] == "email", d
        if d["route"] == "primary":
            primary[d["invoice_id"]].append(d["_id"])
    assert set(primary) == invoice_ids, "an invoice has no delivery"
    assert all(len(ids) == 1 for ids in primary.values()), {k: v for k, v in primary.items() if len(v) > 1}
    delivery_ids = {ids[0] for ids in primary.values()}

    # The mail provider kept one message per delivery, under its id, and no other.
    kept = mails()
    assert len(kept) == SEND_COUNT
    assert kept == delivery_ids

    records = [
        json.loads(line)
        for line in (Path(stack["sandbox"]["records"]) / "email" / "records.jsonl").read_text().splitlines()
        if line
    ]
    accepted_at: dict[str, float] = {}
    repeated: list[str] = []
    for record in records:
        assert record["result"] in ("accepted", "duplicate"), record
        assert record["delivery_id"] in delivery_ids, record
        if record["result"] == "accepted":
            assert record["delivery_id"] not in accepted_at, f"{record['delivery_id']} kept twice"
            accepted_at[record["delivery_id"]] = record["at"]
        else:
            repeated.append(record["delivery_id"])
    assert set(accepted_at) == delivery_ids
    # A send made again is one the dead process made and could not record: the provider had taken
    # it before the SIGKILL and answered the second one "duplicate".
    before_kill = {d for d, at in accepted_at.items() if at < killed_at + 1}
    assert set(repeated) <= before_kill, set(repeated) - before_kill
    print(  # the test's report: how the crash played out
        f"\n{len(before_kill)} of {SEND_COUNT} mails accepted before the SIGKILL; after the restart "
        f"{len(repeated)} sends of {len(set(repeated))} of them were made again, answered 'duplicate'"
    )

    # The ledger applied each delivery once: one "delivered" in each invoice's history (an e-mail the
    # receiving server took is delivered at once: announced once, with no separate "sent").
    assert not any(dispatcher_entries("sent").values())
    delivered = dispatcher_entries("delivered")
    assert all(entries == ["invoice by e-mail delivered"] for entries in delivered.values()), {
        k: v for k, v in delivered.items() if v != ["invoice by e-mail delivered"]
    }
    client.close()
