"""gRPC errors as a person needs to see them: the status code, the message, and every field violation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.cli.violations import FieldViolation


@dataclass(frozen=True)
class RpcFailure:
    code: str
    message: str
    violations: tuple[FieldViolation, ...] = ()
    preconditions: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        head = f"{self.code}: {self.message}" if self.message else self.code
        return [
            head,
            *(f"  • {violation}" for violation in self.violations),
            *(f"  • {precondition}" for precondition in self.preconditions),
        ]


def describe(error: grpc.aio.AioRpcError) -> RpcFailure:
    violations: list[FieldViolation] = []
    preconditions: list[str] = []
    try:
        status = rpc_status.from_call(cast(grpc.Call, error))
    except ValueError:
        status = None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(
                FieldViolation(item.field, item.description) for item in bad_request.field_violations
            )
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            preconditions.extend(
                f"{item.subject}: {item.description}" if item.subject else item.description
                for item in failure.violations
            )
    return RpcFailure(error.code().name, error.details() or "", tuple(violations), tuple(preconditions))
