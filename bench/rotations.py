"""Should --try-rotations be on by default?  Measures what it finds and what it costs.

* sideways: the 25 validation photos turned 90 degrees clockwise with no EXIF tag (a scanner's
  output): photos with a face found, without and with rotations;
* no-face photos: crops of the group photo t1.jpg that hold no face (table, wall), each
  upscaled to 1200 px: seconds per photo without and with rotations, and any faces "found".
Usage: python bench/rotations.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facebatch.config import ExecutionSettings, Settings  # noqa: E402
from facebatch.engines import get_engine  # noqa: E402
from facebatch.pipeline import _detect_with_turns  # noqa: E402
from tools.sample_data import cache_dir, celebrity_dataset, insightface_images  # noqa: E402

NO_FACE_BOXES = [(0, 560, 400, 886), (300, 600, 900, 886), (850, 600, 1280, 886), (0, 0, 180, 250), (380, 0, 620, 150)]


def main() -> None:
    engine = get_engine(Settings(execution=ExecutionSettings(models_root=cache_dir() / "Model")))
    sideways = [Image.open(p).convert("RGB").transpose(Image.Transpose.ROTATE_270)
                for p in sorted((celebrity_dataset() / "val").rglob("*.jpg"))]
    for try_rotations in (False, True):
        found = sum(bool(_detect_with_turns(engine, im, try_rotations)[0]) for im in sideways)
        print(f"sideways photos with a face found, try_rotations={try_rotations}: {found}/{len(sideways)}")
    group = Image.open(insightface_images() / "t1.jpg").convert("RGB")
    blanks = [group.crop(box) for box in NO_FACE_BOXES]
    blanks = [b.resize((1200, round(1200 * b.height / b.width))) for b in blanks]
    _detect_with_turns(engine, blanks[0], True)  # warm-up
    for try_rotations in (False, True):
        start = time.perf_counter()
        faces = sum(len(_detect_with_turns(engine, im, try_rotations)[0]) for im in blanks)
        per_photo = (time.perf_counter() - start) / len(blanks)
        print(f"no-face photos, try_rotations={try_rotations}: {per_photo:.3f} s per photo, {faces} faces found")


if __name__ == "__main__":
    main()
