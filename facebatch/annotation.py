"""`facebatch annotate`: a folder of photos in; annotated copies and a CSV report out.

Incremental and resumable: per-image results live in a manifest (state.py) beside the report.
An image is worked on again only when its content, the database, the model or a result-affecting
option changed, or with `force`; otherwise its rows are carried over.  The report is rebuilt from
the manifest at the end, so it always lists every image of the folder, in path order, whatever
was interrupted before.  Only this (parent) process writes the report and the manifest; workers
write only their own annotated images.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

from . import gallery as gallery_db
from . import weights
from .atomicio import atomic_writer, remove_stale_temporaries
from .config import IMAGES_PER_CHUNK, Settings
from .errors import FacebatchError, UsageProblem
from .images import annotated_name, find_images
from .packages import sha256_of_file
from .pipeline import annotate_chunk
from .report import HEADER, Summary, rows_for
from .results import STATUS_ERROR, ImageResult
from .runner import chunked, run_ordered
from .state import ImageRecord, RunState, state_path_for

LOCK_NAME = ".facebatch-annotate.lock"
RESULT_FORMAT = 1  # bump when the rows for the same inputs would change, so old results are redone


class RunLocked(FacebatchError):
    """Another annotate is writing to the same output folder."""

    exit_code = 4


class Interrupted(FacebatchError):
    """SIGINT or SIGTERM: the run stopped cleanly; finished chunks are saved."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}; finished work is saved, run the same command to go on")
        self.exit_code = 128 + signum


@contextlib.contextmanager
def output_lock(output_dir: Path) -> Iterator[None]:
    """One annotate per output folder.  flock dies with its process, so a dead run's lock is free at once."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunLocked(f"{output_dir}: another facebatch annotate (pid {holder}) is writing here; "
                            "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def images_to_annotate(input_dir: Path, output_dir: Path) -> list[str]:
    """Images below input_dir, leaving out our own output when it lies inside the input folder."""
    relatives = find_images(input_dir)
    try:
        inside = Path(output_dir).resolve().relative_to(Path(input_dir).resolve()).as_posix()
    except ValueError:
        return relatives
    if inside == ".":
        raise UsageProblem(f"{output_dir}: is the input folder itself; choose another --out")
    return [r for r in relatives if not r.startswith(inside + "/")]


def options_key(settings: Settings, weights_sha256: str, gallery_fingerprint: str) -> str:
    """A hash of everything besides the image itself that the report rows depend on."""
    spec = weights.get_spec(settings.model)
    relevant = {"format": RESULT_FORMAT, "model": settings.model, "weights": weights_sha256,
                "margin": spec.crop_margin, "threshold": settings.threshold, "detector": asdict(settings.detector),
                "max_pixels": settings.max_pixels, "try_rotations": settings.try_rotations,
                "gallery": gallery_fingerprint}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def _record(result: ImageResult, key: str) -> ImageRecord:
    return ImageRecord(result.image, result.size, result.mtime_ns, result.sha256, key, rows_for(result),
                       result.status, result.annotated)


def _plan(relatives: list[str], input_dir: Path, state: RunState, key: str, force: bool) -> list[str]:
    """The images to work on: new, changed, failed last time, or made under other options."""
    todo = []
    for relative in relatives:
        record = None if force else state.get(relative)
        if record is None or record.options_key != key or record.status == STATUS_ERROR:
            todo.append(relative)
            continue
        try:
            stat = os.stat(input_dir / relative)
        except OSError:
            todo.append(relative)  # vanished since the scan; the worker reports it
            continue
        if (stat.st_size, stat.st_mtime_ns) == (record.size, record.mtime_ns):
            continue
        # Touched but maybe not changed (copied back, restored from backup): compare content.
        if stat.st_size == record.size and sha256_of_file(input_dir / relative) == record.sha256:
            state.update_stat(relative, stat.st_size, stat.st_mtime_ns)
        else:
            todo.append(relative)
    return todo


def _forget_vanished(relatives: list[str], output_dir: Path, state: RunState) -> None:
    """Drop images that left the folder: their manifest entries and their annotated copies."""
    current = set(relatives)
    gone = [r for r in state.records() if r.path not in current]
    for record in gone:
        if record.annotated:
            with contextlib.suppress(FileNotFoundError):
                (output_dir / record.annotated).unlink()
    state.remove(r.path for r in gone)


def annotate(input_dir: Path, db_path: Path, output_dir: Path, report_path: Path, settings: Settings,
             on_result: Callable[[ImageResult], None] = lambda r: None,
             on_start: Callable[[int], None] = lambda total: None,
             should_stop: Callable[[], int] = lambda: 0, force: bool = False) -> Summary:
    input_dir, output_dir, report_path = Path(input_dir), Path(output_dir), Path(report_path)
    if not input_dir.is_dir():
        raise UsageProblem(f"{input_dir}: no such folder; pass the folder of photos to annotate")
    spec = weights.get_spec(settings.model)
    manifest = weights.read_manifest(settings.models_root, spec.name)
    if manifest is None:
        raise weights.WeightsError(f"{weights.model_dir(settings.models_root, spec.name)}: model {spec.name} is "
                                   f"not installed; run: facebatch download-weights --model {spec.name}")
    started = time.monotonic()
    with output_lock(output_dir):
        remove_stale_temporaries(output_dir)
        with gallery_db.locked(db_path):  # a consistent snapshot even while an enroll is writing
            gallery = gallery_db.load(db_path, spec.name)
        known = gallery.matrix()
        key = options_key(settings, manifest.get("weights_sha256", ""), gallery.fingerprint())
        relatives = images_to_annotate(input_dir, output_dir)
        with RunState(state_path_for(report_path)) as state:
            _forget_vanished(relatives, output_dir, state)
            todo = _plan(relatives, input_dir, state, key, force)
            on_start(len(todo))
            _process(todo, input_dir, output_dir, settings, known, state, key, on_result, should_stop)
            summary = _write_report(relatives, report_path, state)
    summary.processed = len(todo)
    summary.carried_over = summary.images - len(todo)
    summary.seconds = time.monotonic() - started
    return summary


def _process(todo, input_dir, output_dir, settings, known, state, key, on_result, should_stop) -> None:
    """Work through `todo` chunk by chunk, saving each finished chunk to the manifest at once.

    Chunks are cut from `todo` in order and finished in order, so after an interruption the
    remaining work starts on a chunk boundary and is cut into the same chunks again: a resumed
    run embeds exactly the batches an uninterrupted run would, and its results match to the bit.
    """
    results = run_ordered(annotate_chunk, chunked(todo, IMAGES_PER_CHUNK), settings.jobs,
                          input_dir, output_dir, settings, known,
                          backend=settings.backend, scheduler=settings.scheduler, shared=[known])
    try:
        for chunk_results in results:
            state.put_many(_record(r, key) for r in chunk_results)
            for result in chunk_results:
                if result.status == STATUS_ERROR:
                    _remove_stale_copy(output_dir, result.image)
                on_result(result)
            if should_stop():
                raise Interrupted(should_stop())
    except Interrupted:
        raise
    except Exception:
        # Workers die with the terminal's Ctrl-C too; that is an interruption, not a failure.
        if should_stop():
            raise Interrupted(should_stop()) from None
        raise
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()  # cancels chunks not yet started


def _remove_stale_copy(output_dir: Path, relative: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (output_dir / annotated_name(relative)).unlink()


def _write_report(relatives: list[str], report_path: Path, state: RunState) -> Summary:
    """Rebuild the report from the manifest, streaming: every image of the folder, in path order."""
    summary = Summary()
    current = set(relatives)
    with atomic_writer(report_path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for record in state.records():
            if record.path in current:
                writer.writerows(record.rows)
                summary.add_rows(record.rows)
    return summary
