"""The Grafana dashboard: well formed, and every Fordring series it plots is one a service exports,
under the name Prometheus shows it (`_total` for counters, `_bucket` for histograms).

The names a service exports are read from the code (every `create_counter`, `create_histogram`,
`create_observable_gauge`, … under services/) and put through OpenTelemetry's own Prometheus
exporter, the one every service's /metrics serves: a panel on a misspelt or renamed metric, or a
counter without `_total`, fails here instead of staying empty in Grafana."""

from __future__ import annotations

import ast
import functools
import json
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from tests.unit.deploy.files import DASHBOARDS, DEPLOY, ROOT, SERVICES_DIR
from tests.unit.deploy.promql import KAFKA_EXPORTER, SCRAPE, read

SERIES = re.compile(r"\bfordring_[a-z0-9_]+\b")
_KINDS = {
    "create_counter": "counter",
    "create_observable_counter": "counter",
    "create_up_down_counter": "gauge",
    "create_observable_up_down_counter": "gauge",
    "create_gauge": "gauge",
    "create_observable_gauge": "gauge",
    "create_histogram": "histogram",
}


@dataclass(frozen=True)
class Instrument:
    name: str
    kind: str  # counter, gauge, histogram
    unit: str
    where: str


# Metrics the dashboard plots ahead of the code that exports them, declared as that code will
# (the matcher's, meter "fordring.matcher"). Each is checked like the exported ones (a counter must
# be plotted with `_total`, a histogram with `_bucket`). Once the code defines one, the code's
# definition is used and must agree with this declaration, and a warning asks for the entry to be
# taken off: an entry left here would keep a panel "exported" after the code renamed or dropped it.
PENDING: tuple[Instrument, ...] = ()


def _string(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def instruments_in_code() -> list[Instrument]:
    found = []
    for path in sorted(SERVICES_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _KINDS
            ):
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            name = _string(node.args[0] if node.args else keywords.get("name"))
            if name is None:
                continue
            unit = _string(keywords.get("unit")) or ""
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            found.append(Instrument(name, _KINDS[node.func.attr], unit, where))
    return found


def exposed_series(instruments: Iterable[Instrument]) -> dict[str, Instrument]:
    """Every series name Prometheus scrapes for these instruments, through the services' exporter."""
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    meter = provider.get_meter("tests.deploy")
    by_family: dict[str, Instrument] = {}

    def one(_: CallbackOptions) -> Iterator[Observation]:
        yield Observation(1)

    for instrument in instruments:
        by_family[instrument.name] = instrument
        if instrument.kind == "counter":
            meter.create_counter(instrument.name, unit=instrument.unit).add(1)
        elif instrument.kind == "histogram":
            meter.create_histogram(instrument.name, unit=instrument.unit).record(1)
        else:
            meter.create_observable_gauge(instrument.name, [one], unit=instrument.unit)
    try:
        text = generate_latest(registry).decode()
    finally:
        provider.shutdown()
    series: dict[str, Instrument] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith("fordring_"):
            continue
        name = re.split(r"[{ ]", line, maxsplit=1)[0]
        family = next(f for f in sorted(by_family, key=len, reverse=True) if name.startswith(f))
        series[name] = by_family[family]
    return series


def panel_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def panel_exprs_by_title(dashboard: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    for panel in dashboard["panels"]:
        yield panel["title"], [t["expr"] for t in panel.get("targets", [])]


@functools.cache
def exported_series() -> frozenset[str]:
    """What the services export, as Prometheus names it (read from the code once per session), and
    the process and Python runtime series prometheus_client adds on every /metrics (its default
    registry, the one the side port serves)."""
    runtime = {
        sample.name
        for family in REGISTRY.collect()
        for sample in family.samples
        if not sample.name.startswith("fordring_")
    }
    return frozenset(exposed_series(with_pending(instruments_in_code()))) | runtime


def test_panels_have_unique_ids_and_do_not_overlap(any_dashboard: dict[str, Any]) -> None:
    panels = any_dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "two panels share an id"
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_dashboards_have_their_own_uids() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids)), uids
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/fordring.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards", "the directory is loaded"


def test_every_query_reads_the_provisioned_prometheus(any_dashboard: dict[str, Any]) -> None:
    provisioned = (DEPLOY / "grafana/provisioning/datasources/datasources.yaml").read_text()
    assert "uid: prometheus" in provisioned
    for panel in any_dashboard["panels"]:
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]


def test_every_query_parses_and_reads_series_that_exist(any_dashboard: dict[str, Any]) -> None:
    """Each query as Prometheus parses it (promql-parser): a Fordring series must be one a service
    exports, limited to the services' job; any other must be a process series every /metrics has,
    come from the Kafka exporter, or be Prometheus' own (`up`, `scrape_*`)."""
    exported = exported_series()
    problems = []
    for title, expr in panel_exprs(any_dashboard):
        try:
            query = read(expr)
        except ValueError as error:
            problems.append(f"{title}: does not parse: {error}")
            continue
        assert query.selectors, title
        for selector in query.selectors:
            if selector.name.startswith("fordring_"):
                if selector.name not in exported:
                    problems.append(f"{title}: no service exports {selector.name}")
                if selector.labels.get("job") != "fordring" and "job" not in expr:
                    problems.append(f"{title}: {selector.name} not limited to job=fordring")
            elif selector.name not in exported | KAFKA_EXPORTER | SCRAPE:
                problems.append(f"{title}: where does {selector.name} come from?")
    assert not problems, "\n".join(problems)


def test_the_pipeline_dashboard_follows_the_invoices_road(pipeline_dashboard: dict[str, Any]) -> None:
    exprs = dict(panel_exprs_by_title(pipeline_dashboard))
    wanted = {
        "Throughput per stage": {
            "fordring_invoices_issued_total",
            "fordring_documents_rendered_total",
            "fordring_deliveries_total",
            "fordring_payments_applied_total",
            "fordring_dunning_steps_proposed_total",
        },
        "Latency issue → delivered, by stage": {
            "fordring_render_seconds_bucket",
            "fordring_provider_seconds_bucket",
            "fordring_outbox_oldest_unsent_seconds",
        },
        "Deliveries by channel and result": {"fordring_deliveries_total"},
        "Auto-match rate (24 h)": {"fordring_matcher_payments_total"},
        "Reminders by stage (24 h)": {"fordring_dunning_steps_proposed_total"},
        "Consumer lag": {"kafka_consumergroup_lag"},
        "Dead-letter topics": {"kafka_topic_partition_current_offset", "fordring_events_dead_lettered_total"},
        "Error rates": {
            "fordring_deliveries_total",
            "fordring_proposals_total",
            "fordring_outbox_publish_errors_total",
        },
    }
    for title, names in wanted.items():
        assert title in exprs, f"no panel {title!r}"
        selected = {s.name for expr in exprs[title] for s in read(expr).selectors}
        assert names <= selected, f"{title}: {sorted(names - selected)}"
    grouped = {label for expr in exprs["Deliveries by channel and result"] for label in read(expr).grouping}
    assert {"channel", "result"} <= grouped
    assert "step" in {label for expr in exprs["Reminders by stage (24 h)"] for label in read(expr).grouping}


def with_pending(code: list[Instrument]) -> list[Instrument]:
    defined = {i.name for i in code}
    return [*code, *(p for p in PENDING if p.name not in defined)]


def test_every_plotted_series_is_exported(dashboard: dict[str, Any]) -> None:
    exported = exposed_series(with_pending(instruments_in_code()))
    missing = [
        f"{title}: {name}"
        for title, expr in panel_exprs(dashboard)
        for name in SERIES.findall(expr)
        if name not in exported
    ]
    assert not missing, "series no service exports (as Prometheus names them):\n" + "\n".join(missing)


def test_pending_metrics_agree_with_the_code_that_defines_them() -> None:
    defined = {i.name: i for i in instruments_in_code()}
    for pending in PENDING:
        code = defined.get(pending.name)
        if code is None:
            continue
        assert (code.kind, code.unit) == (pending.kind, pending.unit), (
            f"{pending.name} is a {code.kind} with unit {code.unit!r} in {code.where}, but the dashboard "
            f"was made for a {pending.kind} with unit {pending.unit!r}"
        )
        warnings.warn(
            f"{pending.name} is defined in {code.where} now: take it off PENDING in "
            "tests/unit/deploy/test_deploy_dashboard.py",
            stacklevel=1,
        )


def test_the_matcher_has_its_panels(dashboard: dict[str, Any]) -> None:
    plotted = {name for _, expr in panel_exprs(dashboard) for name in SERIES.findall(expr)}
    assert {
        "fordring_matcher_payments_total",
        "fordring_matcher_imports_total",
        "fordring_matcher_import_seconds_bucket",
        "fordring_matcher_review_queue",
        "fordring_matcher_open_items",
        "fordring_proposals_total",
        "fordring_payments_applied_total",
    } <= plotted


def test_the_dunning_service_has_its_panels(dashboard: dict[str, Any]) -> None:
    exprs = [expr for _, expr in panel_exprs(dashboard)]
    plotted = {name for expr in exprs for name in SERIES.findall(expr)}
    assert {
        "fordring_dunning_decisions_total",
        "fordring_dunning_steps_proposed_total",
        "fordring_dunning_held",
        "fordring_dunning_steps_due",
        "fordring_dunning_steps_late_seconds",
    } <= plotted
    assert any("fordring_timers_fired_total{" in e and 'kind="dunning-step"' in e for e in exprs)


def test_the_reader_finds_what_the_services_export() -> None:
    """The code scan itself: it sees the ledger's and the dispatcher's metrics, as they are scraped."""
    series = exposed_series(instruments_in_code())
    assert "fordring_invoices_issued_total" in series
    assert "fordring_render_seconds_bucket" in series
    assert "fordring_outbox_unsent" in series
    assert "fordring_invoices_issued" not in series
