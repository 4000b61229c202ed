"""Plain values passed from workers to the parent: what happened to one image."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detect import Face

UNKNOWN = "UNKNOWN"
STATUS_OK, STATUS_NO_FACE, STATUS_ERROR = "ok", "no_face", "error"


@dataclass(frozen=True)
class LabelledFace:
    face: Face
    name: str  # an enrolled person, or UNKNOWN
    distance: float  # to the nearest centroid of an enrolled person (match.py; inf when the database is empty)


@dataclass(frozen=True)
class ImageResult:
    image: str  # path relative to the input folder, POSIX separators (as Python holds it: see pathtext.py)
    status: str
    faces: tuple[LabelledFace, ...] = field(default_factory=tuple)
    error: str = ""
    annotated: str = ""  # path of the annotated copy relative to the output folder, or ""
    # The file as it was read, so the parent can tell next time whether it changed.
    size: int = -1
    mtime_ns: int = -1
    sha256: str = ""
    # The upright image's size and the EXIF orientation it was turned by (for XMP regions).
    width: int = 0
    height: int = 0
    orientation: int = 1
    # One float32 unit vector per face, in the order of `faces`: what relabelling needs.
    embeddings: np.ndarray | None = field(default=None, compare=False)
    # A non-essential output (the XMP sidecar) that could not be written this time, in one line:
    # the result stands, the parent warns and has the next run try again.  Not stored.
    output_problem: str = field(default="", compare=False)
    # Under --xmp: whether a sidecar is there after this write (None: not written this time).  Kept
    # only as the labels key's NO_SIDECAR_NEEDED mark (state.py).
    sidecar_written: bool | None = field(default=None, compare=False)
