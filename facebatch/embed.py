"""Face crops, their standardisation, and the embedding model (batched, L2-normalised)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import network
from .detect import Face

EMBED_BATCH = 32  # faces per model call; larger batches gain little on CPU and cost memory


@dataclass(frozen=True)
class FaceCrop:
    """How a detected face is cut out for the network.

    "stretched" is FaceNet's own alignment (davidsandberg/facenet, align_dataset_mtcnn.py): the
    detector's box grown by the same number of pixels on every side (`margin` times the box's
    width, in all) and resized to the input square without keeping its aspect, so the network
    sees faces shaped as it saw them in training.  "square" keeps the aspect: a square of the box's
    longer side, `margin` larger.

    Where the crop reaches past the image edge (a face at the edge, or a photo cut tight to the
    face), `edge` says what happens: "clamp" keeps only the part inside the image, which the
    resize then stretches (FaceNet's own alignment does this, so its network saw faces at photo
    edges that way); "black" fills the rest with black; "mirror" with the image reflected at its
    edge.
    """

    shape: str  # "stretched" or "square"
    margin: float
    edge: str = "black"  # "black", "clamp" or "mirror"

    @property
    def key(self) -> str:
        """Names the crop in the database, so embeddings made with another crop are never mixed."""
        return f"{self.shape}-{self.margin:.2f}" + ("" if self.edge == "black" else f"-{self.edge}")

    def box(self, face: Face) -> tuple[int, int, int, int]:
        cx = (face.left + face.right) / 2.0
        cy = (face.top + face.bottom) / 2.0
        if self.shape == "stretched":
            half_w = face.width * (1.0 + self.margin) / 2.0
            half_h = (face.height + face.width * self.margin) / 2.0
        else:
            half_w = half_h = max(face.width, face.height) * (1.0 + self.margin) / 2.0
        return (int(round(cx - half_w)), int(round(cy - half_h)), int(round(cx + half_w)), int(round(cy + half_h)))


def cut_tight(face: Face, crop: FaceCrop, size: tuple[int, int]) -> bool:
    """Whether a photo of `size` is cut tight to `face`: on every side it holds less than half of
    the room around the face that `crop` takes.  The network then sees a face stretched to fill
    what FaceNet saw with context, and such photos match worse than whole photos
    (docs/calibration.md, tight crops)."""
    left, top, right, bottom = crop.box(face)
    width, height = size
    room = (face.left - left, face.top - top, right - face.right, bottom - face.bottom)
    there = (face.left, face.top, width - face.right, height - face.bottom)
    return all(have < want / 2 for have, want in zip(there, room))


def face_crop(image: Image.Image, face: Face, crop: FaceCrop, size: int = network.INPUT_SIZE) -> np.ndarray:
    """The network's input for one face: a (size, size, 3) uint8 crop from the full-resolution image."""
    box = crop.box(face)
    inside = (max(box[0], 0), max(box[1], 0), min(box[2], image.width), min(box[3], image.height))
    if crop.edge == "black" or inside == box or inside[0] >= inside[2] or inside[1] >= inside[3]:
        return np.asarray(image.crop(box).resize((size, size), Image.BILINEAR), dtype=np.uint8)
    if crop.edge == "clamp":
        return np.asarray(image.crop(inside).resize((size, size), Image.BILINEAR), dtype=np.uint8)
    pixels = np.asarray(image.crop(inside).convert("RGB"))
    mirrored = _mirror_pad(pixels, inside[1] - box[1], box[3] - inside[3], inside[0] - box[0], box[2] - inside[2])
    return np.asarray(Image.fromarray(mirrored).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def _mirror_pad(pixels: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """`pixels` grown by the given amounts, reflected at each edge (again and again when the
    padding is wider than the image)."""
    while top or bottom or left or right:
        h, w = pixels.shape[:2]
        step = (min(top, h), min(bottom, h)), (min(left, w), min(right, w))
        pixels = np.pad(pixels, (*step, (0, 0)), mode="symmetric")
        top, bottom, left, right = top - step[0][0], bottom - step[0][1], left - step[1][0], right - step[1][1]
    return pixels


def standardise(crops: np.ndarray, mode: str) -> np.ndarray:
    """uint8 crops (N, H, W, 3) to the float input the model was trained on."""
    x = crops.astype(np.float32)
    if mode == "fixed":
        return (x - 127.5) / 128.0
    # FaceNet's "prewhiten": each crop to zero mean and unit variance (std floored for flat crops).
    n = x[0].size
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1.0 / np.sqrt(n))
    return (x - mean) / std


class Embedder:
    """The FaceNet network with loaded weights.  Create once per process."""

    def __init__(self, arrays: dict, embedding_size: int, standardisation: str):
        self.embedding_size = embedding_size
        self.standardisation = standardisation
        self._forward = network.build_forward(arrays, embedding_size)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, 160, 160, 3) uint8 crops to (N, D) float32 unit vectors; N may be 0."""
        if len(crops) == 0:
            return np.zeros((0, self.embedding_size), np.float32)
        out = [self._forward(standardise(crops[i:i + EMBED_BATCH], self.standardisation)).numpy()
               for i in range(0, len(crops), EMBED_BATCH)]
        return np.concatenate(out).astype(np.float32)
