"""`cds-service serve` and `migrate` as an operator runs them: settings checked once in the parent
process (one stderr line naming the variable, exit 2, also with --workers 2), the public base URL
taken from the address served, the database in CDS_DATA_DIR, migrations applied once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds_service.config import DEFAULT_PUBLIC_BASE_URL, Settings
from cds_service.settings_check import env_variable, load_settings
from cds_service.startup import PUBLIC_BASE_URL_HINT, Served, prepare_to_serve
from cds_service.store.migrations import MIGRATIONS
from tests.factories import back_pain, chart_prefetch, hook_request
from tests.servers import ROOT, free_port, wait_until_ready

# Generous: a start-up that hangs (workers restarting forever) fails the test, it is not timed.
EXIT_TIMEOUT_SECONDS = 120
PASSWORD = "s3cret-pw"

# Every schema version this code knows: a fresh database gets them all, once.
ALL_VERSIONS = [m.version for m in MIGRATIONS]
ALL_VERSIONS_TEXT = ", ".join(map(str, ALL_VERSIONS))


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def clean_env(**cds: str) -> dict[str, str]:
    """This process's environment without its CDS_* settings, plus `cds`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    env.update(cds)
    return env


def run_cli(args: list[str], env: dict[str, str]) -> Finished:
    """Run `python -m cds_service ARGS` to its end; a run that does not end within the timeout is
    killed with its process group (uvicorn's workers included) and fails the test."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_service", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=EXIT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"cds-service {' '.join(args)} was still running; it must exit")
    return Finished(process.returncode, stdout, stderr)


# ---- bad settings: one line, exit 2, before any worker starts ---------------------------------


def bad_settings_cases(tmp_path: Path) -> dict[str, tuple[dict[str, str], str]]:
    """case -> (CDS_* environment on top of auth off, the variable the line must name)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    dead_port = free_port()
    return {
        "auth off on a public base URL": (
            {"CDS_PUBLIC_BASE_URL": "https://cds.hospital.example"},
            "CDS_REQUIRE_AUTH",
        ),
        "auth on, no trusted issuer": ({"CDS_REQUIRE_AUTH": "true"}, "CDS_TRUSTED_ISSUERS"),
        "malformed database URL": (
            {"CDS_DATABASE_URL": f"postgresql://cds:{PASSWORD}@127.0.0.1:port/cds"},
            "CDS_DATABASE_URL",
        ),
        "not a URL at all": ({"CDS_DATABASE_URL": f"cds:{PASSWORD}"}, "CDS_DATABASE_URL"),
        "unknown database driver": (
            {"CDS_DATABASE_URL": f"mysql://cds:{PASSWORD}@127.0.0.1/cds"},
            "CDS_DATABASE_URL",
        ),
        "unreachable PostgreSQL": (
            {"CDS_DATABASE_URL": f"postgresql://cds:{PASSWORD}@127.0.0.1:{dead_port}/cds"},
            "CDS_DATABASE_URL",
        ),
        "rule not a number": ({"CDS_RULES__MIN_AGE_YEARS": "eighteen"}, "CDS_RULES__MIN_AGE_YEARS"),
        "rule out of range": ({"CDS_RULES__MIN_AGE_YEARS": "-1"}, "CDS_RULES__MIN_AGE_YEARS"),
        "trusted issuers not JSON": ({"CDS_TRUSTED_ISSUERS": "{oops"}, "CDS_TRUSTED_ISSUERS"),
        "data dir under a file": ({"CDS_DATA_DIR": str(a_file / "data")}, "CDS_DATA_DIR"),
        "unknown log level": ({"CDS_LOG_LEVEL": "loud"}, "CDS_LOG_LEVEL"),
    }


CASES = [
    "auth off on a public base URL",
    "auth on, no trusted issuer",
    "malformed database URL",
    "not a URL at all",
    "unknown database driver",
    "unreachable PostgreSQL",
    "rule not a number",
    "rule out of range",
    "trusted issuers not JSON",
    "data dir under a file",
    "unknown log level",
]


@pytest.mark.parametrize("workers", [2, 1])
@pytest.mark.parametrize("case", CASES)
def test_bad_setting_stops_serve_with_one_line_naming_the_variable(
    tmp_path: Path, case: str, workers: int
) -> None:
    cds, variable = bad_settings_cases(tmp_path)[case]
    data_dir = tmp_path / "data"
    env = clean_env(**{"CDS_REQUIRE_AUTH": "false", "CDS_DATA_DIR": str(data_dir), **cds})
    port = free_port()

    done = run_cli(["serve", "--workers", str(workers), "--port", str(port)], env)

    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"cds-service: {variable}: ")
    assert PASSWORD not in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not data_dir.exists()  # nothing was created for a start-up that failed
    with pytest.raises(httpx.ConnectError):  # and nothing listens
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


# ---- serve with defaults: base URL from --port, database in the data dir ----------------------


@dataclass(frozen=True)
class Running:
    port: int
    data_dir: Path
    log_path: Path


@pytest.fixture(scope="module")
def served_on_a_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """`serve --workers 2 --port P` with neither CDS_PUBLIC_BASE_URL nor CDS_DATABASE_URL set."""
    root = tmp_path_factory.mktemp("served")
    port, data_dir, log_path = free_port(), root / "state" / "cds", root / "serve.log"
    env = clean_env(CDS_REQUIRE_AUTH="false", CDS_DATA_DIR=str(data_dir))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cds_service", "serve", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/healthz", log_path, seconds=120)
        yield Running(port, data_dir, log_path)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_card_and_questionnaire_links_use_the_port_served(served_on_a_port: Running) -> None:
    base = f"http://127.0.0.1:{served_on_a_port.port}"
    questionnaire = httpx.get(f"{base}/fhir/Questionnaire/startback", timeout=30)
    assert questionnaire.json()["url"] == f"{base}/fhir/Questionnaire/startback"
    # Unknown onset is a new episode: the screening card, whose link opens the app (and whose
    # answer may come from either worker: both were given the same base URL).
    body = hook_request("patient-view", prefetch=chart_prefetch([back_pain(None)]))
    for _ in range(4):
        cards = httpx.post(f"{base}/cds-services/lbp-patient-view", json=body, timeout=30)
        (card,) = cards.json()["cards"]
        assert card["links"][0]["url"].startswith(f"{base}/apps/startback")


def test_default_database_is_created_in_the_data_dir(served_on_a_port: Running) -> None:
    data_dir = served_on_a_port.data_dir
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    with sqlite3.connect(data_dir / "cds-service.db") as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations")]
    assert versions == ALL_VERSIONS


def start_up_lines(log_path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log_path.read_text().splitlines():
        if line.startswith("{") and '"cds-service starting"' in line:
            lines.append(json.loads(line))
    return lines


def test_one_start_up_line_says_what_is_served(served_on_a_port: Running) -> None:
    (line,) = start_up_lines(served_on_a_port.log_path)
    port, data_dir = served_on_a_port.port, served_on_a_port.data_dir
    assert line["listen"] == f"http://127.0.0.1:{port}"
    assert line["public_base_url"] == f"http://127.0.0.1:{port}"
    assert line["database"] == f"sqlite:///{data_dir / 'cds-service.db'}"
    assert line["data_dir"] == str(data_dir)
    assert line["workers"] == 2
    assert line["auth"] == "off"
    assert line["migrations_applied"] == ALL_VERSIONS
    assert line["version"]
    assert "note" not in line  # a loopback --host needs no CDS_PUBLIC_BASE_URL


# ---- the same steps in-process -----------------------------------------------------------------


@pytest.fixture
def operator_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CDS_* setting but auth off and a data dir in tmp_path (restored afterwards)."""
    for name in list(os.environ):
        if name.startswith("CDS_"):
            monkeypatch.delenv(name)
    # Set, then deleted: monkeypatch restores its absence after prepare_to_serve has set it.
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", "http://127.0.0.1")
    monkeypatch.delenv("CDS_PUBLIC_BASE_URL")
    monkeypatch.setenv("CDS_REQUIRE_AUTH", "false")
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_public_base_url_from_a_wildcard_host_is_loopback_with_a_hint(operator_env: Path) -> None:
    ready = prepare_to_serve(Served("0.0.0.0", 9401, 2))
    assert ready.settings.public_base_url == "http://127.0.0.1:9401"
    assert os.environ["CDS_PUBLIC_BASE_URL"] == "http://127.0.0.1:9401"  # what workers read
    assert ready.hint == PUBLIC_BASE_URL_HINT
    assert ready.migrations_applied == ALL_VERSIONS
    assert (operator_env / "cds-service.db").is_file()


@pytest.mark.usefixtures("operator_env")
def test_public_base_url_set_by_the_operator_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", "http://localhost:8443/cds/")
    ready = prepare_to_serve(Served("::1", 9401, 1))
    assert ready.settings.public_base_url == "http://localhost:8443/cds"
    assert ready.hint is None


def test_ipv6_host_gets_brackets() -> None:
    assert Served("::1", 9401, 1).base_url() == "http://[::1]:9401"
    assert Served("::", 9401, 1).base_url() == "http://127.0.0.1:9401"


@pytest.mark.usefixtures("operator_env")
def test_create_app_keeps_the_historic_base_url_when_unset() -> None:
    assert load_settings().public_base_url == DEFAULT_PUBLIC_BASE_URL


@pytest.mark.parametrize(
    ("xdg", "expected"),
    [
        (None, ".local/share/cds-service"),
        ("xdg-data", "xdg-data/cds-service"),
        ("relative/ignored", ".local/share/cds-service"),
    ],
)
def test_data_dir_defaults_to_the_xdg_data_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, xdg: str | None, expected: str
) -> None:
    monkeypatch.delenv("CDS_DATA_DIR", raising=False)
    monkeypatch.delenv("CDS_DATABASE_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg if "relative" in xdg else str(tmp_path / xdg))
    settings = Settings(require_auth=False)
    assert settings.data_dir == tmp_path / expected
    assert settings.database_url == f"sqlite:///{tmp_path / expected / 'cds-service.db'}"


def test_database_url_overrides_the_data_dir(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    settings = Settings(data_dir=tmp_path / "data", database_url=url)
    assert settings.database_url == url
    assert settings.data_dir == tmp_path / "data"


@pytest.mark.parametrize(
    ("loc", "variable"),
    [
        (("rules", "min_age_years"), "CDS_RULES__MIN_AGE_YEARS"),
        (("rules", "no_such_rule"), "CDS_RULES__NO_SUCH_RULE"),
        (
            ("trusted_issuers", "https://ehr.example.org", "IssuerTrust", "jwks"),
            "CDS_TRUSTED_ISSUERS",
        ),
        (("fhir_allowlist", 0), "CDS_FHIR_ALLOWLIST"),
        (("public_base_url",), "CDS_PUBLIC_BASE_URL"),
    ],
)
def test_error_locations_map_to_their_environment_variable(
    loc: tuple[int | str, ...], variable: str
) -> None:
    assert env_variable(loc) == variable


# ---- cds-service migrate ----------------------------------------------------------------------


def test_migrate_applies_once_then_finds_nothing_to_do(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    # Only the database settings matter: auth on with no issuer is serve's business.
    env = clean_env(CDS_DATABASE_URL=f"sqlite:///{database}", CDS_DATA_DIR=str(tmp_path / "d"))

    first = run_cli(["migrate"], env)
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout.startswith(f"applied migrations {ALL_VERSIONS_TEXT} to sqlite:///")
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"schema_migrations", "feedback", "card_log", "jwt_replay"} <= tables

    again = run_cli(["migrate"], env)
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout.startswith("nothing to apply")
    with sqlite3.connect(database) as db:
        assert [
            row[0] for row in db.execute("SELECT version FROM schema_migrations")
        ] == ALL_VERSIONS


@pytest.mark.parametrize(
    ("database_url", "code"),
    [
        (f"mysql://cds:{PASSWORD}@127.0.0.1/cds", 2),
        (f"postgresql://cds:{PASSWORD}@127.0.0.1:{{port}}/cds", 1),
    ],
)
def test_migrate_exit_codes_for_bad_and_unreachable_databases(database_url: str, code: int) -> None:
    env = clean_env(CDS_DATABASE_URL=database_url.format(port=free_port()))
    done = run_cli(["migrate"], env)
    assert done.returncode == code
    (line,) = done.stderr.splitlines()
    assert line.startswith("cds-service: CDS_DATABASE_URL: ")
    assert PASSWORD not in done.stderr
    assert done.stdout == ""
