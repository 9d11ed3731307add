"""The import graph has the shape the README's code map draws, checked on the source (every ``import`` statement,
including any inside functions), so an upward import fails here before anyone has to read for it.

Across the tree: ``pose`` (numpy only) <- ``service`` and ``model_export`` (neither imports the other) <-
``evaluation`` <- ``bench``. Inside ``service``: settings, CPU facts, the allocator < imaging < inference < HTTP <
server plumbing < the command lines; the decoder's in-thread reader and its JPEG fast paths are private to
``service.imaging``. No import cycles, and no product module over :data:`MAX_MODULE_LINES` lines.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("pose", "service", "model_export", "evaluation")
MAX_MODULE_LINES = 450

# top-level package -> the project packages it may import
ALLOWED: dict[str, set[str]] = {
    "pose": {"pose"},
    "service": {"pose", "service"},
    "model_export": {"pose", "model_export"},
    "evaluation": {"pose", "service", "model_export", "evaluation"},
    "bench": {"pose", "service", "model_export", "evaluation", "bench", "tests"},
}
PROJECT = {"pose", "service", "model_export", "evaluation", "bench", "tests", "fuzz", "scripts"}

# service.<first part> -> layer; a module may import its own layer and the ones below
LAYERS: dict[str, int] = {
    "settings": 0,
    "cpus": 0,
    "allocator": 0,
    "imaging": 2,
    "inference": 3,
    "http": 4,
    "server": 5,
    "render": 6,
    "__main__": 6,
}
# modules only their own package may import (tests may, to test them)
PRIVATE: dict[str, str] = {"service.imaging.reader": "service.imaging", "service.imaging.jpeg": "service.imaging"}
POSE_THIRD_PARTY = {"numpy"}
HTTP_ONLY = {"fastapi", "starlette", "uvicorn", "prometheus_client", "python_multipart", "multipart"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    """Every module ``path`` imports, absolute (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, [base, node.module or ""]))
            found.append(module)
            found += [f"{module}.{alias.name}" for alias in node.names]  # `from service import cpus`
    return found


def modules_of(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (REPO / package).rglob("*.py"))


def project_imports(path: Path) -> set[str]:
    return {m for m in imports(path) if m.split(".")[0] in PROJECT}


@pytest.mark.parametrize("path", modules_of(*ALLOWED), ids=lambda p: str(p.relative_to(REPO)))
def test_packages_import_only_the_ones_below_them(path: Path) -> None:
    own = path.relative_to(REPO).parts[0]
    upward = sorted(m for m in project_imports(path) if m.split(".")[0] not in ALLOWED[own])
    assert not upward, f"{path.relative_to(REPO)} ({own}) imports {upward}"


def test_pose_is_numpy_only() -> None:
    for path in modules_of("pose"):
        for module in imports(path):
            top = module.split(".")[0]
            assert top in {"pose", *POSE_THIRD_PARTY} or top in sys.stdlib_module_names, f"{path.name} imports {module}"


def test_every_service_module_has_a_layer() -> None:
    for path in modules_of("service"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts == ("service", "__init__"):
            continue
        assert parts[1] in LAYERS, f"{'/'.join(parts)}: add its package to LAYERS"


@pytest.mark.parametrize("path", modules_of("service"), ids=lambda p: str(p.relative_to(REPO)))
def test_no_service_module_imports_a_layer_above_it(path: Path) -> None:
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts == ("service", "__init__"):
        return
    own = LAYERS[parts[1]]
    inside = [m for m in project_imports(path) if m.startswith("service.") and m.split(".")[1] in LAYERS]
    upward = [m for m in inside if LAYERS[m.split(".")[1]] > own]
    assert not upward, f"{path.name} (layer {own}) imports {upward}"


def test_only_the_http_layer_and_the_server_know_http() -> None:
    for path in modules_of("service", "pose", "model_export"):
        rel = path.relative_to(REPO)
        if rel.parts[:2] in (("service", "http"), ("service", "server")) or rel.name == "__main__.py":
            continue
        for module in imports(path):
            assert module.split(".")[0] not in HTTP_ONLY, f"{rel} imports {module}"
            allowed_http = rel == Path("service/render.py")  # prints the API's own JSON
            assert not module.startswith("service.http") or allowed_http, f"{rel} imports {module}"


def test_private_modules_are_imported_only_inside_their_package() -> None:
    for path in modules_of(*PRODUCT, "bench"):
        own = module_name(path)
        for module in project_imports(path):
            for private, package in PRIVATE.items():
                if module == private or module.startswith(private + "."):
                    assert own.startswith(package + "."), f"{own} imports {module}, private to {package}"


def test_there_are_no_import_cycles() -> None:
    """Tarjan's strongly connected components over the product's module graph: every one is a single module."""
    paths = modules_of(*PRODUCT)
    names = {module_name(p) for p in paths}

    def target(module: str) -> str | None:  # `from a.b import c`: the module a.b.c if it exists, else a.b
        while module and module not in names:
            module = module.rpartition(".")[0]
        return module or None

    graph = {module_name(p): {t for m in project_imports(p) if (t := target(m)) and t != module_name(p)} for p in paths}
    # a package's __init__ re-exporting its modules is not a cycle with them
    graph = {m: {t for t in deps if not m.startswith(t + ".")} for m, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("path", modules_of(*PRODUCT), ids=lambda p: str(p.relative_to(REPO)))
def test_no_product_module_is_too_long(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(REPO)} has {lines} lines: split it by what it holds"


def test_the_checks_see_a_violation() -> None:
    """The import reader resolves what the checks rely on (so a green run is not a blind one)."""
    assert "service.imaging.reader" in imports(REPO / "service" / "imaging" / "isolation.py")
    assert "service.imaging.decode" not in project_imports(REPO / "service" / "imaging" / "isolation.py")
    assert "pose.codec" in project_imports(REPO / "model_export" / "training" / "validation.py")
