"""`fordring down`: stop the local stack that `fordring up` started."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import click

from services.cli.context import CliContext
from services.cli.processes import pid_alive, wait_for_pid_exit

SUPERVISOR_WAIT = 90.0
CHILD_GRACE = 15.0
# What the stack's children run; a pid from stack.json whose command line shows none of these is not ours.
_OUR_COMMANDS = ("tansu", "secantus", "services.")


@click.command()
@click.pass_obj
def down(ctx: CliContext) -> None:
    """Stop the local stack: the supervisor stops the services, then the broker and the database."""
    record = ctx.home.read_stack()
    if record is None:
        ctx.console.print(f"Nothing to stop: no stack.json in {ctx.home.root}.", highlight=False)
        return
    pids = {name: int(pid) for name, pid in dict(record.get("pids", {})).items()}
    supervisor = pids.pop("supervisor", 0)
    if supervisor and pid_alive(supervisor):
        os.kill(supervisor, signal.SIGTERM)
        with ctx.console.status(f"Stopping the stack (supervisor pid {supervisor})"):
            stopped = wait_for_pid_exit(supervisor, SUPERVISOR_WAIT)
        if not stopped:
            ctx.errors.print(f"The supervisor did not stop within {SUPERVISOR_WAIT:.0f} s; killing it.")
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor, signal.SIGKILL)
    leftovers = [pid for pid in pids.values() if pid_alive(pid) and _is_ours(pid)]
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in leftovers:
        if not wait_for_pid_exit(pid, CHILD_GRACE):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    ctx.home.stack_file.unlink(missing_ok=True)
    ctx.console.print("Fordring stopped.")


def _is_ours(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(marker in command for marker in _OUR_COMMANDS)
