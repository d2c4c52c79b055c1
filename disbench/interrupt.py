"""Signals that stop a command: Ctrl-C (SIGINT), SIGTERM and SIGHUP end alike.

`kill`, `timeout`, systemd, Kubernetes and `scancel` send SIGTERM; a closed terminal
sends SIGHUP. Inside `stopping_signals()` each of them raises `Interrupted` (a
KeyboardInterrupt, so code that handles Ctrl-C handles all three) wherever the main
thread is: loading data, training, scoring, writing files. Only the first signal
raises; later ones are remembered and ignored, so that the interrupted run is
recorded in full.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stopping signal arrived; `signal_name` says which."""

    def __init__(self, signal_name: str = "SIGINT"):
        super().__init__(signal_name)
        self.signal_name = signal_name

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by it."""
        return 128 + int(getattr(signal, self.signal_name, signal.SIGINT))


class Catcher:
    """What `stopping_signals()` has seen: the first signal's name, or None."""

    def __init__(self):
        self.received: str | None = None

    def _handle(self, signum, frame):
        if self.received is None:
            self.received = signal.Signals(signum).name
            raise Interrupted(self.received)

    def interrupted(self, err: BaseException | None = None) -> Interrupted:
        """The interruption to report: the signal seen, else (plain Ctrl-C) SIGINT."""
        if isinstance(err, Interrupted):
            return err
        return Interrupted(self.received or "SIGINT")


@contextmanager
def stopping_signals():
    """Turn SIGINT, SIGTERM and SIGHUP into `Interrupted` in this block; restore the
    previous handlers after it (Lightning leaves SIGINT ignored after a Ctrl-C). Outside
    the main thread, where handlers cannot be set, the block runs as it is."""
    catcher = Catcher()
    if threading.current_thread() is not threading.main_thread():
        yield catcher
        return
    # a signal ignored on purpose stays ignored (nohup ignores SIGHUP; a shell's
    # background job, SIGINT)
    previous = {s: signal.getsignal(s) for s in SIGNALS
                if signal.getsignal(s) is not signal.SIG_IGN}
    for s in previous:
        signal.signal(s, catcher._handle)
    try:
        yield catcher
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
