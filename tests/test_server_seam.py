"""The uvicorn internals the connection limits rely on (``service.server.uvicorn_seam``) are there, under the
pinned uvicorn: an upgrade that moves one fails here, before the reliability tests have to find out."""

from __future__ import annotations

import asyncio
import inspect
import re

import uvicorn
from uvicorn.server import ServerState

from service.server import uvicorn_seam
from service.server.connections import ConnectionLimits, guarded_protocol
from tests.helpers.server import REPO_ROOT


async def _app(scope, receive, send) -> None:  # a bare ASGI app: the protocol only needs something to load
    raise AssertionError("never called")


def test_the_pinned_uvicorn_is_installed_and_locked():
    assert uvicorn.__version__ == uvicorn_seam.UVICORN_VERSION
    serve_in = (REPO_ROOT / "requirements" / "serve.in").read_text()
    assert re.search(rf"^uvicorn\[standard\]=={re.escape(uvicorn_seam.UVICORN_VERSION)}$", serve_in, re.M)


def test_every_named_attribute_and_method_exists_on_a_live_protocol():
    loop = asyncio.new_event_loop()
    try:
        config = uvicorn.Config(_app, log_level="warning")
        protocol = guarded_protocol(ConnectionLimits())(config, ServerState(), {}, _loop=loop)
    finally:
        loop.close()
    missing = [name for name in uvicorn_seam.PROTOCOL_ATTRIBUTES if not hasattr(protocol, name)]
    assert not missing, f"uvicorn {uvicorn.__version__} no longer sets {missing} on its httptools protocol"
    base = uvicorn_seam.HttpToolsProtocol
    for name in uvicorn_seam.PROTOCOL_METHODS:
        assert callable(getattr(base, name, None)), f"HttpToolsProtocol.{name} is gone"
    assert protocol.connections is protocol.server_state.connections  # eviction walks the server's own set
    assert set(inspect.signature(base.__init__).parameters) >= {"config", "server_state", "app_state", "_loop"}
    assert uvicorn_seam.STATUS_LINE[503].startswith(b"HTTP/1.1 503")


def test_the_seam_names_every_inherited_attribute_the_limits_touch():
    """Each ``self.X`` the subclass reads and does not set itself is listed in the seam."""
    source = inspect.getsource(__import__("service.server.connections", fromlist=["_"]))
    used = set(re.findall(r"\bself\.([a-z][a-z_]*)\b", source))
    own = {"limits", "drain_pace"}  # the subclass's own class attributes
    inherited = used - own - set(uvicorn_seam.PROTOCOL_METHODS)
    assert inherited <= set(uvicorn_seam.PROTOCOL_ATTRIBUTES), inherited - set(uvicorn_seam.PROTOCOL_ATTRIBUTES)
