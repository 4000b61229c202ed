"""Per-item work: load, detect, crop, embed, match, draw, save.  Runs in worker threads or processes.

Everything here takes and returns picklable values, and a failure with one image becomes that
image's result (status "error"), never an exception that ends the run.  Models are loaded once
per process (engines.py); relabelling (`relabel_chunk`) needs no model and no TensorFlow.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from . import match
from .match import label_image
from .atomicio import describe_os_error, write_failure_hint
from .config import Settings
from .detect import DetectorSettings, Face, largest, unrotate
from .embed import cut_tight
from .errors import FacebatchError, ImageError, with_hint
from .images import inside_folder, load_image, load_upright, max_file_bytes, read_file
from .memory import return_freed_memory
from .results import STATUS_ERROR, STATUS_NO_FACE, STATUS_OK, ImageResult
from .writers import ImageOutput, image_writers

if TYPE_CHECKING:
    from .engines import Engine  # importing it here would start TensorFlow for a relabel



def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ImageError):
        return with_hint(str(exc), "replace or remove the file")
    if isinstance(exc, FacebatchError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


_QUARTER_TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)


@dataclass
class _Found:
    """One readable image of a chunk and its faces, with where to crop them from."""

    relative: str
    image: Image.Image
    faces: list[Face]  # in the coordinates of `image`, as reported and drawn
    crop_source: Image.Image  # the upright image the crops come from (rotated when a turn found the faces)
    crop_faces: list[Face]
    identity: dict
    orientation: int


def _detect_with_turns(engine: "Engine", image: Image.Image, try_rotations: bool):
    """(faces, crop source, crop faces).  With `try_rotations`, a photo with no face is tried
    turned 90/180/270; a web-size photo still with no face gets a second look
    (detect.DetectorSettings.second_look_for).  The turns go first: on a photo stored sideways the
    second look finds a fragment of the face, where a turn finds the face."""
    faces = engine.detector.detect(image)
    if not faces and try_rotations:
        faces, source, crop_faces = _turned(engine, image)
        if faces:
            return faces, source, crop_faces
    if not faces and engine.detector.settings.second_look_for(*image.size):
        faces = engine.detector.look_again(image)
    return faces, image, faces


def _turned(engine: "Engine", image: Image.Image):
    """(faces, crop source, crop faces) of the surest turn of a photo with no upright face."""
    # MTCNN also finds some faces lying on their side or upside down (which FaceNet then embeds
    # badly), but with less confidence than upright: every turn is tried and the one whose largest
    # face is surest wins.  The first turn with a face was upright in 192 of 223 turned training
    # photos; the surest, in 221 (docs/benchmarks.md).
    best = None
    for turns, transpose in enumerate(_QUARTER_TURNS, start=1):
        turned = image.transpose(transpose)
        turned_faces = engine.detector.detect(turned)
        if turned_faces and (best is None or largest(turned_faces).confidence > largest(best[2]).confidence):
            best = (turns, turned, turned_faces)
    if best is None:
        return [], image, []
    turns, turned, turned_faces = best
    pairs = sorted(((unrotate(f, turns, image.size), f) for f in turned_faces),
                   key=lambda pair: (pair[0].left, pair[0].top))  # report order: left to right as stored
    return [p[0] for p in pairs], turned, [p[1] for p in pairs]


def _read(path: Path, max_pixels: int, real_root: str) -> tuple[Image.Image, int, dict]:
    """Load one image upright, and note its size, mtime and hash as read (stat first: a later
    change shows next run).  `real_root` is the input folder's os.path.realpath."""
    if not inside_folder(path, real_root):
        # the scan read it as a photo; a link out of the folder was put in its place (or in its
        # folder's) since
        raise ImageError("a link out of the folder; links are not followed, copy or move the photo in")
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise ImageError("the file was removed during the run; the next run drops it from the report") from None
    except OSError as exc:
        raise ImageError(f"cannot read the file ({exc.strerror or exc}); check the file and its folder") from None
    data = read_file(path, max_file_bytes(max_pixels))
    identity = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": hashlib.sha256(data).hexdigest()}
    image, orientation = load_upright(path, max_pixels, data)
    return image, orientation, identity


# Decoded photos waiting for their faces' embeddings are held in memory; past this many pixels the
# batch is embedded, drawn and saved, so a worker never holds more than one 12 MP photo this way,
# while the faces of many small photos still share one embedding batch.
_MAX_PENDING_PIXELS = 12_000_000


def annotate_chunk(relative_paths: list[str], input_root: Path, output_root: Path, settings: Settings,
                   known: match.KnownPeople) -> list[ImageResult]:
    """Annotate a few images; faces of several small photos share one embedding batch."""
    from .engines import get_engine  # TensorFlow starts here, and only where images are detected

    engine = get_engine(settings)
    real_root = os.path.realpath(input_root)
    results: dict[str, ImageResult] = {}
    pending: list[_Found] = []
    for relative in relative_paths:
        identity: dict = {}
        try:
            image, orientation, identity = _read(Path(input_root) / relative, settings.detection.max_pixels,
                                                 real_root)
            faces, source, crop_faces = _detect_with_turns(engine, image, settings.detection.try_rotations)
            pending.append(_Found(relative, image, faces, source, crop_faces, identity, orientation))
        except Exception as exc:  # noqa: BLE001 - one bad image must not end the run
            results[relative] = ImageResult(relative, STATUS_ERROR, error=_error_text(exc), **identity)
        if sum(item.image.width * item.image.height for item in pending) >= _MAX_PENDING_PIXELS:
            results.update(_embed_label_save(engine, pending, input_root, output_root, settings, known))
            pending = []
            return_freed_memory()
    results.update(_embed_label_save(engine, pending, input_root, output_root, settings, known))
    del pending  # let the decoded photos go before handing their memory back
    return_freed_memory()
    return [results[r] for r in relative_paths]


def _embed_label_save(engine, found: list[_Found], input_root: Path, output_root: Path, settings: Settings,
                      known: match.KnownPeople) -> dict[str, ImageResult]:
    """Embed all faces of `found` in one batch, then name, draw and save each image."""
    crops = [engine.crop(item.crop_source, face) for item in found for face in item.crop_faces]
    try:
        embeddings = engine.embedder.embed(np.stack(crops) if crops else np.zeros((0, 160, 160, 3), np.uint8))
    except Exception as exc:  # noqa: BLE001
        return {item.relative: ImageResult(item.relative, STATUS_ERROR, error=_error_text(exc), **item.identity)
                for item in found}
    writers = image_writers(input_root, output_root, settings.labels.sidecars)
    results: dict[str, ImageResult] = {}
    position = 0
    for item in found:
        own = embeddings[position:position + len(item.faces)]
        position += len(item.faces)
        labelled = label_image(item.faces, own, settings.labels, known)
        output = ImageOutput(item.relative, labelled, item.image.width, item.image.height, item.orientation,
                             item.image, item.identity.get("sha256", ""))
        base = ImageResult(item.relative, STATUS_OK if item.faces else STATUS_NO_FACE, labelled, **item.identity,
                           width=item.image.width, height=item.image.height, orientation=item.orientation,
                           embeddings=own)
        results[item.relative] = write_outputs(base, output, writers)
    return results


def write_outputs(result: ImageResult, output: ImageOutput, writers) -> ImageResult:
    """Run every image writer; a failure becomes the image's error (redone next run), never a crash."""
    annotated, problems = "", []
    for writer in writers:
        try:
            annotated = writer.write(output) or annotated
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, OSError):
                problem = (f"cannot write the {writer.what} ({describe_os_error(exc)}); "
                           f"{write_failure_hint(exc, writer.where)}, the next run redoes it")
            else:
                problem = _error_text(exc)
            if writer.essential:
                return replace(result, status=STATUS_ERROR, annotated="", error=problem)
            problems.append(problem if isinstance(exc, OSError) else f"{writer.what}: {problem}")
    return replace(result, annotated=annotated, output_problem="; ".join(problems),
                   sidecar_written=output.sidecar_written)


def relabel_chunk(items: list[tuple[ImageResult, bool]], input_root: Path, output_root: Path,
                  settings: Settings) -> list[ImageResult]:
    """Write the outputs of images whose labels changed, from stored results: no detection, no
    TensorFlow.  The photo is decoded only when its annotated copy must be redrawn (the bool)."""
    writers = image_writers(input_root, output_root, settings.labels.sidecars)
    done = []
    for result, redraw in items:
        chosen = [w for w in writers if redraw or not w.needs_pixels]
        try:
            image = load_image(Path(input_root) / result.image, settings.detection.max_pixels) if redraw else None
        except Exception as exc:  # noqa: BLE001 - the photo changed or vanished under us
            done.append(replace(result, status=STATUS_ERROR, error=_error_text(exc)))
            continue
        output = ImageOutput(result.image, result.faces, result.width, result.height, result.orientation, image,
                             result.sha256)
        updated = write_outputs(result, output, chosen)
        if updated.status != STATUS_ERROR and not redraw:
            updated = replace(updated, annotated=result.annotated)  # the copy on disk is still right
        done.append(updated)
        del image
    return done


@dataclass(frozen=True)
class PhotoEmbedding:
    """The embedding of the largest face in one photo, or why there is none."""

    path: str
    embedding: np.ndarray | None
    faces_found: int
    error: str = ""
    smallest_face: int = 0  # px: the smallest face looked for in this photo (for the no-face hint)
    cut_tight: bool = False  # the photo leaves little room around the face (embed.cut_tight)
    # with every_face: the embeddings of the photo's other faces, largest first (enroll chooses
    # among them by likeness to the person's other photos); None for a photo with one face
    other_faces: np.ndarray | None = None


NO_FACE = "no face found"


def clear_face_hint(result: PhotoEmbedding, detector: DetectorSettings) -> str:
    """What to do about a photo with no face: the smallest face looked for in that photo (a
    camera photo's is 2 % of its shorter side, above the fixed minimum), and how to go lower."""
    if result.smallest_face > detector.min_face_size:
        return (f"use a photo where the face is clear and at least {result.smallest_face} px "
                f"({detector.min_face_fraction * 100:g} % of this photo's shorter side; --min-face-fraction 0 looks "
                f"for faces down to {detector.min_face_size} px)")
    return f"use a photo where the face is clear and at least {detector.min_face_size} px"


def embed_photos(paths: list[str], settings: Settings, every_face: bool = False) -> list[PhotoEmbedding]:
    """The chunk work of enroll, verify and calibrate: the largest face of each photo (one person
    each, tight crops welcome), embedded in one batch; with `every_face`, a photo's other faces too."""
    from .engines import get_engine

    engine = get_engine(settings)
    found: list[tuple[str, list[np.ndarray], int, bool]] = []  # (path, crops largest first, faces, cut tight)
    results: dict[str, PhotoEmbedding] = {}
    for path in paths:
        try:
            image = load_image(Path(path), settings.detection.max_pixels)
            faces = engine.detector.detect(image, tight_crop_retry=True)
            face = largest(faces)
            if face is None:
                results[path] = PhotoEmbedding(path, None, 0, NO_FACE,
                                               settings.detection.detector.min_face_for(*image.size))
            else:
                chosen = sorted(faces, key=lambda f: -f.area) if every_face else [face]
                found.append((path, [engine.crop(image, f) for f in chosen], len(faces),
                              cut_tight(face, engine.spec.crop, image.size)))
        except Exception as exc:  # noqa: BLE001 - one bad photo must not end the run
            results[path] = PhotoEmbedding(path, None, 0, _error_text(exc))
    if found:
        try:
            embeddings = engine.embedder.embed(np.stack([crop for _, crops, _, _ in found for crop in crops]))
        except Exception as exc:  # noqa: BLE001 - the same policy as annotate: an error per photo
            embeddings = None
            error = _error_text(exc)
        start = 0
        for path, crops, count, tight in found:
            if embeddings is None:
                results[path] = PhotoEmbedding(path, None, count, error)
                continue
            mine = embeddings[start:start + len(crops)]
            start += len(crops)
            results[path] = PhotoEmbedding(path, mine[0], count, cut_tight=tight,
                                           other_faces=mine[1:] if len(crops) > 1 else None)
    return [results[p] for p in paths]
