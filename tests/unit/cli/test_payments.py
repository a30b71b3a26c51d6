"""`fordring payments`: arguments, decisions planned before anything is sent, how imports and payments
are shown, and the commands against a stand-in matcher (a file streamed in chunks, a refused file's
every problem, the JSON shapes)."""

# ruff: noqa: N802 - the stand-in servicers' method names are the proto's

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent import futures
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from fordring.matcher.v1 import matcher_pb2 as pb
from fordring.matcher.v1 import matcher_pb2_grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from rich.console import Console

from services.cli.__main__ import cli
from services.cli.payment_views import by_method_text, import_summary, payment_json
from services.cli.resolution import (
    InvoiceShare,
    ResolutionError,
    parse_invoice_option,
    plan_allocations,
    resolve_request,
)

# --- arguments and plans ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10042", InvoiceShare("10042")),
        ("10042=1250", InvoiceShare("10042", Decimal(1250))),
        ("10042=1250,50", InvoiceShare("10042", Decimal("1250.50"))),
        ("10042=1 250.5", InvoiceShare("10042", Decimal("1250.5"))),
        (" 10042 = 99 ", InvoiceShare("10042", Decimal(99))),
    ],
)
def test_invoice_options_are_read(value: str, expected: InvoiceShare) -> None:
    assert parse_invoice_option(value) == expected


@pytest.mark.parametrize("value", ["", "=100", "10042=", "10042=abc", "10042=-5", "10042=0", "10042=1.2.3"])
def test_bad_invoice_options_are_refused(value: str) -> None:
    with pytest.raises(ResolutionError):
        parse_invoice_option(value)


def test_amounts_given_first_then_what_is_open_as_far_as_the_payment_reaches() -> None:
    shares = [InvoiceShare("1"), InvoiceShare("2", Decimal(300)), InvoiceShare("3")]
    planned = plan_allocations(100_000, "NOK", shares, {"1": 50_000, "3": 40_000})
    assert planned == [("1", 50_000), ("2", 30_000), ("3", 20_000)]
    # A payment larger than what is open: the rest is the customer's credit, not forced onto an invoice.
    assert plan_allocations(100_000, "NOK", [InvoiceShare("1")], {"1": 60_000}) == [("1", 60_000)]


@pytest.mark.parametrize(
    ("shares", "open_minor", "message"),
    [
        ([InvoiceShare("1", Decimal(2000))], {}, "more than the payment"),
        ([InvoiceShare("1"), InvoiceShare("1")], {"1": 5}, "more than once"),
        ([InvoiceShare("1")], {"1": 0}, "nothing open"),
        ([InvoiceShare("2", Decimal(1000)), InvoiceShare("1")], {"1": 10}, "nothing is left"),
        ([InvoiceShare("1", Decimal("10.005"))], {}, "at most 2 decimals"),
    ],
)
def test_impossible_decisions_are_refused_before_sending(
    shares: list[InvoiceShare], open_minor: dict[str, int], message: str
) -> None:
    with pytest.raises(ResolutionError, match=message):
        plan_allocations(100_000, "NOK", shares, open_minor)


def test_the_decision_as_the_matcher_takes_it() -> None:
    allocate = resolve_request(
        "p1", refund=False, allocations=[("10042", 500)], customer_number="C1", learn=False
    )
    assert allocate.WhichOneof("action") == "allocate"
    assert [(a.invoice_number, a.amount_minor) for a in allocate.allocate.allocations] == [("10042", 500)]
    assert allocate.allocate.customer_number == "C1"
    assert allocate.allocate.do_not_learn_account
    refund = resolve_request("p1", refund=True, note="paid back")
    assert refund.WhichOneof("action") == "refund"
    assert refund.note == "paid back"


# --- how it is shown -------------------------------------------------------------------------------


def _payment(**more: Any) -> pb.Payment:
    fields: dict[str, Any] = {
        "id": "pay-1",
        "import_id": "imp-1",
        "location": "line 3",
        "direction": "credit",
        "amount": common_pb2.Money(minor_units=130_050, currency="NOK"),
        "reference": "0000001206",
        "payer_account": "12345678903",
        "booking_date": "2025-06-20",
        "bank_ids": {"archive_reference": "123456789", "transaction_number": "0000001"},
        "status": "matched",
        "method": "kid",
        "confidence": 1.0,
        "allocations": [
            pb.PaymentAllocation(invoice_id="i1", invoice_number="10042", amount_minor=125_000),
        ],
        "credit_minor": 5_050,
        "customer_number": "C-1",
    }
    fields.update(more)
    return pb.Payment(**fields)


def _import(**more: Any) -> pb.Import:
    fields: dict[str, Any] = {
        "id": "imp-1",
        "filename": "OCR.20250620.0001.txt",
        "format": "ocr_giro",
        "file_id": "nets:1",
        "state": "done",
        "payments": 12,
        "total": common_pb2.Money(minor_units=1_234_567_89, currency="NOK"),
        "matched": 9,
        "review": 2,
        "reversals": 1,
        "duplicates": 0,
        "by_method": {"kid": 6, "kid_typo": 2, "free_text": 1},
    }
    fields.update(more)
    return pb.Import(**fields)


def test_a_payment_as_json_has_integers_and_allocations_by_invoice_number() -> None:
    data = payment_json(_payment())
    assert data["amount_minor"] == 130_050
    assert data["currency"] == "NOK"
    assert data["allocations"] == {"10042": 125_000}
    assert data["credit_minor"] == 5_050
    assert data["bank_ids"] == {"archive_reference": "123456789", "transaction_number": "0000001"}
    assert (data["status"], data["method"], data["confidence"]) == ("matched", "kid", 1.0)
    json.dumps(data)


def test_the_import_summary_counts_by_method_most_first() -> None:
    assert by_method_text({"free_text": 1, "kid": 6, "kid_typo": 2, "none": 0}.items()) == (
        "KID 6 · KID with a keying error 2 · invoice number in the text 1"
    )
    console = Console(record=True, width=120)
    console.print(import_summary(pb.ImportPaymentsResponse(summary=_import())))
    rows = [re.sub(" +", " ", line).strip() for line in console.export_text().splitlines()]
    assert rows == [
        "payments 12 1\u00a0234\u00a0567,89 NOK",
        "matched 9 KID 6 · KID with a keying error 2 · invoice number in the text 1",
        "review 2 fordring payments review",
        "reversals 1",
        "duplicates 0",
    ]


# --- the commands against a stand-in matcher ----------------------------------------------------------


class FakeMatcher(matcher_pb2_grpc.MatcherServiceServicer):
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.header: pb.ImportHeader | None = None
        self.resolved: list[pb.ResolvePaymentRequest] = []

    def ImportPayments(
        self, request_iterator: Iterator[pb.ImportPaymentsRequest], context: grpc.ServicerContext
    ) -> pb.ImportPaymentsResponse:
        for request in request_iterator:
            if request.HasField("header"):
                self.header = request.header
            else:
                self.received.append(request.chunk)
        content = b"".join(self.received)
        if content.startswith(b"BROKEN"):
            status = status_pb2.Status(
                code=code_pb2.INVALID_ARGUMENT, message="the bank file is refused, nothing of it applied"
            )
            status.details.add().Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field="line 3", description="bad KID 'x'"
                        ),
                        error_details_pb2.BadRequest.FieldViolation(
                            field="line 9",
                            description="transmission end declares 4 transactions, the file has 3",
                        ),
                    ]
                )
            )
            context.abort_with_status(rpc_status.to_status(status))
        return pb.ImportPaymentsResponse(
            summary=_import(filename=self.header.filename if self.header else "")
        )

    def ListPayments(
        self, request: pb.ListPaymentsRequest, context: grpc.ServicerContext
    ) -> pb.ListPaymentsResponse:
        assert request.status == "matched"
        return pb.ListPaymentsResponse(payments=[_payment()])

    def ListReviewQueue(
        self, request: pb.ListReviewQueueRequest, context: grpc.ServicerContext
    ) -> pb.ListReviewQueueResponse:
        waiting = _payment(
            id="pay-2",
            status="review",
            method="kid_typo",
            allocations=[],
            credit_minor=0,
            reason="the KID is unknown; 2 KIDs one keying error away fit the payment",
            suggestions=[
                pb.Suggestion(
                    invoice_numbers=["10042"], score=0.7, reason="KID 0000001206 (one digit wrong)"
                ),
                pb.Suggestion(
                    invoice_numbers=["10043"], score=0.7, reason="KID 0000001214 (one digit wrong)"
                ),
            ],
        )
        return pb.ListReviewQueueResponse(payments=[waiting])

    def ResolvePayment(
        self, request: pb.ResolvePaymentRequest, context: grpc.ServicerContext
    ) -> pb.ResolvePaymentResponse:
        self.resolved.append(request)
        allocations = [
            pb.PaymentAllocation(invoice_number=a.invoice_number, amount_minor=a.amount_minor)
            for a in request.allocate.allocations
        ]
        return pb.ResolvePaymentResponse(
            payment=_payment(
                id=request.payment_id, status="resolved", method="manual", allocations=allocations
            )
        )

    def GetPayment(
        self, request: pb.GetPaymentRequest, context: grpc.ServicerContext
    ) -> pb.GetPaymentResponse:
        return pb.GetPaymentResponse(payment=_payment(id=request.payment_id, status="review"))

    def ListImports(
        self, request: pb.ListImportsRequest, context: grpc.ServicerContext
    ) -> pb.ListImportsResponse:
        return pb.ListImportsResponse(imports=[_import()])


class FakeLedger(ledger_pb2_grpc.LedgerServiceServicer):
    def GetInvoice(
        self, request: ledger_pb2.GetInvoiceRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetInvoiceResponse:
        balance = {"10042": 100_000, "10043": 80_000}[request.invoice_number]
        return ledger_pb2.GetInvoiceResponse(
            invoice=ledger_pb2.Invoice(
                invoice_number=request.invoice_number,
                balance=common_pb2.Money(minor_units=balance, currency="NOK"),
            )
        )


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeMatcher, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    matcher = FakeMatcher()
    matcher_pb2_grpc.add_MatcherServiceServicer_to_server(matcher, server)
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(FakeLedger(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield matcher, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def run(target: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--target", target, "--api-key", "k", *args], catch_exceptions=False)


def test_a_file_is_streamed_in_chunks_and_its_summary_printed(
    fake: tuple[FakeMatcher, str], tmp_path: Path
) -> None:
    matcher, target = fake
    matcher.received.clear()
    content = b"NY000010" + b"x" * 600_000
    path = tmp_path / "OCR.20250620.0001.txt"
    path.write_bytes(content)

    result = run(target, "payments", "import", str(path), "--format", "ocr_giro")

    assert result.exit_code == 0, result.output
    assert b"".join(matcher.received) == content
    assert len(matcher.received) == 3  # 256 KiB chunks
    assert matcher.header is not None
    assert (matcher.header.filename, matcher.header.format) == ("OCR.20250620.0001.txt", "ocr_giro")
    assert "matched" in result.stdout
    assert "KID 6" in result.stdout

    as_json = run(target, "payments", "import", str(path), "--json")
    data = json.loads(as_json.stdout)
    assert data["summary"]["payments"] == 12
    assert data["summary"]["by_method"] == {"free_text": 1, "kid": 6, "kid_typo": 2}
    assert data["already_imported"] is False
    assert matcher.header.format == ""  # detected by the matcher


def test_a_refused_file_shows_every_problem_with_its_line(
    fake: tuple[FakeMatcher, str], tmp_path: Path
) -> None:
    matcher, target = fake
    matcher.received.clear()
    path = tmp_path / "broken.txt"
    path.write_bytes(b"BROKEN file")

    result = run(target, "payments", "import", str(path))

    assert result.exit_code == 1
    assert "INVALID_ARGUMENT: the bank file is refused, nothing of it applied" in result.stderr
    assert "• line 3: bad KID 'x'" in result.stderr
    assert "• line 9: transmission end declares 4 transactions, the file has 3" in result.stderr


def test_list_review_and_imports_as_json(fake: tuple[FakeMatcher, str]) -> None:
    _, target = fake
    listed = json.loads(run(target, "payments", "list", "--status", "matched", "--json").stdout)
    assert listed[0]["allocations"] == {"10042": 125_000}
    review = json.loads(run(target, "payments", "review", "--json").stdout)
    assert [s["invoice_numbers"] for s in review[0]["suggestions"]] == [["10042"], ["10043"]]
    assert review[0]["reason"].startswith("the KID is unknown")
    table = run(target, "payments", "review")
    assert "pay-2" in table.stdout
    assert "1. invoice 10042 (0.70): KID 0000001206 (one digit wrong)" in table.stdout
    assert "1 payments in review" in table.stdout
    imports = json.loads(run(target, "payments", "imports", "--json").stdout)
    assert imports[0]["total_minor"] == 1_234_567_89


def test_resolve_takes_what_is_open_where_no_amount_is_given(fake: tuple[FakeMatcher, str]) -> None:
    matcher, target = fake
    matcher.resolved.clear()

    result = run(
        target,
        "payments",
        "resolve",
        "pay-2",
        "--invoice",
        "10043",
        "--invoice",
        "10042=300",
        "--note",
        "called",
    )

    assert result.exit_code == 0, result.output
    (request,) = matcher.resolved
    # The payment is 1 300,50: 300 to 10042 as given, the rest (1 000,50) as far as 10043's 800 reaches.
    assert [(a.invoice_number, a.amount_minor) for a in request.allocate.allocations] == [
        ("10043", 80_000),
        ("10042", 30_000),
    ]
    assert request.note == "called"
    assert not request.allocate.do_not_learn_account
    assert "is resolved" in result.stdout

    refund = run(target, "payments", "resolve", "pay-3", "--refund", "--no-learn")
    assert refund.exit_code == 0, refund.output
    assert matcher.resolved[-1].WhichOneof("action") == "refund"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--refund", "--invoice", "1"], "cannot be combined"),
        (["--refund", "--customer", "C1"], "cannot be combined"),
        ([], "give --invoice"),
        (["--invoice", "1=abc"], "not a number"),
    ],
)
def test_resolve_refuses_contradictions_before_connecting(args: list[str], message: str) -> None:
    result = run("127.0.0.1:1", "payments", "resolve", "pay-1", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_import_of_a_missing_file_is_refused(tmp_path: Path) -> None:
    result = run("127.0.0.1:1", "payments", "import", str(tmp_path / "nope.txt"))
    assert result.exit_code == 2
    assert "does not exist" in result.output
