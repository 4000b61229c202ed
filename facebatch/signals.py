"""Turn SIGINT and SIGTERM into a flag the run checks between chunks, so it can stop cleanly."""
from __future__ import annotations

import contextlib
import signal
from typing import Callable, Iterator


@contextlib.contextmanager
def stop_requested_by_signals() -> Iterator[Callable[[], int]]:
    """Yield a function returning the first SIGINT/SIGTERM received (0 if none).

    The first signal lets the chunk in flight finish and be saved; a second SIGINT stops at once
    (KeyboardInterrupt), which is still safe: everything on disk is written atomically.
    """
    received: list[int] = []

    def handler(signum, _frame):
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0] if received else 0
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
