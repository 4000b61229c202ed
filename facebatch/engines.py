"""The models of this process: a detector and an embedder per (models folder, model, detector),
built once and shared by the worker threads.  The only module that starts TensorFlow."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import weights
from .config import Settings
from .detect import Face, FaceDetector, make_detector
from .embed import Embedder, face_crop
from .memory import limit_malloc_arenas


@dataclass
class Engine:
    spec: weights.ModelSpec
    detector: FaceDetector
    embedder: Embedder

    def crop(self, image: Image.Image, face: Face) -> np.ndarray:
        return face_crop(image, face, self.spec.crop)


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
    # and TensorFlow's Python warnings: with --jobs above 2, mtcnn's networks see batches of many
    # shapes and TF warns of "tf.function retracing" in 600-character lines, in every cron mail
    tf.get_logger().setLevel("ERROR")
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
    detection, execution = settings.detection, settings.execution
    key = (os.path.realpath(execution.models_root), detection.model, detection.detector)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            spec = weights.get_spec(detection.model)
            arrays = weights.load_arrays(execution.models_root, spec)  # fails fast, before TensorFlow starts
            limit_malloc_arenas()
            configure_tensorflow(execution.tf_threads)
            _ENGINES[key] = Engine(spec, make_detector(detection.detector),
                                   Embedder(arrays, spec.embedding_size, spec.standardisation))
        return _ENGINES[key]
