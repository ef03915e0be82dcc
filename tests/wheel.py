"""Build the project's wheel the way the Dockerfile does, and install it away from the repository.

The sources copied are exactly the ones the Dockerfile's build stage COPYs, so a file the build
needs (LICENSE, for `license-files`) and the image lacks fails here first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.servers import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class BuiltWheel:
    path: Path
    log: str  # pip's and the build backend's output (pip wheel --verbose)


def build_stage_sources(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The paths the first stage COPYs from the build context (each to the same relative path)."""
    stage = dockerfile.read_text().split("\nFROM ", 2)[1]
    sources: list[str] = []
    for line in stage.splitlines():
        words = line.split()
        if not words or words[0] != "COPY":
            continue
        *copied, dest = words[1:]
        if any(w.startswith("--") for w in copied):
            continue  # COPY --from=... takes files from another stage, not the context
        if dest != "./" and [f"./{c}" for c in copied] != [dest]:
            raise ValueError(f"{dockerfile}: cannot mirror {line!r}")
        sources.extend(copied)
    return sources


def build_wheel(work: Path) -> BuiltWheel:
    src = work / "src"
    src.mkdir()
    for name in build_stage_sources():
        origin = ROOT / name
        if origin.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(origin, src / name, ignore=ignore)
        else:
            shutil.copy2(origin, src / name)
    dist = work / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--verbose", "-w", str(dist), "."],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log = result.stdout + result.stderr
    if result.returncode != 0:
        raise RuntimeError(f"pip wheel failed:\n{log[-4000:]}")
    (wheel,) = dist.glob("cds_service-*.whl")
    return BuiltWheel(wheel, log)


def install_target(wheel: Path, target: Path) -> Path:
    """The wheel alone (no dependencies) unpacked into `target`, as pip installs it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", target, wheel],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return target


def env_with_only(site: Path) -> dict[str, str]:
    """The environment with `site` as the only PYTHONPATH entry: the wheel's copy of cds_service is
    imported, not the repository's (the dependencies still come from this interpreter's venv)."""
    env = {k: v for k, v in os.environ.items() if not re.match(r"(PYTHONPATH|CDS_)", k)}
    env["PYTHONPATH"] = str(site)
    return env
