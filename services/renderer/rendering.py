"""Rendering a ledger event's documents: read what the event names from the ledger, build the view,
render every form in a worker thread, then store the documents, the events announcing them and the
event id as applied, in one transaction (a redelivered event renders nothing twice)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from opentelemetry import metrics
from pymongo.errors import PyMongoError

from services.common import attributes as attr
from services.common.bus import AlreadyProcessed, event_span, processed_among, record_processed_many
from services.common.clock import Clock, local_today, parse_iso_date
from services.common.directory import DirectoryClient
from services.common.errors import NotFound, Unavailable
from services.common.events import (
    DLQ_SUFFIX,
    DOCUMENT_TOPIC,
    INVOICE_TOPIC,
    ChargeAdded,
    CreditNoteIssued,
    DocumentRendered,
    DocumentRenderedData,
    Event,
    InvoiceIssued,
)
from services.common.ids import new_id
from services.common.ledger_client import LedgerClient
from services.common.links import invoice_link
from services.common.mongo import Doc, Session, in_transaction
from services.common.outbox import OUTBOX, outbox_doc
from services.common.telemetry import current_traceparent, traced
from services.renderer.domain.build import build_view
from services.renderer.domain.model import DocumentKind, DocumentView, Form
from services.renderer.forms import Forms, Rendering, forms_for
from services.renderer.store import Rendered, RendererStore

log = logging.getLogger(__name__)
CONSUMER = "renderer"
_meter = metrics.get_meter("fordring.renderer")
DOCUMENTS = _meter.create_counter(
    "fordring_documents_rendered", description="Documents rendered and stored, by kind, form and outcome"
)
RENDER_SECONDS = _meter.create_histogram(
    "fordring_render_seconds", description="Time to render every form of one document", unit="s"
)


@dataclass(frozen=True)
class Target:
    """What an event asks to be rendered."""

    kind: DocumentKind
    invoice_id: str
    credited_invoice_id: str = ""
    deadline: str = ""
    # A dunning step's: the interest accrued to its day (stated on the document), and its channel
    # hints (passed on to the dispatcher with the documents).
    interest_to_date_minor: int = 0
    channels: tuple[str, ...] = ()
    # What the document offers besides paying ("avtalegiro", "efaktura").
    offers: tuple[str, ...] = ()


# The dunning actions that are a document to the customer (the others only change the amounts).
_DUNNING_DOCUMENTS: dict[str, DocumentKind] = {
    "nudge": "nudge",
    "reminder": "reminder",
    "collection_notice": "collection_notice",
}


def target_of(event: Event) -> Target | None:
    if isinstance(event, InvoiceIssued):
        return Target("invoice", event.data.invoice.invoice_id)
    if isinstance(event, CreditNoteIssued):
        return Target("credit_note", event.data.credit_note.invoice_id, event.data.invoice.invoice_id)
    if isinstance(event, ChargeAdded) and event.data.action in _DUNNING_DOCUMENTS:
        data = event.data
        return Target(
            _DUNNING_DOCUMENTS[data.action],
            data.invoice.invoice_id,
            deadline=data.deadline,
            interest_to_date_minor=data.interest_to_date_minor,
            channels=tuple(data.channels),
            offers=tuple(data.offers),
        )
    return None


class Renderer:
    def __init__(
        self,
        store: RendererStore,
        ledger: LedgerClient,
        directory: DirectoryClient,
        forms: Forms,
        executor: Executor,
        clock: Clock,
        *,
        portal_url: str,
        link_secret: str,
        on_commit: Callable[[], None],
        link_days: int = 490,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._directory = directory
        self._forms = forms
        self._executor = executor
        self._clock = clock
        self._portal_url = portal_url
        self._link_secret = link_secret
        # A printed link works as long as the document stays in the invoice hotel.
        self._link_days = link_days
        self._on_commit = on_commit
        # The ledger reads of a batch, a few at a time.
        self._reads = asyncio.Semaphore(8)

    async def view(
        self, tenant_id: str, target: Target, *, language: str = "", on: date | None = None
    ) -> tuple[DocumentView, bool, str, int]:
        """The view of a target, whether its EHF carries the PDF, its customer and the invoice's version."""
        tenant = await self._directory.by_id(tenant_id)
        if tenant is None:
            raise NotFound(f"no tenant {tenant_id}")
        invoice = await self._ledger.invoice(tenant_id, target.invoice_id)
        customer = await self._ledger.customer(tenant_id, invoice.customer_id)
        profile = await self._directory.profile(tenant_id, invoice.profile_version)
        credited = (
            await self._ledger.invoice(tenant_id, target.credited_invoice_id)
            if target.credited_invoice_id
            else None
        )
        today = on or local_today(self._clock, ZoneInfo(tenant.timezone))
        deadline = None
        reminders_before = 0
        if target.kind in ("reminder", "collection_notice"):
            # A reminder's deadline is at least 14 days after it is sent (inkassoloven §9 for notices).
            deadline = parse_iso_date(target.deadline) if target.deadline else today + timedelta(days=14)
            reminded = sum(
                1 for e in await self._ledger.history(tenant_id, invoice.id) if e.type == "reminded"
            )
            reminders_before = max(0, reminded - 1) if target.kind == "reminder" else reminded
        paid_on_link = (
            invoice.id if target.kind != "credit_note" else (target.credited_invoice_id or invoice.id)
        )
        view = build_view(
            target.kind,
            invoice,
            customer,
            profile,
            link=invoice_link(
                self._portal_url,
                paid_on_link,
                self._link_secret,
                # Midnight UTC: the documents of one day carry the same link.
                expires=datetime.combine(today + timedelta(days=self._link_days), datetime.min.time(), UTC),
            ),
            notice_date=today,
            language=language,
            credited=credited,
            deadline=deadline,
            reminders_before=reminders_before,
            interest_to_date_minor=target.interest_to_date_minor,
            offers=target.offers,
        )
        return view, profile.ehf_attach_pdf, invoice.customer_id, int(invoice.version)

    async def render_one(self, view: DocumentView, form: Form) -> Rendered:
        """One form, not stored (previews), in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._forms.one, view, form)

    async def on_event(self, event: Event) -> None:
        """One event (a retry of one that failed in a batch): its error is raised."""
        failed = await self.on_batch([event])
        if event.id in failed:
            raise failed[event.id]

    async def on_batch(self, events: list[Event]) -> dict[str, Exception]:
        """Render a batch: the ledger read for all at once, the forms rendered in the worker threads,
        then every document, announcement and applied event id stored in one transaction. Returns
        the events that could not be rendered (they are retried alone, then dead-lettered); an
        outage of the ledger or the database is raised (the batch comes again)."""
        targets = [(event, target) for event in events if (target := target_of(event)) is not None]
        done = await processed_among(self._store.db, CONSUMER, [event.id for event, _ in targets])
        todo = [(event, target) for event, target in targets if event.id not in done]
        if not todo:
            return {}
        failed: dict[str, Exception] = {}
        with traced("renderer.render_batch", attributes={attr.BATCH_SIZE: len(todo)}):
            # Each event read and rendered on its own path, so the first renders while the last are
            # still being read from the ledger.
            outcomes = await asyncio.gather(
                *(self._prepare_and_render(e, t) for e, t in todo), return_exceptions=True
            )
            finished: list[tuple[_Prepared, Rendering]] = []
            for (event, _), outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome, Unavailable | PyMongoError | OSError):
                    raise outcome
                if isinstance(outcome, BaseException):
                    failed[event.id] = (
                        outcome if isinstance(outcome, Exception) else RuntimeError(repr(outcome))
                    )
                else:
                    finished.append(outcome)
            if finished:
                await self._store_all(finished)
        for item, rendering in finished:
            for doc in rendering.documents:
                DOCUMENTS.add(1, {"kind": item.view.kind, "form": doc.form, "outcome": "stored"})
            for form in rendering.refused:
                DOCUMENTS.add(1, {"kind": item.view.kind, "form": form, "outcome": "refused"})
            for form, why in rendering.skipped.items():
                DOCUMENTS.add(1, {"kind": item.view.kind, "form": form, "outcome": "not_applicable"})
                log.info("renderer: no %s for %s %s: %s", form, item.view.kind, item.view.number, why)
        return failed

    async def _prepare_and_render(self, event: Event, target: Target) -> tuple[_Prepared, Rendering]:
        # In the invoice's own trace (the ledger's event is the parent): what the renderer announces
        # carries it on to the dispatcher.
        with event_span(event, "renderer.render", **{attr.INVOICE_ID: event.subject}):
            async with self._reads:
                view, attach_pdf, customer_id, invoice_version = await self.view(event.tenant_id, target)
            item = _Prepared(
                event,
                view,
                attach_pdf,
                customer_id,
                invoice_version,
                target.channels,
                traceparent=current_traceparent(),
            )
            return item, await self._render(item)

    async def _render(self, item: _Prepared) -> Rendering:
        started = time.perf_counter()
        rendering = await asyncio.get_running_loop().run_in_executor(
            self._executor,
            functools.partial(
                self._forms.render, item.view, forms_for(item.view), attach_pdf=item.attach_pdf
            ),
        )
        RENDER_SECONDS.record(time.perf_counter() - started, {"kind": item.view.kind})
        return rendering

    async def _store_all(self, finished: list[tuple[_Prepared, Rendering]]) -> None:
        """One transaction for the batch; when another replica applied one of its events meanwhile (a
        rebalance), each is stored on its own and the one applied before is skipped."""
        now = self._clock.now()
        try:
            await in_transaction(self._store.client, lambda s: self._write(s, finished, now))
        except AlreadyProcessed:
            for one in finished:
                with contextlib.suppress(AlreadyProcessed):
                    await in_transaction(self._store.client, lambda s, one=one: self._write(s, [one], now))  # type: ignore[misc]
        self._on_commit()

    async def _write(self, s: Session, finished: list[tuple[_Prepared, Rendering]], now: datetime) -> None:
        """Every document of the batch, their announcements, the event ids as applied: a few writes."""
        await record_processed_many(self._store.db, s, CONSUMER, [item.event.id for item, _ in finished], now)
        documents: list[tuple[Rendered, Doc]] = []
        owners: list[tuple[_Prepared, Rendered, str, list[str]]] = []
        for item, rendering in finished:
            view = item.view
            rendering_id = new_id()
            forms_available = [d.form for d in rendering.documents]
            for doc in rendering.documents:
                documents.append(
                    (
                        doc,
                        {
                            "tenant_id": item.event.tenant_id,
                            "invoice_id": view.invoice_id,
                            "invoice_number": view.number,
                            "customer_id": item.customer_id,
                            "kind": view.kind,
                            "language": view.language,
                            "source_event_id": item.event.id,
                            "rendering_id": rendering_id,
                            "invoice_version": item.invoice_version,
                            "profile_version": view.profile_version,
                        },
                    )
                )
                owners.append((item, doc, rendering_id, forms_available))
        ids = await self._store.store(s, documents, now)
        outbox: list[Doc] = []
        for (item, doc, rendering_id, forms_available), document_id in zip(owners, ids, strict=True):
            view = item.view
            announced = DocumentRendered(
                tenant_id=item.event.tenant_id,
                subject=view.invoice_id,
                occurred_at=now,
                data=DocumentRenderedData(
                    invoice_id=view.invoice_id,
                    invoice_number=view.number,
                    customer_id=item.customer_id,
                    document_id=document_id,
                    rendering_id=rendering_id,
                    kind=view.kind,
                    form=doc.form,
                    language=view.language,
                    media_type=doc.media_type,
                    sha256=doc.sha256,
                    size=len(doc.content),
                    forms_available=forms_available,
                    invoice_version=item.invoice_version,
                    source_event_id=item.event.id,
                    channels=list(item.channels),
                ),
            )
            outbox.append(outbox_doc(announced, DOCUMENT_TOPIC, item.traceparent or None))
        for item, rendering in finished:
            for form, reason in rendering.refused.items():
                # The event, parked with the reason this form was not stored (the other forms were).
                view = item.view
                log.error(
                    "renderer: the %s of %s %s was not stored: %s", form, view.kind, view.number, reason[:500]
                )
                outbox.append(
                    outbox_doc(
                        item.event,
                        INVOICE_TOPIC + DLQ_SUFFIX,
                        headers={
                            "x-dlq-consumer": CONSUMER,
                            "x-dlq-reason": f"{form} refused: {reason}"[:1000],
                        },
                    )
                )
        if outbox:
            await self._store.db[OUTBOX].insert_many(outbox, session=s)


@dataclass(frozen=True)
class _Prepared:
    event: Event
    view: DocumentView
    attach_pdf: bool
    customer_id: str
    invoice_version: int
    channels: tuple[str, ...] = ()
    # The render's span, in the invoice's trace: its announcements continue that trace.
    traceparent: str = ""
