"""``/docs``: Swagger UI served from this service, so the API reference works offline and air-gapped.

The assets (Swagger UI 5, which reads OpenAPI 3.1) come from the pinned ``fastapi-offline`` wheel's static
folder; only the three files the page loads are served, by exact path (they need no API key, like ``/docs``).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from service.http.csp import inline_hashes, policy

DOCS_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
ASSETS_PREFIX = "/docs/assets/"
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
DOC_PATHS: frozenset[str] = frozenset({DOCS_PATH, OAUTH2_REDIRECT_PATH, *(ASSETS_PREFIX + name for name in ASSETS)})
"""Every path of the API reference page (open without the API key: they hold no data)."""

router = APIRouter(include_in_schema=False)


@cache
def _asset(name: str) -> bytes:
    return Path(str(files("fastapi_offline") / "static" / name)).read_bytes()


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    """The page with a Content-Security-Policy its own assets satisfy: its inline script by hash, everything else
    from this origin (Swagger UI sets inline style attributes and draws its icons as data: URIs)."""
    html = bytes(page.body).decode()
    page.headers["Content-Security-Policy"] = policy(
        script_src=" ".join(["'self'", *inline_hashes(html, "script")]),
        style_src="'self' 'unsafe-inline'",
        img_src="'self' data:",
        connect_src="'self'",
        form_action="'self'",
    )
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


@router.get(DOCS_PATH)
async def swagger_ui(request: Request) -> HTMLResponse:
    return _with_policy(
        get_swagger_ui_html(
            openapi_url=request.app.openapi_url,
            title=f"{request.app.title} - API reference",
            swagger_js_url=ASSETS_PREFIX + "swagger-ui-bundle.js",
            swagger_css_url=ASSETS_PREFIX + "swagger-ui.css",
            swagger_favicon_url=ASSETS_PREFIX + "favicon.png",
            oauth2_redirect_url=OAUTH2_REDIRECT_PATH,
        )
    )


@router.get(OAUTH2_REDIRECT_PATH)
async def swagger_ui_redirect() -> HTMLResponse:
    return _with_policy(get_swagger_ui_oauth2_redirect_html())


@router.get(ASSETS_PREFIX + "{name}")
async def swagger_asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, "not found")
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return Response(_asset(name), media_type=ASSETS[name], headers=headers)
