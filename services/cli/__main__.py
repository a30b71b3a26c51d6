"""The `fordring` command."""

from __future__ import annotations

import os
from pathlib import Path

import click

from services.cli.client import service_targets_from_env
from services.cli.context import CliContext
from services.cli.customers import customers
from services.cli.deliveries import deliveries
from services.cli.demo import demo
from services.cli.down import down
from services.cli.dunning import dunning
from services.cli.home import Home
from services.cli.invoices import invoices
from services.cli.payments import payments
from services.cli.portal import portal
from services.cli.sandbox_clock import sandbox
from services.cli.status import status
from services.cli.up import up


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FORDRING_HOME",
    help="State folder of the local stack.  [default: ./.fordring]",
)
@click.option(
    "--target",
    envvar="FORDRING_TARGET",
    metavar="HOST:PORT",
    help="Where the services are: one gRPC address that routes by service name (an ingress), or the "
    "ledger's.  [default: each service's address in the local stack's stack.json]",
)
@click.option(
    "--service-target",
    "service_targets",
    multiple=True,
    metavar="SERVICE=HOST:PORT",
    help="One service somewhere else (repeatable), e.g. renderer=renderer.internal:50052; also "
    "FORDRING_<SERVICE>_TARGET.",
)
@click.option(
    "--api-key",
    envvar="FORDRING_API_KEY",
    help="Sent as `authorization: Bearer <key>`.  [default: the local stack's sandbox key]",
)
@click.option("--tls/--plaintext", envvar="FORDRING_TLS", default=False, help="TLS to the target.")
@click.pass_context
def cli(
    ctx: click.Context,
    home: Path | None,
    target: str | None,
    service_targets: tuple[str, ...],
    api_key: str | None,
    tls: bool,
) -> None:
    """Fordring: invoice-to-cash for the Nordics.

    `fordring up` runs everything on this machine; the other commands are a gRPC client, like an ERP.
    """
    overrides = service_targets_from_env(os.environ)
    for item in service_targets:
        name, sep, address = item.partition("=")
        if not sep or not name.strip() or ":" not in address:
            raise click.BadParameter(f"{item!r}: expected SERVICE=HOST:PORT", param_hint="--service-target")
        overrides[name.strip().lower()] = address.strip()
    ctx.obj = CliContext(
        home=Home.resolve(home), target=target, api_key=api_key, tls=tls, service_targets=overrides
    )


for command in (up, status, down, demo, invoices, customers, deliveries, payments, dunning, sandbox, portal):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="fordring")


if __name__ == "__main__":
    main()
