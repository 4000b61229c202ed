"""Settings shared by every command.

Settings come in three frozen parts, and the part a field sits in says what it invalidates:
- `DetectionSettings`: what decides the faces found and their embeddings.  A change redoes the
  detection of every image.
- `LabelSettings`: what decides only the names given to stored faces.  A change relabels from
  the stored embeddings, without decoding or detecting anything.
- `ExecutionSettings`: how the run executes.  A change invalidates nothing.
Cache keys hash a whole part (`part_key`), so a new field is part of its key from the start.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .detect import DetectorSettings
from .images import DEFAULT_MAX_PIXELS
from .weights import DEFAULT_MODEL

MODELS_ROOT = Path("Model")  # the command line's default folders are in cli.py, which imports no numpy for --help
IMAGES_PER_CHUNK = 8  # small enough to spread a short run over the workers, big enough to batch faces


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def tensorflow_threads(backend: str, jobs: int, scheduler: str | None = None) -> int:
    """Threads for each model instance's TensorFlow pools; 0 lets TensorFlow use every core it sees.

    Threads share one model, so its pools may use all cores.  Processes on this machine (loky or
    a Dask LocalCluster) each get their share, or together they would oversubscribe it.  Workers
    on a remote cluster run on machines whose cores we do not know: TensorFlow decides there.
    """
    if backend == "threads" or jobs <= 1 or scheduler:
        return 0
    return max(1, default_jobs() // jobs)


@dataclass(frozen=True)
class DetectionSettings:
    """What decides the faces of an image and their embeddings."""

    model: str = DEFAULT_MODEL
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    max_pixels: int = DEFAULT_MAX_PIXELS
    try_rotations: bool = False  # retry photos with no face turned 90/180/270 degrees (docs/benchmarks.md)


# What annotate does with the XMP sidecars beside the photos.  A sidecar that names someone must
# never go stale, even in a run that was not asked for sidecars: after `people remove`, a run
# without --xmp must still take the name out of the regions an earlier --xmp run wrote.
SIDECARS_WRITE = "write"  # --xmp: facebatch's regions name the faces of every photo
SIDECARS_KEEP_TRUE = "keep-true"  # neither flag: none is created; one holding facebatch's regions is kept true
SIDECARS_WITHDRAW = "withdraw"  # --no-xmp: facebatch's regions are taken out of every sidecar
SIDECAR_MODES = (SIDECARS_WRITE, SIDECARS_KEEP_TRUE, SIDECARS_WITHDRAW)


@dataclass(frozen=True)
class LabelSettings:
    """What decides only the names given to faces already found."""

    threshold: float | None = None  # None until resolved: see resolved()
    sidecars: str = SIDECARS_KEEP_TRUE  # one of SIDECAR_MODES

    def __post_init__(self):
        if self.sidecars not in SIDECAR_MODES:
            raise ValueError(f"sidecars must be one of {SIDECAR_MODES}, not {self.sidecars!r}")

    def resolved(self, calibrated: float | None, model_default: float) -> "LabelSettings":
        """With the threshold in force: --threshold if given, else the one `facebatch calibrate
        --write` stored in the database, else the model's default."""
        if self.threshold is not None:
            return self
        return replace(self, threshold=calibrated if calibrated is not None else model_default)


@dataclass(frozen=True)
class ExecutionSettings:
    """How the work runs; changing it changes no result."""

    models_root: Path = MODELS_ROOT
    jobs: int = 1
    tf_threads: int = 0  # 0: let TensorFlow decide (all cores); see tensorflow_threads()
    backend: str = "threads"  # "threads" or "processes" on this machine, or "dask"
    scheduler: str | None = None  # a Dask scheduler address; implies backend "dask"


@dataclass(frozen=True)
class Settings:
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    labels: LabelSettings = field(default_factory=LabelSettings)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)


def part_key(part, **extra) -> str:
    """A hash of a whole settings part and of `extra` facts (weights hash, database fingerprint)."""
    document = {"part": type(part).__name__, "fields": asdict(part), **extra}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()
