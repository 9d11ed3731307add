"""Content-Security-Policy for the service's own HTML pages (the demo page and the API reference)."""

from __future__ import annotations

import base64
import hashlib
import re


def inline_hashes(html: str, tag: str) -> list[str]:
    """CSP source expressions (``'sha256-...'``) of the page's inline ``<tag>`` blocks (no attributes)."""
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return [f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies]


def policy(**directives: str) -> str:
    """``default-src 'none'``, the page's ``directives`` (``script_src="..."`` -> ``script-src ...``), and what
    every page here gets: no ``<base>``, no framing."""
    parts = {"default-src": "'none'", **{k.replace("_", "-"): v for k, v in directives.items()}}
    parts.setdefault("base-uri", "'none'")
    parts.setdefault("frame-ancestors", "'none'")
    return "; ".join(f"{name} {value}" for name, value in parts.items())
