"""The naive MTCNN + FaceNet script facebatch is measured against (the original tool's approach).

One image at a time: decode at full resolution, MTCNN on the full image, then for each face a
crop and one Keras `predict` call, nearest name from the database, boxes drawn, image saved.
It uses facebatch's installed weights and database so that only the method differs.
Usage: python bench/naive_baseline.py IMAGES_DIR DB OUT_DIR MODELS_ROOT
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(images_dir: Path, db_path: Path, out_dir: Path, models_root: Path) -> None:
    import keras
    from mtcnn import MTCNN

    from facebatch import gallery, network, weights
    from facebatch.embed import standardise

    spec = weights.get_spec("facenet")
    forward = network.build_forward(weights.load_arrays(models_root, spec), spec.embedding_size)
    model = keras.Sequential([keras.Input((160, 160, 3)), keras.layers.Lambda(lambda x: forward(x))])
    database = gallery.load(db_path, spec.name)
    names, known, _ = database.matrix()
    owners = np.repeat(np.arange(len(names)), [len(database.people[n]) for n in names])
    detector = MTCNN()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "report.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "name", "distance", "confidence", "left", "top", "right", "bottom"])
        for path in sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
            image = Image.open(path).convert("RGB")
            pixels = np.asarray(image)
            canvas = ImageDraw.Draw(image)
            for face in detector.detect_faces(pixels):
                x, y, w, h = face["box"]
                crop = Image.fromarray(pixels[max(0, y):y + h, max(0, x):x + w]).resize((160, 160))
                embedding = model.predict(standardise(np.asarray(crop)[None], spec.standardisation), verbose=0)[0]
                embedding = embedding / np.linalg.norm(embedding)
                distances = np.linalg.norm(known - embedding, axis=1)
                best = int(np.argmin(distances))
                name = names[owners[best]] if distances[best] <= spec.default_threshold else "UNKNOWN"
                canvas.rectangle((x, y, x + w, y + h), outline=(0, 255, 0), width=3)
                canvas.text((x, y - 12), name, fill=(0, 255, 0))
                writer.writerow([path.relative_to(images_dir).as_posix(), name, f"{distances[best]:.4f}",
                                 f"{face['confidence']:.4f}", x, y, x + w, y + h])
            target = out_dir / path.relative_to(images_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target)


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:5]))
