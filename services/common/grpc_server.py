"""The one gRPC server bootstrap: health, reflection, tracing, auth, error mapping, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError

from services.common import attributes as attr
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    FordringError,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    safe_error_text,
)
from services.common.ids import new_id
from services.common.telemetry import record_error
from services.common.tenancy import (
    CALLER_HEADER,
    TENANT_HEADER,
    TenantResolver,
    authorization,
    metadata_value,
    set_current_tenant,
)

log = logging.getLogger(__name__)

PUBLIC_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

_CODES: dict[type[FordringError], tuple[grpc.StatusCode, int]] = {
    InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT),
    NotFound: (grpc.StatusCode.NOT_FOUND, code_pb2.NOT_FOUND),
    AlreadyExists: (grpc.StatusCode.ALREADY_EXISTS, code_pb2.ALREADY_EXISTS),
    FailedPrecondition: (grpc.StatusCode.FAILED_PRECONDITION, code_pb2.FAILED_PRECONDITION),
    Unauthenticated: (grpc.StatusCode.UNAUTHENTICATED, code_pb2.UNAUTHENTICATED),
    ResourceExhausted: (grpc.StatusCode.RESOURCE_EXHAUSTED, code_pb2.RESOURCE_EXHAUSTED),
    OutOfRange: (grpc.StatusCode.OUT_OF_RANGE, code_pb2.OUT_OF_RANGE),
    Unavailable: (grpc.StatusCode.UNAVAILABLE, code_pb2.UNAVAILABLE),
}


def _status_for(exc: FordringError) -> tuple[grpc.StatusCode, bytes]:
    code, rpc_code = next(
        (v for k, v in _CODES.items() if isinstance(exc, k)), (grpc.StatusCode.INTERNAL, code_pb2.INTERNAL)
    )
    status = status_pb2.Status(code=rpc_code, message=exc.message)
    if isinstance(exc, InvalidArgument):
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in exc.violations
                ]
            )
        )
        status.details.append(detail)
    if isinstance(exc, FailedPrecondition):
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain="fordring"))
        status.details.append(detail)
    return code, status.SerializeToString()


def _is_abort(exc: BaseException) -> bool:
    """grpc.aio ends an aborted call by raising its own exception through the handler."""
    return isinstance(exc, grpc.aio.AbortError)


class _AuthAndErrors(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Resolves the tenant from the bearer key and turns domain errors into canonical statuses."""

    def __init__(self, resolver: TenantResolver, service_token: str, internal: frozenset[str]) -> None:
        self._resolver = resolver
        self._service_token = service_token
        # Services only Fordring's own services may call (with the service credential).
        self._internal = internal

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        service = method.lstrip("/").split("/")[0]
        if handler is None or service in PUBLIC_SERVICES:
            return handler
        internal = service in self._internal
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, internal),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:  # a client-streamed call (an upload): one answer
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary, internal),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, internal),  # type: ignore[arg-type] # grpc.aio handlers are async
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    async def _authenticate(self, context: grpc.aio.ServicerContext[Any, Any], internal: bool) -> None:
        """A tenant's API key (`Bearer`), or Fordring's service credential (`Service`) acting for the
        tenant named in `x-fordring-tenant`. Internal services take only the service credential."""
        metadata = context.invocation_metadata()
        scheme, credential = authorization(metadata)  # type: ignore[arg-type]
        if scheme == "service":
            if not self._service_token or not hmac.compare_digest(credential, self._service_token):
                raise Unauthenticated("unknown service credential")
            tenant_id = metadata_value(metadata, TENANT_HEADER)  # type: ignore[arg-type]
            if tenant_id:
                tenant = await self._resolver.by_id(tenant_id)
                if tenant is None:
                    raise Unauthenticated(f"unknown tenant {tenant_id[:64]!r}")
                caller = metadata_value(metadata, CALLER_HEADER) or "service"  # type: ignore[arg-type]
                set_current_tenant(tenant.model_copy(update={"key_name": f"service:{caller[:64]}"}))
                trace.get_current_span().set_attribute(attr.TENANT_ID, tenant.id)
            elif not internal:
                raise Unauthenticated(f"a service call must name its tenant in `{TENANT_HEADER}`")
            return
        if internal:
            raise Unauthenticated("this API is for Fordring's own services (service credential)")
        if scheme != "bearer" or not credential:
            raise Unauthenticated("missing `authorization: Bearer <api key>` metadata")
        tenant = await self._resolver.resolve(credential)
        if tenant is None:
            raise Unauthenticated("unknown API key")
        set_current_tenant(tenant)
        trace.get_current_span().set_attribute(attr.TENANT_ID, tenant.id)

    async def _fail(self, context: grpc.aio.ServicerContext[Any, Any], exc: FordringError) -> None:
        code, details = _status_for(exc)
        await context.abort(code, exc.message, trailing_metadata=(("grpc-status-details-bin", details),))

    async def _fail_unexpected(
        self, context: grpc.aio.ServicerContext[Any, Any], exc: Exception | None
    ) -> None:
        """A bug or an outage: the caller gets INTERNAL (UNAVAILABLE when the database is away, so
        it retries) with an error id; the log gets where it failed, never the data involved."""
        if exc is None:
            return
        error_id = new_id()
        unavailable = isinstance(exc, (ConnectionFailure, ServerSelectionTimeoutError))
        log.error(
            "unexpected error %s: %s",
            error_id,
            safe_error_text(exc),
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"error_id": error_id},
        )
        record_error(trace.get_current_span(), exc)
        trace.get_current_span().set_attribute(attr.ERROR_ID, error_id)
        code = grpc.StatusCode.UNAVAILABLE if unavailable else grpc.StatusCode.INTERNAL
        message = (
            f"the service cannot reach its database; try again (error id {error_id})"
            if unavailable
            else f"internal error; quote error id {error_id} to the operator"
        )
        status = status_pb2.Status(
            code=code_pb2.UNAVAILABLE if unavailable else code_pb2.INTERNAL, message=message
        )
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.ErrorInfo(
                reason="UNAVAILABLE" if unavailable else "INTERNAL",
                domain="fordring",
                metadata={"error_id": error_id},
            )
        )
        status.details.append(detail)
        await context.abort(
            code, message, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),)
        )

    def _wrap_unary(
        self, behavior: Callable[..., Awaitable[Any]], internal: bool
    ) -> Callable[..., Awaitable[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            unexpected: Exception | None = None
            try:
                await self._authenticate(context, internal)
                return await behavior(request, context)
            except FordringError as exc:
                await self._fail(context, exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # anything else is ours to hide: see _fail_unexpected
                if _is_abort(exc):
                    raise
                unexpected = exc
            finally:
                set_current_tenant(None)
            # Aborted outside the `except`, so the abort does not carry the error as its context
            # (the tracing interceptor records the abort's whole traceback).
            await self._fail_unexpected(context, unexpected)
            return None

        return wrapped

    def _wrap_stream(
        self, behavior: Callable[..., AsyncGenerator[Any, None]], internal: bool
    ) -> Callable[..., AsyncIterator[Any]]:
        # grpc.aio writes what a handler yields outside the handler: a client hanging up during that
        # write leaves the generators around it suspended (OpenTelemetry's holds its span attached to
        # the call's context), to be closed later by the garbage collector in another context, where
        # detaching fails ("Failed to detach context"). So the messages are written here, inside the
        # one step of the generators that grpc.aio runs, and a hang-up unwinds them all in the call's task.
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            unexpected: Exception | None = None
            try:
                await self._authenticate(context, internal)
                async with contextlib.aclosing(behavior(request, context)) as stream:
                    async for item in stream:
                        await context.write(item)
            except FordringError as exc:
                await self._fail(context, exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # anything else is ours to hide: see _fail_unexpected
                if isinstance(exc, grpc.aio.BaseError):  # an abort, or a write to a call that is over
                    raise
                unexpected = exc
            finally:
                set_current_tenant(None)
            if unexpected is not None:
                await self._fail_unexpected(context, unexpected)
            return
            yield  # an async generator that yields nothing: every message went out through write()

        return wrapped


class GrpcServer:
    """A grpc.aio server with health and reflection; `add` registers a service implementation."""

    def __init__(
        self,
        host: str,
        port: int,
        resolver: TenantResolver,
        *,
        service_token: str = "",
        internal: frozenset[str] = frozenset(),
    ) -> None:
        self._server = grpc.aio.server(
            interceptors=[aio_server_interceptor(), _AuthAndErrors(resolver, service_token, internal)],  # type: ignore[no-untyped-call]
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 16 * 1024 * 1024)],
        )
        self._address = f"{host}:{port}"
        self._service_names: list[str] = []
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self.port = 0

    def add(self, register: Callable[[grpc.aio.Server], None], full_name: str) -> None:
        register(self._server)
        self._service_names.append(full_name)

    async def start(self) -> int:
        reflection.enable_server_reflection(
            (
                *self._service_names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self._server,
        )
        self.port = self._server.add_insecure_port(self._address)
        if self.port == 0:
            raise OSError(f"cannot listen for gRPC on {self._address} (port in use?)")
        await self._server.start()
        await self.set_serving(True)
        return self.port

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self._service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        await self.set_serving(False)
        await self._server.stop(grace)
