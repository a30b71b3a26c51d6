"""The state folder of a local stack (FORDRING_HOME, default ./.fordring) and what lives in it."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_HOME = ".fordring"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, path: str | os.PathLike[str] | None) -> Home:
        return cls(Path(path or os.environ.get("FORDRING_HOME") or DEFAULT_HOME).expanduser().absolute())

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def mongo_data(self) -> Path:
        return self.root / "mongo"

    @property
    def sandbox(self) -> Path:
        """What the channel sandbox received: mail (.eml), print drop, Nets files, records."""
        return self.root / "sandbox"

    @property
    def bank(self) -> Path:
        """Bank files the demo's sandbox bank wrote (to look at, or import again)."""
        return self.root / "bank"

    @property
    def collection(self) -> Path:
        """The dunning service's daily files of claims handed to collection (one folder per tenant)."""
        return self.root / "collection"

    @property
    def stack_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def api_key_file(self) -> Path:
        return self.root / "sandbox.key"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def prepare(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.mongo_data.mkdir(parents=True, exist_ok=True)

    def sandbox_api_key(self) -> str:
        """The sandbox tenant's API key: made once, then kept, because the tenant persists in MongoDB."""
        if self.api_key_file.exists():
            key = self.api_key_file.read_text(encoding="utf-8").strip()
            if key:
                return key
        key = secrets.token_urlsafe(32)
        self.root.mkdir(parents=True, exist_ok=True)
        _write_private(self.api_key_file, key + "\n")
        return key

    def secret(self, name: str) -> str:
        """A secret of this stack (the service credential, the link secret): made once, then kept."""
        path = self.root / f"{name}.secret"
        if path.exists():
            value = path.read_text(encoding="utf-8").strip()
            if value:
                return value
        value = secrets.token_urlsafe(32)
        self.root.mkdir(parents=True, exist_ok=True)
        _write_private(path, value + "\n")
        return value

    def read_stack(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.stack_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_stack(self, stack: dict[str, Any]) -> None:
        _write_private(self.stack_file, json.dumps(stack, indent=2) + "\n")

    def remove_stack(self, supervisor_pid: int) -> None:
        """Remove stack.json if it still describes the stack of this supervisor."""
        current = self.read_stack()
        if current is not None and current.get("pids", {}).get("supervisor") == supervisor_pid:
            self.stack_file.unlink(missing_ok=True)


def _write_private(path: Path, text: str) -> None:
    """Write atomically (readers never see half a file), readable by the owner only (it holds a key)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
