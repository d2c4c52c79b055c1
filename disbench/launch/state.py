"""What a sweep has to do: each planned run's state in the store."""

from __future__ import annotations

from collections import Counter

from disbench import store

# completed: trained and scored; trained: trained with eval.defer, waiting for `disbench
# eval` (not launched again); failed: stored as failed (not retried unless asked); running:
# a live process holds its claim; incomplete: started, but its process is gone (resumed
# when launched); unreadable: its status.json cannot be read (launched: the run rewrites
# it); new: never started.
STATES = ("completed", "trained", "failed", "running", "incomplete", "unreadable", "new")
# shown only where some run is in them
OCCASIONAL = ("trained", "unreadable")


def run_state(run: store.RunDir) -> str:
    try:
        status = run.status()
    except store.CorruptFile:
        return "unreadable"
    if status is None:
        return "new"
    state = status.get("state")
    if state in (store.COMPLETED, store.FAILED, store.TRAINED):
        return state
    if run.claim_file.exists() and run.claim_owner() is not None:
        return "running"
    return "incomplete"


def summarize(states: list[str]) -> dict[str, int]:
    counts = Counter(states)
    return {s: counts.get(s, 0) for s in STATES}


def to_launch(states: list[str], retry_failed: bool = False) -> list[int]:
    """Indices of the runs a sweep launches: incomplete and new (and failed if asked)."""
    wanted = {"incomplete", "unreadable", "new"} | ({"failed"} if retry_failed else set())
    return [i for i, s in enumerate(states) if s in wanted]
