"""The overlays' components, as kustomize builds them: deny-all network policies with exactly the
allows each service needs, the ServiceMonitor, the Strimzi KafkaTopics (every topic the code
publishes to), the Gateway API routes (every public gRPC service by name, the customers' host), and
the HPAs (CPU, or the consumer lag of the groups the code really subscribes with). These custom
resources have no schema in kubernetes-validate: this module is what checks them."""

from __future__ import annotations

import ast
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from services.common import events
from tests.unit.deploy.files import ROOT, SERVICES_DIR, published_topics, service_specs
from tests.unit.deploy.test_deploy_compose import settings_class
from tests.unit.deploy.test_deploy_k8s import by_kind

Objects = list[dict[str, Any]]
# gRPC services only the other services call (with the service credential): never routed from outside.
INTERNAL_GRPC = {"fordring.ledger.v1.TenantDirectoryService", "fordring.dispatcher.v1.InvoiceLinkService"}
# Scaled on Kafka consumer lag (their work arrives as events); the rest on CPU.
LAG_SCALED = {"dispatcher", "dunning"}
LAG_METRIC = "kafka_consumergroup_lag"


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert not selector.get("matchExpressions"), "the policies here select by matchLabels only"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def container_ports(deployment: dict[str, Any]) -> dict[str, int]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def policies_for(objects: Objects, labels: dict[str, str], kind: str) -> list[dict[str, Any]]:
    return [
        p
        for p in by_kind(objects, "NetworkPolicy").values()
        if kind in p["spec"]["policyTypes"] and matches(p["spec"]["podSelector"], labels)
    ]


def ingress_peers(objects: Objects, deployment: dict[str, Any], port: str) -> list[dict[str, Any]]:
    """Every `from` peer some policy allows into the deployment's pods on its port named `port`."""
    labels, ports = pod_labels(deployment), container_ports(deployment)
    peers = []
    for policy in policies_for(objects, labels, "Ingress"):
        for rule in policy["spec"].get("ingress", []):
            allowed = {p["port"] for p in rule.get("ports", [])}
            if not allowed or port in allowed or ports.get(port) in allowed:
                peers.extend(rule.get("from", [{}]))
    return peers


def egress_ports(objects: Objects, deployment: dict[str, Any]) -> set[int | str]:
    found: set[int | str] = set()
    for policy in policies_for(objects, pod_labels(deployment), "Egress"):
        for rule in policy["spec"].get("egress", []):
            found |= {p["port"] for p in rule.get("ports", [])}
    return found


def namespace_of(peer: dict[str, Any]) -> str | None:
    selector = peer.get("namespaceSelector")
    if selector is None:
        return None
    name: str = selector["matchLabels"]["kubernetes.io/metadata.name"]
    return name


def configmap(objects: Objects, prefix: str) -> dict[str, str]:
    (found,) = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(prefix + "-")
    ]
    data: dict[str, str] = found["data"]
    return data


def test_everything_is_denied_unless_allowed(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    deny = by_kind(objects, "NetworkPolicy")["default-deny"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, name


def test_each_service_is_reached_only_the_ways_it_serves(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    specs = service_specs()
    for service, deployment in by_kind(objects, "Deployment").items():
        where = f"{name}/{service}"
        spec = specs[service]
        metrics = [namespace_of(p) for p in ingress_peers(objects, deployment, "http")]
        assert "monitoring" in metrics, f"{where}: Prometheus cannot scrape /metrics"
        if spec.grpc_port:
            grpc = ingress_peers(objects, deployment, "grpc")
            assert {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "fordring"}}} in grpc, where
            assert "gateway" in [namespace_of(p) for p in grpc], f"{where}: the Gateway cannot route gRPC"
        if spec.public_port:
            public = [namespace_of(p) for p in ingress_peers(objects, deployment, "public")]
            assert public == ["gateway"], f"{where}: the public port is open to {public}"
        if not spec.grpc_port:
            assert "gateway" in metrics, f"{where}: the Gateway cannot reach the pages"
        else:
            assert "gateway" not in metrics, f"{where}: the side port is open to the Gateway"
        # Every rule names its peers (no rule open to the whole world on a port).
        for policy in policies_for(objects, pod_labels(deployment), "Ingress"):
            for rule in policy["spec"].get("ingress", []):
                assert rule.get("from"), f"{where}: {policy['metadata']['name']} lets anyone in"
        out = egress_ports(objects, deployment)
        assert {53, 9092, 27017, 4317, 50051} <= out, f"{where}: egress {sorted(map(str, out))}"
        providers = {443, 465, 587}
        assert (providers <= out) == (service == "dispatcher"), (
            f"{where}: only the dispatcher calls providers"
        )


def test_prometheus_scrapes_every_service(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    (monitor,) = by_kind(objects, "ServiceMonitor").values()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics"), name
    scraped = [
        s
        for s in by_kind(objects, "Service").values()
        if matches(monitor["spec"]["selector"], s["metadata"]["labels"])
        and any(p["name"] == "http" for p in s["spec"]["ports"])
    ]
    assert sorted(s["metadata"]["name"] for s in scraped) == sorted(service_specs()), name
    job = [r for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    assert job == [{"targetLabel": "job", "replacement": "fordring"}], "dashboards select job=fordring"


def test_every_topic_the_code_publishes_to_is_a_kafka_topic(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    topics = {t["spec"]["topicName"]: t for t in objects if t["kind"] == "KafkaTopic"}
    assert set(topics) == published_topics(), name
    bootstrap = configmap(objects, "fordring-common")["FORDRING_KAFKA_BOOTSTRAP"]
    assert not configmap(objects, "fordring-common")["FORDRING_TOPIC_PREFIX"], "topics are unprefixed here"
    max_replicas = max(h["spec"]["maxReplicas"] for h in by_kind(objects, "HorizontalPodAutoscaler").values())
    for topic_name, topic in topics.items():
        where = f"{name}/{topic_name}"
        spec = topic["spec"]
        # Strimzi names the bootstrap Service <cluster>-kafka-bootstrap: the topics go to that cluster.
        cluster = topic["metadata"]["labels"]["strimzi.io/cluster"]
        assert bootstrap.startswith(f"{cluster}-kafka-bootstrap."), f"{where}: cluster {cluster}, {bootstrap}"
        assert spec["replicas"] >= 3, where
        assert spec["config"]["min.insync.replicas"] == spec["replicas"] - 1, where
        assert spec["config"]["retention.ms"] >= 7 * 86_400_000, where
        if not topic_name.endswith(events.DLQ_SUFFIX):
            assert spec["partitions"] >= max_replicas, f"{where}: replicas beyond the partitions sit idle"


def grpc_services() -> dict[str, str]:
    """Every gRPC service declared in proto/, full name -> its area (fordring.<area>.v1)."""
    found = {}
    for path in sorted((ROOT / "proto").rglob("*.proto")):
        text = path.read_text()
        package = re.search(r"^package\s+([\w.]+);", text, re.MULTILINE)
        assert package, path
        for service in re.findall(r"^service\s+(\w+)\s*\{", text, re.MULTILINE):
            found[f"{package.group(1)}.{service}"] = package.group(1).split(".")[1]
    return found


def test_one_grpc_target_routes_by_service_name(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    (route,) = by_kind(objects, "GRPCRoute").values()
    services = by_kind(objects, "Service")
    routed: dict[str, tuple[str, int]] = {}
    for rule in route["spec"]["rules"]:
        (backend,) = rule["backendRefs"]
        for match in rule["matches"]:
            assert match["method"]["type"] == "Exact"
            assert "method" not in match["method"], "whole services are routed, not single methods"
            routed[match["method"]["service"]] = (backend["name"], backend["port"])
    declared = grpc_services()
    public = {full: area for full, area in declared.items() if full not in INTERNAL_GRPC}
    missing = sorted(set(public) - set(routed))
    assert not missing, f"{name}: not routed (add them to grpc.yaml, or to INTERNAL_GRPC): {missing}"
    assert not set(routed) & INTERNAL_GRPC, f"{name}: an internal API is routed from outside"
    for full, (backend, port) in routed.items():
        # fordring.<area>.v1.<Service> is served by the service named <area>.
        assert backend == full.split(".")[1], f"{name}: {full} goes to {backend}"
        assert port in [p["port"] for p in services[backend]["spec"]["ports"] if p["name"] == "grpc"], full
    assert route["spec"]["hostnames"], name


def test_the_customers_host_serves_the_portal_and_the_webhooks(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    (route,) = by_kind(objects, "HTTPRoute").values()
    (host,) = route["spec"]["hostnames"]
    printed = {
        configmap(objects, "portal-config")["FORDRING_PUBLIC_URL"],
        configmap(objects, "dispatcher-config")["FORDRING_PUBLIC_URL"],
        configmap(objects, "renderer-config")["FORDRING_PORTAL_URL"],
    }
    assert {urlsplit(url).hostname for url in printed} == {host}, f"{name}: {printed} vs {host}"
    assert all(url.startswith("https://") for url in printed), name
    services = by_kind(objects, "Service")
    paths = {}
    for rule in route["spec"]["rules"]:
        ((backend,), (match,)) = rule["backendRefs"], rule["matches"]
        paths[match["path"]["value"]] = (backend["name"], backend["port"])
        assert backend["port"] in [p["port"] for p in services[backend["name"]]["spec"]["ports"]], name
    assert paths == {"/webhooks/": ("dispatcher-public", 8084), "/": ("portal", 8090)}, name


def subscribed_groups(service: str) -> set[str]:
    """The consumer groups a service's handlers join: `<consumer_group>.<topic>` (services/common/bus.py)."""
    group = settings_class(service).model_fields["consumer_group"].default
    path = SERVICES_DIR / service / "handlers.py"
    topics = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and any(k.arg == "group_id" for k in node.keywords):
            names = [a.id for a in node.args if isinstance(a, ast.Name) and a.id.endswith("_TOPIC")]
            assert len(names) == 1, f"{path}:{node.lineno}: which topic?"
            topics.add(getattr(events, names[0]))
    return {f"{group}.{topic}" for topic in topics}


@pytest.mark.parametrize("service", sorted(LAG_SCALED))
def test_the_lag_scaled_services_read_the_groups_they_join(service: str) -> None:
    assert subscribed_groups(service), service


def test_hpas_scale_on_cpu_or_consumer_lag(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    for service, hpa in by_kind(objects, "HorizontalPodAutoscaler").items():
        where = f"{name}/{service}"
        (metric,) = hpa["spec"]["metrics"]
        if service not in LAG_SCALED:
            assert metric["type"] == "Resource", where
            assert metric["resource"]["name"] == "cpu", where
            continue
        assert metric["type"] == "External", where
        external = metric["external"]
        assert external["metric"]["name"] == LAG_METRIC, where
        (expression,) = external["metric"]["selector"]["matchExpressions"]
        assert (expression["key"], expression["operator"]) == ("consumergroup", "In"), where
        assert set(expression["values"]) == subscribed_groups(service), where
        assert external["target"]["type"] == "AverageValue", where
