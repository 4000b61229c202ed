"""Thumbnail files for the review pages: crop, shrink and write a JPEG atomically."""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from .atomicio import atomic_writer
from .review import THUMBS, Box, thumb_box

THUMB_SIZE = 128  # px; the pages show 96 px, a little more stays sharp on high-density screens
JPEG_QUALITY = 82


def make_thumbnail(image: Image.Image, box: Box, size: int = THUMB_SIZE) -> Image.Image:
    """The square crop around a face (review.thumb_box), shrunk to `size` px.  Pure Pillow."""
    crop = image.crop(thumb_box(box, image.size))
    # Bilinear after whole-factor reduction: at 128 px it looks the same as Lanczos and takes half
    # the time, which matters because every face of every photo gets one (docs/benchmarks.md).
    crop.thumbnail((size, size), Image.BILINEAR, reducing_gap=2.0)
    return crop.convert("RGB")


def write_thumbnail(image: Image.Image, box: Box, output_root: Path, relative: str, size: int = THUMB_SIZE) -> bool:
    """Write the thumbnail to `output_root / relative` atomically, unless it is there already.

    Thumbnail names (review.thumb_path) hash the photo and the box, so an existing file is the
    same thumbnail.  Returns whether a file was written.
    """
    path = Path(output_root) / relative
    if path.is_file():
        return False
    with atomic_writer(path, "wb") as handle:
        make_thumbnail(image, box, size).save(handle, "JPEG", quality=JPEG_QUALITY)
    return True


def prune_thumbnails(output_root: Path, keep: set[str]) -> int:
    """Delete thumbnails under review/thumbs/ that no page refers to any more; returns how many."""
    root = Path(output_root)
    removed = 0
    for dirpath, _dirs, files in os.walk(root / THUMBS):
        for name in files:
            path = Path(dirpath) / name
            if name.endswith(".jpg") and path.relative_to(root).as_posix() not in keep:
                path.unlink(missing_ok=True)
                removed += 1
    return removed
