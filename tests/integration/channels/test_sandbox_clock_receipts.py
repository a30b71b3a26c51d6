"""The channel sandbox dates its receipts by the stack's sandbox clock: after `fordring sandbox clock
advance`, a text is delivered (and a mail opened) at the time the services live in, after its send,
not weeks before it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.mongo import create_mongo_client
from services.common.sandbox_clock import advance
from services.dispatcher.adapters.sms import SmsAdapter
from tests.support.backends import Backend
from tests.support.http_channels import API_KEY, outgoing
from tests.support.sandbox import Sandbox, running_sandbox

pytestmark = pytest.mark.integration


async def receipt_time(sandbox: Sandbox) -> datetime:
    """Send a text through the sandbox; the time its delivery report carries."""
    sms = SmsAdapter(base_url=sandbox.url, api_key=API_KEY, sender="Fordring")
    try:
        out = outgoing("sms")
        await sms.send(out)
        payload = await sandbox.webhooks.wait_for(
            lambda hooks: next((p for p in hooks.of("sms") if p.get("delivery_id") == out.delivery_id), None),
            what="the SMS delivery report",
        )
    finally:
        await sms.close()
    return datetime.fromisoformat(payload["at"])


async def test_receipts_carry_the_sandbox_clock_s_time(backend: Backend, tmp_path: Path) -> None:
    database = f"sandbox_clock_{uuid.uuid4().hex[:10]}"
    client = create_mongo_client(backend.mongo_uri, app_name="test-sandbox-clock")
    try:
        ahead = timedelta(days=30)
        await advance(client[database], ahead)
        before = datetime.now(UTC)
        async with running_sandbox(
            tmp_path, clock_mongo_uri=backend.mongo_uri, clock_database=database
        ) as sandbox:
            at = await receipt_time(sandbox)
        assert before + ahead <= at <= datetime.now(UTC) + ahead + timedelta(minutes=1)
    finally:
        await client.drop_database(database)
        await client.close()


async def test_without_a_clock_receipts_carry_the_real_time(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    async with running_sandbox(tmp_path) as sandbox:
        at = await receipt_time(sandbox)
    assert before - timedelta(seconds=5) <= at <= datetime.now(UTC) + timedelta(minutes=1)
