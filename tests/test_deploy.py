"""deploy/kubernetes: the manifests are valid Kubernetes objects (strict schemas of pinned
Kubernetes versions, bundled by kubernetes-validate: nothing is downloaded) and agree with the
code they run: settings, routes, command line, ports, the image's user, the shutdown time."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from cds_service.cli import build_parser
from cds_service.config import Settings
from cds_service.logic.config import RuleConfig
from cds_service.settings_check import check_settings
from cds_service.store.card_log_writer import STOP_RETRY_SECONDS
from cds_service.store.db import PING_TIMEOUT_SECONDS
from tests.conftest import StartedClients

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = "kustomization.yaml"
# Not in the kustomization: `kubectl apply -k` must never overwrite the real Secret.
SECRET_TEMPLATE = "secret.example.yaml"
# The oldest Kubernetes the manifests claim (README "Deploying") and the newest schema bundled.
KUBERNETES_VERSIONS = ("1.30", "1.37")

Manifest = dict[str, Any]


def load(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != KUSTOMIZATION)


def objects() -> list[Manifest]:
    return [doc for path in manifest_files() for doc in load(path)]


def one(kind: str) -> Manifest:
    found = [doc for doc in objects() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} in {DEPLOY}, found {len(found)}"
    return found[0]


def pod_specs() -> dict[str, Manifest]:
    """The pod spec of each workload, by kind (Deployment, Job)."""
    return {kind: one(kind)["spec"]["template"]["spec"] for kind in ("Deployment", "Job")}


def containers() -> Iterator[tuple[str, Manifest]]:
    for kind, spec in pod_specs().items():
        for container in spec["containers"]:
            yield kind, container


def server_container() -> Manifest:
    (container,) = pod_specs()["Deployment"]["containers"]
    return container


def container_port(container: Manifest, port: int | str) -> int:
    """A port number, or a port name resolved against the container's ports."""
    if isinstance(port, int):
        return port
    by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port in by_name, f"port name {port!r} is not one of {sorted(by_name)}"
    number: int = by_name[port]
    return number


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def dockerfile_uid() -> int:
    match = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert match, "Dockerfile creates no user with --uid"
    return int(match.group(1))


def settings_field(name: str) -> bool:
    """True when CDS_<name> is a Settings field, or CDS_RULES__<name> a RuleConfig field
    (pydantic-settings: prefix CDS_, nested delimiter __, names case-insensitive)."""
    field = name.removeprefix("CDS_").lower()
    if field.startswith("rules__"):
        return field.removeprefix("rules__") in RuleConfig.model_fields
    return "__" not in field and field in Settings.model_fields


# --- schemas and the kustomization ------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_every_manifest_validates_against_the_strict_schema(path: Path, version: str) -> None:
    """Strict: an unknown or misspelt field fails, as does a kind without a schema."""
    docs = load(path)
    assert docs, f"{path.name} holds no object"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{path.name} {doc['kind']}: {where}: {exc.message} (Kubernetes {version})")


def test_the_kustomization_lists_every_manifest_except_the_secret_template() -> None:
    kustomization = load(DEPLOY / KUSTOMIZATION)[0]
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    assert SECRET_TEMPLATE not in listed, "apply -k would overwrite the real Secret"
    assert set(listed) == {p.name for p in manifest_files()} - {SECRET_TEMPLATE}


@pytest.fixture
def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl (its built-in kustomize) is not installed; the file checks still ran")
    return found


def kustomize(kubectl: str, directory: Path) -> list[Manifest]:
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_kustomize_builds_the_listed_objects_and_they_validate(kubectl: str) -> None:
    built = kustomize(kubectl, DEPLOY)
    expected = [doc for doc in objects() if doc["kind"] != "Secret"]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in expected
    )
    for doc in built:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_one_images_override_sets_the_server_and_the_migration_image(
    kubectl: str, tmp_path: Path
) -> None:
    """The README's overlay: one `images:` entry names the image the Deployment and Job share."""
    shutil.copytree(DEPLOY, tmp_path / "base")
    (image,) = {c["image"] for _, c in containers()}
    name = image.rsplit(":", 1)[0]
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / KUSTOMIZATION).write_text(
        yaml.safe_dump(
            {
                "resources": ["../base"],
                "images": [
                    {"name": name, "newName": "registry.test/cds/lbp-cds", "newTag": "9.9.9"}
                ],
            }
        )
    )
    built = kustomize(kubectl, overlay)
    images = {
        doc["kind"]: [c["image"] for c in doc["spec"]["template"]["spec"]["containers"]]
        for doc in built
        if doc["kind"] in ("Deployment", "Job")
    }
    assert images == {
        "Deployment": ["registry.test/cds/lbp-cds:9.9.9"],
        "Job": ["registry.test/cds/lbp-cds:9.9.9"],
    }


# --- settings ---------------------------------------------------------------------------------


def env_names() -> set[str]:
    """Every environment variable the manifests set: ConfigMap keys (envFrom), the example
    Secret's keys, each container's env entries and the Secret keys they read."""
    names = set(one("ConfigMap")["data"]) | set(one("Secret")["stringData"])
    for _, container in containers():
        for entry in container.get("env", []):
            names.add(entry["name"])
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["key"])
    return names


def test_every_variable_set_is_a_setting() -> None:
    """A misspelt CDS_* name is silently ignored by the service: here it fails."""
    names = env_names()
    assert "CDS_DATABASE_URL" in names
    unknown = sorted(n for n in names if not (n.startswith("CDS_") and settings_field(n)))
    assert not unknown, f"not service settings: {unknown}"


def test_settings_field_knows_rules_and_refuses_unknown_names() -> None:
    assert settings_field("CDS_PUBLIC_BASE_URL")
    assert settings_field("CDS_RULES__MIN_AGE_YEARS")
    assert not settings_field("CDS_RULES__NO_SUCH_RULE")
    assert not settings_field("CDS_PUBLIC_BASE_ULR")


@pytest.fixture
def manifest_environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's environment holding exactly the manifests' CDS_* values."""
    for name in [n for n in os.environ if n.startswith("CDS_")]:
        monkeypatch.delenv(name)
    values: dict[str, str] = {**one("ConfigMap")["data"], **one("Secret")["stringData"]}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_the_manifest_settings_pass_the_start_up_checks(
    manifest_environment: dict[str, str],
) -> None:
    settings = Settings()
    check_settings(settings)
    assert settings.require_auth
    assert settings.trusted_issuers
    assert settings.public_base_url == manifest_environment["CDS_PUBLIC_BASE_URL"]


def test_several_replicas_run_on_postgresql() -> None:
    """SQLite is one process's database: replicas > 1 need the PostgreSQL URL."""
    assert one("Deployment")["spec"]["replicas"] >= 2
    assert one("Secret")["stringData"]["CDS_DATABASE_URL"].startswith("postgresql://")


def test_secret_and_config_references_name_the_objects_defined() -> None:
    config, secret = one("ConfigMap"), one("Secret")
    for kind, container in containers():
        refs = [e["configMapRef"]["name"] for e in container.get("envFrom", [])]
        assert refs == [config["metadata"]["name"]], kind
        for entry in container["env"]:
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"], kind
            assert ref["key"] in secret["stringData"], kind
            assert entry["name"] == ref["key"], kind


def test_the_secret_template_holds_only_fake_values() -> None:
    for name, value in one("Secret")["stringData"].items():
        assert "FAKE" in value, name


# --- routes, command line, ports --------------------------------------------------------------


def probes(container: Manifest) -> dict[str, Manifest]:
    kinds = ("startupProbe", "livenessProbe", "readinessProbe")
    return {kind: container[kind]["httpGet"] for kind in kinds}


def test_the_probe_paths_answer_200(
    settings_factory: Callable[..., Settings], started_clients: StartedClients
) -> None:
    paths = {kind: probe["path"] for kind, probe in probes(server_container()).items()}
    assert paths["readinessProbe"] == "/readyz"
    assert paths["livenessProbe"] == "/healthz"
    client = started_clients.start(settings_factory())
    for kind, path in paths.items():
        assert client.get(path).status_code == 200, f"{kind} {path}"


def test_the_scrape_annotations_name_the_metrics_route(
    settings_factory: Callable[..., Settings], started_clients: StartedClients
) -> None:
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == container_port(server_container(), "http")
    client = started_clients.start(settings_factory(admin_token="scrape-token"))
    answer = client.get(
        annotations["prometheus.io/path"], headers={"Authorization": "Bearer scrape-token"}
    )
    assert answer.status_code == 200


def test_the_server_command_parses_and_serves_on_the_container_port() -> None:
    container = server_container()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert container["command"] == ["cds-service"]
    assert "cds-service" in scripts
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve"
    assert args.host == "0.0.0.0"
    assert args.port == container_port(container, "http")
    assert args.workers >= 2


def test_the_migration_job_command_parses() -> None:
    (container,) = pod_specs()["Job"]["containers"]
    assert container["command"] == ["cds-service"]
    assert container["args"][0] == "migrate"
    args = build_parser().parse_args(container["args"])
    assert args.command == "migrate"


def test_service_probes_and_container_use_one_port() -> None:
    container = server_container()
    port = container_port(container, "http")
    assert port == 8000
    (service_port,) = one("Service")["spec"]["ports"]
    assert service_port["port"] == 80
    assert container_port(container, service_port["targetPort"]) == port
    for kind, probe in probes(container).items():
        assert container_port(container, probe["port"]) == port, kind


def test_selectors_pick_the_server_pods_and_only_them() -> None:
    deployment = one("Deployment")
    server_labels = deployment["spec"]["template"]["metadata"]["labels"]
    job_labels = one("Job")["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": deployment["spec"]["selector"]["matchLabels"],
        "Service": one("Service")["spec"]["selector"],
        "PodDisruptionBudget": one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    }
    for i, spread in enumerate(deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]):
        selectors[f"topologySpreadConstraints[{i}]"] = spread["labelSelector"]["matchLabels"]
    for owner, selector in selectors.items():
        assert selects(selector, server_labels), owner
        assert not selects(selector, job_labels), f"{owner} also selects the migration pod"


def test_the_disruption_budget_lets_a_drain_proceed() -> None:
    budget = one("PodDisruptionBudget")["spec"]["minAvailable"]
    assert 1 <= budget < one("Deployment")["spec"]["replicas"]


# --- the image's user, the file system, shutdown -----------------------------------------------


def test_pods_run_as_the_image_user_without_privileges() -> None:
    uid = dockerfile_uid()
    for kind, spec in pod_specs().items():
        assert spec["securityContext"]["runAsNonRoot"] is True, kind
        assert spec["securityContext"]["runAsUser"] == uid, kind
        assert spec["automountServiceAccountToken"] is False, kind
    for kind, container in containers():
        context = container["securityContext"]
        assert context["runAsUser"] == uid, kind
        assert context["allowPrivilegeEscalation"] is False, kind
        assert context["readOnlyRootFilesystem"] is True, kind
        assert context["capabilities"]["drop"] == ["ALL"], kind


def test_the_writable_directories_are_empty_dirs() -> None:
    """A read-only root file system: /tmp and the image's working directory are emptyDirs."""
    # The last WORKDIR is the runtime stage's (the first is the build stage's).
    workdir = re.findall(r"^WORKDIR (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)[-1]
    for kind, spec in pod_specs().items():
        empty = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        (container,) = spec["containers"]
        mounted = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty}
        assert {"/tmp", workdir} <= mounted, kind


def test_the_grace_period_covers_the_shutdown() -> None:
    """preStop sleep, then the calls in flight (a FHIR fallback query waits at most
    CDS_FHIR_TIMEOUT_SECONDS), then the card log's final write (STOP_RETRY_SECONDS): all before
    SIGKILL, which would lose the cards still in memory."""
    spec = pod_specs()["Deployment"]
    command = server_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    fhir_timeout = Settings.model_fields["fhir_timeout_seconds"].default
    needed = float(command[1]) + fhir_timeout + STOP_RETRY_SECONDS
    assert spec["terminationGracePeriodSeconds"] >= needed


def test_the_readiness_timeout_outlasts_the_store_ping() -> None:
    """/readyz gives the database PING_TIMEOUT_SECONDS, then answers 503 itself: a probe that
    gave up sooner would see a timeout instead of the service's own answer."""
    assert server_container()["readinessProbe"]["timeoutSeconds"] > PING_TIMEOUT_SECONDS
