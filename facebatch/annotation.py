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
import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from . import gallery as gallery_db
from . import locks, weights
from .atomicio import atomic_writer, describe_os_error, remove_stale_temporaries
from .config import IMAGES_PER_CHUNK, Settings
from .hooks import RunHooks
from .errors import OutputError, PurgeRefused, RunLocked, UsageProblem
from .images import annotated_name, find_images
from .packages import sha256_of_file
from .pathtext import from_text, to_text
from .pipeline import annotate_chunk
from .report import HEADER, Summary, rows_for
from .results import STATUS_ERROR, ImageResult
from .runner import chunked, run_stoppable
from .state import ImageRecord, RunState, open_state, state_path_for

LOCK_NAME = ".facebatch-annotate.lock"
RESULT_FORMAT = 1  # bump when the rows for the same inputs would change, so old results are redone
# An input folder that suddenly lacks this many of last run's images, and more than half of
# them, looks like an unmounted share or a failed sync rather than a clean-up: refuse to purge.
PURGE_GUARD_MIN_IMAGES = 10


@contextlib.contextmanager
def run_locks(output_dir: Path, report_path: Path) -> Iterator[None]:
    """One annotate per output folder and per report.  Lock files vanish with the run (locks.py)."""
    paths = [output_dir / LOCK_NAME, report_path.with_name(report_path.name + ".lock")]
    with contextlib.ExitStack() as stack:
        for path in dict.fromkeys(p.resolve() for p in paths):
            try:
                stack.enter_context(locks.held(path, wait=False))
            except locks.LockBusy as busy:
                raise RunLocked(f"{busy.path.parent}: another facebatch annotate (pid {busy.holder}) is writing "
                                "here; wait for it to finish or choose another --out and --report") from None
        yield


def check_output_places(input_dir: Path, output_dir: Path) -> str | None:
    """Refuse an --out where a copy could land on an original; the output folder's path inside
    the input folder (to leave out of the scan), or None."""
    real_in, real_out = Path(input_dir).resolve(), Path(output_dir).resolve()
    if real_out == real_in:
        raise UsageProblem(f"{output_dir}: is the input folder itself; choose another --out")
    if real_in.is_relative_to(real_out):
        raise UsageProblem(f"{output_dir}: contains the input folder {input_dir}, so an annotated copy could "
                           "overwrite an original; choose an --out outside it")
    return real_out.relative_to(real_in).as_posix() if real_out.is_relative_to(real_in) else None


def images_to_annotate(input_dir: Path, output_dir: Path, unreadable: list[str] | None = None) -> list[str]:
    """Images below input_dir, leaving out our own output when it lies inside the input folder."""
    inside = check_output_places(input_dir, output_dir)
    relatives = find_images(input_dir, unreadable)
    if inside is None:
        return relatives
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
    return ImageRecord(to_text(result.image), result.size, result.mtime_ns, result.sha256, key, rows_for(result),
                       result.status, to_text(result.annotated))


def _plan(relatives: list[str], input_dir: Path, state: RunState, key: str, force: bool) -> list[str]:
    """The images to work on: new, changed, failed last time, or made under other options."""
    todo = []
    for relative in relatives:
        record = None if force else state.get(to_text(relative))
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
        try:
            same = stat.st_size == record.size and sha256_of_file(input_dir / relative) == record.sha256
        except OSError:
            same = False  # unreadable now: the worker reports why
        if same:
            state.update_stat(to_text(relative), stat.st_size, stat.st_mtime_ns)
        else:
            todo.append(relative)
    return todo


def output_file(output_dir: Path, relative_text: str) -> Path | None:
    """The file `relative_text` (as stored in the manifest) names inside `output_dir`, or None
    when it would lead outside it: a manifest is data, and its paths are never trusted."""
    if not relative_text:
        return None
    relative = from_text(relative_text)
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts or not parts:
        return None
    path = output_dir / relative
    if not path.parent.resolve().is_relative_to(output_dir.resolve()):
        return None  # a symlinked folder inside --out pointing elsewhere
    return path


def _remove_output(output_dir: Path, relative_text: str) -> None:
    path = output_file(output_dir, relative_text)
    if path is not None:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()


def _gone(current: set[str], unreadable: list[str], state: RunState) -> list[str]:
    """Stored images that left the folder; those below a folder we could not list are kept."""
    hidden = tuple(to_text(folder) + "/" for folder in unreadable)
    return [path for path in state.paths() if path not in current and not path.startswith(hidden)]


def _guard_purge(input_dir: Path, found: int, gone: int, stored: int) -> None:
    if gone and (found == 0 or (gone >= PURGE_GUARD_MIN_IMAGES and gone * 2 > stored)):
        raise PurgeRefused(
            f"{input_dir}: {gone} of the {stored} images of the last run are missing ({found} found now); "
            "nothing was deleted. If the folder is a share, check that it is mounted; if the images were "
            "really removed, run again with --confirm-purge")


def _forget(gone: list[str], output_dir: Path, state: RunState) -> None:
    """Drop images that left the folder: their manifest entries and their annotated copies."""
    for path in gone:
        record = state.get(path)
        if record is not None:
            _remove_output(output_dir, record.annotated)
    state.remove(gone)


def annotate(input_dir: Path, db_path: Path, output_dir: Path, report_path: Path, settings: Settings,
             hooks: RunHooks = RunHooks(), force: bool = False, confirm_purge: bool = False) -> Summary:
    input_dir, output_dir, report_path = Path(input_dir), Path(output_dir), Path(report_path)
    if not input_dir.is_dir():
        raise UsageProblem(f"{input_dir}: no such folder; pass the folder of photos to annotate")
    spec = weights.get_spec(settings.model)
    manifest = weights.read_manifest(settings.models_root, spec.name)
    if manifest is None:
        raise weights.not_installed(settings.models_root, spec)
    # Everything that can fail on its own is checked before anything is created on disk.
    # Readers take no lock: every database write is an atomic rename (gallery.py), so this is a
    # consistent snapshot even while an enroll writes, and a read-only database works.
    gallery = gallery_db.load(db_path, spec.name)
    check_output_places(input_dir, output_dir)
    started = time.monotonic()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        report_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{exc.filename}: cannot create the output folder ({describe_os_error(exc)}); "
                          "choose a writable --out and --report") from None
    with run_locks(output_dir, report_path):
        remove_stale_temporaries(output_dir)
        remove_stale_temporaries(report_path.parent, recursive=False, stem=report_path.name)
        known = gallery.matrix()
        key = options_key(settings, manifest.get("weights_sha256", ""), gallery.fingerprint())
        unreadable: list[str] = []
        relatives = images_to_annotate(input_dir, output_dir, unreadable)
        if "." in unreadable:
            raise UsageProblem(f"{input_dir}: cannot list the folder (permission denied); make it readable")
        for folder in unreadable:
            hooks.warn(f"{input_dir / folder}: cannot list this folder (permission denied); its earlier "
                       "results are kept, make it readable to annotate it")
        current = {to_text(r) for r in relatives}
        with open_state(state_path_for(report_path), hooks.warn) as state:
            gone = _gone(current, unreadable, state)
            if not confirm_purge:
                _guard_purge(input_dir, len(relatives), len(gone), sum(1 for _ in state.paths()))
            _forget(gone, output_dir, state)
            todo = _plan(relatives, input_dir, state, key, force)
            hooks.on_start(len(todo))
            _process(todo, input_dir, output_dir, settings, known, state, key, hooks)
            summary = _write_report(report_path, state)
    summary.processed = len(todo)
    summary.carried_over = summary.images - len(todo)
    summary.seconds = time.monotonic() - started
    return summary


def _process(todo, input_dir, output_dir, settings, known, state, key, hooks: RunHooks) -> None:
    """Work through `todo` chunk by chunk, saving each finished chunk to the manifest at once.

    Chunks are cut from `todo` in order and finished in order, so after an interruption the
    remaining work starts on a chunk boundary and is cut into the same chunks again: a resumed
    run embeds exactly the batches an uninterrupted run would, and its results match to the bit.
    """
    for chunk_results in run_stoppable(annotate_chunk, chunked(todo, IMAGES_PER_CHUNK), settings, hooks.should_stop,
                                       input_dir, output_dir, settings, known, shared=[known]):
        state.put_many(_record(r, key) for r in chunk_results)
        for result in chunk_results:
            if result.status == STATUS_ERROR:
                _remove_output(output_dir, to_text(annotated_name(result.image)))
            hooks.on_result(result)


def _write_report(report_path: Path, state: RunState) -> Summary:
    """Rebuild the report from the manifest, streaming: every image the manifest holds, in path order.

    By now the manifest holds exactly the folder's images (vanished ones were dropped before the
    run), plus those below folders that could not be listed this time.
    """
    summary = Summary()
    try:
        with atomic_writer(report_path, "w") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(HEADER)
            for record in state.records():
                writer.writerows(record.rows)
                summary.add_rows(record.rows)
    except OSError as exc:
        raise OutputError(f"{report_path}: cannot write the report ({describe_os_error(exc)}); the previous "
                          "report is left as it was, free some space or fix the permissions and run again") from None
    return summary
