"""`facebatch enroll`: photos of known people in, embeddings in the database out."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import gallery as gallery_db
from . import weights
from .config import IMAGES_PER_CHUNK, Settings
from .errors import UsageProblem
from .images import find_images
from .packages import sha256_of_file
from .pipeline import embed_largest_faces
from .runner import chunked, run_ordered


@dataclass
class EnrollOutcome:
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    orphans: int = 0  # database entries whose photo is no longer in the people folder
    saved: bool = False


def person_photos(people_dir: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(person, photo path relative to people_dir) pairs from both layouts, and warnings.

    `People/Name.jpg` is one photo of Name; `People/Name/*.jpg` (searched recursively) are several.
    """
    pairs, warnings = [], []
    for relative in find_images(people_dir):
        parts = relative.split("/")
        person = parts[0] if len(parts) > 1 else Path(parts[0]).stem
        problem = gallery_db.name_problem(person)
        if problem:
            warnings.append(f"{people_dir / relative}: skipped, {problem}; rename the file or folder")
            continue
        pairs.append((person, relative))
    return pairs, warnings


def _embed_chunk(paths: list[str], settings: Settings):
    return embed_largest_faces(paths, settings, tight_crop_retry=True)


def enroll(people_dir: Path, db_path: Path, settings: Settings,
           on_progress: Callable[[int], None] = lambda n: None) -> EnrollOutcome:
    people_dir = Path(people_dir)
    if not people_dir.is_dir():
        raise UsageProblem(f"{people_dir}: no such folder; put photos in People/Name.jpg or People/Name/*.jpg")
    spec = weights.get_spec(settings.model)
    outcome = EnrollOutcome()
    pairs, outcome.warnings = person_photos(people_dir)
    hashes = {relative: sha256_of_file(people_dir / relative) for _, relative in pairs}
    # Hold the lock from reading to writing, so two enrolls never lose each other's entries.
    with gallery_db.locked(db_path):
        gallery = gallery_db.load_or_new(db_path, spec.name, spec.embedding_size)
        current = {(name, e.source): e for name, entries in gallery.people.items() for e in entries}
        todo = [(person, rel) for person, rel in pairs
                if not ((person, rel) in current and current[(person, rel)].sha256 == hashes[rel])]
        outcome.unchanged = len(pairs) - len(todo)
        on_progress(outcome.unchanged)
        person_of = dict((rel, person) for person, rel in todo)
        paths = [str(people_dir / rel) for _, rel in todo]
        relative_of = {str(people_dir / rel): rel for _, rel in todo}
        for chunk_results in run_ordered(_embed_chunk, chunked(paths, IMAGES_PER_CHUNK), settings.jobs, settings):
            for result in chunk_results:
                relative = relative_of[result.path]
                person = person_of[relative]
                on_progress(1)
                if result.embedding is None:
                    outcome.skipped += 1
                    outcome.warnings.append(f"{result.path}: skipped, {result.error}; use a photo where the face "
                                            f"is clear and at least {settings.detector.min_face_size} px")
                    continue
                if result.faces_found > 1:
                    outcome.warnings.append(f"{result.path}: {result.faces_found} faces, enrolled the largest; "
                                            "crop the photo to one person to be sure")
                entries = [e for e in gallery.people.get(person, []) if e.source != relative]
                replaced = len(entries) != len(gallery.people.get(person, []))
                entries.append(gallery_db.Enrollment(relative, hashes[relative], result.embedding))
                gallery.people[person] = entries
                outcome.replaced += replaced
                outcome.added += not replaced
        present = {(person, rel) for person, rel in pairs}
        outcome.orphans = sum(1 for key in current if key not in present)
        if outcome.added or outcome.replaced:
            gallery_db.save(db_path, gallery)
            outcome.saved = True
    return outcome
