"""Letters through a print house's drop directory (PROTOCOLS.md, provider `print`).

`send` spools the letter durably (`<drop>/.spool/<delivery_id>.pdf` and `.json`, each written aside
and renamed); `close_batch`, run from the dispatcher's batch timer, moves every spooled letter into
`<drop>/<batch_id>/` with `manifest.json` and writes `<drop>/<batch_id>.ready` last, which is when
the print house takes the batch. Receipts (printed, returned) come later by webhook.

Every step can be interrupted and is finished by the next `close_batch`:
- letters are collected in `.spool/.batch-<batch_id>/`, which the print house never looks at;
- once the manifest is written there, the batch is sealed: nothing is added, it is only published;
- publishing leaves `.spool/.publishing-<batch_id>` until `.ready` exists, so only a batch of ours
  that is known unfinished gets a `.ready` (never one the print house is removing after pickup);
- the ids of published letters are remembered (`.spool/.batched/<date>/<delivery_id>`) for
  `remember_days`, so a repeated send of a letter already in a batch is not printed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from services.common.clock import isoformat_utc
from services.dispatcher.adapters.base import (
    BadReceipt,
    ChannelError,
    ChannelName,
    Outgoing,
    Receipt,
    SendResult,
)
from services.dispatcher.adapters.http import json_receipts, text_field, time_field

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SPOOL = ".spool"
_COLLECTING = ".batch-"
_PUBLISHING = ".publishing-"
_BATCHED = ".batched"
# Delivery ids become file names: nothing that could climb out of the directory or hide in it.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def postal_address(out: Outgoing) -> dict[str, Any] | None:
    """The recipient's address as the manifest states it, or None when a letter could not reach it
    (no street line, postal code or city). A missing country is the creditor's."""
    address = out.recipient.address
    lines = [line.strip() for line in address.lines if line.strip()]
    if not lines or not address.postal_code.strip() or not address.city.strip():
        return None
    return {
        "lines": lines,
        "postal_code": address.postal_code.strip(),
        "city": address.city.strip(),
        "country": (address.country.strip() or out.creditor.jurisdiction).upper(),
    }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, content: bytes) -> None:
    """Write aside, flush to disk, rename over `path`: readers see the old file or the new, whole."""
    part = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        with part.open("wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    _fsync_dir(path.parent)


class PrintAdapter:
    """Spools letters in a drop directory (local, or a mounted SFTP drop) and closes them in batches.

    Keyword arguments: `remember_days`, how long the ids of letters already in a batch are kept (a
    repeated send within it is answered as a duplicate, not printed again); `now`, the clock.

    Extra method: `close_batch()` (see the module's docstring), for the dispatcher's batch timer.
    """

    channel: ChannelName = "print"
    provider = "print"

    def __init__(
        self, drop: Path, *, remember_days: int = 30, now: Callable[[], datetime] | None = None
    ) -> None:
        self.drop = Path(drop)
        self.spool = self.drop / SPOOL
        self._remember = timedelta(days=remember_days)
        self._now = now or (lambda: datetime.now(UTC))
        self._closing = asyncio.Lock()

    async def send(self, out: Outgoing) -> SendResult:
        address = postal_address(out)
        if address is None:
            raise ChannelError(
                "the customer has no usable postal address",
                retryable=False,
                code="no_address",
                contact="address",
            )
        if not _SAFE_ID.fullmatch(out.delivery_id):
            raise ChannelError(
                "the delivery id cannot name a file", retryable=False, code="invalid_delivery_id"
            )
        pdf = out.documents.get("pdf")
        if not pdf:
            raise ChannelError("no PDF was rendered", retryable=False, code="no_document")
        letter = {
            "delivery_id": out.delivery_id,
            "file": f"{out.delivery_id}.pdf",
            "sha256": hashlib.sha256(pdf).hexdigest(),
            "recipient": {"name": out.recipient.name, "address": address},
        }
        try:
            batched = await asyncio.to_thread(self._spool, out.delivery_id, pdf, letter)
        except OSError as exc:
            log.warning("print: cannot spool delivery %s: %s", out.delivery_id, type(exc).__name__)
            raise ChannelError(
                f"print: the drop is not writable ({type(exc).__name__})",
                retryable=True,
                code="drop_unavailable",
            ) from None
        detail = "duplicate: already in a batch" if batched else "spooled"
        return SendResult(provider_ref=out.delivery_id, state="accepted", detail=detail)

    def _spool(self, delivery_id: str, pdf: bytes, letter: dict[str, Any]) -> bool:
        """Spool the letter (the PDF first: a letter is whole once its JSON is there); True, and
        nothing written, when it is already in a batch."""
        if self._in_a_batch(delivery_id):
            return True
        self.spool.mkdir(parents=True, exist_ok=True)
        _write_durably(self.spool / f"{delivery_id}.pdf", pdf)
        _write_durably(self.spool / f"{delivery_id}.json", json.dumps(letter, ensure_ascii=False).encode())
        return False

    def _in_a_batch(self, delivery_id: str) -> bool:
        if any(self.spool.glob(f"{_COLLECTING}*/{delivery_id}.json")):
            return True
        return any((day / delivery_id).exists() for day in self._batched_days())

    def _batched_days(self) -> list[Path]:
        root = self.spool / _BATCHED
        return [day for day in root.iterdir() if day.is_dir()] if root.is_dir() else []

    async def close_batch(self) -> str | None:
        """Put every spooled letter in a new batch and publish it; the batch id, or None when nothing
        was spooled (and no interrupted batch was finished)."""
        async with self._closing:
            return await asyncio.to_thread(self._close_batch)

    def _close_batch(self) -> str | None:
        published = self._finish_interrupted()
        letters = self._spooled()
        collecting = self._collecting()
        if not letters and collecting is None:
            self._forget_old()
            return published
        if collecting is None:
            collecting = self.spool / f"{_COLLECTING}{self._batch_id()}"
            collecting.mkdir()
        for delivery_id in letters:
            self._collect(delivery_id, collecting)
        _fsync_dir(collecting)
        _fsync_dir(self.spool)
        batch_id = self._seal(collecting)
        if batch_id is not None:
            self._publish(batch_id)
            published = batch_id
        self._forget_old()
        return published

    def _batch_id(self) -> str:
        # Sortable by time, unique without coordination.
        return f"{self._now().astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"

    def _spooled(self) -> list[str]:
        """The letters spooled whole (their JSON written, hence their PDF)."""
        if not self.spool.is_dir():
            return []
        return sorted(
            path.stem
            for path in self.spool.glob("*.json")
            if _SAFE_ID.fullmatch(path.stem) and (self.spool / f"{path.stem}.pdf").exists()
        )

    def _collecting(self) -> Path | None:
        """The batch an interrupted close was collecting (at most one: closes do not overlap)."""
        found = sorted(p for p in self.spool.glob(f"{_COLLECTING}*") if not (p / MANIFEST).exists())
        return found[0] if found else None

    def _collect(self, delivery_id: str, collecting: Path) -> None:
        """Move a letter into the batch being collected: the JSON first, then the PDF (a crash in
        between leaves the PDF, which the sealing takes along)."""
        json_file, pdf = self.spool / f"{delivery_id}.json", self.spool / f"{delivery_id}.pdf"
        if self._in_a_batch(delivery_id):
            log.info("print: delivery %s is already in a batch: not batched again", delivery_id)
            json_file.unlink(missing_ok=True)
            pdf.unlink(missing_ok=True)
            return
        os.replace(json_file, collecting / json_file.name)
        os.replace(pdf, collecting / pdf.name)

    def _seal(self, collecting: Path) -> str | None:
        """Write the manifest of the letters collected: from then on the batch only gets published.
        None (and the directory removed) when it holds no letter."""
        batch_id = collecting.name.removeprefix(_COLLECTING)
        letters = []
        for json_file in sorted(collecting.glob("*.json")):
            pdf = collecting / f"{json_file.stem}.pdf"
            if not pdf.exists() and (self.spool / pdf.name).exists():
                os.replace(self.spool / pdf.name, pdf)
            if pdf.exists():
                letters.append(json.loads(json_file.read_bytes()))
            else:
                log.error("print: delivery %s lost its PDF: left out of batch %s", json_file.stem, batch_id)
        if not letters:
            shutil.rmtree(collecting)
            return None
        self._remember_batched([letter["delivery_id"] for letter in letters])
        manifest = {"batch_id": batch_id, "created_at": isoformat_utc(self._now()), "letters": letters}
        _write_durably(collecting / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1).encode())
        return batch_id

    def _publish(self, batch_id: str) -> None:
        """Move a sealed batch into the drop and mark it ready (the print house's signal, last)."""
        marker = self.spool / f"{_PUBLISHING}{batch_id}"
        marker.touch()
        _fsync_dir(self.spool)
        sealed, target = self.spool / f"{_COLLECTING}{batch_id}", self.drop / batch_id
        if sealed.is_dir():
            for json_file in sealed.glob("*.json"):
                if json_file.name != MANIFEST:
                    json_file.unlink()
            os.replace(sealed, target)
            _fsync_dir(self.drop)
        ready = self.drop / f"{batch_id}.ready"
        if target.is_dir() and not ready.exists():
            _write_durably(ready, f"{batch_id}\n".encode())
            log.info("print: batch %s is ready", batch_id)
        marker.unlink()
        _fsync_dir(self.spool)

    def _finish_interrupted(self) -> str | None:
        """Publish the batches an interrupted close had sealed; the last one's id."""
        if not self.spool.is_dir():
            return None
        sealed = {
            p.name.removeprefix(_COLLECTING)
            for p in self.spool.glob(f"{_COLLECTING}*")
            if (p / MANIFEST).exists()
        }
        publishing = {p.name.removeprefix(_PUBLISHING) for p in self.spool.glob(f"{_PUBLISHING}*")}
        for batch_id in sorted(sealed | publishing):
            self._publish(batch_id)
        return max(sealed | publishing) if sealed or publishing else None

    def _remember_batched(self, delivery_ids: list[str]) -> None:
        day = self.spool / _BATCHED / self._now().astimezone(UTC).date().isoformat()
        day.mkdir(parents=True, exist_ok=True)
        for delivery_id in delivery_ids:
            (day / delivery_id).touch()
        _fsync_dir(day)

    def _forget_old(self) -> None:
        oldest = (self._now() - self._remember).astimezone(UTC).date()
        for day in self._batched_days():
            with contextlib.suppress(ValueError):
                if date.fromisoformat(day.name) < oldest:
                    shutil.rmtree(day, ignore_errors=True)

    def parse_receipts(self, body: bytes, content_type: str) -> list[Receipt]:
        """The print house's reports: printed (delivered to the post) or returned to sender."""
        receipts = []
        for item in json_receipts(body, content_type):
            status = text_field(item, "status")
            if status not in ("printed", "returned"):
                raise BadReceipt(f"unknown print status {status!r}")
            delivery_id = text_field(item, "delivery_id")
            receipts.append(
                Receipt(
                    event_id=text_field(item, "event_id"),
                    delivery_id=delivery_id,
                    provider_ref=delivery_id,
                    status="delivered" if status == "printed" else "returned",
                    occurred_at=time_field(item),
                    reason=text_field(item, "reason", required=False),
                    contact="address" if status == "returned" else None,
                )
            )
        return receipts

    async def close(self) -> None:
        """Nothing is held open between sends."""
