"""`facebatch calibrate`: thresholds measured on the user's own labelled photos.

LABELLED_DIR has the layout enroll reads (`Name/*.jpg`, or `Name.jpg`).  Every photo's largest
face is embedded (in parallel, like enroll); calibration.py turns the embeddings into the
distance distributions, the accuracy at the thresholds in force, and recommended thresholds;
`write` stores those in the database, where annotate and verify take them as their defaults.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from . import calibration
from . import gallery as gallery_db
from . import weights
from .config import IMAGES_PER_CHUNK, Settings
from .enrollment import choose_faces, look_alike_warnings, person_photos
from .errors import DatabaseError, Interrupted, OutputError, UsageProblem, folder_refused, with_hint
from .hooks import RunHooks
from .match import KnownPeople
from .pathtext import to_text
from .packages import sha256_of_file
from .pipeline import NO_FACE, PhotoEmbedding, clear_face_hint, embed_photos
from .runner import chunked, run_stoppable


@dataclass
class CalibrateOutcome:
    photos: int
    people: int
    recommendation: calibration.Recommendation
    current_annotate: float
    current_verify: float
    warnings: list[str] = field(default_factory=list)
    write: bool = False  # --write was asked for
    skipped: int = 0  # photos not used (unreadable, no face, refused name, one file under two people)
    failed: int = 0  # of those, the ones that are the input's fault, not the detector's: all but "no face"
    suspects: int = 0  # pairs of different people too near to be two people: nothing is stored
    written: list[str] = field(default_factory=list)  # the thresholds --write stored ("annotate", "verify")
    reset: list[str] = field(default_factory=list)  # stored thresholds --write removed (back to the model's)
    default_annotate: float = 0.0  # the model's own thresholds, the ceilings of a small sample
    default_verify: float = 0.0
    store_error: str = ""  # why --write could not store them (the report is still worth printing)


MAX_SUSPECTS_SHOWN = 10
MAX_TIGHTENING_PAIRS_SHOWN = 3
# Calibrating compares every pair of photos: 5,000 photos take about 1.6 GB and 20 s, 10,000 about
# 6 GB.  More than this, and each person's photos are taken up to a quota (MAX // people).
MAX_PHOTOS = 5000


def _one_copy_each(usable: list[PhotoEmbedding], person_of: dict[str, str], warnings: list[str]
                   ) -> list[PhotoEmbedding]:
    """One photo per file content.  Copies filed under one person are one photo, not a pair at
    distance 0; a photo filed under two people cannot be labelled, and every copy is skipped."""
    by_content: dict[str, list[PhotoEmbedding]] = {}
    for result in usable:
        try:
            content = sha256_of_file(Path(result.path))
        except OSError:  # gone or unreadable since it was embedded: it can only be itself
            content = f"path:{result.path}"
        by_content.setdefault(content, []).append(result)
    kept = set()
    for copies in by_content.values():
        people = {person_of[c.path] for c in copies}
        if len(people) == 1:
            kept.add(copies[0].path)
        else:
            names = ", ".join(f"{to_text(c.path)} ({person_of[c.path]})" for c in copies)
            warnings.append(f"{names}: skipped, the same photo filed under {len(people)} people; keep it in one "
                            "person's folder")
    return [result for result in usable if result.path in kept]


def calibrate(labelled_dir: Path, db_path: Path, settings: Settings, hooks: RunHooks = RunHooks(),
              write: bool = False) -> CalibrateOutcome:
    try:
        return _calibrate(labelled_dir, db_path, settings, hooks, write)
    except Interrupted as stopped:  # calibrate keeps nothing part-way: a rerun starts over
        raise Interrupted(stopped.signum, "nothing was stored; run the same command again") from None


def _calibrate(labelled_dir: Path, db_path: Path, settings: Settings, hooks: RunHooks, write: bool
               ) -> CalibrateOutcome:
    labelled_dir = Path(labelled_dir)
    if not labelled_dir.is_dir():
        raise folder_refused(labelled_dir, "pass a folder with one folder of photos per person")
    spec = weights.get_spec(settings.detection.model)
    stored = {}
    if write and not os.path.lexists(db_path):
        # thresholds alone in a new file: a mistyped --db, which annotate would then read as a
        # database with nobody in it (every face UNKNOWN)
        raise DatabaseError(f"{db_path}: no database to store the thresholds in; pass the --db that enroll "
                            "made, or run facebatch enroll first")
    other_model = None
    if os.path.lexists(db_path):
        # --write needs this model's database; a report alone does not (another model's thresholds do not apply)
        gallery = gallery_db.load(db_path, spec.name) if write else gallery_db.read(db_path)
        if write:  # before the photos are embedded, not after
            gallery_db.refuse_read_only(db_path)
        stored = gallery.calibrated(spec.crop.key, spec.name)
        other_model = gallery.model if gallery.model != spec.name else None
    current_annotate = stored.get("annotate", spec.default_threshold)
    current_verify = stored.get("verify", spec.verify_threshold)
    pairs, warnings, refused = person_photos(labelled_dir)
    warnings += look_alike_warnings({person for person, _ in pairs}, set(), labelled_dir)
    pairs, left_out = _within_budget(pairs)
    if left_out:
        warnings.append(f"{to_text(labelled_dir)}: calibrating on {len(pairs):,} photos, {left_out}: comparing "
                        f"every pair of more than {MAX_PHOTOS:,} would take several GB of memory")
    if other_model:
        warnings.insert(0, f"{db_path}: made with model {other_model}, so the current thresholds below are "
                           f"{spec.name}'s defaults, not the database's; to measure and store thresholds for it, "
                           f"calibrate with --model {other_model}")
    person_of = {str(labelled_dir / relative): person for person, relative in pairs}
    paths = sorted(person_of)
    hooks.on_start(len(paths))
    usable: list[PhotoEmbedding] = []
    several: list[tuple[str, PhotoEmbedding]] = []
    unreadable = 0
    for chunk_results in run_stoppable(partial(embed_photos, every_face=True), chunked(paths, IMAGES_PER_CHUNK),
                                       settings.execution, hooks.should_stop, settings):
        for result in chunk_results:
            hooks.on_result(result)
            if result.embedding is None:
                warnings.append(f"{to_text(result.path)}: skipped, "
                                f"{with_hint(result.error, clear_face_hint(result, settings.detection.detector))}")
                unreadable += result.error != NO_FACE
            elif result.other_faces is not None:
                several.append((result.path, result))
            else:
                usable.append(result)
    # A photo with several faces takes its person's face as enroll does (likeness to their photos
    # with one face); one whose largest face is another labelled person's is left out.
    chosen, refused = choose_faces(several, person_of, _known_from(usable, person_of), current_annotate, warnings,
                                   "used")
    usable = sorted(usable + [result for _, result in chosen], key=lambda result: result.path)
    unreadable += refused
    embedded = len(usable)
    usable = _one_copy_each(usable, person_of, warnings)
    skipped = refused + len(paths) - len(usable)
    failed = refused + unreadable + embedded - len(usable)
    labels = [person_of[result.path] for result in usable]
    counts = Counter(labels)
    if len(counts) < 2 or max(counts.values(), default=0) < 2:
        for warning in warnings:  # the reasons, before the verdict they lead to
            hooks.warn(warning)
        raise UsageProblem(f"{to_text(labelled_dir)}: calibrating needs at least 2 people and at least one of them "
                           f"with 2 or more usable photos (found {len(counts)} {'person' if len(counts) == 1 else 'people'}, "
                           f"{len(labels)} photos"
                           f"{f', {skipped} skipped' if skipped else ''}); add more labelled photos, one folder per "
                           "person")
    embeddings = np.stack([result.embedding for result in usable])
    try:
        return _measure(embeddings, labels, usable, person_of, warnings, counts, skipped, failed, current_annotate,
                        current_verify, spec, db_path, write, hooks)
    except MemoryError:
        raise UsageProblem(f"{to_text(labelled_dir)}: not enough memory to compare every pair of {len(labels):,} "
                           "photos; calibrate on fewer photos per person") from None


def _measure(embeddings, labels, usable, person_of, warnings, counts, skipped, failed, current_annotate,
             current_verify, spec, db_path, write, hooks) -> CalibrateOutcome:
    """The distances, the recommendation and its warnings, and --write."""
    distances, same = calibration.pair_distances(embeddings, labels)
    suspects = [(usable[i].path, usable[j].path, d)
                for i, j, d in calibration.suspect_pairs(distances, same, len(labels))]
    for first, second, distance in suspects[:MAX_SUSPECTS_SHOWN]:
        warnings.append(f"{to_text(first)} ({person_of[first]}) and {to_text(second)} ({person_of[second]}) are "
                        f"only {distance:.3f} apart, too near to be two people: one person under two names, or a "
                        "photo in the wrong folder? fix the labels")
    if len(suspects) > MAX_SUSPECTS_SHOWN:
        warnings.append(f"{len(suspects) - MAX_SUSPECTS_SHOWN} more pairs of different people nearer than "
                        f"{calibration.SUSPECT_DISTANCE}; fix the labels")
    recommendation = calibration.recommend(embeddings, labels, current_verify=current_verify,
                                           current_annotate=current_annotate, ceiling_verify=spec.verify_threshold,
                                           ceiling_annotate=spec.default_threshold)
    outcome = CalibrateOutcome(len(labels), len(counts), recommendation, current_annotate, current_verify, warnings,
                               write, skipped=skipped, failed=failed, suspects=len(suspects),
                               default_annotate=spec.default_threshold, default_verify=spec.verify_threshold)
    if recommendation.annotate_sample < len(labels):
        warnings.append(f"{len(labels) - recommendation.annotate_sample} photos are near-copies of another photo of "
                        f"the same person (nearer than {calibration.NEAR_COPY_DISTANCE}: re-encoded, resized, a "
                        "burst), counted once when judging whether there are enough photos to loosen a threshold")
    if not suspects:
        warnings += _what_tightens(distances, same, usable, person_of, recommendation, spec)
    if write and not suspects:  # thresholds measured on labels that look wrong are not stored
        try:
            _store(db_path, spec, recommendation, outcome, hooks)
        except (DatabaseError, OutputError) as exc:  # minutes of embedding: print what they measured anyway
            outcome.store_error = str(exc)
            outcome.written, outcome.reset = [], []
    return outcome


def _known_from(photos: list[PhotoEmbedding], person_of: dict[str, str]) -> KnownPeople:
    """The labelled people as annotate would know them, from these photos (with one face each)."""
    ordered = sorted(photos, key=lambda photo: person_of[photo.path])
    names = sorted({person_of[photo.path] for photo in ordered})
    if not ordered:
        return KnownPeople.from_matrix([], np.zeros((0, 0), np.float32), np.zeros(0, np.int64))
    labels = [person_of[photo.path] for photo in ordered]
    starts = np.asarray([labels.index(name) for name in names], np.int64)
    return KnownPeople.from_matrix(names, np.stack([photo.embedding for photo in ordered]), starts)


def _within_budget(pairs: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], str]:
    """(person, photo) pairs, at most MAX_PHOTOS, and what was left out ("" when nothing): each
    person's first photos by name, up to the largest quota that fits (people with fewer photos
    keep all theirs); with more than MAX_PHOTOS / 2 people, 2 photos each of the first by name."""
    if len(pairs) <= MAX_PHOTOS:
        return pairs, ""
    by_person: dict[str, list[tuple[str, str]]] = {}
    for pair in sorted(pairs):
        by_person.setdefault(pair[0], []).append(pair)
    sizes = [len(photos) for photos in by_person.values()]
    low, high = 2, max(sizes)
    while low < high:  # the largest quota whose photos fit
        middle = (low + high + 1) // 2
        low, high = (middle, high) if sum(min(n, middle) for n in sizes) <= MAX_PHOTOS else (low, middle - 1)
    kept = [pair for photos in by_person.values() for pair in photos[:low]][:MAX_PHOTOS]
    people = len({person for person, _ in kept})
    left_out = f", of the first {people:,} people by name" if people < len(by_person) else ""
    return kept, f"at most {low} of each person's photos (the first by file name){left_out}"


def _what_tightens(distances, same, usable, person_of, recommendation, spec) -> list[str]:
    """When the recommendation is stricter than the model's defaults, the nearest photos of
    different people: one wrong label (a photo in another person's folder) pulls the thresholds
    down towards them, and a look-alike pair is worth seeing before storing them."""
    if recommendation.annotate_threshold >= spec.default_threshold and \
            recommendation.verify_threshold >= spec.verify_threshold:
        return []
    return [f"{to_text(usable[i].path)} ({person_of[usable[i].path]}) and {to_text(usable[j].path)} "
            f"({person_of[usable[j].path]}) are {distance:.3f} apart, among the nearest photos of different people, "
            "which pull the thresholds down; if they are one person (a photo in the wrong folder), fix the labels"
            for i, j, distance in calibration.nearest_different_pairs(distances, same, len(usable), 2.0,
                                                                       MAX_TIGHTENING_PAIRS_SHOWN)]


def _store(db_path: Path, spec, recommendation: calibration.Recommendation, outcome: CalibrateOutcome,
           hooks: RunHooks = RunHooks()) -> None:
    """Store what this calibration recommends, kind by kind.  A measured threshold is stored.  One
    held at the model's default (too little evidence to loosen it) is not copied in, and one stored
    before is removed: the database follows the model's calibration again, whatever an earlier
    calibration (on labels since corrected, say) stored."""
    with gallery_db.locked(db_path, hooks.waiting_for(str(db_path))):
        if not os.path.lexists(db_path):  # moved or deleted while the photos were embedded
            raise DatabaseError(f"{db_path}: gone since calibrate started, nothing stored; put the database back "
                                "(or pass the --db that enroll made) and calibrate again")
        gallery = gallery_db.load(db_path, spec.name)
        before = gallery.calibrated(spec.crop.key)
        thresholds = dict(before)
        for kind, value, capped in (("annotate", recommendation.annotate_threshold, recommendation.annotate_capped),
                                    ("verify", recommendation.verify_threshold, recommendation.verify_capped)):
            if not capped:
                thresholds[kind] = value
                outcome.written.append(kind)
            elif thresholds.pop(kind, None) is not None:
                outcome.reset.append(kind)
        if thresholds != before or (thresholds and gallery.thresholds_crop != spec.crop.key):
            gallery.thresholds, gallery.thresholds_crop = thresholds, spec.crop.key if thresholds else None
            gallery_db.save(db_path, gallery)
