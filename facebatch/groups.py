"""The unknown-face groups of an output folder: kept in its manifest, refreshed after each annotate,
listed by `facebatch unknowns`, named or ignored by `facebatch people name / ignore`.

The grouping itself is pure (cluster.py).  This module feeds it the manifest's UNKNOWN faces and
stores its state, as one JSON document in the manifest (private, written in one transaction),
with the ids of ignored groups.  Face keys are (image path as in the report, face index).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import cluster
from . import gallery as gallery_db
from .atomicio import describe_os_error, write_bytes_atomic, write_failure_hint
from .errors import OutputError, UsageProblem
from .pathtext import from_text, to_text
from .results import STATUS_OK, UNKNOWN
from .state import RunState
from .weights import ModelSpec

_KEY = "groups"
_RUN_KEY = "run"
_UNRECORDED = "unrecorded"  # groups stored before the crop was recorded


@dataclass(frozen=True)
class Groups:
    clusters: cluster.ClusterState = field(default_factory=cluster.ClusterState)
    ignored: frozenset[str] = frozenset()
    # The face crop the members' embeddings were made from (embed.FaceCrop.key): groups of an
    # older crop must not be enrolled, and the annotate that finds every face again replaces them.
    crop: str = _UNRECORDED

    def listed(self, min_faces: int = 1) -> list[cluster.Group]:
        """The groups to show, largest first (ties: oldest first): not ignored, at least `min_faces`."""
        shown = [g for g in self.clusters.groups if g.id not in self.ignored and len(g.keys) >= min_faces]
        return sorted(shown, key=lambda g: (-len(g.keys), g.id))


def load(manifest: RunState, embedding_size: int, warn: Callable[[str], None] | None = None) -> Groups:
    """The stored groups; a damaged document starts afresh (groups are derived data), with a
    warning through `warn` when given (the user's ignores are lost with it)."""
    text = manifest.get_meta(_KEY)
    if text is None:
        return Groups()
    try:
        document = json.loads(text)
        stored_size = document.get("embedding_size")
        if stored_size is not None and stored_size != embedding_size:
            # not damaged: made with another model, whose groups this one cannot extend or name
            if warn is not None:
                warn(f"{manifest.path}: the groups of unknown faces stored there were made with another model "
                     f"(embeddings of {stored_size} values, this one makes {embedding_size}); pass the --model "
                     "annotate used")
            return Groups()
        return Groups(cluster.from_document(document["clusters"], embedding_size),
                      frozenset(str(g) for g in document.get("ignored", [])), str(document.get("crop", _UNRECORDED)))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        if warn is not None:
            warn(f"{manifest.path}: the groups of unknown faces stored there were damaged; they are made afresh "
                 "(ignore again the groups you had ignored: facebatch unknowns)")
        return Groups()


def save(manifest: RunState, groups: Groups) -> None:
    document = {"clusters": cluster.to_document(groups.clusters), "ignored": sorted(groups.ignored),
                "crop": groups.crop,
                "embedding_size": next((g.embeddings.shape[1] for g in groups.clusters.groups), None)}
    manifest.put_meta(_KEY, json.dumps(document))


@dataclass(frozen=True)
class RunSource:
    """The database and model of the annotate run whose groups these are: `people name` must
    enroll into that database (the next annotate names nobody from another one) with that model."""

    database: str  # the database's resolved path, as pathtext
    model: str


def record_run_source(manifest: RunState, db_path: Path, model: str) -> None:
    document = json.dumps({"database": to_text(os.path.realpath(db_path)), "model": model}, ensure_ascii=False)
    if manifest.get_meta(_RUN_KEY) != document:  # a nightly rerun writes nothing (a write is an fsync)
        manifest.put_meta(_RUN_KEY, document)


def run_source(manifest: RunState) -> RunSource | None:
    """What the last annotate recorded; None for a manifest written before this was recorded."""
    try:
        document = json.loads(manifest.get_meta(_RUN_KEY) or "null")
        return RunSource(str(document["database"]), str(document["model"]))
    except (ValueError, KeyError, TypeError):
        return None


def model_for(source: RunSource | None, given: str | None, where: Path, default: str) -> str:
    """The model of the group commands: the run's, and never another (its groups' embeddings
    cannot be compared with another model's faces)."""
    if given is None:
        return source.model if source is not None else default
    if source is not None and given != source.model:
        raise UsageProblem(f"{where}: the annotate run there used the model {source.model}, not {given}; "
                           f"leave out --model (or pass --model {source.model})")
    return given


def database_for(source: RunSource | None, given: Path | None, where: Path, default: Path) -> Path:
    """The database `people name` enrolls into: the one the annotate run read.  Another one,
    given by mistake, would take the faces where the next annotate never looks."""
    if given is None:
        if source is None:
            return default
        recorded = Path(from_text(source.database))
        if not os.path.lexists(recorded):
            raise UsageProblem(f"{where}: the annotate run there used the database {source.database}, which is not "
                               "there any more; run facebatch annotate with the database's --db, then name the group")
        return recorded
    if source is not None and to_text(os.path.realpath(given)) != source.database:
        raise UsageProblem(f"{where}: the annotate run there used the database {source.database}, not {given}; "
                           "leave out --db to name into that one (or run facebatch annotate with this --db first)")
    return given


_GROUP_PAGE = re.compile(r"group-g(\d{1,9})-[0-9a-f]{8}-\d+\.html")  # (a longer number is not ours)


# Beside the review pages: the highest group number given out.  Pages alone do not say it: a
# named or ignored group has none.
_ISSUED = ".group-numbers-issued"


def highest_number_issued(review_folder: Path) -> int:
    """The highest group number given out for this output folder (0 if none): from the record
    `record_numbers_issued` keeps, and from the review pages (older runs kept no record).  A
    manifest that was damaged and rebuilt has lost its counter; numbering after this keeps an id
    the user has seen from coming back on another face, where a stale `people name` would
    enroll it."""
    try:
        names = os.listdir(review_folder)
    except OSError:
        return 0
    shown = max((int(m.group(1)) for m in map(_GROUP_PAGE.fullmatch, names) if m), default=0)
    return max(shown, _recorded_issued(review_folder))


def _recorded_issued(review_folder: Path) -> int:
    try:
        text = (review_folder / _ISSUED).read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return 0
    # 9 digits at most: a file of thousands of digits (damaged, or planted) is not ours either,
    # and Python refuses to convert more than 4,300
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0


def record_numbers_issued(review_folder: Path, groups: Groups) -> None:
    """Keep the highest group number given out beside the review pages (written only when it grew)."""
    highest = groups.clusters.next_number - 1
    if highest <= _recorded_issued(review_folder):
        return
    try:
        review_folder.mkdir(exist_ok=True)
        write_bytes_atomic(review_folder / _ISSUED, f"{highest}\n".encode("ascii"))
    except OSError as exc:
        raise OutputError(f"{review_folder / _ISSUED}: cannot write the record of group ids given out "
                          f"({describe_os_error(exc)}); {write_failure_hint(exc, 'the review folder')}, "
                          "the next run writes it") from None


def refresh(manifest: RunState, redetected: Iterable[str], embedding_size: int, crop: str,
            numbers_used: int = 0, warn: Callable[[str], None] | None = None) -> Groups:
    """Bring the groups up to date with the manifest's UNKNOWN faces.

    Members of images detected again this run leave first unless their face came back the
    same (their face indices may have changed), then every member that is no longer an UNKNOWN
    face (named now, or its image gone); the UNKNOWN faces in no group are offered to
    cluster.update, in report order.  New ids are numbered above `numbers_used`.
    """
    groups = load(manifest, embedding_size, warn)
    if groups.clusters.next_number <= numbers_used:
        groups = replace(groups, clusters=replace(groups.clusters, next_number=numbers_used + 1))
    redetected = set(redetected)
    unknown: list[cluster.NewFace] = []  # in report order
    faces_redetected: dict[cluster.FaceKey, np.ndarray] = {}
    for record in manifest.records():
        result = record.result
        if result.status != STATUS_OK:
            continue
        for index, labelled in enumerate(result.faces):
            key = (record.path, index)
            embedding = np.asarray(result.embeddings[index], np.float32)
            if record.path in redetected:
                faces_redetected[key] = embedding
            if labelled.name == UNKNOWN:
                face = labelled.face
                unknown.append(cluster.NewFace(key, embedding, min(face.width, face.height), face.confidence))
    clusters = cluster.without_changed_faces(groups.clusters, redetected, faces_redetected)
    clusters = cluster.keeping_faces(clusters, {face.key for face in unknown})
    members = {key for group in clusters.groups for key in group.keys}
    clusters = cluster.update(clusters, [face for face in unknown if face.key not in members]).state
    alive = {group.id for group in clusters.groups}
    groups = Groups(clusters, frozenset(i for i in groups.ignored if i in alive), crop)
    save(manifest, groups)
    return groups


def _group(groups: Groups, group_id: str, where: Path) -> cluster.Group:
    group = groups.clusters.group(group_id)
    if group is None:
        number = re.fullmatch(r"g(\d{1,9})", group_id)
        if number and int(number.group(1)) < groups.clusters.next_number:
            # an id that was given out: named already (the usual case: a command run twice), or
            # its faces are named by the database now, or their photos left the folder
            raise UsageProblem(f"{where}: group {group_id!r} is gone: it was named, or its faces are no longer "
                               "unknown, or their photos left the folder; see: facebatch unknowns")
        raise UsageProblem(f"{where}: there is no group {group_id!r} of unknown faces; see: facebatch unknowns")
    return group


@dataclass(frozen=True)
class Named:
    name: str  # as stored (gallery.canonical_name)
    faces: int
    alike: tuple[str, ...]  # other enrolled names that differ from it only in capitals


def name_group(manifest: RunState, where: Path, db_path: Path, spec: ModelSpec, group_id: str, name: str) -> Named:
    """Enroll every face of the group under `name` (all of them: docs/clusters.md measured that
    they name more faces right than a representative subset, and no stranger), then drop the
    group.  The database records each face's image and box."""
    problem = gallery_db.name_problem(name)
    if problem:
        raise UsageProblem(f"{name!r}: {problem}; choose another name")
    name = gallery_db.canonical_name(name)
    groups = load(manifest, spec.embedding_size)
    group = _group(groups, group_id, where)
    if groups.crop != spec.crop.key:
        raise UsageProblem(f"{where}: the groups were made by an older facebatch, which cut faces out differently; "
                           "run facebatch annotate once, then see: facebatch unknowns")
    with gallery_db.locked(db_path):
        # The run's own database, never a new one: a --db left out (or mistyped) would put the
        # faces in a file annotate does not read, and the group would be gone from the run.
        gallery = gallery_db.load(db_path, spec.name)
        entries = gallery.people.get(name, [])
        # One key for the faces named together: they get a centroid of their own (Gallery.matrix)
        appearance = hashlib.sha256("\0".join(sorted(f"{image}#{index}" for image, index in group.keys))
                                    .encode()).hexdigest()[:16]
        for (image, index), embedding in zip(group.keys, group.embeddings):
            record = manifest.get(image)
            if record is None or index >= len(record.result.faces) or \
                    np.linalg.norm(record.result.embeddings[index] - embedding) > cluster.FOLLOW_DISTANCE:
                continue  # the photo changed since the grouping (another face there now): grouped again next run
            face = record.result.faces[index].face
            source = f"{image}#{index}"
            entries = [e for e in entries if e.source != source]  # naming twice never duplicates
            entries.append(gallery_db.Enrollment(source, record.result.sha256, np.asarray(embedding, np.float32),
                                                 spec.crop.key, face.box, group=appearance))
        gallery.people[name] = entries
        gallery_db.save(db_path, gallery)
    save(manifest, replace(groups, clusters=cluster.without_groups(groups.clusters, [group_id])))
    alike = tuple(sorted(n for n in gallery.people
                         if n != name and gallery_db.looks_alike(n) == gallery_db.looks_alike(name)))
    return Named(name, len(group.keys), alike)


def ignore_group(manifest: RunState, where: Path, embedding_size: int, group_id: str) -> int:
    """Hide the group from the lists; it keeps absorbing that bystander's faces.  Returns its size."""
    groups = load(manifest, embedding_size)
    group = _group(groups, group_id, where)
    save(manifest, replace(groups, ignored=groups.ignored | {group_id}))
    return len(group.keys)
