"""`fordring portal account add`: an account the console then signs in, its password read from stdin."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.cli.__main__ import cli
from services.common.mongo import create_mongo_client
from services.portal.console.accounts import Accounts
from tests.support.backends import Backend

pytestmark = pytest.mark.integration


async def _check(mongo_uri: str, database: str, email: str, password: str) -> dict[str, str] | None:
    client = create_mongo_client(mongo_uri, app_name="test")
    try:
        account = await Accounts(client[database]).check(email, password)
    finally:
        await client.close()
    return None if account is None else account.roles


def test_an_account_is_added_from_the_command_line(backend: Backend, tmp_path: Path) -> None:
    database = f"portal_cli_{uuid.uuid4().hex[:8]}"
    runner = CliRunner()
    base = ["--home", str(tmp_path), "portal", "account", "add", "Kari@Example.no", "--tenant", "t-1"]
    flags = ["--mongo-uri", backend.mongo_uri, "--database", database, "--password-stdin"]
    added = runner.invoke(cli, [*base, "--role", "operator", *flags], input="a long enough secret\n")
    assert added.exit_code == 0, added.output
    assert "kari@example.no: operator of tenant t-1" in added.output
    again = runner.invoke(cli, [*base[:-1], "t-2", "--role", "admin", *flags], input="another long secret\n")
    assert again.exit_code == 0, again.output
    assert asyncio.run(_check(backend.mongo_uri, database, "kari@example.no", "another long secret")) == {
        "t-1": "operator",
        "t-2": "admin",
    }
    assert asyncio.run(_check(backend.mongo_uri, database, "kari@example.no", "a long enough secret")) is None

    short = runner.invoke(cli, [*base, *flags], input="short\n")
    assert short.exit_code == 1
    assert "at least 12 characters" in short.output
    nowhere = runner.invoke(cli, base, input="a long enough secret\n")
    assert nowhere.exit_code == 1
    assert "--mongo-uri" in nowhere.output
