"""Spreading chunks of work over threads, processes or a Dask cluster.  The only module that knows joblib and Dask."""
from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from typing import Callable, Iterable, Iterator, TypeVar

from .errors import Interrupted, UsageProblem, WorkerDied

T = TypeVar("T")
DASK_HINT = "install the dask extra: pip install 'facebatch[dask]'"
SCHEDULER_TIMEOUT = "5s"  # a scheduler that does not answer in 5 s is not there (it answers in milliseconds)


def chunked(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def check_dask_available() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise UsageProblem(f"running on Dask needs dask[distributed]; {DASK_HINT}") from None


@contextlib.contextmanager
def _dask_backend(scheduler: str | None, workers: int, shared: list):
    """joblib's Dask backend, on the given scheduler or on a LocalCluster of `workers` processes."""
    check_dask_available()
    from dask.distributed import Client, LocalCluster
    from joblib import parallel_config

    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout=SCHEDULER_TIMEOUT, set_as_default=False))
            except OSError as exc:
                raise UsageProblem(f"cannot reach the Dask scheduler at {scheduler} ({exc}); "
                                   "check the address and that the scheduler is running") from None
        else:
            import dask

            # A worker short of memory would spill what it holds (the gallery's embeddings, the
            # results) to disk, pickled: on this machine, it is held in memory or the run fails.
            stack.enter_context(dask.config.set({"distributed.worker.memory.target": False,
                                                 "distributed.worker.memory.spill": False}))
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None))
            client = stack.enter_context(Client(cluster, set_as_default=False))
        # `shared` (the gallery) is sent to every worker once instead of with every chunk.
        with parallel_config(backend="dask", client=client, scatter=shared or None):
            yield


def run_ordered(work: Callable[..., T], chunks: Iterable[list], jobs: int, *args,
                backend: str = "threads", scheduler: str | None = None, shared: Iterable = ()) -> Iterator[T]:
    """Yield `work(chunk, *args)` for each chunk, in input order, as results become available.

    threads: `jobs` threads in this process, sharing one copy of the models.  TensorFlow, Pillow
        and numpy release the GIL, so the threads overlap decoding, detection, embedding and
        encoding; this is the fastest and smallest way on one machine (docs/benchmarks.md).
    processes: joblib's loky processes, each loading the models once and keeping them.
    dask: the same calls through joblib's Dask backend, on `scheduler` or on a LocalCluster.
    One job, or one chunk, runs in this process with no pool at all.
    Arguments listed in `shared` are scattered to the Dask workers once.
    """
    from joblib import Parallel, delayed

    chunks = list(chunks)
    if backend != "threads" and not scheduler:
        # Each worker process loads its own models (about 0.8 GB): more than one per core, or than
        # there are chunks, only costs memory and start-up (--jobs 10000 would start 10000)
        jobs = min(jobs, os.cpu_count() or 1)
    if backend == "dask" or scheduler:
        with _dask_backend(scheduler, max(1, min(jobs, len(chunks))), list(shared)):
            yield from Parallel(return_as="generator")(delayed(work)(chunk, *args) for chunk in chunks)
        return
    if jobs <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield work(chunk, *args)
        return
    pool = {"threads": "threading", "processes": "loky"}[backend]
    if backend == "processes":
        work = _DiesWithItsRun(work, os.getpid())
    # max_nbytes=None: joblib would otherwise pickle any argument over 1 MB (the gallery of about
    # 1,000 people and more) into a file under /dev/shm for the workers to map: biometric data on
    # disk, and pickled.  Arguments then travel through the workers' pipes, in memory.
    parallel = Parallel(n_jobs=min(jobs, len(chunks)), backend=pool, return_as="generator", max_nbytes=None)
    yield from parallel(delayed(work)(chunk, *args) for chunk in chunks)


class _DiesWithItsRun:
    """`work` for loky's worker processes, which also ends the worker when the run that started
    it is gone.  A run killed with SIGKILL (a cron timeout, the OOM killer) cannot stop its
    workers, and loky keeps idle workers for minutes: each holds its own copy of the models
    (about 0.8 GB).  A thread in the worker checks its parent once a second."""

    def __init__(self, work: Callable, run_pid: int):
        self.work, self.run_pid = work, run_pid

    def __call__(self, chunk, *args):
        _watch_run(self.run_pid)
        return self.work(chunk, *args)


_WATCHING = threading.Lock()  # held for good by the first chunk of a worker: one watcher each


def _watch_run(run_pid: int) -> None:
    if os.getpid() == run_pid or not _WATCHING.acquire(blocking=False):
        return

    def watch() -> None:
        while os.getppid() == run_pid:
            time.sleep(1)
        os._exit(1)  # the run is gone: nobody will read this worker's results

    threading.Thread(target=watch, name="facebatch-run-watch", daemon=True).start()


# How a pool reports a worker that died under it (loky, concurrent.futures, Dask), by class name:
# the modules that define them are imported only with their backend.
_WORKER_DEATHS = frozenset({"TerminatedWorkerError", "BrokenProcessPool", "KilledWorker"})


def run_stoppable(work: Callable[..., T], chunks: list[list], execution, should_stop: Callable[[], int], *args,
                  shared: Iterable = ()) -> Iterator[T]:
    """`run_ordered` with the run's execution settings, stopping cleanly when asked.

    After each chunk's results are handed out (and the caller has saved them), a pending
    SIGINT/SIGTERM ends the run with Interrupted; chunks not yet started are cancelled.
    `execution` is anything with `jobs`, `backend` and `scheduler`.
    """
    results = run_ordered(work, chunks, execution.jobs, *args, backend=execution.backend,
                          scheduler=execution.scheduler, shared=shared)
    try:
        for chunk_results in results:
            yield chunk_results
            if should_stop():
                raise Interrupted(should_stop())
    except Interrupted:
        raise
    except Exception as exc:
        # Workers die with the terminal's Ctrl-C too; that is an interruption, not a failure.
        if should_stop():
            raise Interrupted(should_stop()) from None
        if type(exc).__name__ in _WORKER_DEATHS:
            raise WorkerDied(f"a worker process died ({type(exc).__name__}: killed, or out of memory?); finished "
                             "work is saved; run the same command again, with fewer --jobs if memory is short") \
                from None
        raise
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            # Cancels chunks not yet started.  joblib warns that it cancelled them, in two lines
            # even under -q; the run's own message already says the finished work is saved.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                close()
