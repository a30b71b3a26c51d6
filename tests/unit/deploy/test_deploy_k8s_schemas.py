"""Every object of every overlay, as kustomize builds it, is valid against the Kubernetes schemas
(kubernetes-validate, strict: an unknown or misspelt field fails), on the oldest Kubernetes the docs
support and the newest the validator knows. Objects of custom resources (Strimzi, the Prometheus
operator, Gateway API) have no schema there: their kinds are listed here, and
test_deploy_k8s_components.py checks their fields; any other kind without a schema fails."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="PyPI kubernetes-validate")
import kubernetes_validate.utils as kv_utils  # type: ignore[import-untyped]  # noqa: E402

# docs/deploy.md: "Kubernetes 1.27 or later" (native gRPC probes).
OLDEST = "1.27.0"
NEWEST = kv_utils.latest_version()
# The custom resources the overlays may use, (apiVersion, kind).
CUSTOM = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("gateway.networking.k8s.io/v1", "GRPCRoute"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
}


@pytest.fixture(scope="module", autouse=True)
def _schemas_read_once() -> Iterator[None]:
    """kubernetes-validate reads its schema files from disk at every object (1.7 s an overlay); read
    each once for the module (a few hundred ms in all)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            kv_utils, "schema_contents", functools.lru_cache(maxsize=None)(kv_utils.schema_contents)
        )
        yield


def name(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
def test_every_object_is_valid_for_kubernetes(
    overlay: tuple[str, list[dict[str, Any]]], version: str
) -> None:
    overlay_name, objects = overlay
    errors = []
    custom = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            errors.append(f"{name(obj)}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            if (obj["apiVersion"], obj["kind"]) not in CUSTOM:
                errors.append(f"{name(obj)}: no schema for {obj['apiVersion']} {obj['kind']}")
            custom.append(obj)
    assert not errors, f"k8s/overlays/{overlay_name} on Kubernetes {version}:\n" + "\n".join(errors)
    assert len(custom) < len(objects)
