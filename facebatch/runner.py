"""Spreading chunks of work over processes.  The only module that knows about joblib."""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def chunked(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def run_ordered(work: Callable[..., T], chunks: Iterable[list], jobs: int, *args) -> Iterator[T]:
    """Yield `work(chunk, *args)` for each chunk, in input order, as results become available.

    With one job everything runs in this process (no worker start-up, models loaded once here).
    With more, joblib's loky processes each load the models once and keep them between chunks.
    """
    chunks = list(chunks)
    if jobs <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield work(chunk, *args)
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=min(jobs, len(chunks)), backend="loky", return_as="generator")
    yield from parallel(delayed(work)(chunk, *args) for chunk in chunks)
