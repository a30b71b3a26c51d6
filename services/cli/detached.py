"""`fordring up --detach`: the same supervisor in the background, waited for until it is healthy."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from services.cli.components import PortChoice, StackPlan
from services.cli.processes import RUN_MARKER, stop_processes, tail
from services.cli.ready import print_ready


def start_detached(plan: StackPlan, ports: PortChoice, console: Console) -> int:
    """Run `fordring up` as a background supervisor and return once stack.json says it is healthy."""
    log = plan.home.log("supervisor")
    argv = [
        sys.executable, "-m", "services.cli", "--home", str(plan.home.root), "up",
        "--kafka-port", str(ports.kafka), "--mongo-port", str(ports.mongo),
        "--grpc-port", str(ports.grpc), "--http-port", str(ports.http),
    ]  # fmt: skip
    with log.open("ab") as out:
        out.write(
            f"\n{RUN_MARKER}{datetime.now(UTC).isoformat(timespec='seconds')} fordring up --detach\n".encode()
        )
        out.flush()
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    timeout = sum(component.health_timeout for component in plan.components) + 30
    try:
        with console.status(f"Starting Fordring in the background (supervisor pid {process.pid}, log {log})"):
            failure = _wait_until_up(plan, process, log, timeout)
    except KeyboardInterrupt:
        console.print("Interrupted: stopping the background stack.")
        stop_processes([process], grace=60.0)
        return 130
    if failure:
        console.print(f"[red]{failure}[/red]", highlight=False)
        for line in tail(log, 30):
            console.print(f"  {line}", highlight=False, markup=False)
        return 1
    print_ready(console, plan, detached=True)
    return 0


def _wait_until_up(plan: StackPlan, process: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    """Empty once stack.json names this supervisor (written when all is healthy), else what went wrong."""
    deadline = time.monotonic() + timeout
    while True:
        record = plan.home.read_stack()
        if record is not None and dict(record.get("pids", {})).get("supervisor") == process.pid:
            return ""
        if process.poll() is not None:
            return f"The stack did not start — last lines of {log}:"
        if time.monotonic() > deadline:
            stop_processes([process], grace=60.0)
            return f"The stack was not up after {timeout:.0f} s — last lines of {log}:"
        time.sleep(0.2)
