"""The dispatcher's e-mail channel against raw SMTP to the same sandbox, in the same run.

    make bench                 # or: python -m bench.dispatcher_email --count 1000

On an embedded broker and database, a ledger, a renderer and the channel sandbox (each its own
process, as `fordring up` runs them; the sandbox keeps every mail and opens none) take N invoices
to consumers who consented to e-mail, and the renderer renders them all while no dispatcher runs.
Then, in the same run:
1. the dispatcher: a replica starts on that backlog, collects the renderer's announcements, plans
   every document onto e-mail and sends each over SMTP with its PDF. It runs as its own process,
   as in production and like the sandbox it sends to: in this one it would share an event loop
   and a core with the watching, and its CPU could not be told apart. Timed by its own records,
   from the first announcement it takes in to the last delivery sent (its consumers joining their
   groups, seconds once per start, is shown but not timed);
2. raw SMTP: the very messages the sandbox received from it, each under a new Message-ID, sent
   again by a bare aiosmtplib loop over as many persistent connections as the adapter's pool.
Target: the dispatcher at >= 50 % of the raw SMTP rate, with its production settings
(send_concurrency 32, send_batch 128, smtp_connections 8) unless told. The CPU each process spent
in each run is printed per message: on a small machine it says where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from subprocess import Popen
from typing import Any

import aiosmtplib
import grpc
from fordring.ledger.v1 import ledger_pb2_grpc
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from rich.console import Console
from rich.table import Table

from services.cli.demo_data import generate_invoices
from services.cli.invoice_format import to_request
from services.cli.probes import HttpProbe, Probe
from services.cli.processes import spawn, stop_processes, tail
from services.common.events import (
    DELIVERY_TOPIC,
    DLQ_SUFFIX,
    DOCUMENT_TOPIC,
    DUNNING_TOPIC,
    INVOICE_TOPIC,
    PAYMENT_TOPIC,
)
from services.common.outbox import OUTBOX
from services.renderer.store import FILES
from tests.support.backends import embedded_backend, free_port
from tests.support.kafka import create_topics

TARGET = 0.50
HOST = "127.0.0.1"
PREFIX = "bench."
PROVIDERS = ("email", "sms", "peppol", "efaktura", "vipps", "print", "avtalegiro")
SERVICES = ("ledger", "renderer", "dispatcher")
_MESSAGE_ID = re.compile(rb"^Message-ID: <([^>@]+)@", re.IGNORECASE | re.MULTILINE)
_HEADERS = BytesHeaderParser()
console = Console()


@dataclass(frozen=True)
class Phase:
    count: int
    seconds: float
    # CPU seconds each process spent during the phase (children folded into their parent).
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds


# --- processes -------------------------------------------------------------------------------------


def _label(pid: int) -> str:
    """A child by what it runs: `python -m services.ledger` is "ledger"."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return str(pid)
    module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else Path(argv[0]).name
    if module.startswith(("tansu", "services.cli.embedded_kafka")):
        return "broker (Tansu)"
    if module == "services.cli.embedded_mongo":
        return "database (SecantusDB)"
    return module.removeprefix("services.")


def _process_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process and of each child with its descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    own: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        own[pid] = (int(fields[11]) + int(fields[12])) / tick
    me = os.getpid()
    totals: dict[str, float] = {"bench (this process)": own.get(me, 0.0)}
    for pid, seconds in own.items():
        top = pid
        while parent.get(top, 0) not in (me, 0, 1):
            top = parent[top]
        if parent.get(top) == me:
            label = _label(top)
            totals[label] = totals.get(label, 0.0) + seconds
    return totals


def _spent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after if after[name] > before.get(name, 0)}


class Children:
    """The services this benchmark starts, each logging to <workdir>/<name>.log; all stopped at the end."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._running: dict[str, Popen[bytes]] = {}

    def start(self, name: str, module: str, env: Mapping[str, str]) -> Popen[bytes]:
        process = spawn((sys.executable, "-m", module), env, self._workdir / f"{name}.log")
        self._running[name] = process
        return process

    def stop(self, name: str) -> None:
        stop_processes([self._running.pop(name)], grace=20.0)

    def stop_all(self) -> None:
        stop_processes(self._running.values(), grace=20.0)
        self._running.clear()

    def check(self, name: str) -> None:
        process = self._running[name]
        if process.poll() is not None:
            log = "\n".join(tail(self._workdir / f"{name}.log"))
            raise RuntimeError(f"the {name} exited ({process.returncode}):\n{log}")

    def wait_until(self, name: str, probe: Probe, patience: float = 120.0) -> None:
        deadline = time.monotonic() + patience
        while (problem := probe.check()) is not None:
            self.check(name)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {name} is not ready after {patience:.0f} s: {problem}")
            time.sleep(0.05)


@contextmanager
def children(workdir: Path) -> Iterator[Children]:
    started = Children(workdir)
    try:
        yield started
    finally:
        started.stop_all()


# --- the backlog -----------------------------------------------------------------------------------


def consumer_invoices(count: int) -> list[dict[str, Any]]:
    """`count` realistic invoices to consumers who consented to e-mail (so the plan picks e-mail)."""
    records = [
        r
        for r in generate_invoices(count * 2 + 10, seed=7, today=date.today())
        if r["customer"]["kind"] == "consumer"
    ][:count]
    if len(records) < count:
        raise RuntimeError(f"the demo data gave {len(records)} consumer invoices, not {count}")
    for record in records:
        record["customer"]["consents"] = {"email": True}
    return records


async def issue(target: str, api_key: str, records: list[dict[str, Any]], concurrency: int = 16) -> None:
    requests = iter([to_request(r) for r in records])
    metadata = (("authorization", f"Bearer {api_key}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)

        async def client() -> None:
            for request in requests:
                await stub.IssueInvoice(request, metadata=metadata, timeout=60)

        await asyncio.gather(*(client() for _ in range(concurrency)))


async def rendered(db: AsyncDatabase[dict[str, Any]], count: int, patience: float = 900.0) -> None:
    """Until the renderer has stored every invoice's PDF and published every announcement."""
    deadline = time.monotonic() + patience
    while True:
        pdfs = await db[FILES].count_documents({"metadata.form": "pdf"})
        unsent = await db[OUTBOX].count_documents({"sent": False})
        if pdfs >= count and unsent == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the renderer stored {pdfs} of {count} PDFs in {patience:.0f} s")
        await asyncio.sleep(0.5)


# --- the two runs ----------------------------------------------------------------------------------


async def dispatch(
    db: AsyncDatabase[dict[str, Any]],
    started: Children,
    env: Mapping[str, str],
    mail_dir: Path,
    count: int,
) -> tuple[Phase, dict[str, float]]:
    """Start the dispatcher on the backlog and wait until every delivery is `delivered`; the
    phase's time is from the first announcement it took in to the last delivery sent."""
    spawned = time.perf_counter()
    started.start("dispatcher", "services.dispatcher", env)
    started.wait_until("dispatcher", HttpProbe(HOST, int(env["FORDRING_HTTP_PORT"]), timeout=0.5))
    ready, ready_at = time.perf_counter(), datetime.now(UTC)
    while not await db["renderings"].find_one({}, projection={"_id": 1}):
        started.check("dispatcher")
        if time.perf_counter() - ready > 120:
            raise RuntimeError("the dispatcher took in no announcement in 120 s")
        await asyncio.sleep(0.1)
    cpu = _process_cpu()
    # Watched through the sandbox's mail folder: counting deliveries by status (not indexed) over
    # and over would take the database's time from the dispatcher.
    done, progress_at = 0, time.perf_counter()
    while done < count:
        await asyncio.sleep(0.1)
        started.check("dispatcher")
        now_done = _mails_kept(mail_dir)
        if now_done > done:
            done, progress_at = now_done, time.perf_counter()
        elif time.perf_counter() - progress_at > 120:
            raise RuntimeError(f"no mail for 120 s: the sandbox has {done} of {count}")
    while (delivered := await db["deliveries"].count_documents({"status": "delivered"})) < count:
        if time.perf_counter() - progress_at > 120:
            statuses = await db["deliveries"].distinct("status")
            raise RuntimeError(f"{delivered} of {count} deliveries recorded `delivered` ({statuses})")
        await asyncio.sleep(0.5)
    wall = time.perf_counter() - ready
    spent = _spent(cpu, _process_cpu())
    started.stop("dispatcher")
    docs = await db["deliveries"].find({}, {"created_at": 1, "sent_at": 1, "channel": 1}).to_list()
    if len(docs) != count or any(d["channel"] != "email" for d in docs):
        raise RuntimeError(f"expected {count} e-mail deliveries, found {len(docs)}")
    first_in = await db["renderings"].find_one({}, sort=[("seen_at", 1)], projection={"seen_at": 1})
    assert first_in is not None
    began: datetime = first_in["seen_at"]
    created = sorted(d["created_at"] for d in docs)
    sent = sorted(d["sent_at"] for d in docs)

    def since(moment: datetime) -> float:
        return (moment - began).total_seconds()

    timeline = {
        "ready_after_start_seconds": ready - spawned,
        "first_announcement_after_ready_seconds": (began - ready_at).total_seconds(),
        "wall_from_ready_seconds": wall,
        "first_planned_seconds": since(created[0]),
        "all_planned_seconds": since(created[-1]),
        "first_sent_seconds": since(sent[0]),
        "all_sent_seconds": since(sent[-1]),
        "queued_to_sent_p50_seconds": statistics.median(
            (d["sent_at"] - d["created_at"]).total_seconds() for d in docs
        ),
    }
    return Phase(count, since(sent[-1]), spent), timeline


def _mails_kept(mail_dir: Path) -> int:
    if not mail_dir.exists():  # made at the first mail
        return 0
    return sum(1 for entry in os.scandir(mail_dir) if entry.name.endswith(".eml"))


@dataclass(frozen=True)
class Mail:
    sender: str
    recipient: str
    raw: bytes


def sent_again(mail_dir: Path) -> list[Mail]:
    """The messages the sandbox kept, each under a new Message-ID (so it is not a duplicate)."""
    mails = []
    for path in sorted(mail_dir.glob("*.eml")):
        raw = path.read_bytes()
        headers = _HEADERS.parsebytes(raw)
        (_, sender), (_, recipient) = (getaddresses([str(headers[name])])[0] for name in ("From", "To"))
        raw = _MESSAGE_ID.sub(lambda m: b"Message-ID: <raw-" + m.group(1) + b"@", raw, count=1)
        mails.append(Mail(sender, recipient, raw))
    return mails


async def raw_smtp(port: int, mails: list[Mail], connections: int) -> Phase:
    """The same messages over `connections` persistent SMTP connections, one transaction at a time each."""
    queue = iter(mails)
    clients = [aiosmtplib.SMTP(hostname=HOST, port=port, start_tls=False) for _ in range(connections)]
    for client in clients:
        await client.connect()

    async def send(client: aiosmtplib.SMTP) -> None:
        for mail in queue:
            await client.sendmail(mail.sender, [mail.recipient], mail.raw)

    cpu, started = _process_cpu(), time.perf_counter()
    await asyncio.gather(*(send(c) for c in clients))
    seconds = time.perf_counter() - started
    phase = Phase(len(mails), seconds, _spent(cpu, _process_cpu()))
    for client in clients:
        await client.quit()
    return phase


# --- the run ---------------------------------------------------------------------------------------


def _secret() -> str:
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Stack:
    """Ports, secrets and each process's environment (what `fordring up` gives them)."""

    work: Path
    kafka_bootstrap: str
    mongo_uri: str
    ports: dict[str, int]
    token: str = field(default_factory=_secret)
    link_secret: str = field(default_factory=_secret)
    api_key: str = field(default_factory=_secret)
    webhook_secrets: str = field(
        default_factory=lambda: ",".join(f"{name}={_secret()}" for name in PROVIDERS)
    )

    @property
    def sandbox_root(self) -> Path:
        return self.work / "sandbox"

    @property
    def public_url(self) -> str:
        return f"http://{HOST}:{self.ports['public']}"

    def sandbox(self) -> dict[str, str]:
        root = self.sandbox_root
        return {
            "FORDRING_SANDBOX_HOST": HOST,
            "FORDRING_SANDBOX_HTTP_PORT": str(self.ports["sandbox"]),
            "FORDRING_SANDBOX_SMTP_PORT": str(self.ports["smtp"]),
            "FORDRING_SANDBOX_ROOT": str(root),
            "FORDRING_SANDBOX_PRINT_DROP": str(root / "print-drop"),
            "FORDRING_SANDBOX_NETS_DIR": str(root / "nets"),
            "FORDRING_SANDBOX_WEBHOOK_URL": self.public_url,
            "FORDRING_SANDBOX_WEBHOOK_SECRETS": self.webhook_secrets,
            # The simulated customer opens nothing: every delivery stays `delivered`.
            "FORDRING_SANDBOX_OPEN_AFTER": "0",
            "FORDRING_SANDBOX_LOG_LEVEL": "WARNING",
        }

    def service(self, name: str, **own: str) -> dict[str, str]:
        return {
            "FORDRING_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "FORDRING_MONGO_URI": self.mongo_uri,
            "FORDRING_MONGO_DATABASE": f"bench_{name}",
            "FORDRING_TOPIC_PREFIX": PREFIX,
            "FORDRING_GRPC_HOST": HOST,
            "FORDRING_GRPC_PORT": str(self.ports[f"{name}_grpc"]),
            "FORDRING_HTTP_HOST": HOST,
            "FORDRING_HTTP_PORT": str(self.ports[f"{name}_http"]),
            "FORDRING_SANDBOX_API_KEY": self.api_key,
            "FORDRING_SERVICE_TOKEN": self.token,
            "FORDRING_LINK_SECRET": self.link_secret,
            "FORDRING_LEDGER_TARGET": f"{HOST}:{self.ports['ledger_grpc']}",
            "FORDRING_RENDERER_TARGET": f"{HOST}:{self.ports['renderer_grpc']}",
            "FORDRING_LOG_LEVEL": "WARNING",
            **{f"FORDRING_{key.upper()}": value for key, value in own.items()},
        }

    def dispatcher(self, args: argparse.Namespace) -> dict[str, str]:
        sandbox_url = f"http://{HOST}:{self.ports['sandbox']}"
        return self.service(
            "dispatcher",
            public_host=HOST,
            public_port=str(self.ports["public"]),
            public_url=self.public_url,
            webhook_secrets=self.webhook_secrets,
            smtp_host=HOST,
            smtp_port=str(self.ports["smtp"]),
            sms_url=sandbox_url,
            peppol_url=sandbox_url,
            efaktura_url=sandbox_url,
            vipps_url=sandbox_url,
            print_drop=str(self.sandbox_root / "print-drop"),
            nets_dir=str(self.sandbox_root / "nets"),
            send_concurrency=str(args.send_concurrency),
            send_batch=str(args.send_batch),
            smtp_connections=str(args.smtp_connections),
        )


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="fordring-bench-dispatch-") as work,
        embedded_backend(Path(work)) as backend,
        children(Path(work)) as started,
    ):
        names = [INVOICE_TOPIC, DOCUMENT_TOPIC, PAYMENT_TOPIC, DUNNING_TOPIC, DELIVERY_TOPIC]
        dlqs = [INVOICE_TOPIC + DLQ_SUFFIX, DOCUMENT_TOPIC + DLQ_SUFFIX]
        await create_topics(backend.kafka_bootstrap, [PREFIX + name for name in [*names, *dlqs]])
        ports = ("public", "sandbox", "smtp", *(f"{s}_{p}" for s in SERVICES for p in ("grpc", "http")))
        stack = Stack(Path(work), backend.kafka_bootstrap, backend.mongo_uri, {n: free_port() for n in ports})
        started.start("sandbox", "services.sandbox", stack.sandbox())
        started.start("ledger", "services.ledger", stack.service("ledger"))
        started.start("renderer", "services.renderer", stack.service("renderer", portal_url=stack.public_url))
        started.wait_until("sandbox", HttpProbe(HOST, stack.ports["sandbox"], path="/healthz"))
        for name in ("ledger", "renderer"):
            started.wait_until(name, HttpProbe(HOST, stack.ports[f"{name}_http"]))
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(backend.mongo_uri, tz_aware=True)
        mail_dir = stack.sandbox_root / "email"
        try:
            console.print(f"issuing {args.count} invoices to consumers who consented to e-mail …")
            await issue(f"{HOST}:{stack.ports['ledger_grpc']}", stack.api_key, consumer_invoices(args.count))
            console.print("waiting for the renderer to render them all …")
            await rendered(mongo["bench_renderer"], args.count)
            console.print(f"1. the dispatcher on {args.count} rendered documents …")
            dispatched, timeline = await dispatch(
                mongo["bench_dispatcher"], started, stack.dispatcher(args), mail_dir, args.count
            )
            console.print(f"2. raw SMTP: the same {args.count} messages again …")
            mails = sent_again(mail_dir)
            if len(mails) != args.count:
                raise RuntimeError(f"the sandbox kept {len(mails)} mails, not {args.count}")
            raw = await raw_smtp(stack.ports["smtp"], mails, args.smtp_connections)
            if (kept := _mails_kept(mail_dir)) != 2 * args.count:
                raise RuntimeError(f"the sandbox kept {kept} mails after the raw run, not {2 * args.count}")
        finally:
            await mongo.close()
    return {
        "count": args.count,
        "cores": os.cpu_count(),
        "settings": {
            "send_concurrency": args.send_concurrency,
            "send_batch": args.send_batch,
            "smtp_connections": args.smtp_connections,
        },
        "dispatcher_per_second": dispatched.rate,
        "dispatcher_seconds": dispatched.seconds,
        "raw_smtp_per_second": raw.rate,
        "raw_smtp_seconds": raw.seconds,
        "ratio": dispatched.rate / raw.rate,
        "mean_message_bytes": sum(len(m.raw) for m in mails) / len(mails),
        "dispatcher_timeline": timeline,
        "dispatcher_cpu_seconds": dispatched.cpu,
        "raw_smtp_cpu_seconds": raw.cpu,
    }


def report(result: dict[str, Any]) -> None:
    timeline, kib = result["dispatcher_timeline"], result["mean_message_bytes"] / 1024
    console.print(
        f"{result['count']} invoices by e-mail, each with its PDF (~{kib:.0f} KiB a message), "
        f"{result['cores']} cores shared by every process:\n"
        f"                 per second\n"
        f"  raw SMTP       {result['raw_smtp_per_second']:10.1f}   "
        f"({result['settings']['smtp_connections']} persistent connections, the messages prebuilt)\n"
        f"  dispatcher     {result['dispatcher_per_second']:10.1f}   "
        "(announcements in, planned, built, sent, recorded `delivered`)\n"
        f"  ratio          {result['ratio']:10.2f}   (target >= {TARGET:.2f})"
    )
    console.print(
        f"the dispatcher answered /readyz {timeline['ready_after_start_seconds']:.1f} s after its start "
        f"and took in its first announcement {timeline['first_announcement_after_ready_seconds']:.1f} s "
        "later (its consumers joining their groups: not timed). From there: first delivery planned at "
        f"{timeline['first_planned_seconds']:.1f} s, sent at {timeline['first_sent_seconds']:.1f} s; "
        f"all planned at {timeline['all_planned_seconds']:.1f} s, all sent at "
        f"{timeline['all_sent_seconds']:.1f} s; queued to sent p50 "
        f"{timeline['queued_to_sent_p50_seconds']:.1f} s."
    )
    console.print(_cpu_table(result))


def _cpu_table(result: dict[str, Any]) -> Table:
    table = Table(title="CPU milliseconds per message, by process", title_justify="left")
    table.add_column("process")
    table.add_column("dispatcher run", justify="right")
    table.add_column("raw SMTP run", justify="right")
    count = result["count"]
    dispatched, raw = result["dispatcher_cpu_seconds"], result["raw_smtp_cpu_seconds"]
    for name in sorted(set(dispatched) | set(raw), key=lambda n: -dispatched.get(n, 0.0)):
        table.add_row(
            name,
            f"{dispatched.get(name, 0.0) * 1000 / count:.1f}",
            f"{raw.get(name, 0.0) * 1000 / count:.1f}",
        )
    table.add_row(
        "all",
        f"{sum(dispatched.values()) * 1000 / count:.1f}",
        f"{sum(raw.values()) * 1000 / count:.1f}",
        style="bold",
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000, help="documents queued for e-mail")
    parser.add_argument("--send-concurrency", type=int, default=32)
    parser.add_argument("--send-batch", type=int, default=128)
    parser.add_argument("--smtp-connections", type=int, default=8)
    parser.add_argument("--out", default="bench/results/dispatcher_email.json")
    args = parser.parse_args()
    result = asyncio.run(measure(args))
    report(result)
    ok = result["ratio"] >= TARGET
    console.print("[green]target met[/]" if ok else "[red]target missed[/]")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
