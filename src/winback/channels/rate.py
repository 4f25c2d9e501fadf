"""A rate limit per channel (``rate_per_second`` in ``[email]`` and ``[sms]``): a token
bucket, so a relay or provider that allows N messages a second never sees more, and a
dispatcher that paused (a slow render, a database write) may catch up by a small burst."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from winback.channels.base import (
    BatchResult,
    OutgoingMessage,
    Progress,
    Sender,
    SendResult,
    send_batch,
)


class RateLimiter:
    """At most ``rate`` acquisitions per second on average, at most ``burst`` at once.

    ``clock`` (a monotonic clock, in seconds) and ``sleep`` are arguments so a test can
    run a minute of sending in no time.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self.sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()

    def acquire(self) -> None:
        """Wait until one more message may go, then take its token."""
        wait = self.reserve()
        if wait > 0:
            self.sleep(wait)

    def reserve(self) -> float:
        """Take the next token and say how many seconds the caller must wait before
        using it (0 when one is there): an asynchronous sender sleeps that long itself."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        wait = 0.0
        if self._tokens < 1:
            # Count the token as earned when it is due, instead of reading the clock
            # again: a loop on float remainders could spin forever.
            wait = (1 - self._tokens) / self.rate
            self._updated = now + wait
            self._tokens = 1
        self._tokens -= 1
        return wait


@dataclass
class Throttled:
    """A :class:`Sender` that waits for ``limiter`` before each send of ``sender``."""

    sender: Sender
    limiter: RateLimiter = field(repr=False)

    def send(self, message: OutgoingMessage) -> SendResult:
        self.limiter.acquire()
        return self.sender.send(message)

    def send_batch(
        self,
        messages: Sequence[OutgoingMessage],
        *,
        pace: Callable[[], float] | None = None,
        progress: Progress | None = None,
    ) -> list[BatchResult]:
        """Send ``messages`` with their starts spaced at the limiter's rate (and at
        ``pace``'s, when the caller has its own), whatever number travel at once."""

        def paced() -> float:
            wait = self.limiter.reserve()
            return max(wait, pace()) if pace is not None else wait

        return send_batch(
            self.sender, messages, pace=paced, sleep=self.limiter.sleep, progress=progress
        )

    def close(self) -> None:
        self.sender.close()
