"""The whole stack as processes, driven by the CLI like an ERP: the ledger is killed with SIGKILL in
the middle of an import and restarted; a re-import changes nothing. Every invoice exists exactly
once, numbers stay gapless, and every change was announced exactly once (per event id) on Kafka."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from services.cli.demo_data import generate_invoices
from services.common.events import INVOICE_TOPIC
from tests.support.backends import free_port
from tests.support.kafka import TopicReader

pytestmark = pytest.mark.e2e

COUNT = 600


def fordring(home: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    home = tmp_path / "fordring"
    ports = [f"--{name}-port={free_port()}" for name in ("kafka", "mongo", "grpc", "http")]
    started = fordring(home, "up", "--detach", *ports, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    record = json.loads((home / "stack.json").read_text())
    record["home"] = home
    try:
        yield record
    finally:
        stopped = fordring(home, "down", timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


def invoice_count(stack: dict[str, Any]) -> int:
    listed = fordring(stack["home"], "invoices", "list", "--json", timeout=30)
    return len(json.loads(listed.stdout)) if listed.returncode == 0 else -1


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
    client: MongoClient[dict[str, Any]] = MongoClient(stack["mongo"], tz_aware=True)
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
    assert client["fordring_ledger"]["outbox"].count_documents({"sent": False}) == 0
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

    client: MongoClient[dict[str, Any]] = MongoClient(stack["mongo"], tz_aware=True)
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
