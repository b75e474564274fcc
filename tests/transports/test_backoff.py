"""`Backoff`, the one delay schedule of the SSE client's resumptions and the MCP upstreams'
reconnects: doubling from `initial`, capped, optionally bounded, restarted by `reset()`."""

from __future__ import annotations

from transports import Backoff


def test_delays_double_up_to_the_cap() -> None:
    backoff = Backoff(0.25, 1.5)
    assert [backoff.next_delay() for _ in range(5)] == [0.25, 0.5, 1.0, 1.5, 1.5]


def test_a_bounded_schedule_runs_out_and_reset_starts_it_again() -> None:
    backoff = Backoff(0.1, 5.0, attempts=2)
    assert [backoff.next_delay() for _ in range(3)] == [0.1, 0.2, None]
    assert backoff.used == 2
    backoff.reset()
    assert backoff.next_delay() == 0.1


async def test_sleep_answers_false_at_once_when_spent() -> None:
    backoff = Backoff(0.0, 0.0, attempts=1)
    assert await backoff.sleep() is True
    assert await backoff.sleep() is False
