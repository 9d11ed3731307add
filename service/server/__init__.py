"""Server plumbing under the HTTP layer's app: uvicorn's configuration, the connection limits uvicorn lacks
(``connections``, on the pinned internals of ``uvicorn_seam``) and the server that drains on SIGTERM (``draining``).
Knows the app only as an ASGI callable and its readiness."""
