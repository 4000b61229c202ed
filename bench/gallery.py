"""Large galleries: 10,000 enrolled people with 5 embeddings each.

Measures what a run pays for the size of the database:
- loading it (read, parse the JSON, decode the base64 float32 embeddings, validate), as annotate
  and verify do at start-up, plus building the match matrix and the fingerprint annotate uses to
  tell stale results;
- saving it, as enroll and `people remove` do;
- matching: the time per face of match.name_photo (annotate's per-photo naming) against 10,000 centroids, for photos of
  faces of the sizes annotate uses, minus the same call against a 5-person gallery.

The embeddings are random unit vectors: the timings depend only on the shapes, not on faces.

Usage: python bench/gallery.py [--people 10000] [--per-person 5]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from facebatch import gallery as gallery_db  # noqa: E402
from facebatch import match  # noqa: E402

SIZE = 128


def random_gallery(people: int, per_person: int, rng: np.random.Generator) -> gallery_db.Gallery:
    vectors = rng.standard_normal((people * per_person, SIZE)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    db = gallery_db.Gallery("facenet", SIZE)
    for p in range(people):
        name = f"Person {p:05d}"
        db.people[name] = [gallery_db.Enrollment(f"{name}/{k}.jpg", f"{p:032x}{k:032x}", vectors[p * per_person + k],
                                              "stretched-0.30")
                           for k in range(per_person)]
    return db


def best_of(repeats: int, action) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--per-person", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    big = random_gallery(args.people, args.per_person, rng)
    small = random_gallery(5, args.per_person, rng)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "DataBase.json"
        save = best_of(3, lambda: gallery_db.save(path, big))
        size_mb = path.stat().st_size / 1e6
        load = best_of(5, lambda: gallery_db.load(path, "facenet"))
        loaded = gallery_db.load(path, "facenet")
    matrix = best_of(5, loaded.matrix)
    fingerprint = best_of(5, loaded.fingerprint)
    matrices = loaded.matrix()
    people = match.KnownPeople.from_matrix(*matrices)
    centroids = best_of(5, lambda: match.KnownPeople.from_matrix(*matrices))
    small_people = match.KnownPeople.from_matrix(*small.matrix())

    print(f"gallery: {args.people:,} people x {args.per_person} embeddings = {args.people * args.per_person:,} embeddings, "
          f"{size_mb:.1f} MB of JSON")
    print("| step | seconds (best of 3-5) |")
    print("| --- | --- |")
    print(f"| load (read, parse, decode, validate) | {load:.3f} |")
    print(f"| match matrix | {matrix:.3f} |")
    print(f"| fingerprint | {fingerprint:.3f} |")
    print(f"| centroids (KnownPeople, once per run) | {centroids:.3f} |")
    print(f"| load + matrix + centroids + fingerprint (annotate start-up) | "
          f"{load + matrix + centroids + fingerprint:.3f} |")
    print(f"| save (enroll, people remove) | {save:.3f} |")
    print()
    print("| faces in the photo | ms per face, 10,000 people | ms per face, 5 people | added ms per face |")
    print("| --- | --- | --- | --- |")
    for batch in (1, 4, 8, 32):  # match.name_photo is called once per photo, with that photo's faces
        faces = rng.standard_normal((batch, SIZE)).astype(np.float32)
        faces /= np.linalg.norm(faces, axis=1, keepdims=True)
        repeats = max(5, 2000 // batch)
        large = best_of(repeats, lambda: match.name_photo(faces, people, 1.05)) / batch
        tiny = best_of(repeats, lambda: match.name_photo(faces, small_people, 1.05)) / batch
        print(f"| {batch} | {large * 1e3:.3f} | {tiny * 1e3:.4f} | {(large - tiny) * 1e3:.3f} |")


if __name__ == "__main__":
    main()
