"""Operators add each half-year's late-payment interest rate as a file; the service extends its built-in
tables with it (and refuses to start on a broken one)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from services.common.settings import SettingsError
from services.dunning.app import _rates
from services.dunning.domain.interest import NO_RATES, Rate, RateTable
from services.dunning.settings import DunningSettings
from services.dunning.stepping import load_rates


def test_a_rate_file_extends_its_jurisdictions_table(tmp_path: Path) -> None:
    later = RateTable("NO", (Rate(date(2026, 7, 1), Decimal("12.0"), "FOR-2026-06-20-1", verified=True),))
    path = tmp_path / "no-2026h2.json"
    path.write_text(later.to_json(), encoding="utf-8")
    tables = load_rates(str(path))
    assert tables["NO"].in_force(date(2026, 8, 1)).rate.annual_percent == Decimal("12.0")  # type: ignore[union-attr]
    # The built-in half-years stay.
    assert tables["NO"].in_force(date(2025, 3, 1)).rate == NO_RATES.in_force(date(2025, 3, 1)).rate  # type: ignore[union-attr]
    assert tables["SE"].rates == load_rates("")["SE"].rates


def test_a_broken_rate_file_stops_the_service_with_the_setting_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"jurisdiction": "DK", "rates": []}', encoding="utf-8")
    with pytest.raises(SettingsError, match="FORDRING_RATE_FILES"):
        _rates(DunningSettings(rate_files=str(path)))
    with pytest.raises(SettingsError, match="FORDRING_RATE_FILES"):
        _rates(DunningSettings(rate_files=str(tmp_path / "missing.json")))
