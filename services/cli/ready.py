"""What `fordring up` prints once the stack is healthy: where everything is and how to use it."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.cli.components import StackPlan
from services.cli.home import DEFAULT_HOME
from services.cli.portal import ensure_demo_login


def print_ready(console: Console, plan: StackPlan, *, detached: bool = False) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for spec in plan.services:
        if not spec.grpc_port:  # the portal: its API is HTTP
            table.add_row(
                f"{spec.name}", f"http://127.0.0.1:{spec.http_port}  (invoice pages /i/…; /readyz, /metrics)"
            )
            email, password = ensure_demo_login(plan.home, plan.mongo_uri)
            table.add_row(
                "console", f"http://127.0.0.1:{spec.http_port}/console/  (login {email} / {password})"
            )
            continue
        table.add_row(f"{spec.name} gRPC", f"127.0.0.1:{spec.grpc_port}")
        table.add_row(f"{spec.name} HTTP", f"http://127.0.0.1:{spec.http_port}  (/readyz, /metrics)")
        if spec.public_port:
            table.add_row(
                f"{spec.name} public", f"http://127.0.0.1:{spec.public_port}  (webhooks, invoice links /i/…)"
            )
    table.add_row("Kafka", plan.kafka_bootstrap)
    table.add_row("MongoDB", plan.mongo_uri)
    table.add_row("API key", f"{plan.api_key}  (sandbox tenant; kept in {plan.home.api_key_file})")
    table.add_row("Logs", f"{plan.home.logs}/")
    sandbox = plan.home.sandbox
    table.add_row(
        "Sandbox", f"{plan.sandbox_url}  (channel providers; /control/faults, /control/records/<channel>)"
    )
    table.add_row("  e-mail", f"{sandbox / 'email'}/  (every mail as .eml)")
    table.add_row("  print", f"{sandbox / 'print'}/  (letters the print house took from the drop)")
    table.add_row("  Nets", f"{sandbox / 'avtalegiro'}/  (AvtaleGiro claim files)")
    table.add_row("  records", f"{sandbox}/<channel>/records.jsonl  (SMS, EHF, eFaktura, Vipps, …)")
    table.add_row("Bank files", f"{plan.home.bank}/  (the demo's incoming payments, Nets OCR Giro)")
    table.add_row("Collection", f"{plan.home.collection}/  (claims handed to collection, a file a day)")
    console.print()
    console.print("[bold green]Fordring is up.[/bold green]")
    console.print(table, highlight=False)
    prefix = "" if plan.home.root == Path(DEFAULT_HOME).absolute() else f"FORDRING_HOME={plan.home.root} "
    console.print("\nTry it (the CLI finds the stack through stack.json):")
    for command in (
        "invoices list",
        "demo --count 50",
        "invoices show NUMBER",
        "invoices document NUMBER --kind pdf --out invoice.pdf",
        "deliveries list --invoice NUMBER",
        "deliveries deviations",
        "payments import FILE",
        "payments review",
        "dunning case NUMBER",
        "dunning held",
        "customers flagged",
        "status",
    ):
        console.print(f"  {prefix}fordring {command}", highlight=False)
    if detached:
        console.print(f"  {prefix}fordring down", highlight=False)
    console.print()
