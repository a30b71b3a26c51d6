"""The dashboard: the tenant's receivables as charts."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from services.common.clock import OSLO
from services.portal.console.charts import bar_chart
from services.portal.console.figures import figures
from services.portal.console.guard import Console, Staff
from services.portal.console.view import attempt


async def dashboard(console: Console, request: Request, staff: Staff) -> Response:
    services = staff.services
    (invoices, invoices_problem), (stats, stats_problem), (payments, payments_problem) = await asyncio.gather(
        attempt(services.all_invoices()), attempt(services.channel_stats()), attempt(services.payments())
    )
    today = console.portal.clock.now().astimezone(OSLO).date()
    shown = figures(invoices or [], stats or [], payments or [], today)
    charts = {
        "status": bar_chart("Invoices by status", shown.by_status),
        "aging": bar_chart(f"Open amounts by days past due ({shown.currency})", shown.aging, colour=2),
        "paid_before_due": bar_chart(
            "Paid on or before the due date, by channel (%)", shown.paid_before_due, colour=1
        ),
        "fallback": bar_chart(
            "Invoices delivered more than once (fallbacks, resends), by channel", shown.fallback, colour=4
        ),
        "methods": bar_chart("Payments matched, by method", shown.matched_by_method, colour=3),
        "stages": bar_chart("Invoices by dunning stage reached", shown.reminders_by_stage, colour=2),
    }
    problems = [p for p in (invoices_problem, stats_problem, payments_problem) if p]
    return console.page(
        request, "dashboard.html", {"staff": staff, "figures": shown, "charts": charts, "problems": problems}
    )
