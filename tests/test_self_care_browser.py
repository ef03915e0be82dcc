"""The self-care plan in headless Debian Chromium (issue 16 "Done when"): at 375 px wide it has
no horizontal scroll, and Chromium's print to PDF on A4 gives exactly one page. Served by a real
uvicorn process, so the stylesheet arrives as the page asks for it, under its CSP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import screenshot
from tests.servers import running_service

pytestmark = pytest.mark.browser

pytest.importorskip("playwright.sync_api")

# A page object of a PDF ("/Type /Page", never "/Type /Pages"). Chromium (Skia) writes page
# dictionaries uncompressed, so counting them needs no PDF library.
PAGE_OBJECT = re.compile(rb"/Type\s*/Page(?![A-Za-z])")


def pdf_pages(pdf: bytes) -> int:
    assert pdf.startswith(b"%PDF-")
    return len(PAGE_OBJECT.findall(pdf))


# WCAG 2 "enhanced" contrast (AAA) for body text.
MIN_CONTRAST = 7.0


def _luminance(css_rgb: str) -> float:
    """Relative luminance (WCAG 2) of a computed colour such as "rgb(17, 17, 17)"."""
    channels = [int(v) / 255 for v in re.findall(r"\d+", css_rgb)[:3]]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    high, low = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_follows_wcag() -> None:
    assert contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21.0)
    assert contrast("rgb(118, 118, 118)", "rgb(255, 255, 255)") == pytest.approx(4.54, abs=0.01)


def test_the_pdf_page_counter_counts_pages_not_the_page_tree() -> None:
    two = b"%PDF-1.4\n1 0 obj <</Type /Pages /Kids [2 0 R 3 0 R]>>\n2 0 obj <</Type /Page>>\n"
    assert pdf_pages(two + b"3 0 obj <</Type/Page /Parent 1 0 R>>\n") == 2
    assert pdf_pages(b"%PDF-1.7\n1 0 obj <</Type /Pages /Count 0>>\n") == 0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("self-care")
    with running_service(workdir, {}) as running:
        yield running.base_url


def open_plan(browser: Any, service: str, width: int) -> tuple[Any, list[str], list[str]]:
    """The page at `width` px, every URL the browser asked for, and what went wrong: a CSP
    refusal in the console, or a failed request (the favicon the browser asks for by itself
    aside)."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    requests: list[str] = []
    errors: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    response = page.goto(f"{service}/apps/self-care")
    assert response is not None and response.status == 200
    return page, requests, errors


def test_at_375_px_there_is_no_horizontal_scroll(browser: Any, service: str) -> None:
    page, requests, errors = open_plan(browser, service, 375)
    assert page.evaluate(
        "document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth"
    )
    # The stylesheet applied (the CSP let it in): the red-flag box has its border.
    border = page.eval_on_selector(".urgent", "e => getComputedStyle(e).borderTopWidth")
    assert border == "3px"
    background = page.eval_on_selector("body", "e => getComputedStyle(e).backgroundColor")
    for selector in ("body", "h1", ".urgent h2", ".urgent li"):
        color = page.eval_on_selector(selector, "e => getComputedStyle(e).color")
        assert contrast(color, background) >= MIN_CONTRAST, (selector, color, background)
    assert all(url.startswith(service) for url in requests), requests  # nothing external
    assert errors == []
    page.context.close()


def test_on_a_desktop_screen_the_plan_is_one_centred_column_of_readable_width(
    browser: Any, service: str, tmp_path: Path
) -> None:
    page, _, errors = open_plan(browser, service, 1280)
    box = page.locator("main").bounding_box()
    assert box is not None
    # At most 44rem (704 px) wide, not the whole screen: lines of about 80 characters.
    assert 600 <= box["width"] <= 44 * 16
    assert abs(box["x"] - (1280 - box["x"] - box["width"])) <= 20  # centred
    assert errors == []
    screenshot(page, tmp_path, "self-care-page.png")  # the README picture
    page.context.close()


def test_printed_on_a4_it_is_one_page(browser: Any, service: str) -> None:
    page, _, _ = open_plan(browser, service, 1024)
    pdf = page.pdf(format="A4")
    assert pdf_pages(pdf) == 1
    page.context.close()
