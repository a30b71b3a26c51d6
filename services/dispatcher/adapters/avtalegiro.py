"""AvtaleGiro payment claims to Nets (PROTOCOLS.md, provider `avtalegiro`): each claim is spooled
durably by `send`, and `close_batch` writes every spooled claim as one Nets OCR transmission
(service code 21, built with `netsgiro`) into the directory Nets collects from.

Nothing is lost or sent twice across crashes. The spool under `<nets_dir>/.spool/`:

    claims/<delivery_id>.json    waiting for the next batch (the same delivery again replaces it)
    batches/<number>/            a batch being written: batch.json (its plan) and its claims
    sent/<number>/               a batch whose file reached outbound/ (kept so a late resend of a
                                 delivery is answered, not claimed again; pruned after
                                 `keep_sent_days`)
    refused/<delivery_id>.json   claims whose due date broke Nets' deadline before a batch took them
                                 (reported by `refusals()` until the dispatcher forgets them)
    sequence                     the last transmission/assignment number used

Every file is written aside and renamed. A batch takes its claims by renaming them into its
directory (a claim is in exactly one place), its file name comes from its number, and it moves to
sent/ only after its file is in outbound/: a crash anywhere is finished by the next `close_batch`,
which rewrites the same file rather than a second one (a batch is written as it was formed: its
claims met the deadline then). One process writes a `nets_dir` at a time (an exclusive lock on
`.spool/lock` makes a second one wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import netsgiro
from stdnum.no import kontonr

from services.common.clock import Clock, SystemClock, isoformat_utc, parse_iso_date
from services.dispatcher.adapters.base import (
    BadReceipt,
    ChannelError,
    ChannelName,
    Outgoing,
    Receipt,
    ReceiptStatus,
    SendResult,
)
from services.dispatcher.adapters.http import json_receipts, text_field, time_field
from services.dispatcher.domain.avtalegiro import claim_possible, claim_problem

log = logging.getLogger(__name__)

AGREEMENT_SETTING = "avtalegiro.agreement"
NOTICE_SETTING = "avtalegiro.notice"
# The file Nets collects; its name is the batch's transmission number.
FILE_PREFIX = "claims-"
PLAN = "batch.json"
_NUMBER_LIMIT = 10_000_000  # transmission and assignment numbers have 7 digits
_NETS_ID = re.compile(r"[0-9]{8}")
_DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_KID = re.compile(r"[0-9]{4,25}")
_STATUSES: dict[str, ReceiptStatus] = {"delivered": "delivered", "rejected": "rejected"}
# Record 31: the reference shown on the payer's account statement, and a cross-reference for us.
_REFERENCE_LENGTH = 25
_PAYER_REF_LENGTH = 10
# Record 49: at most 42 lines of 80 characters, ISO-8859-1.
_NOTICE_WIDTH = 80
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TITLES = {
    "invoice": "Faktura",
    "reminder": "Purring på faktura",
    "collection_notice": "Inkassovarsel for faktura",
    "credit_note": "Kreditnota",
}


@dataclass(frozen=True)
class Claim:
    """One payment claim as spooled: what its line in the claim file says, and whose it is."""

    delivery_id: str
    kid: str
    amount_minor: int
    due_date: date
    # The 11-digit account the creditor's AvtaleGiro agreement is on (the assignment account).
    account: str
    # On the payer's account statement (record 31, 25 characters).
    reference: str
    # For our cross-reference in Nets' reports, never shown to the payer (record 31, 10 characters).
    payer_ref: str
    # The bank's notice to the payer (transaction type 21, record 49); "" when the creditor notifies
    # the payer itself (transaction type 02).
    notice: str
    spooled_at: str

    @property
    def provider_ref(self) -> str:
        return f"{self.kid}:{self.due_date.isoformat()}"

    def to_json(self) -> bytes:
        return json.dumps(
            {**asdict(self), "due_date": self.due_date.isoformat()}, ensure_ascii=False
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Claim:
        fields: dict[str, Any] = json.loads(data)
        fields["due_date"] = parse_iso_date(fields["due_date"])
        return cls(**fields)


class AvtaleGiroAdapter:
    """AvtaleGiro claims, spooled by `send` and written to Nets by `close_batch`.

    `AvtaleGiroAdapter(nets_dir, data_transmitter, data_recipient, *, agreement_account="",
    bank_notice=True, clock=SystemClock())`:
    - `nets_dir`: the directory shared with Nets (files go to `<nets_dir>/outbound/`; the spool is
      `<nets_dir>/.spool/`, which Nets never reads);
    - `data_transmitter`: our 8-digit Nets customer unit id; `data_recipient`: Nets' (8 digits,
      "00008080" in production);
    - `agreement_account`: the 11-digit account of the AvtaleGiro agreement for creditors whose
      settings do not name one in `avtalegiro.agreement`;
    - `bank_notice`: whether the payer's bank notifies the payer of each claim (transaction type 21
      with the notice text in record 49) for creditors whose `avtalegiro.notice` setting is not
      "bank" or "payee". The notice is the creditor's choice, not per claim: "payee" means the
      creditor notifies the payer itself (by the invoice on another channel: type 02);
    - `clock`: "now" for Nets' deadline (due date ≥ 4 calendar days after sending, one more from
      14:00 Oslo time; ≤ 12 months ahead), checked at `send` and again when the file is written.

    Refusals (permanent; the dispatcher falls back to another channel): "no_payment",
    "no_agreement", "currency", "invalid_amount", "invalid_kid", "deadline", "invalid_delivery_id";
    a spool that cannot be written (a full disk) is retryable, code "spool".
    A claim that was spooled but missed the deadline before its batch closed is reported by
    `refusals()` as a "rejected" receipt, to be applied like a webhook's and then `forget_refusals`.
    """

    channel: ChannelName = "avtalegiro"
    provider = "avtalegiro"

    def __init__(
        self,
        nets_dir: Path,
        data_transmitter: str,
        data_recipient: str,
        *,
        agreement_account: str = "",
        bank_notice: bool = True,
        clock: Clock | None = None,
        keep_sent_days: float = 400.0,
    ) -> None:
        for name, value in (("data_transmitter", data_transmitter), ("data_recipient", data_recipient)):
            if not _NETS_ID.fullmatch(value):
                raise ValueError(f"{name} must be the 8-digit Nets id, got {value!r}")
        if agreement_account and not kontonr.is_valid(agreement_account):
            raise ValueError("agreement_account must be an 11-digit Norwegian account number")
        self._spool = _Spool(Path(nets_dir))
        self._transmitter = data_transmitter
        self._recipient = data_recipient
        self._agreement_account = kontonr.compact(agreement_account) if agreement_account else ""
        self._bank_notice = bank_notice
        self._clock: Clock = clock or SystemClock()
        # Sent batches are kept this long (a claim is due at most 12 months ahead: no resend of an
        # older one can come), then pruned at a batch close, so sent/ does not grow for ever.
        self._keep_sent = keep_sent_days * 86400

    async def send(self, out: Outgoing) -> SendResult:
        claim = self._claim(out)
        try:
            taken = await asyncio.to_thread(self._spool.put, claim)
        except OSError as exc:
            log.warning("avtalegiro: cannot spool delivery %s: %s", out.delivery_id, type(exc).__name__)
            raise ChannelError(
                f"avtalegiro: cannot spool the claim ({type(exc).__name__})", retryable=True, code="spool"
            ) from None
        if taken is not None:
            return SendResult(provider_ref=taken.provider_ref, state="accepted", detail="already in a batch")
        return SendResult(provider_ref=claim.provider_ref, state="accepted", detail="spooled")

    def _claim(self, out: Outgoing) -> Claim:
        """The claim for `out`, or the ChannelError that says why there can be none."""
        if not _DELIVERY_ID.fullmatch(out.delivery_id):
            raise ChannelError(
                "the delivery id cannot name a file", retryable=False, code="invalid_delivery_id"
            )
        payment = out.payment
        if payment is None:
            raise ChannelError("an AvtaleGiro claim needs a payment", retryable=False, code="no_payment")
        account = self._account(out.creditor.settings)
        now = self._clock.now()
        problem = claim_problem(
            kid=payment.kid,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            due_date=payment.due_date,
            sent_at=now,
        )
        if problem is not None:
            code, reason = problem
            log.info("avtalegiro: refused delivery %s: %s", out.delivery_id, code)
            raise ChannelError(f"avtalegiro: {reason}", retryable=False, code=code)
        return Claim(
            delivery_id=out.delivery_id,
            kid=payment.kid,
            amount_minor=payment.amount_minor,
            due_date=payment.due_date,
            account=account,
            reference=_latin1(f"{_TITLES.get(out.kind, 'Faktura')} {out.invoice_number}")[:_REFERENCE_LENGTH],
            payer_ref=_latin1(out.recipient.customer_number)[:_PAYER_REF_LENGTH],
            notice=notice_text(out) if self._wants_bank_notice(out.creditor.settings) else "",
            spooled_at=isoformat_utc(now),
        )

    def _account(self, settings: Mapping[str, str]) -> str:
        account = settings.get(AGREEMENT_SETTING, "").strip() or self._agreement_account
        if not account:
            raise ChannelError(
                "the creditor has no AvtaleGiro agreement", retryable=False, code="no_agreement"
            )
        if not kontonr.is_valid(account):
            raise ChannelError(
                f"the creditor's {AGREEMENT_SETTING} is not an 11-digit account number",
                retryable=False,
                code="no_agreement",
            )
        return str(kontonr.compact(account))

    def _wants_bank_notice(self, settings: Mapping[str, str]) -> bool:
        choice = settings.get(NOTICE_SETTING, "").strip().lower()
        return self._bank_notice if choice not in ("bank", "payee") else choice == "bank"

    async def close_batch(self) -> str | None:
        """Write every spooled claim as one transmission to `<nets_dir>/outbound/<name>`, first
        finishing any batch a crash interrupted; the file name of the new batch (else of a finished
        one), or None when there was nothing to write."""
        return await asyncio.to_thread(self._close_batch)

    def _close_batch(self) -> str | None:
        with self._spool.locked():
            finished = [self._write(batch) for batch in self._spool.unfinished()]
            batch = self._spool.form_batch(self._clock.now())
            if batch is not None:
                finished.append(self._write(batch))
            self._spool.prune_sent(older_than=time.time() - self._keep_sent)
        names = [name for name in finished if name is not None]
        return names[-1] if names else None

    def _write(self, batch: Path) -> str | None:
        plan, claims = self._spool.read_batch(batch)
        if not claims:
            self._spool.discard(batch)
            return None
        text = transmission(
            number=plan["number"],
            data_transmitter=self._transmitter,
            data_recipient=self._recipient,
            assignments=plan["assignments"],
            claims=claims,
        )
        name = file_name(plan["number"])
        self._spool.publish(name, text.encode("iso-8859-1"))
        self._spool.mark_sent(batch)
        log.info("avtalegiro: wrote %s with %d claims", name, len(claims))
        return name

    def refusals(self) -> list[Receipt]:
        """Claims that missed Nets' deadline while spooled, as "rejected" receipts (the same event
        id each time: applying one twice changes nothing)."""
        return [
            Receipt(
                event_id=f"avtalegiro-deadline:{claim.delivery_id}:{claim.provider_ref}",
                delivery_id=claim.delivery_id,
                provider_ref=claim.provider_ref,
                status="rejected",
                occurred_at=at,
                reason=f"deadline: due date {claim.due_date.isoformat()} was too soon when the batch closed",
            )
            for claim, at in self._spool.refused()
        ]

    def forget_refusals(self, delivery_ids: Iterable[str]) -> None:
        """Drop refusals the dispatcher has applied."""
        self._spool.forget_refused(delivery_ids)

    def parse_receipts(self, body: bytes, content_type: str) -> list[Receipt]:
        return [_receipt(item) for item in json_receipts(body, content_type)]

    async def close(self) -> None:
        return None


def _receipt(item: Mapping[str, Any]) -> Receipt:
    status = _STATUSES.get(text_field(item, "status"))
    if status is None:
        raise BadReceipt(f"unknown receipt status {item.get('status')!r}")
    kid = text_field(item, "kid")
    if not _KID.fullmatch(kid):
        raise BadReceipt("the receipt's 'kid' must be 4-25 digits")
    try:
        due_date = parse_iso_date(text_field(item, "due_date"))
    except ValueError:
        raise BadReceipt("the receipt's 'due_date' must be a date written YYYY-MM-DD") from None
    ref = f"{kid}:{due_date.isoformat()}"
    return Receipt(
        event_id=text_field(item, "event_id"),
        # Without our delivery id, the dispatcher finds the delivery by the claim's KID and due date.
        delivery_id=text_field(item, "delivery_id", required=False) or ref,
        provider_ref=ref,
        status=status,
        occurred_at=time_field(item),
        reason=text_field(item, "reason", required=False) if status == "rejected" else "",
    )


def file_name(number: int) -> str:
    return f"{FILE_PREFIX}{number:07d}.txt"


def transmission(
    *,
    number: int,
    data_transmitter: str,
    data_recipient: str,
    assignments: Mapping[str, int],
    claims: Iterable[Claim],
) -> str:
    """The OCR text of one transmission: an assignment per agreement account (numbered by
    `assignments`), its claims in a stable order: lines of 80 characters, each ending in a newline."""
    sent = netsgiro.Transmission(
        number=f"{number:07d}", data_transmitter=data_transmitter, data_recipient=data_recipient
    )
    by_account: dict[str, list[Claim]] = {}
    for claim in claims:
        by_account.setdefault(claim.account, []).append(claim)
    for account in sorted(by_account):
        assignment = sent.add_assignment(
            service_code=netsgiro.ServiceCode.AVTALEGIRO,
            assignment_type=netsgiro.AssignmentType.TRANSACTIONS,
            number=f"{assignments[account]:07d}",
            account=account,
        )
        for claim in sorted(by_account[account], key=lambda c: (c.due_date, c.kid, c.delivery_id)):
            assignment.add_payment_request(
                kid=claim.kid,
                due_date=claim.due_date,
                # Never a float: øre as an exact Decimal of kroner (DOMAIN.md).
                amount=Decimal(claim.amount_minor) / 100,
                reference=claim.reference or None,
                payer_name=claim.payer_ref or None,
                bank_notification=claim.notice or False,
            )
    return sent.to_ocr() + "\n"


def notice_text(out: Outgoing) -> str:
    """The bank's notice to the payer (record 49): who claims what, when it is drawn."""
    assert out.payment is not None
    kroner, ore = divmod(out.payment.amount_minor, 100)
    lines = [
        f"Betalingsvarsel fra {out.creditor.legal_name}",
        f"{_TITLES.get(out.kind, 'Faktura')} {out.invoice_number}",
        f"Beløp: kr {kroner:,}".replace(",", " ") + f",{ore:02d}",
        f"Forfallsdato: {out.payment.due_date:%d.%m.%Y}",
        f"KID: {out.payment.kid}",
        "Beløpet trekkes fra kontoen din med AvtaleGiro på forfallsdatoen.",
    ]
    return "\n".join(_latin1(line)[:_NOTICE_WIDTH] for line in lines)


def _latin1(text: str) -> str:
    """`text` as the file can carry it: ISO-8859-1, no control characters."""
    printable = _UNPRINTABLE.sub(" ", text)
    return printable.encode("iso-8859-1", "replace").decode("iso-8859-1").strip()


class _Spool:
    """The adapter's files under `<nets_dir>/.spool/` and the file it publishes in outbound/."""

    def __init__(self, nets_dir: Path) -> None:
        self.root = nets_dir / ".spool"
        self.claims = self.root / "claims"
        self.batches = self.root / "batches"
        self.sent = self.root / "sent"
        self.refused_dir = self.root / "refused"
        self.outbound = nets_dir / "outbound"
        self._sequence = self.root / "sequence"
        self._thread_lock = threading.Lock()
        for directory in (self.claims, self.batches, self.sent, self.refused_dir, self.outbound):
            directory.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """This process's threads and other processes, one at a time."""
        with self._thread_lock, (self.root / "lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def put(self, claim: Claim) -> Claim | None:
        """Spool `claim` (replacing the same delivery's earlier one); or, when a batch has already
        taken this delivery, leave everything as it is and return the claim that went."""
        name = f"{claim.delivery_id}.json"
        with self.locked():
            for parent in (self.batches, self.sent):
                for batch in _subdirs(parent):
                    if (batch / name).exists():
                        return Claim.from_json((batch / name).read_bytes())
            _write_atomic(self.claims / name, claim.to_json())
            # Sent again, the delivery is a claim again: an earlier refusal no longer stands.
            (self.refused_dir / name).unlink(missing_ok=True)
        return None

    def unfinished(self) -> list[Path]:
        """Batches a crash left half done, oldest first (and no half-made batch directories)."""
        for forming in self.batches.glob(".*.forming"):
            shutil.rmtree(forming)
        return _subdirs(self.batches)

    def form_batch(self, now: datetime) -> Path | None:
        """A new batch of every spooled claim Nets can still take at `now` (the others go to
        refused/), or None when there are none."""
        ready: list[tuple[Path, Claim]] = []
        for path in sorted(self.claims.glob("*.json")):
            claim = Claim.from_json(path.read_bytes())
            if claim_possible(claim.due_date, now) is None:
                ready.append((path, claim))
            else:
                self._refuse(path, claim, now)
        if not ready:
            return None
        accounts = sorted({claim.account for _, claim in ready})
        number = self._take_numbers(1 + len(accounts))
        plan = {"number": number, "assignments": {a: number + 1 + i for i, a in enumerate(accounts)}}
        # The plan first, then the claims: a crash between leaves a batch with fewer claims, each
        # of which is in one place only.
        forming = self.batches / f".{number:07d}.forming"
        forming.mkdir()
        _write_atomic(forming / PLAN, json.dumps(plan).encode())
        batch = self.batches / f"{number:07d}"
        os.replace(forming, batch)
        for path, _ in ready:
            os.replace(path, batch / path.name)
        _fsync_dir(self.claims)
        _fsync_dir(batch)
        return batch

    def _refuse(self, path: Path, claim: Claim, now: datetime) -> None:
        log.warning("avtalegiro: delivery %s missed the deadline while spooled", claim.delivery_id)
        record = {"at": isoformat_utc(now), "claim": json.loads(claim.to_json())}
        _write_atomic(self.refused_dir / path.name, json.dumps(record).encode())
        path.unlink()

    def _take_numbers(self, count: int) -> int:
        """`count` consecutive numbers (wrapping past 9999999 to 1), recorded before they are used."""
        last = int(self._sequence.read_text()) if self._sequence.exists() else 0
        first = last + 1
        if first + count > _NUMBER_LIMIT:
            first = 1
        _write_atomic(self._sequence, str(first + count - 1).encode())
        return first

    def read_batch(self, batch: Path) -> tuple[dict[str, Any], list[Claim]]:
        plan: dict[str, Any] = json.loads((batch / PLAN).read_bytes())
        claims = [
            Claim.from_json(path.read_bytes()) for path in sorted(batch.glob("*.json")) if path.name != PLAN
        ]
        return plan, claims

    def publish(self, name: str, content: bytes) -> None:
        _write_atomic(self.outbound / name, content, part=self.outbound / f".{name}.part")

    def prune_sent(self, *, older_than: float) -> int:
        """Remove sent batches last changed before `older_than` (Unix time); how many."""
        pruned = 0
        for batch in _subdirs(self.sent):
            if batch.stat().st_mtime < older_than:
                shutil.rmtree(batch, ignore_errors=True)
                pruned += 1
        return pruned

    def mark_sent(self, batch: Path) -> None:
        os.replace(batch, self.sent / batch.name)
        _fsync_dir(self.batches)
        _fsync_dir(self.sent)

    def discard(self, batch: Path) -> None:
        (batch / PLAN).unlink(missing_ok=True)
        batch.rmdir()

    def refused(self) -> list[tuple[Claim, datetime]]:
        found = []
        for path in sorted(self.refused_dir.glob("*.json")):
            record = json.loads(path.read_bytes())
            claim = Claim.from_json(json.dumps(record["claim"]).encode())
            found.append((claim, datetime.fromisoformat(record["at"])))
        return found

    def forget_refused(self, delivery_ids: Iterable[str]) -> None:
        with self.locked():
            for delivery_id in delivery_ids:
                if _DELIVERY_ID.fullmatch(delivery_id):
                    (self.refused_dir / f"{delivery_id}.json").unlink(missing_ok=True)


def _subdirs(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def _write_atomic(path: Path, content: bytes, *, part: Path | None = None) -> None:
    """`content` at `path`, all or nothing: written aside, flushed to disk, renamed over."""
    part = part or path.with_name(f".{path.name}.part")
    with part.open("wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(part, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
