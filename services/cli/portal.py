"""`fordring portal`: the portal's own administration, straight on its database (the portal has no
gRPC API): console accounts with a role per tenant."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Final

import click

from services.cli.context import CliContext
from services.cli.home import Home
from services.common.mongo import create_mongo_client
from services.portal.console.accounts import MIN_PASSWORD, ROLES, AccountError, Accounts
from services.portal.settings import PortalSettings

DEMO_EMAIL: Final = "operator@sandbox.fordring.test"
DATABASE_DEFAULT: Final = PortalSettings.model_fields["mongo_database"].default


async def add_account(
    mongo_uri: str, database: str, email: str, password: str, *, tenant_id: str, role: str, name: str
) -> str:
    client = create_mongo_client(mongo_uri, app_name="fordring-cli")
    try:
        account = await Accounts(client[database]).add(
            email, password, tenant_id=tenant_id, role=role, name=name, now=datetime.now(UTC)
        )
    finally:
        await client.close()
    return account.email


def ensure_demo_login(home: Home, mongo_uri: str) -> tuple[str, str]:
    """The local stack's console login: an administrator of the sandbox tenant (its password made once
    and kept in the stack's folder, like the sandbox API key)."""
    # The ledger's wiring is heavy to import: only here, when `fordring up` prints the login.
    from services.ledger.app import SANDBOX_TENANT_ID

    password = home.secret("console")
    asyncio.run(
        add_account(
            mongo_uri,
            DATABASE_DEFAULT,
            DEMO_EMAIL,
            password,
            tenant_id=SANDBOX_TENANT_ID,
            role="admin",
            name="Sandbox operator",
        )
    )
    return DEMO_EMAIL, password


@click.group()
def portal() -> None:
    """The portal: console accounts."""


@portal.group()
def account() -> None:
    """Console accounts (customer service, operators, administrators)."""


@account.command("add")
@click.argument("email")
@click.option("--tenant", "tenant_id", required=True, help="The tenant the account acts for.")
@click.option("--role", type=click.Choice(ROLES), default="customer_service", show_default=True)
@click.option("--name", default="", help="Shown in the console and on notes it writes.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (else it is asked for)."
)
@click.option(
    "--mongo-uri",
    envvar="FORDRING_MONGO_URI",
    help="The portal's MongoDB.  [default: the local stack's]",
)
@click.option("--database", envvar="FORDRING_PORTAL_DATABASE", default=DATABASE_DEFAULT, show_default=True)
@click.pass_obj
def add(
    ctx: CliContext,
    *,
    email: str,
    tenant_id: str,
    role: str,
    name: str,
    password_stdin: bool,
    mongo_uri: str | None,
    database: str,
) -> None:
    """Add a console account, or give an existing one ROLE on TENANT (and this password)."""
    uri = mongo_uri or str((ctx.home.read_stack() or {}).get("mongo", ""))
    if not uri:
        raise click.ClickException("no local stack is running: give --mongo-uri (or FORDRING_MONGO_URI)")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt(
            f"Password (at least {MIN_PASSWORD} characters)", hide_input=True, confirmation_prompt=True
        )
    try:
        added = asyncio.run(
            add_account(uri, database, email, password, tenant_id=tenant_id, role=role, name=name)
        )
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    ctx.console.print(f"{added}: {role} of tenant {tenant_id}", highlight=False)
