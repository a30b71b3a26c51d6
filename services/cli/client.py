"""The gRPC client side: where the ledger is, the API key, a channel, and retries that are safe."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import grpc
from fordring.ledger.v1 import ledger_pb2_grpc

from services.cli.home import Home

T = TypeVar("T")

# Reconnect quickly after a restart of the server instead of gRPC's default backoff of up to two minutes.
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class ConnectionConfigError(Exception):
    pass


@dataclass(frozen=True)
class Connection:
    target: str
    api_key: str
    tls: bool = False

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)


def resolve_connection(target: str | None, api_key: str | None, home: Home, *, tls: bool) -> Connection:
    """Flags and environment first; else the local stack's stack.json."""
    stack = home.read_stack() if not (target and api_key) else None
    if not target and stack is not None:
        target = dict(stack.get("grpc", {})).get("ledger")
    if not api_key and stack is not None:
        api_key = stack.get("api_key")
    where = f"no running local stack found ({home.stack_file} is missing)" if stack is None else ""
    if not target:
        raise ConnectionConfigError(
            "no ledger to talk to: pass --target HOST:PORT (or set FORDRING_TARGET), "
            f"or start a local stack with `fordring up`{'; ' + where if where else ''}"
        )
    if not api_key:
        raise ConnectionConfigError(
            f"no API key for {target}: pass --api-key (or set FORDRING_API_KEY)"
            f"{'; ' + where if where else ''}"
        )
    return Connection(str(target), str(api_key), tls)


@asynccontextmanager
async def ledger_stub(connection: Connection) -> AsyncIterator[ledger_pb2_grpc.LedgerServiceAsyncStub]:
    if connection.tls:
        channel = grpc.aio.secure_channel(
            connection.target, grpc.ssl_channel_credentials(), options=_CHANNEL_OPTIONS
        )
    else:
        channel = grpc.aio.insecure_channel(connection.target, options=_CHANNEL_OPTIONS)
    try:
        yield ledger_pb2_grpc.LedgerServiceStub(channel)
    finally:
        await channel.close(grace=None)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for calls that are safe to repeat (reads, and commands with an idempotency key)."""

    give_up_after: float = 60.0
    first_delay: float = 0.2
    max_delay: float = 3.0
    call_timeout: float = 15.0


QUICK = RetryPolicy(give_up_after=10.0)


async def with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    deadline = time.monotonic() + policy.give_up_after
    delay = policy.first_delay
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            if error.code() not in RETRYABLE or time.monotonic() + delay > deadline:
                raise
        # Jitter keeps many concurrent callers from retrying in lockstep.
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret
        delay = min(delay * 2, policy.max_delay)
