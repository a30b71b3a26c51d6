"""Nets AvtaleGiro (PROTOCOLS.md, provider `avtalegiro`): collects the claim files the dispatcher
writes to `<nets_dir>/outbound/`, reads each with `netsgiro` as Nets would, and reports every claim
by a signed receipt.

A claim is known by its KID and due date: one seen before (a file rewritten after a crash, a delivery
sent twice) is recorded `duplicate` and neither kept nor reported again. Each collected file is kept
under `<root>/avtalegiro/` and removed from outbound/, as Nets' SFTP collection does. Files still
being written (dot files, `.part`) are left alone. Faults apply per new claim: `fail` → rejected (no
active agreement), `reject`/`bounce`/`return` → rejected by the payer's bank, `error` → rejected as
a temporary failure and not recorded (the same claim sent again is taken), `delay` → delivered after
`seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import netsgiro
from aiohttp import web

from services.common.clock import isoformat_utc
from services.common.ids import new_id
from services.sandbox.context import Fault, Inbox, SandboxContext
from services.sandbox.settings import SandboxSettings

log = logging.getLogger(__name__)

CHANNEL = "avtalegiro"
PROVIDER = "avtalegiro"
POLL_SECONDS = 0.2
RECEIPT_AFTER = 0.2
_CLAIM_TYPES = frozenset(
    {
        netsgiro.TransactionType.AVTALEGIRO_WITH_PAYEE_NOTIFICATION,
        netsgiro.TransactionType.AVTALEGIRO_WITH_BANK_NOTIFICATION,
    }
)
_REASONS = {
    "fail": "No active AvtaleGiro agreement for this KID",
    "reject": "The payer's bank refused the claim",
    "bounce": "The payer's bank refused the claim",
    "return": "The payer's bank refused the claim",
    "error": "Nets could not process the claim now (temporary): send it again",
}


@dataclass(frozen=True)
class ClaimLine:
    """One payment claim as Nets reads it from a file."""

    kid: str
    due_date: date
    amount_minor: int
    notice: bool

    @property
    def key(self) -> str:
        return f"{self.kid}:{self.due_date.isoformat()}"


def read_claims(text: str) -> list[ClaimLine]:
    """The payment claims of an AvtaleGiro claim file; ValueError when it is not one."""
    try:
        transmission = netsgiro.parse(text)
    except (ValueError, AssertionError) as exc:
        raise ValueError(f"not a Nets OCR file: {exc}") from None
    claims = []
    for assignment in transmission.assignments:
        if (
            assignment.service_code != netsgiro.ServiceCode.AVTALEGIRO
            or assignment.type != netsgiro.AssignmentType.TRANSACTIONS
        ):
            raise ValueError(f"assignment {assignment.number} holds no AvtaleGiro payment claims")
        for request in assignment.transactions:
            if not isinstance(request, netsgiro.PaymentRequest) or request.type not in _CLAIM_TYPES:
                raise ValueError(f"assignment {assignment.number} holds something else than claims")
            if not request.kid:
                raise ValueError(f"claim {request.number} of assignment {assignment.number} has no KID")
            claims.append(
                ClaimLine(
                    kid=request.kid,
                    due_date=request.date,
                    amount_minor=int(Decimal(request.amount) * 100),
                    notice=request.type == netsgiro.TransactionType.AVTALEGIRO_WITH_BANK_NOTIFICATION,
                )
            )
    return claims


class NetsCollector:
    """Collects outbound/ every `POLL_SECONDS`, one file at a time."""

    def __init__(self, ctx: SandboxContext, outbound: Path) -> None:
        self._ctx = ctx
        self._outbound = outbound
        self._inbox: Inbox = ctx.inbox(CHANNEL)

    async def run(self) -> None:
        self._outbound.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                self.collect()
            except OSError:
                log.exception("sandbox avtalegiro: cannot collect %s", self._outbound)
            await asyncio.sleep(POLL_SECONDS)

    def collect(self) -> None:
        for path in sorted(self._outbound.glob("*.txt")):
            if not path.name.startswith("."):
                self._take(path)

    def _take(self, path: Path) -> None:
        raw = path.read_bytes()
        kept = self._keep(path.name, raw)
        path.unlink()
        try:
            claims = read_claims(raw.decode("iso-8859-1"))
        except ValueError as exc:
            log.warning("sandbox avtalegiro: %s refused: %s", path.name, exc)
            self._inbox.record(f"file:{path.name}", "refused", error="invalid_file", file=kept)
            return
        for claim in claims:
            self._claim(claim, kept)

    def _keep(self, name: str, raw: bytes) -> str:
        """Keep the file as collected; a rewrite with other content is kept beside the first."""
        candidate, number = name, 1
        while (self._inbox.dir / candidate).exists() and (self._inbox.dir / candidate).read_bytes() != raw:
            number += 1
            candidate = f"{Path(name).stem}.{number}{Path(name).suffix}"
        return self._inbox.keep(candidate, raw).name

    def _claim(self, claim: ClaimLine, file: str) -> None:
        earlier = self._inbox.seen(claim.key)
        if earlier is not None:
            self._inbox.record(claim.key, "duplicate", id=earlier["id"], file=file)
            return
        fault = self._ctx.faults.take(CHANNEL)
        outcome = fault.outcome if fault else None
        fields = {
            "kid": claim.kid,
            "due_date": claim.due_date.isoformat(),
            "amount_minor": claim.amount_minor,
            "notice": claim.notice,
            "file": file,
            "fault": outcome,
        }
        if outcome == "error":
            self._inbox.record(claim.key, "refused", error="unavailable", **fields)
        else:
            self._inbox.record(claim.key, "accepted", id=f"nets-{new_id()}", **fields)
        self._report(claim, file, fault)

    def _report(self, claim: ClaimLine, file: str, fault: Fault | None) -> None:
        outcome = fault.outcome if fault else None
        reason = _REASONS.get(outcome or "", "")
        delay = fault.seconds if fault and outcome == "delay" else RECEIPT_AFTER
        self._ctx.callbacks.post(
            PROVIDER,
            {
                "event_id": new_id(),
                "kid": claim.kid,
                "due_date": claim.due_date.isoformat(),
                "file": file,
                "status": "rejected" if reason else "delivered",
                "reason": reason,
                "at": isoformat_utc(self._ctx.now() + timedelta(seconds=delay)),
            },
            delay=delay,
        )


def setup(app: web.Application, ctx: SandboxContext, settings: SandboxSettings) -> None:
    collector = NetsCollector(ctx, settings.nets_dir / "outbound")
    tasks: list[asyncio.Task[None]] = []

    async def start(_: web.Application) -> None:
        tasks.append(asyncio.create_task(collector.run()))

    async def stop(_: web.Application) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
