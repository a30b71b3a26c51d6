"""Reading PromQL as Prometheus does (PyPI promql-parser): the series a query selects, with their
label matchers, and the labels it groups by."""

from __future__ import annotations

import re
from dataclasses import dataclass

import promql_parser

# Series that come from a Kafka exporter (Strimzi's Kafka Exporter; kafka-exporter in the compose
# stack), not from a Fordring service: consumer lag and the topics' offsets. Any other name a
# dashboard or an alert uses must be exported by a service.
KAFKA_EXPORTER = frozenset(
    {"kafka_consumergroup_lag", "kafka_topic_partition_current_offset", "kafka_topic_partition_oldest_offset"}
)
# Prometheus' own per-target series.
SCRAPE = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"})


@dataclass(frozen=True)
class Selector:
    name: str
    labels: dict[str, str]  # equality matchers only


@dataclass(frozen=True)
class Query:
    selectors: list[Selector]
    grouping: set[str]


def without_grafana_variables(expr: str) -> str:
    """A dashboard's query as Grafana sends it: `$__rate_interval` and the like are durations, a
    dashboard variable (`$service`) a regex."""
    return re.sub(r"\$\{?\w+\}?", ".*", re.sub(r"\$__\w+", "5m", expr))


def read(expr: str) -> Query:
    """`expr` parsed (a syntax error raises ValueError), with what it selects and groups by.
    Grafana's variables are taken for what Grafana puts in their place."""
    tree = promql_parser.parse(without_grafana_variables(expr))
    selectors: list[Selector] = []
    grouping: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            labels = {
                m.name: m.value
                for m in node.matchers.matchers
                if str(m.op) == str(promql_parser.MatchOp.Equal)
            }
            selectors.append(Selector(node.name or labels.get("__name__", ""), labels))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping.update(node.modifier.labels)

    promql_parser.walk(tree, pre_visit=visit)
    return Query(selectors, grouping)
