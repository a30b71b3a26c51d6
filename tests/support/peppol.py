"""Where the official Peppol/EHF validator is: FORDRING_PEPPOL_VALIDATOR, else beside the repository
(../shared/peppol/validate, as in the workplace). A clone without it skips the checks that need it,
saying so, instead of failing on a missing file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_BESIDE = Path(__file__).resolve().parents[3] / "shared" / "peppol" / "validate"


def official_validator() -> Path:
    path = Path(os.environ.get("FORDRING_PEPPOL_VALIDATOR") or _BESIDE)
    if not path.exists():
        pytest.skip(f"the official Peppol validator is not at {path} (set FORDRING_PEPPOL_VALIDATOR)")
    return path
