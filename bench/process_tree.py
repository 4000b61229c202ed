"""Memory of a process and all its children, for the benchmarks."""
from __future__ import annotations

import psutil


def tree_rss(process: psutil.Process) -> int:
    """RSS in bytes summed over `process` and its descendants (children that just exited count 0)."""
    total = 0
    for p in [process] + process.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total
