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
import errno
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from . import draw, groups, locks, match, review, weights
from . import gallery as gallery_db
from .atomicio import describe_os_error, remove_stale_temporaries, write_failure_hint
from .config import IMAGES_PER_CHUNK, SIDECARS_KEEP_TRUE, SIDECARS_WRITE, Settings, part_key
from .errors import (FacebatchError, Interrupted, OutputError, PurgeRefused, RunLocked, SidecarError, UsageProblem,
                     folder_refused)
from .hooks import RunHooks
from .images import OUTPUT_MARKER, annotated_name, find_images
from .match import LABEL_RULE, label_image
from .packages import sha256_of_file
from .outputplaces import own_files_in_out, refuse_a_folder_of_other_files
from .pathtext import to_text
from .pipeline import annotate_chunk, relabel_chunk
from .report import Summary
from .results import STATUS_ERROR, STATUS_OK, UNKNOWN, ImageResult
from .runner import chunked, run_stoppable
from .sidecar import sidecar_path_for
from .state import (NO_SIDECAR_NEEDED, OUTPUTS_UNSURE, SIDECAR_UNWRITTEN, CopyStat, ImageRecord, RunState, open_state,
                    state_path_for)
from .writers import AnnotatedCopyWriter, CsvReportWriter, ReviewWriter, XmpSidecarWriter, image_writers, output_file

LOCK_NAME = ".facebatch-annotate.lock"
RESULT_FORMAT = 3  # bump when the faces found for the same inputs would change, so old results are redone
# Format 3 gave a web-size photo with no face a second look.  A format-2 record that look cannot
# change is kept under the new key instead of being detected again (`_unchanged_by_the_second_look`).
_SECOND_LOOK_FORMAT = 3
# An input folder that suddenly lacks this many of last run's images, and more than half of
# them, looks like an unmounted share or a failed sync rather than a clean-up: refuse to purge.
PURGE_GUARD_MIN_IMAGES = 10


@contextlib.contextmanager
def run_locks(output_dir: Path, report_path: Path) -> Iterator[None]:
    """One annotate per output folder, per report and per manifest (r.csv and r.txt share
    r.state.sqlite).  Lock files vanish with the run (locks.py)."""
    manifest = state_path_for(report_path)
    paths = [output_dir / LOCK_NAME, report_path.with_name(report_path.name + ".lock"),
             manifest.with_name(manifest.name + ".lock")]
    with contextlib.ExitStack() as stack:
        # Only the folder is resolved: the lock file itself is never followed if it is a link
        # (locks.py opens it with O_NOFOLLOW), or a planted link would have us empty its target.
        for path in dict.fromkeys(Path(os.path.realpath(p.parent)) / p.name for p in paths):
            try:
                stack.enter_context(locks.held(path, wait=False))
            except locks.LockBusy as busy:
                raise RunLocked(f"{busy.path.parent}: another facebatch annotate (pid {busy.holder}) is writing "
                                "here; wait for it to finish or choose another --out and --report") from None
        yield


def check_output_places(input_dir: Path, output_dir: Path) -> str | None:
    """Refuse an --out where a copy could land on an original; the output folder's path inside
    the input folder (to leave out of the scan), or None."""
    real_in, real_out = Path(os.path.realpath(input_dir)), Path(os.path.realpath(output_dir))
    if real_out == real_in:
        raise UsageProblem(f"{output_dir}: is the input folder itself; choose another --out")
    if real_in.is_relative_to(real_out):
        raise UsageProblem(f"{output_dir}: contains the input folder {input_dir}, so an annotated copy could "
                           "overwrite an original; choose an --out outside it")
    return real_out.relative_to(real_in).as_posix() if real_out.is_relative_to(real_in) else None


def images_to_annotate(input_dir: Path, output_dir: Path, unreadable: list[str] | None = None,
                       skipped: list[tuple[str, str]] | None = None, leftovers: list[str] | None = None,
                       own_files: dict[str, str] | None = None) -> list[str]:
    """Images below input_dir, leaving out our own output when it lies inside the input folder
    (and any other annotate output folder: images.OUTPUT_MARKER).  What else was passed over,
    with why, goes to `skipped`; our own output folder is not news.  A photo whose copy would
    land on one of `own_files` (outputplaces.own_files_in_out) is passed over too."""
    inside = check_output_places(input_dir, output_dir)
    passed_over: list[tuple[str, str]] = []
    relatives = find_images(input_dir, unreadable, passed_over, leftovers)
    if inside is not None:
        relatives = [r for r in relatives if not r.startswith(inside + "/")]
    # x.gif's copy is x.gif.jpg (GIF is not written): with an x.gif.jpg beside it, both would
    # write one file and one result would be lost
    present = set(relatives)
    clashing = {r for r in relatives if annotated_name(r) != r and annotated_name(r) in present}
    passed_over += [(r, f"its annotated copy would be {annotated_name(r)}, the copy of the photo of that name; "
                        "rename one of the two") for r in sorted(clashing)]
    for relative in relatives:
        copy = to_text(annotated_name(relative))
        for own, what in (own_files or {}).items():
            if copy == own or copy.startswith(own + "/"):
                clashing.add(relative)
                passed_over.append((relative, f"its annotated copy would be {copy} in --out, where facebatch keeps "
                                              f"its {what} ({own}); rename the photo's folder"))
    if skipped is not None:
        skipped.extend((path, why) for path, why in passed_over if path != inside)
    return [r for r in relatives if r not in clashing]


def detection_key(settings: Settings, weights_sha256: str, result_format: int | None = None) -> str:
    """What the faces and embeddings of an image depend on, besides the image (under this
    version's RESULT_FORMAT unless another is asked for)."""
    spec = weights.get_spec(settings.detection.model)
    return part_key(settings.detection, weights=weights_sha256, crop=spec.crop.key, standardisation=spec.standardisation,
                    format=RESULT_FORMAT if result_format is None else result_format)


def _unchanged_by_the_second_look(record: ImageRecord, settings: Settings) -> bool:
    """Whether a record of the format before the second look is what this format finds: it has
    faces (found by the first look or a turn, which run as before; the second look comes only
    after both found nothing), or its photo is too large for a second look."""
    result = record.result
    return bool(result.faces) or not settings.detection.detector.second_look_for(result.width, result.height)


def labels_key(settings: Settings, gallery_fingerprint: str) -> str:
    """What the names given to stored faces depend on."""
    return part_key(settings.labels, gallery=gallery_fingerprint, rule=LABEL_RULE)


class _Plan:
    """What to do with each image: detect it (new, changed, failed, other detection settings),
    relabel it from its stored faces (only the labels' inputs changed), or carry it over."""

    def __init__(self):
        self.detect: list[str] = []  # relative paths, as Python holds them
        self.relabel: list[str] = []  # manifest keys (pathtext); records are read back in batches
        self.redraw: set[str] = set()  # of those, the ones whose outputs went missing or changed: drawn again
        # copies whose stat is recorded anew: found without one (a schema-2 manifest), or found
        # with the same bytes under another mtime (the output folder copied or restored)
        self.copy_stats_found: dict[str, CopyStat] = {}


def _copy_on_disk(output_dir: Path, annotated: Path | str) -> os.stat_result | None:
    try:
        return os.lstat(output_dir / annotated)
    except (OSError, ValueError):
        return None


def _copy_digest(path: Path) -> str:
    """The copy's SHA-256, or "" when it cannot be read (not known: a later difference redraws it)."""
    try:
        return sha256_of_file(path)
    except OSError:
        return ""


def written_copy_stat(output_dir: Path, annotated: Path | str) -> CopyStat | None:
    """The stat and digest of a copy this run wrote, or None when there is none.  The copy was
    just written, so reading it back costs little next to drawing it."""
    found = _copy_on_disk(output_dir, annotated)
    if found is None:
        return None
    return CopyStat(found.st_size, found.st_mtime_ns, _copy_digest(output_dir / annotated))


def _outputs_differ(record: ImageRecord, output_dir: Path, plan: _Plan) -> bool:
    """The annotated copy of the stored result is missing or not as annotate left it (deleted by
    hand, lost with a disk, junk written into it), or a face thumbnail is missing: one stat each,
    so a rerun with nothing changed stays fast.  A copy of the same size with another mtime is
    read and compared by digest: restored from a backup or copied with `cp -r`, it is the same."""
    result = record.result
    if result.annotated:
        found = _copy_on_disk(output_dir, result.annotated)
        if found is None:
            return True
        stored = record.copy_stat
        if stored is None:
            plan.copy_stats_found[record.path] = CopyStat(found.st_size, found.st_mtime_ns)
        elif (found.st_size, found.st_mtime_ns) != (stored.size, stored.mtime_ns):
            if found.st_size != stored.size or not stored.sha256 or \
                    _copy_digest(output_dir / result.annotated) != stored.sha256:
                return True
            plan.copy_stats_found[record.path] = stored._replace(mtime_ns=found.st_mtime_ns)
    image = to_text(result.image)
    return result.status == STATUS_OK and any(
        not os.path.lexists(output_dir / review.thumb_path(image, f.face.box, result.sha256)) for f in result.faces)


def _sidecar_missing(record: ImageRecord, input_dir: Path) -> bool:
    """A photo with a named face and no sidecar, in a run writing them (--xmp): deleted by hand,
    or by a run over the same photos with another database.  A relabel writes it again without
    redrawing the copy.  One stat or two per named photo.  (A photo whose own XMP names its faces
    needs no sidecar: its record carries NO_SIDECAR_NEEDED, and this is not asked of it.)"""
    result = record.result
    return result.status == STATUS_OK and _names_someone(result) and \
        not os.path.lexists(sidecar_path_for(input_dir / result.image))


def _names_someone(result: ImageResult) -> bool:
    """Whether a sidecar under --xmp would hold a region of this photo's."""
    return any(f.name != UNKNOWN for f in result.faces)


def _plan(relatives: list[str], input_dir: Path, state: RunState, detect_key: str, label_key: str,
          force: bool, output_dir: Path, kept_from_before_the_second_look, sidecars_written: bool) -> _Plan:
    plan = _Plan()
    rekeyed = []
    for relative in relatives:
        record = None if force else state.get(to_text(relative))
        if record is not None and record.detection_key != detect_key and kept_from_before_the_second_look(record):
            rekeyed.append(record.path)
            record = replace(record, detection_key=detect_key)
        if record is None or record.detection_key != detect_key or record.result.status == STATUS_ERROR:
            plan.detect.append(relative)
            continue
        try:
            stat = os.stat(input_dir / relative)
        except OSError:
            plan.detect.append(relative)  # vanished since the scan; the worker reports it
            continue
        if (stat.st_size, stat.st_mtime_ns) != (record.result.size, record.result.mtime_ns):
            # Touched but maybe not changed (copied back, restored from backup): compare content.
            try:
                same = stat.st_size == record.result.size and \
                    sha256_of_file(input_dir / relative) == record.result.sha256
            except OSError:
                same = False  # unreadable now: the worker reports why
            if not same:
                plan.detect.append(relative)
                continue
            state.update_stat(to_text(relative), stat.st_size, stat.st_mtime_ns)
        outputs_differ = _outputs_differ(record, output_dir, plan)
        current = record.labels_key in (label_key, label_key + NO_SIDECAR_NEEDED)
        if not current or outputs_differ or \
                (sidecars_written and record.labels_key == label_key and _sidecar_missing(record, input_dir)):
            plan.relabel.append(record.path)
            if record.labels_key == OUTPUTS_UNSURE or outputs_differ:
                plan.redraw.add(record.path)
    if plan.copy_stats_found:
        state.update_copy_stats(plan.copy_stats_found)
    if rekeyed:
        state.update_detection_keys(rekeyed, detect_key)
    return plan


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


def _forget(gone: list[str], input_dir: Path, output_dir: Path, state: RunState, settings: Settings,
            hooks: RunHooks) -> int:
    """Drop images that left the folder: their manifest entries and what the writers made for them.
    Returns how many sidecars could not be cleaned (each is warned about)."""
    writers = image_writers(input_dir, output_dir, settings.labels.sidecars)
    problems = 0
    for path in gone:
        record = state.get(path)
        if record is not None:
            problems += _remove_outputs(record.result.image, to_text(record.result.annotated), writers, input_dir,
                                        hooks)
        elif (copy := output_file(output_dir, to_text(annotated_name(path)))) is not None:
            with contextlib.suppress(OSError):
                copy.unlink()  # a damaged record: its copy is where annotate would have put it
    state.remove(gone)
    return problems


def _remove_outputs(image: str, annotated: str, writers: list, input_dir: Path, hooks: RunHooks) -> int:
    """Have each writer remove what it made for `image`; 1 when a sidecar could not be cleaned."""
    failed = 0
    for writer in writers:
        try:
            writer.remove(image, annotated)
        except (SidecarError, OSError) as exc:
            failed = 1
            hooks.warn(f"{to_text(str(input_dir / image))}: facebatch's face regions could not be taken out of its "
                       f"{writer.what}, which may still name people: {exc}")
    return failed


def annotate(input_dir: Path, db_path: Path, output_dir: Path, report_path: Path, settings: Settings,
             hooks: RunHooks = RunHooks(), force: bool = False, confirm_purge: bool = False,
             review_options: tuple[str, ...] = (), summary_path: Path | None = None) -> Summary:
    """`review_options` are the options the review page adds to the commands it shows (--db, --out);
    `summary_path` is where the command line writes --summary-json (kept clear of copies)."""
    input_dir, output_dir, report_path = Path(input_dir), Path(output_dir), Path(report_path)
    if not input_dir.is_dir():
        raise folder_refused(input_dir, "pass the folder of photos to annotate")
    spec = weights.get_spec(settings.detection.model)
    manifest = weights.read_manifest(settings.execution.models_root, spec.name)
    if manifest is None:
        raise weights.not_installed(settings.execution.models_root, spec)
    # Everything that can fail on its own is checked before anything is created on disk.
    # Readers take no lock: every database write is an atomic rename (gallery.py), so this is a
    # consistent snapshot even while an enroll writes, and a read-only database works.
    gallery = gallery_db.load(db_path, spec.name, spec.crop.key)
    if not gallery.people:
        hooks.warn(f"{db_path}: nobody is enrolled, so every face is UNKNOWN; add people with facebatch enroll "
                   "(or name the groups of unknown faces afterwards: facebatch unknowns)")
    if settings.labels.threshold is None and (ignored := gallery.thresholds_of_an_older_crop(spec.crop.key)):
        hooks.warn(f"{db_path}: {ignored}")
    settings = replace(settings, labels=settings.labels.resolved(gallery.calibrated(spec.crop.key).get("annotate"),
                                                                  spec.default_threshold))
    check_output_places(input_dir, output_dir)
    refuse_a_folder_of_other_files(output_dir)
    started = time.monotonic()
    created = not os.path.lexists(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        report_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{exc.filename}: cannot create the output folder ({describe_os_error(exc)}); "
                          "choose a writable --out and --report") from None
    with contextlib.ExitStack() as locked:
        try:
            locked.enter_context(run_locks(output_dir, report_path))
        except RunLocked:
            if created:  # turned away (another run writes the report): leave no empty --out behind
                with contextlib.suppress(OSError):
                    output_dir.rmdir()
            raise
        remove_stale_temporaries(output_dir)
        remove_stale_temporaries(report_path.parent, recursive=False, stem=report_path.name)
        known = match.KnownPeople.from_matrix(*gallery.matrix())
        detect_key = detection_key(settings, manifest.get("weights_sha256", ""))
        label_key = labels_key(settings, gallery.fingerprint())
        (output_dir / OUTPUT_MARKER).touch()  # so that no scan reads this folder as photos (the lock proved it writable)
        _check_review_folder(output_dir)
        unreadable: list[str] = []
        skipped: list[tuple[str, str]] = []
        leftovers: list[str] = []
        relatives = images_to_annotate(input_dir, output_dir, unreadable, skipped, leftovers,
                                       own_files_in_out(output_dir, report_path, summary_path))
        _remove_leftover_sidecar_temporaries(input_dir, leftovers)
        for path, why in skipped:
            hooks.warn(f"{to_text(str(input_dir / path))}: skipped, {why}")
        if "." in unreadable:
            raise UsageProblem(f"{input_dir}: cannot list the folder (permission denied); make it readable")
        for folder in unreadable:
            hooks.warn(f"{input_dir / folder}: cannot list this folder (permission denied); its earlier "
                       "results are kept, make it readable to annotate it")
        if not relatives and not unreadable:
            hooks.warn(f"{to_text(str(input_dir))}: no photos found (hidden files, links and other suffixes are "
                       "skipped); check the folder")
        current = {to_text(r) for r in relatives}
        with open_state(state_path_for(report_path), hooks.warn) as state:
            groups.record_run_source(state, db_path, spec.name)
            gone = _gone(current, unreadable, state)
            if not confirm_purge:
                _guard_purge(input_dir, len(relatives), len(gone), sum(1 for _ in state.paths()))
            cleanup_failures = _forget(gone, input_dir, output_dir, state, settings, hooks)
            before_the_second_look = detection_key(settings, manifest.get("weights_sha256", ""), _SECOND_LOOK_FORMAT - 1)
            plan = _plan(relatives, input_dir, state, detect_key, label_key, force, output_dir,
                         lambda record: record.detection_key == before_the_second_look
                         and _unchanged_by_the_second_look(record, settings),
                         settings.labels.sidecars == SIDECARS_WRITE)
            hooks.on_start(len(plan.detect) + len(plan.relabel))
            try:
                sidecar_failures = _relabel(plan.relabel, input_dir, output_dir, settings, known, state, label_key,
                                            hooks, plan.redraw)
                sidecar_failures += _detect(plan.detect, input_dir, output_dir, settings, known, state, detect_key,
                                            label_key, hooks)
            except FacebatchError:
                # A run that stops part-way (a cron timeout's SIGTERM, every night, say; a worker
                # killed; a full disk) must not leave the last run's report listing the copies this
                # one removed or redrew, nor groups holding faces its photos no longer have: finish
                # with what is saved, as far as that goes, and stop as asked.
                with contextlib.suppress(Exception):  # what stopped the run is the error to report
                    _finish(state, _detected_before_the_stop(plan.detect, state), spec, output_dir, report_path,
                            settings, review_options, hooks)
                raise
            summary = _finish(state, [to_text(p) for p in plan.detect], spec, output_dir, report_path, settings,
                              review_options, hooks)
    summary.output_failures += sidecar_failures + cleanup_failures
    summary.processed = len(plan.detect)
    summary.relabelled = len(plan.relabel)
    summary.carried_over = summary.images - len(plan.detect) - len(plan.relabel)
    summary.seconds = time.monotonic() - started
    return summary


def _finish(state: RunState, redetected: list[str], spec, output_dir: Path, report_path: Path, settings: Settings,
            review_options: tuple[str, ...], hooks: RunHooks) -> Summary:
    """Bring the groups up to date with the images detected again (`redetected`), then write the
    report and the review pages from every saved record."""
    found = groups.refresh(state, redetected, spec.embedding_size, spec.crop.key,
                           groups.highest_number_issued(output_dir / review.FOLDER), hooks.warn)
    _check_output_folder(output_dir)
    try:
        groups.record_numbers_issued(output_dir / review.FOLDER, found)
        unrecorded = ""
    except OutputError as exc:
        # The manifest holds the number too; this record only guards a manifest rebuilt later, and
        # is written again by the next run.  Not worth the night's report (a full --out disk).
        unrecorded = str(exc)
    summary = _write_report_and_pages(state, output_dir, report_path, settings, review_options, hooks, found)
    if unrecorded:
        hooks.warn(unrecorded)
        summary.output_failures += 1
    return summary


def _detected_before_the_stop(planned: list[str], state: RunState) -> list[str]:
    """Of the images planned for detection, those a stopped run finished: their records no longer
    carry the mark `_detect` put on all of them before it started (new images have no record)."""
    done = []
    for relative in map(to_text, planned):
        record = state.get(relative)
        if record is not None and record.labels_key != OUTPUTS_UNSURE:
            done.append(relative)
    return done


def _check_output_folder(output_dir: Path) -> None:
    if not (output_dir / OUTPUT_MARKER).exists():
        # Deleted under us: the copies made so far went with it, and a report written now
        # would point at them (the manifest, open on a deleted file, is lost too).
        raise OutputError(f"{output_dir}: the output folder was removed during the run; run the same "
                          "command again to redo it")


def _write_report_and_pages(state: RunState, output_dir: Path, report_path: Path, settings: Settings,
                            review_options: tuple[str, ...], hooks: RunHooks, found: groups.Groups) -> Summary:
    """The CSV report and the review pages of every saved record.  One read of the manifest feeds
    both: the report streams, the pages collect."""
    pages = ReviewWriter(output_dir, settings.labels.threshold, found, review_options)
    summary = CsvReportWriter(report_path).write(pages.collecting(r.result for r in state.records()))
    try:
        pages.finish()
    except OutputError as exc:  # the report is written: a missing review page is not worth stopping for
        hooks.warn(str(exc))
        summary.output_failures += 1
    return summary


# A temporary file in the photo folder is a sidecar being written.  Only one older than this is
# left over from a killed run: another annotate (with another --out, so not under our lock) may
# be writing the photo folder's sidecars right now.
LEFTOVER_AGE_S = 3600


def _remove_leftover_sidecar_temporaries(input_dir: Path, leftovers: list[str]) -> None:
    now = time.time()
    for relative in leftovers:
        path = input_dir / relative
        with contextlib.suppress(OSError):
            if now - path.lstat().st_mtime > LEFTOVER_AGE_S:
                path.unlink()


def _check_review_folder(output_dir: Path) -> None:
    """Every image writes its face thumbnails under review/: a file in the folder's place, or a
    folder we cannot write, would fail every image and throw away what the manifest holds for them
    (faces, groups, ignores).  Stop before any work instead."""
    folder = output_dir / review.THUMBS
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK) or not os.access(folder.parent, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as exc:
        raise OutputError(f"{output_dir / review.FOLDER}: cannot write the review pages and face thumbnails there "
                          f"({describe_os_error(exc)}); {write_failure_hint(exc, 'that folder')}") from None


def _detect(todo, input_dir, output_dir, settings, known, state, detect_key, label_key, hooks: RunHooks) -> int:
    """Detect, embed, label and write `todo` chunk by chunk, saving each finished chunk at once.

    Chunks are cut from `todo` in order and finished in order, so after an interruption the
    remaining work starts on a chunk boundary and is cut into the same chunks again: a resumed
    run embeds exactly the batches an uninterrupted run would, and its results match to the bit.
    Returns how many sidecars could not be written (`_output_problems`).
    """
    cleaners = _failure_cleaners(input_dir, output_dir)
    state.mark_outputs_unsure(to_text(relative) for relative in todo)  # in one transaction: cheap up front
    problems = 0
    for chunk_results in run_stoppable(annotate_chunk, chunked(todo, IMAGES_PER_CHUNK), settings.execution,
                                       hooks.should_stop, input_dir, output_dir, settings, known, shared=[known]):
        problems += _finish_chunk(chunk_results, lambda _: detect_key, lambda _: None, label_key, state, cleaners,
                                  input_dir, output_dir, hooks)
    return problems


def _finish_chunk(results: list[ImageResult], detection_key_of, kept_copy_of, label_key: str, state: RunState,
                  cleaners: list, input_dir: Path, output_dir: Path, hooks: RunHooks) -> int:
    """Save a chunk's results in one transaction, then warn about and clean up after its failures;
    how many outputs could not be written or cleaned.  `kept_copy_of(result)` is the stored stat of
    a copy this chunk did not rewrite (`_plan` checked it), or None; the stat of a copy written now
    is taken as the worker left it (this run holds the output folder's lock)."""
    def copy_stat_of(result: ImageResult) -> CopyStat | None:
        kept = kept_copy_of(result)
        if kept is not None or not result.annotated:
            return kept
        return written_copy_stat(output_dir, result.annotated)

    state.put_many(ImageRecord(r, detection_key_of(r), _stored_labels_key(r, label_key), copy_stat_of(r))
                   for r in results)
    problems = _output_problems(results, input_dir, hooks) + _clean_up_failures(results, cleaners, input_dir, hooks)
    for result in results:
        hooks.on_result(result)
    return problems


def _failure_cleaners(input_dir: Path, output_dir: Path) -> list:
    """An image that fails now shows nothing: its copy goes, and so do our regions in its sidecar
    (they could name someone since removed from the database), with or without --xmp."""
    return [AnnotatedCopyWriter(output_dir), XmpSidecarWriter(input_dir)]


def _clean_up_failures(results: list[ImageResult], cleaners: list, input_dir: Path, hooks: RunHooks) -> int:
    return sum(_remove_outputs(r.image, to_text(annotated_name(r.image)), cleaners, input_dir, hooks)
               for r in results if r.status == STATUS_ERROR)


def _stored_labels_key(result: ImageResult, label_key: str) -> str:
    """The labels key a finished result is saved under: an error is relabelled next run (""), and
    so is a result whose sidecar could not be written (SIDECAR_UNWRITTEN: written again then).  A
    named photo that needed no sidecar under --xmp is marked so (NO_SIDECAR_NEEDED)."""
    if result.status == STATUS_ERROR:
        return ""
    if result.output_problem:
        return SIDECAR_UNWRITTEN
    needless = _names_someone(result) and result.sidecar_written is False
    return label_key + NO_SIDECAR_NEEDED if needless else label_key


def _output_problems(results: list[ImageResult], input_dir: Path, hooks: RunHooks) -> int:
    """Warn about each sidecar that could not be written; the faces found stand."""
    failed = [r for r in results if r.output_problem]
    for result in failed:
        hooks.warn(f"{to_text(str(input_dir / result.image))}: {result.output_problem}")
    return len(failed)


RELABEL_BATCH = 256  # records named again per manifest transaction: bounded memory, few fsyncs


def _relabel(paths: list[str], input_dir, output_dir, settings, known, state, label_key, hooks: RunHooks,
             redraw_anyway: set[str] = frozenset()) -> int:
    """New labels from stored embeddings (no detection, no TensorFlow); outputs rewritten only
    where something they show changed: a copy is redrawn only when a label's text changed, or
    when its outputs went missing (`redraw_anyway`).

    Records are read back and saved in batches, so relabelling 100,000 photos after a database
    change holds one batch in memory and commits one transaction per batch.  Returns how many
    sidecars could not be written.
    """
    problems = 0
    cleaners = _failure_cleaners(input_dir, output_dir)
    for start in range(0, len(paths), RELABEL_BATCH):
        records = [r for r in (state.get(p) for p in paths[start:start + RELABEL_BATCH]) if r is not None]
        unchanged, work = [], []
        for record in records:
            old = record.result
            faces = [f.face for f in old.faces]
            labelled = label_image(faces, old.embeddings, settings.labels, known) if faces else ()
            new = replace(old, faces=labelled)
            redraw = record.path in redraw_anyway or \
                [draw.label_text(f) for f in labelled] != [draw.label_text(f) for f in old.faces]
            if redraw or record.labels_key == SIDECAR_UNWRITTEN or \
                    settings.labels.sidecars != SIDECARS_KEEP_TRUE:
                # (kept true, a sidecar changes only with a label: those are redrawn)
                work.append((new, redraw))
            else:
                unchanged.append(ImageRecord(new, record.detection_key, label_key, record.copy_stat))
        state.put_many(unchanged)
        for record in unchanged:
            hooks.on_result(record.result)
        keys = {r.path: r.detection_key for r in records}
        # a copy not redrawn keeps its stored stat: reading a copy back is for those written now
        stored_copies = {r.path: r.copy_stat for r in records}
        kept_copies = {to_text(result.image): None if redraw else stored_copies[to_text(result.image)]
                       for result, redraw in work}
        state.mark_outputs_unsure(to_text(result.image) for result, _ in work)
        for chunk_results in run_stoppable(relabel_chunk, chunked(work, IMAGES_PER_CHUNK * 4), settings.execution,
                                           hooks.should_stop, input_dir, output_dir, settings):
            problems += _finish_chunk(chunk_results, lambda r: keys[to_text(r.image)],
                                      lambda r: kept_copies[to_text(r.image)], label_key, state, cleaners, input_dir,
                                      output_dir, hooks)
        if hooks.should_stop():
            raise Interrupted(hooks.should_stop())
    return problems
