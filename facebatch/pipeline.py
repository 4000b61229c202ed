"""Per-item work: load, detect, crop, embed, match, draw, save.  Runs in worker threads or processes.

Everything here takes and returns picklable values, and a failure with one image becomes that
image's result (status "error"), never an exception that ends the run.  Models are loaded once
per process and kept in `_ENGINES`.
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import draw, match, weights
from .atomicio import describe_os_error
from .config import Settings
from .detect import Detector, Face, largest, unrotate
from .embed import Embedder, face_crop
from .errors import FacebatchError, ImageError
from .images import annotated_name, load_image, max_file_bytes, read_file, save_image_atomic
from .memory import limit_malloc_arenas, return_freed_memory
from .results import STATUS_ERROR, STATUS_NO_FACE, STATUS_OK, ImageResult, LabelledFace


@dataclass
class Engine:
    spec: weights.ModelSpec
    detector: Detector
    embedder: Embedder

    def crop(self, image: Image.Image, face: Face) -> np.ndarray:
        return face_crop(image, face, self.spec.crop_margin)


_ENGINES: dict[tuple, Engine] = {}
_ENGINES_LOCK = threading.Lock()  # worker threads share one engine: build it once


def _import_tensorflow_quietly():
    """Import TensorFlow without the C++ start-up lines (CUDA probing, absl) it writes straight to fd 2.

    Those lines would land in every cron mail.  Python-level errors still surface as exceptions.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf


def configure_tensorflow(threads: int) -> None:
    """Size TensorFlow's thread pools; must run before TF executes anything in this process."""
    tf = _import_tensorflow_quietly()

    if threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass  # TensorFlow already started in this process; keep its pools


def get_engine(settings: Settings) -> Engine:
    """This process's detector and embedder for `settings`, created on first use."""
    key = (str(Path(settings.models_root).resolve()), settings.model, settings.detector)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            spec = weights.get_spec(settings.model)
            arrays = weights.load_arrays(settings.models_root, spec)  # fails fast, before TensorFlow starts
            limit_malloc_arenas()
            configure_tensorflow(settings.tf_threads)
            _ENGINES[key] = Engine(spec, Detector(settings.detector), Embedder(arrays, spec.embedding_size,
                                                                                spec.standardisation))
        return _ENGINES[key]


def _error_text(exc: BaseException) -> str:
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


def _detect_with_turns(engine: Engine, image: Image.Image, try_rotations: bool):
    """(faces, crop source, crop faces); with `try_rotations`, a photo with no face is tried turned 90/180/270."""
    faces = engine.detector.detect(image)
    if faces or not try_rotations:
        return faces, image, faces
    for turns, transpose in enumerate(_QUARTER_TURNS, start=1):
        turned = image.transpose(transpose)
        turned_faces = engine.detector.detect(turned)
        if turned_faces:
            pairs = sorted(((unrotate(f, turns, image.size), f) for f in turned_faces),
                           key=lambda pair: (pair[0].left, pair[0].top))  # report order: left to right as stored
            return [p[0] for p in pairs], turned, [p[1] for p in pairs]
    return [], image, []


def _read(path: Path, settings: Settings) -> tuple[Image.Image, dict]:
    """Load one image, and note its size, mtime and hash as read (stat first: a later change shows next run)."""
    stat = os.stat(path)
    data = read_file(path, max_file_bytes(settings.max_pixels))
    identity = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": hashlib.sha256(data).hexdigest()}
    return load_image(path, settings.max_pixels, data), identity


# Decoded photos waiting for their faces' embeddings are held in memory; past this many pixels the
# batch is embedded, drawn and saved, so a worker never holds more than one 12 MP photo this way,
# while the faces of many small photos still share one embedding batch.
_MAX_PENDING_PIXELS = 12_000_000


def annotate_chunk(relative_paths: list[str], input_root: Path, output_root: Path, settings: Settings,
                   known: tuple[list[str], np.ndarray, np.ndarray]) -> list[ImageResult]:
    """Annotate a few images; faces of several small photos share one embedding batch."""
    engine = get_engine(settings)
    results: dict[str, ImageResult] = {}
    pending: list[_Found] = []
    for relative in relative_paths:
        identity: dict = {}
        try:
            image, identity = _read(Path(input_root) / relative, settings)
            faces, source, crop_faces = _detect_with_turns(engine, image, settings.try_rotations)
            pending.append(_Found(relative, image, faces, source, crop_faces, identity))
        except Exception as exc:  # noqa: BLE001 - one bad image must not end the run
            results[relative] = ImageResult(relative, STATUS_ERROR, error=_error_text(exc), **identity)
        if sum(item.image.width * item.image.height for item in pending) >= _MAX_PENDING_PIXELS:
            results.update(_embed_label_save(engine, pending, output_root, settings, known))
            pending = []
            return_freed_memory()
    results.update(_embed_label_save(engine, pending, output_root, settings, known))
    del pending  # let the decoded photos go before handing their memory back
    return_freed_memory()
    return [results[r] for r in relative_paths]


def _embed_label_save(engine: Engine, found: list[_Found], output_root: Path, settings: Settings,
                      known: tuple[list[str], np.ndarray, np.ndarray]) -> dict[str, ImageResult]:
    """Embed all faces of `found` in one batch, name them, draw and save each image."""
    results: dict[str, ImageResult] = {}
    names, known_embeddings, person_starts = known
    crops = [engine.crop(item.crop_source, face) for item in found for face in item.crop_faces]
    try:
        embeddings = engine.embedder.embed(np.stack(crops) if crops else np.zeros((0, 160, 160, 3), np.uint8))
    except Exception as exc:  # noqa: BLE001
        return {item.relative: ImageResult(item.relative, STATUS_ERROR, error=_error_text(exc), **item.identity)
                for item in found}
    labels = match.label_faces(embeddings, known_embeddings, person_starts, names, settings.threshold) if crops else []
    position = 0
    for item in found:
        labelled = tuple(LabelledFace(face, name, distance)
                         for face, (name, distance) in zip(item.faces, labels[position:position + len(item.faces)]))
        position += len(item.faces)
        status = STATUS_OK if item.faces else STATUS_NO_FACE
        try:
            out_name = annotated_name(item.relative)
            # The crops are taken, so the decoded photo itself can take the boxes.
            save_image_atomic(draw.draw_faces_onto(item.image, labelled), Path(output_root) / out_name)
            results[item.relative] = ImageResult(item.relative, status, labelled, annotated=out_name, **item.identity)
        except OSError as exc:
            results[item.relative] = ImageResult(item.relative, STATUS_ERROR, labelled, error=f"cannot write the "
                                                 f"annotated copy ({describe_os_error(exc)}); free some space or fix "
                                                 "the permissions of --out, the next run redoes it", **item.identity)
        except Exception as exc:  # noqa: BLE001
            results[item.relative] = ImageResult(item.relative, STATUS_ERROR, labelled, error=f"cannot write "
                                                 f"annotated copy: {_error_text(exc)}", **item.identity)
    return results


@dataclass(frozen=True)
class PhotoEmbedding:
    """The embedding of the largest face in one photo, or why there is none."""

    path: str
    embedding: np.ndarray | None
    faces_found: int
    error: str = ""


NO_FACE = "no face found"


def embed_photos(paths: list[str], settings: Settings) -> list[PhotoEmbedding]:
    """The chunk work of enroll and verify: photos of one person each, tight crops welcome."""
    return embed_largest_faces(paths, settings, tight_crop_retry=True)


def embed_largest_faces(paths: list[str], settings: Settings, tight_crop_retry: bool) -> list[PhotoEmbedding]:
    """For enroll and verify: the largest face of each photo, embedded in one batch."""
    engine = get_engine(settings)
    found: list[tuple[str, np.ndarray, int]] = []
    results: dict[str, PhotoEmbedding] = {}
    for path in paths:
        try:
            image = load_image(Path(path), settings.max_pixels)
            faces = engine.detector.detect(image, tight_crop_retry=tight_crop_retry)
            face = largest(faces)
            if face is None:
                results[path] = PhotoEmbedding(path, None, 0, NO_FACE)
            else:
                found.append((path, engine.crop(image, face), len(faces)))
        except ImageError as exc:
            results[path] = PhotoEmbedding(path, None, 0, str(exc))
        except Exception as exc:  # noqa: BLE001
            results[path] = PhotoEmbedding(path, None, 0, _error_text(exc))
    if found:
        try:
            embeddings = engine.embedder.embed(np.stack([crop for _, crop, _ in found]))
        except Exception as exc:  # noqa: BLE001 - the same policy as annotate: an error per photo
            embeddings = [None] * len(found)
            error = _error_text(exc)
        for (path, _, count), embedding in zip(found, embeddings):
            results[path] = PhotoEmbedding(path, embedding, count, "" if embedding is not None else error)
    return [results[p] for p in paths]
