"""How a job talks to whoever started it: progress, per-item results, warnings, a stop request.

The jobs (enroll, annotate, verify, calibrate) take one `RunHooks`; the CLI fills it with a progress bar or
plain lines and the signal flag, tests with lists.  Nothing here prints.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class RunHooks:
    on_start: Callable[[int], None] = lambda total: None  # how many items will be worked on
    on_result: Callable[[object], None] = lambda result: None  # one item finished (its result)
    warn: Callable[[str], None] = lambda message: None  # one line, naming the file and what to do
    should_stop: Callable[[], int] = lambda: 0  # the signal number that asked us to stop, or 0

    def waiting_for(self, what: str) -> Callable[[str], None]:
        """For a lock another facebatch holds (`locks.held`): say once whom we wait for, and stop
        waiting when a signal asks the run to stop."""
        told = []

        def waiting(holder: str) -> None:
            if not told:
                self.warn(f"{what}: another facebatch (pid {holder}) is writing it; waiting for it to finish")
                told.append(holder)
            signum = self.should_stop()
            if signum:
                from .errors import Interrupted

                raise Interrupted(signum)
        return waiting
