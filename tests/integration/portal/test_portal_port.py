"""The portal's one HTTP port: its pages beside /healthz, /readyz and /metrics, and the headers every
answer carries."""

from __future__ import annotations

import uuid

import pytest

from tests.support.backends import Backend
from tests.support.portal import browser, portal_running

pytestmark = pytest.mark.integration


async def test_pages_and_checks_share_the_port(backend: Backend) -> None:
    async with portal_running(backend, f"p{uuid.uuid4().hex[:10]}.") as app, browser(app) as http:
        assert (await http.get("/healthz")).text == "ok\n"
        ready = await http.get("/readyz", params={"exclude": "kafka"})
        assert ready.status_code == 200, ready.text
        assert "http: ok" in ready.text
        assert (await http.get("/metrics")).status_code == 200

        home = await http.get("/", headers={"accept-language": "sv-SE,sv;q=0.9"})
        assert home.status_code == 200
        assert '<html lang="sv">' in home.text
        policy = home.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert home.headers["cache-control"] == "no-store"
        assert home.headers["x-content-type-options"] == "nosniff"

        css = await http.get("/static/portal.css")
        assert css.status_code == 200
        assert "max-age" in css.headers["cache-control"]

        missing = await http.get("/nothing-here")
        assert missing.status_code == 404
        assert "frame-ancestors 'none'" in missing.headers["content-security-policy"]
