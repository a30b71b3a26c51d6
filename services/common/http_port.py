"""The HTTP side port every service opens: /healthz (alive), /readyz (dependencies), /metrics.

A service whose API is HTTP (the portal) mounts its ASGI app on the same port (`mount`): then uvicorn
serves it, and these three paths are answered before the app sees the request.

`/readyz` answers 200 only when every check passes, else 503 with a line per check saying what is
wrong. Like the Kubernetes API server's, it takes `?exclude=<check>` (repeatable): the Kubernetes
readiness probe excludes the checks whose failure the service rides out by design (Kafka: the
outbox holds events), so a Kafka outage does not take the API out of its Service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]
# An ASGI application (scope, receive, send), as Starlette builds one.
AsgiApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]
_OWN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class HttpPort:
    """A deliberately tiny HTTP/1.1 server: three GET endpoints, no framework."""

    def __init__(
        self,
        host: str,
        port: int,
        checks: Mapping[str, ReadinessCheck],
        alive: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._host = host
        self._port = port
        # Kept by reference: a check the service adds later (ServiceRuntime.add_check) counts too.
        self._checks = checks
        # None while the process works; else why it must be restarted (a vital task died).
        self._alive = alive
        self._server: asyncio.Server | None = None
        self._app: AsgiApp | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._main_loop: asyncio.Task[None] | None = None
        self.grace = 10.0
        self.port = 0

    def mount(self, app: AsgiApp, *, grace: float = 10.0) -> None:
        """Serve `app` on this port too (before `start`); `grace`: how long a stop waits for open
        requests (server-sent event streams end when the service stops)."""
        self._app = app
        self.grace = grace

    async def start(self) -> int:
        if self._app is not None:
            return await self._start_uvicorn(self._app)
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            if self._main_loop is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._main_loop
            await self._uvicorn.shutdown()
            self._uvicorn = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _start_uvicorn(self, app: AsgiApp) -> int:
        import uvicorn  # only the services that mount an app need it

        config = uvicorn.Config(
            self._asgi(app),
            host=self._host,
            port=self._port,
            lifespan="off",
            access_log=False,
            log_config=None,
            proxy_headers=True,
            server_header=False,
            timeout_graceful_shutdown=max(1, int(self.grace)),
        )
        config.load()
        server = uvicorn.Server(config)
        # What uvicorn's own `serve` does, without taking the process's signals (the service's
        # serve_until_signal owns them).
        server.lifespan = config.lifespan_class(config)
        await server.startup()
        self._uvicorn = server
        self._main_loop = asyncio.create_task(server.main_loop(), name="http-port")
        self.port = server.servers[0].sockets[0].getsockname()[1]
        return self.port

    def _asgi(self, app: AsgiApp) -> AsgiApp:
        async def serve(
            scope: dict[str, Any],
            receive: Callable[[], Awaitable[Any]],
            send: Callable[[Any], Awaitable[None]],
        ) -> None:
            if scope["type"] != "http" or scope["path"] not in _OWN_PATHS:
                await app(scope, receive, send)
                return
            exclude = frozenset(parse_qs(scope.get("query_string", b"").decode("latin-1")).get("exclude", []))
            status, ctype, body = await self._route(scope["method"], scope["path"], exclude)
            headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": int(status.split()[0]), "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return serve

    async def readiness(self, exclude: frozenset[str] = frozenset()) -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        for name, check in self._checks.items():
            if name in exclude:
                continue
            try:
                await asyncio.wait_for(check(), timeout=2.0)
                results[name] = "ok"
            except Exception as exc:  # any failure means "not ready", reported by name
                results[name] = f"{type(exc).__name__}: {exc}"[:600]
        return all(v == "ok" for v in results.values()), results

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5.0)
            while (await asyncio.wait_for(reader.readline(), timeout=5.0)) not in (b"\r\n", b"\n", b""):
                pass
            method, _, rest = request_line.decode("latin-1").partition(" ")
            url = urlsplit(rest.split(" ")[0])
            exclude = frozenset(parse_qs(url.query).get("exclude", []))
            status, ctype, body = await self._route(method, url.path, exclude)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _route(self, method: str, path: str, exclude: frozenset[str]) -> tuple[str, str, bytes]:
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/healthz":
            problem = self._alive()
            if problem is not None:
                return "503 Service Unavailable", "text/plain", f"{problem}\n".encode()
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            ready, results = await self.readiness(exclude)
            text = "".join(f"{k}: {v}\n" for k, v in results.items()).encode()
            return ("200 OK" if ready else "503 Service Unavailable"), "text/plain", text
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(REGISTRY)
        return "404 Not Found", "text/plain", b"not found\n"
