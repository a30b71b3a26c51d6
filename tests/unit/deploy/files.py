"""Where the deployment files are (shared by the deploy tests and their fixtures)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = ROOT / "k8s"
SERVICES_DIR = ROOT / "services"
OVERLAYS = ("staging", "production")
# The image every Fordring service runs from in the compose stack (the sandbox has its own).
COMPOSE_IMAGE = "${FORDRING_IMAGE:-fordring:dev}"
