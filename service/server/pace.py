"""A rate for work nobody waits on: the bytes of unread request bodies that lingering connections drop."""

from __future__ import annotations

SLACK_S = 0.05  # dropped bytes may run this far ahead of the rate before reading pauses


class DrainPace:
    """One clock for the bytes dropped by every lingering connection: :meth:`wait` says how long reading must pause
    so that they stay within ``rate`` bytes a second (a virtual-time queue: each chunk is paid for after the ones
    before it)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._paid_until = 0.0

    def wait(self, now: float, size: int) -> float:
        """Seconds from ``now`` until ``size`` more bytes dropped are within the rate (0: at once)."""
        self._paid_until = max(now, self._paid_until) + size / self.rate
        return max(0.0, self._paid_until - now - SLACK_S)
