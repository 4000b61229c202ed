"""`facebatch enroll`: photos of known people in, embeddings in the database out."""
from __future__ import annotations

import os
import shlex
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from . import gallery as gallery_db
from . import weights
from .atomicio import describe_os_error
from .calibration import SUSPECT_DISTANCE
from .config import IMAGES_PER_CHUNK, Settings
from .errors import Interrupted, UsageProblem, folder_refused, with_hint
from .hooks import RunHooks
from .images import find_images
from .match import (FaceChoice, KnownPeople, face_of_person, median_pair_distance, person_distances,
                    recurring_face, too_near_to_be_two_people)
from .packages import sha256_of_file
from .pathtext import from_text, to_text
from .pipeline import NO_FACE, PhotoEmbedding, clear_face_hint, embed_photos
from .runner import chunked, run_stoppable


@dataclass
class EnrollOutcome:
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    skipped: int = 0  # photos not enrolled: no usable face, unreadable, or a name we refuse
    failed: int = 0  # of those, the input's fault (all but "no face"): the run exits 3, as annotate's errors do
    warnings: list[str] = field(default_factory=list)
    orphans: int = 0  # database entries whose photo is no longer in the people folder
    remade: int = 0  # embeddings an older facebatch made from another face crop, made anew
    dropped: int = 0  # faces named from groups with an older crop: enroll cannot remake them
    dropped_thresholds: bool = False  # calibrated on an older crop
    rehomed: int = 0  # entries now recorded under this folder (moved here, or written before folders were)
    moved: int = 0  # of those, entries whose photo moved here from a folder that no longer holds it
    relabelled: int = 0  # entries of another person whose photo was moved to this person's folder: removed
    cut_tight: int = 0  # photos embedded now that leave little room around the face (embed.cut_tight)
    saved: bool = False


def person_photos(people_dir: Path,
                  too_deep_paths: list[str] | None = None) -> tuple[list[tuple[str, str]], list[str], int]:
    """(person, photo path relative to people_dir) pairs from both layouts, warnings, and how
    many photos were refused for their name.

    `People/Name.jpg` is one photo of Name; `People/Name/*.jpg` are several.  A photo deeper down
    (`People/Family/madonna/a.jpg`) is refused, not filed under the top folder's name: such a
    folder is as likely a group of people as one person's photos sorted by year, and a wrong
    guess enrolls someone under another's name.  Their paths go to `too_deep_paths` if given.
    """
    pairs, warnings, unreadable, skipped, refused = [], [], [], [], 0
    refused_paths: list[str] = []
    too_deep: list[str] = []  # photos in a folder inside a person's folder: refused
    for relative in find_images(people_dir, unreadable, skipped):
        parts = relative.split("/")
        if len(parts) > 2:
            too_deep.append(relative)
            refused += 1
            refused_paths.append(relative)
            continue
        person = parts[0] if len(parts) > 1 else Path(parts[0]).stem
        problem = gallery_db.name_problem(person)
        if problem:
            warnings.append(f"{to_text(str(people_dir / relative))}: skipped, {problem}; rename the file or folder")
            refused += 1
            refused_paths.append(relative)
            continue
        pairs.append((gallery_db.canonical_name(person), relative))
    if "." in unreadable:
        raise UsageProblem(f"{people_dir}: cannot list the folder (permission denied); make it readable")
    warnings.extend(f"{people_dir / folder}: cannot list this folder (permission denied); make it readable to "
                    "enroll its photos" for folder in unreadable)
    warnings.extend(f"{to_text(str(people_dir / path))}: skipped, {why}" for path, why in skipped)
    if too_deep_paths is not None:
        too_deep_paths.extend(too_deep)
    for subfolder, count in sorted(Counter(to_text("/".join(p.split("/")[:2])) for p in too_deep).items()):
        person = subfolder.split("/", 1)[0]
        warnings.append(f"{to_text(str(people_dir))}/{subfolder}: skipped {count} photo{'s' if count > 1 else ''} in a "
                        f"folder inside {person}'s folder (only Name.jpg and Name/*.jpg are read: a subfolder "
                        f"may hold someone else); move them up into {person}/ if they are {person}, or into a "
                        "person folder of their own")
    warnings.extend(_folders_without_photos(people_dir, pairs, unreadable + refused_paths, skipped))
    if not pairs and not warnings:
        warnings.append(f"{to_text(str(people_dir))}: no photos found; put photos in Name.jpg or Name/*.jpg there")
    return pairs, warnings, refused


def _folders_without_photos(people_dir: Path, pairs: list[tuple[str, str]], unreadable: list[str],
                            skipped: list[tuple[str, str]]) -> list[str]:
    """A person's folder holding no photo at all (and not already explained by a warning above):
    the photos were probably put somewhere else, or have a suffix facebatch does not read."""
    used = {relative.split("/", 1)[0] for _, relative in pairs if "/" in relative}
    explained = {path.split("/", 1)[0] for path in unreadable} | {path.split("/", 1)[0] for path, _ in skipped}
    try:
        folders = sorted(entry.name for entry in os.scandir(people_dir)
                         if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."))
    except OSError:
        return []
    return [f"{to_text(str(people_dir / name))}: no photos in this folder; put the person's photos there "
            "(.jpg, .png and the other image suffixes)" for name in folders if name not in used | explained]


def _hashes(people_dir: Path, pairs: list[tuple[str, str]], outcome: EnrollOutcome) -> dict[str, str]:
    """SHA-256 of each photo; a photo that cannot be read is skipped with a warning."""
    hashes = {}
    for _, relative in pairs:
        try:
            hashes[relative] = sha256_of_file(people_dir / relative)
        except OSError as exc:
            outcome.skipped += 1
            outcome.failed += 1
            outcome.warnings.append(f"{to_text(str(people_dir / relative))}: skipped, cannot read it "
                                    f"({describe_os_error(exc)}); make the file readable")
    return hashes


def enroll(people_dir: Path, db_path: Path, settings: Settings, hooks: RunHooks = RunHooks()) -> EnrollOutcome:
    """Embed new and changed photos and save them.  Interrupted (SIGINT/SIGTERM), it saves the
    photos finished so far and raises Interrupted; running again does the rest."""
    people_dir = Path(people_dir)
    if not people_dir.is_dir():
        raise folder_refused(people_dir, "put photos in People/Name.jpg or People/Name/*.jpg")
    spec = weights.get_spec(settings.detection.model)
    outcome = EnrollOutcome()
    too_deep: list[str] = []
    pairs, outcome.warnings, outcome.skipped = person_photos(people_dir, too_deep)
    outcome.failed = outcome.skipped
    hashes = _hashes(people_dir, pairs, outcome)
    pairs = [(person, rel) for person, rel in pairs if rel in hashes]
    folder = to_text(os.path.realpath(people_dir))
    # Hold the lock from reading to writing, so two enrolls never lose each other's entries.
    with gallery_db.locked(db_path, hooks.waiting_for(str(db_path))):
        gallery = gallery_db.load_or_new(db_path, spec.name, spec.embedding_size)
        _drop_outdated_group_faces(gallery, spec.crop.key, outcome)
        _drop_outdated_thresholds(gallery, spec.crop.key, outcome)
        found = {(person, to_text(rel)) for person, rel in pairs}  # in the folder, enrolled now or not
        pairs = _home_entries(gallery, folder, pairs, hashes, outcome)
        pairs = _one_person_per_photo(gallery, folder, pairs, hashes, outcome)
        outcome.warnings += look_alike_warnings({person for person, _ in pairs}, set(gallery.people), people_dir,
                                                " (and facebatch people remove the other)")
        current = {(name, e.source): e for name, entries in gallery.people.items() for e in entries
                   if _enrolled_from(e, folder)}
        stored = {(person, rel): current.get((person, to_text(rel))) for person, rel in pairs}
        # A photo is embedded when it is new or changed, or when its embedding was made from another crop.
        todo = [(person, rel) for (person, rel), entry in stored.items()
                if entry is None or entry.sha256 != hashes[rel] or entry.crop != spec.crop.key]
        outcome.remade = sum(1 for key in todo if stored[key] is not None and stored[key].crop != spec.crop.key)
        outcome.unchanged += len(pairs) - len(todo)
        before = {id(entry) for entries in gallery.people.values() for entry in entries}
        if todo:  # photos to embed: a read-only database is refused before that work, not after
            gallery_db.refuse_read_only(db_path)
        hooks.on_start(len(todo))
        person_of = dict((rel, person) for person, rel in todo)
        paths = [str(people_dir / rel) for _, rel in todo]
        relative_of = {str(people_dir / rel): rel for _, rel in todo}
        # Photos with several faces wait until every photo with one face is in: which face is the
        # person's is judged by likeness to their other photos (match.face_of_person).  Interrupted
        # before then, they are left for the next run, as photos not yet embedded are.
        several: list[tuple[str, PhotoEmbedding]] = []
        try:
            for chunk_results in run_stoppable(partial(embed_photos, every_face=True), chunked(paths, IMAGES_PER_CHUNK),
                                               settings.execution, hooks.should_stop, settings):
                for result in chunk_results:
                    relative = relative_of[result.path]
                    if result.other_faces is not None:
                        several.append((relative, result))
                    else:
                        _add(gallery, outcome, person_of[relative], relative, hashes[relative], result, settings,
                             folder)
                    hooks.on_result(result)
        except Interrupted:
            _save_if_changed(db_path, gallery, outcome)
            raise
        threshold = gallery.calibrated(spec.crop.key).get("annotate", spec.default_threshold)
        for relative, result in _choose_faces(gallery, folder, spec.crop.key, several, person_of, threshold, outcome):
            _add(gallery, outcome, person_of[relative], relative, hashes[relative], result, settings, folder)
        outcome.warnings += _too_near_to_be_two_people(gallery, before, spec.crop.key)
        outcome.warnings += _one_persons_folder_as_people(gallery, before, spec.crop.key, people_dir, threshold)
        # entries an older facebatch enrolled from photos now refused (in a folder inside a
        # person's folder) are no orphans: the photos are there, and may be someone else's
        refused_now = {to_text(rel) for rel in too_deep}
        outcome.warnings += _enrolled_from_refused_photos(current, refused_now)
        outcome.orphans = sum(1 for key in current if key not in found and key[1] not in refused_now)
        _save_if_changed(db_path, gallery, outcome)
        _warn_still_outdated(gallery, spec.crop.key, db_path, outcome)
    return outcome


def look_alike_warnings(here: set[str], enrolled: set[str], people_dir: Path, then: str = "") -> list[str]:
    """Names of this folder that differ from another name only in capitals or width are two people
    to facebatch; say so once per name, since it is most likely one person spelt two ways."""
    by_key: dict[str, set[str]] = {}
    for name in here | enrolled:
        by_key.setdefault(gallery_db.looks_alike(name), set()).add(name)
    return [f"{people_dir}: {' and '.join(sorted(names))} differ only in capitals or character width and are "
            f"{len(names)} different people to facebatch; if they are one, rename the files or folders to one "
            f"spelling{then}"
            for names in by_key.values() if len(names) > 1 and names & here]


def _enrolled_from(entry, folder: str) -> bool:
    """Whether `entry` is a photo of the people folder `folder`."""
    return not entry.from_annotate and entry.folder == folder


def _home_entries(gallery, folder: str, pairs: list[tuple[str, str]], hashes: dict[str, str],
                  outcome: EnrollOutcome) -> list[tuple[str, str]]:
    """Record which entries are this folder's photos, and which photos are enrolled already from
    another folder; returns the pairs left to compare with this folder's entries.

    - An entry an older facebatch wrote (no folder recorded) with this photo's path and bytes is
      this folder's, and is stamped so.  With the same path but other bytes it may be another
      folder's photo of the same name: it is kept, and this photo enrolled beside it, with a warning.
    - A photo whose exact bytes the same person has enrolled from another folder: if that folder
      still holds it, it is left out (it is enrolled once, not twice); if not, the folder moved
      and the entry moves with it, so a renamed People/ is not embedded again.
    """
    _adopt_moved_folders(gallery, folder, pairs, hashes, outcome)
    kept = []
    for person, relative in pairs:
        source = to_text(relative)
        entries = gallery.people.get(person, [])
        if any(e.source == source and e.folder == folder for e in entries):
            kept.append((person, relative))
            continue
        legacy = next((i for i, e in enumerate(entries)
                       if e.folder is None and not e.from_annotate and e.source == source), None)
        if legacy is not None:
            if entries[legacy].sha256 == hashes[relative]:
                entries[legacy] = replace(entries[legacy], folder=folder)
                outcome.rehomed += 1
            else:
                outcome.warnings.append(
                    f"{folder}/{source}: an older facebatch enrolled another photo of this name for {person} "
                    "without recording its folder; both are kept (if you replaced the photo here, run facebatch "
                    f"people remove {person} and enroll again)")
            kept.append((person, relative))
            continue
        twin = next((i for i, e in enumerate(entries) if not e.from_annotate and e.folder not in (None, folder)
                     and e.sha256 == hashes[relative]), None)
        if twin is not None:
            other = entries[twin]
            other_photo = os.path.join(from_text(other.folder), from_text(other.source))
            if os.path.lexists(other_photo):
                outcome.unchanged += 1
                outcome.warnings.append(f"{folder}/{source}: already enrolled for {person} from "
                                        f"{other.folder}/{other.source}; left as it is")
                continue
            entries[twin] = replace(other, source=source, folder=folder)
            outcome.rehomed += 1
            outcome.moved += 1
        kept.append((person, relative))
    return kept


def _one_person_per_photo(gallery, folder: str, pairs: list[tuple[str, str]], hashes: dict[str, str],
                          outcome: EnrollOutcome) -> list[tuple[str, str]]:
    """A photo enrolls its largest face, so one photo (the same bytes) is one person's.  Under two
    names, annotate would give that face whichever name is nearer by a hair.

    - Filed under two people here: neither copy is enrolled (as calibrate skips such a photo).
    - Enrolled for another person from a photo that is still there: this copy is not enrolled.
    - Enrolled for another person from a photo that is gone: the photo was moved to this person's
      folder, so it was labelled wrong before; the other person's entry goes, this one is enrolled.
    Faces named from groups are faces, not photos (one group photo can name several people): left out.
    """
    people_here: dict[str, set[str]] = {}
    for person, relative in pairs:
        people_here.setdefault(hashes[relative], set()).add(person)
    enrolled: dict[str, list[tuple[str, object]]] = {}  # photo hash -> (person, entry), built once
    for name, entries in gallery.people.items():
        for entry in entries:
            if not entry.from_annotate and entry.sha256 in people_here:
                enrolled.setdefault(entry.sha256, []).append((name, entry))
    kept = []
    for person, relative in pairs:
        shown = f"{folder}/{to_text(relative)}"
        here = people_here[hashes[relative]]
        if len(here) > 1:
            outcome.skipped += 1
            outcome.failed += 1
            outcome.warnings.append(f"{shown}: skipped, the same photo is filed under {' and '.join(sorted(here))}; "
                                    f"{_ONE_FACE_A_PHOTO}")
            continue
        still_there = []
        for name, entry in enrolled.get(hashes[relative], []):
            if name == person or all(e is not entry for e in gallery.people.get(name, [])):
                continue  # this person's own, or removed already
            if _still_holds(entry, folder, hashes):
                still_there.append((name, entry))
                continue
            gallery.people[name] = [e for e in gallery.people[name] if e is not entry]
            if not gallery.people[name]:
                del gallery.people[name]
            outcome.relabelled += 1
            outcome.warnings.append(f"{shown}: this photo was enrolled for {name} from "
                                    f"{entry.folder or folder}/{entry.source}, which no longer holds it; it is now "
                                    f"{person}'s")
        if still_there:
            name, entry = still_there[0]
            outcome.skipped += 1
            outcome.failed += 1
            outcome.warnings.append(f"{shown}: skipped, the same photo is enrolled for {name} from "
                                    f"{entry.folder or 'a people folder'}/{entry.source}; {_ONE_FACE_A_PHOTO}")
            continue
        kept.append((person, relative))
    return kept


# A photo gives the database one face; the same bytes filed under two people would give both the
# face chosen for either (or, for a group photo, two faces of one file that annotate cannot tell
# apart from a relabelling).  Copies cropped to each person are separate photos.
_ONE_FACE_A_PHOTO = ("enroll takes one face from a photo: keep it in one person's folder, and put a copy cropped "
                     "to each other person in theirs")


def _still_holds(entry, folder: str, hashes: dict[str, str]) -> bool:
    """Whether the photo an entry was enrolled from is still where it was, with the same bytes (a
    photo swapped with another person's, to fix a mislabel, is not).  An entry of an older
    facebatch, which recorded no folder, is looked for in this one."""
    source = from_text(entry.source)
    if (entry.folder or folder) == folder and source in hashes:
        return hashes[source] == entry.sha256  # hashed already in this run
    try:
        return sha256_of_file(Path(from_text(entry.folder or folder)) / source) == entry.sha256
    except OSError:
        return False


def _adopt_moved_folders(gallery, folder: str, pairs: list[tuple[str, str]], hashes: dict[str, str],
                         outcome: EnrollOutcome) -> None:
    """A recorded folder that no longer exists, and one of whose photos (same person, same bytes)
    is here, was moved or renamed to this folder: all its entries become this folder's.  Then a
    photo changed or deleted during the move is replaced or counted as an orphan, as it would be
    in place, instead of staying behind under a folder that is gone."""
    here = {(person, hashes[relative]) for person, relative in pairs}
    candidates = {e.folder for name, entries in gallery.people.items() for e in entries
                  if e.folder not in (None, folder) and not e.from_annotate and (name, e.sha256) in here}
    moved = {other for other in candidates if not os.path.isdir(from_text(other))}
    for name, entries in gallery.people.items():
        for index, entry in enumerate(entries):
            if entry.folder in moved and not entry.from_annotate:
                entries[index] = replace(entry, folder=folder)
                outcome.rehomed += 1
                outcome.moved += 1


def _drop_outdated_group_faces(gallery, crop: str, outcome: EnrollOutcome) -> None:
    """Faces named from groups (`people name`) whose embedding an older facebatch made from another
    crop: no photo of theirs is in People/, so enroll cannot remake them, and matching against them
    would be wrong.  They are dropped with a warning; annotate finds those faces again, grouped."""
    for name, entry in gallery.outdated(crop):
        if entry.from_annotate:
            gallery.people[name] = [e for e in gallery.people[name] if e is not entry]
            outcome.dropped += 1
    if outcome.dropped:
        outcome.warnings.append(f"dropped {outcome.dropped} faces named from groups: an older facebatch made their "
                                "embeddings from another crop; after the next facebatch annotate, name their groups "
                                "again (facebatch unknowns)")


def _drop_outdated_thresholds(gallery, crop: str, outcome: EnrollOutcome) -> None:
    """Thresholds `calibrate --write` measured on another crop's distances no longer apply."""
    if gallery.thresholds and gallery.thresholds_crop != crop:
        gallery.thresholds, gallery.thresholds_crop = {}, None
        outcome.dropped_thresholds = True
        outcome.warnings.append("removed the calibrated thresholds: an older facebatch measured them on faces cut "
                                "out differently; run facebatch calibrate --write again (until then the defaults "
                                "apply)")


def _warn_still_outdated(gallery, crop: str, db_path: Path, outcome: EnrollOutcome) -> None:
    outdated = gallery.outdated(crop)
    if outdated:
        people = sorted({name for name, _ in outdated})
        outcome.warnings.append(
            f"{db_path}: {len(outdated)} embeddings of {', '.join(people[:5])}{', ...' if len(people) > 5 else ''} "
            "were made by an older facebatch and could not be made anew (their photos are not in this folder, or were "
            "skipped above); annotate refuses the "
            "database until you enroll the folder that holds them, or remove those people (facebatch people remove)")


def _add(gallery, outcome: EnrollOutcome, person: str, relative: str, sha256: str, result, settings,
         folder: str) -> None:
    shown = to_text(result.path)
    if result.embedding is None:
        outcome.skipped += 1
        outcome.failed += result.error != NO_FACE
        hint = clear_face_hint(result, settings.detection.detector)
        outcome.warnings.append(f"{shown}: skipped, {with_hint(result.error, hint)}")
        return
    source = to_text(relative)
    entries = [e for e in gallery.people.get(person, []) if not (e.source == source and _enrolled_from(e, folder))]
    replaced = len(entries) != len(gallery.people.get(person, []))
    crop = weights.get_spec(settings.detection.model).crop.key
    entries.append(gallery_db.Enrollment(source, sha256, result.embedding, crop, folder=folder))
    gallery.people[person] = entries
    outcome.replaced += replaced
    outcome.added += not replaced
    outcome.cut_tight += result.cut_tight


def _choose_faces(gallery, folder: str, crop: str, several: list[tuple[str, PhotoEmbedding]],
                  person_of: dict[str, str], threshold: float, outcome: EnrollOutcome
                  ) -> list[tuple[str, PhotoEmbedding]]:
    """The photos with several faces, each with the face chosen as its person's (its embedding in
    place of the largest's); the ones refused are counted and warned about instead."""
    if not several:
        return []
    # Everyone as enrolled now, without the earlier embeddings of these very photos (a photo
    # that changed must not vouch for itself) and those of another crop (other distances).
    these = {to_text(relative) for relative, _ in several}
    snapshot = gallery_db.Gallery(gallery.model, gallery.embedding_size, {
        name: [e for e in entries if e.crop == crop and not (e.source in these and _enrolled_from(e, folder))]
        for name, entries in gallery.people.items()})
    chosen, refused = choose_faces(several, person_of, KnownPeople.from_matrix(*snapshot.matrix()), threshold,
                                   outcome.warnings, "enrolled")
    outcome.skipped += refused
    outcome.failed += refused
    return chosen


def choose_faces(several: list[tuple[str, PhotoEmbedding]], person_of: dict[str, str], people: KnownPeople,
                 threshold: float, warnings: list[str], verb: str) -> tuple[list[tuple[str, PhotoEmbedding]], int]:
    """(key, photo with its person's face as its embedding) for each photo with several faces that
    can be decided (match.face_of_person, match.recurring_face), and how many were refused; each
    guess and refusal is warned about.  `several` holds (key, photo) with `person_of[key]` its
    label; `people` is who is known apart from these photos; `verb` says what is done with the face."""
    faces_of = {key: np.vstack([result.embedding[np.newaxis], result.other_faces]) for key, result in several}
    group_photos_of: dict[str, list[str]] = {}  # each person's photos with several faces
    for key, _ in several:
        group_photos_of.setdefault(person_of[key], []).append(key)
    chosen, refused = [], 0
    for key, result in several:
        person, shown, faces = person_of[key], to_text(result.path), faces_of[key]
        distances = person_distances(faces, people)
        choice, basis = face_of_person(distances, people.names, person, threshold), f"{person}'s other photos"
        theirs = group_photos_of[person]
        if choice.likeness is None and person not in people.names and len(theirs) > 1:
            # no photo with one face to go by: the face the person's group photos share, never
            # one annotate would name as someone else
            others = [i for i, name in enumerate(people.names) if name != person]
            someone_else = (distances[:, others].min(axis=1) <= threshold) if others else np.zeros(len(faces), bool)
            found = recurring_face([faces_of[k] for k in theirs], theirs.index(key), someone_else, threshold)
            if found is not None:
                choice, basis = FaceChoice(*found), f"{person}'s other group photos"
        if choice.index is None:
            refused += 1
            warnings.append(f"{shown}: skipped, {result.faces_found} faces and the largest is {choice.looks_like}'s "
                            f"(as annotate would name it); crop the photo to {person}")
            continue
        if choice.likeness is None:
            why = (f"none is like {person}'s other photos" if person in people.names else
                   f"none recurs in {person}'s other group photos" if len(theirs) > 1 else
                   f"{person} has no other photo")
            warnings.append(f"{shown}: {result.faces_found} faces, {verb} the largest ({why} to tell which is "
                            "theirs); crop the photo to one person to be sure")
        elif choice.index > 0:
            warnings.append(f"{shown}: {result.faces_found} faces, {verb} the one most like {basis} "
                            f"({choice.likeness:.3f} from them), not the largest")
        chosen.append((key, replace(result, embedding=faces[choice.index], other_faces=None)))
    return chosen, refused


MAX_NEAR_PAIRS_SHOWN = 10


def _too_near_to_be_two_people(gallery, before: set[int], crop: str) -> list[str]:
    """Warnings for the photos enrolled now that are nearer than calibrate's SUSPECT_DISTANCE to
    a photo of another person (nearer than photos of one person usually are to each other)."""
    entries = [(name, e) for name, listed in sorted(gallery.people.items()) for e in listed if e.crop == crop]
    new = [(name, e) for name, e in entries if id(e) not in before]
    if not new or len({name for name, _ in entries}) < 2:
        return []
    found = too_near_to_be_two_people(np.stack([e.embedding for _, e in new]), [name for name, _ in new],
                                      np.stack([e.embedding for _, e in entries]), [name for name, _ in entries],
                                      SUSPECT_DISTANCE)
    warnings, seen = [], set()
    for row, column, distance in found:
        (name, entry), (other, theirs) = new[row], entries[column]
        if frozenset([id(entry), id(theirs)]) in seen:
            continue  # both enrolled now: once
        seen.add(frozenset([id(entry), id(theirs)]))
        warnings.append(f"{_shown(entry)} ({name}) and {_shown(theirs)} ({other}) are only {distance:.3f} apart, too near to be two people: one person under two "
                        "names, or a photo in the wrong folder? annotate names such a face by a hair; fix the folders "
                        "(facebatch people remove the wrong one)")
    if len(warnings) > MAX_NEAR_PAIRS_SHOWN:
        warnings = warnings[:MAX_NEAR_PAIRS_SHOWN] + [f"{len(warnings) - MAX_NEAR_PAIRS_SHOWN} more pairs of photos of "
                                                      f"different people nearer than {SUSPECT_DISTANCE}"]
    return warnings


def _enrolled_from_refused_photos(current: dict, refused: set[str]) -> list[str]:
    """One warning per person with entries enrolled (by a facebatch before 2026-11-25) from photos
    in a folder inside their folder, which enroll refuses now: they may show someone else."""
    counts = Counter(name for name, source in current if source in refused)
    return [f"{name}: {count} database entr{'ies were' if count > 1 else 'y was'} enrolled from photos in a folder "
            f"inside {name}'s folder, which may show someone else; run facebatch people remove {shlex.quote(name)} "
            "and enroll again once the photos are in the right folders" for name, count in sorted(counts.items())]


def _one_persons_folder_as_people(gallery, before: set[int], crop: str, people_dir: Path, threshold: float) -> list[str]:
    """A warning when the photos enrolled now as people of their own (`Name.jpg`) are mostly within
    annotate's threshold of one another, as photos of one person are: `enroll People/madonna`
    instead of `enroll People/` makes each of her photos a person named after its file.  The
    median distance of their pairs tells: 0.85 for one person's photos, never under 1.17 for
    different people in the calibration, however many of them (docs/calibration.md)."""
    singles = [e.embedding for name, listed in sorted(gallery.people.items()) for e in listed
               if id(e) not in before and e.crop == crop and "/" not in e.source]
    if len(singles) < 3:
        return []
    median = median_pair_distance(np.stack(singles))
    if median >= threshold:
        return []
    return [f"{to_text(str(people_dir))}: the {len(singles)} photos enrolled now as people of their own (Name.jpg) are "
            f"a median {median:.2f} apart, within annotate's threshold ({threshold:.2f}), as photos of one person are: "
            "is this one person's folder? Enroll the folder that holds one folder or photo per person instead, and "
            "facebatch people remove the names enrolled now"]


def _shown(entry) -> str:
    """Where an entry's photo is, as far as the database knows."""
    return f"{entry.folder}/{entry.source}" if entry.folder else entry.source


def _save_if_changed(db_path: Path, gallery, outcome: EnrollOutcome) -> None:
    if outcome.added or outcome.replaced or outcome.dropped or outcome.dropped_thresholds or outcome.rehomed \
            or outcome.relabelled:
        gallery_db.save(db_path, gallery)
        outcome.saved = True
