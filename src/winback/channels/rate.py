"""A rate limit per channel (``rate_per_second`` in ``[email]`` and ``[sms]``): a token
bucket, so a relay or provider that allows N messages a second never sees more, and a
dispatcher that paused (a slow render, a database write) may catch up by a small burst."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from winback.channels.base import OutgoingMessage, Sender, SendResult, submit


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
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()

    def acquire(self) -> None:
        """Wait until one more message may go, then take its token."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens < 1:
            # Sleep exactly until the token is due and count it as earned, instead of
            # reading the clock again: a loop on float remainders could spin forever.
            wait = (1 - self._tokens) / self.rate
            self._sleep(wait)
            self._updated = now + wait
            self._tokens = 1
        self._tokens -= 1


@dataclass
class Throttled:
    """A :class:`Sender` that waits for ``limiter`` before each send of ``sender``."""

    sender: Sender
    limiter: RateLimiter = field(repr=False)

    def send(self, message: OutgoingMessage) -> SendResult:
        self.limiter.acquire()
        return self.sender.send(message)

    def submit(self, message: OutgoingMessage) -> Future[SendResult]:
        """Wait for a token, then start the send: messages start at the rate, whatever
        number travel at once."""
        self.limiter.acquire()
        return submit(self.sender, message)

    def close(self) -> None:
        self.sender.close()
