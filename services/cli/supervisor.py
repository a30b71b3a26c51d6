"""Runs the stack's children: starts them tier by tier until healthy, restarts those that die, stops all."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table

from services.cli.components import Component, StackPlan, Tier
from services.cli.processes import describe_exit, spawn, stop_processes, tail

MAX_RESTARTS = 5
RESTART_WINDOW = 300.0
RESTART_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


class StartupFailedError(Exception):
    def __init__(self, component: Component, reason: str, log_tail: list[str]) -> None:
        super().__init__(f"{component.label} {reason}")
        self.component = component
        self.reason = reason
        self.log_tail = log_tail


class StartupInterruptedError(Exception):
    pass


class GaveUpError(Exception):
    pass


@dataclass
class _Child:
    component: Component
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    healthy: bool = False
    detail: str = "waiting"
    restart_at: float | None = None
    restarts: deque[float] = field(default_factory=deque)


class Supervisor:
    def __init__(
        self,
        plan: StackPlan,
        console: Console,
        stop: threading.Event,
        on_pids_changed: Callable[[dict[str, int]], None] = lambda pids: None,
    ) -> None:
        self._plan = plan
        self._console = console
        self._stop = stop
        self._on_pids_changed = on_pids_changed
        self._children = {component.name: _Child(component) for component in plan.components}
        self.hurry = False

    def pids(self) -> dict[str, int]:
        return {
            name: child.process.pid for name, child in self._children.items() if child.process is not None
        }

    def start(self) -> None:
        """Start every tier and wait until it is healthy, with a live line per component."""
        with Live(self._status_table(), console=self._console, refresh_per_second=8) as live:
            for tier in sorted(Tier):
                self._start_tier(tier, live)

    def _start_tier(self, tier: Tier, live: Live) -> None:
        children = [child for child in self._children.values() if child.component.tier == tier]
        for child in children:
            self._launch(child)
        pending = list(children)
        while pending:
            if self._stop.is_set():
                raise StartupInterruptedError
            for child in list(pending):
                self._check_starting(child)
                if child.healthy:
                    pending.remove(child)
            live.update(self._status_table())
            if pending:
                self._stop.wait(0.2)

    def _check_starting(self, child: _Child) -> None:
        assert child.process is not None
        component = child.component
        returncode = child.process.poll()
        if returncode is not None:
            child.detail = describe_exit(returncode)
            raise StartupFailedError(
                component, f"{describe_exit(returncode)} while starting", tail(self._log(component))
            )
        reason = component.probe.check()
        elapsed = time.monotonic() - child.started
        if reason is None:
            child.healthy = True
            child.detail = f"healthy after {elapsed:.1f} s"
        elif elapsed > component.health_timeout:
            raise StartupFailedError(
                component,
                f"was not healthy after {component.health_timeout:.0f} s: {reason}",
                tail(self._log(component)),
            )
        else:
            child.detail = reason

    def _status_table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        for name, child in self._children.items():
            pid = str(child.process.pid) if child.process is not None else ""
            if child.healthy:
                mark: Spinner | str = "[green]✓[/green]"
            elif child.process is None:
                mark = "[dim]·[/dim]"
            else:
                mark = Spinner("dots")
            table.add_row(
                mark, f"[bold]{name}[/bold]", child.component.label, pid, f"[dim]{child.detail}[/dim]"
            )
        return table

    def _log(self, component: Component) -> Path:
        return self._plan.home.log(component.name)

    def _launch(self, child: _Child) -> None:
        component = child.component
        child.process = spawn(component.argv, component.env, self._log(component))
        child.started = time.monotonic()
        child.healthy = False
        child.detail = "starting"

    def step(self) -> None:
        """One round of supervision: notice deaths, restart when their backoff is over, report recovery."""
        now = time.monotonic()
        for child in self._children.values():
            process = child.process
            if process is None:
                continue
            if child.restart_at is None and process.poll() is not None:
                self._schedule_restart(child, process.returncode, now)
            elif child.restart_at is not None and now >= child.restart_at:
                child.restart_at = None
                child.restarts.append(now)
                self._launch(child)
                self._say(f"{child.component.name} restarted (pid {process.pid} → {self._pid(child)})")
                self._on_pids_changed(self.pids())
            elif child.restart_at is None and not child.healthy and child.component.probe.check() is None:
                child.healthy = True
                self._say(f"{child.component.name} is healthy again")

    def _schedule_restart(self, child: _Child, returncode: int, now: float) -> None:
        name = child.component.name
        while child.restarts and now - child.restarts[0] > RESTART_WINDOW:
            child.restarts.popleft()
        if len(child.restarts) >= MAX_RESTARTS:
            log = self._log(child.component)
            last = "\n".join(f"    {line}" for line in tail(log))
            raise GaveUpError(
                f"{name} {describe_exit(returncode)} and has been restarted {MAX_RESTARTS} times in "
                f"{RESTART_WINDOW / 60:.0f} minutes: giving up. Last lines of {log}:\n{last}"
            )
        delay = RESTART_DELAYS[min(len(child.restarts), len(RESTART_DELAYS) - 1)]
        child.healthy = False
        child.restart_at = now + delay
        self._say(
            f"[yellow]{name} {describe_exit(returncode)}[/yellow] — restarting in {delay:g} s "
            f"(restart {len(child.restarts) + 1} of at most {MAX_RESTARTS}; "
            f"log: {self._log(child.component)})"
        )

    @staticmethod
    def _pid(child: _Child) -> int:
        return child.process.pid if child.process is not None else 0

    def _say(self, message: str) -> None:
        self._console.print(f"[dim]{datetime.now().astimezone():%H:%M:%S}[/dim] {message}", highlight=False)

    def stop_all(self) -> None:
        """Services first, then the broker and the database; SIGKILL whatever outlives its grace."""
        for tier in sorted(Tier, reverse=True):
            children = [
                child
                for child in self._children.values()
                if child.component.tier == tier and child.process is not None and child.process.poll() is None
            ]
            for child in self._children.values():
                child.restart_at = None
            if not children:
                continue
            names = ", ".join(child.component.name for child in children)
            grace = max(child.component.stop_grace for child in children)
            self._say(f"stopping {names}")
            stop_processes(
                (child.process for child in children if child.process is not None),
                grace=grace,
                hurry=lambda: self.hurry,
            )
            for child in children:
                assert child.process is not None
                if child.process.returncode not in (0, -15):
                    self._say(f"{child.component.name} {describe_exit(child.process.returncode)}")
