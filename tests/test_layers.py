"""The import graph follows the layers: settings, CPU facts, the allocator < core < imaging < inference < HTTP < CLIs.

Checked on the source (every ``import`` statement, including the ones inside functions), so a new
upward import fails here before anyone has to read for it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# service.<first part> -> layer; a module may import its own layer and the ones below
LAYERS: dict[str, int] = {
    "settings": 0,
    "cpus": 0,
    "allocator": 0,
    "core": 1,
    "imaging": 2,
    "inference": 3,
    "http": 4,
    "render": 5,
    "__main__": 5,
}
# what the numpy-only core may import from outside the standard library
CORE_THIRD_PARTY = {"numpy"}
HTTP_ONLY = {"fastapi", "starlette", "uvicorn", "prometheus_client", "python_multipart", "multipart"}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            if node.module == "service":  # from service import cpus
                found += [f"service.{alias.name}" for alias in node.names]
    return found


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts[0] != "service" or len(parts) < 2:
        raise ValueError(module)
    return LAYERS[parts[1]]


def service_modules() -> list[Path]:
    return sorted((REPO / "service").rglob("*.py"))


def test_every_service_module_has_a_layer():
    for path in service_modules():
        rel = path.relative_to(REPO).with_suffix("")
        parts = rel.parts
        if parts[-1] == "__init__" and len(parts) == 2:
            continue
        assert parts[1] in LAYERS, f"{rel}: add its package to LAYERS"


@pytest.mark.parametrize("path", service_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_service_module_imports_a_layer_above_it(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    if len(parts) == 2 and parts[1] == "__init__":
        return
    own = LAYERS[parts[1]]
    upward = [m for m in imports(path) if m.startswith("service.") and layer_of(m) > own]
    assert not upward, f"{path.name} (layer {own}) imports {upward}"


def test_the_core_is_numpy_only():
    for path in sorted((REPO / "service" / "core").rglob("*.py")):
        for module in imports(path):
            top = module.split(".")[0]
            allowed = module.startswith("service.core") or top in sys.stdlib_module_names or top in CORE_THIRD_PARTY
            assert allowed, f"{path.name} imports {module}"


def test_only_the_http_layer_knows_http():
    for path in service_modules():
        rel = path.relative_to(REPO)
        if rel.parts[1] in ("http", "__main__.py"):
            continue
        for module in imports(path):
            assert module.split(".")[0] not in HTTP_ONLY, f"{rel} imports {module}"
            assert not module.startswith("service.http") or rel.parts[1] == "render.py", f"{rel} imports {module}"


def test_training_never_imports_the_http_layer():
    for path in sorted((REPO / "model_export").rglob("*.py")):
        for module in imports(path):
            assert not module.startswith("service.http"), f"{path.relative_to(REPO)} imports {module}"
            assert module.split(".")[0] not in HTTP_ONLY, f"{path.relative_to(REPO)} imports {module}"
