"""The Kubernetes manifests: every service of the compose stack is in the base, and each overlay, as
kustomize builds it, gives every service the shape the component promises (non-root, read-only root,
no capabilities, gRPC probes, resources, Services, HPA on CPU, PDB, its own ServiceAccount), with
every ConfigMap and Secret it refers to named consistently."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.unit.deploy.files import K8S, service_specs

Objects = list[dict[str, Any]]


def base_services() -> dict[str, dict[str, Any]]:
    """k8s/base/<service>/kustomization.yaml by service, for the services the base lists."""
    base = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())
    return {
        name: yaml.safe_load((K8S / "base" / name / "kustomization.yaml").read_text())
        for name in base["resources"]
    }


def literals(kustomization: dict[str, Any], configmap: str) -> dict[str, str]:
    (generator,) = [g for g in kustomization.get("configMapGenerator", []) if g["name"] == configmap]
    return dict(entry.split("=", 1) for entry in generator["literals"])


def by_kind(objects: Objects, kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_the_base_lists_every_service_of_the_stack(fordring_services: dict[str, dict[str, Any]]) -> None:
    services = base_services()
    assert set(services) == set(fordring_services) == set(service_specs())
    for name, kustomization in services.items():
        values = yaml.safe_load((K8S / "base" / name / "values.yaml").read_text())
        assert values["kind"] == "FordringService"
        assert values["metadata"]["name"] == name
        assert "../../components/fordring-service" in kustomization["components"], name
        settings = literals(kustomization, f"{name}-config")
        assert settings["FORDRING_MONGO_DATABASE"] == f"fordring_{name}", name
        compose_env = fordring_services[name]["environment"]
        for variable, value in settings.items():
            if variable.endswith("_TARGET"):
                # In the cluster: every pod of the service, per call (its headless Service).
                assert variable in compose_env, f"{name}: {variable} is not set in the compose stack"
                host = compose_env[variable].rpartition(":")[0]
                assert value == f"dns:///{host}-headless:50051", f"{name}: {variable}={value}"


def test_the_matcher_reaches_every_ledger_pod() -> None:
    kustomization = base_services()["matcher"]
    assert (
        literals(kustomization, "matcher-config")["FORDRING_LEDGER_TARGET"] == "dns:///ledger-headless:50051"
    )


def test_dunning_reaches_every_ledger_pod_and_writes_no_files_by_default() -> None:
    """Its collection files are served over gRPC; written to disk only with a shared volume (one a
    replica alone would strand files on)."""
    settings = literals(base_services()["dunning"], "dunning-config")
    assert settings["FORDRING_LEDGER_TARGET"] == "dns:///ledger-headless:50051"
    assert "FORDRING_EXPORT_DIR" not in settings


def test_dunning_runs_in_several_replicas(overlay: tuple[str, Objects]) -> None:
    """Its step timers are claimed with leases and fenced: replicas share them, none acts twice."""
    name, objects = overlay
    deployment = by_kind(objects, "Deployment")["dunning"]
    assert deployment["spec"]["replicas"] >= 2, name
    assert by_kind(objects, "HorizontalPodAutoscaler")["dunning"]["spec"]["minReplicas"] >= 2, name
    assert by_kind(objects, "PodDisruptionBudget")["dunning"]["spec"]["minAvailable"] >= 1, name


def test_every_service_has_the_components_shape(overlay: tuple[str, Objects]) -> None:
    name, objects = overlay
    deployments = by_kind(objects, "Deployment")
    services = by_kind(objects, "Service")
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    pdbs = by_kind(objects, "PodDisruptionBudget")
    accounts = by_kind(objects, "ServiceAccount")
    specs = service_specs()
    assert set(deployments) == set(specs), f"{name}: deployed {sorted(deployments)}"
    for service, deployment in deployments.items():
        where = f"{name}/{service}"
        labels = deployment["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == service, where
        assert labels["app.kubernetes.io/part-of"] == "fordring", where
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == service, where
        assert service in accounts, where
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        (container,) = pod["containers"]
        assert container["args"] == [f"services.{service}"], where
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, where
        assert security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"] == {"drop": ["ALL"]}, where
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        spec = specs[service]
        if spec.grpc_port:
            assert {"grpc": 50051, "http": 8081}.items() <= ports.items(), where
            assert container["livenessProbe"]["grpc"]["port"] == 50051, where
            assert container["startupProbe"]["grpc"]["port"] == 50051, where
            assert services[f"{service}-headless"]["spec"]["clusterIP"] == "None", where
        else:
            # HTTP only (the portal): one port, HTTP probes, no headless Service.
            assert ports == {"http": spec.http_port}, where
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, where
            assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, where
            assert f"{service}-headless" not in services, where
            annotations = deployment["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/port"] == str(spec.http_port), where
        assert container["readinessProbe"]["httpGet"]["port"] == "http", where
        assert container["readinessProbe"]["httpGet"]["path"].startswith("/readyz"), where
        resources = container["resources"]
        for bound in ("requests", "limits"):
            assert set(resources[bound]) == {"cpu", "memory"}, where
        env = {e["name"]: e for e in container["env"]}
        assert env["FORDRING_SERVICE_NAME"]["value"] == env["OTEL_SERVICE_NAME"]["value"] == service, where
        secret = env["FORDRING_MONGO_URI"]["valueFrom"]["secretKeyRef"]["name"]
        assert secret == f"{service}-secrets", where
        assert env["FORDRING_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "fordring-shared", where
        configmaps = by_kind(objects, "ConfigMap")
        refs = [e["configMapRef"]["name"] for e in container["envFrom"]]
        assert [r.rsplit("-", 1)[0] for r in refs] == ["fordring-common", f"{service}-config"], where
        assert all(ref in configmaps for ref in refs), where

        assert services[service]["spec"]["selector"] == {"app.kubernetes.io/name": service}, where
        service_ports = {p["name"]: p["port"] for p in services[service]["spec"]["ports"]}
        assert service_ports == {k: v for k, v in ports.items() if k in ("grpc", "http")}, where
        hpa = hpas[service]
        assert hpa["spec"]["scaleTargetRef"]["name"] == service, where
        assert deployment["spec"]["replicas"] == hpa["spec"]["minReplicas"], where
        assert pdbs[service]["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": service}, where


def test_no_service_scales_beyond_the_partitions(overlay: tuple[str, Objects], topic_script: str) -> None:
    """Consumers beyond a topic's partition count sit idle (create-topics.sh's default count)."""
    name, objects = overlay
    match = re.search(r'^PARTITIONS="\$\{PARTITIONS:-(\d+)\}"', topic_script, re.MULTILINE)
    assert match
    for hpa in by_kind(objects, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["maxReplicas"] <= int(match.group(1)), f"{name}/{hpa['metadata']['name']}"


def test_the_matcher_keeps_its_memory_in_every_overlay(overlay: tuple[str, Objects]) -> None:
    """The overlays size every service alike; the matcher's in-memory open-item index needs more, so
    its own patch must come after theirs."""
    name, objects = overlay
    deployments = by_kind(objects, "Deployment")

    def memory_limit(service: str) -> int:
        (container,) = deployments[service]["spec"]["template"]["spec"]["containers"]
        value: str = container["resources"]["limits"]["memory"]
        quantity = re.fullmatch(r"(\d+)(Mi|Gi)", value)
        assert quantity, f"{name}/{service}: memory limit {value}"
        return int(quantity.group(1)) * (1024 if quantity.group(2) == "Gi" else 1)

    assert memory_limit("matcher") > memory_limit("ledger"), name
