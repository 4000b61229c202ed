"""Calibrate crop margin, input standardisation and the default threshold, per model.

On the 5-celebrity photos (93 train + 25 val): detect the largest face once per photo, then for
each margin and standardisation embed every photo and measure
  * identification: each validation photo named by its nearest training person (no threshold);
  * verification: all pairs among the 118 photos, accuracy at the best threshold, and that threshold;
  * open-set at threshold T: val photos named correctly AND within T (what annotate reports).
Usage: python bench/calibrate.py [--models-root DIR]
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facebatch import weights  # noqa: E402
from facebatch.detect import Detector, largest  # noqa: E402
from facebatch.embed import Embedder, face_crop  # noqa: E402
from facebatch.images import load_image  # noqa: E402
from tools.sample_data import cache_dir, celebrity_dataset, people_of  # noqa: E402

MARGINS = (0.0, 0.1, 0.2, 0.3, 0.4)
STANDARDISATIONS = ("per-image", "fixed")


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Threshold maximising pair accuracy (midpoint between neighbouring distances), and that accuracy."""
    order = np.argsort(distances)
    d, s = distances[order], same[order]
    # accepting the first k pairs: correct = same among them + different among the rest
    correct = np.concatenate([[0], np.cumsum(s)]) + np.concatenate([[(~s).sum()], (~s).sum() - np.cumsum(~s)])
    k = int(np.argmax(correct))
    threshold = d[0] / 2 if k == 0 else (d[k - 1] + d[k]) / 2 if k < len(d) else d[-1]
    return float(threshold), float(correct[k] / len(d))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models-root", type=Path, default=cache_dir() / "Model")
    args = parser.parse_args()
    root = celebrity_dataset()
    photos = [(split, person, path) for split in ("train", "val")
              for person, paths in people_of(root / split).items() for path in paths]
    detector = Detector()
    images, faces = [], []
    for _, _, path in photos:
        image = load_image(path)
        images.append(image)
        faces.append(largest(detector.detect(image, tight_crop_retry=True)))
    found = [f is not None for f in faces]
    print(f"faces found in {sum(found)}/{len(found)} photos")
    labels = np.array([p for _, p, _ in photos])
    is_val = np.array([s == "val" for s, _, _ in photos])
    keep = np.array(found)
    for model in weights.MODELS.values():
        arrays = weights.load_arrays(args.models_root, model)
        for standardisation in STANDARDISATIONS:
            embedder = Embedder(arrays, model.embedding_size, standardisation)
            for margin in MARGINS:
                crops = np.stack([face_crop(im, f, margin) for im, f, k in zip(images, faces, keep) if k])
                emb = embedder.embed(crops)
                lab, val = labels[keep], is_val[keep]
                dist = np.linalg.norm(emb[:, None] - emb[None], axis=2)
                train_idx, val_idx = np.where(~val)[0], np.where(val)[0]
                nearest = train_idx[np.argmin(dist[np.ix_(val_idx, train_idx)], axis=1)]
                ident = float(np.mean(lab[nearest] == lab[val_idx]))
                pairs = np.array(list(itertools.combinations(range(len(lab)), 2)))
                pd = dist[pairs[:, 0], pairs[:, 1]]
                same = lab[pairs[:, 0]] == lab[pairs[:, 1]]
                threshold, accuracy = best_threshold(pd, same)
                nearest_d = dist[val_idx, nearest]
                open_set = float(np.mean((lab[nearest] == lab[val_idx]) & (nearest_d <= threshold)))
                print(f"{model.name:17s} {standardisation:9s} margin {margin:.1f}: identification {ident:.3f}  "
                      f"pair accuracy {accuracy:.4f} at threshold {threshold:.3f}  "
                      f"open-set val correct {open_set:.3f}  (same-pair median {np.median(pd[same]):.3f}, "
                      f"different-pair median {np.median(pd[~same]):.3f})", flush=True)


if __name__ == "__main__":
    main()
