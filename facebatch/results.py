"""Plain values passed from workers to the parent: what happened to one image."""
from __future__ import annotations

from dataclasses import dataclass, field

from .detect import Face

UNKNOWN = "UNKNOWN"
STATUS_OK, STATUS_NO_FACE, STATUS_ERROR = "ok", "no_face", "error"


@dataclass(frozen=True)
class LabelledFace:
    face: Face
    name: str  # an enrolled person, or UNKNOWN
    distance: float  # to the nearest enrolled embedding (inf when the database is empty)


@dataclass(frozen=True)
class ImageResult:
    image: str  # path relative to the input folder, POSIX separators
    status: str
    faces: tuple[LabelledFace, ...] = field(default_factory=tuple)
    error: str = ""
    annotated: str = ""  # path of the annotated copy relative to the output folder, or ""
    # The file as it was read, so the parent can tell next time whether it changed.
    size: int = -1
    mtime_ns: int = -1
    sha256: str = ""
