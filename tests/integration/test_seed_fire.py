"""`cds-service seed` then `cds-service fire` against the real FHIR server (sekmet-fhir).

Each seeded scenario is fired through the CLI entry point (cds_service.cli.main, in-process
service, no prefetch: the service reads the FHIR server), and its cards are checked against what
RULES.md / CONTRACT.md say: topics and indicators, plus the suggestions RULES.md requires.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service import cli
from cds_service.store.db import Store
from cds_service.tools import fire, seed
from tests.contract import assert_response_contract
from tests.fhir_server import BUNDLED, FhirServer
from tests.wheel import env_with_only

pytestmark = pytest.mark.integration

SEED = BUNDLED / "seed"
SCENARIOS = seed.load_manifest(SEED)
ORDER_HOOKS = ("order-select", "order-sign")
CHART_HOOKS = ("patient-view", "encounter-start")
IMAGING = "imaging-without-red-flags"
OPIOID = "opioid-order"

# What RULES.md says each scenario gets, per hook: (topic, indicator), most urgent first.
EXPECTED: dict[str, dict[str, list[tuple[str, str]]]] = {
    # 10-day episode, 45 years old, no red flag: imaging card; chart hooks: no STarT Back yet.
    "lbp-demo-imaging": {
        "order-select": [(IMAGING, "warning")],
        "order-sign": [(IMAGING, "warning")],
        "patient-view": [("startback-screening", "info")],
    },
    # History of cancer (Z85.*, any time) is a red flag: no imaging card.
    "lbp-demo-imaging-cancer": {"order-select": [], "order-sign": []},
    # A red-flag screen 3 days ago with "yes" to saddle anaesthesia: a red flag, no imaging card;
    # the chart hooks still ask for STarT Back, naming the flag (test below).
    "lbp-demo-red-flag-saddle": {
        "order-select": [],
        "order-sign": [],
        "patient-view": [("startback-screening", "info")],
    },
    # The same with an all-"no" screen: the imaging card, saying the screen was negative.
    "lbp-demo-red-flag-negative": {hook: [(IMAGING, "warning")] for hook in ORDER_HOOKS},
    # Oxycodone 5 mg q6h = 30 MME/day, no benzodiazepine: warning.
    "lbp-demo-opioid": {
        "order-select": [(OPIOID, "warning")],
        "order-sign": [(OPIOID, "warning")],
    },
    # The same order with an active benzodiazepine: critical.
    "lbp-demo-opioid-benzo": {
        "order-select": [(OPIOID, "critical")],
        "order-sign": [(OPIOID, "critical")],
    },
    # Cyclobenzaprine 30 days (> 21) for a 45-year-old: the duration card.
    "lbp-demo-relaxant": {hook: [("muscle-relaxant-duration", "warning")] for hook in ORDER_HOOKS},
    # Cyclobenzaprine 30 days (> 21) for a 70-year-old (Beers, >= 65): one Beers card, course in it.
    "lbp-demo-relaxant-older-adult": {
        hook: [("muscle-relaxant-older-adult", "warning")]  # one card per order (RULES v2)
        for hook in ORDER_HOOKS
    },
    "lbp-demo-startback-screening": {
        hook: [("startback-screening", "info")] for hook in CHART_HOOKS
    },
    "lbp-demo-startback-high": {hook: [("startback-result", "info")] for hook in CHART_HOOKS},
    # No back-pain context: no card from any hook, even with a lumbar MRI drafted.
    "lbp-demo-no-back-pain": {hook: [] for hook in (*ORDER_HOOKS, *CHART_HOOKS)},
}
CASES = [(p, h) for p, hooks in EXPECTED.items() for h in hooks]


@pytest.fixture(scope="module")
def seeded(fhir_server: FhirServer) -> FhirServer:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["seed", "--fhir-server", fhir_server.base_url])
    assert code == 0, err.getvalue()
    return fhir_server


@pytest.fixture(autouse=True)
def _card_log_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The in-process service logs cards to CDS_DATABASE_URL: keep it out of the working tree.
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'cards.db'}")


def order_args(patient: str, hook: str) -> list[str]:
    if hook not in ORDER_HOOKS:
        return []
    scenario = next(s for s in SCENARIOS.values() if s.patient == patient)
    return [arg for order in scenario.orders for arg in ("--order", str(order))]


def fire_json(server: FhirServer, patient: str, hook: str, capsys) -> dict:
    argv = ["fire", "--fhir-server", server.base_url, "--patient", patient, "--hook", hook]
    code = cli.main([*argv, *order_args(patient, hook), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    body: dict = json.loads(captured.out)
    return body


def test_the_manifest_says_what_this_test_checks() -> None:
    for scenario in SCENARIOS.values():
        expected = [f"{t}:{i}" for t, i in EXPECTED[scenario.patient][scenario.hook]]
        assert list(scenario.expect) == expected, scenario.file
    assert {s.patient for s in SCENARIOS.values()} == set(EXPECTED)


def test_seed_prints_patient_ids_and_a_fire_command_per_scenario(
    fhir_server: FhirServer, capsys
) -> None:
    code = cli.main(["seed", "--fhir-server", fhir_server.base_url])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for patient in EXPECTED:
        assert re.search(rf"^  {patient}\s+{patient}\.json$", captured.out, re.M), patient
    assert "fb7c882a-f897-e7c5-67e0-825e7fd55d15" in captured.out  # the Synthea patient
    imaging = (
        f"cds-service fire --fhir-server {fhir_server.base_url} --patient lbp-demo-imaging "
        "--hook order-sign --order "
    )
    assert imaging in captured.out
    # Progress: one line per bundle on stderr, the shared organisations first.
    progress = captured.err.splitlines()
    assert re.match(
        r"\[1/\d+\] 00-shared-orgs-practitioners.transaction.json: 173 entries", progress[0]
    )
    assert len(progress) == len(seed.default_files())


@pytest.mark.parametrize(("patient", "hook"), CASES)
def test_each_scenario_shows_the_cards_rules_md_expects(
    seeded: FhirServer, patient: str, hook: str, capsys
) -> None:
    body = fire_json(seeded, patient, hook, capsys)
    topics = assert_response_contract(body, hook)
    got = [(c["source"]["topic"]["code"], c["indicator"]) for c in body["cards"]]
    expected = EXPECTED[patient][hook]
    assert sorted(got) == sorted(expected), json.dumps(body, indent=1)[:3000]
    assert len(topics) == len(expected)


def _actions(card: dict) -> list[dict]:
    return [a for s in card.get("suggestions", []) for a in s.get("actions", [])]


def test_imaging_card_suggests_deleting_the_drafted_mri(seeded: FhirServer, capsys) -> None:
    (card,) = fire_json(seeded, "lbp-demo-imaging", "order-sign", capsys)["cards"]
    deletes = [a for a in _actions(card) if a["type"] == "delete"]
    assert deletes and deletes[0]["resourceId"].endswith("lbp-demo-mri-draft")
    assert "10 day" in card["detail"]  # the episode length comes first


def test_the_red_flag_screen_patients_read_from_the_fhir_server(seeded: FhirServer, capsys) -> None:
    """The screen recorded on the FHIR server decides: a "yes" to saddle anaesthesia is a red flag
    (no imaging card; the other cards name it), an all-"no" screen makes the card say negative."""
    assert fire_json(seeded, "lbp-demo-red-flag-saddle", "order-sign", capsys)["cards"] == []
    (screening,) = fire_json(seeded, "lbp-demo-red-flag-saddle", "patient-view", capsys)["cards"]
    assert "saddle anaesthesia (red-flag screen " in screening["detail"]

    (card,) = fire_json(seeded, "lbp-demo-red-flag-negative", "order-sign", capsys)["cards"]
    assert re.search(r"Red-flag screen on \d{1,2} [A-Z][a-z]{2}: negative\.", card["detail"])
    # A screen counts, so the card does not ask for one; without a screen it does.
    assert all(link["type"] != "smart" for link in card.get("links", [])), card["links"]
    (unscreened,) = fire_json(seeded, "lbp-demo-imaging", "order-sign", capsys)["cards"]
    assert "Record a red-flag screen" in [link["label"] for link in unscreened["links"]]

    argv = ["fire", "--fhir-server", seeded.base_url, "--patient", "lbp-demo-red-flag-negative"]
    code = cli.main([*argv, "--hook", "order-sign", *order_args(argv[-1], "order-sign")])
    out = capsys.readouterr().out
    assert code == 0
    assert ": negative." in out and "1. WARNING  " in out


def test_opioid_card_gives_mme_and_days_supply_and_only_the_due_suggestions(
    seeded: FhirServer, capsys
) -> None:
    (card,) = fire_json(seeded, "lbp-demo-opioid", "order-sign", capsys)["cards"]
    assert "MME" in card["detail"]
    assert re.search(r"\b30(\.0)?\b", card["detail"]), card["detail"]  # 5 mg x 4/day x 1.5
    assert re.search(r"\b10(\.0)?\b", card["detail"]), card["detail"]  # days supply
    actions = _actions(card)
    # 10 days > 7: shorten the supply; 30 MME/day and no benzodiazepine: no naloxone.
    assert any(
        a["type"] == "update" and a["resource"]["resourceType"] == "MedicationRequest"
        for a in actions
    )
    assert not [a for a in actions if a["type"] == "create"]

    (critical,) = fire_json(seeded, "lbp-demo-opioid-benzo", "order-sign", capsys)["cards"]
    creates = [a for a in _actions(critical) if a["type"] == "create"]
    assert [a["resource"]["resourceType"] for a in creates] == ["MedicationRequest"]  # naloxone


def test_startback_screening_links_the_questionnaire_and_suggests_a_task(
    seeded: FhirServer, capsys
) -> None:
    (card,) = fire_json(seeded, "lbp-demo-startback-screening", "patient-view", capsys)["cards"]
    assert card.get("links"), card
    assert any(
        a["type"] == "create" and a["resource"]["resourceType"] == "Task" for a in _actions(card)
    )
    (result,) = fire_json(seeded, "lbp-demo-startback-high", "encounter-start", capsys)["cards"]
    assert "high" in (result["summary"] + result["detail"]).lower()


def test_fire_prints_cards_readably(seeded: FhirServer, capsys) -> None:
    argv = ["fire", "--fhir-server", seeded.base_url, "--patient", "lbp-demo-imaging"]
    code = cli.main([*argv, "--hook", "order-sign", *order_args("lbp-demo-imaging", "order-sign")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("lbp-order-sign: 1 card\n")
    assert "1. WARNING  " in out
    assert f"topic: {IMAGING}" in out
    assert "Suggestions (" in out


def test_fire_errors_against_the_real_server(seeded: FhirServer, capsys) -> None:
    wrong_base = seeded.base_url.rsplit("/", 1)[0] + "/no-such-base"
    argv = ["--patient", "lbp-demo-imaging", "--hook", "patient-view"]
    assert cli.main(["fire", "--fhir-server", wrong_base, *argv]) == fire.EXIT_SERVICE_ERROR
    err = capsys.readouterr().err
    assert "answered HTTP 412" in err
    assert "The FHIR server could not provide" in err
    port = seeded.base_url.split(":")[2].split("/")[0]
    closed = seeded.base_url.replace(f":{port}/", ":1/")
    assert cli.main(["fire", "--fhir-server", closed, *argv]) == fire.EXIT_UNREACHABLE
    assert "cannot reach the FHIR server" in capsys.readouterr().err


def test_fire_exits_1_for_an_unknown_patient_and_prints_no_doubled_word(
    seeded: FhirServer, capsys
) -> None:
    argv = ["fire", "--fhir-server", seeded.base_url, "--hook", "patient-view"]
    assert cli.main([*argv, "--patient", "lbp-demo-nobody"]) == fire.EXIT_NO_PATIENT == 1
    captured = capsys.readouterr()
    assert "has no patient 'lbp-demo-nobody'" in captured.err
    assert "no cards" not in captured.out + captured.err
    # The STarT Back Task suggestion once printed "create Task: Task: complete ...".
    assert cli.main([*argv, "--patient", "lbp-demo-startback-screening"]) == 0
    out = capsys.readouterr().out
    assert "create Task: complete" in out
    words = [w.strip(":,.()[]").lower() for w in out.split()]
    doubled = [a for a, b in zip(words, words[1:], strict=False) if a == b and a.isalnum()]
    assert not doubled, doubled


def test_the_installed_command_seeds_and_fires(fhir_server: FhirServer, tmp_path: Path) -> None:
    command = Path(sys.executable).parent / "cds-service"
    database = tmp_path / "subprocess-cards.db"
    env = {**os.environ, "CDS_DATABASE_URL": f"sqlite:///{database}"}
    scenario = SEED / "lbp-demo-startback-screening.json"
    loaded = subprocess.run(
        [command, "seed", "--fhir-server", fhir_server.base_url, scenario],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "lbp-demo-startback-screening" in loaded.stdout
    fired = subprocess.run(
        [
            command,
            "fire",
            "--fhir-server",
            fhir_server.base_url,
            "--patient",
            "lbp-demo-startback-screening",
            "--hook",
            "patient-view",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert fired.returncode == 0, fired.stderr
    assert "lbp-patient-view: 1 card" in fired.stdout
    assert "1. INFO  " in fired.stdout
    assert "topic: startback-screening" in fired.stdout
    # The in-process service logged the card where /analytics reads it.
    store = Store(f"sqlite:///{database}")
    try:
        assert [r["topic"] for r in store.card_log_rows()] == ["startback-screening"]
    finally:
        store.close()


def test_the_wheel_seeds_and_fires_with_no_repository(
    fhir_server: FhirServer, installed_wheel: Path, tmp_path: Path
) -> None:
    """The installed wheel alone, run from a directory with no fixtures: `seed` loads its bundled
    scenarios and the `fire` line it prints for one of them shows that scenario's card."""
    env = env_with_only(installed_wheel)
    env["CDS_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cards.db'}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def cds_service(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cds_service", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    loaded = cds_service("seed", "--fhir-server", fhir_server.base_url)
    assert loaded.returncode == 0, loaded.stderr
    bundles = [
        *(BUNDLED / "synthea").glob("*.transaction.json"),
        *(BUNDLED / "seed").glob("*.json"),
    ]
    assert len(re.findall(r"^\[\d+/\d+\] ", loaded.stderr, re.M)) == len(bundles) == 13
    (line,) = [
        line.strip()
        for line in loaded.stdout.splitlines()
        if "--patient lbp-demo-imaging --hook order-sign" in line
    ]
    words = shlex.split(line)
    assert words[0] == "cds-service"
    order = Path(words[words.index("--order") + 1])
    assert order.is_relative_to(installed_wheel), order
    fired = cds_service(*words[1:])
    assert fired.returncode == 0, fired.stderr
    assert "lbp-order-sign: 1 card" in fired.stdout
    assert "topic: imaging-without-red-flags" in fired.stdout
