"""The face database: versioned JSON (never pickle), validated on load, saved atomically under a lock.

    {"format": "facebatch-database", "version": 2, "model": "facenet", "embedding_size": 128,
     "people": {"Ada": [{"source": "Ada/1.jpg", "sha256": "...", "crop": "stretched-0.30",
                         "embedding": "<base64 float32 LE>", "folder": "/home/me/People"}]}}

Each embedding records the face crop it was made from (embed.FaceCrop.key): embeddings of the
same face cut out two ways are too far apart to compare, so a database that holds embeddings of an
older crop is refused for matching until `facebatch enroll` has made them again.  Version 1
databases (no "crop") were made with their model's `version1_crop` (weights.ModelSpec).

Embeddings are base64 of little-endian float32: exact, a quarter of the size of decimal lists, and
an order of magnitude faster to parse for large galleries.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from . import locks, weights
from .atomicio import describe_os_error, remove_stale_temporaries, write_text_atomic
from .errors import DatabaseError, OutputError
from .pathtext import is_clean
from .results import UNKNOWN

FORMAT = "facebatch-database"
VERSION = 2
_READABLE_VERSIONS = (1, 2)
PRIVATE = 0o600  # biometric data: readable by its owner only
# Embeddings are stored unit length; float32 rounding stays far below this.  A flipped bit in
# the exponent or sign of one value moves the norm far beyond it, or makes it NaN or Inf.
_UNIT_TOLERANCE = 1e-3
_MAX_DATABASE_BYTES = 4 << 30  # 4 GiB: about 5 million photos at 128 values; anything larger is not ours


@dataclass(frozen=True)
class Enrollment:
    source: str  # photo path relative to the people folder, or "image#face" for a face named from annotate
    sha256: str  # of the photo's bytes: unchanged photos are not embedded again
    embedding: np.ndarray  # float32, unit length
    crop: str  # the face crop the embedding was made from (embed.FaceCrop.key)
    box: tuple[int, int, int, int] | None = None  # the face's box, for faces named from annotate's groups
    # Faces named together from one group share this key: they are one appearance of the person,
    # matched by a centroid of their own (Gallery.matrix).  None for enrolled photos.
    group: str | None = None
    # The people folder the photo was enrolled from (absolute), so that enrolling a second folder
    # never takes another folder's Ada/1.jpg for a changed copy of its own.  None for faces named
    # from annotate's groups and for entries written before facebatch recorded it.
    folder: str | None = None

    @property
    def from_annotate(self) -> bool:
        """Named with `people name` from a group of unknown faces, not enrolled from People/."""
        return self.box is not None


@dataclass
class Gallery:
    model: str
    embedding_size: int
    people: dict[str, list[Enrollment]] = field(default_factory=dict)
    # Thresholds `facebatch calibrate --write` measured on the user's own photos: {"annotate": t,
    # "verify": t}.  They replace the model's defaults; an explicit --threshold still wins.
    thresholds: dict[str, float] = field(default_factory=dict)
    thresholds_crop: str | None = None  # the face crop of the embeddings they were measured on

    def calibrated(self, crop: str, model: str | None = None) -> dict[str, float]:
        """The stored thresholds, when they were measured on faces cut out as `crop` cuts them
        (distances of another crop mean something else) and, when `model` is given, with that
        model; otherwise none."""
        if model is not None and model != self.model:
            return {}
        return dict(self.thresholds) if self.thresholds and self.thresholds_crop == crop else {}

    def thresholds_of_an_older_crop(self, crop: str, model: str | None = None) -> str:
        """A warning when thresholds are stored for this model but were measured on another crop,
        so the model's defaults are in force instead; "" otherwise.  (enroll removes such
        thresholds; a verify-only user would otherwise never learn that theirs stopped applying.)"""
        if not self.thresholds or self.thresholds_crop == crop or (model is not None and model != self.model):
            return ""
        return ("its calibrated thresholds were measured on faces cut out by an older facebatch, so the model's "
                "defaults are in force; run facebatch calibrate --write again to measure them anew")

    def matrix(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(name of each appearance, embeddings (G, D) grouped by appearance, start row of each) for match.py.

        An appearance is what one centroid stands for: a person's enrolled photos, or the faces
        named together from one group of unknown faces (`people name`).  A group is named because
        annotate found it too far from the person's photos (a different age, light, or glasses);
        averaged into those photos it would stay too far, so it keeps a centroid of its own.
        A person's appearances are consecutive, enrolled photos first."""
        names, rows, counts = [], [], []
        for name in sorted(n for n, entries in self.people.items() if entries):
            appearances: dict[str, list[Enrollment]] = {}
            for entry in self.people[name]:
                key = "" if not entry.from_annotate else f"group:{entry.group or ''}"
                appearances.setdefault(key, []).append(entry)
            for key in sorted(appearances):
                names.append(name)
                rows.extend(e.embedding for e in appearances[key])
                counts.append(len(appearances[key]))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if names else np.zeros(0, np.int64)
        known = np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.embedding_size), np.float32)
        # Column-major, so that match.py's `faces @ known.T` reads one contiguous (D, G) block: 30 %
        # faster for a face or a few against a large gallery, where reading the matrix is the cost.
        return names, np.asfortranarray(known), starts

    def outdated(self, crop: str) -> list[tuple[str, Enrollment]]:
        """(person, entry) of every embedding made from another face crop than `crop`."""
        return [(name, e) for name, entries in sorted(self.people.items()) for e in entries if e.crop != crop]

    def fingerprint(self) -> str:
        """A hash of everything that affects matching, to tell when annotate results are stale."""
        digest = hashlib.sha256(f"{self.model}:{self.embedding_size}".encode())
        for name in sorted(self.people):
            for entry in sorted(self.people[name], key=_entry_order):
                digest.update(name.encode() + b"\0" + entry.source.encode() + b"\0")
                if entry.from_annotate:
                    # a named group's faces have a centroid of their own (matrix): which group they
                    # are counts.  Only for them, so enrolled photos hash as they always did and an
                    # upgrade relabels nothing.
                    digest.update(f"group:{entry.group or ''}\0".encode())
                digest.update(np.ascontiguousarray(entry.embedding, "<f4").tobytes())
        return digest.hexdigest()

    def to_json(self) -> str:
        people = {
            name: [{"source": e.source, "sha256": e.sha256, "crop": e.crop, "embedding": _encode(e.embedding),
                    **({"box": list(e.box)} if e.box is not None else {}),
                    **({"folder": e.folder} if e.folder is not None else {}),
                    **({"group": e.group} if e.group is not None else {})}
                   for e in sorted(entries, key=_entry_order)]
            for name, entries in sorted(self.people.items())
        }
        document = {"format": FORMAT, "version": VERSION, "model": self.model,
                    "embedding_size": self.embedding_size, "people": people,
                    **({"thresholds": dict(sorted(self.thresholds.items())), "thresholds_crop": self.thresholds_crop}
                       if self.thresholds else {})}
        return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def _entry_order(entry: Enrollment) -> tuple[str, str]:
    return entry.source, entry.folder or ""


def _encode(embedding: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(embedding, "<f4").tobytes()).decode("ascii")


def _decode(text: str, size: int) -> np.ndarray:
    array = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4")
    if array.shape != (size,):
        raise ValueError(f"embedding has {array.size} values, expected {size}")
    return array.astype(np.float32)


def _embedding_problem(array: np.ndarray) -> str | None:
    if not np.all(np.isfinite(array)):
        return "embedding holds NaN or Inf"
    norm = float(np.linalg.norm(array.astype(np.float64)))
    if abs(norm - 1.0) > _UNIT_TOLERANCE:
        return f"embedding is not of unit length (length {norm:.4g})"
    return None


def _check_embeddings(people: dict[str, list[Enrollment]]) -> None:
    """Every embedding finite and of unit length, checked in one pass over all of them (50,000
    one by one cost 0.25 s at start-up); the first bad one is named."""
    entries = [(name, e) for name, group in people.items() for e in group]
    if not entries:
        return
    matrix = np.stack([e.embedding for _, e in entries]).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.linalg.norm(matrix, axis=1)
    bad = ~np.isfinite(norms) | (np.abs(norms - 1.0) > _UNIT_TOLERANCE)
    if bad.any():
        name, entry = entries[int(np.argmax(bad))]
        raise ValueError(f"{name}, {entry.source}: {_embedding_problem(entry.embedding)}")


MAX_NAME_LENGTH = 200  # a person's name, not a paragraph: it labels copies, regions and pages


def canonical_name(name: str) -> str:
    """The form a person's name is stored in: Unicode NFC, spaces collapsed and trimmed.  So
    `People/Ardérn/` typed on a Mac (NFD) and on Linux (NFC), or `People/Obama /`, are one person.
    Call after name_problem has passed it."""
    return " ".join(unicodedata.normalize("NFC", name).split())


def looks_alike(name: str) -> str:
    """What two names share when they differ only in capitals or character width (Ada, ADA, Ａda):
    likely one person typed two ways, which facebatch keeps apart but should point out."""
    return unicodedata.normalize("NFKC", name).casefold()


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a person's name, or None when it can."""
    if not is_clean(name):
        return "the name is not valid UTF-8"
    if not name.strip():
        return "the name is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"the name is longer than {MAX_NAME_LENGTH} characters"
    if "/" in name or "\\" in name or os.sep in name:
        return "the name holds a path separator"
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        return "the name holds control characters"
    if looks_alike(name).strip() == looks_alike(UNKNOWN):  # unknown, Ｕnknown: read as UNKNOWN in a report
        return f"{UNKNOWN} is reserved for faces that match nobody"
    return None


def _reenroll_hint(path: Path) -> str:
    return f"move {path} aside and run: facebatch enroll People/ --db {path}"


def parse(text: str, path: Path) -> Gallery:
    try:
        document = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise DatabaseError(f"{path}: not valid JSON ({exc.msg.removesuffix(' at')} at line {exc.lineno}); the file is left untouched, "
                            f"restore it from a backup or {_reenroll_hint(path)}") from None
    except ValueError as exc:  # a number of more than 4,300 digits, which Python refuses to read
        raise DatabaseError(f"{path}: damaged database ({str(exc).split(':')[0]}); the file is left untouched, "
                            f"restore it from a backup or {_reenroll_hint(path)}") from None
    except _DuplicateKey as exc:
        # JSON readers keep one of the two silently: one person's faces would take another's name.
        raise DatabaseError(f"{path}: damaged database (the key {exc.key!r} appears twice in one object); the file "
                            f"is left untouched, restore it from a backup or {_reenroll_hint(path)}") from None
    except RecursionError:
        raise DatabaseError(f"{path}: not a facebatch database (nested too deep to read); the file is left "
                            f"untouched, {_reenroll_hint(path)}") from None
    if isinstance(document, dict) and "format" not in document and all(isinstance(v, list) for v in document.values()):
        raise DatabaseError(f"{path}: old flat {{name: [floats]}} database from an earlier tool; "
                            f"{_reenroll_hint(path)}")
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise DatabaseError(f"{path}: not a facebatch database; {_reenroll_hint(path)}")
    version = document.get("version")
    if not _is_whole_number(version):  # (JSON's true is 1 to Python)
        raise DatabaseError(f"{path}: damaged database (version {version!r} is not a whole number); the file is "
                            f"left untouched, restore it from a backup or {_reenroll_hint(path)}")
    if version not in _READABLE_VERSIONS:
        raise DatabaseError(f"{path}: database version {version} is not supported by this facebatch (it reads "
                            f"versions {', '.join(map(str, _READABLE_VERSIONS))}); upgrade facebatch or "
                            f"{_reenroll_hint(path)}")
    where = ""
    try:
        size = document["embedding_size"]
        if not _is_whole_number(size) or size <= 0:
            raise ValueError(f"embedding_size is not a positive whole number: {size!r}")
        people = {}
        for stored_name, entries in document["people"].items():
            where = ""
            problem = name_problem(stored_name)
            if problem:
                raise ValueError(f"person name {stored_name!r}: {problem}")
            # Names are stored in canonical form since facebatch wrote them so; older spellings of
            # one name (NFD from a Mac, stray spaces) are one person, as enroll now makes them.
            name = canonical_name(stored_name)
            people.setdefault(name, [])
            if not isinstance(entries, list):
                raise ValueError(f"{stored_name}: the entries are not a list")
            for entry in entries:
                where = f"{name}, {entry.get('source', '?') if isinstance(entry, dict) else '?'}: "
                box = entry.get("box")
                crop = _version1_crop(str(document["model"])) if version == 1 else entry["crop"]
                if not isinstance(crop, str):
                    raise ValueError(f"crop is not a text: {crop!r}")
                folder, group = entry.get("folder"), entry.get("group")
                if folder is not None and not isinstance(folder, str):
                    raise ValueError(f"folder is not a text: {folder!r}")
                if group is not None and not isinstance(group, str):
                    raise ValueError(f"group is not a text: {group!r}")
                people[name].append(Enrollment(str(entry["source"]), str(entry["sha256"]),
                                                    _decode(entry["embedding"], size), crop,
                                                    None if box is None else _box(box), folder=folder, group=group))
        where = ""
        _check_embeddings(people)
        where = "thresholds: "
        stored = document.get("thresholds", {})
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in stored.values()):
            raise ValueError(f"not numbers: {stored}")
        thresholds = {str(k): float(v) for k, v in stored.items()}
        if any(not 0.0 < v < 2.0 for v in thresholds.values()) or not set(thresholds) <= {"annotate", "verify"}:
            raise ValueError(f"not thresholds between 0 and 2 for annotate and verify: {thresholds}")
        thresholds_crop = (_version1_crop(str(document["model"])) if version == 1
                           else document["thresholds_crop"]) if thresholds else None
        if thresholds and not isinstance(thresholds_crop, str):
            raise ValueError(f"thresholds_crop is not a text: {thresholds_crop!r}")
        return Gallery(str(document["model"]), size, people, thresholds, thresholds_crop)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise DatabaseError(f"{path}: damaged database ({where}{exc}); the file is left untouched, restore it from "
                            f"a backup or {_reenroll_hint(path)}") from None


def _is_whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_LARGEST_SIDE = 2**31 - 1  # px: Pillow's limit on an image's side


def _box(stored) -> tuple[int, int, int, int]:
    """A named face's box as annotate stored it: four whole pixels, left < right, top < bottom,
    inside any photo.  Anything else is damage: a box is what marks an entry as named from a
    group, so a stray one would move an enrolled photo into a group."""
    if not isinstance(stored, list) or len(stored) != 4 or not all(_is_whole_number(v) for v in stored):
        raise ValueError(f"box is not four whole numbers: {stored!r}")
    left, top, right, bottom = stored
    if not (0 <= left < right <= _LARGEST_SIDE and 0 <= top < bottom <= _LARGEST_SIDE):
        raise ValueError(f"box is not a face's box in a photo: {stored!r}")
    return left, top, right, bottom


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    document = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKey(key)
        document[key] = value
    return document


def _version1_crop(model: str) -> str:
    spec = weights.MODELS.get(model)
    return spec.version1_crop.key if spec else "unrecorded"


def read(path: Path) -> Gallery:
    """Read and validate the database, whichever model made it."""
    path = Path(path)
    raw = _read_database(path)
    if raw[:1] == b"\x80":
        raise DatabaseError(f"{path}: looks like a pickle; facebatch never loads pickles, {_reenroll_hint(path)}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DatabaseError(f"{path}: not UTF-8 JSON; {_reenroll_hint(path)}") from None
    return parse(text, path)


def load(path: Path, model: str, crop: str | None = None) -> Gallery:
    """Read and validate the database; refuse one made with another model, and, when `crop` is
    given (to match faces against it), one holding embeddings made from another face crop."""
    path = Path(path)
    gallery = read(path)
    if gallery.model != model:
        raise DatabaseError(f"{path}: made with model {gallery.model}, not {model}; use --model {gallery.model}, "
                            f"or {_reenroll_hint(path)} --model {model}")
    spec = weights.MODELS.get(model)
    if spec is not None and gallery.embedding_size != spec.embedding_size:
        raise DatabaseError(f"{path}: damaged database (embedding_size {gallery.embedding_size}, but {model} makes "
                            f"{spec.embedding_size}); the file is left untouched, restore it from a backup or "
                            f"{_reenroll_hint(path)}")
    if crop is not None:
        _refuse_outdated(path, gallery, crop)
    return gallery


def _refuse_outdated(path: Path, gallery: Gallery, crop: str) -> None:
    outdated = gallery.outdated(crop)
    if not outdated:
        return
    people = sorted({name for name, _ in outdated})
    shown = ", ".join(people[:3]) + (", ..." if len(people) > 3 else "")
    raise DatabaseError(f"{path}: {len(outdated)} embeddings ({shown}) were made by an older facebatch, which cut "
                        "faces out differently; run facebatch enroll again on the folder you enrolled from, "
                        f"with --db {path}, to make them anew")


def _read_database(path: Path) -> bytes:
    """The file's bytes; only a regular file of sane size is read (not a FIFO, not /dev/zero)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        _refuse_dangling_link(path)
        raise DatabaseError(f"{path}: no database; run facebatch enroll first") from None
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot read the database ({describe_os_error(exc)}); "
                            "check the path and its permissions") from None
    info = os.fstat(fd)  # before os.fdopen, which refuses a folder with an error of its own
    problem = ("is a directory; pass the database file with --db" if stat.S_ISDIR(info.st_mode) else
               "not a facebatch database (not a regular file of sane size); pass the database file with --db"
               if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_DATABASE_BYTES else "")
    if problem:
        os.close(fd)
        raise DatabaseError(f"{path}: {problem}")
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def load_or_new(path: Path, model: str, embedding_size: int) -> Gallery:
    if not os.path.lexists(path):
        return Gallery(model, embedding_size)
    return load(path, model)


def _refuse_dangling_link(path: Path) -> None:
    """A --db that is a link to nothing is a mistake (a share not mounted, a file moved), not a
    place to start a new database: writing would create folders at the link's target."""
    if path.is_symlink() and not path.exists():
        raise DatabaseError(f"{path}: a link to {os.readlink(path)}, which does not exist; fix the link or pass "
                            "another --db")


def real_path(path: Path) -> Path:
    """The file a (possibly symlinked) database path names: writes go there, through the link."""
    return Path(os.path.realpath(path))


@contextlib.contextmanager
def locked(path: Path, while_waiting=None) -> Iterator[None]:
    """Hold the database's write lock (a `.lock` file beside the real file) for a read-modify-write.

    Readers need no lock: every save is an atomic rename, so a reader sees the old file or the
    new one.  Writers lock so that two enrolls never lose each other's entries.  Under the lock,
    temporary files that a killed writer left behind are removed: they hold embeddings, and
    `people remove` promises that no copy is kept.  `while_waiting` is called while another
    writer holds the lock (`locks.held`), and may raise to stop waiting.
    """
    _refuse_dangling_link(Path(path))
    target = real_path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target.parent}: cannot create the database folder ({describe_os_error(exc)}); "
                          "choose another --db") from None
    with locks.held(target.with_name(target.name + ".lock"), while_waiting=while_waiting):
        remove_stale_temporaries(target.parent, recursive=False, stem=target.name)
        yield


def refuse_read_only(path: Path) -> None:
    """A database its owner made read-only (chmod a-w) is one they meant to keep as it is.  The
    atomic rename would replace it all the same (renaming needs only the folder's permission, and
    root may write anything).  Asked by save(), and before costly work by the commands that will
    change it; a run that changes nothing (a nightly enroll of an unchanged folder) is fine."""
    target = real_path(path)
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(target.stat().st_mode)
        if not mode & stat.S_IWUSR:
            raise OutputError(f"{target}: the database is read-only (mode {mode:04o}); nothing was changed, make it "
                              "writable (chmod u+w) to change it")


def _access_to_keep(target: Path) -> tuple[int, int | None]:
    """(permissions, group) of the file being replaced (a database shared with a group by chgrp
    and chmod 640 stays shared), or owner-only for a new database."""
    try:
        info = target.stat()
    except FileNotFoundError:
        return PRIVATE, None
    return stat.S_IMODE(info.st_mode), info.st_gid


def save(path: Path, gallery: Gallery) -> None:
    """Write atomically through a symlink: a new database readable by its owner only, an existing one
    with the mode and group its owner gave it.  Call inside `locked(path)`."""
    target = real_path(path)
    refuse_read_only(target)
    try:
        write_text_atomic(target, gallery.to_json(), *_access_to_keep(target))
    except OSError as exc:
        raise OutputError(f"{target}: cannot write the database ({describe_os_error(exc)}); nothing was "
                          "changed, free some space or fix the permissions and run again") from None
