"""Checks every card and response against CONTRACT.md and the CDS Hooks 2.0 card schema."""

from __future__ import annotations

import uuid
from typing import Any

from cds_service.logic.findings import CARD_TOPIC_SYSTEM
from cds_service.logic.guidelines import GUIDELINES

TOPIC_HOOKS = {
    "imaging-without-red-flags": {"order-select", "order-sign"},
    "opioid-order": {"order-select", "order-sign"},
    "muscle-relaxant-duration": {"order-select", "order-sign", "patient-view", "encounter-start"},
    "muscle-relaxant-older-adult": {"order-select", "order-sign"},
    "startback-screening": {"patient-view", "encounter-start"},
    "startback-result": {"patient-view", "encounter-start"},
}
TOPIC_INDICATORS = {
    "imaging-without-red-flags": {"warning"},
    "opioid-order": {"warning", "critical"},
    "muscle-relaxant-duration": {"warning"},
    "muscle-relaxant-older-adult": {"warning"},
    "startback-screening": {"info"},
    "startback-result": {"info"},
}
URGENCY = {"critical": 0, "warning": 1, "info": 2}
GUIDELINE_URLS = {g.url for g in GUIDELINES.values()}


def assert_no_empty_values(value: Any, path: str = "$") -> None:
    """CDS Hooks §Use of JSON: no null, "", [] or {} anywhere (except the top-level cards list)."""
    if isinstance(value, dict):
        assert value, f"empty object at {path}"
        for k, v in value.items():
            assert v is not None, f"null at {path}.{k}"
            assert_no_empty_values(v, f"{path}.{k}")
    elif isinstance(value, list):
        assert value, f"empty array at {path}"
        for i, v in enumerate(value):
            assert_no_empty_values(v, f"{path}[{i}]")
    elif isinstance(value, str):
        assert value != "", f"empty string at {path}"


def assert_card_contract(card: dict[str, Any], hook: str) -> None:
    assert_no_empty_values(card)
    uuid.UUID(card["uuid"])
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140, card["summary"]
    assert card["indicator"] in URGENCY
    source = card["source"]
    assert source["label"]
    assert source["url"] in GUIDELINE_URLS, (
        f"card cites a URL outside the guideline registry: {source['url']}"
    )
    topic = source["topic"]
    assert topic["system"] == CARD_TOPIC_SYSTEM
    assert topic["code"] in TOPIC_HOOKS, topic
    assert hook in TOPIC_HOOKS[topic["code"]], f"{topic['code']} may not fire on {hook}"
    assert card["indicator"] in TOPIC_INDICATORS[topic["code"]]
    if "suggestions" in card:
        assert card["selectionBehavior"] in ("at-most-one", "any")
        recommended = [s for s in card["suggestions"] if s.get("isRecommended")]
        if card["selectionBehavior"] == "at-most-one":
            assert len(recommended) <= 1
        for s in card["suggestions"]:
            assert s["label"]
            uuid.UUID(s["uuid"])
            for action in s.get("actions", []):
                assert action["type"] in ("create", "update", "delete")
                assert action["description"]
                if action["type"] == "delete":
                    assert "resourceId" in action
                else:
                    assert action["resource"]["resourceType"]
    else:
        assert "selectionBehavior" not in card
    for reason in card.get("overrideReasons", []):
        assert reason["system"] and reason["code"] and reason["display"]
    for link in card.get("links", []):
        assert link["label"] and link["url"] and link["type"] in ("absolute", "smart")
        if "appContext" in link:
            assert link["type"] == "smart"


def assert_response_contract(body: dict[str, Any], hook: str) -> list[str]:
    """Checks the whole response; returns the card topics in order."""
    assert set(body) <= {"cards", "systemActions"}
    assert isinstance(body["cards"], list)
    for card in body["cards"]:
        assert_card_contract(card, hook)
    urgencies = [URGENCY[c["indicator"]] for c in body["cards"]]
    assert urgencies == sorted(urgencies), "cards must come most urgent first"
    return [c["source"]["topic"]["code"] for c in body["cards"]]
