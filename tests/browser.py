"""Headless Debian Chromium (/usr/bin/chromium) through Playwright, for the browser tests, and the
README screenshots they take.

Import Playwright in the test module first (`pytest.importorskip("playwright.sync_api")`): this
module only imports it when a browser is started.

Screenshots: the browser tests photograph the pages they have just checked, so a README picture
shows what a test saw. Every run writes them to the test's tmp_path; `make screenshots`
(UPDATE_SCREENSHOTS=1) also copies them into docs/, on purpose only, since a new picture is a
change to review."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

DOCS = Path(__file__).resolve().parent.parent / "docs"
# The README pictures stay small enough to keep in git.
MAX_SCREENSHOT_BYTES = 300_000

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A launched browser, closed on exit (with Playwright's driver)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    """The whole page as PNG in `tmp_path`; copied to docs/`name` under UPDATE_SCREENSHOTS=1."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True, type="png")
    assert shot.stat().st_size < MAX_SCREENSHOT_BYTES, (name, shot.stat().st_size)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / name)
    return shot
