"""What a sweep has to do: each planned run's state in the store."""

from __future__ import annotations

from collections import Counter

from disbench import store

# completed: done; failed: stored as failed (not retried unless asked); running: a live
# process holds its claim; incomplete: started, but its process is gone (resumed when
# launched); new: never started.
STATES = ("completed", "failed", "running", "incomplete", "new")


def run_state(run: store.RunDir) -> str:
    status = run.status()
    if status is None:
        return "new"
    state = status.get("state")
    if state in (store.COMPLETED, store.FAILED):
        return state
    if run.claim_file.exists() and run.claim_owner() is not None:
        return "running"
    return "incomplete"


def summarize(states: list[str]) -> dict[str, int]:
    counts = Counter(states)
    return {s: counts.get(s, 0) for s in STATES}


def to_launch(states: list[str], retry_failed: bool = False) -> list[int]:
    """Indices of the runs a sweep launches: incomplete and new (and failed if asked)."""
    wanted = {"incomplete", "new"} | ({"failed"} if retry_failed else set())
    return [i for i, s in enumerate(states) if s in wanted]
