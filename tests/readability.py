"""Flesch-Kincaid grade level of plain text (Kincaid et al. 1975), for the patient pages.

grade = 0.39 x (words / sentences) + 11.8 x (syllables / words) - 15.59

Syllables are counted with the usual vowel-group rule (a silent final "e" dropped, "-le" after a
consonant kept, at least one per word), which is what readability tools use for English; it is
within a syllable of a dictionary count for most everyday words. Numbers count as one word of
one syllable per digit group.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_WORD = re.compile(r"[A-Za-z]+(?:['\u2019-][A-Za-z]+)*|\d+")
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")
# Elements whose text ends a sentence even without a full stop (headings, list items).
BLOCKS = frozenset({"h1", "h2", "h3", "h4", "p", "li", "title", "dt", "dd"})


def syllables(word: str) -> int:
    w = word.lower().replace("'", "").replace("\u2019", "")
    if w.isdigit():
        return 1
    if "-" in w:
        return sum(syllables(part) for part in w.split("-") if part)
    count = len(_VOWEL_GROUPS.findall(w))
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and count > 1:
        count -= 1
    elif w.endswith("le") and len(w) > 2 and w[-3] in "aeiouy" and count > 1:
        count -= 1
    silent_ed = w.endswith("ed") and w[-3:-2] not in ("t", "d")
    silent_es = w.endswith("es") and w[-3:-2] not in ("s", "x", "z", "c", "g", "h")
    if (silent_ed or silent_es) and len(w) > 3 and w[-3] not in "aeiouy" and count > 1:
        # "walked", "takes": the ending is no syllable of its own ("wanted", "pages": it is).
        count -= 1
    return max(1, count)


def sentences_of(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if _WORD.search(s)]


def grade(sentences: list[str]) -> float:
    words = [w for s in sentences for w in _WORD.findall(s)]
    if not words:
        raise ValueError("no words")
    syllable_count = sum(syllables(w) for w in words)
    return 0.39 * len(words) / len(sentences) + 11.8 * syllable_count / len(words) - 15.59


def grade_of_text(text: str) -> float:
    return grade(sentences_of(text))


class _Blocks(HTMLParser):
    """The visible text of a page, one string per block element (scripts and styles left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, _attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        elif tag in BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._current.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.blocks.append(text)
        self._current = []

    def close(self) -> None:
        super().close()
        self._flush()


def page_sentences(html: str, *, skip_title: bool = True) -> list[str]:
    """The sentences of a page's body: each block ends a sentence; so does a full stop."""
    parser = _Blocks()
    parser.feed(html.split("<body", 1)[1] if skip_title and "<body" in html else html)
    parser.close()
    return [s for block in parser.blocks for s in sentences_of(block)]
