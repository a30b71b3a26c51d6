"""The stack in the foreground: start, report, supervise until Ctrl-C or SIGTERM, then stop in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

from rich.console import Console

from services.cli.components import StackPlan
from services.cli.processes import spawn_attached, stop_processes
from services.cli.ready import print_ready
from services.cli.supervisor import GaveUpError, StartupFailedError, StartupInterruptedError, Supervisor


@dataclass(frozen=True)
class DemoRequest:
    count: int
    seed: int


def run_foreground(
    plan: StackPlan, console: Console, demo: DemoRequest | None, *, exit_after_demo: bool
) -> int:
    stop = threading.Event()
    started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def write_stack(pids: dict[str, int]) -> None:
        plan.home.write_stack(plan.record({"supervisor": os.getpid(), **pids}, started_at))

    supervisor = Supervisor(plan, console, stop, on_pids_changed=write_stack)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            supervisor.hurry = True
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    console.print(f"Starting Fordring from [bold]{plan.home.root}[/bold]", highlight=False)
    try:
        supervisor.start()
    except StartupFailedError as failure:
        log = plan.home.log(failure.component.name)
        console.print()
        console.print(f"[red]{failure.component.label} {failure.reason}[/red]", highlight=False)
        console.print(f"Last lines of {log}:", highlight=False)
        for line in failure.log_tail:
            console.print(f"  {line}", highlight=False, markup=False)
        supervisor.stop_all()
        return 1
    except StartupInterruptedError:
        supervisor.stop_all()
        console.print("stopped before it was up.")
        return 0

    write_stack(supervisor.pids())
    print_ready(console, plan)
    demo_process = _start_demo_process(plan, demo) if demo is not None else None
    if demo_process is None:
        console.print("Serving — Ctrl-C stops everything.")
    code = 0
    try:
        while not stop.is_set():
            supervisor.step()
            if demo_process is not None and demo_process.poll() is not None:
                succeeded = demo_process.returncode == 0
                demo_process = None
                if exit_after_demo:
                    code = 0 if succeeded else 1
                    break
                if not succeeded:
                    console.print("[red]The demo failed[/red] (see above); the stack keeps running.")
                console.print("Serving — Ctrl-C stops everything.")
            stop.wait(0.25)
    except GaveUpError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        code = 1
    finally:
        if demo_process is not None:
            stop_processes([demo_process], grace=5.0)
        supervisor.stop_all()
        plan.home.remove_stack(os.getpid())
    console.print("Fordring stopped.")
    return code


def _start_demo_process(plan: StackPlan, demo: DemoRequest) -> subprocess.Popen[bytes]:
    """The demo runs as its own process, a client like any ERP, so the supervisor stays free of gRPC."""
    argv = [
        sys.executable,
        "-m",
        "services.cli",
        "demo",
        "--count",
        str(demo.count),
        "--seed",
        str(demo.seed),
    ]
    return spawn_attached(
        argv,
        {
            "FORDRING_HOME": str(plan.home.root),
            "FORDRING_API_KEY": plan.api_key,
            **{
                f"FORDRING_{spec.name.upper()}_TARGET": f"127.0.0.1:{spec.grpc_port}"
                for spec in plan.services
                if spec.grpc_port
            },
        },
    )
