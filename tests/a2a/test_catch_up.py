"""`a2a.events.catch_up` and `repeats_status`: what a follow whose opening snapshot from the
agent is ahead of the hub's task gives subscribers, and which status update they have already
seen (the real-wire case is tests/cluster/test_cluster.py's restarted hub)."""

from __future__ import annotations

from typing import Any

from a2a.events import apply_event, catch_up, repeats_status


def said(text: str, state: str = "TASK_STATE_WORKING") -> dict[str, Any]:
    return {"state": state, "message": {"messageId": f"m-{text}", "parts": [{"text": text}]}}


def task(status: dict[str, Any], *artifacts: tuple[str, int]) -> dict[str, Any]:
    return {
        "id": "t",
        "contextId": "c",
        "status": status,
        "artifacts": [
            {"artifactId": a, "parts": [{"text": str(i)} for i in range(n)]} for a, n in artifacts
        ],
    }


def test_what_the_agent_did_meanwhile_comes_as_events_artifacts_first() -> None:
    seen = task(said("step 1"), ("kept", 1), ("grown", 1))
    now = task(said("done", "TASK_STATE_COMPLETED"), ("kept", 1), ("grown", 3), ("new", 1))
    events = catch_up(seen, now)
    assert [next(iter(e)) for e in events] == ["artifactUpdate", "artifactUpdate", "statusUpdate"]
    assert [e["artifactUpdate"]["artifact"]["artifactId"] for e in events[:2]] == ["grown", "new"]
    assert all(e["artifactUpdate"]["append"] is False for e in events[:2])
    assert events[2]["statusUpdate"] == {"taskId": "t", "contextId": "c", "status": now["status"]}
    replayed = seen
    for event in events:  # a subscriber applying them holds what the agent holds
        replayed = apply_event(replayed, event)
    assert replayed["status"] == now["status"] and replayed["artifacts"] == now["artifacts"]


def test_nothing_new_gives_nothing() -> None:
    same = task(said("step 1"), ("a", 2))
    assert catch_up(same, dict(same, history=[{"messageId": "x"}])) == []


def test_a_status_update_repeats_only_with_the_same_state_and_message() -> None:
    now = task(said("step 2"))
    assert repeats_status({"statusUpdate": {"status": said("step 2")}}, now)
    assert not repeats_status({"statusUpdate": {"status": said("step 3")}}, now)
    assert not repeats_status(
        {"statusUpdate": {"status": said("step 2", "TASK_STATE_COMPLETED")}}, now
    )
    bare = {"state": "TASK_STATE_WORKING"}  # no message: nothing says it is the same update
    assert not repeats_status({"statusUpdate": {"status": bare}}, task(bare))
    assert not repeats_status({"task": now}, now)
    assert not repeats_status({"statusUpdate": {"status": said("step 2")}}, None)
