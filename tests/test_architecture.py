"""House rule: logic/ is pure (standard library, pydantic and itself only)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LOGIC = Path(__file__).resolve().parent.parent / "cds_service" / "logic"
ALLOWED_THIRD_PARTY = {"pydantic"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_logic_imports_only_stdlib_pydantic_and_itself() -> None:
    offenders = []
    for path in LOGIC.rglob("*.py"):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if module.startswith("cds_service.logic") or top == "__future__":
                continue
            if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY:
                continue
            offenders.append(f"{path.relative_to(LOGIC)}: {module}")
    assert not offenders, offenders


def test_logic_has_no_io() -> None:
    """No clock, network or file access in rules (value sets are read through terminology only)."""
    forbidden = (
        "date.today(",
        "datetime.now(",
        "import httpx",
        "import requests",
        " open(",
        "urllib.request",
    )
    for path in LOGIC.rglob("*.py"):
        if path.name == "terminology.py":
            continue
        text = path.read_text(encoding="utf-8")
        for word in forbidden:
            assert word not in text, f"{path.name} uses {word}"
