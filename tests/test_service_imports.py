"""Modules of ``service/`` use each other's public names only: no ``from service.x import _private``."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[1] / "service"


def test_no_private_names_imported_across_service_modules():
    offenders = []
    for path in sorted(SERVICE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("service"):
                offenders += [
                    f"{path.name}: {alias.name} from {node.module}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert not offenders, offenders


def test_prediction_routes_share_the_documented_error_answers():
    from service.http.app import create_app

    paths = create_app().openapi()["paths"]
    for path in ("/predict", "/predict/render"):
        post = paths[path]["post"]
        assert {"400", "413", "415", "422", "503"} <= set(post["responses"]), path
        assert set(post["requestBody"]["content"]) == {"multipart/form-data", "image/*"}, path
