"""The service's one client-error type, rendered as ``{"error": {"code", "message"}}``."""

from __future__ import annotations


class ApiError(Exception):
    """A request the service refuses: HTTP status, machine-readable code, human message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, dict[str, str]]:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message}}


class NotReadyError(ApiError):
    """The model is not loaded and warmed up yet (or the service is shutting down)."""

    def __init__(self, state: str) -> None:
        super().__init__(503, "not_ready", f"the model is not ready yet (state: {state})")
