"""Fixtures for the renderer's unit tests."""

from __future__ import annotations

import pytest

from services.renderer.adapters.peppol import PeppolValidator


@pytest.fixture(scope="session")
def peppol_validator() -> PeppolValidator:
    """One validator for the session: compiling the Peppol rules takes about half a second."""
    return PeppolValidator()
