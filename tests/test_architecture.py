"""House rules on imports: logic/ is pure (standard library, pydantic and itself only), the
STarT Back app does not reach into card rendering, and hook handlers do not import each other."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cds_service"
LOGIC = PACKAGE / "logic"
APPS = PACKAGE / "apps"
HOOKS = PACKAGE / "hooks"
# Modules of hooks/ that the handlers share; every other module there is a handler.
HOOK_HELPERS = {"__init__", "registry", "parsing"}
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


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved, with `from package import module`
    counted as `package.module` too (the name may be a module or an attribute)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_apps_never_import_cards() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in APPS.rglob("*.py")
        for name in imported_names(path)
        if _within(name, "cds_service.cards")
    ]
    assert not offenders, offenders


def test_no_hook_handler_imports_another() -> None:
    handlers = {
        f"cds_service.hooks.{path.stem}"
        for path in HOOKS.glob("*.py")
        if path.stem not in HOOK_HELPERS
    }
    assert {"cds_service.hooks.service_call", "cds_service.hooks.feedback"} <= handlers
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in HOOKS.rglob("*.py")
        for name in imported_names(path)
        for handler in handlers
        if _within(name, handler) and handler != module_name(path)
    ]
    assert not offenders, offenders


CARDS = PACKAGE / "cards"
# What cards/ may take from logic/: the findings (and the types they carry), the guideline
# registry, FHIR wire types and date parsing. Never thresholds (logic.config), the record or the
# chart, value sets (logic.terminology functions) or rule functions: cards word findings, they
# decide nothing clinical.
CARDS_MAY_IMPORT_FROM_LOGIC = {
    "cds_service.logic.findings",
    "cds_service.logic.guidelines",
    "cds_service.logic.fhir",
    "cds_service.logic.dates",
    "cds_service.logic.mme",
    "cds_service.logic.red_flags",
    "cds_service.logic.startback",
    "cds_service.logic.supply",
    "cds_service.logic.terminology",
}


def _logic_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from cds_service.logic... import name` in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if _within(node.module, "cds_service.logic"):
                out.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            out.extend(
                (alias.name, "*")
                for alias in node.names
                if _within(alias.name, "cds_service.logic")
            )
    return out


def test_cards_take_only_findings_types_and_guidelines_from_logic() -> None:
    offenders = []
    for path in CARDS.rglob("*.py"):
        for module, name in _logic_imports(path):
            if _within(module, "cds_service.logic.rules"):
                # From a rule module only its finding types and what they carry (classes).
                if not name[:1].isupper():
                    offenders.append(f"{path.name}: {module}.{name}")
                continue
            if module not in CARDS_MAY_IMPORT_FROM_LOGIC:
                offenders.append(f"{path.name}: {module}.{name}")
            elif module != "cds_service.logic.dates" and not name[:1].isupper():
                # Types and constants only (a function from logic would be a decision).
                offenders.append(f"{path.name}: {module}.{name}")
    assert not offenders, offenders
