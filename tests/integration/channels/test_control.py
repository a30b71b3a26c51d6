"""The sandbox's control API as a person or a test uses it: queue faults and see them act on real
sends, read what a channel received, set when the simulated customer reads, override registries;
bad input is refused with the providers' error shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.common.ids import new_id
from services.dispatcher.adapters.base import ChannelError, Creditor, Outgoing, Recipient
from services.dispatcher.adapters.email import EmailAdapter
from tests.support.sandbox import Sandbox, running_sandbox

TEXT = "Hei Kari,\r\n\r\nSe og betal: {link}/i/{token}.sig\r\n"


def mail(link_base: str) -> Outgoing:
    delivery_id = new_id()
    rendered = (
        "Subject: Faktura 10024\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + TEXT.format(link=link_base, token=delivery_id[-8:])
    ).encode()
    return Outgoing(
        delivery_id=delivery_id,
        tenant_id="tenant-control",
        invoice_id="inv-1",
        invoice_number="10024",
        kind="invoice",
        channel="email",
        recipient=Recipient(
            customer_id="c",
            customer_number="1",
            name="Kari Nordmann",
            kind="consumer",
            email="kari@example.no",
        ),
        creditor=Creditor(
            tenant_id="t", legal_name="Fjordline Energi AS", org_number="974760673", email="f@f.no"
        ),
        documents={"email": rendered, "pdf": b"%PDF-1.7\n%%EOF\n"},
    )


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path, open_after=0.1) as box:
        yield box


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    async with http.request(method, url, json=body) as reply:
        return reply.status, await reply.json()


async def test_faults_are_queued_shown_and_cleared(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    faults = f"{sandbox.url}/control/faults"

    status, added = await call(http, "POST", faults, {"channel": "email", "outcome": "bounce", "count": 2})
    await call(http, "POST", faults, {"channel": "sms", "outcome": "delay", "seconds": 1.5})

    assert status == 200
    assert added == {"pending": {"email": [{"outcome": "bounce", "seconds": 0.0}] * 2}}
    assert await call(http, "GET", faults) == (
        200,
        {
            "pending": {
                "email": [{"outcome": "bounce", "seconds": 0.0}] * 2,
                "sms": [{"outcome": "delay", "seconds": 1.5}],
            }
        },
    )
    assert await call(http, "DELETE", faults) == (200, {"pending": {}})
    assert await call(http, "GET", faults) == (200, {"pending": {}})


async def test_queued_faults_act_on_the_next_sends_in_order(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    await call(
        http, "POST", f"{sandbox.url}/control/faults", {"channel": "email", "outcome": "fail", "count": 2}
    )
    await call(http, "POST", f"{sandbox.url}/control/faults", {"channel": "email", "outcome": "error"})
    adapter = EmailAdapter(host="127.0.0.1", port=sandbox.smtp_port, timeout=5)
    try:
        outcomes: list[str] = []
        for _ in range(4):
            try:
                outcomes.append((await adapter.send(mail(sandbox.webhooks.url))).state)
            except ChannelError as exc:
                outcomes.append("retry later" if exc.retryable else f"refused ({exc.contact})")
    finally:
        await adapter.close()

    assert outcomes == ["refused (email)", "refused (email)", "retry later", "delivered"]
    status, records = await call(http, "GET", f"{sandbox.url}/control/records/email")
    assert status == 200
    assert [r["result"] for r in records] == ["refused", "refused", "refused", "accepted"]
    assert all("kari" not in str(r) for r in records)
    assert (await call(http, "GET", f"{sandbox.url}/control/faults"))[1] == {"pending": {}}


async def test_the_reader_can_be_told_to_open_nothing(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    adapter = EmailAdapter(host="127.0.0.1", port=sandbox.smtp_port, timeout=5)
    try:
        await adapter.send(mail(sandbox.webhooks.url))
        await sandbox.webhooks.wait_for(lambda w: w.opened, what="the first open")
        assert await call(http, "POST", f"{sandbox.url}/control/reader", {"open_after": 0}) == (
            200,
            {"open_after": 0.0},
        )

        await adapter.send(mail(sandbox.webhooks.url))
        await asyncio.sleep(0.4)
    finally:
        await adapter.close()

    assert len(sandbox.webhooks.opened) == 1
    assert await call(http, "GET", f"{sandbox.url}/control/reader") == (200, {"open_after": 0.0, "opened": 1})


async def test_registry_overrides_change_the_registrys_answer(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    participant = f"{sandbox.url}/peppol/v1/participants/0192:974760673"
    auth = {"Authorization": "Bearer test"}
    async with http.get(participant, headers=auth) as before:
        assert before.status == 200

    status, shown = await call(
        http,
        "POST",
        f"{sandbox.url}/control/registry",
        {"channel": "ehf", "id": "0192:974760673", "reachable": False},
    )

    assert (status, shown) == (200, {"registry": {"ehf": {"0192:974760673": False}}})
    async with http.get(participant, headers=auth) as after:
        assert after.status == 404
    assert await call(http, "GET", f"{sandbox.url}/control/registry") == (200, shown)


async def test_records_of_a_channel_and_health(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    assert await call(http, "GET", f"{sandbox.url}/control/records/print") == (200, [])
    async with http.get(f"{sandbox.url}/healthz") as health:
        assert (health.status, await health.text()) == (200, "ok\n")


@pytest.mark.parametrize(
    ("method", "path", "body", "error"),
    [
        ("POST", "/control/faults", {"channel": "fax", "outcome": "fail"}, "unknown_channel"),
        ("POST", "/control/faults", {"channel": "email", "outcome": "explode"}, "unknown_outcome"),
        ("POST", "/control/faults", {"channel": "email", "outcome": "fail", "count": 0}, "invalid_count"),
        ("POST", "/control/faults", {"channel": "email", "outcome": "fail", "count": True}, "invalid_count"),
        (
            "POST",
            "/control/faults",
            {"channel": "email", "outcome": "delay", "seconds": -1},
            "invalid_seconds",
        ),
        (
            "POST",
            "/control/faults",
            {"channel": "email", "outcome": "delay", "seconds": "2"},
            "invalid_seconds",
        ),
        ("POST", "/control/faults", ["email"], "invalid_json"),
        ("POST", "/control/reader", {}, "invalid_open_after"),
        ("POST", "/control/reader", {"open_after": 1e9}, "invalid_open_after"),
        ("POST", "/control/registry", {"channel": "sms", "id": "x", "reachable": True}, "unknown_channel"),
        ("POST", "/control/registry", {"channel": "ehf", "id": " ", "reachable": True}, "invalid_id"),
        (
            "POST",
            "/control/registry",
            {"channel": "ehf", "id": "0192:1", "reachable": "yes"},
            "invalid_reachable",
        ),
        ("GET", "/control/records/fax", None, "unknown_channel"),
    ],
)
async def test_bad_input_is_refused_with_a_code(
    sandbox: Sandbox, http: aiohttp.ClientSession, method: str, path: str, body: Any, error: str
) -> None:
    status, answer = await call(http, method, f"{sandbox.url}{path}", body)

    assert status == 400
    assert answer["error"] == error
    assert answer["message"]
    assert (await call(http, "GET", f"{sandbox.url}/control/faults"))[1] == {"pending": {}}


async def test_a_body_that_is_not_json_is_refused(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{sandbox.url}/control/faults", data=b"channel=email") as reply:
        assert reply.status == 400
        assert (await reply.json())["error"] == "invalid_json"
