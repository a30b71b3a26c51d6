"""Reading Prometheus text as a dashboard would."""

from __future__ import annotations

import re


def sample(text: str, name: str, default: float | None = None, **labels: str) -> float:
    """The value of one Prometheus sample, matched by name and a subset of its labels."""
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            return float(match.group(2))
    if default is not None:
        return default
    raise AssertionError(f"no sample {name} {labels} in /metrics")
