"""The tenant's dunning policies, a proposed one's dry run as a chart, and switching it on."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.portal.console.charts import Bar, bar_chart
from services.portal.console.guard import Console, Staff, field
from services.portal.console.services import Refused
from services.portal.console.view import attempt, money
from services.portal.console.words import words_for


def _parsed(policy_json: str) -> dict[str, Any]:
    try:
        value = json.loads(policy_json)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def policies(console: Console, request: Request, staff: Staff) -> Response:
    found, problem = await attempt(staff.services.policies())
    shown = [
        {
            "policy": p,
            "parsed": _parsed(p.policy_json),
            "pretty": json.dumps(_parsed(p.policy_json), indent=2),
        }
        for p in found or []
    ]
    return console.page(
        request,
        "dunning.html",
        {
            "staff": staff,
            "policies": shown,
            "problem": problem,
        },
    )


async def simulate(console: Console, request: Request, staff: Staff, form: FormData) -> Response:
    """A dry run: nothing is sent or stored. The chart shows each step's count and what it charges."""
    policy_json = field(form, "policy_json")
    days = field(form, "days")
    due_from, due_to = field(form, "due_from"), field(form, "due_to")
    result, problem = await attempt(
        staff.services.simulate(
            policy_json, due_from=due_from, due_to=due_to, days=int(days) if days.isdigit() else 0
        )
    )
    charts = {}
    t = words_for(request)
    if result is not None:
        currency = result.currency or "NOK"
        steps = [Bar(f"{s.step.replace('_', ' ')} {s.channel}".strip(), s.count) for s in result.steps]
        charges = [
            Bar(
                s.step.replace("_", " "),
                s.fees_minor + s.interest_minor + s.compensation_minor,
                money(s.fees_minor + s.interest_minor + s.compensation_minor, currency),
            )
            for s in result.steps
        ]
        charts = {
            "steps": bar_chart(t("c.chart.steps"), steps, empty=t("c.no_data")),
            "charges": bar_chart(
                t("c.chart.charges", currency=currency), charges, colour=2, empty=t("c.no_data")
            ),
        }
    await console.audit(
        staff, "dunning.simulate", "policy", period=due_from + ".." + due_to if due_from else f"{days} days"
    )
    return console.page(
        request,
        "simulation.html",
        {
            "staff": staff,
            "result": result,
            "problem": problem,
            "charts": charts,
            "policy_json": policy_json,
            "expected_version": field(form, "expected_version"),
            "days": days,
            "due_from": due_from,
            "due_to": due_to,
        },
    )


async def switch_on(console: Console, request: Request, staff: Staff, form: FormData) -> Response:
    policy_json = field(form, "policy_json")
    version = field(form, "expected_version")
    try:
        saved = await staff.services.set_policy(
            policy_json, int(version) if version.isdigit() else 0, f"console:{staff.session.email}"
        )
    except Refused as error:
        return console.page(
            request,
            "simulation.html",
            {"staff": staff, "result": None, "problem": str(error), "charts": {}, "policy_json": policy_json},
            status=400,
        )
    parsed = _parsed(saved.policy_json)
    await console.audit(
        staff,
        "dunning.policy.set",
        f"{parsed.get('jurisdiction', '')}/{parsed.get('debtor_kind', '')}",
        version=saved.version,
    )
    return RedirectResponse("/console/dunning?done=policy", status_code=303)
