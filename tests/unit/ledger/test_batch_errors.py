"""Which failures of a batch of payment proposals pass by themselves (the batch comes again whole) and
which may be one proposal's fault (its proposals are applied one at a time)."""

from __future__ import annotations

import pytest
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from services.common.bus import AlreadyProcessed
from services.common.errors import FailedPrecondition, Unavailable
from services.ledger.matched import passes_by_itself


def write_conflict() -> OperationFailure:
    return OperationFailure(
        "WriteConflict", code=112, details={"errorLabels": ["TransientTransactionError"], "code": 112}
    )


@pytest.mark.parametrize(
    "error",
    [AutoReconnect("gone"), NetworkTimeout("slow"), ServerSelectionTimeoutError("none"), OSError("reset"),
     Unavailable("the database"), write_conflict()],
)  # fmt: skip
def test_errors_of_the_moment_pass_by_themselves(error: BaseException) -> None:
    assert passes_by_itself(error)


@pytest.mark.parametrize(
    "error",
    [DuplicateKeyError("E11000"), BulkWriteError({"writeErrors": [{"code": 11000}]}),
     OperationFailure("document too large", code=10334), AlreadyProcessed("e1"),
     FailedPrecondition("kept changing", reason="CONCURRENT_CHANGE"), ValueError("a bug")],
)  # fmt: skip
def test_errors_that_may_be_one_proposals_fault_do_not(error: BaseException) -> None:
    assert not passes_by_itself(error)
