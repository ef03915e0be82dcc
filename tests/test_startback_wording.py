"""Keele's validated STarT Back wording (RULES.md: "shown with Keele's exact wording
(clinical-codes.md section 7; the tool must not be modified)").

The expected wording is the project's copy, cds_service/apps/startback-wording.json, taken from
clinical-codes.md §7 by scripts/build_startback.py; when ../shared is present the copy is also
checked against it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORDING_FILE = ROOT / "cds_service" / "apps" / "startback-wording.json"
REFERENCE = ROOT.parent / "shared" / "reference" / "clinical-codes.md"


def wording() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(WORDING_FILE.read_text(encoding="utf-8"))
    return data


def test_the_copy_names_its_source_and_keeps_the_copyright() -> None:
    copy = wording()
    assert "clinical-codes.md §7" in copy["source"] and "Keele" in copy["source"]
    assert copy["copyright"] == "© Keele University 2007, funded by Arthritis Research UK"
    assert [i["number"] for i in copy["items"]] == list(range(1, 10))


def test_served_questionnaire_uses_keeles_exact_wording(client: Any) -> None:
    q = client.get("/fhir/Questionnaire/startback").json()
    copy = wording()
    assert [i["text"] for i in q["item"]] == [i["text"] for i in copy["items"]]
    assert [i["prefix"] for i in q["item"]] == [str(i["number"]) for i in copy["items"]]
    answers = [[o["valueCoding"]["display"] for o in i["answerOption"]] for i in q["item"]]
    assert answers[:8] == [copy["items18Answers"]] * 8
    assert answers[8] == copy["item9Answers"]
    # item.code keeps the LOINC item code and its LOINC topic display.
    assert all(i["code"][0]["code"] == i["linkId"] for i in q["item"])
    assert "Keele's validated English wording" in q["copyright"]


def test_app_page_shows_keeles_lead_in(client: Any) -> None:
    page = client.get("/apps/startback").text
    assert f'<p id="lead-in" class="intro">{wording()["leadIn"]}</p>' in page


@pytest.mark.skipif(not REFERENCE.exists(), reason="../shared reference not present")
def test_the_copy_matches_the_reference() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    section = text.split("## 7.", 1)[1].split("\n## ", 1)[0]
    copy = wording()
    assert f'Lead-in: "{copy["leadIn"]}"' in section
    for item in copy["items"]:
        assert re.search(rf"^\s+{item['number']}\. {re.escape(item['text'])}$", section, re.M)
    assert " / ".join(copy["item9Answers"]) in section
