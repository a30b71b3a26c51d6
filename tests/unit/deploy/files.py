"""Where the deployment files are (shared by the deploy tests and their fixtures)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.cli.components import ServiceSpec

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = ROOT / "k8s"
SERVICES_DIR = ROOT / "services"
OVERLAYS = ("staging", "production")
# The Grafana dashboards the compose stack provisions (and a cluster's Grafana loads).
DASHBOARDS = sorted((DEPLOY / "grafana/dashboards").glob("*.json"))
# The compose stack and its layers, in the order they are given to `docker compose -f`.
COMPOSE_FILES = ("compose.yaml", "compose.observability.yaml")
# The image every Fordring service runs from in the compose stack (deploy/.env; the sandbox has its own).
COMPOSE_IMAGE = "fordring:dev"


def compose_env() -> dict[str, str]:
    """The environment to run Compose in: without the FORDRING_* variables of whoever runs the tests,
    which would win over deploy/.env."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("FORDRING_", "COMPOSE_"))}


def published_topics() -> set[str]:
    """Every topic the services publish to, from the code's topic constants (`*_TOPIC` in
    services/common/events.py), each with its dead-letter sibling (consumers publish poison messages
    there)."""
    from services.common import events

    topics = {
        value for key, value in vars(events).items() if key.endswith("_TOPIC") and isinstance(value, str)
    }
    return topics | {topic + events.DLQ_SUFFIX for topic in topics}


def service_specs() -> dict[str, ServiceSpec]:
    """Every Fordring service as `fordring up` runs it (services/cli/components.py), by name: the list
    the compose stack, Prometheus' targets and the Kubernetes base must each cover."""
    from services.cli.components import SERVICES

    return {spec.name: spec for spec in SERVICES}
