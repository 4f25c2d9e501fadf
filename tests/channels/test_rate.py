"""The per-channel rate limit, on a simulated clock."""

from __future__ import annotations

import itertools

import pytest

from winback.channels import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_messages_are_spaced_at_the_configured_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock, sleep=clock.sleep)
    sent_at = []
    for _ in range(11):
        limiter.acquire()
        sent_at.append(clock.now)
    assert sent_at[0] == 1000.0
    assert sent_at[-1] - sent_at[0] == pytest.approx(2.0)
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert all(gap == pytest.approx(0.2) for gap in gaps)


def test_a_pause_allows_a_burst_no_larger_than_configured() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    clock.now += 60  # a long pause earns at most `burst` messages at once
    start = clock.now
    for _ in range(5):
        limiter.acquire()
    assert clock.now - start == pytest.approx(0.2)  # 3 at once, then 2 at 10 per second


def test_a_slow_caller_never_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.acquire()
        clock.now += 1.0
    assert clock.slept == []


def test_nonsense_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(1, burst=0)
