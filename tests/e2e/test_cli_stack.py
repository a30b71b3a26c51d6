"""`fordring` end to end: a detached stack, status, the demo, the client commands, bad lines, down.

The ledger SIGKILLed in the middle of an import is tests/e2e/test_crash_recovery.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.cli.demo_data import generate_invoices
from tests.support.cli_stack import Stack, detached_stack
from tests.support.peppol import official_validator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SUMMARY = re.compile(r"(\d+) created · (\d+) already there · (\d+) failed")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with detached_stack(tmp_path_factory.mktemp("fordring-home")) as (running, _):
        yield running


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text(
        "".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in records), encoding="utf-8"
    )
    return path


def test_status_sees_every_component_healthy(stack: Stack) -> None:
    status = stack.fordring("status")
    assert status.returncode == 0, status.stdout
    services = {"ledger", "renderer", "dispatcher", "matcher", "dunning"}
    # The portal's API is HTTP (the invoice pages and the console): it has no gRPC address.
    components = {"supervisor", "kafka", "mongo", "sandbox", "portal", *services}
    rows = status.stdout.splitlines()
    for name in components:
        assert any(name in row for row in rows), status.stdout
    for name in components - {"supervisor"}:
        assert any(name in row and "healthy" in row for row in rows), status.stdout
    record = stack.record()
    assert record["api_key"] == (stack.home / "sandbox.key").read_text().strip()
    assert set(record["pids"]) == components
    assert set(record["grpc"]) == services
    assert set(record["http"]) == {*services, "portal"}
    # Where the channel providers are and what they keep: the sandbox's section.
    sandbox = record["sandbox"]
    assert set(sandbox) >= {"url", "mail", "print_drop", "nets", "records"}
    assert Path(sandbox["mail"]).parent == Path(sandbox["records"])
    assert set(record["public"]) == {"dispatcher"}


def test_a_second_up_is_refused(stack: Stack) -> None:
    again = stack.fordring("up", "--detach")
    assert again.returncode != 0
    assert "already running" in again.stderr


def _eventually(read: Callable[[], list[Any]], timeout: float = 60.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_demo_then_read_it_back(stack: Stack, tmp_path: Path) -> None:
    # The demo watches its faults' fallbacks for 20 s; nothing here looks at them.
    hurried = Stack(stack.home, {**stack.env, "FORDRING_DEMO_FALLBACK_WATCH_SECONDS": "3"})
    demo = hurried.fordring("demo", "--count", "40", "--seed", "77")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert SUMMARY.search(demo.stdout) is not None
    assert "What the ledger holds" in demo.stdout
    # The unpaid ones were dunned as the stack's sandbox clock moved on.
    assert "Reminders by stage" in demo.stdout
    assert "reminder" in demo.stdout

    mine = [
        invoice
        for invoice in stack.invoices()
        if re.fullmatch(r"DEMO-\d{8}-77-\d{5}", invoice["external_id"])
    ]
    assert len(mine) == 40

    number = mine[0]["invoice_number"]
    shown = stack.fordring("invoices", "show", number, "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["invoice"]["invoice_number"] == number
    assert [entry["type"] for entry in detail["history"]][:1] == ["issued"]

    # The renderer made its documents: `show` lists them, `document` writes one (its SHA-256 checked).
    listed = _eventually(
        lambda: json.loads(stack.fordring("invoices", "show", number, "--json").stdout)["documents"]
    )
    assert {"pdf", "html", "email"} <= {
        doc.get("form", "").removeprefix("DOCUMENT_FORM_").lower() for doc in listed
    }
    pdf = tmp_path / "invoice.pdf"
    written = stack.fordring("invoices", "document", number, "--kind", "pdf", "--out", str(pdf))
    assert written.returncode == 0, written.stderr
    assert pdf.read_bytes().startswith(b"%PDF")
    sms = stack.fordring("invoices", "document", number, "--kind", "sms", "--out", "-")
    assert sms.returncode == 0, sms.stderr
    assert "/i/" in sms.stdout

    customer = stack.fordring("customers", "show", mine[0]["customer_number"], "--json")
    assert customer.returncode == 0, customer.stderr
    assert json.loads(customer.stdout)["customer"]["number"] == mine[0]["customer_number"]


def test_bad_lines_are_reported_and_the_rest_is_imported(stack: Stack, tmp_path: Path) -> None:
    good = generate_invoices(3, seed=79, today=date.today())
    missing = dict(good[0], external_id="E2E-MISSING-CURRENCY")
    del missing["currency"]
    bad_org = json.loads(json.dumps(good[0]))
    bad_org["external_id"] = "E2E-BAD-ORG"
    bad_org["customer"].update(kind="business", org_number="123456789", number="99999999")
    path = write_jsonl(tmp_path / "mixed.jsonl", [good[0], "{not json\n", good[1], missing, bad_org, good[2]])

    first = stack.fordring("invoices", "import", str(path))
    assert first.returncode == 1
    assert "line 2" in first.stdout
    assert "line 4 (E2E-MISSING-CURRENCY)" in first.stdout
    assert "currency: is required" in first.stdout
    assert "line 5 (E2E-BAD-ORG): INVALID_ARGUMENT" in first.stdout
    assert "customer.org_number" in first.stdout
    assert SUMMARY.search(first.stdout) is not None
    assert SUMMARY.search(first.stdout).groups() == ("3", "0", "3")  # type: ignore[union-attr]

    again = stack.fordring("invoices", "import", str(path))
    assert SUMMARY.search(again.stdout).groups() == ("0", "3", "3")  # type: ignore[union-attr]


def test_client_errors_name_the_problem(stack: Stack) -> None:
    missing = stack.fordring("invoices", "show", "does-not-exist")
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr

    wrong_key = stack.fordring("--api-key", "not-a-key", "invoices", "list")
    assert wrong_key.returncode == 1
    assert "UNAUTHENTICATED" in wrong_key.stderr


def _business(number: str, name: str, org: str, country: str = "NO") -> dict[str, Any]:
    address = (
        {"lines": ["Götgatan 14"], "postal_code": "118 46", "city": "Stockholm", "country": "SE"}
        if country == "SE"
        else {"lines": ["Postboks 412 Sentrum"], "postal_code": "5805", "city": "Bergen", "country": "NO"}
    )
    return {
        "number": number,
        "name": name,
        "kind": "business",
        "org_number": org,
        "email": "ap@example.com",
        "address": address,
        "language": "sv" if country == "SE" else "nb",
    }


def _line(description: str, quantity: str, price: int, rate: str, **more: str) -> dict[str, Any]:
    return {
        "description": description,
        "quantity": quantity,
        "unit_price_minor": price,
        "vat_rate": rate,
        **more,
    }


def test_business_invoices_imported_by_an_erp_get_valid_ehf(stack: Stack, tmp_path: Path) -> None:
    """As an ERP would: a file of business invoices (mixed rates, zero-rated and exempt lines, EUR,
    a Swedish buyer, long and special-character texts, an ERP's own numbers) through `invoices import`,
    then each EHF through `invoices document --kind ehf`, all passing the official validator."""
    today = date.today().isoformat()
    run = os.urandom(3).hex()
    buyers = [
        _business(f"B-{run}-1", "Bergen Bryggeri & Mat AS", "974760673"),
        _business(f"B-{run}-2", "Nordisk Ljusdesign AB", "5560360793", "SE"),
        _business(f"B-{run}-3", "Tromsø Fiskeeksport AS", "923609016"),
    ]
    exempt = "Unntatt etter merverdiavgiftsloven § 3-5 (undervisning)"
    invoices = [
        ("NOK", "PO-4411", [_line("Konsulenttimer", "7.5", 125000, "25", unit_code="HUR")]),
        (
            "NOK",
            "",
            [
                _line("Matvarer, «økologisk» <kjølt>", "12", 4990, "15", unit_code="KGM"),
                _line("Kinobilletter & transport", "3", 15000, "12"),
                _line("Aviser (nullsats)", "1", 29900, "0", vat_category="Z"),
                _line("Kurs i regnskap", "1", 450000, "0", vat_category="E", vat_exemption_reason=exempt),
            ],
        ),
        (
            "EUR",
            "Ola Innkjøper",
            [_line("Licence, 12 months; " + "extended support " * 40, "0.333", 99999, "25")],
        ),
        ("SEK", "Anna Andersson", [_line("Belysning, montering", "2", 1234567, "25")]),
        (
            "NOK",
            "Prosjekt 77",
            [_line(f"Linje {n}: deler og arbeid", str(n), 1999 * n, "25") for n in range(1, 41)],
        ),
    ]
    records = [
        {
            "external_id": f"B2B-{run}-{index}",
            "issue_date": today,
            "payment_terms_days": 30,
            "currency": currency,
            "customer": buyers[index % len(buyers)],
            "buyer_reference": reference,
            "order_reference": "4500012345" if index % 2 else "",
            "lines": lines,
        }
        for index, (currency, reference, lines) in enumerate(invoices)
    ]
    path = write_jsonl(tmp_path / "b2b.jsonl", records)
    imported = stack.fordring("invoices", "import", str(path))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    numbers = {
        invoice["external_id"]: invoice["invoice_number"]
        for invoice in stack.invoices()
        if invoice["external_id"].startswith(f"B2B-{run}-")
    }
    assert len(numbers) == len(records)

    files = []
    for external_id, number in sorted(numbers.items()):
        out = tmp_path / f"{external_id}.xml"

        def written(number: str = number, out: Path = out) -> list[str]:
            done = stack.fordring("invoices", "document", number, "--kind", "ehf", "--out", str(out))
            return [done.stderr] if done.returncode == 0 else []

        assert _eventually(written), f"no EHF for {number}"
        assert f"<cbc:ID>{number}</cbc:ID>" in out.read_text(encoding="utf-8")
        files.append(str(out))
    checked = subprocess.run([str(official_validator()), *files], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_deliveries_followed_through_the_cli(stack: Stack, tmp_path: Path) -> None:
    """An ERP's invoice to a customer whose e-mail bounces: the CLI shows every attempt, the
    fallback, the deviation and the flagged contact, and customer service resends by post."""
    sandbox = stack.record()["sandbox"]
    _control(sandbox["url"], "DELETE", "faults")
    _control(sandbox["url"], "POST", "faults", {"channel": "email", "outcome": "bounce", "count": 1})
    invoice = generate_invoices(1, seed=83, today=date.today())[0]
    invoice["external_id"] = "E2E-DELIVERIES-1"
    # Due in a year: the demo may have moved the stack's clock weeks on, and a nudge or reminder for
    # this invoice would be deliveries of its own.
    invoice["due_date"] = (date.fromisoformat(invoice["issue_date"]) + timedelta(days=365)).isoformat()
    invoice["customer"] = {
        "number": "E2E-BOUNCE",
        "name": "Kari Nordmann",
        "kind": "consumer",
        "email": "kari.bounce@example.no",
        "phone": "+4791234568",
        "address": {"lines": ["Storgata 1"], "postal_code": "0155", "city": "Oslo", "country": "NO"},
        "channels": ["email"],
        "consents": {"email": True, "sms": True},
    }
    imported = stack.fordring("invoices", "import", str(write_jsonl(tmp_path / "one.jsonl", [invoice])))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    number = next(i["invoice_number"] for i in stack.invoices() if i["external_id"] == "E2E-DELIVERIES-1")

    def deliveries() -> list[Any]:
        listed = stack.fordring("deliveries", "list", "--invoice", number, "--json")
        assert listed.returncode == 0, listed.stderr
        found: list[Any] = json.loads(listed.stdout)
        return found if any(d["channel"] == "sms" and d["status"] != "queued" for d in found) else []

    found = _eventually(deliveries, timeout=90)
    assert found, "no SMS after the bounced e-mail"
    email = next(d for d in found if d["channel"] == "email")
    assert (email["status"], email["code"], email["route"]) == ("failed", "bounced", "primary")
    sms = next(d for d in found if d["channel"] == "sms")
    assert (sms["route"], sms["rule"]) == ("fallback", "email-failed")
    assert (Path(sandbox["mail"]) / f"{email['id']}.eml").exists(), "the bounced mail was sent once"

    deviations = json.loads(stack.fordring("deliveries", "deviations", "--json").stdout)
    assert any(
        d["invoice_number"] == number and d["action"].startswith("fell back to sms") for d in deviations
    )
    flagged = _eventually(
        lambda: [
            c
            for c in json.loads(stack.fordring("customers", "flagged", "--json").stdout)
            if c["number"] == "E2E-BOUNCE"
        ]
    )
    assert [f["contact"] for f in flagged[0]["flags"]] == ["email"]

    refused = stack.fordring("deliveries", "resend", number, "--channel", "email")
    assert refused.returncode == 1
    assert "FAILED_PRECONDITION" in refused.stderr
    assert "flagged" in refused.stderr
    resent = stack.fordring("deliveries", "resend", number, "--channel", "print", "--json")
    assert resent.returncode == 0, resent.stderr
    assert json.loads(resent.stdout)["route"] == "resend"

    stats = json.loads(stack.fordring("deliveries", "stats", "--json").stdout)
    assert {"email", "sms"} <= {s["channel"] for s in stats}
    rules = json.loads(stack.fordring("deliveries", "rules", "show").stdout)
    assert any(rule["name"] == "email-unopened-sms" for rule in rules["fallbacks"])


def _control(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> None:
    request = urllib.request.Request(
        f"{url}/control/{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status < 300
