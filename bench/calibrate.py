"""Calibrate the annotate decision rule and the thresholds; report on held-out photos (issue 8).

Data and split: tools/calibration_data.py (docs/calibration.md).  Every photo is detected and
embedded once (cached in $FACEBATCH_CACHE/calibration-<model>.npz; --fresh recomputes), then:

1. for each decision rule (facebatch.calibration.RULES), its threshold is chosen on the
   CALIBRATION part (galleries of 1 photo and of all photos per person, each person left out in
   turn as a stranger), and reported on the HELD-OUT part for galleries of 1, 6 and all
   (18 to 21) photos per person;
2. verify's threshold chosen on calibration pairs, reported on held-out pairs;
3. tight crops: the embedding of a tight face crop (today's padded re-detection, and the
   alternatives) against the embedding of the same face in the whole photo;
4. small faces: detection recall for faces of 30 to 58 px in synthetic 600 x 450 group photos at
   --min-face-size 32 and 40, and whether the found faces are named right.

Usage: python bench/calibrate.py [--model facenet] [--models-root DIR] [--fresh] [--combine facenet-casia512]
"""
from __future__ import annotations

import argparse
import random
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facebatch import calibration, weights  # noqa: E402
from facebatch.calibration import Rule  # noqa: E402
from facebatch.detect import Detector, DetectorSettings, Face, largest  # noqa: E402
from facebatch.embed import Embedder, FaceCrop, face_crop  # noqa: E402
from facebatch.images import load_image  # noqa: E402
from tools import calibration_data as data  # noqa: E402
from tools.sample_data import cache_dir  # noqa: E402

SMALL_SIZES = (30, 34, 38, 42, 46, 50, 54, 58)
GROUP_FACES = 5
MIN_FACE_SIZES = (24, 28, 32, 40)  # bit i of a small face's `extra`: found at MIN_FACE_SIZES[i]
FOUND_AT_32 = 4
TIGHT_BORDER = 0.35  # as facebatch.detect._TIGHT_CROP_BORDER


def iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def tight_crop_variants(detector: Detector, tight: Image.Image, face_cut: FaceCrop) -> dict[str, np.ndarray | None]:
    """The network input for a tight face crop, four ways.

    today: Detector.detect(tight_crop_retry=True), then face_crop from the tight image (the box is
      clamped to the image, and the margin reaches past its edge: black);
    canvas: the same detection on the grey-bordered canvas, cropped from that canvas with the margin;
    whole: the whole image as the face box (margin outside it black);
    whole-grey: the whole image as the face box, cropped from the grey-bordered canvas.
    """
    out: dict[str, np.ndarray | None] = {}
    faces = detector.detect(tight, tight_crop_retry=True)
    face = largest(faces)
    out["today"] = face_crop(tight, face, face_cut) if face else None
    width, height = tight.size
    pad = int(round(max(width, height) * TIGHT_BORDER))
    canvas = Image.new("RGB", (width + 2 * pad, height + 2 * pad), (128, 128, 128))
    canvas.paste(tight, (pad, pad))
    found = largest(detector._to_faces(detector._run(np.asarray(canvas)), 1.0, (0, 0), canvas.size, 0))
    out["canvas"] = face_crop(canvas, found, face_cut) if found else None
    out["whole"] = face_crop(tight, Face(0, 0, width, height, 1.0), face_cut)
    out["whole-grey"] = face_crop(canvas, Face(pad, pad, pad + width, pad + height, 1.0), face_cut)
    return out


def collect(spec: weights.ModelSpec, models_root: Path) -> dict[str, np.ndarray]:
    """Detect and embed every photo of both parts once.  Rows: emb, person, source, part, kind, size."""
    detector = Detector()
    embedder = Embedder(weights.load_arrays(models_root, spec), spec.embedding_size, spec.standardisation)
    face_cut = spec.crop
    rows: list[tuple] = []  # (crop, person, source, part, kind, size, extra)
    boxes: dict[str, tuple[Image.Image, Face]] = {}

    def add_photo(path: Path, person: str, part: str, kind: str = "photo") -> None:
        image = load_image(path)
        face = largest(detector.detect(image, tight_crop_retry=True))
        if face is None:
            print(f"  no face: {path}", flush=True)
            return
        boxes[str(path)] = (image, face)
        rows.append((face_crop(image, face, face_cut), person, str(path), part, kind, min(face.width, face.height), 0))

    cal, held = data.calibration_part(), data.held_out_part()
    for person, paths in cal.enroll.items():
        for path in paths:
            add_photo(path, person, "cal")
    for path in cal.group_strangers:
        image = load_image(path)
        for i, face in enumerate(detector.detect(image)):
            rows.append((face_crop(image, face, face_cut), f"t1-face{i}", f"{path}#{i}", "cal", "stranger",
                         min(face.width, face.height), 0))
    for person, paths in held.probes.items():
        for path in paths:
            add_photo(path, person, "held")
    for person, paths in held.strangers.items():
        for path in paths:
            add_photo(path, person, "held")
    print(f"photos embedded: {len(rows)}", flush=True)

    # tight crops of the calibration and held-out celebrity photos (cut to the detector's box)
    for source, (image, face) in sorted(boxes.items()):
        person_row = next(r for r in rows if r[2] == source and r[4] == "photo")
        if "/celebrity/" not in source:
            continue
        tight = image.crop((face.left, face.top, face.right, face.bottom))
        first_try = bool(detector.detect(tight))
        for variant, crop in tight_crop_variants(detector, tight, face_cut).items():
            if crop is not None:
                rows.append((crop, person_row[1], source, person_row[3], f"tight-{variant}", face.width, int(first_try)))
    print(f"with tight crops: {len(rows)}", flush=True)

    # small faces in synthetic web-size group photos
    for part, seed, sizes_per_source in (("cal", 1, 1), ("held", 2, 2)):
        sources = sorted(s for s, r in ((r[2], r) for r in rows if r[4] == "photo" and r[3] == part))
        rng = random.Random(seed)
        items = []
        for i, source in enumerate(sources):
            for j in range(sizes_per_source):
                items.append((source, SMALL_SIZES[(i + 4 * j) % len(SMALL_SIZES)]))
        rng.shuffle(items)
        for g in range(0, len(items), GROUP_FACES):
            group = items[g:g + GROUP_FACES]
            cutouts = [(boxes[s][0], (boxes[s][1].left, boxes[s][1].top, boxes[s][1].right, boxes[s][1].bottom))
                       for s, _ in group]
            photo, truth = data.compose_group(cutouts, [size for _, size in group], seed=seed * 1000 + g)
            found = {}
            for min_face in MIN_FACE_SIZES:
                detector.settings = replace(DetectorSettings(), min_face_size=min_face)
                found[min_face] = detector.detect(photo)
            detector.settings = DetectorSettings()
            for (source, size), box in zip(group, truth):
                person_row = next(r for r in rows if r[2] == source and r[4] == "photo")
                bits, crop = 0, None
                for bit, min_face in enumerate(MIN_FACE_SIZES):
                    hits = [f for f in found[min_face] if iou((f.left, f.top, f.right, f.bottom), box) >= 0.3]
                    if hits:
                        bits |= 1 << bit
                        crop = face_crop(photo, hits[0], face_cut) if crop is None else crop
                rows.append((crop if crop is not None else np.zeros((160, 160, 3), np.uint8), person_row[1], source,
                             part, "small", size, bits))
    print(f"with small faces: {len(rows)}", flush=True)
    emb = embedder.embed(np.stack([r[0] for r in rows]))
    return {"emb": emb, "person": np.array([r[1] for r in rows]), "source": np.array([r[2] for r in rows]),
            "part": np.array([r[3] for r in rows]), "kind": np.array([r[4] for r in rows]),
            "size": np.array([r[5] for r in rows]), "extra": np.array([r[6] for r in rows])}


def load_or_collect(spec, models_root, fresh: bool) -> dict[str, np.ndarray]:
    path = cache_dir() / f"calibration-{spec.name}.npz"
    if path.is_file() and not fresh:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    arrays = collect(spec, models_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def select(d, **conditions) -> np.ndarray:
    keep = np.ones(len(d["emb"]), bool)
    for key, value in conditions.items():
        keep &= np.isin(d[key], value if isinstance(value, (list, tuple)) else [value])
    return keep


def sorted_rows(d, keep):
    """Indices of `keep`, ordered by (person, source): each person's photos in sorted order."""
    idx = np.flatnonzero(keep)
    return idx[np.lexsort((d["source"][idx], d["person"][idx]))]


def fmt_counts(c: dict) -> str:
    return f"{c['named_right']}/{c['known']} named right, {c['strangers_named']}/{c['strangers']} strangers named"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=weights.DEFAULT_MODEL, choices=sorted(weights.MODELS))
    parser.add_argument("--models-root", type=Path, default=cache_dir() / "Model")
    parser.add_argument("--fresh", action="store_true", help="detect and embed again instead of using the cache")
    parser.add_argument("--combine", choices=sorted(weights.MODELS),
                        help="an ensemble: each face's embedding of --model and of this model side by side, each "
                             "scaled by sqrt(1/2), so a squared distance is the mean of the two models' (the "
                             "thresholds printed for 'before issue 8' are --model's)")
    args = parser.parse_args()
    spec = weights.get_spec(args.model)
    d = load_or_collect(spec, args.models_root, args.fresh)
    if args.combine:
        other = load_or_collect(weights.get_spec(args.combine), args.models_root, args.fresh)
        assert all((d[k] == other[k]).all() for k in ("person", "source", "part", "kind")), "caches of other faces"
        d["emb"] = (np.concatenate([d["emb"], other["emb"]], axis=1) / np.sqrt(2)).astype(np.float32)
    emb, person, source = d["emb"], d["person"], d["source"]
    celebrities = sorted(set(person[select(d, part="cal", kind="photo")].tolist()))

    # ---- the calibration part: gallery = train photos; probes = the same photos (never compared
    # with themselves), their small-face copies (never compared with their source) and t1's faces
    gallery = sorted_rows(d, select(d, part="cal", kind="photo"))
    probes = np.concatenate([gallery, np.flatnonzero(select(d, part="cal", kind="stranger")),
                             np.flatnonzero(select(d, part="cal", kind="small") & (d["extra"] & FOUND_AT_32 > 0))])

    def cal_trials(rule: Rule, n):
        return calibration.run_trials(emb[gallery], person[gallery], emb[probes], person[probes], rule, n,
                                      draws=5 if n else 1, gallery_sources=source[gallery],
                                      probe_sources=source[probes], leave_out=celebrities)

    budget = calibration.MAX_FALSE_ACCEPT
    rules = [Rule("nearest"), Rule("centroid"), Rule("mean-3")]
    chosen: dict[str, tuple[Rule, float]] = {}
    print(f"\nCALIBRATION ({len(gallery)} photos of {len(celebrities)} people, {len(probes)} probes: the photos, "
          f"their small copies, t1's faces)")
    print(f"threshold: the largest with at most {budget:.0%} of strangers named in every gallery shape (1, 3, 6 "
          "and all photos per person); per shape: that threshold for that shape alone")
    shapes = (1, 3, 6, None)
    per_shape: dict[str, list[float]] = {}
    for rule in rules:
        trials = {n: cal_trials(rule, n) for n in shapes}
        threshold, missed = calibration.annotate_threshold([trials[n] for n in shapes], rule)
        balanced, _ = calibration.annotate_threshold([trials[1], trials[None]], rule, max_false_accept=None)
        chosen[rule.name] = (rule, threshold)
        per_shape[rule.name] = [calibration.annotate_threshold([trials[n]], rule)[0] for n in shapes]
        print(f"  {rule.name:10s} threshold {threshold:.3f} (known missed {missed:.3f}); per shape 1/3/6/all: "
              + " ".join(f"{t:.3f}" for t in per_shape[rule.name])
              + f"; drift {per_shape[rule.name][-1] - per_shape[rule.name][0]:+.3f}; "
              f"balanced-error optimum {balanced:.3f}; gap 1/all {calibration.gap(trials[1]):+.3f} "
              f"{calibration.gap(trials[None]):+.3f}")
        for n in shapes:
            kr = trials[n].known_d1[trials[n].known_right]
            print(f"      {n or 'all':>3} photos: known named right at {threshold:.3f}: "
                  f"{np.mean(trials[n].known_right & (trials[n].known_d1 <= threshold)):.3f}; strangers named "
                  f"{np.mean(trials[n].stranger_d1 <= threshold):.3f}; stranger distance q1/q5/q50 "
                  + " ".join(f"{np.quantile(trials[n].stranger_d1, q):.3f}" for q in (0.01, 0.05, 0.5))
                  + "; known-right q50/q95 " + " ".join(f"{np.quantile(kr, q):.3f}" for q in (0.5, 0.95)))
    # N-dependent threshold for nearest-of-N: t(n) = t(1) - beta ln(n), beta from the per-shape fits
    n_all = np.mean([np.sum(person[gallery] == p) for p in celebrities])
    beta = (per_shape["nearest"][0] - per_shape["nearest"][-1]) / np.log(n_all)
    rule = Rule("n-adjusted", beta=float(beta))
    threshold, missed = calibration.annotate_threshold([cal_trials(rule, n) for n in shapes], rule)
    chosen["n-adjusted"] = (rule, threshold)
    print(f"  n-adjusted (beta {beta:.3f}): threshold {threshold:.3f} (known missed {missed:.3f})")
    best = None
    for m in np.arange(0.0, 0.31, 0.02):
        rule = Rule("margin", margin=float(m))
        threshold, missed = calibration.annotate_threshold([cal_trials(rule, n) for n in shapes], rule)
        if best is None or missed < best[2] - 1e-9:
            best = (rule, threshold, missed)
    chosen["margin"] = best[:2]
    print(f"  margin: best margin {best[0].margin:.2f}, threshold {best[1]:.3f} (known missed {best[2]:.3f})")

    # ---- held-out
    held_probes = np.flatnonzero(select(d, part="held", kind="photo"))
    small_held = np.flatnonzero(select(d, part="held", kind="small") & (d["extra"] & FOUND_AT_32 > 0))
    print(f"\nHELD-OUT: {len(held_probes)} photos ({np.sum(np.isin(person[held_probes], celebrities))} of enrolled "
          f"people, the rest strangers), {len(small_held)} small faces found at min 32")
    old = {"facenet": 0.90, "facenet-casia512": 1.00}.get(spec.name, spec.default_threshold)  # before issue 8
    for name, (rule, threshold) in [(f"nearest@{old:.2f} (before)", (Rule("nearest"), old))] + list(chosen.items()):
        for n, draws in ((1, 5), (6, 3), (None, 1)):
            for label, idx in (("photos", held_probes), ("small faces", small_held)):
                trials = calibration.run_trials(emb[gallery], person[gallery], emb[idx], person[idx], rule, n, draws,
                                                source[gallery], source[idx], leave_out=[None] + celebrities)
                print(f"  {name:21s} t={threshold:.3f} gallery {n or 'all'}/person {label:11s}: "
                      f"{fmt_counts(trials.counts(threshold, rule))}")

    # ---- verify
    cal_pairs_idx = np.concatenate([gallery, np.flatnonzero(select(d, part="cal", kind="stranger"))])
    dist, same = calibration.pair_distances(emb[cal_pairs_idx], person[cal_pairs_idx], source[cal_pairs_idx])
    vt = calibration.verify_threshold_at(dist, same)  # at most 0.1 % of different-people pairs SAME
    print(f"  min-error threshold on these pairs (the method before issue 8): {calibration.verify_threshold(dist, same):.3f}")
    print(f"\nVERIFY: calibration pairs {len(dist)}: same {calibration.summary(dist[same])}")
    print(f"  different {calibration.summary(dist[~same])}")
    print(f"  verify threshold (at most {calibration.MAX_FALSE_SAME:.1%} of different-people pairs SAME): {vt:.3f}: "
          f"{calibration.accuracy_at(dist, same, vt)}")
    hd, hs = calibration.pair_distances(emb[held_probes], person[held_probes], source[held_probes])
    before = {"facenet": 1.17, "facenet-casia512": 1.12}.get(spec.name)  # verify thresholds before issue 8
    for t in sorted({vt, spec.verify_threshold, chosen["centroid"][1], before} - {None}):
        print(f"  held-out pairs at {t:.3f}: {calibration.accuracy_at(hd, hs, t)}")
    cross_a = held_probes
    cd = np.sqrt(np.maximum(2 - 2 * emb[cross_a] @ emb[gallery].T, 0)).ravel()
    cs = (person[cross_a][:, None] == person[gallery][None, :]).ravel()
    for t in sorted({vt, spec.verify_threshold, chosen["centroid"][1], before} - {None}):
        print(f"  held-out x calibration pairs at {t:.3f}: {calibration.accuracy_at(cd, cs, t)}")

    # ---- tight crops
    print("\nTIGHT CROPS (distance to the same photo's whole-image embedding)")
    whole = {(s, p): i for i, (s, p, k) in enumerate(zip(source, d["part"], d["kind"])) if k == "photo"}
    for variant in ("today", "canvas", "whole", "whole-grey"):
        idx = np.flatnonzero(d["kind"] == f"tight-{variant}")
        ref = np.array([whole[(source[i], d["part"][i])] for i in idx])
        dd = np.linalg.norm(emb[idx] - emb[ref], axis=1)
        print(f"  {variant:10s} n={len(idx)} median {np.median(dd):.3f}  p90 {np.quantile(dd, 0.9):.3f}  max {dd.max():.3f}")
    first = d["extra"][d["kind"] == "tight-today"]
    print(f"  tight crops found without the border retry: {int(first.sum())}/{len(first)}")
    for variant in ("today", "canvas", "whole", "whole-grey"):
        tg = sorted_rows(d, select(d, part="cal", kind=f"tight-{variant}"))
        for name in ("nearest", "centroid"):
            rule, threshold = chosen[name]
            for n, draws in ((1, 5), (None, 1)):
                trials = calibration.run_trials(emb[tg], person[tg], emb[held_probes], person[held_probes], rule, n,
                                                draws, source[tg], source[held_probes], leave_out=[None] + celebrities)
                print(f"  enrolled from tight crops ({variant}), {name} t={threshold:.3f}, gallery {n or 'all'}: "
                      f"{fmt_counts(trials.counts(threshold, rule))}")
    # the first case: people enrolled from one tight crop each, named in web-size group photos
    rule, threshold = chosen["centroid"]
    tg = sorted_rows(d, select(d, part="cal", kind="tight-today"))
    trials = calibration.run_trials(emb[tg], person[tg], emb[small_held], person[small_held], rule, 1, 5, source[tg],
                                    source[small_held], leave_out=[None] + celebrities)
    print(f"  enrolled from one tight crop (today), small faces found at min 32, centroid t={threshold:.3f}: "
          f"{fmt_counts(trials.counts(threshold, rule))}")

    # ---- small faces: detection recall
    print("\nSMALL FACES (synthetic 600 x 450 group photos)")
    small = d["kind"] == "small"
    for size in SMALL_SIZES:
        at = small & (d["size"] == size)
        print(f"  {size} px: found " + ", ".join(f"at min {m}: {int(np.sum(d['extra'][at] & (1 << b) > 0))}/{int(at.sum())}"
                                                 for b, m in enumerate(MIN_FACE_SIZES)))

    # ---- camera photos: Obama enrolled from one photo beside the celebrities
    enrolled_obama = np.flatnonzero(select(d, kind="photo") & np.char.endswith(source, "obama/obama.jpg"))
    cam_gallery = np.concatenate([gallery, enrolled_obama])
    cam_probes = np.flatnonzero(select(d, part="held", kind="photo", person=["obama", "biden", "tom_hanks"])
                                & ~np.char.endswith(source, "obama/obama.jpg"))
    for name, (rule, threshold) in chosen.items():
        trials = calibration.run_trials(emb[cam_gallery], person[cam_gallery], emb[cam_probes], person[cam_probes],
                                        rule, None, 1, source[cam_gallery], source[cam_probes])
        print(f"  camera check {name}: {fmt_counts(trials.counts(threshold, rule))}")


if __name__ == "__main__":
    main()
