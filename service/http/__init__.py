"""The HTTP layer: the app factory (``app``), routes, pages, schemas, middleware, metrics, upload
reading, OpenAPI extras and the one table from domain errors to status codes (``errors``). The only
layer that knows HTTP; nothing below imports it."""
