"""The customer's side: one page per invoice at its signed link."""

from __future__ import annotations

from starlette.routing import BaseRoute

from services.portal.web import Portal


def customer_routes(portal: Portal) -> list[BaseRoute]:
    del portal
    return []
