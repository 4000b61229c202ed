"""A benchmark photo set that looks like a night's work, built from the real sample photos.

* 130 camera-size photos (4032 x 3024, 12.2 MP): a random crop of the group photo t1.jpg scaled
  up (its six faces land at roughly 250 to 450 px), with 0 to 3 celebrity photos pasted in as
  pictures-in-the-picture at 300 to 700 px (faces of about 120 to 350 px);
* 50 web-size photos: the celebrity photos as they are (about 150 to 400 px) and t1.jpg itself;
* 20 photos with no face: face-free parts of t1.jpg (table, wall), 10 at camera size, 10 small.
Deterministic (seeded).  Usage: python bench/photo_set.py OUT_DIR
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.sample_data import celebrity_dataset, insightface_images  # noqa: E402

CAMERA = (4032, 3024)
FACE_FREE_BOXES = [(0, 560, 400, 886), (300, 600, 900, 886), (850, 600, 1280, 886), (0, 0, 180, 250), (380, 0, 620, 150)]
COUNTS = {"camera": 130, "web": 50, "empty": 20}


def build(out: Path) -> list[Path]:
    if out.is_dir() and sum(1 for _ in out.rglob("*.jpg")) == sum(COUNTS.values()):
        return sorted(out.rglob("*.jpg"))
    rng = random.Random(2026)
    group = Image.open(insightface_images() / "t1.jpg").convert("RGB")
    celebrities = [Image.open(p).convert("RGB") for p in sorted(celebrity_dataset().rglob("*.jpg"))]
    written = []

    def save(image: Image.Image, name: str) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, quality=90)
        written.append(path)

    for i in range(COUNTS["camera"]):
        # a crop of 85-100% of the group photo, scaled to camera size
        fraction = rng.uniform(0.85, 1.0)
        w, h = int(group.width * fraction), int(group.width * fraction * 3 / 4)
        h = min(h, group.height)
        x, y = rng.randint(0, group.width - w), rng.randint(0, group.height - h)
        scene = group.crop((x, y, x + w, y + h)).resize(CAMERA, Image.BICUBIC)
        if rng.random() < 0.5:
            scene = ImageOps.mirror(scene)
        for _ in range(rng.randint(0, 3)):
            inset = rng.choice(celebrities)
            size = rng.randint(300, 700)
            inset = inset.resize((size, int(size * inset.height / inset.width)), Image.BICUBIC)
            scene.paste(inset, (rng.randint(0, CAMERA[0] - inset.width), rng.randint(0, CAMERA[1] - inset.height)))
        save(scene, f"camera/scene_{i:03d}.jpg")
    for i in range(COUNTS["web"]):
        save(group if i == 0 else celebrities[(i * 7) % len(celebrities)], f"web/web_{i:03d}.jpg")
    for i in range(COUNTS["empty"]):
        part = group.crop(FACE_FREE_BOXES[i % len(FACE_FREE_BOXES)])
        size = CAMERA if i < COUNTS["empty"] // 2 else (480, 360)
        save(part.resize(size, Image.BICUBIC), f"empty/empty_{i:03d}.jpg")
    return written


if __name__ == "__main__":
    print(len(build(Path(sys.argv[1]))), "photos")
