"""Our own rules for every overlay, whatever a service's base says: every container has resource
requests and limits and its probes, no image floats (`latest` or no tag at all), every pod runs as
a non-root user on a read-only root with no capabilities, and every topic the code publishes to is
declared with its dead-letter sibling."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.unit.deploy.files import published_topics

Objects = list[dict[str, Any]]
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def pod_specs(objects: Objects) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] not in WORKLOADS:
            continue
        template = obj["spec"]["template"]
        if obj["kind"] == "CronJob":
            template = obj["spec"]["jobTemplate"]["spec"]["template"]
        yield f"{obj['kind']}/{obj['metadata']['name']}", template["spec"]


def containers(objects: Objects) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for where, pod in pod_specs(objects):
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            yield f"{where}/{container['name']}", pod, container


def test_the_overlay_has_workloads(overlay: tuple[str, Objects]) -> None:
    assert list(containers(overlay[1])), overlay[0]


def test_every_container_has_requests_and_limits(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    for where, _, container in containers(objects):
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{name}: {where} has no {bound}"


def test_every_container_has_liveness_and_readiness_probes(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    for where, pod, container in containers(objects):
        if container in pod.get("initContainers", []):
            continue
        for probe in ("livenessProbe", "readinessProbe"):
            assert probe in container, f"{name}: {where} has no {probe}"


def test_no_image_floats(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    for where, _, container in containers(objects):
        image: str = container["image"]
        if "@sha256:" in image:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {where}: {image} has no tag"
        assert "/" not in tag, f"{name}: {where}: {image} has no tag"
        assert tag != "latest", f"{name}: {where}: {image}"


def test_every_pod_is_locked_down(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    for where, pod, container in containers(objects):
        assert pod["securityContext"]["runAsNonRoot"] is True, f"{name}: {where}"
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, f"{name}: {where}"
        assert security["allowPrivilegeEscalation"] is False, f"{name}: {where}"
        assert security["capabilities"]["drop"] == ["ALL"], f"{name}: {where}"
        assert not security["capabilities"].get("add"), f"{name}: {where}"


def test_the_code_publishes_to_known_topics() -> None:
    topics = published_topics()
    assert "fordring.ledger.invoice.v1" in topics
    assert "fordring.ledger.invoice.v1.dlq" in topics
