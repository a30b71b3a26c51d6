"""The dashboards and alerts against what running services really serve on /metrics.

The unit tests (tests/unit/deploy) read the metric names from the code and put them through the
services' exporter; this scrapes the session's running ledger, renderer and dispatcher (the
`dispatch_world` the dispatcher's integration tests share) after one invoice went the whole road,
and checks that model against reality: every Fordring series served is one the code scan predicts,
the pipeline's series are there, and every label a dashboard or an alert filters or groups a series
by is a label that series carries."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections import defaultdict

import pytest
import yaml
from fordring.ledger.v1 import ledger_pb2 as pb

from tests.support.dispatcher import DispatchWorld, consumer
from tests.support.ledger import invoice_request
from tests.unit.deploy.files import DASHBOARDS, DEPLOY
from tests.unit.deploy.promql import read
from tests.unit.deploy.test_deploy_dashboard import exposed_series, instruments_in_code

pytestmark = pytest.mark.integration

SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? ")
LABEL = re.compile(r'(\w+)="')
# Labels Prometheus adds to every series at scrape time, and the histogram's buckets.
TARGET_LABELS = {"job", "service", "instance", "le", "__name__"}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text: str = reply.read().decode()
        return text


def labels_by_series(text: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1).startswith("fordring_"):
            found[match.group(1)] |= set(LABEL.findall(match.group(2) or ""))
    return found


def queries() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            found += [(f"{path.stem}: {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
    for path in sorted((DEPLOY / "prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [(f"alert {r['alert']}", r["expr"]) for r in group["rules"] if "alert" in r]
    return found


async def test_what_the_services_serve_is_what_the_dashboards_read(dispatch_world: DispatchWorld) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    customer = consumer("C-METRICS", consents=pb.Consents(email=True))
    invoice = await tenant.issue(invoice_request(customer=customer))
    await world.wait_deliveries(
        tenant, invoice.id, lambda ds: any(d.status == "delivered" for d in ds), what="a delivery"
    )
    await tenant.pay(invoice, invoice.gross_total.minor_units)

    ports = [app.runtime.http.port for app in (world.ledger, world.renderer, world.dispatcher)]
    texts = await asyncio.gather(*(asyncio.to_thread(scrape, port) for port in ports))
    served: dict[str, set[str]] = defaultdict(set)
    for text in texts:
        for name, labels in labels_by_series(text).items():
            served[name] |= labels

    predicted = exposed_series(instruments_in_code())
    unknown = sorted(set(served) - set(predicted))
    assert not unknown, f"served but not found in the code by the unit tests' scan: {unknown}"
    assert {
        "fordring_invoices_issued_total",
        "fordring_documents_rendered_total",
        "fordring_render_seconds_bucket",
        "fordring_deliveries_total",
        "fordring_issued_to_delivered_seconds_bucket",
        "fordring_payments_applied_total",
        "fordring_events_published_total",
        "fordring_outbox_oldest_unsent_seconds",
    } <= set(served)

    wrong = []
    for where, expr in queries():
        query = read(expr)
        for selector in query.selectors:
            if selector.name not in served:
                continue  # nothing of it happened in this session: the unit tests check its name
            missing = set(selector.labels) - TARGET_LABELS - served[selector.name]
            if missing:
                wrong.append(f"{where}: {selector.name} has no label {sorted(missing)}")
        # Grouped by: labels the series carry (when every series of the query was served).
        if all(selector.name in served for selector in query.selectors):
            carried = set().union(*(served[selector.name] for selector in query.selectors))
            missing = query.grouping - TARGET_LABELS - carried
            if missing:
                wrong.append(f"{where}: grouped by {sorted(missing)}, which no series of it has")
    assert not wrong, "\n".join(wrong)
