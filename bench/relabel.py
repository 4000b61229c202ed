"""Relabelling benchmark: a database or threshold change against the first run, on camera photos.

Builds 64 camera-size photos of bench/photo_set.py (12.2 MP, several faces each), enrolls the
5-celebrity training photos minus one person, then times four `facebatch annotate` runs:
  1. the first run (everything detected);
  2. after enrolling one more person (the database changed: relabel from stored faces);
  3. after a change of threshold (relabel again);
  4. the same, with --force (everything detected again), whose report must equal run 3's.
Usage: python bench/relabel.py [--work DIR] [--count 64]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import photo_set  # noqa: E402
from tools.sample_data import cache_dir, celebrity_dataset  # noqa: E402

# The entry point, not `python -m facebatch`: -m puts the current folder first on sys.path, so run
# from a repository root it imports that tree, whatever PYTHONPATH names (comparing two trees by
# PYTHONPATH would then time one tree twice; docs/benchmarks.md has the story).
FACEBATCH = [str(Path(sys.executable).with_name("facebatch"))]


def timed(*args) -> float:
    started = time.monotonic()
    subprocess.run([*FACEBATCH, *map(str, args)], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "relabel")
    parser.add_argument("--count", type=int, default=64)
    args = parser.parse_args()
    photos = photo_set.build(args.work / "photo_set")
    images = args.work / "images"
    if images.exists():
        shutil.rmtree(images)
    images.mkdir(parents=True)
    for photo in sorted(p for p in photos if p.parent.name == "camera")[:args.count]:
        shutil.copy(photo, images / photo.name)
    people, db, out = args.work / "People", args.work / "db.json", args.work / "out"
    for path in (people, out):
        shutil.rmtree(path, ignore_errors=True)
    db.unlink(missing_ok=True)
    shutil.copytree(celebrity_dataset() / "train", people)
    held_back = people / "madonna"
    shutil.move(held_back, args.work / "madonna")
    models = ["--model-dir", cache_dir() / "Model"]
    subprocess.run([*FACEBATCH, "enroll", people, "--db", db, *models, "-q"], check=True)
    annotate = ["annotate", images, "--db", db, "--out", out, *models, "-q"]
    first = timed(*annotate)
    shutil.move(args.work / "madonna", held_back)
    subprocess.run([*FACEBATCH, "enroll", people, "--db", db, *models, "-q"], check=True)
    after_enroll = timed(*annotate)
    after_threshold = timed(*annotate, "--threshold", "0.8")
    relabelled_report = (out / "report.csv").read_bytes()
    forced = timed(*annotate, "--threshold", "0.8", "--force")
    identical = (out / "report.csv").read_bytes() == relabelled_report
    print(f"photos {len(list(images.iterdir()))} (camera, 12.2 MP)")
    print(f"first run               {first:7.1f} s")
    print(f"after enrolling one     {after_enroll:7.1f} s  ({after_enroll / first:.2f}x the first run)")
    print(f"after a threshold change{after_threshold:7.1f} s  ({after_threshold / first:.2f}x the first run)")
    print(f"--force (detect again)  {forced:7.1f} s  ({forced / first:.2f}x the first run)")
    print(f"relabelled report identical to the --force report: {identical}")


if __name__ == "__main__":
    main()
