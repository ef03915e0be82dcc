"""The patient's self-care plan page (RULES.md v2 "Red-flag screen and stratified care"): served
as a static page with a strict CSP and cache headers, in plain language (Flesch-Kincaid grade
<= 7), with every part the rules name. Chromium checks (375 px, one A4 page) are in
test_self_care_browser.py."""

from __future__ import annotations

import re

import pytest

from tests.readability import grade, grade_of_text, page_sentences, syllables

PAGE = "/apps/self-care"
STYLESHEET = "/apps/self-care/static/self-care.css"
# Reading age about 12 (RULES.md: "plain language"): US grade 7 at most.
MAX_GRADE = 7.0
# Short sentences: none longer than this many words, nor harder than this grade on its own.
MAX_SENTENCE_WORDS = 20
MAX_SENTENCE_GRADE = 12.0


@pytest.fixture
def page(client) -> str:
    response = client.get(PAGE)
    assert response.status_code == 200
    text: str = response.text
    return text


def test_the_page_is_served_with_a_strict_csp_and_cache_headers(client) -> None:
    response = client.get(PAGE)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "style-src 'self'" in csp
    assert "script-src" not in csp  # default-src 'none': no script may run at all
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert re.fullmatch(r'"[0-9a-f]{32}"', response.headers["etag"])


@pytest.mark.parametrize("path", [PAGE, STYLESHEET])
def test_a_cached_copy_is_revalidated_with_a_304(client, path: str) -> None:
    first = client.get(path)
    etag = first.headers["etag"]
    again = client.get(path, headers={"If-None-Match": f'W/"other", {etag}'})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


def test_the_stylesheet_is_served_and_has_a_print_layout_for_a4(client) -> None:
    response = client.get(STYLESHEET)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert "@media print" in response.text and "size: A4" in response.text
    assert client.get("/apps/self-care/static/other.css").status_code == 404


def test_the_page_needs_nothing_from_elsewhere_and_no_script(page: str) -> None:
    assert '<html lang="en">' in page
    assert "<script" not in page and not re.search(r"\son[a-z]+=", page)
    assert re.findall(r'(?:href|src)="([^"]+)"', page) == ["self-care/static/self-care.css"]
    assert "http" not in page  # no CDN, no web font, no tracker
    assert "style=" not in page  # no inline style (the CSP would refuse it)


def test_the_page_has_one_title_and_a_heading_per_part(page: str) -> None:
    assert len(re.findall(r"<h1\b", page)) == 1
    headings = re.findall(r"<h2 id=\"[a-z]+\">([^<]+)</h2>", page)
    assert headings == [
        "Keep moving",
        "Ease the pain",
        "What to expect",
        "If the pain flares up",
        "See us again",
        "When to get help fast",
    ]


@pytest.mark.parametrize(
    "words",
    [
        "Stay active",
        "Keep working if you can",
        "Do not rest in bed",
        "Use heat",
        "Take simple pain relief",
        "at set times for a few days",
        "better within a few weeks",
        "flares up",
        "within 2 weeks",
        # The red flags of the screen (RULES.md v2), in patients' words.
        "numbness or tingling around your bottom, genitals",
        "cannot control your bladder or bowels",
        "legs feel weak or numb, and it is getting worse",
        "throbbing in your belly",
        "fever",
        "bad fall or accident",
        "bad at night",
        "losing weight",
        "had cancer, inject drugs, take steroid tablets",
        "weak immune system",
    ],
)
def test_the_plan_says(page: str, words: str) -> None:
    assert words in " ".join(page.split())


def test_the_plan_is_in_plain_language(page: str) -> None:
    sentences = page_sentences(page)
    assert len(sentences) > 40
    assert grade(sentences) <= MAX_GRADE, grade(sentences)
    longest = max(sentences, key=lambda s: len(s.split()))
    assert len(longest.split()) <= MAX_SENTENCE_WORDS, longest
    hardest = max(sentences, key=lambda s: grade([s]))
    assert grade([hardest]) <= MAX_SENTENCE_GRADE, hardest


def test_the_grade_function_follows_flesch_kincaid() -> None:
    # 6 words, 6 syllables, 1 sentence: 0.39 x 6 + 11.8 x 1 - 15.59.
    assert grade_of_text("The cat sat on the mat.") == pytest.approx(-1.45)
    # Two sentences of 3 words, 4 syllables each: 0.39 x 3 + 11.8 x 8/6 - 15.59.
    assert grade_of_text("Walk every day. Use some heat!") == pytest.approx(1.3133, abs=1e-3)
    dense = (
        "Multidisciplinary biopsychosocial rehabilitation demonstrates considerable "
        "effectiveness regarding functional limitation."
    )
    assert grade_of_text(dense) > 16


@pytest.mark.parametrize(
    ("word", "count"),
    [
        ("back", 1),
        ("table", 2),
        ("whole", 1),
        ("walked", 1),
        ("wanted", 2),
        ("takes", 1),
        ("pages", 2),
        ("every", 3),
        ("numbness", 2),
        ("genitals", 3),
        ("emergency", 4),
        ("flare-ups", 2),
        ("20", 1),
    ],
)
def test_syllables(word: str, count: int) -> None:
    assert syllables(word) == count
