"""ImportPayments: a bank file, checked whole, then every payment decided and announced.

1. The file is parsed and checked whole (counts, totals, every record) before anything is stored:
   a bad file is refused with every problem, and nothing of it is applied.
2. The file is stored with its import (`receiving` → `running`): from here a replica that dies is
   replaced by another that resumes the import from the stored file.
3. Under the tenant's import lease (one import per tenant at a time, across replicas), each payment
   not seen before is decided against the tenant's book, in file order, and recorded with its events
   (PaymentReceived; PaymentMatched; PaymentReversed) and the open amounts it takes, a batch per
   transaction. A payment is all or nothing: its decision, its proposal and its claim on the open
   amounts commit together. A transaction already imported (this file again, or another file with
   the same bank transaction) is a duplicate and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Final

from opentelemetry import metrics
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from services.common.clock import Clock, local_today
from services.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound, Violations
from services.common.events import (
    PAYMENT_TOPIC,
    Allocation,
    Event,
    PaymentMatched,
    PaymentMatchedData,
    PaymentReceived,
    PaymentReceivedData,
    PaymentReversed,
    PaymentReversedData,
)
from services.common.ids import new_id
from services.common.lease import Lease
from services.common.mongo import Doc, Session, in_slices, in_transaction
from services.common.outbox import add_to_outbox
from services.common.text import check_text
from services.matcher.adapters.bankfiles import parse
from services.matcher.book import Book, Books
from services.matcher.domain.matching import Decision, decide
from services.matcher.domain.open_items import normalise_account
from services.matcher.domain.payments import FORMATS, BankFile, BankFileError, BankPayment, FileFormat
from services.matcher.store import FILE_CHUNK, MatcherStore, payment_id, review_key, sort_key

log = logging.getLogger(__name__)
_meter = metrics.get_meter("fordring.matcher")
PAYMENTS: Final = _meter.create_counter(
    "fordring_matcher_payments",
    description="Payments imported, by status (matched, review, reversal, duplicate) and method",
)
IMPORTS: Final = _meter.create_counter(
    "fordring_matcher_imports",
    description="Bank files imported, by format and outcome (done, duplicate, rejected)",
)
IMPORT_SECONDS: Final = _meter.create_histogram(
    "fordring_matcher_import_seconds",
    unit="s",
    description="A bank file from its arrival to its last payment",
)

MAX_PROBLEMS: Final = 100
MAX_REFERENCE: Final = 200
MAX_FILENAME: Final = 255
# The identifiers of a payment a later return can name (camt RtrInf, or the same EndToEndId).
_RETURN_IDS: Final = ("end_to_end_id", "acct_svcr_ref", "tx_id", "transaction_number", "archive_reference")
_NOT_IDS: Final = frozenset({"", "NOTPROVIDED", "NOT PROVIDED"})


@dataclass(frozen=True)
class Imported:
    doc: Doc
    already_imported: bool


def bank_refs(ids: Any) -> list[str]:
    return sorted(f"{k}:{v}" for k, v in dict(ids).items() if k in _RETURN_IDS and v not in _NOT_IDS)


def parse_file(content: bytes, format: str, filename: str) -> BankFile:
    """The file, checked whole; InvalidArgument with every problem (its line or record, and why)."""
    if format and format not in FORMATS:
        raise InvalidArgument([FieldViolation("format", f"one of {', '.join(FORMATS)} (or empty: detected)")])
    fmt: FileFormat | None = next((f for f in FORMATS if f == format), None)
    try:
        return parse(content, format=fmt, filename=filename)
    except BankFileError as exc:
        problems = exc.problems
        violations = [FieldViolation(p.location or "file", p.reason) for p in problems[:MAX_PROBLEMS]]
        more = f"; {len(problems) - 1} more problem(s) in the details" if len(problems) > 1 else ""
        raise InvalidArgument(
            violations, f"the bank file is refused, nothing of it applied: {problems[0]}{more}"
        ) from None


class Importer:
    def __init__(
        self,
        store: MatcherStore,
        books: Books,
        clock: Clock,
        *,
        batch: int = 1000,
        lease_seconds: float = 60.0,
        on_commit: Callable[[], None] = lambda: None,
        catch_up: Callable[[], Awaitable[object]] | None = None,
        own_accounts: Callable[[str], Awaitable[frozenset[str]]] | None = None,
        other_account: str = "warn",
    ) -> None:
        self._other_account = other_account
        self._catch_up = catch_up
        self._own_accounts = own_accounts
        self._store = store
        self._books = books
        self._clock = clock
        self._batch = batch
        self._lease_seconds = lease_seconds
        self._on_commit = on_commit

    # --- the call ---------------------------------------------------------------------------

    async def import_file(self, tenant_id: str, content: bytes, *, filename: str, format: str) -> Imported:
        v = Violations()
        check_text(filename, "header.filename", MAX_FILENAME, v)
        if not content:
            v.add("chunk", "the file is empty")
        v.raise_if_any()
        started = time.monotonic()
        sha = hashlib.sha256(content).hexdigest()
        existing = await self._store.imports.find_one({"tenant_id": tenant_id, "sha256": sha})
        if existing is not None and existing["state"] == "done":
            IMPORTS.add(1, {"format": existing["format"], "outcome": "duplicate"})
            return Imported(existing, True)
        try:
            bank_file = await asyncio.to_thread(parse_file, content, format, filename)
            warnings = await self._check_account(tenant_id, bank_file)
        except (InvalidArgument, FailedPrecondition):
            IMPORTS.add(1, {"format": format or "unknown", "outcome": "rejected"})
            raise
        if existing is None:
            existing = await self._create(tenant_id, sha, bank_file, content, filename, warnings)
        if existing["state"] == "receiving":
            await self._store_file(existing["_id"], content)
        doc = await self.run(existing["_id"], wait=max(self._lease_seconds * 5, 300.0), bank_file=bank_file)
        IMPORTS.add(1, {"format": doc["format"], "outcome": "done"})
        IMPORT_SECONDS.record(time.monotonic() - started, {"format": doc["format"]})
        return Imported(doc, False)

    async def _check_account(self, tenant_id: str, bank_file: BankFile) -> list[str]:
        """A file for another account than the creditor's may be someone else's money, whose KIDs
        could be this creditor's by chance: refused whole, or imported with a warning (the setting
        `other_account`; only when the creditor's profile names accounts)."""
        given = normalise_account(bank_file.creditor_account)
        if self._own_accounts is None or self._other_account == "off" or not given:
            return []
        own = await self._own_accounts(tenant_id)
        if not own or given in own:
            return []
        problem = (
            f"the file is for account {bank_file.creditor_account}, which is not one of the accounts "
            f"of the creditor's profile ({', '.join(sorted(own))})"
        )
        if self._other_account == "refuse":
            raise FailedPrecondition(f"{problem}: nothing of it is applied", reason="NOT_OUR_ACCOUNT")
        log.warning("tenant %s: %s; imported as the setting other_account=warn says", tenant_id, problem)
        return [problem]

    async def _create(
        self,
        tenant_id: str,
        sha: str,
        bank_file: BankFile,
        content: bytes,
        filename: str,
        warnings: list[str],
    ) -> Doc:
        now = self._clock.now()
        credits = sum(p.amount_minor for p in bank_file.payments if p.direction == "credit")
        debits = sum(p.amount_minor for p in bank_file.payments if p.direction == "debit")
        currencies = sorted({p.currency for p in bank_file.payments})
        doc: Doc = {
            "_id": new_id(),
            "tenant_id": tenant_id,
            "sha256": sha,
            "filename": filename,
            "format": bank_file.format,
            "version": bank_file.version,
            "file_id": bank_file.file_id,
            "creditor_account": bank_file.creditor_account,
            "size": len(content),
            "state": "receiving",
            "payments": len(bank_file.payments),
            "total_minor": credits - debits,
            "currency": currencies[0] if len(currencies) == 1 else ",".join(currencies),
            "matched": 0,
            "review": 0,
            "reversals": 0,
            "duplicates": 0,
            "by_method": {},
            "warnings": warnings,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._store.imports.insert_one(doc)
        except DuplicateKeyError:  # the same file, sent twice at once: one import
            found = await self._store.imports.find_one({"tenant_id": tenant_id, "sha256": sha})
            assert found is not None
            return found
        return doc

    async def _store_file(self, import_id: str, content: bytes) -> None:
        await self._store.files.delete_many({"import_id": import_id})
        chunks = [
            {"_id": f"{import_id}:{n}", "import_id": import_id, "n": n, "data": content[at : at + FILE_CHUNK]}
            for n, at in enumerate(range(0, len(content), FILE_CHUNK))
        ]
        await self._store.files.insert_many(chunks)
        await self._store.imports.update_one(
            {"_id": import_id, "state": "receiving"},
            {"$set": {"state": "running", "updated_at": self._clock.now()}},
        )

    # --- running an import (also one another replica left unfinished) -----------------------

    async def run(self, import_id: str, *, wait: float, bank_file: BankFile | None = None) -> Doc:
        doc = await self._store.imports.find_one({"_id": import_id})
        if doc is None:
            raise NotFound(f"no import {import_id}")
        if doc["state"] == "done":
            return doc
        tenant_id = doc["tenant_id"]
        async with self._tenant_lease(tenant_id, wait) as lease:
            # This replica runs it now: a batch of one that lost the lease cannot commit (fencing).
            # In a transaction: a batch a killed replica left open holds the document until the server
            # aborts it, and a transaction's write conflict is retried where a plain write may wait.
            doc = await in_transaction(
                self._store.client,
                lambda s: self._store.imports.find_one_and_update(
                    {"_id": import_id},
                    {"$set": {"runner": lease.holder, "updated_at": self._clock.now()}},
                    return_document=True,
                    session=s,
                ),
            )
            assert doc is not None
            if doc["state"] != "running":
                return doc
            if bank_file is None:
                content = await self._store.read_file(import_id)
                bank_file = await asyncio.to_thread(parse_file, content, doc["format"], doc["filename"])
            if self._catch_up is not None:
                await self._catch_up()
            book = await self._books.of(tenant_id)
            async with book.lock:
                try:
                    await self._process(doc, bank_file, book, lease)
                except BaseException:
                    # The book may hold claims that did not commit: read it again next time.
                    self._books.drop(tenant_id)
                    raise
        done = await self._store.imports.find_one({"_id": import_id})
        assert done is not None
        return done

    async def resume_interrupted(self) -> int:
        """Finish the imports a replica left running (it died, or was stopped mid-import)."""
        stale = self._clock.now() - timedelta(seconds=self._lease_seconds)
        resumed = 0
        async for doc in self._store.imports.find({"state": "running", "updated_at": {"$lt": stale}}):
            with contextlib.suppress(FailedPrecondition):
                log.info("resuming import %s of tenant %s", doc["_id"], doc["tenant_id"])
                await self.run(doc["_id"], wait=0)
                resumed += 1
        return resumed

    @contextlib.asynccontextmanager
    async def _tenant_lease(self, tenant_id: str, wait: float) -> AsyncIterator[Lease]:
        lease = Lease(self._store.db, f"matcher-import:{tenant_id}", self._clock, seconds=self._lease_seconds)
        deadline = time.monotonic() + wait
        while not await lease.hold():
            if time.monotonic() >= deadline:
                raise FailedPrecondition(
                    "another import or resolution for this tenant is running; try again shortly",
                    reason="IMPORT_RUNNING",
                )
            await asyncio.sleep(0.2)
        keeper = asyncio.create_task(self._keep(lease), name=f"lease:{tenant_id}")
        try:
            yield lease
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            with contextlib.suppress(Exception):
                await lease.release()

    async def _keep(self, lease: Lease) -> None:
        """Renew the lease while its work runs, however long one batch takes on a busy database."""
        while True:
            await asyncio.sleep(self._lease_seconds / 4)
            try:
                if not await lease.hold():
                    log.warning("the import lease %s went to another replica", lease.holder)
                    return
            except Exception:  # the database away: the work's own writes fail too
                log.warning("could not renew the import lease", exc_info=True)

    def tenant_lease(self, tenant_id: str, wait: float) -> contextlib.AbstractAsyncContextManager[Lease]:
        return self._tenant_lease(tenant_id, wait)

    async def _process(self, doc: Doc, bank_file: BankFile, book: Book, lease: Lease) -> None:
        import_id, tenant_id = doc["_id"], doc["tenant_id"]
        payments = bank_file.payments
        ids = [payment_id(tenant_id, p.bank_key) for p in payments]
        recorded: dict[str, str] = {}
        for some in in_slices(ids):
            async for found in self._store.payments.find({"_id": {"$in": some}}, projection={"import_id": 1}):
                recorded[found["_id"]] = found["import_id"]
        duplicates: list[str] = []
        todo: list[tuple[int, str, BankPayment]] = []
        seen: set[str] = set()
        for seq, (pid, p) in enumerate(zip(ids, payments, strict=True)):
            owner = recorded.get(pid)
            if (owner is not None and owner != import_id) or pid in seen:
                duplicates.append(p.location)
            elif owner is None:
                todo.append((seq, pid, p))
            seen.add(pid)
        today = local_today(self._clock)
        for start in range(0, len(todo), self._batch):
            if not await lease.hold():
                raise FailedPrecondition("the import lease was lost", reason="LEASE_LOST")
            began = time.perf_counter()
            await self._record(doc, bank_file, book, todo[start : start + self._batch], today, lease.holder)
            log.debug(
                "import %s: %d payments recorded in %.3f s",
                import_id,
                min(self._batch, len(todo) - start),
                time.perf_counter() - began,
            )
        now = self._clock.now()
        await self._store.imports.update_one(
            {"_id": import_id, "runner": lease.holder},
            {
                "$set": {
                    "state": "done",
                    "duplicates": len(duplicates),
                    "duplicate_locations": duplicates[:50],
                    "finished_at": now,
                    "updated_at": now,
                }
            },
        )
        if duplicates:
            PAYMENTS.add(len(duplicates), {"status": "duplicate", "method": "none"})
        log.info(
            "import %s (%s, %d payments) done: %d new, %d duplicates",
            import_id,
            bank_file.format,
            len(payments),
            len(todo),
            len(duplicates),
        )

    async def _record(
        self,
        doc: Doc,
        bank_file: BankFile,
        book: Book,
        batch: Sequence[tuple[int, str, BankPayment]],
        today: date,
        runner: str,
    ) -> None:
        import_id, tenant_id = doc["_id"], doc["tenant_id"]
        now = self._clock.now()
        docs: list[Doc] = []
        events: list[tuple[Event, str]] = []
        claims: dict[str, dict[str, int]] = {}  # invoice id → {payment id: amount}
        returned: list[tuple[Doc, str]] = []  # (original payment, its new status)
        counts: Counter[str] = Counter()
        methods: Counter[str] = Counter()
        for seq, pid, p in batch:
            paid_on = (p.booking_date or p.value_date or bank_file.created or today).isoformat()
            if p.direction == "debit":
                decision, original = await self._reversal(tenant_id, pid, p)
            else:
                decision, original = decide(p, book.items), None
            matched_event_id = ""
            status = decision.status
            allocations = [
                {
                    "invoice_id": invoice_id,
                    "invoice_number": _number(book, invoice_id),
                    "amount_minor": amount,
                }
                for invoice_id, amount in decision.allocations.items()
            ]
            if status == "matched":
                matched = PaymentMatched(
                    tenant_id=tenant_id,
                    subject=pid,
                    occurred_at=now,
                    data=PaymentMatchedData(
                        payment_id=pid,
                        amount_minor=p.amount_minor,
                        currency=p.currency,
                        paid_on=paid_on,
                        method=decision.method,
                        reference=(p.reference or p.free_text)[:MAX_REFERENCE],
                        payer_account=p.payer_account[:64],
                        customer_id=decision.customer_id,
                        allocations=[
                            Allocation(
                                invoice_id=invoice_id,
                                amount_minor=amount,
                                based_on_version=decision.based_on_versions.get(invoice_id),
                            )
                            for invoice_id, amount in decision.allocations.items()
                        ],
                    ),
                )
                matched_event_id = matched.id
                for invoice_id, amount in decision.allocations.items():
                    claims.setdefault(invoice_id, {})[pid] = amount
                    claim(book, invoice_id, amount)
                events.append(
                    (_received(tenant_id, pid, import_id, p, paid_on, decision, now), PAYMENT_TOPIC)
                )
                events.append((matched, PAYMENT_TOPIC))
                counts["matched"] += 1
                methods[decision.method] += 1
            elif status == "reversal":
                assert original is not None
                reversed_ = PaymentReversed(
                    tenant_id=tenant_id,
                    # The original's key: the ledger sees its PaymentMatched before this.
                    subject=original["_id"],
                    occurred_at=now,
                    data=PaymentReversedData(
                        payment_id=pid,
                        reverses_payment_id=original["_id"],
                        amount_minor=p.amount_minor,
                        currency=p.currency,
                        paid_on=paid_on,
                        reason=p.return_reason or "returned by the bank",
                    ),
                )
                if original.get("ledger_state") in ("proposed", "applied"):
                    events.append((reversed_, PAYMENT_TOPIC))
                    returned.append((original, "reversed"))
                    matched_event_id = reversed_.id
                else:  # never applied: it only leaves the review queue
                    returned.append((original, "returned"))
                events.append(
                    (_received(tenant_id, pid, import_id, p, paid_on, decision, now), PAYMENT_TOPIC)
                )
                counts["reversals"] += 1
            else:
                if p.amount_minor > 0:
                    events.append(
                        (_received(tenant_id, pid, import_id, p, paid_on, decision, now), PAYMENT_TOPIC)
                    )
                counts["review"] += 1
            PAYMENTS.add(1, {"status": status, "method": decision.method})
            docs.append(
                {
                    "_id": pid,
                    "tenant_id": tenant_id,
                    "import_id": import_id,
                    "seq": seq,
                    "sort_key": sort_key(doc["created_at"], seq),
                    "location": p.location,
                    "bank_key": p.bank_key,
                    "direction": p.direction,
                    "amount_minor": p.amount_minor,
                    "currency": p.currency,
                    "reference": p.reference,
                    "free_text": p.free_text,
                    "payer_name": p.payer_name,
                    "payer_account": p.payer_account,
                    "booking_date": p.booking_date.isoformat() if p.booking_date else "",
                    "value_date": p.value_date.isoformat() if p.value_date else "",
                    "paid_on": paid_on,
                    "bank_ids": dict(p.bank_ids),
                    "return_reason": p.return_reason,
                    "returned_ids": dict(p.returned_ids),
                    "status": status,
                    "method": decision.method,
                    "confidence": decision.confidence,
                    "evidence": list(decision.evidence),
                    "allocations": allocations,
                    "credit_minor": decision.credit_minor,
                    "customer_id": decision.customer_id,
                    "customer_number": book.customer_numbers.get(decision.customer_id, "")
                    or _customer_number(book, decision),
                    "suggestions": [
                        {
                            "invoice_ids": list(s.invoice_ids),
                            "invoice_numbers": list(s.invoice_numbers),
                            "score": s.score,
                            "reason": s.reason,
                        }
                        for s in decision.suggestions
                    ],
                    "candidate_invoice_ids": list(decision.candidate_invoice_ids),
                    "reason": decision.reason,
                    "ledger_state": "proposed"
                    if status in ("matched", "reversal") and matched_event_id
                    else "",
                    "matched_event_id": matched_event_id or None,
                    "reverses_payment_id": original["_id"] if original is not None else "",
                    "decided_at": now,
                    "created_at": now,
                }
            )
            if status == "reversal":
                docs[-1]["ledger_state"] = "proposed" if returned[-1][1] == "reversed" else ""
            if status == "review":
                docs[-1]["in_review"] = review_key(docs[-1]["sort_key"])
            if refs := bank_refs(p.bank_ids):
                docs[-1]["bank_refs"] = refs

        async def work(s: Session) -> None:
            counted = await self._store.imports.update_one(
                {"_id": import_id, "runner": runner},
                {
                    "$inc": {**counts, **{f"by_method.{m}": n for m, n in methods.items()}},
                    "$set": {"updated_at": now},
                },
                session=s,
            )
            if counted.matched_count != 1:  # another replica took the import over: this batch is its
                raise FailedPrecondition("the import was taken over by another replica", reason="LEASE_LOST")
            await self._store.payments.insert_many(docs, session=s)
            if claims:
                await self._store.items.bulk_write(
                    [
                        UpdateOne(
                            {"_id": invoice_id},
                            {
                                "$set": {
                                    **{f"pending.{k}": v for k, v in by_payment.items()},
                                    "changed_at": now,
                                }
                            },
                        )
                        for invoice_id, by_payment in claims.items()
                    ],
                    session=s,
                )
            for original, new_status in returned:
                await self._store.payments.update_one(
                    {"_id": original["_id"]},
                    {
                        "$set": {
                            "status": new_status,
                            "returned_at": now,
                            "status_before_return": original["status"],
                        },
                        "$unset": {"in_review": ""},
                    },
                    session=s,
                )
            await add_to_outbox(self._store.db, s, events)

        await in_transaction(self._store.client, work)
        self._on_commit()

    async def _reversal(self, tenant_id: str, pid: str, p: BankPayment) -> tuple[Decision, Doc | None]:
        """A debit: which earlier payment does it return? Only an unambiguous, equal one."""
        names = {**{k: v for k, v in p.bank_ids.items() if k == "end_to_end_id"}, **dict(p.returned_ids)}
        refs = bank_refs(names)
        if p.return_reason == "deduction" or not refs:
            return _debit_review(
                "a debit that names no earlier payment (a deduction or a fee?)"
                if p.return_reason == "deduction" or not p.return_reason
                else "a returned payment that names no earlier payment"
            ), None
        found = await self._store.payments.find(
            {"tenant_id": tenant_id, "bank_refs": {"$in": refs}, "direction": "credit", "_id": {"$ne": pid}}
        ).to_list()
        fits = [
            f
            for f in found
            if f["amount_minor"] == p.amount_minor
            and f["currency"] == p.currency
            and f["status"] not in ("reversed", "returned", "refunded")
        ]
        if len(fits) != 1:
            why = (
                "a returned payment whose original is not among the imported payments"
                if not found
                else "a returned payment that fits no single earlier payment (amounts differ, or several fit)"
            )
            return _debit_review(why), None
        original = fits[0]
        evidence = (
            f"returns payment {original['_id']} ({original['location']} of import {original['import_id']}): "
            f"{p.return_reason or 'no reason given'}",
        )
        return Decision(
            "reversal", "debit", 1.0, evidence, customer_id=original.get("customer_id", "")
        ), original


def _debit_review(reason: str) -> Decision:
    return Decision("review", "debit", 0.0, (reason,), reason=reason)


def claim(book: Book, invoice_id: str, amount: int) -> None:
    item = book.items.get(invoice_id)
    if item is None:
        return
    left = max(0, item.open_minor - amount)
    book.items.update(replace(item, open_minor=left, status=item.status if left else "paid"))


def _number(book: Book, invoice_id: str) -> str:
    item = book.items.get(invoice_id)
    return item.invoice_number if item is not None else ""


def _customer_number(book: Book, decision: Decision) -> str:
    for invoice_id in decision.allocations:
        item = book.items.get(invoice_id)
        if item is not None:
            return item.customer_number
    return ""


def _received(
    tenant_id: str, pid: str, import_id: str, p: BankPayment, paid_on: str, decision: Decision, now: Any
) -> PaymentReceived:
    return PaymentReceived(
        tenant_id=tenant_id,
        subject=pid,
        occurred_at=now,
        data=PaymentReceivedData(
            payment_id=pid,
            import_id=import_id,
            amount_minor=p.amount_minor,
            currency=p.currency,
            paid_on=paid_on,
            direction=p.direction,
            status=decision.status,
            method=decision.method,
            confidence=decision.confidence,
            customer_id=decision.customer_id,
            candidate_invoice_ids=list(decision.candidate_invoice_ids),
        ),
    )
