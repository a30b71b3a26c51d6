"""An operator creates a tenant with `python -m services.ledger tenants create`; its ERP can then
issue invoices with the key it printed. Keys can be added and revoked; bad input is refused."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from fordring.ledger.v1 import ledger_pb2 as pb

from services.ledger.app import LedgerApp
from tests.support.backends import Backend
from tests.support.ledger import invoice_request

if TYPE_CHECKING:
    from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

pytestmark = pytest.mark.integration


async def admin(ledger_app: LedgerApp, backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "FORDRING_MONGO_URI": backend.mongo_uri,
        "FORDRING_MONGO_DATABASE": ledger_app.settings.mongo_database,
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.ledger", "tenants", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_an_operator_creates_a_tenant_whose_key_works(
    ledger_app: LedgerApp, backend: Backend, ledger_stub: LedgerServiceAsyncStub
) -> None:
    made = await admin(
        ledger_app,
        backend,
        "create",
        "--name",
        "Fjellvann Drikke AS",
        "--org-number",
        "923 609 016",
        "--kid-scheme",
        "mod11",
    )
    assert made.returncode == 0, made.stderr
    tenant_id = re.search(r"^tenant (\S+)", made.stdout, re.M).group(1)  # type: ignore[union-attr]
    key = re.search(r"^api key erp: (\S+)", made.stdout, re.M).group(1)  # type: ignore[union-attr]

    issued = await ledger_stub.IssueInvoice(invoice_request(), metadata=(("authorization", f"Bearer {key}"),))
    assert issued.invoice.invoice_number == "1"
    assert issued.invoice.kid[-1] != "-"

    second = await admin(ledger_app, backend, "add-key", tenant_id, "--key-name", "erp-2")
    assert second.returncode == 0, second.stderr
    key2 = re.search(r"^api key erp-2: (\S+)", second.stdout, re.M).group(1)  # type: ignore[union-attr]
    found = await ledger_stub.GetInvoice(
        pb.GetInvoiceRequest(invoice_id=issued.invoice.id), metadata=(("authorization", f"Bearer {key2}"),)
    )
    assert found.invoice.id == issued.invoice.id

    revoked = await admin(ledger_app, backend, "revoke-key", tenant_id, "--key-name", "erp")
    assert revoked.returncode == 0, revoked.stderr
    doc = await ledger_app.store.tenants.find_one({"_id": tenant_id})
    assert doc is not None
    assert [k["name"] for k in doc["api_keys"]] == ["erp-2"]
    assert key not in str(doc), "keys are stored only as digests"
    assert key2 not in str(doc)
    listed = await admin(ledger_app, backend, "list")
    assert f"{tenant_id}  Fjellvann Drikke AS  923609016  keys: erp-2" in listed.stdout


async def test_bad_tenant_input_is_refused_and_nothing_is_made(
    ledger_app: LedgerApp, backend: Backend
) -> None:
    before = await ledger_app.store.tenants.count_documents({})
    bad = await admin(
        ledger_app, backend, "create", "--name", "Feil AS", "--org-number", "123456789", "--currency", "NKR"
    )
    assert bad.returncode == 2
    assert "org_number" in bad.stderr
    assert "NKR" in bad.stderr
    unknown = await admin(ledger_app, backend, "add-key", "no-such-tenant", "--key-name", "x")
    assert unknown.returncode == 2
    assert "no tenant no-such-tenant" in unknown.stderr
    assert await ledger_app.store.tenants.count_documents({}) == before
