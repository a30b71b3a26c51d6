"""The dashboard: the tenant's receivables as charts."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from services.common.clock import OSLO
from services.portal.console.charts import Bar, bar_chart
from services.portal.console.figures import figures
from services.portal.console.guard import Console, Staff
from services.portal.console.view import attempt
from services.portal.console.words import words_for


async def dashboard(console: Console, request: Request, staff: Staff) -> Response:
    services = staff.services
    (invoices, invoices_problem), (stats, stats_problem), (payments, payments_problem) = await asyncio.gather(
        attempt(services.all_invoices()), attempt(services.channel_stats()), attempt(services.payments())
    )
    today = console.portal.clock.now().astimezone(OSLO).date()
    t = words_for(request)
    shown = figures(invoices or [], stats or [], payments or [], today, of=t("c.of"))

    def chart(key: str, bars: list[Bar], colour: int, **values: str) -> Markup:
        worded = [replace(bar, label=t(bar.label)) for bar in bars]
        return bar_chart(t(f"c.chart.{key}", **values), worded, colour=colour, empty=t("c.no_data"))

    charts = {
        "status": chart("status", shown.by_status, 0),
        "aging": chart("aging", shown.aging, 2, currency=shown.currency),
        "paid_before_due": chart("paid_before_due", shown.paid_before_due, 1),
        "fallback": chart("fallback", shown.fallback, 4),
        "methods": chart("methods", shown.matched_by_method, 3),
        "stages": chart("stages", shown.reminders_by_stage, 2),
    }
    problems = [p for p in (invoices_problem, stats_problem, payments_problem) if p]
    return console.page(
        request, "dashboard.html", {"staff": staff, "figures": shown, "charts": charts, "problems": problems}
    )
