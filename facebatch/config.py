"""Settings shared by every command, as one frozen (and picklable) object, with the default folders."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .detect import DetectorSettings
from .images import DEFAULT_MAX_PIXELS
from .weights import DEFAULT_MODEL, MODELS

PEOPLE_DIR = Path("People")
IMAGES_DIR = Path("images")
OUTPUT_DIR = Path("Infered_image")
DATABASE = Path("DataBase") / "DataBase.json"
MODELS_ROOT = Path("Model")
REPORT_NAME = "report.csv"
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
class Settings:
    model: str = DEFAULT_MODEL
    models_root: Path = MODELS_ROOT
    threshold: float = MODELS[DEFAULT_MODEL].default_threshold
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    max_pixels: int = DEFAULT_MAX_PIXELS
    try_rotations: bool = False  # retry photos with no face turned 90/180/270 degrees (docs/benchmarks.md)
    jobs: int = 1
    tf_threads: int = 0  # 0: let TensorFlow decide (all cores); see tensorflow_threads()
    backend: str = "threads"  # "threads" or "processes" on this machine, or "dask"
    scheduler: str | None = None  # a Dask scheduler address; implies backend "dask"
