"""What earlier annotate runs found, per image: the manifest that makes reruns incremental.

A SQLite file beside the report (`report.csv` -> `report.state.sqlite`).  SQLite, not a JSON
file, because it is updated after every chunk: each chunk is one transaction, so a run killed at
any moment keeps every finished chunk and loses nothing else, and a rerun reads it back without
holding all rows in memory.  Only the parent process writes it.

The manifest is a cache.  One that is damaged (truncated, overwritten, bad cells) is moved aside
with a warning and rebuilt, never a reason to stop a nightly run.
"""
from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np

from .atomicio import describe_os_error
from .detect import Face
from .errors import FacebatchError, OutputError
from .images import annotated_name
from .pathtext import from_text, to_text
from .results import STATUS_ERROR, STATUS_NO_FACE, STATUS_OK, ImageResult, LabelledFace

# 1 kept finished CSV rows; 2 keeps every face as data; 3 adds the annotated copy's size, mtime and digest.
# Version 1 is rebuilt; version 2 gains the column in place (`_migrate_from_2`).
SCHEMA_VERSION = 3
PRIVATE = 0o600  # faces, embeddings and names: biometric data, owner only
_COLUMNS = ("path", "size", "mtime_ns", "sha256", "status", "error", "width", "height", "orientation", "faces",
            "detection_key", "labels", "labels_key", "annotated", "copy_stat")
_STATUSES = (STATUS_OK, STATUS_NO_FACE, STATUS_ERROR)
# The labels key of a record whose outputs (copy, sidecar, thumbnails) a stopped run may have
# rewritten from other results: no real key (config.part_key gives hex digests) equals it.
OUTPUTS_UNSURE = "outputs-unsure"
# ...and of a record whose sidecar could not be written, its copy being right: relabelled next run,
# which writes the sidecar again, without decoding the photo to redraw the copy.
SIDECAR_UNWRITTEN = "sidecar-unwritten"
# ...and appended to the labels key of a record whose named faces needed no sidecar under --xmp
# (the photo's own XMP names them already): its missing sidecar is no sign of one deleted.
NO_SIDECAR_NEEDED = "+no-sidecar-needed"


class ManifestDamaged(FacebatchError):
    """The manifest cannot be read as ours."""


class CopyStat(NamedTuple):
    """An annotated copy's size, mtime and content digest ("" when not known: recorded from a
    schema-2 manifest without reading the copy).  The digest tells a copy restored or copied
    without its times (same bytes, new mtime) from one changed."""

    size: int
    mtime_ns: int
    sha256: str = ""


@dataclass(frozen=True)
class ImageRecord:
    """One image as the manifest keeps it: the facts found in it, and the labels derived from them.

    `result` holds the faces (box, landmarks, confidence), their embeddings, the image's size and
    orientation, and the labels last given.  `detection_key` says under which detection settings
    the faces were found, `labels_key` under which labels they were named (config.part_key).
    """

    result: ImageResult
    detection_key: str
    labels_key: str
    # The annotated copy as the run that wrote it left it, or None when not known (a manifest of
    # schema 2): a copy that differs later was damaged or edited, and is redrawn.
    copy_stat: CopyStat | None = None

    @property
    def path(self) -> str:
        return to_text(self.result.image)


def state_path_for(report_path: Path) -> Path:
    report_path = Path(report_path)
    return report_path.with_name(report_path.stem + ".state.sqlite")


_SIDE_FILES = "-wal and -shm files"  # SQLite's, beside it: a read-only -shm stops every run too


def _companions(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


class RunState:
    def __init__(self, path: Path):
        self.path = Path(path)
        existed = os.path.lexists(self.path)
        try:
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, PRIVATE))
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            advice = ("a folder stands there: move it aside" if os.path.isdir(self.path) else
                      "it is a link to nothing: fix or remove the link" if not os.path.exists(self.path) and existed else
                      "make it readable and writable (chmod 600)" if existed else
                      "check the report folder is writable")
            raise OutputError(f"{self.path}: cannot {'open' if existed else 'create'} the manifest ({_describe(exc)}); "
                              f"{advice}, or choose another --report") from None
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if _is_write_failure(exc):
                raise OutputError(f"{self.path}: cannot write the manifest ({exc}); free some space or fix the "
                                  f"permissions (of it and of its {_SIDE_FILES}) and run again") from None
            raise ManifestDamaged(str(exc)) from None

    def _open(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # Names and embeddings replaced or deleted (a person removed, a photo gone) are zeroed, not
        # left in free pages: SQLite's own default leaves them, whatever this system's build does.
        self._db.execute("PRAGMA secure_delete=ON")
        if self._db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("integrity check failed")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        version = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if version is not None and version[0] == "2":
            self._migrate_from_2()
            version = (str(SCHEMA_VERSION),)
        if version is not None and version[0] != str(SCHEMA_VERSION):
            # An older layout: rebuild, it is only a cache (the images are worked on again).
            self._db.execute("DROP TABLE IF EXISTS images")
            self._db.execute("DELETE FROM meta")
            version = None
        self._db.execute(f"CREATE TABLE IF NOT EXISTS images ({_COLUMNS[0]} TEXT PRIMARY KEY, "
                         + ", ".join(_COLUMNS[1:]) + ")")
        columns = tuple(row[1] for row in self._db.execute("PRAGMA table_info(images)"))
        if columns != _COLUMNS:
            raise sqlite3.DatabaseError(f"unexpected columns {columns}")
        if version is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        if self._db.execute("SELECT 1 FROM meta WHERE key='zeroed'").fetchone() is None:
            # A manifest written before secure_delete may hold names in its free pages: rebuilt
            # once, which leaves none (then secure_delete keeps it so).
            try:
                self._db.execute("VACUUM")
                self._db.execute("INSERT INTO meta VALUES ('zeroed', '1')")
            except sqlite3.OperationalError:
                pass  # read-only here (a command that only reads): the next writer does it

    def _migrate_from_2(self) -> None:
        """Add the copies' stat column, unknown for every record: the faces stay, nothing is detected
        again, and the next run records each copy's stat as it finds it (`update_copy_stats`)."""
        with self._transaction():
            self._db.execute("ALTER TABLE images ADD COLUMN copy_stat TEXT NOT NULL DEFAULT ''")
            self._db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "RunState":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, path: str) -> ImageRecord | None:
        """The record for `path`, or None when there is none or its cells are damaged (redo it)."""
        with self._writes("read"):
            row = self._db.execute("SELECT * FROM images WHERE path=?", (path,)).fetchone()
        return None if row is None else _record(row)

    def records(self) -> Iterator[ImageRecord]:
        """Every readable record, ordered by path (SQLite's binary order is Python's str order for UTF-8)."""
        with self._writes("read"):
            for row in self._db.execute("SELECT * FROM images ORDER BY path"):
                record = _record(row)
                if record is not None:
                    yield record

    def paths(self) -> Iterator[str]:
        """Every stored path, damaged records included, so that they can be dropped too."""
        with self._writes("read"):
            for (path,) in self._db.execute("SELECT path FROM images ORDER BY path"):
                yield path

    def put_many(self, records: Iterable[ImageRecord]) -> None:
        """Store a chunk's records in one transaction: after a crash they are all there or none are."""
        rows = [_row(record) for record in records]
        with self._writes("write"), self._transaction():
            self._db.executemany(f"INSERT OR REPLACE INTO images VALUES ({', '.join('?' * len(_COLUMNS))})", rows)

    def get_meta(self, key: str) -> str | None:
        """A document stored beside the images (the unknown-face groups, say), or None."""
        with self._writes("read"):
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (f"doc:{key}",)).fetchone()
        return None if row is None else row[0]

    def put_meta(self, key: str, value: str) -> None:
        with self._writes("write"), self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"doc:{key}", value))

    def mark_outputs_unsure(self, paths: Iterable[str]) -> None:
        """Say, before workers write these images' outputs, that the files may no longer show what
        the records hold.  A run stopped before their new records are stored leaves this mark, and
        the next run relabels them and redraws every output (`OUTPUTS_UNSURE`), whatever its settings."""
        with self._writes("write"), self._transaction():
            self._db.executemany("UPDATE images SET labels_key=? WHERE path=?", [(OUTPUTS_UNSURE, p) for p in paths])

    def update_stat(self, path: str, size: int, mtime_ns: int) -> None:
        with self._writes("write"):
            self._db.execute("UPDATE images SET size=?, mtime_ns=? WHERE path=?", (size, mtime_ns, path))

    def update_copy_stats(self, stats: dict[str, CopyStat]) -> None:
        """Record the annotated copies' stats by image path, in one transaction."""
        with self._writes("write"), self._transaction():
            self._db.executemany("UPDATE images SET copy_stat=? WHERE path=?",
                                 [(_encode_copy_stat(stat), path) for path, stat in stats.items()])

    def update_detection_keys(self, paths: Iterable[str], detection_key: str) -> None:
        """Record that these images' faces stand under `detection_key` too, in one transaction."""
        with self._writes("write"), self._transaction():
            self._db.executemany("UPDATE images SET detection_key=? WHERE path=?", [(detection_key, p) for p in paths])

    def remove(self, paths: Iterable[str]) -> None:
        with self._writes("write"), self._transaction():
            self._db.executemany("DELETE FROM images WHERE path=?", [(p,) for p in paths])

    @contextlib.contextmanager
    def _writes(self, what: str) -> Iterator[None]:
        """SQLite's errors as one-line messages: a full disk stops the run, damage is reported as such."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if _is_write_failure(exc):
                raise OutputError(f"{self.path}: cannot {what} the manifest ({exc}); free some space or fix the "
                                  f"permissions (of it and of its {_SIDE_FILES}) and run again: finished work is "
                                  "kept") from None
            raise ManifestDamaged(f"{self.path}: {exc}") from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _describe(exc: BaseException) -> str:
    return describe_os_error(exc) if isinstance(exc, OSError) else str(exc)


def _is_write_failure(exc: sqlite3.DatabaseError) -> bool:
    """A full disk, a read-only place or an I/O error, as opposed to a file that is not ours."""
    text = str(exc).lower()
    return any(words in text for words in ("disk is full", "readonly", "read-only", "disk i/o error",
                                           "unable to open"))


def open_state(path: Path, warn: Callable[[str], None]) -> RunState:
    """The manifest at `path`; a damaged one is moved aside (with a warning) and started afresh."""
    path = Path(path)
    try:
        return RunState(path)
    except ManifestDamaged as exc:
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        for companion in _companions(path):
            with contextlib.suppress(FileNotFoundError):
                os.replace(companion, aside.with_name(aside.name + companion.name[len(path.name):]))
        warn(f"{path}: the manifest was damaged ({' '.join(str(exc).split())}); moved it to {aside} and "
             "rebuilt it, so every image is worked on again (delete the moved file once you no longer need it)")
        return RunState(path)


def _encode_embedding(vector: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vector, "<f4").tobytes()).decode("ascii")


def _encode_copy_stat(stat: CopyStat | None) -> str:
    return "" if stat is None else f"{stat.size}:{stat.mtime_ns}:{stat.sha256}"


def _decode_copy_stat(text) -> CopyStat | None:
    """The stored copy stat; anything else than what we write is "not known" (recorded afresh)."""
    try:
        size, mtime_ns, sha256 = (text + ":").split(":")[:3] if text.count(":") == 1 else text.split(":")
        # a digest that is not what we write compares unequal to any copy: the copy is redrawn
        return CopyStat(int(size), int(mtime_ns), sha256)
    except (AttributeError, ValueError):
        return None


def _row(record: ImageRecord) -> tuple:
    r = record.result
    embeddings = r.embeddings if r.embeddings is not None else np.zeros((0, 0), np.float32)
    faces = [{"box": [f.face.left, f.face.top, f.face.right, f.face.bottom], "confidence": f.face.confidence,
              "landmarks": {k: [float(v[0]), float(v[1])] for k, v in f.face.landmarks.items()},
              "embedding": _encode_embedding(embeddings[i])} for i, f in enumerate(r.faces)]
    labels = [[f.name, None if math.isinf(f.distance) else f.distance] for f in r.faces]
    return (to_text(r.image), r.size, r.mtime_ns, r.sha256, r.status, r.error, r.width, r.height, r.orientation,
            json.dumps(faces), record.detection_key, json.dumps(labels, ensure_ascii=False), record.labels_key,
            to_text(r.annotated), _encode_copy_stat(record.copy_stat))


def _record(row) -> ImageRecord | None:
    """A record from a row, or None when a cell is not what we wrote (the image is then redone)."""
    try:
        (path, size, mtime_ns, sha256, status, error, width, height, orientation, faces_json, detection_key,
         labels_json, labels_key, annotated, copy_stat) = row
        if not all(isinstance(v, str) for v in (path, sha256, status, error, faces_json, detection_key, labels_json,
                                                labels_key, annotated)):
            return None
        if not all(isinstance(v, int) for v in (size, mtime_ns, width, height, orientation)) or status not in _STATUSES:
            return None
        faces, labels = json.loads(faces_json), json.loads(labels_json)
        if len(faces) != len(labels):
            return None
        labelled, vectors = [], []
        for face, (name, distance) in zip(faces, labels):
            left, top, right, bottom = (int(v) for v in face["box"])
            landmarks = {str(k): (float(v[0]), float(v[1])) for k, v in face["landmarks"].items()}
            labelled.append(LabelledFace(Face(left, top, right, bottom, float(face["confidence"]), landmarks),
                                         str(name), math.inf if distance is None else float(distance)))
            vectors.append(np.frombuffer(base64.b64decode(face["embedding"], validate=True), "<f4"))
        embeddings = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, 0), np.float32)
        if embeddings.size and not np.all(np.isfinite(embeddings)):
            return None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return None
    if annotated and annotated != to_text(annotated_name(from_text(path))):
        return None  # not the name annotate gives this image's copy: never carried into the report
    result = ImageResult(from_text(path), status, tuple(labelled), error, from_text(annotated), size, mtime_ns, sha256,
                         width, height, orientation, embeddings)
    return ImageRecord(result, detection_key, labels_key, _decode_copy_stat(copy_stat))
