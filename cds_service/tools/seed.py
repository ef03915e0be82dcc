"""`cds-service seed`: load fixture scenarios into a FHIR server, then say how to fire each one.

Every file is a FHIR transaction (or batch) Bundle, POSTed to the server base. The shared
Synthea organisations and practitioners (`00-*` files) go first, because the Synthea patients
refer to them with conditional references (`Practitioner?identifier=...|NPI`) that a strict
server resolves while loading. Date tokens (`@today-10d`, see tokens.py) are replaced with real
dates at seed time, so the scenarios stay clinically recent.

`seed/scenarios.toml` (in the bundled fixtures, see bundled.py) names, per scenario file, its patient, the hook and order
files that show its card, and the cards RULES.md expects; the seeder prints that as a ready
`cds-service fire` command line.
"""

from __future__ import annotations

import json
import shlex
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TextIO

import httpx

from cds_service.tools import bundled
from cds_service.tools.fire import (
    EXIT_OK,
    EXIT_SERVICE_ERROR,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    HOOKS,
    ToolError,
    check_http_url,
    outcome_lines,
    read_json,
)
from cds_service.tools.tokens import TokenError, resolve_tokens

MANIFEST = "scenarios.toml"
SHARED_SYNTHEA = "00-shared-orgs-practitioners.transaction.json"


@dataclass(frozen=True)
class Scenario:
    """One seeded scenario: the patient, and the `fire` call that shows its cards."""

    file: str
    patient: str
    title: str
    hook: str
    orders: tuple[Path, ...] = ()
    expect: tuple[str, ...] = ()  # "topic:indicator" as RULES.md says; empty = no card


@dataclass
class LoadResult:
    path: Path
    entries: int
    created: int = 0
    updated: int = 0
    patient_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0


def default_files() -> list[Path]:
    """The bundled Synthea bundles, then the bundled scenarios (the package's own data)."""
    try:
        synthea, scenarios = bundled.synthea_dir(), bundled.seed_dir()
    except bundled.BundledDataMissing as exc:
        raise ToolError(f"{exc}; or name the bundle files to load", EXIT_USAGE) from exc
    return sorted(synthea.glob("*.transaction.json")) + sorted(scenarios.glob("*.json"))


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files as given (a directory stands for its *.json files), shared `00-*` bundles first."""
    files: list[Path] = []
    for path in paths:
        found = sorted(path.glob("*.json")) if path.is_dir() else [path]
        files.extend(f for f in found if f not in files)
    return sorted(files, key=lambda f: not f.name.startswith("00-"))


def load_manifest(directory: Path) -> dict[str, Scenario]:
    path = directory / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ToolError(f"{path}: {exc}", EXIT_USAGE) from exc
    scenarios: dict[str, Scenario] = {}
    for item in data.get("scenario", []):
        hook = item.get("hook")
        if hook not in HOOKS:
            raise ToolError(f"{path}: scenario {item.get('file')!r} has hook {hook!r}", EXIT_USAGE)
        scenario = Scenario(
            file=item["file"],
            patient=item["patient"],
            title=item["title"],
            hook=hook,
            orders=tuple(directory / o for o in item.get("orders", [])),
            expect=tuple(item.get("expect", [])),
        )
        scenarios[scenario.file] = scenario
    return scenarios


def prepare_bundle(raw: Any, path: Path, today: date, base_url: str) -> dict[str, Any]:
    """Tokens replaced; PUT entries without a fullUrl get the absolute one their id implies."""
    if not isinstance(raw, dict) or raw.get("resourceType") != "Bundle":
        raise ToolError(f"{path} is not a FHIR Bundle", EXIT_USAGE)
    if raw.get("type") not in ("transaction", "batch"):
        raise ToolError(f"{path} is a {raw.get('type')!r} Bundle, not a transaction", EXIT_USAGE)
    try:
        bundle: dict[str, Any] = resolve_tokens(raw, today)
    except TokenError as exc:
        raise ToolError(f"{path}: {exc}", EXIT_USAGE) from exc
    for entry in bundle.get("entry") or []:
        request = entry.get("request") or {}
        url = str(request.get("url") or "")
        if "fullUrl" not in entry and request.get("method") == "PUT" and url and "?" not in url:
            entry["fullUrl"] = f"{base_url}/{url}"
    return bundle


def _resource_id(location: str, kind: str) -> str | None:
    """`http://x/fhir/Patient/p1/_history/1` or `Patient/p1` -> `p1` (for kind Patient)."""
    parts = location.split("/")
    for i, part in enumerate(parts[:-1]):
        if part == kind:
            return parts[i + 1]
    return None


def summarise_response(
    bundle: dict[str, Any], response: dict[str, Any], result: LoadResult
) -> LoadResult:
    requests = bundle.get("entry") or []
    answers = response.get("entry") or []
    for sent, answer in zip(requests, answers, strict=False):
        status = str((answer.get("response") or {}).get("status", ""))
        if status.startswith("201"):
            result.created += 1
        elif status.startswith("200"):
            result.updated += 1
        resource = sent.get("resource") or {}
        if resource.get("resourceType") != "Patient":
            continue
        location = (answer.get("response") or {}).get("location") or ""
        patient_id = _resource_id(location, "Patient") or resource.get("id")
        if patient_id and patient_id not in result.patient_ids:
            result.patient_ids.append(patient_id)
    return result


def post_bundle(
    client: httpx.Client, base_url: str, path: Path, bundle: dict[str, Any]
) -> dict[str, Any]:
    try:
        response = client.post(base_url, content=json.dumps(bundle).encode())
    except httpx.HTTPError as exc:
        raise ToolError(
            f"cannot reach the FHIR server at {base_url} ({type(exc).__name__}: {exc})",
            EXIT_UNREACHABLE,
        ) from exc
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code >= 300 or not isinstance(body, dict):
        lines = outcome_lines(body) or [f"  {response.text[:500]}"]
        message = (
            f"{path.name}: the FHIR server answered HTTP {response.status_code}\n"
            + "\n".join(lines)
        )
        if "?identifier=" in json.dumps(bundle):
            message += (
                "\nThis bundle uses conditional references (Practitioner?identifier=...): load "
                f"the bundled {SHARED_SYNTHEA} first (seed with no files does)."
            )
        raise ToolError(message, EXIT_SERVICE_ERROR)
    return body


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


def fire_command(scenario: Scenario, fhir_server: str, token_given: bool) -> str:
    words = ["cds-service", "fire", "--fhir-server", fhir_server]
    words += ["--patient", scenario.patient, "--hook", scenario.hook]
    for order in scenario.orders:
        words += ["--order", _display_path(order)]
    command = shlex.join(words)
    return command + (" --token <TOKEN>" if token_given else "")


def run(
    fhir_server: str,
    paths: Sequence[Path],
    out: TextIO,
    err: TextIO,
    *,
    today: date,
    token: str | None = None,
) -> int:
    try:
        base_url = check_http_url(fhir_server, "--fhir-server")
        files = expand(paths) if paths else default_files()
        if not files:
            raise ToolError("no bundle files to load", EXIT_USAGE)
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        results: list[LoadResult] = []
        with httpx.Client(headers=headers, timeout=180) as client:
            for number, path in enumerate(files, start=1):
                bundle = prepare_bundle(read_json(path), path, today, base_url)
                started = time.perf_counter()
                response = post_bundle(client, base_url, path, bundle)
                result = summarise_response(
                    bundle, response, LoadResult(path, len(bundle.get("entry") or []))
                )
                result.seconds = time.perf_counter() - started
                results.append(result)
                err.write(
                    f"[{number}/{len(files)}] {path.name}: {result.entries} entries, "
                    f"{result.created} created, {result.updated} updated, "
                    f"{len(result.patient_ids)} patient(s) in {result.seconds:.2f} s\n"
                )
                err.flush()
        scenarios: dict[Path, Scenario] = {}
        for directory in dict.fromkeys(f.parent for f in files):
            for name, scenario in load_manifest(directory).items():
                scenarios[directory / name] = scenario
    except ToolError as exc:
        err.write(f"cds-service seed: {exc.message}\n")
        return exc.exit_code

    out.write(f"Loaded {len(results)} bundles into {base_url}\n\nPatients:\n")
    for result in results:
        for patient_id in result.patient_ids:
            out.write(f"  {patient_id:<40} {result.path.name}\n")
    loaded = {r.path for r in results}
    shown = [scenario for path, scenario in scenarios.items() if path in loaded]
    if shown:
        out.write("\nScenarios (run a line to see its cards):\n")
    for scenario in shown:
        expected = ", ".join(e.replace(":", " ") for e in scenario.expect) or "no card"
        out.write(f"\n  # {scenario.title} -> {expected}\n")
        out.write(f"  {fire_command(scenario, base_url, token is not None)}\n")
    others = [p for r in results if r.path not in scenarios for p in r.patient_ids]
    if others:
        out.write("\nOther patients (chart hooks):\n")
        for patient_id in others:
            words = ["cds-service", "fire", "--fhir-server", base_url]
            words += ["--patient", patient_id, "--hook", "patient-view"]
            out.write(f"  {shlex.join(words)}\n")
    return EXIT_OK
