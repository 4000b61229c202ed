"""`facebatch verify`: is this the same person?  One pair, or every pair listed in a CSV."""
from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomicio import atomic_writer
from .config import IMAGES_PER_CHUNK, Settings
from .errors import ImageError, UsageProblem
from .images import is_image_name
from .match import face_distance
from .pipeline import PhotoEmbedding, embed_largest_faces
from .report import safe_cell
from .runner import chunked, run_ordered

PAIRS_HEADER = ["a", "b", "distance", "same", "error"]


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    distance: float | None
    same: bool | None
    error: str = ""


def _embed_all(paths: list[str], settings: Settings) -> dict[str, PhotoEmbedding]:
    def work(chunk, s):
        return embed_largest_faces(chunk, s, tight_crop_retry=True)

    unique = sorted(set(paths))
    results: dict[str, PhotoEmbedding] = {}
    for chunk_results in run_ordered(work, chunked(unique, IMAGES_PER_CHUNK), 1, settings):
        results.update((r.path, r) for r in chunk_results)
    return results


def _compare(a: PhotoEmbedding, b: PhotoEmbedding, threshold: float) -> PairResult:
    for side in (a, b):
        if side.embedding is None:
            return PairResult(a.path, b.path, None, None, f"{side.path}: {side.error}")
    distance = float(face_distance(a.embedding[None], b.embedding[None])[0, 0])
    return PairResult(a.path, b.path, distance, distance <= threshold)


def verify_two(a: Path, b: Path, settings: Settings) -> PairResult:
    embedded = _embed_all([str(a), str(b)], settings)
    result = _compare(embedded[str(a)], embedded[str(b)], settings.threshold)
    if result.error:
        raise ImageError(f"{result.error}; use a photo with a clear face of at least "
                         f"{settings.detector.min_face_size} px")
    return result


def read_pairs(pairs_csv: Path) -> list[tuple[str, str]]:
    """The first two columns of each row; a first row that does not name images is a header."""
    try:
        with open(pairs_csv, newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except FileNotFoundError:
        raise UsageProblem(f"{pairs_csv}: no such file; pass a CSV of image pairs") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageProblem(f"{pairs_csv}: not a readable CSV ({exc}); save it as UTF-8 CSV") from None
    if rows and not (is_image_name(rows[0][0].strip()) if rows[0] else False):
        rows = rows[1:]
    for number, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise UsageProblem(f"{pairs_csv}: row {number} has fewer than two columns; each row needs two image paths")
    return [(row[0].strip(), row[1].strip()) for row in rows]


def verify_pairs(pairs_csv: Path, root: Path | None, settings: Settings) -> list[PairResult]:
    pairs = read_pairs(pairs_csv)
    base = Path(root) if root is not None else Path(pairs_csv).parent
    paths = {p: str(base / p) for pair in pairs for p in pair}
    embedded = _embed_all(list(paths.values()), settings)
    results = []
    for a, b in pairs:
        r = _compare(embedded[paths[a]], embedded[paths[b]], settings.threshold)
        results.append(PairResult(a, b, r.distance, r.same, r.error))
    return results


def _rows(results: list[PairResult]):
    yield PAIRS_HEADER
    for r in results:
        yield [safe_cell(r.a), safe_cell(r.b), "" if r.distance is None else f"{r.distance:.4f}",
               "" if r.same is None else ("1" if r.same else "0"), safe_cell(" ".join(r.error.split()))]


def write_pairs_report(results: list[PairResult], report_path: Path | None) -> None:
    if report_path is None:
        csv.writer(sys.stdout, lineterminator="\n").writerows(_rows(results))
        return
    with atomic_writer(Path(report_path), "w") as handle:
        csv.writer(handle, lineterminator="\n").writerows(_rows(results))
