"""Calibrate crop margin, input standardisation and the default threshold, per model.

On the 5-celebrity photos (93 train + 25 val): detect the largest face once per photo, then for
each margin and standardisation embed every photo and measure
  * identification: each validation photo named by its nearest training person (no threshold);
  * verification: all pairs among the 118 photos, accuracy at the best threshold, and that threshold;
  * open-set (what annotate does): training photos enrolled; validation faces must get their own
    name, and strangers (every face of the insightface group photo t1.jpg and Tom Hanks, none of
    whom is enrolled) must come out UNKNOWN.  The threshold maximising the mean of the two rates.
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
from facebatch.match import nearest_person  # noqa: E402
from tools.sample_data import cache_dir, celebrity_dataset, insightface_images, people_of  # noqa: E402

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


def open_set(gallery, gallery_labels, probes, probe_labels, strangers):
    """Best threshold for 1:N naming with strangers: mean of (known named right, strangers UNKNOWN)."""
    names = sorted(set(gallery_labels))
    order = np.argsort(gallery_labels, kind="stable")
    sorted_labels = gallery_labels[order]
    starts = np.array([np.searchsorted(sorted_labels, n) for n in names])
    best_k, d_known = nearest_person(probes, gallery[order], starts)
    right = np.array(names)[best_k] == probe_labels
    _, d_strangers = nearest_person(strangers, gallery[order], starts)
    candidates = np.unique(np.concatenate([d_known, d_strangers]))
    candidates = np.concatenate([(candidates[:-1] + candidates[1:]) / 2, [candidates[-1] + 1e-3]])
    scores = np.array([(np.mean(right & (d_known <= t)) + np.mean(d_strangers > t)) / 2 for t in candidates])
    best = np.flatnonzero(scores == scores.max())
    # the middle of the best range (between the farthest right name and the nearest stranger), not its edge
    t = float((candidates[best[0]] + candidates[best[-1]]) / 2)
    return t, float(scores.max()), float(np.mean(right & (d_known <= t))), float(np.mean(d_strangers > t))


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
    strangers = [(load_image(p), f) for p in sorted(insightface_images().iterdir())
                 for f in detector.detect(load_image(p), tight_crop_retry=True)]
    print(f"stranger faces: {len(strangers)}")
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
                open_threshold, open_rate, known_rate, reject_rate = open_set(
                    emb[~val], lab[~val], emb[val], lab[val],
                    embedder.embed(np.stack([face_crop(im, f, margin) for im, f in strangers])))
                print(f"{model.name:17s} {standardisation:9s} margin {margin:.1f}: identification {ident:.3f}  "
                      f"pairs: accuracy {accuracy:.4f} at {threshold:.3f}  "
                      f"open-set: {open_rate:.3f} at {open_threshold:.3f} (known named {known_rate:.3f}, "
                      f"strangers rejected {reject_rate:.3f})", flush=True)


if __name__ == "__main__":
    main()
