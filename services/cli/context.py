"""What every command gets: the state folder, where the ledger is, and the consoles."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import click
import grpc
from rich.console import Console

from services.cli import rpc_errors
from services.cli.client import Connection, ConnectionConfigError, resolve_connection
from services.cli.home import Home

T = TypeVar("T")


@dataclass
class CliContext:
    home: Home
    target: str | None = None
    api_key: str | None = None
    service_targets: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    console: Console = field(default_factory=Console)
    errors: Console = field(default_factory=lambda: Console(stderr=True))

    def connection(self) -> Connection:
        try:
            return resolve_connection(
                self.target, self.api_key, self.home, tls=self.tls, service_targets=self.service_targets
            )
        except ConnectionConfigError as exc:
            raise click.ClickException(str(exc)) from None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a client coroutine; a gRPC error is shown with its code and field violations, exit code 1."""
        try:
            return asyncio.run(coroutine)
        except grpc.aio.AioRpcError as error:
            self.fail_rpc(error)

    def fail_rpc(self, error: grpc.aio.AioRpcError) -> NoReturn:
        lines = rpc_errors.describe(error).lines()
        self.errors.print(f"[red]error[/red]: {lines[0]}", highlight=False)
        for line in lines[1:]:
            self.errors.print(line, highlight=False, markup=False)
        raise SystemExit(1)

    @staticmethod
    def exit(code: int) -> NoReturn:
        raise SystemExit(code)
