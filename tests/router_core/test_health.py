"""Endpoint stats, every circuit-breaker transition (fake clock), and active health checks (real asyncio)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from router_core import (
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    EndpointStats,
    HealthChecker,
    HealthCheckSettings,
)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_breaker(
    **settings: float | int | bool,
) -> tuple[CircuitBreaker, FakeClock, list[tuple[BreakerState, BreakerState]]]:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerSettings(**settings), name="b1", clock=clock)  # type: ignore[arg-type]
    transitions: list[tuple[BreakerState, BreakerState]] = []
    breaker.add_listener(lambda b, old, new: transitions.append((old, new)))
    return breaker, clock, transitions


# --------------------------------------------------------------------------- stats


def test_stats_count_requests_and_keep_two_ewmas() -> None:
    stats = EndpointStats(alpha=0.5)
    stats.begin()
    stats.begin()
    assert stats.in_flight == 2
    stats.succeed(latency=1.0)
    stats.begin()
    stats.succeed(latency=2.0)
    assert stats.latency_ewma == pytest.approx(1.5)
    stats.observe_ttft(0.2)
    stats.observe_ttft(0.4)
    stats.succeed()  # a stream: its total time is not a latency sample
    assert stats.ttft_ewma == pytest.approx(0.3)
    assert stats.latency_ewma == pytest.approx(1.5)
    assert (stats.in_flight, stats.successes, stats.failures) == (0, 3, 0)
    stats.begin()
    stats.fail("HTTP 503 from upstream")
    assert stats.latency_ewma == pytest.approx(1.5)
    assert (stats.failures, stats.last_error) == (1, "HTTP 503 from upstream")
    stats.begin()
    stats.abandon()
    stats.abandon()  # never below zero
    assert (stats.in_flight, stats.successes, stats.failures) == (0, 3, 1)
    assert stats.snapshot()["latency_ewma_ms"] == pytest.approx(1500.0)
    with pytest.raises(ValueError, match="alpha"):
        EndpointStats(alpha=0.0)


# --------------------------------------------------------------------------- breaker


def test_breaker_opens_on_consecutive_failures() -> None:
    breaker, _, transitions = make_breaker(consecutive_failures=3)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is OPEN
    assert not breaker.allow() and not breaker.available()
    assert transitions == [(CLOSED, OPEN)]


def test_a_success_resets_the_failure_streak() -> None:
    breaker, _, transitions = make_breaker(consecutive_failures=3)
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is CLOSED and transitions == []


def test_breaker_opens_on_failure_rate_once_the_window_has_enough_requests() -> None:
    breaker, _, transitions = make_breaker(
        consecutive_failures=0, failure_rate=0.5, min_requests=10
    )
    for _ in range(4):
        breaker.record_success()
        breaker.record_failure()
    breaker.record_failure()  # 5 of 9 failed, but under min_requests
    assert breaker.state is CLOSED
    breaker.record_failure()  # 6 of 10
    assert breaker.state is OPEN
    assert transitions == [(CLOSED, OPEN)]


def test_failure_rate_below_threshold_stays_closed() -> None:
    breaker, _, _ = make_breaker(consecutive_failures=0, failure_rate=0.5, min_requests=10)
    for _ in range(30):
        breaker.record_success()
        breaker.record_success()
        breaker.record_failure()  # one in three
    assert breaker.state is CLOSED
    assert breaker.window_counts == (60, 30)


def test_failures_slide_out_of_the_window() -> None:
    breaker, clock, _ = make_breaker(
        consecutive_failures=0, failure_rate=0.5, min_requests=10, window=10.0
    )
    for _ in range(5):
        breaker.record_failure()
        breaker.record_success()
    assert breaker.window_counts == (5, 5)
    clock.advance(5.0)
    breaker.record_success()
    breaker.record_success()
    clock.advance(6.0)  # the first ten are now older than the window
    assert breaker.window_counts == (2, 0)
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state is CLOSED  # 4 of 6: over the rate, under min_requests
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state is OPEN  # 8 of 10


def test_open_becomes_half_open_after_the_cooldown() -> None:
    breaker, clock, transitions = make_breaker(consecutive_failures=1, cooldown=5.0)
    breaker.record_failure()
    clock.advance(4.9)
    assert breaker.state is OPEN
    assert breaker.retry_after() == pytest.approx(0.1)
    clock.advance(0.1)
    assert breaker.retry_after() == 0.0
    assert breaker.state is HALF_OPEN
    assert transitions == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_half_open_lets_a_limited_number_of_probes_through() -> None:
    breaker, clock, _ = make_breaker(consecutive_failures=1, half_open_max_calls=2)
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.available()
    assert breaker.allow() and breaker.allow()
    assert not breaker.available() and not breaker.allow()
    breaker.release()  # one probe was cancelled: its slot comes back
    assert breaker.allow()
    assert not breaker.allow()


def test_half_open_success_closes() -> None:
    breaker, clock, transitions = make_breaker(consecutive_failures=2)
    breaker.record_failure()
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED
    assert transitions == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    # closed with a clean slate: one failure does not re-open it
    breaker.record_failure()
    assert breaker.state is CLOSED


def test_half_open_failure_reopens_with_a_growing_capped_cooldown() -> None:
    breaker, clock, transitions = make_breaker(
        consecutive_failures=1, cooldown=5.0, cooldown_multiplier=2.0, max_cooldown=15.0
    )
    breaker.record_failure()
    waits = [breaker.retry_after()]
    for _ in range(3):
        clock.advance(waits[-1])
        assert breaker.allow()
        breaker.record_failure()
        assert breaker.state is OPEN
        waits.append(breaker.retry_after())
    assert waits == [5.0, 10.0, 15.0, 15.0]
    assert transitions[-2:] == [(OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]
    # a success resets the cool-down to its base
    clock.advance(15.0)
    assert breaker.allow()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.retry_after() == 5.0


def test_results_arriving_while_open_are_ignored() -> None:
    breaker, _, transitions = make_breaker(consecutive_failures=1)
    breaker.record_failure()
    breaker.record_success()  # a request sent before it opened
    breaker.record_failure()
    assert breaker.state is OPEN and breaker.retry_after() == 5.0
    assert transitions == [(CLOSED, OPEN)]


def test_reset_listener_errors_and_disabled_breaker() -> None:
    breaker, _, transitions = make_breaker(consecutive_failures=1)

    def broken(*_: object) -> None:
        raise RuntimeError("metrics exporter bug")

    breaker.add_listener(broken)
    breaker.record_failure()
    assert breaker.state is OPEN  # the broken listener did not stop the transition
    breaker.reset()
    assert breaker.state is CLOSED and transitions == [(CLOSED, OPEN), (OPEN, CLOSED)]
    off, _, _ = make_breaker(enabled=False, consecutive_failures=1)
    for _ in range(50):
        off.record_failure()
    assert off.state is CLOSED and off.allow()


def test_settings_validate_like_config() -> None:
    assert BreakerSettings().consecutive_failures == 5
    assert HealthCheckSettings().unhealthy_threshold == 3
    with pytest.raises(ValidationError, match="max_cooldown"):
        BreakerSettings(cooldown=30.0, max_cooldown=10.0)
    with pytest.raises(ValidationError, match="extra"):
        HealthCheckSettings.model_validate({"interval": 5, "intreval": 5})
    with pytest.raises(ValidationError, match="failure_rate"):
        BreakerSettings(failure_rate=1.5)


# --------------------------------------------------------------------------- health checker


class Upstream:
    """A probe target whose behaviour the test switches: ok, fail, refuse (False) or hang."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0
        self.cancelled = 0
        self.called = asyncio.Event()

    async def probe(self) -> bool:
        self.calls += 1
        self.called.set()
        if self.mode == "fail":
            raise ConnectionRefusedError("connection refused")
        if self.mode == "refuse":
            return False
        if self.mode == "hang":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return True


FAST = HealthCheckSettings(
    interval=0.01, timeout=0.05, unhealthy_threshold=2, healthy_threshold=3, jitter=0.0
)


async def wait_for_flip(flips: asyncio.Queue[bool]) -> bool:
    return await asyncio.wait_for(flips.get(), timeout=10)


def watch(checker: HealthChecker) -> asyncio.Queue[bool]:
    flips: asyncio.Queue[bool] = asyncio.Queue()
    checker.add_listener(lambda _, healthy: flips.put_nowait(healthy))
    return flips


async def test_health_checker_flips_on_failures_and_recovers() -> None:
    upstream = Upstream()
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=2))
    checker = HealthChecker(upstream.probe, FAST, name="gpu1", breaker=breaker)
    flips = watch(checker)
    async with checker:
        assert checker.running
        upstream.mode = "fail"
        assert await wait_for_flip(flips) is False
        assert not checker.healthy
        assert checker.consecutive_failures >= 2
        assert checker.last_error == "ConnectionRefusedError: connection refused"
        assert breaker.state is not BreakerState.CLOSED  # the probes fed the breaker
        upstream.mode = "ok"
        assert await wait_for_flip(flips) is True
        assert checker.consecutive_successes >= 3
    assert not checker.running
    assert flips.empty()


async def test_a_hanging_probe_is_cut_by_the_timeout() -> None:
    upstream = Upstream()
    upstream.mode = "hang"
    checker = HealthChecker(upstream.probe, FAST, name="gpu2")
    flips = watch(checker)
    async with checker:
        assert await wait_for_flip(flips) is False
        assert checker.last_error == "probe timed out after 0.05 s"
        assert upstream.cancelled >= 2
        upstream.mode = "ok"
        assert await wait_for_flip(flips) is True


async def test_a_probe_returning_false_fails() -> None:
    upstream = Upstream()
    upstream.mode = "refuse"
    checker = HealthChecker(upstream.probe, FAST)
    assert await checker.check_once() is False
    assert await checker.check_once() is False
    assert not checker.healthy
    assert checker.last_error == "probe reported unhealthy"
    upstream.mode = "ok"
    assert await checker.check_once() is True
    assert await checker.check_once() is True
    assert not checker.healthy  # healthy_threshold is 3
    assert await checker.check_once() is True
    assert checker.healthy
    assert checker.checks == 5


async def test_stop_cancels_a_hanging_probe_and_no_probe_runs_after() -> None:
    upstream = Upstream()
    upstream.mode = "hang"
    settings = HealthCheckSettings(interval=0.01, timeout=60.0, jitter=0.0)
    checker = HealthChecker(upstream.probe, settings)
    checker.start()
    checker.start()  # idempotent
    await asyncio.wait_for(upstream.called.wait(), timeout=10)
    await asyncio.wait_for(checker.stop(), timeout=5)
    assert upstream.cancelled == 1
    assert not checker.running
    calls = upstream.calls
    await asyncio.sleep(0.05)
    assert upstream.calls == calls == 1
    await checker.stop()  # stopping twice is fine


async def test_a_passed_probe_closes_a_half_open_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=1), clock=clock)
    upstream = Upstream()
    checker = HealthChecker(upstream.probe, FAST, breaker=breaker)
    breaker.record_failure()
    await checker.check_once()
    assert breaker.state is OPEN  # a pass cannot shorten the cool-down
    clock.advance(5.0)
    await checker.check_once()
    assert breaker.state is CLOSED


async def test_disabled_health_checks_do_not_start() -> None:
    upstream = Upstream()
    checker = HealthChecker(upstream.probe, HealthCheckSettings(enabled=False))
    checker.start()
    assert not checker.running
    await asyncio.sleep(0.01)
    assert upstream.calls == 0


def test_every_begun_request_is_a_selection() -> None:
    stats = EndpointStats()
    for outcome in ("ok", "fail", "abandon"):
        stats.begin()
        if outcome == "ok":
            stats.succeed(0.1)
        elif outcome == "fail":
            stats.fail("boom")
        else:
            stats.abandon()
    snapshot = stats.snapshot()
    assert (snapshot["selections"], snapshot["successes"], snapshot["failures"]) == (3, 1, 1)
    assert snapshot["in_flight"] == 0
