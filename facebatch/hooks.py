"""How a job talks to whoever started it: progress, per-item results, warnings, a stop request.

The jobs (enroll, annotate, verify) take one `RunHooks`; the CLI fills it with a progress bar or
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
