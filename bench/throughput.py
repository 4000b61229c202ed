"""Throughput, side by side on one photo set: facebatch, a naive MTCNN+FaceNet script, face_recognition.

For each tool: end-to-end wall time including start-up, images/s, faces/s, and the peak RSS of the
whole process tree (sampled every 0.2 s).  Also: facebatch's time to its first finished image,
facebatch on a Dask LocalCluster, and the recall of facebatch's fast detection path against MTCNN
on the full-resolution image (faces of at least the default minimum size).

The face_recognition CLI (dlib) is installed into its own venv, bench/out/fr-venv, from the
registry packages dlib-bin, face_recognition_models and face_recognition (--no-deps); it is not a
dependency of facebatch.  If that install fails the row says so.

Usage: python bench/throughput.py [--skip j1,naive,face_recognition,dask]
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.photo_set import build  # noqa: E402
from bench.process_tree import tree_rss  # noqa: E402
from tools.sample_data import cache_dir, celebrity_dataset  # noqa: E402

OUT = ROOT / "bench" / "out" / "throughput"
FR_VENV = ROOT / "bench" / "out" / "fr-venv"
FR_PACKAGES = ["dlib-bin==20.0.1.post1", "face_recognition_models==0.3.0", "face_recognition==1.3.0"]
FR_DEPENDENCIES = ["Click>=6.0", "numpy", "Pillow", "setuptools<81"]  # setuptools: pkg_resources for the models


def measure(command: list[str], env: dict, first_output: Path | None = None) -> dict:
    """Run `command`; wall time, peak RSS summed over its process tree, time until `first_output` exists.

    Its output goes to temporary files, not pipes: a child writing more than a pipe holds would
    block until someone reads, and we only read at the end.
    """
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.monotonic()
        process = psutil.Popen(command, env=env, stdout=stdout, stderr=stderr, text=True)
        peak, first = 0, None
        while process.poll() is None:
            peak = max(peak, tree_rss(process))
            if first is None and first_output is not None and first_output.exists():
                first = time.monotonic() - start
            time.sleep(0.2)
        seconds = time.monotonic() - start
        stdout.seek(0)
        stderr.seek(0)
        return {"seconds": seconds, "peak_rss": peak, "first": first, "code": process.returncode,
                "stdout": stdout.read(), "stderr": stderr.read()}


def install_face_recognition() -> Path | None:
    binary = FR_VENV / "bin" / "face_recognition"
    if binary.exists():
        return binary
    try:
        subprocess.run([sys.executable, "-m", "venv", str(FR_VENV)], check=True)
        pip = [str(FR_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + FR_DEPENDENCIES, check=True)
        subprocess.run(pip + ["--no-deps"] + FR_PACKAGES, check=True)
    except subprocess.CalledProcessError as exc:
        print(f"face_recognition could not be installed: {exc}")
        return None
    return binary if binary.exists() else None


def facebatch_faces(report: Path) -> int:
    with open(report, newline="", encoding="utf-8") as handle:
        return sum(1 for row in csv.DictReader(handle) if row["status"] == "ok")


def recall_of_fast_path(facebatch_report: Path, naive_report: Path, sample: Path) -> tuple[int, int, int]:
    """(faces of at least the default minimum size that MTCNN finds on the full-resolution image, of those found
    by facebatch, faces facebatch finds in the same photos that the full-resolution pass does not).

    The naive baseline runs MTCNN on the full image (20 px faces and up), so its report is the
    full-resolution reference.  The default minimum is per photo: --min-face-size and
    --min-face-fraction of the shorter side, whichever is larger; only faces at or above the
    default confidence count.  Only the photos of the naive baseline's sample are compared.  A face counts as found when a facebatch box overlaps it with IoU >= 0.5.
    """
    from PIL import Image

    from facebatch.detect import DetectorSettings, Face

    defaults = DetectorSettings()

    def boxes(report: Path, ok_only: bool) -> dict[str, list[Face]]:
        found: dict[str, list[Face]] = {}
        with open(report, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if (ok_only and row["status"] != "ok") or float(row["confidence"] or 0) < defaults.min_confidence:
                    continue
                face = Face(int(row["left"]), int(row["top"]), int(row["right"]), int(row["bottom"]), 1.0)
                found.setdefault(row["image"], []).append(face)
        return found

    ours, reference = boxes(facebatch_report, True), boxes(naive_report, False)
    total = matched = only_ours = 0
    for image in sorted(p.relative_to(sample).as_posix() for p in sample.rglob("*.jpg")):
        with Image.open(sample / image) as photo:
            minimum = defaults.min_face_for(*photo.size)
        for face in reference.get(image, []):
            if min(face.width, face.height) >= minimum:
                total += 1
                matched += any(iou(face, other) >= 0.5 for other in ours.get(image, []))
        only_ours += sum(1 for face in ours.get(image, [])
                         if not any(iou(face, other) >= 0.5 for other in reference.get(image, [])))
    return total, matched, only_ours


def iou(a, b) -> float:
    left, top = max(a.left, b.left), max(a.top, b.top)
    right, bottom = min(a.right, b.right), min(a.bottom, b.bottom)
    inter = max(0, right - left) * max(0, bottom - top)
    return inter / float(a.area + b.area - inter)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip", default="", help="comma-separated: j1, naive, face_recognition, dask")
    parser.add_argument("--naive-every", type=int, default=5,
                        help="run the naive baseline on every Nth photo of the set (it needs ~20 s per 12 MP photo)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    photos = OUT / "photos"
    images = build(photos)
    models_root = cache_dir() / "Model"
    env = {**os.environ, "FACEBATCH_MODEL_DIR": str(models_root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    venv_bin = ROOT / ".venv" / "bin"
    db = OUT / "db.json"
    people = OUT / "people"
    if not people.exists():  # one photo per person for face_recognition's known-people folder layout
        for person_dir in sorted((celebrity_dataset() / "train").iterdir()):
            people.mkdir(parents=True, exist_ok=True)
            shutil.copy(sorted(person_dir.glob("*.jpg"))[0], people / f"{person_dir.name}.jpg")
    subprocess.run([str(venv_bin / "facebatch"), "enroll", str(celebrity_dataset() / "train"), "--db", str(db), "-q"],
                   env=env, check=True)
    n = len(images)
    cores = os.cpu_count() or 1
    rows = []

    def record(name: str, r: dict, faces: int, count: int) -> None:
        """Keep a row for the table, and print it at once: a later tool failing must not lose it."""
        rows.append((name, r, faces, count))
        print(f"{name}: {r['seconds']:.1f} s, {count} photos, {faces} faces, peak {r['peak_rss'] / 2**20:.0f} MiB, "
              f"exit {r['code']}", flush=True)

    out = OUT / "facebatch"
    shutil.rmtree(out, ignore_errors=True)
    first_image = out / sorted(p.relative_to(photos).as_posix() for p in images)[0]
    r = measure([str(venv_bin / "facebatch"), "annotate", str(photos), "--db", str(db), "--out", str(out), "-q"],
                env, first_output=first_image)
    record("facebatch annotate (defaults)", r, facebatch_faces(out / "report.csv"), n)
    print(f"facebatch: first image finished after {r['first']:.1f} s" if r["first"] else "facebatch: no first image",
          flush=True)

    if "j1" not in skip:
        out = OUT / "facebatch-j1"
        shutil.rmtree(out, ignore_errors=True)
        r = measure([str(venv_bin / "facebatch"), "annotate", str(photos), "--db", str(db), "--out", str(out), "-q",
                     "-j", "1"], env)
        record("facebatch annotate -j 1 (one worker)", r, facebatch_faces(out / "report.csv"), n)
    if "dask" not in skip:
        out = OUT / "facebatch-dask"
        shutil.rmtree(out, ignore_errors=True)
        r = measure([str(venv_bin / "facebatch"), "annotate", str(photos), "--db", str(db), "--out", str(out), "-q",
                     "--backend", "dask"], env)
        record(f"facebatch annotate --backend dask (LocalCluster, {cores} workers)", r,
               facebatch_faces(out / "report.csv"), n)
    if "naive" not in skip:
        # A stratified sample (every Nth photo in path order keeps the camera/web/empty mix).
        sample = OUT / "naive-sample"
        shutil.rmtree(sample, ignore_errors=True)
        chosen = sorted(images)[::args.naive_every]
        for p in chosen:
            (sample / p.relative_to(photos)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, sample / p.relative_to(photos))
        out = OUT / "naive"
        shutil.rmtree(out, ignore_errors=True)
        r = measure([str(venv_bin / "python"), str(ROOT / "bench" / "naive_baseline.py"), str(sample), str(db),
                     str(out), str(models_root)], env)
        faces = sum(1 for _ in open(out / "report.csv")) - 1 if (out / "report.csv").exists() else 0
        record(f"naive MTCNN+FaceNet script (every {args.naive_every}th photo: {len(chosen)})", r, faces,
               len(chosen))
    if "face_recognition" not in skip:
        binary = install_face_recognition()
        if binary is not None:
            # the CLI reads one folder, not recursively: run it on a flat copy of the set
            flat = OUT / "flat"
            if not flat.exists():
                flat.mkdir(parents=True)
                for p in images:
                    shutil.copy(p, flat / f"{p.parent.name}_{p.name}")
            r = measure([str(binary), "--cpus", str(cores), str(people), str(flat)], env)
            faces = sum(1 for line in r["stdout"].splitlines() if "," in line and not line.endswith(",no_persons_found"))
            record(f"face_recognition CLI --cpus {cores}", r, faces, n)

    print(f"\n{n} photos; machine: {cores} cores", flush=True)
    print("| tool | wall s | images/s | faces | faces/s | peak RSS (tree) | exit |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r, faces, count in rows:
        print(f"| {name} | {r['seconds']:.1f} | {count / r['seconds']:.2f} | {faces} | {faces / r['seconds']:.2f} | "
              f"{r['peak_rss'] / 2**20:.0f} MiB | {r['code']} |")
    ours = rows[0][3] / rows[0][1]["seconds"]
    for name, r, _, count in rows[1:]:
        print(f"facebatch images/s is {ours / (count / r['seconds']):.2f}x that of {name}")
    if "naive" not in skip:
        total, matched, only_ours = recall_of_fast_path(OUT / "facebatch" / "report.csv",
                                                        OUT / "naive" / "report.csv", OUT / "naive-sample")
        print(f"recall of the fast path: {matched}/{total} faces of at least the default minimum size "
              f"(max(40 px, 2 % of the shorter side)) that full-resolution MTCNN finds; "
              f"{only_ours} faces found only by the fast path in the same photos")


if __name__ == "__main__":
    main()
