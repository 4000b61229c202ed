"""Per-item work: load, detect, crop, embed, match, draw, save.  Runs in worker processes.

Everything here takes and returns picklable values, and a failure with one image becomes that
image's result (status "error"), never an exception that ends the run.  Models are loaded once
per process and kept in `_ENGINES`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import draw, match, weights
from .config import Settings
from .detect import Detector, Face, largest
from .embed import Embedder, face_crop
from .errors import FacebatchError, ImageError
from .images import annotated_name, load_image, save_image_atomic
from .results import STATUS_ERROR, STATUS_NO_FACE, STATUS_OK, ImageResult, LabelledFace


@dataclass
class Engine:
    spec: weights.ModelSpec
    detector: Detector
    embedder: Embedder

    def crop(self, image: Image.Image, face: Face) -> np.ndarray:
        return face_crop(image, face, self.spec.crop_margin)


_ENGINES: dict[tuple, Engine] = {}


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
    if key not in _ENGINES:
        spec = weights.get_spec(settings.model)
        arrays = weights.load_arrays(settings.models_root, spec)  # fails fast, before TensorFlow starts
        configure_tensorflow(settings.tf_threads)
        _ENGINES[key] = Engine(spec, Detector(settings.detector), Embedder(arrays, spec.embedding_size,
                                                                            spec.standardisation))
    return _ENGINES[key]


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, FacebatchError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def annotate_chunk(relative_paths: list[str], input_root: Path, output_root: Path, settings: Settings,
                   known: tuple[list[str], np.ndarray, np.ndarray]) -> list[ImageResult]:
    """Annotate a few images: all their faces go through the embedding model in one batch."""
    engine = get_engine(settings)
    names, known_embeddings, person_starts = known
    loaded: list[tuple[str, Image.Image, list[Face]]] = []
    results: dict[str, ImageResult] = {}
    for relative in relative_paths:
        try:
            image = load_image(Path(input_root) / relative, settings.max_pixels)
            loaded.append((relative, image, engine.detector.detect(image)))
        except Exception as exc:  # noqa: BLE001 - one bad image must not end the run
            results[relative] = ImageResult(relative, STATUS_ERROR, error=_error_text(exc))
    crops = [engine.crop(image, face) for _, image, faces in loaded for face in faces]
    try:
        embeddings = engine.embedder.embed(np.stack(crops) if crops else np.zeros((0, 160, 160, 3), np.uint8))
    except Exception as exc:  # noqa: BLE001
        for relative, _, _ in loaded:
            results[relative] = ImageResult(relative, STATUS_ERROR, error=_error_text(exc))
        loaded = []
    labels = match.label_faces(embeddings, known_embeddings, person_starts, names, settings.threshold) if crops else []
    position = 0
    for relative, image, faces in loaded:
        labelled = tuple(LabelledFace(face, name, distance)
                         for face, (name, distance) in zip(faces, labels[position:position + len(faces)]))
        position += len(faces)
        status = STATUS_OK if faces else STATUS_NO_FACE
        try:
            out_name = annotated_name(relative)
            save_image_atomic(draw.draw_faces(image, labelled), Path(output_root) / out_name)
            results[relative] = ImageResult(relative, status, labelled, annotated=out_name)
        except Exception as exc:  # noqa: BLE001
            results[relative] = ImageResult(relative, STATUS_ERROR, labelled, error=f"cannot write annotated "
                                            f"copy: {_error_text(exc)}")
    return [results[r] for r in relative_paths]


@dataclass(frozen=True)
class PhotoEmbedding:
    """The embedding of the largest face in one photo, or why there is none."""

    path: str
    embedding: np.ndarray | None
    faces_found: int
    error: str = ""


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
                results[path] = PhotoEmbedding(path, None, 0, "no face found")
            else:
                found.append((path, engine.crop(image, face), len(faces)))
        except ImageError as exc:
            results[path] = PhotoEmbedding(path, None, 0, str(exc))
        except Exception as exc:  # noqa: BLE001
            results[path] = PhotoEmbedding(path, None, 0, _error_text(exc))
    if found:
        embeddings = engine.embedder.embed(np.stack([crop for _, crop, _ in found]))
        for (path, _, count), embedding in zip(found, embeddings):
            results[path] = PhotoEmbedding(path, embedding, count)
    return [results[p] for p in paths]
