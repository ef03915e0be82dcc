"""Builds the STarT Back value sets and Questionnaire from ../shared/reference (run by hand, output committed).

Outputs:
- cds_service/logic/valuesets/startback-*.json: the item, score, risk and answer codes the
  scoring reads (codes live only in value sets; clinical-codes.md §7, S9 loinc.org).
- cds_service/apps/startback-wording.json: the project's copy of Keele's validated English
  wording (lead-in, the 9 statements, the item-9 answers, the copyright and funding statement),
  taken verbatim from clinical-codes.md §7 with its source. Tests compare the served
  Questionnaire and the app against this copy.
- cds_service/apps/questionnaire-startback.json: the FHIR R4 Questionnaire of the 9-item tool
  (LOINC panel 91349-1), built and validated with fhir.resources R4B. `item.text` is Keele's
  exact wording (the tool must not be modified); `item.code` is the LOINC item code with its
  LOINC display. Its `url` is rewritten to `{CDS_PUBLIC_BASE_URL}/fhir/Questionnaire/startback`
  when the service serves it.

Usage: python scripts/build_startback.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from build_valuesets import local_value_set, write
from fhir.resources.R4B.questionnaire import Questionnaire

ROOT = Path(__file__).resolve().parent.parent
QUESTIONNAIRE = ROOT / "cds_service" / "apps" / "questionnaire-startback.json"
WORDING = ROOT / "cds_service" / "apps" / "startback-wording.json"
WORDING_SOURCE = (
    "the project's shared reference clinical-codes.md §7 'The validated wording' (Keele's "
    "original English version): the Keele STarT Back Screening Tool form (Keele University, "
    "2007; reproduced on primary-care practice sites, e.g. ericmoorepartnership.co.uk 'The "
    "Keele STarT Back Screening Tool')"
)
FUNDING = "© Keele University 2007, funded by Arthritis Research UK"
LOINC = "http://loinc.org"
# Item answers have no verified LOINC LA codes in the reference (clinical-codes.md §9), so the
# Questionnaire offers them in a local code system; the scoring reads their display text.
ANSWER_SYSTEM = "urn:lbp-cds:CodeSystem/startback-answer"
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
DEFAULT_CANONICAL = "http://127.0.0.1:8000/fhir/Questionnaire/startback"
SOURCE = "clinical-codes.md §7 (S9 loinc.org LOINC 2.77; S10 Keele scoring guide)"

COPYRIGHT = (
    "Keele STarT Back Screening Tool © Keele University 2007 (keele.ac.uk/sbst), funded by "
    "Arthritis Research UK. No licence is required for non-commercial use; commercial use needs "
    "permission from Keele University (Impact Accelerator Unit). The tool must not be modified or "
    "used for conditions other than low back pain. LOINC codes © Regenstrief Institute; the LOINC "
    "STarT Back terms are used with permission of Keele University. Item texts are Keele's "
    "validated English wording, unmodified; item codes carry the LOINC item topics."
)


def item_topic(display: str) -> tuple[str, str]:
    """'Item 3 - only walked short distances ... [paraphrased ...]' -> ('3', 'Only walked ...')."""
    match = re.match(r"Item (\d) - (.*?)\s*(?:\[.*\])?$", display)
    if not match:
        raise ValueError(f"unexpected STarT Back item display: {display!r}")
    text = match.group(2)
    return match.group(1), text[0].upper() + text[1:]


def keele_wording(markdown: str) -> dict[str, Any]:
    """Keele's exact wording from clinical-codes.md §7 ("The validated wording" bullet)."""
    section = markdown.split("## 7.", 1)[1].split("\n## ", 1)[0]
    block = section.split("**The validated wording**", 1)[1].split("\n* **", 1)[0]
    lead_in = re.search(r'Lead-in: "(.+?)"', block)
    items = re.findall(r"^\s+(\d)\. (.+?)\s*$", block, re.MULTILINE)
    answers = re.search(r"^\s+(Not at all / .+?)\s*$", block, re.MULTILINE)
    if (
        lead_in is None
        or answers is None
        or [n for n, _ in items] != [str(i) for i in range(1, 10)]
    ):
        raise ValueError("clinical-codes.md §7: the validated wording was not found")
    return {
        "source": WORDING_SOURCE,
        "copyright": FUNDING,
        "leadIn": lead_in.group(1),
        "items18Answers": ["Agree", "Disagree"],
        "item9Answers": [a.strip() for a in answers.group(1).split("/")],
        "items": [{"number": int(n), "text": text} for n, text in items],
    }


def write_wording(wording: dict[str, Any]) -> None:
    WORDING.write_text(json.dumps(wording, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {WORDING.relative_to(ROOT)}")


def loinc_concepts(codes: dict[str, Any], wanted: list[str]) -> list[dict[str, str]]:
    by_code = {e["code"]: e for e in codes["start_back_loinc"]}
    return [{"code": c, "display": by_code[c]["display"]} for c in wanted]


def value_sets(codes: dict[str, Any]) -> None:
    items = [e for e in codes["start_back_loinc"] if e.get("note") in ("physical", "psychosocial")]
    if len(items) != 9:
        raise ValueError("expected 9 STarT Back items")
    item_concepts = [
        {"code": e["code"], "display": "Item {}: {}".format(*item_topic(e["display"]))}
        for e in items
    ]
    psychosocial = [
        c for c, e in zip(item_concepts, items, strict=True) if e["note"] == "psychosocial"
    ]
    simple = {
        "startback-panel": (
            "STarT Back panel",
            "The LOINC panel of the Keele STarT Back Screening Tool; a Questionnaire canonical whose "
            "last path segment is this code (http://loinc.org/q/91349-1) is a STarT Back one.",
            loinc_concepts(codes, ["91349-1"]),
        ),
        "startback-items": (
            "STarT Back items 1-9",
            "The nine STarT Back item codes (QuestionnaireResponse item linkId or definition).",
            item_concepts,
        ),
        "startback-psychosocial-items": (
            "STarT Back psychosocial items 5-9",
            "Items 5-9, summed into the distress (psychosocial) subscale 91350-9.",
            psychosocial,
        ),
        "startback-total-score": (
            "STarT Back total score",
            "Total score 0-9 (sum of items 1-9).",
            loinc_concepts(codes, ["91351-7"]),
        ),
        "startback-psychosocial-subscore": (
            "STarT Back psychosocial subscore",
            "Distress subscore 0-5 (sum of items 5-9; Keele 'psych score').",
            loinc_concepts(codes, ["91350-9"]),
        ),
        "startback-risk-level": (
            "STarT Back risk level",
            "Risk level Observation (answer list LL3578-3).",
            loinc_concepts(codes, ["91352-5"]),
        ),
        "startback-risk-answers": (
            "STarT Back risk groups",
            "Answer list LL3578-3 of 91352-5; each display names the risk group (Low, Medium, High).",
            [
                {"code": e["code"], "display": e["display"]}
                for e in codes["start_back_risk_answers_loinc"]
            ],
        ),
    }
    for name, (title, description, concepts) in simple.items():
        write(
            name,
            local_value_set(
                name,
                title,
                f"{description} Source: {SOURCE}.",
                [{"system": LOINC, "concept": concepts}],
            ),
        )
    sb = codes["start_back"]
    local_answers = [
        {"code": slug(a["answer"]), "display": a["answer"]}
        for a in sb["items_1_8_answers"] + sb["item_9_answers"]
    ]
    write(
        "startback-item-answers",
        local_value_set(
            "startback-item-answers",
            "STarT Back item answers",
            "Answers of the STarT Back items; each display is the answer word the scoring reads "
            "(items 1-8: Agree/Yes = 1, Disagree/No = 0; item 9: Very much/Extremely = 1, others 0). "
            f"Local codes ({ANSWER_SYSTEM}) are the answers of this service's Questionnaire, because "
            "the item answer LA codes are unverified (clinical-codes.md §9). LA33-6 Yes / LA32-8 No are "
            "the standard LOINC answers for the interview variant of item 4 (not from the reference). "
            f"Source: {SOURCE}.",
            [
                {
                    "system": LOINC,
                    "concept": [
                        {"code": "LA33-6", "display": "Yes"},
                        {"code": "LA32-8", "display": "No"},
                    ],
                },
                {"system": ANSWER_SYSTEM, "concept": local_answers},
            ],
        ),
    )


def slug(answer: str) -> str:
    return answer.lower().replace(" ", "-")


def answer_option(answer: str, score: int) -> dict[str, Any]:
    return {
        "valueCoding": {
            "extension": [{"url": ORDINAL_VALUE, "valueDecimal": score}],
            "system": ANSWER_SYSTEM,
            "code": slug(answer),
            "display": answer,
        }
    }


def questionnaire(codes: dict[str, Any], wording: dict[str, Any]) -> None:
    sb = codes["start_back"]
    keele = {str(i["number"]): i["text"] for i in wording["items"]}
    if wording["item9Answers"] != [a["answer"] for a in sb["item_9_answers"]]:
        raise ValueError("item 9 answers differ between clinical-codes.md and .json")
    panel = next(e for e in codes["start_back_loinc"] if e["code"] == "91349-1")
    items = [e for e in codes["start_back_loinc"] if e.get("note") in ("physical", "psychosocial")]
    q_items = []
    for e in items:
        number, topic = item_topic(e["display"])
        text = keele[number]
        answers = sb["item_9_answers"] if number == "9" else sb["items_1_8_answers"]
        if number != "9":
            answers = sorted(
                answers, key=lambda a: -a["score"]
            )  # Agree first, as on the Keele form
        q_items.append(
            {
                "linkId": e["code"],
                "code": [{"system": LOINC, "code": e["code"], "display": topic}],
                "prefix": number,
                "text": text,
                "type": "choice",
                "required": True,
                "answerOption": [answer_option(a["answer"], a["score"]) for a in answers],
            }
        )
    resource = {
        "resourceType": "Questionnaire",
        "id": "startback",
        "url": DEFAULT_CANONICAL,
        "version": "1.1.0",
        "name": "KeeleStartBackScreeningTool",
        "title": "Keele STarT Back Screening Tool",
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": "lbp-cds",
        "description": (
            "The 9-item Keele STarT Back Screening Tool for low back pain. Items 1-8: Agree = 1, "
            "Disagree = 0; item 9 (bothersomeness): Very much or Extremely = 1. Total 0-9 (LOINC "
            "91351-7); psychosocial subscale items 5-9, 0-5 (91350-9). Risk (91352-5): high if the "
            "subscale is 4 or more; else low if the total is 3 or less; else medium."
        ),
        "purpose": (
            "Risk stratification at first contact for each new episode of low back pain (NICE NG59 "
            "1.1.2), matching treatment to the risk group."
        ),
        "copyright": COPYRIGHT,
        "code": [{"system": LOINC, "code": panel["code"], "display": panel["display"]}],
        "item": q_items,
    }
    Questionnaire.model_validate(resource)
    QUESTIONNAIRE.write_text(
        json.dumps(resource, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"wrote {QUESTIONNAIRE.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    codes = json.loads(
        (Path(args.shared) / "reference" / "clinical-codes.json").read_text(encoding="utf-8")
    )
    wording = keele_wording(
        (Path(args.shared) / "reference" / "clinical-codes.md").read_text(encoding="utf-8")
    )
    value_sets(codes)
    write_wording(wording)
    questionnaire(codes, wording)


if __name__ == "__main__":
    main()
