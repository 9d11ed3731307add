"""Domain errors: what the pose pipeline refuses, said in its own terms.

Domain code (geometry, decoding, inference) raises these; it never chooses an HTTP status. The HTTP
layer maps each class to a status and an error code in one table (:mod:`service.http.errors`), and
offline callers (the render command line, the evaluation) simply catch :class:`PoseError`.
"""

from __future__ import annotations


class PoseError(Exception):
    """A request the pipeline cannot serve, with a message meant for the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def about(self, subject: str) -> PoseError:
        """The same refusal with ``subject`` (which of several inputs it concerns) before its message."""
        self.message = f"{subject}: {self.message}"
        self.args = (self.message,)
        return self


class InvalidBox(PoseError):
    """A person box that is malformed, not finite, empty, absurdly large or off the image."""


class InvalidResizeMode(PoseError):
    """A resize mode other than ``letterbox`` and ``stretch``."""
