"""Headless Chromium for the browser tests: Debian's chromium (Playwright's own download cannot run
here), and where the tests keep their screenshots and accessibility reports (git-ignored)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

CHROMIUM = os.environ.get("FORDRING_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# Screenshots and reports: FORDRING_TEST_ARTEFACTS, else test-artefacts/ at the repository's root.
ARTEFACTS = Path(os.environ.get("FORDRING_TEST_ARTEFACTS", Path(__file__).parents[2] / "test-artefacts"))


def artefacts(name: str) -> Path:
    folder = ARTEFACTS / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            await browser.close()
