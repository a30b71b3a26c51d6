"""Work queues and what an operator does about them: deviations (resend on another channel), the
matcher's review queue (allocate from its suggestions), disputes (resolve, and the dunning resumes),
contacts flagged for cleaning, hand-offs to collection; and a comment on an invoice."""

from __future__ import annotations

import hashlib
import re
import secrets
from urllib.parse import quote

from fordring.ledger.v1 import ledger_pb2 as ledger_pb
from fordring.ledger.v1 import notes_pb2 as notes_pb
from fordring.matcher.v1 import matcher_pb2 as matcher_pb
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.common.errors import NotFound
from services.common.money import allocate_in_order
from services.portal.console.guard import Console, Staff, field
from services.portal.console.services import Refused, Services
from services.portal.console.view import attempt

CHANNELS = ("email", "sms", "ehf", "efaktura", "vipps", "print")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _key(staff: Staff, *parts: str) -> str:
    """One idempotency key per form shown (its token: a double submit does the thing once); a form
    without a token gets a key of its own."""
    token = parts[-1] or secrets.token_hex(16)
    return hashlib.sha256("|".join((staff.session.tenant_id, *parts[:-1], token)).encode()).hexdigest()[:40]


def _back(path: str, *, done: str = "", problem: str = "", refused: str = "") -> Response:
    """Back to the page, with what happened: a word's key (done, problem) or a service's refusal."""
    query = {"done": done, "problem": problem, "refused": refused[:300]}
    shown = "&".join(f"{k}={quote(v)}" for k, v in query.items() if v)
    return RedirectResponse(path + (f"?{shown}" if shown else ""), status_code=303)


# --- deviations ---------------------------------------------------------------------------------


async def deviations(console: Console, request: Request, staff: Staff) -> Response:
    found, problem = await attempt(staff.services.deviations(request.query_params.get("page", "")))
    rows, token = found or ([], "")
    return console.page(
        request,
        "deviations.html",
        {
            "staff": staff,
            "deviations": rows,
            "next": token,
            "problem": problem,
            "channels": CHANNELS,
        },
    )


async def resend(console: Console, request: Request, staff: Staff, form: FormData) -> Response:
    invoice_id, channel = request.path_params["invoice_id"], field(form, "channel")
    back = (
        field(form, "back")
        if field(form, "back").startswith("/console/")
        else f"/console/invoices/{invoice_id}"
    )
    if channel not in CHANNELS:
        return _back(back, problem="channel")
    try:
        delivery = await staff.services.resend(
            invoice_id, channel, _key(staff, "resend", invoice_id, field(form, "token"))
        )
    except (Refused, NotFound) as error:
        return _back(back, refused=str(error))
    await console.audit(staff, "delivery.resend", invoice_id, channel=channel, delivery_id=delivery.id)
    return _back(back, done="resent")


# --- the review queue ---------------------------------------------------------------------------


async def review(console: Console, request: Request, staff: Staff) -> Response:
    found, problem = await attempt(staff.services.review_queue(request.query_params.get("page", "")))
    rows, token = found or ([], "")
    return console.page(
        request,
        "review.html",
        {"staff": staff, "payments": rows, "next": token, "problem": problem},
    )


async def allocation_of(
    services: Services, payment: matcher_pb.Payment, invoice_ids: list[str]
) -> list[tuple[str, int]]:
    """The payment over the invoices in the order given, each up to what is left to pay on it."""
    by_id = {i.id: i for i in await services.invoices_by_ids(invoice_ids)}
    ordered = [by_id[i] for i in invoice_ids if i in by_id]
    amounts, _rest = allocate_in_order(payment.amount.minor_units, [i.balance.minor_units for i in ordered])
    return [(i.id, amount) for i, amount in zip(ordered, amounts, strict=True) if amount > 0]


async def allocate(console: Console, request: Request, staff: Staff, form: FormData) -> Response:
    """Allocate a payment in review: to one of its suggestions, or to an invoice the operator names."""
    services = staff.services
    payment_id = request.path_params["payment_id"]
    try:
        payment = await services.payment(payment_id)
    except NotFound:
        return _back("/console/queues/review", problem="no_payment")
    choice, number = field(form, "suggestion"), field(form, "invoice_number")
    if choice.isdigit() and int(choice) < len(payment.suggestions):
        invoice_ids = list(payment.suggestions[int(choice)].invoice_ids)
    elif number:
        named = await services.find_invoice(invoice_number=number)
        if named is None:
            return _back("/console/queues/review", problem="no_invoice")
        invoice_ids = [named.id]
    else:
        return _back("/console/queues/review", problem="choose")
    allocations = await allocation_of(services, payment, invoice_ids)
    if not allocations:
        return _back("/console/queues/review", problem="nothing_left")
    try:
        note = field(form, "note")[:500]
        resolved = await services.allocate(
            payment_id,
            allocations,
            note=f"{staff.session.email} in the console" + (f": {note}" if note else ""),
        )
    except Refused as error:
        return _back("/console/queues/review", refused=str(error))
    await console.audit(
        staff,
        "payment.allocate",
        payment_id,
        allocations=[{"invoice_id": i, "amount_minor": a} for i, a in allocations],
        status=resolved.status,
    )
    return _back("/console/queues/review", done="allocated")


# --- disputes -----------------------------------------------------------------------------------


async def disputes(console: Console, request: Request, staff: Staff) -> Response:
    found, problem = await attempt(staff.services.disputes(request.query_params.get("page", "")))
    rows, token = found or ([], "")
    return console.page(
        request,
        "disputes.html",
        {"staff": staff, "disputes": rows, "next": token, "problem": problem},
    )


async def resolve_dispute(console: Console, request: Request, staff: Staff, form: FormData) -> Response:
    """The dispute is settled: a note on the thread says how, and the dunning goes on."""
    invoice_id, text = request.path_params["invoice_id"], field(form, "text")
    back = f"/console/invoices/{invoice_id}"
    if not text:
        return _back(back, problem="resolution")
    services = staff.services
    try:
        await services.add_note(
            invoice_id,
            notes_pb.NOTE_KIND_DISPUTE_RESOLVED,
            text[:4000],
            staff.session.name,
            _key(staff, "resolve", invoice_id, field(form, "token")),
        )
        resumed = await services.resume(
            invoice_id, f"dispute resolved: {text[:200]}", f"console:{staff.session.email}"
        )
    except (Refused, NotFound) as error:
        return _back(back, refused=str(error))
    await console.audit(staff, "dispute.resolve", invoice_id, resumed=resumed)
    return _back(back, done="resolved")


async def move_due_date(console: Console, request: Request, staff: Staff, form: FormData) -> Response:
    """More time to pay, as agreed with the customer: a later due date before the invoice falls due
    (the ledger refuses it after, or earlier). The customer's open page shows it at once."""
    invoice_id, due, reason = (
        request.path_params["invoice_id"],
        field(form, "due_date"),
        field(form, "reason"),
    )
    back = f"/console/invoices/{invoice_id}"
    if not _ISO_DATE.fullmatch(due):
        return _back(back, problem="due_date")
    if not reason:
        return _back(back, problem="due_reason")
    try:
        invoice = await staff.services.change_due_date(
            invoice_id, due, reason[:1000], _key(staff, "due", invoice_id, field(form, "token"))
        )
    except (Refused, NotFound) as error:
        return _back(back, refused=str(error))
    await console.audit(staff, "invoice.due_date", invoice_id, due_date=invoice.due_date, reason=reason[:200])
    return _back(back, done="due_date")


async def comment(console: Console, request: Request, staff: Staff, form: FormData) -> Response:
    invoice_id, text = request.path_params["invoice_id"], field(form, "text")
    back = f"/console/invoices/{invoice_id}"
    if not text:
        return _back(back, problem="comment")
    try:
        note = await staff.services.add_note(
            invoice_id,
            notes_pb.NOTE_KIND_MESSAGE,
            text[:4000],
            staff.session.name,
            _key(staff, "note", invoice_id, field(form, "token")),
        )
    except (Refused, NotFound) as error:
        return _back(back, refused=str(error))
    await console.audit(staff, "invoice.comment", invoice_id, note_id=note.id)
    return _back(back, done="comment")


# --- flagged contacts and hand-offs -------------------------------------------------------------


async def flagged(console: Console, request: Request, staff: Staff) -> Response:
    found, problem = await attempt(staff.services.flagged(request.query_params.get("page", "")))
    rows, token = found or ([], "")
    return console.page(
        request, "flagged.html", {"staff": staff, "customers": rows, "next": token, "problem": problem}
    )


async def handoffs(console: Console, request: Request, staff: Staff) -> Response:
    statuses = [ledger_pb.INVOICE_STATUS_COLLECTION_NOTICE, ledger_pb.INVOICE_STATUS_IN_COLLECTION]
    found, problem = await attempt(
        staff.services.invoices(statuses=statuses, size=200, token=request.query_params.get("page", ""))
    )
    rows, token = found or ([], "")
    return console.page(
        request, "handoffs.html", {"staff": staff, "invoices": rows, "next": token, "problem": problem}
    )


async def collection_file(console: Console, request: Request, staff: Staff) -> Response:
    """A day's file of claims handed to collection, as the agency gets it (default: today)."""
    day = request.query_params.get("day", "")
    try:
        export = await staff.services.collection_export(day if _DAY.match(day) else "")
    except Refused as error:
        return _back("/console/queues/handoffs", refused=str(error))
    await console.audit(staff, "collection.export", export.day, claims=export.claims)
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", export.filename) or "collection.jsonl"
    return Response(
        export.content,
        media_type=export.media_type or "application/x-ndjson",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )
