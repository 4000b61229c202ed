"""Purity and completeness of the unknown-face groups (facebatch/cluster.py) on labelled photos.

Faces: the largest face of each of the 118 5-celebrity photos (93 train + 25 val, 5 people), and
every face of the insightface group photo t1.jpg (6 more people, one face each: singletons that
must stay alone).  Detected and embedded exactly as bench/calibrate.py does (facenet, crop and
standardisation from the model registry), then fed to cluster.update in a fixed order:
  * "sorted": photo path order (each person's photos arrive together);
  * "shuffled": a fixed permutation (seed 0), in one call;
  * "runs of 10": the same permutation fed 10 faces per call, as ten-odd annotate runs would.
For each join threshold and quorum it prints
  * purity: faces whose group's majority label is their own, over grouped faces; and the number of
    groups that mix two people (must be 0);
  * completeness: pairwise recall (same-person pairs that share a group, over all same-person
    pairs) and "largest": faces in their person's largest group, over the person's faces, averaged;
  * groups and faces left ungrouped.
Then, for `people name`: each celebrity's largest group (default settings, calls of 10) is enrolled
under that celebrity's name, whole or as its k most central faces (cluster.representatives), and
every other face is named as annotate would (the nearest person centroid within facenet's threshold):
celebrity faces named right, named wrong or left unknown, and strangers (t1.jpg) wrongly named.
With --speed it also times cluster.update on synthetic faces (5,000 people x 10 faces, 128-d,
spread like FaceNet's same-person distances of about 0.5), in one call and in ten calls.
Usage: python bench/clusters.py [--models-root DIR] [--embeddings CACHE.npz] [--speed]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facebatch import cluster, match, weights  # noqa: E402
from facebatch.detect import Detector, largest  # noqa: E402
from facebatch.embed import Embedder, face_crop  # noqa: E402
from facebatch.images import load_image  # noqa: E402
from tools.sample_data import cache_dir, celebrity_dataset, insightface_images, people_of  # noqa: E402

THRESHOLDS = (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0, 1.1)
QUORUMS = (1.0, 0.75, 0.5, 0.25)


def labelled_faces(detector, embedder, face_cut) -> tuple[list[cluster.NewFace], list[str]]:
    """(faces to group, the true person of each) in sorted photo order: celebrities then t1's faces."""
    faces, labels = [], []
    root = celebrity_dataset()
    crops = []
    for split in ("train", "val"):
        for person, paths in people_of(root / split).items():
            for path in paths:
                image = load_image(path)
                found = detector.detect(image, tight_crop_retry=True)
                face = largest(found)
                if face is None:
                    continue
                key = (f"{split}/{person}/{path.name}", found.index(face))
                faces.append((key, face))
                labels.append(person)
                crops.append(face_crop(image, face, face_cut))
    group_photo = insightface_images() / "t1.jpg"
    image = load_image(group_photo)
    for index, face in enumerate(detector.detect(image)):
        faces.append((("t1.jpg", index), face))
        labels.append(f"t1-stranger-{index}")
        crops.append(face_crop(image, face, face_cut))
    embeddings = embedder.embed(np.stack(crops))
    new = [cluster.NewFace(key, embedding, min(face.width, face.height), face.confidence)
           for (key, face), embedding in zip(faces, embeddings)]
    return new, labels


def score(groups: tuple[cluster.Group, ...], label_of: dict, all_labels: list[str]) -> dict:
    """Purity and completeness of `groups` against the true labels."""
    grouped = sum(len(g.keys) for g in groups)
    majority_right, mixed = 0, 0
    together = 0
    largest_share: dict[str, int] = {}
    for group in groups:
        counts = Counter(label_of[k] for k in group.keys)
        majority_right += counts.most_common(1)[0][1]
        mixed += len(counts) > 1
        together += sum(c * (c - 1) // 2 for c in counts.values())
        for label, c in counts.items():
            largest_share[label] = max(largest_share.get(label, 0), c)
    per_person = Counter(all_labels)
    pairs = sum(c * (c - 1) // 2 for c in per_person.values())
    people = [p for p, c in per_person.items() if c > 1]
    return {
        "purity": majority_right / grouped if grouped else 1.0,
        "mixed": mixed,
        "pair_recall": together / pairs if pairs else 1.0,
        "largest": float(np.mean([largest_share.get(p, 0) / per_person[p] for p in people])),
        "groups": len(groups),
        "ungrouped": len(all_labels) - grouped,
    }


def run(faces: list[cluster.NewFace], order: np.ndarray, settings: cluster.ClusterSettings,
        batch: int | None) -> tuple[cluster.ClusterState, float]:
    state = cluster.ClusterState()
    ordered = [faces[i] for i in order]
    step = batch or len(ordered)
    start = time.perf_counter()
    for i in range(0, len(ordered), step):
        state = cluster.update(state, ordered[i:i + step], settings).state
    # Faces left over from an earlier run are offered again with the next one, as the caller does;
    # at the end, offer the still-ungrouped ones once more so that late groups can take them.
    grouped = {k for g in state.groups for k in g.keys}
    leftover = [f for f in ordered if f.key not in grouped]
    state = cluster.update(state, leftover, settings).state if leftover else state
    return state, time.perf_counter() - start


def naming(faces: list[cluster.NewFace], labels: list[str], state: cluster.ClusterState, threshold: float) -> None:
    """Enroll each celebrity's largest group (all faces or a central subset); name the other faces."""
    label_of = {f.key: label for f, label in zip(faces, labels)}
    largest: dict[str, cluster.Group] = {}
    for group in state.groups:  # in id order: of equal sizes the older group wins
        label = Counter(label_of[k] for k in group.keys).most_common(1)[0][0]
        if label.startswith("t1-"):
            continue
        if label not in largest or len(group.keys) > len(largest[label].keys):
            largest[label] = group
    enrolled = {k for g in largest.values() for k in g.keys}
    probes = [(f, label) for f, label in zip(faces, labels) if f.key not in enrolled]
    probe_embeddings = np.stack([f.embedding for f, _ in probes])
    truth = np.array([label for _, label in probes])
    stranger = np.char.startswith(truth.astype(str), "t1-")
    names = sorted(largest)
    print(f"naming: enrolled the largest group of each of {len(names)} people "
          f"({', '.join(str(len(largest[n].keys)) for n in names)} faces); {int((~stranger).sum())} other faces "
          f"of them and {int(stranger.sum())} strangers named at threshold {threshold:.2f}")
    for count in (1, 3, 5, 10, None):
        rows = [(name, cluster.representatives(largest[name], count or len(largest[name].keys))) for name in names]
        index = {k: i for i, k in enumerate(f.key for f in faces)}
        known = np.stack([faces[index[k]].embedding for _, keys in rows for k in keys])
        starts = np.cumsum([0] + [len(keys) for _, keys in rows[:-1]])
        # annotate's rule: the nearest person centroid (match.py)
        person, distance = match.nearest_centroid(probe_embeddings, match.person_centroids(known, starts))
        named = np.where(distance <= threshold, np.array(names)[person], "UNKNOWN")
        right = int(np.sum((named == truth) & ~stranger))
        wrong = int(np.sum((named != truth) & (named != "UNKNOWN") & ~stranger))
        unknown = int(np.sum((named == "UNKNOWN") & ~stranger))
        strangers_named = int(np.sum((named != "UNKNOWN") & stranger))
        print(f"naming: enroll {'all' if count is None else f'up to {count}':>8}: {len(known):3d} embeddings; "
              f"named right {right}, wrong {wrong}, unknown {unknown}; strangers named {strangers_named}", flush=True)


def synthetic_faces(people: int, per_person: int, seed: int = 8, spread: float = 0.03) -> list[cluster.NewFace]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 128))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noisy = np.repeat(centres, per_person, axis=0) + rng.normal(scale=spread, size=(people * per_person, 128))
    noisy = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
    order = np.random.default_rng(seed + 1).permutation(len(noisy))
    return [cluster.NewFace((f"{i // per_person}/{i % per_person}.jpg", 0), noisy[i], 100, 1.0) for i in order]


def speed() -> None:
    for people in (1000, 5000):
        faces = synthetic_faces(people, 10)
        start = time.perf_counter()
        one = cluster.update(cluster.ClusterState(), faces).state
        middle = time.perf_counter()
        state = cluster.ClusterState()
        for i in range(0, len(faces), len(faces) // 10):
            state = cluster.update(state, faces[i:i + len(faces) // 10]).state
        end = time.perf_counter()
        print(f"speed: {len(faces)} synthetic faces of {people} people: one call {middle - start:.1f} s "
              f"({len(one.groups)} groups), ten calls {end - middle:.1f} s ({len(state.groups)} groups)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models-root", type=Path, default=cache_dir() / "Model")
    parser.add_argument("--embeddings", type=Path, help="cache the detected faces and embeddings in this .npz")
    parser.add_argument("--speed", action="store_true", help="also time 10,000 and 50,000 synthetic faces")
    args = parser.parse_args()
    spec = weights.get_spec("facenet")
    if args.embeddings and args.embeddings.exists():
        saved = np.load(args.embeddings, allow_pickle=False)
        faces = [cluster.NewFace((str(img), int(idx)), emb, int(size), float(conf))
                 for img, idx, emb, size, conf in zip(saved["images"], saved["indices"], saved["embeddings"],
                                                      saved["sizes"], saved["confidences"])]
        labels = [str(x) for x in saved["labels"]]
    else:
        embedder = Embedder(weights.load_arrays(args.models_root, spec), spec.embedding_size, spec.standardisation)
        faces, labels = labelled_faces(Detector(), embedder, spec.crop)
        if args.embeddings:
            np.savez(args.embeddings, images=[f.key[0] for f in faces], indices=[f.key[1] for f in faces],
                     embeddings=np.stack([f.embedding for f in faces]), sizes=[f.size for f in faces],
                     confidences=[f.confidence for f in faces], labels=labels)
    label_of = {f.key: label for f, label in zip(faces, labels)}
    sizes = np.array([f.size for f in faces])
    confidences = np.array([f.confidence for f in faces])
    print(f"{len(faces)} faces of {len(set(labels))} people; face size (shorter side) min {sizes.min()} px, "
          f"median {int(np.median(sizes))} px; confidence min {confidences.min():.4f}; "
          f"{int(np.sum((sizes < cluster.MIN_START_SIZE) | (confidences < cluster.MIN_START_CONFIDENCE)))} "
          f"may not start a group")
    embeddings = np.stack([f.embedding for f in faces])
    distances = np.sqrt(np.maximum(2.0 - 2.0 * embeddings @ embeddings.T, 0.0))
    same = np.array(labels)[:, None] == np.array(labels)[None]
    off_diagonal = ~np.eye(len(faces), dtype=bool)
    print(f"pair distances: same person median {np.median(distances[same & off_diagonal]):.3f}, "
          f"different people median {np.median(distances[~same]):.3f}, nearest different-people pair "
          f"{distances[~same].min():.3f}")
    permutation = np.random.default_rng(0).permutation(len(faces))
    orders = {"sorted": (np.arange(len(faces)), None), "shuffled": (permutation, None),
              "runs of 10": (permutation, 10)}
    print(f"{'threshold':>9} {'quorum':>6} {'order':>10} {'purity':>6} {'mixed':>5} {'pairs':>6} "
          f"{'largest':>7} {'groups':>6} {'ungrouped':>9} {'ms':>6}")
    for quorum in QUORUMS:
        for threshold in THRESHOLDS:
            settings = cluster.ClusterSettings(join_threshold=threshold, quorum=quorum)
            for name, (order, batch) in orders.items():
                state, seconds = run(faces, order, settings, batch)
                s = score(state.groups, label_of, labels)
                print(f"{threshold:9.2f} {quorum:6.2f} {name:>10} {s['purity']:6.3f} {s['mixed']:5d} "
                      f"{s['pair_recall']:6.3f} {s['largest']:7.3f} {s['groups']:6d} {s['ungrouped']:9d} "
                      f"{seconds * 1000:6.1f}", flush=True)
    state, _ = run(faces, permutation, cluster.ClusterSettings(), 10)
    naming(faces, labels, state, spec.default_threshold)
    if args.speed:
        speed()


if __name__ == "__main__":
    main()
