"""Packaging: the wheel (built as the Dockerfile builds it) has no setuptools warning, an SPDX
licence and the data `seed` and `fire` read, found from outside the repository; the lock files pin
pyproject's dependencies with hashes; the Makefile installs runtime-only for `make run` and layers
dev on top for the tests; the Dockerfile uses a pinned base image and the runtime lock only."""

from __future__ import annotations

import email.parser
import fnmatch
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import resources
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cds_service.tools import fire, seed
from tests.factories import TODAY
from tests.servers import ROOT
from tests.wheel import DOCKERFILE, BuiltWheel, build_stage_sources, env_with_only

BUNDLED = ROOT / "cds_service" / "tools" / "fixtures"
LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Warning classes a build backend prints (BuildBackendWarning, SetuptoolsDeprecationWarning, ...);
# pip's own "WARNING:" lines about this machine's package indexes are not the project's.
WARNING_CLASS = re.compile(r"\b[A-Z][a-z]\w*Warning\b")


def wheel_files(wheel: BuiltWheel) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel.path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def dist_info(files: dict[str, bytes], name: str) -> str:
    (found,) = [n for n in files if re.fullmatch(rf"cds_service-[^/]+\.dist-info/{name}", n)]
    return files[found].decode()


# ---- the wheel --------------------------------------------------------------------------------


def test_the_wheel_builds_without_a_setuptools_warning(built_wheel: BuiltWheel) -> None:
    noted = [
        line
        for line in built_wheel.log.splitlines()
        if WARNING_CLASS.search(line) or "deprecated" in line.lower()
    ]
    assert noted == []


def test_the_wheel_metadata_names_the_spdx_licence(built_wheel: BuiltWheel) -> None:
    files = wheel_files(built_wheel)
    metadata = email.parser.Parser().parsestr(dist_info(files, "METADATA"))
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    # setuptools refuses a License classifier next to an SPDX expression.
    assert not [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    assert metadata.get_all("Project-URL")
    assert metadata["Keywords"]
    licence = dist_info(files, "licenses/LICENSE")
    assert licence == (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in licence


def test_the_wheel_ships_every_file_seed_and_fire_read(built_wheel: BuiltWheel) -> None:
    shipped = {n for n in wheel_files(built_wheel) if n.startswith("cds_service/tools/fixtures/")}
    in_repository = {
        f"cds_service/tools/fixtures/{p.relative_to(BUNDLED).as_posix()}"
        for p in BUNDLED.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped == in_repository
    seed_bundles = {
        f"cds_service/tools/fixtures/seed/{p.name}" for p in (BUNDLED / "seed").glob("*.json")
    }
    assert len(seed_bundles) == 11  # one per card topic and the two red-flag screen patients
    assert seed_bundles <= shipped
    assert "cds_service/tools/fixtures/seed/scenarios.toml" in shipped
    assert "cds_service/tools/fixtures/seed/orders/lumbar-mri.json" in shipped
    assert "cds_service/tools/fixtures/synthea/00-shared-orgs-practitioners.transaction.json" in (
        shipped
    )


def test_the_installed_tools_find_their_files_outside_the_repository(
    installed_wheel: Path, tmp_path: Path
) -> None:
    script = (
        "import json\n"
        "from cds_service.tools import bundled, fire, seed\n"
        "scenarios = seed.load_manifest(bundled.seed_dir()).values()\n"
        "print(json.dumps({'module': seed.__file__,\n"
        "    'files': [str(p) for p in seed.default_files()],\n"
        "    'orders': [str(o) for s in scenarios for o in s.orders],\n"
        "    'example': fire.example_order()}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env_with_only(installed_wheel),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    data = installed_wheel / "cds_service" / "tools" / "fixtures"
    assert Path(found["module"]).is_relative_to(installed_wheel)
    files = [Path(f) for f in found["files"]]
    expected = sorted(p.name for p in (BUNDLED / "synthea").glob("*.transaction.json")) + sorted(
        p.name for p in (BUNDLED / "seed").glob("*.json")
    )
    assert [f.name for f in files] == expected
    orders = [Path(o) for o in found["orders"]]
    assert orders
    for path in [*files, *orders, Path(found["example"])]:
        assert path.is_relative_to(data), path
        assert path.is_file(), path


def test_seed_says_so_when_the_bundled_data_are_zipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("cds_service/tools/fixtures/seed/lbp-demo-imaging.json", "{}")
    monkeypatch.setattr(
        resources,
        "files",
        lambda package: zipfile.Path(archive, package.replace(".", "/") + "/"),
    )
    out, err = io.StringIO(), io.StringIO()
    code = seed.run("http://127.0.0.1:9999/fhir", [], out, err, today=TODAY)
    assert code == fire.EXIT_USAGE
    assert "the bundled fixtures are inside an archive" in err.getvalue()
    assert "name the bundle files to load" in err.getvalue()
    assert fire.example_order() == "lumbar-mri.json"


def test_seed_says_so_when_the_bundled_data_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "files", lambda _package: tmp_path)
    out, err = io.StringIO(), io.StringIO()
    code = seed.run("http://127.0.0.1:9999/fhir", [], out, err, today=TODAY)
    assert code == fire.EXIT_USAGE
    assert f"the bundled fixtures are missing: no directory {tmp_path / 'fixtures'}" in (
        err.getvalue()
    )


# ---- the lock files ---------------------------------------------------------------------------


def read_lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (pinned version, hashes) of a `uv pip compile --generate-hashes` file."""
    pins: dict[str, tuple[str, list[str]]] = {}
    for line in re.sub(r"\\\n", " ", path.read_text()).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement, *hashes = line.split(" --hash=")
        parsed = Requirement(requirement.strip())
        (specifier,) = parsed.specifier
        assert specifier.operator == "==", line
        pins[canonical(parsed.name)] = (specifier.version, [h.strip() for h in hashes])
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_locks_pin_every_dependency_of_pyproject_with_hashes() -> None:
    runtime, dev = read_lock(LOCKS / "runtime.txt"), read_lock(LOCKS / "dev.txt")
    project = PYPROJECT["project"]
    for lock, wanted in (
        (runtime, project["dependencies"]),
        (dev, [*project["dependencies"], *project["optional-dependencies"]["dev"]]),
    ):
        for text in wanted:
            requirement = Requirement(text)
            name = canonical(requirement.name)
            assert name in lock, f"{name} is not in the lock: run make lock"
            assert requirement.specifier.contains(lock[name][0]), (name, lock[name][0])
        for name, (_, hashes) in lock.items():
            assert hashes and all(h.startswith("sha256:") for h in hashes), name
    assert "prometheus-client" in runtime
    assert not {"pytest", "mypy", "playwright", "schemathesis"} & set(runtime)
    assert {n: v for n, (v, _) in runtime.items()} == {
        n: v for n, (v, _) in dev.items() if n in runtime
    }


def test_the_installer_lock_pins_the_makefiles_uv() -> None:
    version = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert version
    assert read_lock(LOCKS / "uv.txt")["uv"][0] == version.group(1)


# ---- the Makefile -----------------------------------------------------------------------------


@pytest.fixture
def make_copy(tmp_path: Path) -> Path:
    """The Makefile and the files its install steps depend on, with no venv: `make -n` shows
    what each target would install."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(LOCKS, tmp_path / "requirements")
    return tmp_path


def dry_run(directory: Path, target: str) -> list[str]:
    result = subprocess.run(
        ["make", "-n", target],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if "pip install" in line]


def set_mtimes(directory: Path, seconds: dict[str, int]) -> None:
    for name, when in seconds.items():
        path = directory / name
        path.parent.mkdir(exist_ok=True)
        path.touch()
        os.utime(path, (when, when))


def test_make_run_installs_the_runtime_lock_only(make_copy: Path) -> None:
    installs = dry_run(make_copy, "run")
    assert any("-r requirements/uv.txt" in line for line in installs)
    assert any("--require-hashes -r requirements/runtime.txt" in line for line in installs)
    assert any("--no-deps -e ." in line for line in installs)
    assert not [line for line in installs if "dev.txt" in line or "[dev]" in line]


def test_make_stamps_upgrade_a_run_only_venv_and_follow_pyproject_and_the_locks(
    make_copy: Path,
) -> None:
    inputs = ("pyproject.toml", "requirements/uv.txt", "requirements/runtime.txt")
    set_mtimes(make_copy, dict.fromkeys((*inputs, "requirements/dev.txt"), 1000))
    # `make run` done once: the dev tools are still missing, so the tests install them (only).
    set_mtimes(make_copy, {".make-stamps/uv": 2000, ".make-stamps/runtime": 2001})
    assert dry_run(make_copy, "run") == []
    lint = dry_run(make_copy, "lint")
    assert len(lint) == 1
    assert "-r requirements/dev.txt" in lint[0]

    # Everything installed, then pyproject.toml edited: both layers are redone.
    set_mtimes(make_copy, {".make-stamps/dev": 2002, "pyproject.toml": 3000})
    assert len(dry_run(make_copy, "run")) == 2
    lint = dry_run(make_copy, "lint")
    assert "-r requirements/runtime.txt" in lint[0]
    assert "-r requirements/dev.txt" in lint[-1]

    # Only the dev lock changed: `make run` installs nothing, the tests the dev lock.
    set_mtimes(make_copy, {"pyproject.toml": 1000, "requirements/dev.txt": 3000})
    assert dry_run(make_copy, "run") == []
    assert len(dry_run(make_copy, "lint")) == 1


# ---- the Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[str]:
    """Instructions with their continuation lines joined, comments dropped."""
    text = "\n".join(
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    return [" ".join(i.split()) for i in re.sub(r"\\\n", " ", text).splitlines() if i.strip()]


def test_both_base_images_are_pinned_by_digest() -> None:
    froms = [i for i in dockerfile_instructions() if i.startswith("FROM ")]
    assert len(froms) == 2
    for instruction in froms:
        assert re.fullmatch(r"FROM python:3\.11-slim@sha256:[0-9a-f]{64}( AS \w+)?", instruction), (
            instruction
        )


def test_the_image_installs_the_runtime_lock_and_the_wheel_without_dependencies() -> None:
    instructions = dockerfile_instructions()
    copied = [i for i in instructions if i.startswith("COPY requirements/runtime.txt ")]
    assert len(copied) == 1
    lock_in_image = copied[0].split()[-1]
    installs = [i for i in instructions if i.startswith("RUN ") and "pip install" in i]
    assert len(installs) == 2
    lock_install, wheel_install = installs
    assert f"--require-hashes --no-deps -r {lock_in_image}" in lock_install
    assert "--no-deps /wheels/*.whl" in wheel_install
    assert "dev" not in " ".join(installs)
    assert "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 CDS_DATA_DIR=/var/lib/cds-service" in (
        instructions
    )
    assert "CDS_DATABASE_URL" not in DOCKERFILE.read_text()


def test_the_build_context_keeps_what_the_image_needs() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = [
        "requirements/runtime.txt",
        *build_stage_sources(),
        "cds_service/tools/fixtures/seed/scenarios.toml",
    ]
    assert "LICENSE" in needed
    for path in needed:
        parts = Path(path).parts
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        hits = [(p, pat) for p in prefixes for pat in ignored if fnmatch.fnmatch(p, pat)]
        assert hits == [], hits
