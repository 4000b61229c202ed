"""`facebatch annotate`: a folder of photos in; annotated copies and a CSV report out.

Only this (parent) process writes the report; workers write only their own annotated images.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Callable

from . import gallery as gallery_db
from . import weights
from .atomicio import atomic_writer
from .config import IMAGES_PER_CHUNK, Settings
from .errors import UsageProblem
from .images import find_images
from .pipeline import annotate_chunk
from .report import HEADER, Summary, rows_for
from .results import ImageResult
from .runner import chunked, run_ordered


def images_to_annotate(input_dir: Path, output_dir: Path) -> list[str]:
    """Images below input_dir, leaving out our own output when it lies inside the input folder."""
    relatives = find_images(input_dir)
    try:
        inside = Path(output_dir).resolve().relative_to(Path(input_dir).resolve()).as_posix()
    except ValueError:
        return relatives
    if inside == ".":
        raise UsageProblem(f"{output_dir}: is the input folder itself; choose another --out")
    return [r for r in relatives if not r.startswith(inside + "/")]


def annotate(input_dir: Path, db_path: Path, output_dir: Path, report_path: Path, settings: Settings,
             on_result: Callable[[ImageResult], None] = lambda r: None,
             on_start: Callable[[int], None] = lambda total: None) -> Summary:
    input_dir, output_dir, report_path = Path(input_dir), Path(output_dir), Path(report_path)
    if not input_dir.is_dir():
        raise UsageProblem(f"{input_dir}: no such folder; pass the folder of photos to annotate")
    spec = weights.get_spec(settings.model)
    if weights.read_manifest(settings.models_root, spec.name) is None:
        raise weights.WeightsError(f"{weights.model_dir(settings.models_root, spec.name)}: model {spec.name} is "
                                   f"not installed; run: facebatch download-weights --model {spec.name}")
    with gallery_db.locked(db_path):  # a consistent snapshot even while an enroll is writing
        known = gallery_db.load(db_path, spec.name).matrix()
    relatives = images_to_annotate(input_dir, output_dir)
    on_start(len(relatives))
    summary = Summary()
    started = time.monotonic()
    with atomic_writer(report_path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for chunk_results in run_ordered(annotate_chunk, chunked(relatives, IMAGES_PER_CHUNK), settings.jobs,
                                         input_dir, output_dir, settings, known):
            for result in chunk_results:
                writer.writerows(rows_for(result))
                summary.add(result)
                on_result(result)
    summary.seconds = time.monotonic() - started
    return summary
