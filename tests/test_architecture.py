"""The floors of ``docs/architecture.md`` hold: imports point down, and private third-party names live in
``litforge._compat`` only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import litforge

PACKAGE = Path(litforge.__file__).resolve().parent
FEATURES = {"tune", "export", "serve", "testing"}
PIECES = {"models", "data", "callbacks", "resilience", "loggers", "predictions", "processes"}
# What each floor may not import (by top-level litforge package).
FORBIDDEN = {
    "engine": {"cli", *FEATURES},
    **{piece: {"cli", "engine", *FEATURES} for piece in PIECES},
    "_compat": {"cli", "engine", *FEATURES, *PIECES},
    "errors": {"cli", "engine", *FEATURES, *PIECES, "_compat"},
}
THIRD_PARTY = r"(?:torch|lightning|optuna|ray|uvicorn|jsonargparse|litserve|starlette|fastapi|onnx\w*)"
PRIVATE_USES = [
    # from lightning.x import _private (not: import Public as _alias)
    re.compile(rf"from {THIRD_PARTY}[\w.]* import\s+\(?\s*(?:\w+(?:\s+as\s+\w+)?\s*,\s*)*_[A-Za-z]"),
    re.compile(rf"\b{THIRD_PARTY}(?:\.\w+)*\._[a-z]\w*"),  # torch._dynamo, optuna.storages._rdb
    re.compile(
        r"\b(?:trainer|fit_loop|epoch_loop|strategy|logger|cb|callback|checkpoint_callback)\._[a-z]\w*"
    ),
    re.compile(r"\b(?:get|set|has)attr\(\s*(?:trainer|pl_module|logger|cb|callback)[\w.]*,\s*[\"']_[a-z]"),
]


def _modules() -> list[tuple[str, Path]]:
    return [
        (".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts), path)
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def _litforge_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name for name in names if name == "litforge" or name.startswith("litforge.")}


def _floor(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda value: str(value))
def test_imports_point_down(module: str, path: Path) -> None:
    floor = _floor(module)
    if module in ("litforge.cli", "litforge.__main__") or floor == "cli":
        return
    for imported in _litforge_imports(path):
        target = _floor(imported)
        assert target != "cli", f"{module} imports {imported}: only the command line may"
        assert target not in FORBIDDEN.get(floor, set()), f"{module} ({floor}) imports {imported} ({target})"


def test_private_third_party_names_only_in_compat() -> None:
    offenders = []
    for module, path in _modules():
        if _floor(module) == "_compat":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if code.strip().startswith(("'", '"', "``")):
                continue
            if any(pattern.search(code) for pattern in PRIVATE_USES):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "private third-party names outside litforge._compat:\n" + "\n".join(offenders)
