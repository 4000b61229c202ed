"""`facebatch calibrate`: thresholds measured on the user's own labelled photos.

LABELLED_DIR has the layout enroll reads (`Name/*.jpg`, or `Name.jpg`).  Every photo's largest
face is embedded (in parallel, like enroll); calibration.py turns the embeddings into the
distance distributions, the accuracy at the thresholds in force, and recommended thresholds;
`write` stores those in the database, where annotate and verify take them as their defaults.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import calibration
from . import gallery as gallery_db
from . import weights
from .config import IMAGES_PER_CHUNK, Settings
from .enrollment import person_photos
from .errors import UsageProblem
from .hooks import RunHooks
from .pathtext import to_text
from .pipeline import NO_FACE, embed_photos
from .runner import chunked, run_stoppable


@dataclass
class CalibrateOutcome:
    photos: int
    people: int
    recommendation: calibration.Recommendation
    current_annotate: float
    current_verify: float
    warnings: list[str] = field(default_factory=list)
    write: bool = False  # --write was asked for
    written: list[str] = field(default_factory=list)  # the thresholds --write stored ("annotate", "verify")


def calibrate(labelled_dir: Path, db_path: Path, settings: Settings, hooks: RunHooks = RunHooks(),
              write: bool = False) -> CalibrateOutcome:
    labelled_dir = Path(labelled_dir)
    if not labelled_dir.is_dir():
        problem = "not a folder" if labelled_dir.exists() else "no such folder"
        raise UsageProblem(f"{to_text(labelled_dir)}: {problem}; pass a folder with one folder of photos per person")
    spec = weights.get_spec(settings.detection.model)
    stored = gallery_db.load(db_path, spec.name).calibrated(spec.crop.key) if Path(db_path).exists() else {}
    current_annotate = stored.get("annotate", spec.default_threshold)
    current_verify = stored.get("verify", spec.verify_threshold)
    pairs, warnings, _ = person_photos(labelled_dir)
    person_of = {str(labelled_dir / relative): person for person, relative in pairs}
    paths = sorted(person_of)
    hooks.on_start(len(paths))
    embeddings, labels = [], []
    for chunk_results in run_stoppable(embed_photos, chunked(paths, IMAGES_PER_CHUNK), settings.execution,
                                       hooks.should_stop, settings):
        for result in chunk_results:
            hooks.on_result(result)
            if result.embedding is None:
                hint = "use a photo with one clear face" if result.error == NO_FACE else "replace or remove it"
                warnings.append(f"{to_text(result.path)}: skipped, {result.error}; {hint}")
                continue
            embeddings.append(result.embedding)
            labels.append(person_of[result.path])
    counts = Counter(labels)
    if len(counts) < 2 or max(counts.values(), default=0) < 2:
        raise UsageProblem(f"{labelled_dir}: calibrating needs at least 2 people and at least one of them with 2 "
                           f"or more photos with a face (found {len(counts)} people, {len(labels)} photos); add "
                           "more labelled photos, one folder per person")
    recommendation = calibration.recommend(np.stack(embeddings), labels, current_verify=current_verify,
                                           current_annotate=current_annotate)
    outcome = CalibrateOutcome(len(labels), len(counts), recommendation, current_annotate, current_verify, warnings,
                               write)
    if write:
        with gallery_db.locked(db_path):
            gallery = gallery_db.load_or_new(db_path, spec.name, spec.embedding_size)
            # A capped threshold is the one in force, and keeps its source: stored, it stays stored;
            # the model's default is not copied in, so it still follows the model's calibration.
            thresholds = gallery.calibrated(spec.crop.key)
            for kind, value, capped in (("annotate", recommendation.annotate_threshold, recommendation.annotate_capped),
                                        ("verify", recommendation.verify_threshold, recommendation.verify_capped)):
                if not capped:
                    thresholds[kind] = round(value, 4)
                    outcome.written.append(kind)
            if outcome.written:  # else the database stays as it was (or absent)
                gallery.thresholds, gallery.thresholds_crop = thresholds, spec.crop.key
                gallery_db.save(db_path, gallery)
    return outcome
