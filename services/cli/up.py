"""`fordring up`: the embedded stack in the foreground (supervised) or in the background (--detach)."""

from __future__ import annotations

import click

from services.cli.client import Connection
from services.cli.components import (
    DEFAULT_KAFKA_PORT,
    DEFAULT_MONGO_PORT,
    SERVICES,
    BrokerNotInstalledError,
    PortChoice,
    StackPlan,
    plan_stack,
    tansu_binary,
)
from services.cli.context import CliContext
from services.cli.demo import DEFAULT_COUNT, DEFAULT_SEED, demo_session
from services.cli.detached import start_detached
from services.cli.foreground import DemoRequest, run_foreground
from services.cli.home import Home
from services.cli.ports import port_problems
from services.cli.processes import pid_alive


@click.command()
@click.option(
    "--kafka-port",
    envvar="FORDRING_KAFKA_PORT",
    type=click.IntRange(1, 65535),
    default=DEFAULT_KAFKA_PORT,
    show_default=True,
    help="Port of the Kafka broker.",
)
@click.option(
    "--mongo-port",
    envvar="FORDRING_MONGO_PORT",
    type=click.IntRange(1, 65535),
    default=DEFAULT_MONGO_PORT,
    show_default=True,
    help="Port of the MongoDB server.",
)
@click.option(
    "--grpc-port",
    envvar="FORDRING_GRPC_PORT",
    type=click.IntRange(1, 65535),
    default=SERVICES[0].grpc_port,
    show_default=True,
    help="gRPC port of the ledger; further services take the ports after it.",
)
@click.option(
    "--http-port",
    envvar="FORDRING_HTTP_PORT",
    type=click.IntRange(1, 65535),
    default=SERVICES[0].http_port,
    show_default=True,
    help="HTTP port (health, metrics) of the ledger; further services take the ports after it.",
)
@click.option("--detach", is_flag=True, help="Run in the background; `fordring down` stops it.")
@click.option("--demo", is_flag=True, help="Once up, run the demo (an ERP sending a batch of invoices).")
@click.option(
    "--exit-after-demo", is_flag=True, help="Stop the stack after the demo; the exit code tells how it went."
)
@click.option("--demo-count", type=click.IntRange(1, 100_000), default=DEFAULT_COUNT, show_default=True)
@click.option("--demo-seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.pass_obj
def up(
    ctx: CliContext,
    *,
    kafka_port: int,
    mongo_port: int,
    grpc_port: int,
    http_port: int,
    detach: bool,
    demo: bool,
    exit_after_demo: bool,
    demo_count: int,
    demo_seed: int,
) -> None:
    """Start the broker, the database and every service on this machine."""
    if exit_after_demo and detach:
        raise click.UsageError(
            "--exit-after-demo stops the stack at the end: it cannot be combined with --detach"
        )
    demo_request = DemoRequest(demo_count, demo_seed) if demo or exit_after_demo else None
    home = ctx.home
    _refuse_running_stack(home)
    try:
        broker = tansu_binary()
    except BrokerNotInstalledError as exc:
        raise click.ClickException(str(exc)) from None
    ports = PortChoice(kafka=kafka_port, mongo=mongo_port, grpc=grpc_port, http=http_port)
    plan = plan_stack(home, ports, home.sandbox_api_key(), broker)
    problems = port_problems(claim for component in plan.components for claim in component.ports)
    if problems:
        raise click.ClickException("\n".join(problems))
    home.prepare()
    if detach:
        code = start_detached(plan, ports, ctx.console)
        if code == 0 and demo_request is not None:
            code = _run_demo_here(ctx, plan, demo_request)
    else:
        code = run_foreground(plan, ctx.console, demo_request, exit_after_demo=exit_after_demo)
    ctx.exit(code)


def _refuse_running_stack(home: Home) -> None:
    record = home.read_stack()
    if record is None:
        return
    supervisor = int(dict(record.get("pids", {})).get("supervisor", 0))
    if supervisor and pid_alive(supervisor):
        raise click.ClickException(
            f"a stack is already running from {home.root} (supervisor pid {supervisor}, started "
            f"{record.get('started_at', '?')}) — `fordring down` stops it, "
            "or set FORDRING_HOME for another one"
        )
    home.stack_file.unlink(missing_ok=True)


def _run_demo_here(ctx: CliContext, plan: StackPlan, demo: DemoRequest) -> int:
    targets = {spec.name: f"127.0.0.1:{spec.grpc_port}" for spec in plan.services if spec.grpc_port}
    connection = Connection(targets["ledger"], plan.api_key, targets=targets)
    session = demo_session(
        connection,
        ctx.console,
        count=demo.count,
        seed=demo.seed,
        concurrency=16,
        sandbox_url=plan.sandbox_url,
        home=plan.home,
    )
    return 0 if ctx.run(session) else 1
