"""gRPC errors shown with their code, message and every field violation from google.rpc details."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from services.cli import rpc_errors
from services.cli.violations import FieldViolation


def rich_error(code: grpc.StatusCode, message: str, *details: object) -> grpc.aio.AioRpcError:
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)  # type: ignore[arg-type]
        status.details.append(packed)
    trailing = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=message, debug_error_string="")


def test_field_violations_from_bad_request() -> None:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field="customer.org_number", description="not a valid organisation number"
            ),
            error_details_pb2.BadRequest.FieldViolation(
                field="lines[0].vat_rate", description="unknown VAT rate"
            ),
        ]
    )
    failure = rpc_errors.describe(
        rich_error(grpc.StatusCode.INVALID_ARGUMENT, "invalid invoice", bad_request)
    )
    assert failure.code == "INVALID_ARGUMENT"
    assert failure.message == "invalid invoice"
    assert failure.violations == (
        FieldViolation("customer.org_number", "not a valid organisation number"),
        FieldViolation("lines[0].vat_rate", "unknown VAT rate"),
    )
    assert failure.lines() == [
        "INVALID_ARGUMENT: invalid invoice",
        "  • customer.org_number: not a valid organisation number",
        "  • lines[0].vat_rate: unknown VAT rate",
    ]


def test_precondition_failures_are_shown() -> None:
    precondition = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type="IDEMPOTENCY", subject="ERP-1", description="key reused with a different request"
            )
        ]
    )
    failure = rpc_errors.describe(rich_error(grpc.StatusCode.FAILED_PRECONDITION, "conflict", precondition))
    assert failure.preconditions == ("ERP-1: key reused with a different request",)


def test_plain_errors_without_details() -> None:
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), "no invoice 42", ""
    )
    failure = rpc_errors.describe(error)
    assert failure.lines() == ["NOT_FOUND: no invoice 42"]
