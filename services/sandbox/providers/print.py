"""The sandbox's print house (PROTOCOLS.md, `print`): it watches the drop for `<batch_id>.ready`, takes
the batch (moved to `<root>/print/batches/<batch_id>/`), keeps each new letter as
`<root>/print/<delivery_id>.pdf` with its address in `<delivery_id>.json`, and reports each letter
printed or returned.

A letter whose delivery id it has seen before is recorded `duplicate`, not printed again. Faults
apply per letter at pickup: `fail`, `bounce`, `reject` and `return` send it back ("addressee
unknown"), `delay` reports it printed after `seconds`; `error` (taken by a batch's first letter)
leaves the whole batch for the next pass, as a print house whose intake is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from services.common.clock import isoformat_utc
from services.common.ids import new_id
from services.sandbox.context import Fault, SandboxContext
from services.sandbox.settings import SandboxSettings

log = logging.getLogger(__name__)

CHANNEL = "print"
POLL_EVERY = 0.2
RECEIPT_AFTER = 0.2
RETURNED = "addressee unknown"


def _letters(batch: Path, batch_id: str) -> list[Any] | None:
    """The letters the batch's manifest lists, or None when it has no manifest of this batch."""
    try:
        manifest = json.loads((batch / "manifest.json").read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("batch_id") != batch_id:
        return None
    letters = manifest.get("letters")
    return letters if isinstance(letters, list) else None


class PrintHouse:
    def __init__(self, ctx: SandboxContext, drop: Path) -> None:
        self._ctx = ctx
        self._inbox = ctx.inbox(CHANNEL)
        self._drop = drop
        self._archive = self._inbox.dir / "batches"

    def poll(self) -> None:
        """Take every batch marked ready."""
        for ready in sorted(self._drop.glob("*.ready")):
            self._take(ready.name.removesuffix(".ready"), ready)

    def _take(self, batch_id: str, ready: Path) -> None:
        batch = self._drop / batch_id
        if not batch.is_dir():
            # Taken already (the print house stopped before removing the mark).
            ready.unlink(missing_ok=True)
            return
        letters = _letters(batch, batch_id)
        if letters is None:
            log.warning("sandbox print: batch %s refused: no manifest of this batch", batch_id)
            self._inbox.record(batch_id, "refused", error="invalid_manifest", batch=batch_id)
            self._put_away(batch, ready, self._archive / "refused" / batch_id)
            return
        first = self._ctx.faults.take(CHANNEL) if letters else None
        if first is not None and first.outcome == "error":
            log.info("sandbox print: batch %s left for the next pass (fault)", batch_id)
            return
        # The first letter printed uses the fault taken for the batch; the others take their own.
        taken = [first]

        def next_fault() -> Fault | None:
            return taken.pop() if taken else self._ctx.faults.take(CHANNEL)

        for letter in letters:
            self._letter(batch, batch_id, letter, next_fault)
        self._put_away(batch, ready, self._archive / batch_id)

    def _letter(
        self, batch: Path, batch_id: str, letter: Any, next_fault: Callable[[], Fault | None]
    ) -> None:
        delivery_id = letter.get("delivery_id") if isinstance(letter, dict) else None
        if not isinstance(delivery_id, str) or not delivery_id:
            self._inbox.record("", "refused", error="invalid_letter", batch=batch_id)
            return
        earlier = self._inbox.seen(delivery_id)
        if earlier is not None:
            self._inbox.record(delivery_id, "duplicate", id=earlier["id"], batch=batch_id)
            return
        pdf_path = batch / str(letter.get("file", ""))
        pdf = pdf_path.read_bytes() if pdf_path.is_file() and pdf_path.parent == batch else b""
        if not pdf or hashlib.sha256(pdf).hexdigest() != letter.get("sha256"):
            self._inbox.record(delivery_id, "refused", error="bad_file", batch=batch_id)
            return
        fault = next_fault()
        outcome = fault.outcome if fault else None
        letter_id = f"prt-{new_id()}"
        self._inbox.keep(f"{delivery_id}.pdf", pdf)
        self._inbox.keep(f"{delivery_id}.json", json.dumps(letter, ensure_ascii=False).encode())
        self._inbox.record(delivery_id, "accepted", id=letter_id, batch=batch_id, fault=outcome)
        returned = outcome in ("fail", "bounce", "reject", "return")
        delay = fault.seconds if fault is not None and outcome == "delay" else RECEIPT_AFTER
        receipt = {
            "event_id": new_id(),
            "delivery_id": delivery_id,
            "status": "returned" if returned else "printed",
            "reason": RETURNED if returned else "",
            "at": isoformat_utc(self._ctx.now() + timedelta(seconds=delay)),
        }
        self._ctx.callbacks.post(CHANNEL, receipt, delay=delay)

    @staticmethod
    def _put_away(batch: Path, ready: Path, to: Path) -> None:
        """Move the batch out of the drop, then remove its mark (as an SFTP pickup would)."""
        to.parent.mkdir(parents=True, exist_ok=True)
        if to.exists():
            shutil.rmtree(to)
        shutil.move(batch, to)
        ready.unlink(missing_ok=True)


def setup(app: web.Application, ctx: SandboxContext, settings: SandboxSettings) -> None:
    tasks: list[asyncio.Task[None]] = []

    async def watch(house: PrintHouse) -> None:
        while True:
            try:
                house.poll()
            except OSError:
                log.exception("sandbox print: cannot read the drop")
            await asyncio.sleep(POLL_EVERY)

    async def start(_: web.Application) -> None:
        settings.print_drop.mkdir(parents=True, exist_ok=True)
        tasks.append(asyncio.create_task(watch(PrintHouse(ctx, settings.print_drop))))

    async def stop(_: web.Application) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
