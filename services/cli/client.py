"""The gRPC client side: where each service is, the API key, channels, and retries that are safe."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
from fordring.common.v1 import common_pb2
from fordring.dispatcher.v1 import dispatcher_pb2_grpc
from fordring.dunning.v1 import dunning_pb2_grpc
from fordring.ledger.v1 import ledger_pb2_grpc
from fordring.matcher.v1 import matcher_pb2_grpc
from fordring.renderer.v1 import renderer_pb2_grpc

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
    """Where each service is, and the API key (one key works on every service's API)."""

    target: str
    api_key: str
    tls: bool = False
    # Per service (by its name in `fordring up`: "ledger", "renderer", ...); else `target`, an address
    # that routes by gRPC service name (an ingress in front of every service).
    targets: Mapping[str, str] = field(default_factory=dict)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),)

    def target_for(self, service: str) -> str:
        return self.targets.get(service) or self.target


def service_targets_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """FORDRING_<SERVICE>_TARGET overrides, e.g. FORDRING_RENDERER_TARGET=renderer.example:443."""
    found = {}
    for key, value in environ.items():
        if key.startswith("FORDRING_") and key.endswith("_TARGET") and key != "FORDRING_TARGET" and value:
            found[key.removeprefix("FORDRING_").removesuffix("_TARGET").lower()] = value
    return found


def resolve_connection(
    target: str | None,
    api_key: str | None,
    home: Home,
    *,
    tls: bool,
    service_targets: Mapping[str, str] | None = None,
) -> Connection:
    """Flags and environment first; else the local stack's stack.json.

    `target` is where every service is (one address routing by gRPC service name); per-service
    targets (flags, FORDRING_<SERVICE>_TARGET) override it; without either, stack.json says.
    """
    overrides = dict(service_targets or {})
    stack = home.read_stack() if not (target and api_key) else None
    stack_targets = {str(k): str(v) for k, v in dict(stack.get("grpc", {})).items()} if stack else {}
    targets = {**({} if target else stack_targets), **overrides}
    if not target:
        target = targets.get("ledger")
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
    return Connection(str(target), str(api_key), tls, targets)


def open_channel(connection: Connection, service: str) -> grpc.aio.Channel:
    target = connection.target_for(service)
    if connection.tls:
        return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), options=_CHANNEL_OPTIONS)
    return grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)


@asynccontextmanager
async def ledger_stub(connection: Connection) -> AsyncIterator[ledger_pb2_grpc.LedgerServiceAsyncStub]:
    channel = open_channel(connection, "ledger")
    try:
        yield ledger_pb2_grpc.LedgerServiceStub(channel)
    finally:
        await channel.close(grace=None)


@asynccontextmanager
async def renderer_stub(connection: Connection) -> AsyncIterator[renderer_pb2_grpc.RendererServiceAsyncStub]:
    channel = open_channel(connection, "renderer")
    try:
        yield renderer_pb2_grpc.RendererServiceStub(channel)
    finally:
        await channel.close(grace=None)


@asynccontextmanager
async def dispatcher_stub(
    connection: Connection,
) -> AsyncIterator[dispatcher_pb2_grpc.DispatcherServiceAsyncStub]:
    channel = open_channel(connection, "dispatcher")
    try:
        yield dispatcher_pb2_grpc.DispatcherServiceStub(channel)
    finally:
        await channel.close(grace=None)


@asynccontextmanager
async def matcher_stub(connection: Connection) -> AsyncIterator[matcher_pb2_grpc.MatcherServiceAsyncStub]:
    channel = open_channel(connection, "matcher")
    try:
        yield matcher_pb2_grpc.MatcherServiceStub(channel)
    finally:
        await channel.close(grace=None)


@asynccontextmanager
async def dunning_stub(connection: Connection) -> AsyncIterator[dunning_pb2_grpc.DunningServiceAsyncStub]:
    channel = open_channel(connection, "dunning")
    try:
        yield dunning_pb2_grpc.DunningServiceStub(channel)
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


async def all_pages(
    fetch: Callable[[common_pb2.PageRequest], Awaitable[tuple[list[T], str]]], limit: int
) -> list[T]:
    """Up to `limit` items of a paged list call: `fetch(page)` gives a page's items and the next
    token (each page retried as `QUICK` allows)."""
    found: list[T] = []
    token = ""
    while len(found) < limit:
        page = common_pb2.PageRequest(page_size=min(500, limit - len(found)), page_token=token)
        items, token = await with_retries(lambda page=page: fetch(page), QUICK)  # type: ignore[misc]
        found.extend(items)
        if not token:
            break
    return found[:limit]
