"""Face detection with MTCNN, returning plain dataclasses in full-resolution pixel coordinates."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

# MTCNN's smallest pyramid window is 12 px; a face needs about 20 px in the image it sees to be
# found reliably, so we never shrink the detection copy below what keeps min_face_size at that.
_DETECTOR_RELIABLE_FACE_PX = 20
# A tight face crop fills the whole image, and MTCNN needs some context around a face.  When
# nothing is found in an enrollment photo we retry on a copy with this much border on each side.
_TIGHT_CROP_BORDER = 0.35
# The retry looks for a face that fills the photo, so it runs on a copy whose longer side is at
# most this: such a face is still hundreds of pixels wide there.  At full size, one 100 MP photo
# with no face made MTCNN's pyramid take 24 GB and the process was killed.
_TIGHT_CROP_RETRY_SIDE = 800


@dataclass(frozen=True)
class Face:
    """A detected face: integer box (left, top, right, bottom) in upright full-resolution pixels."""

    left: int
    top: int
    right: int
    bottom: int
    confidence: float
    landmarks: dict = field(default_factory=dict, compare=False)

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)


@dataclass(frozen=True)
class DetectorSettings:
    name: str = "mtcnn"  # which FaceDetector (DETECTORS)
    # Pixels, shorter side of the box, in the full-resolution image.  28, not 32: the detector's
    # box runs a few pixels narrower than the face, and at 32 most 30-34 px faces in web-size
    # group photos were missed (docs/calibration.md, small faces).
    min_face_size: int = 28
    # ... and at least this fraction of the image's shorter side: 2 % is 60 px in a 12 MP photo.
    # Smaller faces are background faces too small to recognise reliably, and finding them would
    # cost 2.5x the detection time there (docs/benchmarks.md).
    min_face_fraction: float = 0.02
    min_confidence: float = 0.90

    def min_face_for(self, width: int, height: int) -> int:
        """The smallest face reported in a width x height image."""
        return max(self.min_face_size, int(round(self.min_face_fraction * min(width, height))))

    def second_look_for(self, width: int, height: int) -> bool:
        """Whether annotate looks again (`look_again`) at a width x height photo where it found no
        face, as enroll does at every such photo.  Only where the fixed minimum, not the 2 % rule,
        sets the smallest face: web-size photos, where the first look on the shrunken copy missed
        a clear face 32 to 107 px wide in 4 of the 144 sample photos, and a second look costs 50
        to 170 ms (400 x 300 to 800 x 600).  A camera photo keeps the one fast look: there the
        second would cost about as much as the first (docs/benchmarks.md).
        """
        return self.min_face_for(width, height) <= self.min_face_size


def detection_scale(min_face: int) -> float:
    """How much to shrink an image before detection: as far as keeps its smallest face at 20 px.

    MTCNN is asked for faces of 20 px and up in the shrunken copy, which is the same as faces of
    `min_face` and up in the original, at a fraction of the pixels.  (We do not pass larger
    min_face_size values to mtcnn 1.0.0 itself: its pyramid then runs below PNet's 12 px input
    and fails.)
    """
    return min(1.0, _DETECTOR_RELIABLE_FACE_PX / max(min_face, 1))


def _compiled_stages() -> list:
    """mtcnn's three stages with their Keras models called as compiled tf.functions.

    mtcnn 1.0.0 calls each network eagerly, once per pyramid level; compiled calls cut that
    overhead (docs/benchmarks.md).  reduce_retracing lets one trace serve every image size.
    """
    import tensorflow as tf
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    stages = [StagePNet(), StageRNet(), StageONet()]
    for stage in stages:
        stage._model = tf.function(stage._model, reduce_retracing=True)  # mtcnn keeps its network here
    return stages


class FaceDetector(Protocol):
    """What the pipeline needs of a face detector."""

    settings: DetectorSettings

    def detect(self, image: Image.Image, tight_crop_retry: bool = False) -> list[Face]:
        """Faces in the upright image, in its full-resolution pixels, sorted left to right."""

    def look_again(self, image: Image.Image) -> list[Face]:
        """A second, slower look at an image where `detect` found nothing (same order and units)."""


class MtcnnDetector:
    """MTCNN (the mtcnn package, pinned at 1.0.0: `_compiled_stages` and `_run` use its stage
    classes and its `_model` attribute, and tests/test_detect_contract.py checks they are there).
    Create once per process: it builds three TF models."""

    def __init__(self, settings: DetectorSettings = DetectorSettings()):
        self.settings = settings
        self._stages = _compiled_stages()

    def _run(self, pixels: np.ndarray) -> list[tuple]:
        """mtcnn 1.0.0's MTCNN.detect_faces for one image, with one change: the normalised image
        is handed to the stages as a float32 tensor.  detect_faces hands them a float64 numpy
        array, which TensorFlow converted again for each of the ~12 pyramid levels and each
        stage: 85 ms of copying per 12 MP photo, 18 % of detection.  (x - 127.5) / 128 is exact
        in float32 for 8-bit pixels, so the boxes are the same.
        """
        import tensorflow as tf
        from mtcnn.utils.bboxes import fix_bboxes_offsets, limit_bboxes, to_json
        from mtcnn.utils.images import standarize_batch

        if min(pixels.shape[:2]) < _DETECTOR_RELIABLE_FACE_PX:
            return []  # too small to hold a detectable face, and too small for MTCNN's pyramid
        with tf.device("CPU:0"):
            normalized, original_shapes, padding = standarize_batch([pixels], normalize=True)
            normalized = tf.convert_to_tensor(normalized, tf.float32)
            boxes = None
            try:
                for stage in self._stages:
                    boxes = stage(bboxes_batch=boxes, images_normalized=normalized, images_oshapes=original_shapes,
                                  min_face_size=_DETECTOR_RELIABLE_FACE_PX)
            except tf.errors.InvalidArgumentError:  # how mtcnn's stages say "no faces"
                return []
        boxes = limit_bboxes(fix_bboxes_offsets(boxes, padding), images_shapes=original_shapes, limit_landmarks=False)
        results = to_json(boxes, images_count=1, output_as_width_height=False, input_as_width_height=False)
        return [(r["box"], float(r["confidence"]), r["keypoints"]) for r in (results[0] if results else [])]

    def detect(self, image: Image.Image, tight_crop_retry: bool = False) -> list[Face]:
        """Faces in `image`, sorted left to right, filtered by confidence and minimum size.

        With `tight_crop_retry`, an image where nothing is found is tried again with a border
        around it, so that photos cropped to the face (as enrollment photos often are) still work.
        """
        faces = self._detect_scaled(image, self.settings.min_face_for(*image.size))
        if not faces and tight_crop_retry:
            return self.look_again(image)
        return sorted(faces, key=lambda f: (f.left, f.top))

    def look_again(self, image: Image.Image) -> list[Face]:
        """A second look at a photo where `detect` found nothing: at full scale (up to 800 px)
        with a border around it, which finds faces cut tight to the photo's edges and faces in
        small photos that MTCNN missed on the shrunken copy.  The same minimum face applies."""
        return sorted(self._detect_with_border(image), key=lambda f: (f.left, f.top))

    def detect_full_resolution(self, image: Image.Image) -> list[Face]:
        """MTCNN on the image as it is, for 20 px faces and up: the slow reference the benchmark checks against."""
        return sorted(self._to_faces(self._run(np.asarray(image)), 1.0, (0, 0), image.size, 0), key=lambda f: f.left)

    def _detect_scaled(self, image: Image.Image, min_face_size: int) -> list[Face]:
        width, height = image.size
        scale = detection_scale(min_face_size)
        # reducing_gap: shrink by whole factors first (fast box filter), then resample the rest.
        small = image if scale == 1.0 else image.resize(
            (max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR, reducing_gap=2.0)
        raw = self._run(np.asarray(small))
        return self._to_faces(raw, 1.0 / scale, (0, 0), (width, height), min_face_size)

    def _detect_with_border(self, image: Image.Image) -> list[Face]:
        width, height = image.size
        scale = min(1.0, _TIGHT_CROP_RETRY_SIDE / max(width, height))
        small = image if scale == 1.0 else image.resize(
            (max(1, round(width * scale)), max(1, round(height * scale))), Image.BILINEAR, reducing_gap=2.0)
        pad = int(round(max(small.size) * _TIGHT_CROP_BORDER))
        canvas = Image.new("RGB", (small.width + 2 * pad, small.height + 2 * pad), (128, 128, 128))
        canvas.paste(small, (pad, pad))
        raw = self._run(np.asarray(canvas))
        # The same minimum as everywhere else, in the photo's own pixels: enroll must not accept
        # a face that annotate would not even report.
        return self._to_faces(raw, 1.0 / scale, (pad / scale, pad / scale), (width, height),
                              self.settings.min_face_for(width, height))

    def _to_faces(self, raw, scale, offset, size, min_face_size) -> list[Face]:
        width, height = size
        faces = []
        for (x1, y1, x2, y2), confidence, keypoints in raw:
            left = int(round(x1 * scale - offset[0]))
            top = int(round(y1 * scale - offset[1]))
            right = int(round(x2 * scale - offset[0]))
            bottom = int(round(y2 * scale - offset[1]))
            left, top = max(0, left), max(0, top)
            right, bottom = min(width, right), min(height, bottom)
            if confidence < self.settings.min_confidence or min(right - left, bottom - top) < min_face_size:
                continue
            landmarks = {k: (float(v[0]) * scale - offset[0], float(v[1]) * scale - offset[1])
                         for k, v in keypoints.items()}
            faces.append(Face(left, top, right, bottom, confidence, landmarks))
        return faces


Detector = MtcnnDetector  # the name the benchmarks and earlier code use
DETECTORS = {"mtcnn": MtcnnDetector}


def make_detector(settings: DetectorSettings) -> FaceDetector:
    try:
        return DETECTORS[settings.name](settings)
    except KeyError:
        raise ValueError(f"unknown detector {settings.name!r}; choose one of: {', '.join(DETECTORS)}") from None


def largest(faces: list[Face]) -> Face | None:
    return max(faces, key=lambda f: f.area, default=None)


def unrotate(face: Face, quarter_turns: int, original_size: tuple[int, int]) -> Face:
    """Map a face found in the image turned `quarter_turns` x 90 degrees counter-clockwise back to the original."""
    width, height = original_size

    def back(x: float, y: float) -> tuple[float, float]:
        if quarter_turns % 4 == 1:
            return width - y, x
        if quarter_turns % 4 == 2:
            return width - x, height - y
        if quarter_turns % 4 == 3:
            return y, height - x
        return x, y

    (x1, y1), (x2, y2) = back(face.left, face.top), back(face.right, face.bottom)
    landmarks = {k: back(*v) for k, v in face.landmarks.items()}
    return Face(int(min(x1, x2)), int(min(y1, y2)), int(max(x1, x2)), int(max(y1, y2)), face.confidence, landmarks)
