"""Readiness of the service: ``/readyz`` is 200 only in the ``ready`` state."""

from __future__ import annotations

import logging
from enum import StrEnum

from pose.errors import PoseError

log = logging.getLogger("service.inference.readiness")


class State(StrEnum):
    STARTING = "starting"  # process up, model not loaded yet
    WARMING_UP = "warming_up"  # model loaded, warm-up runs in progress
    READY = "ready"
    DRAINING = "draining"  # shutting down: stop routing new traffic here
    FAILED = "failed"  # warm-up failed; see the log


class NotReady(PoseError):
    """The model is not loaded and warmed up yet, or the service is shutting down."""

    def __init__(self, state: State) -> None:
        super().__init__(f"the model is not ready yet (state: {state.value})")
        self.state = state


class Readiness:
    """A small state machine; :meth:`drain` flips ``/readyz`` to 503 (called on SIGTERM and at shutdown)."""

    def __init__(self) -> None:
        self.state = State.STARTING

    @property
    def ready(self) -> bool:
        return self.state is State.READY

    def set(self, state: State) -> None:
        if self.state is State.DRAINING and state is not State.DRAINING:
            return  # once draining, never ready again
        if state is not self.state:
            log.info("readiness: %s -> %s", self.state.value, state.value)
        self.state = state

    def drain(self) -> None:
        self.set(State.DRAINING)
