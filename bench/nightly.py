"""Nightly-run benchmark: peak memory over a long run, and the time of a rerun with nothing changed.

Builds N small photos (default 20,000) from the real celebrity photos: each a 160 px thumbnail,
shifted and mirrored so the files differ. Runs `facebatch annotate` over them with the defaults
and samples the RSS of the whole process tree (parent and workers) every 0.5 s. RSS is reported
against the number of images finished, so growth with the image count shows. Then it runs the
same command again (nothing changed) and times it.

Usage: python bench/nightly.py [--count 20000] [--work DIR]
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.process_tree import tree_rss  # noqa: E402
from tools.sample_data import cache_dir, celebrity_dataset  # noqa: E402

FACEBATCH = [str(ROOT / ".venv" / "bin" / "facebatch")]


def make_photos(folder: Path, count: int) -> None:
    if folder.is_dir() and sum(1 for _ in folder.rglob("*.jpg")) == count:
        return
    sources = [Image.open(p).convert("RGB") for p in sorted((celebrity_dataset() / "train").rglob("*.jpg"))]
    for i in range(count):
        image = sources[i % len(sources)]
        shift = (i // len(sources)) % 9
        image = image.crop((shift, shift, image.width - 8 + shift, image.height - 8 + shift))
        if (i // (len(sources) * 9)) % 2:
            image = ImageOps.mirror(image)
        image.thumbnail((160, 160))
        target = folder / f"{i // 1000:03d}" / f"photo_{i:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, quality=85)


def finished(state: Path) -> int:
    try:
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM images").fetchone()[0]
    except sqlite3.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "nightly")
    args = parser.parse_args()
    photos, out = args.work / "images", args.work / "out"
    make_photos(photos, args.count)
    db = args.work / "db.json"
    env = {**os.environ, "FACEBATCH_MODEL_DIR": str(cache_dir() / "Model")}
    if not db.exists():
        subprocess.run(FACEBATCH + ["enroll", str(celebrity_dataset() / "train"), "--db", str(db), "-q"], check=True, env=env)
    command = FACEBATCH + ["annotate", str(photos), "--db", str(db), "--out", str(out), "-q", "--force"]
    print("command:", " ".join(command))
    start = time.monotonic()
    process = psutil.Popen(command, env=env)
    samples = []  # (images finished, rss bytes)
    while process.poll() is None:
        samples.append((finished(out / "report.state.sqlite"), tree_rss(process)))
        time.sleep(0.5)
    elapsed = time.monotonic() - start
    print(f"first run: exit {process.returncode}, {elapsed:.0f} s, {args.count / elapsed:.1f} images/s")
    for fraction in (0.05, 0.1, 0.25, 0.5, 0.75, 1.0):
        upto = [rss for done, rss in samples if done <= fraction * args.count]
        if upto:
            print(f"  peak RSS of the process tree up to {fraction:>4.0%} of the images: {max(upto) / 2**20:.0f} MiB")
    rerun = FACEBATCH + ["annotate", str(photos), "--db", str(db), "--out", str(out), "-q"]
    start = time.monotonic()
    result = subprocess.run(rerun, env=env, capture_output=True, text=True)
    print(f"rerun with nothing changed over {args.count} images: {time.monotonic() - start:.2f} s "
          f"(exit {result.returncode}): {result.stderr.strip()}")


if __name__ == "__main__":
    main()
