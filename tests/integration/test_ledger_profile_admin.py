"""An operator gives a tenant its creditor profile with `python -m services.ledger tenants create|update`
and reads it with `tenants show`; wrong options are named and change nothing."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fordring.ledger.v1 import ledger_pb2 as pb

from services.ledger.app import LedgerApp
from services.ledger.sandbox import SANDBOX_LOGO
from tests.integration.test_ledger_admin import admin
from tests.support.backends import Backend

if TYPE_CHECKING:
    from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

pytestmark = pytest.mark.integration

PROFILE_OPTIONS = (
    "--company-form", "AS",
    "--address-line", "Fjordgata 12",
    "--address-line", "Postboks 7",
    "--postal-code", "7010",
    "--city", "Trondheim",
    "--bank-account", "8601.11.17947",
    "--email", "faktura@fjordbris.no",
    "--phone", "73 12 34 56",
    "--website", "https://fjordbris.no",
    "--accent-colour", "#0b4f6c",
    "--footer", "Takk for handelen!",
    "--payment-terms", "20",
)  # fmt: skip


def org_number() -> str:
    """A valid organisation number no other test uses (MOD11, weights 3 2 7 6 5 4 3 2)."""
    while True:
        body = f"9{uuid.uuid4().int % 10**7:07d}"
        check = 11 - sum(int(d) * w for d, w in zip(body, (3, 2, 7, 6, 5, 4, 3, 2), strict=True)) % 11
        if check < 10:
            return body + str(check % 11)


async def test_an_operator_creates_changes_and_reads_a_profile(
    ledger_app: LedgerApp, backend: Backend, ledger_stub: LedgerServiceAsyncStub, tmp_path: Path
) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_bytes(SANDBOX_LOGO)
    org = org_number()

    made = await admin(
        ledger_app, backend, "create", "--name", "Fjordbris AS", "--org-number", org, "--logo", str(logo),
        *PROFILE_OPTIONS,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "profile version 1" in made.stdout
    tenant_id = re.search(r"^tenant (\S+)", made.stdout, re.M).group(1)  # type: ignore[union-attr]
    key = re.search(r"^api key erp: (\S+)", made.stdout, re.M).group(1)  # type: ignore[union-attr]

    changed = await admin(
        ledger_app, backend, "update", tenant_id, "--iban", "NO93 8601 1117 947", "--no-logo"
    )
    again = await admin(ledger_app, backend, "update", tenant_id, "--iban", "NO9386011117947")
    shown = await admin(ledger_app, backend, "show", tenant_id)
    first = await admin(ledger_app, backend, "show", tenant_id, "--version", "1")

    assert changed.stdout.strip() == f"tenant {tenant_id} profile version 2", changed.stderr
    assert again.stdout.strip() == f"tenant {tenant_id} profile unchanged (version 2)", again.stderr
    assert re.search(r"^legal_name\s+Fjordbris AS$", shown.stdout, re.M)
    assert re.search(rf"^org_number\s+{org} \(AS\)$", shown.stdout, re.M)
    assert re.search(rf"^vat_id\s+NO{org}MVA$", shown.stdout, re.M)
    assert re.search(r"^register\s+Foretaksregisteret$", shown.stdout, re.M)
    assert re.search(r"^address\s+Fjordgata 12, Postboks 7, 7010 Trondheim, NO$", shown.stdout, re.M)
    assert re.search(r"^bank_account\s+8601\.11\.17947$", shown.stdout, re.M)
    assert re.search(r"^iban\s+NO9386011117947$", shown.stdout, re.M)
    assert re.search(r"^phone\s+\+4773123456$", shown.stdout, re.M)
    assert re.search(r"^accent_colour\s+#0B4F6C$", shown.stdout, re.M)
    assert re.search(r"^payment_terms\s+20 days$", shown.stdout, re.M)
    assert "logo" not in shown.stdout
    assert re.search(r"^version\s+2 ", shown.stdout, re.M)
    assert re.search(r"^logo\s+image/svg\+xml, \d+ bytes, sha256 [0-9a-f]{64}$", first.stdout, re.M)
    assert "iban" not in first.stdout

    reply = await ledger_stub.GetCreditorProfile(
        pb.GetCreditorProfileRequest(version=1), metadata=(("authorization", f"Bearer {key}"),)
    )
    assert (reply.profile.logo, reply.profile.payment_terms_days) == (SANDBOX_LOGO, 20)


async def test_wrong_options_are_named_and_nothing_is_made(
    ledger_app: LedgerApp, backend: Backend, tmp_path: Path
) -> None:
    script = tmp_path / "logo.svg"
    script.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    before = await ledger_app.store.tenants.count_documents({})

    bad = await admin(
        ledger_app, backend, "create", "--name", "Feil AS", "--org-number", "123456789",
        "--postal-code", "12", "--city", "Oslo", "--address-line", "Gate 1", "--bank-account", "1234",
        "--logo", str(script), "--accent-colour", "blue", "--company-form", "GmbH",
    )  # fmt: skip
    missing = await admin(
        ledger_app, backend, "create", "--name", "Feil AS", "--org-number", org_number(),
        "--logo", str(tmp_path / "missing.png"),
    )  # fmt: skip

    assert bad.returncode == 2
    for option in (
        "--org-number",
        "--postal-code",
        "--bank-account",
        "--logo",
        "--accent-colour",
        "--company-form",
    ):
        assert f"error: {option} " in bad.stderr, bad.stderr
    assert "<script>" in bad.stderr
    assert missing.returncode == 2
    assert "error: --logo (logo): cannot read" in missing.stderr
    assert await ledger_app.store.tenants.count_documents({}) == before


async def test_a_tenant_made_without_a_profile_is_given_one_later(
    ledger_app: LedgerApp, backend: Backend
) -> None:
    made = await admin(ledger_app, backend, "create", "--name", "Senere AS", "--org-number", org_number())
    assert made.returncode == 0, made.stderr
    assert "No creditor profile yet" in made.stdout
    tenant_id = re.search(r"^tenant (\S+)", made.stdout, re.M).group(1)  # type: ignore[union-attr]

    provisional = await admin(ledger_app, backend, "show", tenant_id)
    incomplete = await admin(ledger_app, backend, "update", tenant_id, "--email", "post@senere.no")
    nothing = await admin(ledger_app, backend, "update", tenant_id)
    complete = await admin(ledger_app, backend, "update", tenant_id, *PROFILE_OPTIONS)
    unknown = await admin(ledger_app, backend, "update", "no-such-tenant", "--city", "Bergen")

    assert "no profile yet" in provisional.stdout
    assert incomplete.returncode == 2
    assert "error: --address-line (address.lines): at least one address line" in incomplete.stderr
    assert "error: --bank-account/--iban (NO)" in incomplete.stderr
    assert nothing.returncode == 2
    assert "nothing to change" in nothing.stderr
    assert complete.stdout.strip() == f"tenant {tenant_id} profile version 1", complete.stderr
    assert unknown.returncode == 2
    assert "no tenant no-such-tenant" in unknown.stderr
