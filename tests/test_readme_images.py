"""The README's pictures: every image it embeds is in the repository, a PNG of the size the
browser tests take, and small enough to keep in git (tests/browser.py MAX_SCREENSHOT_BYTES)."""

from __future__ import annotations

import re
import struct

import pytest

from tests.browser import MAX_SCREENSHOT_BYTES
from tests.servers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
IMAGES = re.findall(r"!\[[^\]]+\]\(([^)\s]+)\)", README)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a PNG always has first."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_readme_shows_the_three_apps_and_the_analytics_page() -> None:
    assert set(IMAGES) >= {
        "docs/analytics.png",
        "docs/startback-app.png",
        "docs/red-flag-app.png",
        "docs/self-care-page.png",
    }


@pytest.mark.parametrize("path", IMAGES)
def test_each_readme_image_is_a_small_png(path: str) -> None:
    data = (ROOT / path).read_bytes()
    width, height = png_size(data)
    assert len(data) < MAX_SCREENSHOT_BYTES, (path, len(data))
    assert 300 <= width <= 1600 and height >= 300, (path, width, height)


# The phone-sized pictures are taken at 375 px (the width the apps promise to fit).
@pytest.mark.parametrize("path", ["docs/startback-app.png", "docs/red-flag-app.png"])
def test_the_app_pictures_are_375_px_wide(path: str) -> None:
    assert png_size((ROOT / path).read_bytes())[0] == 375
