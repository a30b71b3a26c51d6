"""Health probes for the stack's components: each answers None when healthy, else the reason it is not."""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from typing import Protocol

from pymongo import MongoClient
from pymongo.errors import PyMongoError


class Probe(Protocol):
    @property
    def target(self) -> str: ...

    def check(self) -> str | None: ...


@dataclass(frozen=True)
class TcpProbe:
    """The broker is ready as soon as it accepts connections (Tansu in memory starts in milliseconds)."""

    host: str
    port: int
    timeout: float = 0.5

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def check(self) -> str | None:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout):
                return None
        except OSError as exc:
            return f"no connection to {self.target} ({exc.strerror or exc})"


@dataclass(frozen=True)
class MongoProbe:
    uri: str
    timeout: float = 0.5

    @property
    def target(self) -> str:
        return self.uri

    def check(self) -> str | None:
        millis = int(self.timeout * 1000)
        try:
            client: MongoClient[dict[str, object]] = MongoClient(
                self.uri, serverSelectionTimeoutMS=millis, connectTimeoutMS=millis, socketTimeoutMS=millis
            )
            with client:
                client.admin.command("ping")
        except PyMongoError as exc:
            return f"ping failed: {type(exc).__name__}"
        return None


@dataclass(frozen=True)
class HttpProbe:
    """A service's readiness endpoint: 200 when its broker and database are reachable."""

    host: str
    port: int
    path: str = "/readyz"
    timeout: float = 1.0

    @property
    def target(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def check(self) -> str | None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request("GET", self.path)
            response = connection.getresponse()
            body = response.read(200).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException) as exc:
            return f"no answer from {self.target} ({getattr(exc, 'strerror', None) or exc})"
        finally:
            connection.close()
        if response.status != 200:
            return f"{self.target} answered {response.status} {body}".rstrip()
        return None
