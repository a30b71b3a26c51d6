"""`fordring status`: is each component of the local stack alive and healthy?"""

from __future__ import annotations

import click
from rich.table import Table

from services.cli.components import probes_from_record
from services.cli.context import CliContext
from services.cli.processes import pid_alive


@click.command()
@click.pass_obj
def status(ctx: CliContext) -> None:
    """Report each component of the local stack; exit 1 if anything is down."""
    record = ctx.home.read_stack()
    if record is None:
        ctx.console.print(f"No stack is running from {ctx.home.root} (no stack.json).", highlight=False)
        ctx.exit(1)
    probes = probes_from_record(record)
    ctx.console.print(f"Stack in {ctx.home.root}, started {record.get('started_at', '?')}", highlight=False)
    table = Table()
    for column in ("Component", "PID", "Process", "Health"):
        table.add_column(column)
    all_well = True
    for name, pid in dict(record.get("pids", {})).items():
        alive = pid_alive(int(pid))
        probe = probes.get(name)
        problem = probe.check() if probe is not None and alive else None
        health = (
            "—"
            if probe is None
            else ("[green]healthy[/green]" if problem is None else f"[red]{problem}[/red]")
        )
        if not alive:
            health = "—"
        all_well = all_well and alive and problem is None
        table.add_row(name, str(pid), "[green]running[/green]" if alive else "[red]gone[/red]", health)
    ctx.console.print(table, highlight=False)
    ctx.exit(0 if all_well else 1)
