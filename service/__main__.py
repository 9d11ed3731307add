"""``python -m service``: check the model, then serve it with uvicorn.

A missing, unreadable or non-conforming model or person detector exits with status 1 and one line naming
the file and the reason, before the port is bound. SIGTERM/SIGINT flip ``/readyz`` to 503 first,
then uvicorn shuts down gracefully.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from pydantic import ValidationError

from service.allocator import share_one_heap
from service.http.app import create_app
from service.inference.detector import PersonDetector
from service.inference.engine import Engine, ModelLoadError
from service.server.draining import serve
from service.settings import Settings

EXIT_BAD_SETTINGS = 2
EXIT_BAD_MODEL = 1
EXIT_STARTUP_FAILED = 3


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"POSE_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if not share_one_heap():  # before ONNX Runtime and uvicorn start their threads
        logging.getLogger("service").warning("no glibc: freed image memory may stay in the process (service.allocator)")
    try:
        engine = Engine.from_settings(settings)
        detector = PersonDetector.from_settings(settings)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_MODEL
    app = create_app(settings, engine, detector)
    return 0 if serve(app, settings, app.state.services.readiness) else EXIT_STARTUP_FAILED


def exit_now(code: int) -> NoReturn:
    """End the process without waiting for worker threads: a model call or decode still running after the
    shutdown timeout would otherwise hold the exit for as long as it takes (measured: 22 s after SIGTERM with
    a 1 s timeout). Logs and output are flushed first; the answers were sent or refused before this."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
