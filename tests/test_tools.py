"""`cds-service fire` and `seed` without a real server: tokens, request building, output, errors,
and the seed fixtures themselves (valid FHIR R4, one scenario per card topic)."""

from __future__ import annotations

import io
import json
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fhir.resources.R4B import get_fhir_model_class

from cds_service import cli
from cds_service.apps import red_flags as red_flags_app
from cds_service.logic.fhir import QuestionnaireResponse
from cds_service.logic.findings import Topic
from cds_service.logic.red_flag_screen import latest_screen, read_screen
from cds_service.tools import fire, seed
from cds_service.tools.tokens import TokenError, resolve_string, resolve_tokens
from tests.factories import TODAY

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "cds_service" / "tools" / "fixtures" / "seed"
FHIR = "http://127.0.0.1:9999/fhir"
LEAP_DAY = date(2028, 2, 29)


# ---- date tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("@today", "2026-11-22"),
        ("@today-10d", "2026-11-12"),
        ("@today+3d", "2026-11-25"),
        ("@today-2w", "2026-11-08"),
        ("@today-6m", "2026-05-22"),
        ("@today-70y", "1956-11-22"),
        ("@today-42d", "2026-10-11"),
        ("@today-10dT09:30:00Z", "2026-11-12T09:30:00Z"),
        ("@today-0d", "2026-11-22"),
        ("today-10d", "today-10d"),  # not a token
        ("note: @today", "note: @today"),  # tokens start the string
    ],
)
def test_date_tokens(token: str, expected: str) -> None:
    assert resolve_string(token, TODAY) == expected


def test_month_and_year_steps_keep_to_the_calendar() -> None:
    assert resolve_string("@today-1y", LEAP_DAY) == "2027-02-28"
    assert resolve_string("@today+4y", LEAP_DAY) == "2032-02-29"
    assert resolve_string("@today-1m", date(2026, 3, 31)) == "2026-02-28"
    assert resolve_string("@today+1m", date(2026, 12, 15)) == "2027-01-15"


@pytest.mark.parametrize("bad", ["@todayx", "@today-10days", "@today-10", "@today10d"])
def test_unreadable_tokens_are_refused(bad: str) -> None:
    with pytest.raises(TokenError):
        resolve_string(bad, TODAY)


def test_tokens_are_replaced_in_strings_only_and_patient_where_asked() -> None:
    raw = {
        "subject": {"reference": "Patient/@patient"},
        "onsetDateTime": "@today-10d",
        "list": ["@today", 3, None, True],
        "@today": "key kept",
    }
    assert resolve_tokens(raw, TODAY, "pt-9") == {
        "subject": {"reference": "Patient/pt-9"},
        "onsetDateTime": "2026-11-12",
        "list": ["2026-11-22", 3, None, True],
        "@today": "key kept",
    }
    assert resolve_tokens(raw, TODAY)["subject"]["reference"] == "Patient/@patient"


# ---- request building --------------------------------------------------------------------------


def _options(**kwargs) -> fire.FireOptions:
    values: dict[str, Any] = {"fhir_server": FHIR, "patient_id": "pt-1", "hook": "order-select"}
    values.update(kwargs)
    return fire.FireOptions(**values)


def test_order_files_become_draft_orders_and_selections(tmp_path: Path) -> None:
    single = tmp_path / "mri.json"
    single.write_text(
        json.dumps(
            {
                "resourceType": "ServiceRequest",
                "id": "mri",
                "status": "draft",
                "subject": {"reference": "Patient/@patient"},
                "authoredOn": "@today",
            }
        )
    )
    several = tmp_path / "two.json"
    several.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"resource": {"resourceType": "MedicationRequest", "status": "draft"}},
                    {"fullUrl": "urn:uuid:x"},
                ],
            }
        )
    )
    orders = fire.load_orders([single, several], TODAY, "pt-1")
    assert [o["resourceType"] for o in orders] == ["ServiceRequest", "MedicationRequest"]
    assert orders[0]["subject"] == {"reference": "Patient/pt-1"}
    assert orders[0]["authoredOn"] == "2026-11-22"
    assert orders[1]["id"] == "draft-2"  # an order without an id gets one, for selections

    body = fire.build_hook_request(_options(token="tok"), orders, hook_instance="hi-1")
    assert body["hook"] == "order-select"
    assert body["hookInstance"] == "hi-1"
    assert body["fhirServer"] == FHIR
    assert "prefetch" not in body  # the service must read the FHIR server
    context = body["context"]
    assert context["userId"] == fire.DEFAULT_USER_ID
    assert context["patientId"] == "pt-1"
    assert context["selections"] == ["ServiceRequest/mri", "MedicationRequest/draft-2"]
    assert [e["resource"]["id"] for e in context["draftOrders"]["entry"]] == ["mri", "draft-2"]
    assert body["fhirAuthorization"]["access_token"] == "tok"
    assert body["fhirAuthorization"]["token_type"] == "Bearer"
    assert "encounterId" not in context


def test_order_sign_has_no_selections_and_chart_hooks_no_orders() -> None:
    sign = fire.build_hook_request(_options(hook="order-sign"), [], hook_instance="h")
    assert "selections" not in sign["context"]
    assert sign["context"]["draftOrders"]["entry"] == []
    view = fire.build_hook_request(_options(hook="patient-view"), [], hook_instance="h")
    assert "draftOrders" not in view["context"]
    assert "fhirAuthorization" not in view
    start = fire.build_hook_request(_options(hook="encounter-start"), [], hook_instance="h")
    assert start["context"]["encounterId"]
    given = _options(hook="encounter-start", encounter_id="enc-7")
    assert (
        fire.build_hook_request(given, [], hook_instance="h")["context"]["encounterId"] == "enc-7"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"id": 1}', "is not a FHIR resource"),
        ('{"resourceType": "Bundle", "entry": []}', "holds no resource"),
        ('{"resourceType": "ServiceRequest", "authoredOn": "@todayish"}', "unreadable date token"),
    ],
)
def test_bad_order_files_are_usage_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "order.json"
    path.write_text(content)
    with pytest.raises(fire.ToolError, match=message) as caught:
        fire.load_orders([path], TODAY, "pt-1")
    assert caught.value.exit_code == fire.EXIT_USAGE


def test_in_process_settings_open_only_what_the_call_needs(monkeypatch) -> None:
    monkeypatch.setenv("CDS_REQUIRE_AUTH", "true")
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", "https://cds.example.org")
    monkeypatch.setenv("CDS_FHIR_ALLOWLIST", "https://ehr.example.org/fhir")
    anonymous = fire.in_process_settings(FHIR + "/", None, env_log_level=False)
    assert anonymous.require_auth is False
    assert anonymous.fhir_server_allowed(FHIR + "/Patient")
    assert anonymous.fhir_server_allowed("https://ehr.example.org/fhir/Patient")
    assert not anonymous.fhir_server_allowed("https://other.example.org/fhir")
    assert anonymous.fhir_allow_anonymous is True
    assert anonymous.public_base_url == fire.IN_PROCESS_BASE_URL
    assert anonymous.log_level == "ERROR"
    with_token = fire.in_process_settings(FHIR, "tok", env_log_level=True)
    assert with_token.fhir_allow_anonymous is False
    assert with_token.log_level == "INFO"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CDS_TRUSTED_ISSUERS", "{not json"), ("CDS_RULES__MIN_AGE_YEARS", "eighteen")],
)
def test_a_bad_setting_is_a_usage_error_naming_its_variable(monkeypatch, variable, value) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(fire.ToolError) as caught:
        fire.in_process_settings(FHIR, None, env_log_level=False)
    assert caught.value.exit_code == fire.EXIT_USAGE
    assert str(caught.value).startswith(f"invalid CDS_* environment setting: {variable}: ")


# ---- output --------------------------------------------------------------------------------


CARD = {
    "uuid": "11111111-2222-4333-8444-555555555555",
    "summary": "Lumbar imaging is not recommended in the first 6 weeks without red flags",
    "detail": "**Episode: 10 days.**\nNo red flag found.",
    "indicator": "warning",
    "source": {
        "label": "ACR Appropriateness Criteria",
        "url": "https://acsearch.acr.org/docs/69483/Narrative/",
        "topic": {"system": "urn:lbp-cds:card-topic", "code": "imaging-without-red-flags"},
    },
    "selectionBehavior": "at-most-one",
    "suggestions": [
        {
            "label": "Remove the MRI order",
            "uuid": "u-1",
            "isRecommended": True,
            "actions": [
                {
                    "type": "delete",
                    "description": "Delete the draft",
                    "resourceId": "ServiceRequest/mri",
                },
                {
                    "type": "create",
                    "description": "Physio",
                    "resource": {"resourceType": "ServiceRequest", "id": "x"},
                },
            ],
        }
    ],
    "links": [{"label": "STarT Back", "url": "https://app/launch", "type": "smart"}],
    "overrideReasons": [{"system": "urn:r", "code": "red-flag", "display": "Red flag present"}],
}


def test_cards_print_readably() -> None:
    text = fire.format_cards("lbp-order-sign", {"cards": [CARD]})
    assert text.startswith("lbp-order-sign: 1 card\n")
    assert "1. WARNING  Lumbar imaging is not recommended" in text
    assert "topic: imaging-without-red-flags" in text
    assert "source: ACR Appropriateness Criteria <https://acsearch.acr.org/" in text
    assert "   | **Episode: 10 days.**\n   | No red flag found." in text
    assert "Suggestions (choose at most one):" in text
    assert "- Remove the MRI order  [recommended]" in text
    assert "delete ServiceRequest/mri: Delete the draft" in text
    assert "create ServiceRequest: Physio" in text
    assert "- STarT Back <https://app/launch> (smart)" in text
    assert "- Red flag present (red-flag)" in text
    assert no_doubled_word(text)
    assert fire.format_cards("lbp-patient-view", {"cards": []}) == "lbp-patient-view: no cards\n"


def _report(status: int, body: object, options: fire.FireOptions | None = None):
    out, err = io.StringIO(), io.StringIO()
    response = httpx.Response(status, json=body)
    code = fire.report(response, "lbp-order-sign", options or _options(), out, err)
    return code, out.getvalue(), err.getvalue()


def test_a_200_prints_cards_or_raw_json() -> None:
    code, out, err = _report(200, {"cards": [CARD]})
    assert (code, err) == (0, "")
    assert "WARNING" in out
    code, out, _ = _report(200, {"cards": [CARD]}, _options(as_json=True))
    assert json.loads(out) == {"cards": [CARD]}


def test_a_412_prints_the_operation_outcome_and_exits_1() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "incomplete",
                "diagnostics": "The FHIR server could not provide: conditions",
                "expression": ["prefetch.conditions"],
            }
        ],
    }
    code, out, err = _report(412, outcome)
    assert code == fire.EXIT_SERVICE_ERROR
    assert out == ""
    assert "answered HTTP 412 Precondition Failed" in err
    assert "error (incomplete): The FHIR server could not provide: conditions" in err
    assert "[prefetch.conditions]" in err
    remote = _report(412, outcome, _options(service_url="http://127.0.0.1:8000"))[2]
    assert "CDS_FHIR_ALLOWLIST" in remote


def test_a_401_from_a_running_service_explains_the_jwt() -> None:
    code, _, err = _report(401, {"resourceType": "OperationOutcome", "issue": []})
    assert code == fire.EXIT_SERVICE_ERROR
    assert "CDS_REQUIRE_AUTH" in err


# ---- the whole command, FHIR mocked at the transport ------------------------------------------


def test_fire_in_process_reads_the_fhir_server(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'cds.db'}")
    with respx.mock(base_url=FHIR, assert_all_called=False) as mock:
        mock.get("/metadata").respond(200, json={"resourceType": "CapabilityStatement"})
        patient = mock.get("/Patient/pt-1").respond(
            200, json={"resourceType": "Patient", "id": "pt-1", "birthDate": "1980-01-01"}
        )
        search = mock.get(url__regex=r"/fhir/[A-Z][A-Za-z]+\?")
        search.respond(200, json={"resourceType": "Bundle", "type": "searchset", "entry": []})
        code = cli.main(
            ["fire", "--fhir-server", FHIR, "--patient", "pt-1", "--hook", "patient-view", "--json"]
        )
        assert patient.called
        assert search.called
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out) == {"cards": []}


def test_fire_reports_a_failing_fhir_server_as_412(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'cds.db'}")
    with respx.mock(base_url=FHIR, assert_all_called=False) as mock:
        mock.get("/metadata").respond(200, json={"resourceType": "CapabilityStatement"})
        mock.get(url__regex=r"/fhir/[A-Z]").respond(503)
        code = cli.main(
            ["fire", "--fhir-server", FHIR, "--patient", "pt-1", "--hook", "patient-view"]
        )
    err = capsys.readouterr().err
    assert code == fire.EXIT_SERVICE_ERROR
    assert "HTTP 412" in err
    assert "could not provide" in err


def test_fire_exits_3_when_nothing_answers(capsys) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{FHIR}/metadata").mock(side_effect=httpx.ConnectError("refused"))
        mock.post("http://127.0.0.1:8000/cds-services/lbp-patient-view").mock(
            side_effect=httpx.ConnectError("refused")
        )
        local = cli.main(
            ["fire", "--fhir-server", FHIR, "--patient", "p", "--hook", "patient-view"]
        )
        assert "cannot reach the FHIR server" in capsys.readouterr().err
        remote = cli.main(
            [
                "fire",
                "--fhir-server",
                FHIR,
                "--patient",
                "p",
                "--hook",
                "patient-view",
                "--service-url",
                "http://127.0.0.1:8000/",
            ]
        )
        assert "cannot reach the CDS service at http://127.0.0.1:8000/cds-services/" in (
            capsys.readouterr().err
        )
    assert (local, remote) == (fire.EXIT_UNREACHABLE, fire.EXIT_UNREACHABLE)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fhir-server", "ftp://x", "--patient", "p", "--hook", "patient-view"], "http(s) URL"),
        (
            [
                "--fhir-server",
                FHIR,
                "--patient",
                "p",
                "--hook",
                "patient-view",
                "--order",
                "x.json",
            ],
            "--order is for the order-select and order-sign hooks",
        ),
    ],
)
def test_fire_usage_errors_exit_2(capsys, argv: list[str], message: str) -> None:
    assert cli.main(["fire", *argv]) == fire.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_fire_posts_to_a_running_service(capsys) -> None:
    with respx.mock() as mock:
        mock.get(f"{FHIR}/metadata").respond(200, json={"resourceType": "CapabilityStatement"})
        mock.get(f"{FHIR}/Patient/p").respond(200, json={"resourceType": "Patient", "id": "p"})
        route = mock.post("http://127.0.0.1:8000/cds-services/lbp-patient-view").respond(
            200, json={"cards": [CARD]}
        )
        code = cli.main(
            [
                "fire",
                "--fhir-server",
                FHIR,
                "--patient",
                "p",
                "--hook",
                "patient-view",
                "--service-url",
                "http://127.0.0.1:8000",
                "--token",
                "tok",
            ]
        )
    assert code == 0
    sent = json.loads(route.calls[0].request.content)
    assert sent["fhirAuthorization"]["access_token"] == "tok"
    assert sent["context"]["patientId"] == "p"
    assert "1. WARNING" in capsys.readouterr().out


# ---- seed ----------------------------------------------------------------------------------


def test_seed_puts_shared_bundles_first_and_expands_directories(tmp_path: Path) -> None:
    for name in ("b.json", "00-shared.json", "a.json"):
        (tmp_path / name).write_text("{}")
    other = tmp_path / "z.json"
    files = seed.expand([tmp_path / "b.json", tmp_path, other])
    assert [f.name for f in files] == ["00-shared.json", "b.json", "a.json", "z.json"]


def test_prepare_bundle_replaces_tokens_and_fills_put_full_urls() -> None:
    raw = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "id": "p", "birthDate": "@today-70y"},
                "request": {"method": "PUT", "url": "Patient/p"},
            },
            {
                "fullUrl": "urn:uuid:1",
                "resource": {"resourceType": "Condition"},
                "request": {"method": "POST", "url": "Condition"},
            },
        ],
    }
    bundle = seed.prepare_bundle(raw, Path("x.json"), TODAY, FHIR)
    assert bundle["entry"][0]["resource"]["birthDate"] == "1956-11-22"
    assert bundle["entry"][0]["fullUrl"] == f"{FHIR}/Patient/p"
    assert bundle["entry"][1]["fullUrl"] == "urn:uuid:1"
    with pytest.raises(fire.ToolError, match="not a transaction"):
        seed.prepare_bundle({**raw, "type": "collection"}, Path("x.json"), TODAY, FHIR)


def test_response_summary_counts_and_finds_patient_ids() -> None:
    sent = {
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1"}},
            {"resource": {"resourceType": "Patient"}},
            {"resource": {"resourceType": "Condition", "id": "c"}},
        ]
    }
    answer = {
        "entry": [
            {"response": {"status": "200 OK", "location": "Patient/p1/_history/2"}},
            {"response": {"status": "201 Created", "location": f"{FHIR}/Patient/9/_history/1"}},
            {"response": {"status": "201 Created"}},
        ]
    }
    result = seed.summarise_response(sent, answer, seed.LoadResult(Path("x"), 3))
    assert (result.created, result.updated) == (2, 1)
    assert result.patient_ids == ["p1", "9"]


def test_seed_reports_a_refused_bundle_with_the_server_diagnostics(tmp_path, capsys) -> None:
    path = tmp_path / "p.json"
    entry = {
        "resource": {
            "resourceType": "Encounter",
            "id": "e",
            "participant": [{"individual": {"reference": "Practitioner?identifier=x|1"}}],
        },
        "request": {"method": "PUT", "url": "Encounter/e"},
    }
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [entry]}))
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": "matched nothing"}],
    }
    with respx.mock() as mock:
        mock.post(FHIR).respond(404, json=outcome)
        code = cli.main(["seed", "--fhir-server", FHIR, str(path)])
    err = capsys.readouterr().err
    assert code == fire.EXIT_SERVICE_ERROR
    assert "p.json: the FHIR server answered HTTP 404" in err
    assert "error (not-found): matched nothing" in err
    assert "00-shared-orgs-practitioners" in err


def test_seed_exits_3_when_the_server_is_down(capsys) -> None:
    with respx.mock() as mock:
        mock.post(FHIR).mock(side_effect=httpx.ConnectError("refused"))
        code = cli.main(["seed", "--fhir-server", FHIR, str(SEED / "lbp-demo-imaging.json")])
    assert code == fire.EXIT_UNREACHABLE
    assert "cannot reach the FHIR server" in capsys.readouterr().err


# ---- the seed fixtures ------------------------------------------------------------------------


SCENARIOS = seed.load_manifest(SEED)


def test_every_seed_bundle_has_a_scenario_and_every_card_topic_is_shown() -> None:
    bundles = sorted(p.name for p in SEED.glob("*.json"))
    assert sorted(SCENARIOS) == bundles
    shown = {e.split(":")[0] for s in SCENARIOS.values() for e in s.expect}
    assert shown == {t.value for t in Topic}
    assert any(not s.expect for s in SCENARIOS.values())  # a scenario with no card
    for scenario in SCENARIOS.values():
        assert scenario.patient.startswith("lbp-demo-")
        for order in scenario.orders:
            assert order.is_file(), order
        assert bool(scenario.orders) == (scenario.hook in fire.ORDER_HOOKS)


def test_manifest_order_paths_are_relative_to_the_seed_directory() -> None:
    raw = tomllib.loads((SEED / "scenarios.toml").read_text())
    for item in raw["scenario"]:
        for order in item.get("orders", []):
            assert not Path(order).is_absolute()


@pytest.mark.parametrize("name", sorted(p.name for p in SEED.glob("*.json")))
def test_seed_bundles_are_valid_r4_with_stable_ids_after_tokens(name: str) -> None:
    raw = json.loads((SEED / name).read_text())
    bundle = seed.prepare_bundle(raw, SEED / name, TODAY, FHIR)
    get_fhir_model_class("Bundle").model_validate(bundle)
    patients = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert resource["id"].startswith("lbp-demo-")
        assert entry["request"] == {
            "method": "PUT",
            "url": f"{resource['resourceType']}/{resource['id']}",
        }
        if resource["resourceType"] == "Patient":
            patients.append(resource["id"])
        else:
            assert resource["subject"]["reference"] == f"Patient/{SCENARIOS[name].patient}"
    assert patients == [SCENARIOS[name].patient]
    assert "@today" not in json.dumps(bundle)


# The two red-flag screen demo patients: the screen each holds, read as the cards read it.
SCREEN_SCENARIOS = {
    "lbp-demo-red-flag-saddle.json": ["saddle-anaesthesia"],
    "lbp-demo-red-flag-negative.json": [],
}


@pytest.mark.parametrize(("name", "yes"), sorted(SCREEN_SCENARIOS.items()))
def test_screen_scenarios_hold_a_counting_screen_in_the_questionnaires_shape(
    name: str, yes: list[str]
) -> None:
    bundle = seed.prepare_bundle(json.loads((SEED / name).read_text()), SEED / name, TODAY, FHIR)
    resources = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    response = resources["QuestionnaireResponse"]
    questionnaire = red_flags_app.questionnaire("http://127.0.0.1:8000")
    # What the app writes: the canonical with its version, every item by linkId with its text.
    assert response["questionnaire"] == f"{questionnaire['url']}|{questionnaire['version']}"
    assert [(i["linkId"], i["text"]) for i in response["item"]] == [
        (i["linkId"], i["text"]) for i in questionnaire["item"]
    ]
    screen = read_screen(QuestionnaireResponse.model_validate(response))
    assert screen is not None
    assert [i.link_id for i in screen.yes] == yes
    assert len(screen.no) == 12 - len(yes) and not screen.unanswered
    # It counts on seed day: within the 14-day window and not before the episode onset.
    onset = date.fromisoformat(resources["Condition"]["onsetDateTime"])
    assert onset < screen.on < TODAY
    assert latest_screen([QuestionnaireResponse.model_validate(response)], TODAY, 14, onset)


@pytest.mark.parametrize("path", sorted((SEED / "orders").glob("*.json")), ids=lambda p: p.name)
def test_order_files_are_valid_draft_orders(path: Path) -> None:
    (order,) = fire.load_orders([path], TODAY, "lbp-demo-x")
    get_fhir_model_class(order["resourceType"]).model_validate(order)
    assert order["status"] == "draft"
    assert order["subject"] == {"reference": "Patient/lbp-demo-x"}
    assert order["id"].startswith("lbp-demo-")


# ---- issue 14: unknown patients, order hooks without --order, no doubled words ------------------


def no_doubled_word(text: str) -> bool:
    words = [w.strip(":,.()[]").lower() for w in text.split()]
    return not any(a == b and a.isalnum() for a, b in zip(words, words[1:], strict=False))


def test_action_and_reason_lines_say_each_word_once() -> None:
    task = {
        "type": "create",
        "description": "Task: complete the STarT Back questionnaire",
        "resource": {"resourceType": "Task", "id": "t-1"},
    }
    assert fire._action_line(task) == "create Task: complete the STarT Back questionnaire"
    update = {
        "type": "update",
        "description": "MedicationRequest: shorten the supply to 7 days",
        "resource": {"resourceType": "MedicationRequest", "id": "m-1"},
    }
    assert fire._action_line(update) == (
        "update MedicationRequest/m-1: shorten the supply to 7 days"
    )
    card = {
        **CARD,
        "suggestions": [{"label": "Screen", "uuid": "u-2", "actions": [task]}],
        "overrideReasons": [
            {"system": "urn:lbp-cds:override-reason", "code": "patient-declined"},
            {"system": "urn:r", "code": "c", "display": "c"},
        ],
    }
    text = fire.format_cards("lbp-patient-view", {"cards": [card]})
    assert "create Task: complete the STarT Back" in text
    assert "     - patient-declined\n" in text
    assert "     - c\n" in text or text.endswith("     - c")
    assert no_doubled_word(text), text


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
def test_order_hooks_without_an_order_exit_2_naming_order(capsys, hook: str) -> None:
    with respx.mock() as mock:  # nothing is sent
        code = cli.main(["fire", "--fhir-server", FHIR, "--patient", "p", "--hook", hook])
    assert code == fire.EXIT_USAGE == 2
    assert not mock.calls
    err = capsys.readouterr().err
    assert f"{hook} needs the draft order: give --order FILE" in err


def test_fire_exits_1_for_a_patient_the_fhir_server_does_not_have(
    monkeypatch, tmp_path, capsys
) -> None:
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'cds.db'}")
    outcome = {"resourceType": "OperationOutcome", "issue": [{"code": "not-found"}]}
    with respx.mock(base_url=FHIR, assert_all_called=False) as mock:
        mock.get("/metadata").respond(200, json={"resourceType": "CapabilityStatement"})
        mock.get("/Patient/nobody").respond(404, json=outcome)
        remote = mock.post("http://127.0.0.1:8000/cds-services/lbp-patient-view")
        argv = ["fire", "--fhir-server", FHIR, "--patient", "nobody", "--hook", "patient-view"]
        local = cli.main(argv)
        local_err = capsys.readouterr()
        via_service = cli.main([*argv, "--service-url", "http://127.0.0.1:8000"])
        remote_err = capsys.readouterr().err
        assert not remote.called
    assert (local, via_service) == (fire.EXIT_NO_PATIENT, fire.EXIT_NO_PATIENT) == (1, 1)
    assert local_err.out == ""
    assert "has no patient 'nobody' (HTTP 404 on Patient/nobody)" in local_err.err
    assert "no cards" not in local_err.err
    assert "has no patient 'nobody'" in remote_err


def test_a_remote_service_is_still_called_when_the_fhir_server_is_out_of_reach(capsys) -> None:
    with respx.mock() as mock:
        mock.get(f"{FHIR}/metadata").mock(side_effect=httpx.ConnectError("refused"))
        mock.post("http://127.0.0.1:8000/cds-services/lbp-patient-view").respond(
            200, json={"cards": []}
        )
        code = cli.main(
            ["fire", "--fhir-server", FHIR, "--patient", "p", "--hook", "patient-view"]
            + ["--service-url", "http://127.0.0.1:8000"]
        )
    assert code == 0
    assert capsys.readouterr().out == "lbp-patient-view: no cards\n"
