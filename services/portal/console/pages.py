"""The console's reading pages: search, an invoice's whole life, a customer, the audit log."""

from __future__ import annotations

import asyncio
import re

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.common.errors import NotFound
from services.portal.console.guard import Console, Staff
from services.portal.console.view import attempt, open_dispute
from services.portal.store import AUDIT

_DIGITS = re.compile(r"^\d[\d ]*$")


async def search(console: Console, request: Request, staff: Staff) -> Response:
    query = request.query_params.get("q", "").strip()[:200]
    invoices, customers, problem = [], [], ""
    if query:
        services = staff.services
        compact = query.replace(" ", "")
        lookups = [services.find_invoice(invoice_number=query), services.find_invoice(external_id=query)]
        if _DIGITS.match(query):
            lookups.append(services.find_invoice(kid=compact))
        found = await asyncio.gather(*lookups)
        invoices = list({i.id: i for i in found if i is not None}.values())
        matched, problem = await attempt(services.customers(search=query))
        customers = matched or []
        await console.audit(staff, "search", query, invoices=len(invoices), customers=len(customers))
        if len(invoices) == 1 and not customers and request.query_params.get("go") != "list":
            return RedirectResponse(f"/console/invoices/{invoices[0].id}", status_code=303)
    return console.page(
        request,
        "search.html",
        {"staff": staff, "q": query, "invoices": invoices, "customers": customers, "problem": problem},
    )


async def invoice(console: Console, request: Request, staff: Staff) -> Response:
    services = staff.services
    invoice_id = request.path_params["invoice_id"]
    try:
        found = await services.invoice(invoice_id=invoice_id)
    except NotFound:
        # Another tenant's invoice is no different from none at all.
        return console.page(request, "problem.html", {"staff": staff, "problem": "not_found"}, status=404)
    (
        (history, history_problem),
        (notes, notes_problem),
        (documents, documents_problem),
        (deliveries, deliveries_problem),
        (case, case_problem),
    ) = await asyncio.gather(
        attempt(services.history(found.id)),
        attempt(services.notes(found.id)),
        attempt(services.documents(found.id)),
        attempt(services.deliveries(found.id)),
        attempt(services.case(found.id)),
    )
    payments = await asyncio.gather(
        *(attempt(services.payment(a.payment_id)) for a in found.allocations if a.payment_id)
    )
    evidence = {p.id: p for p, _ in payments if p is not None}
    channels = ["email", "sms", "ehf", "efaktura", "vipps", "print"]
    await console.audit(staff, "invoice.view", found.id)
    return console.page(
        request,
        "invoice.html",
        {
            "staff": staff,
            "invoice": found,
            "history": history or [],
            "notes": notes or [],
            "documents": documents or [],
            "deliveries": deliveries or [],
            "case": case,
            "evidence": evidence,
            "open_dispute": open_dispute(notes or []),
            "channels": channels,
            "trace": console.trace_link,
            "problems": {
                "history": history_problem,
                "notes": notes_problem,
                "documents": documents_problem,
                "deliveries": deliveries_problem,
                "dunning": case_problem,
            },
        },
    )


async def customer(console: Console, request: Request, staff: Staff) -> Response:
    services = staff.services
    customers, _ = await attempt(services.customers(ids=[request.path_params["customer_id"]]))
    if not customers:
        return console.page(request, "problem.html", {"staff": staff, "problem": "not_found"}, status=404)
    found = customers[0]
    await console.audit(staff, "customer.view", found.id)
    (listed, invoices_problem), (payer, payer_problem) = await asyncio.gather(
        attempt(services.invoices(customer_number=found.number, size=200)),
        attempt(services.payer(found.id)),
    )
    return console.page(
        request,
        "customer.html",
        {
            "staff": staff,
            "customer": found,
            "invoices": listed[0] if listed else [],
            "payer": payer,
            "problems": {"invoices": invoices_problem, "payer": payer_problem},
        },
    )


async def audit_log(console: Console, request: Request, staff: Staff) -> Response:
    cursor = (
        console.portal.store.db[AUDIT].find({"tenant_id": staff.session.tenant_id}).sort("at", -1).limit(200)
    )
    entries = await cursor.to_list()
    return console.page(
        request, "audit.html", {"staff": staff, "entries": entries, "trace": console.trace_link}
    )
