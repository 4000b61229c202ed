"""`facebatch verify`: is this the same person?  One pair, or every pair listed in a CSV."""
from __future__ import annotations

import csv
import io
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from . import gallery as gallery_db
from . import weights
from .atomicio import atomic_writer, describe_os_error
from .config import IMAGES_PER_CHUNK, Settings
from .errors import ImageError, OutputError, UsageProblem, folder_refused, with_hint
from .hooks import RunHooks
from .images import is_image_name, read_file
from .match import face_distance
from .pathtext import to_text
from .pipeline import PhotoEmbedding, clear_face_hint, embed_photos
from .report import CsvRows, safe_cell
from .runner import chunked, run_stoppable

_MAX_PAIRS_BYTES = 256 << 20  # millions of pairs; a larger "CSV" is something else (or /dev/zero)

PAIRS_HEADER = ["a", "b", "distance", "same", "error"]


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    distance: float | None
    same: bool | None
    error: str = ""


def _embed_all(paths: list[str], settings: Settings, hooks: RunHooks) -> dict[str, PhotoEmbedding]:
    """Each distinct photo embedded once, in parallel like the other commands."""
    unique = sorted(set(paths))
    hooks.on_start(len(unique))
    results: dict[str, PhotoEmbedding] = {}
    for chunk_results in run_stoppable(embed_photos, chunked(unique, IMAGES_PER_CHUNK), settings.execution, hooks.should_stop,
                                       settings):
        for result in chunk_results:
            results[result.path] = result
            hooks.on_result(result)
            if result.faces_found > 1:  # as enroll warns: the largest face may not be the person meant
                hooks.warn(f"{to_text(result.path)}: {result.faces_found} faces, compared the largest; crop the "
                           "photo to one person to be sure")
    return results


def _compare(a: PhotoEmbedding, b: PhotoEmbedding, threshold: float) -> PairResult:
    for side in (a, b):
        if side.embedding is None:
            return PairResult(a.path, b.path, None, None, f"{to_text(side.path)}: {side.error}")
    distance = float(face_distance(a.embedding[None], b.embedding[None])[0, 0])
    return PairResult(a.path, b.path, distance, distance <= threshold)


def verify_two(a: Path, b: Path, settings: Settings, hooks: RunHooks = RunHooks()) -> PairResult:
    embedded = _embed_all([str(a), str(b)], settings, hooks)
    first, second = embedded[str(a)], embedded[str(b)]
    result = _compare(first, second, settings.labels.threshold)
    if result.error:
        failed = first if first.embedding is None else second
        raise ImageError(with_hint(result.error, clear_face_hint(failed, settings.detection.detector)))
    return result


def with_threshold(settings: Settings, db_path: Path, warn=lambda message: None) -> Settings:
    """Settings with verify's threshold in force: --threshold, else the one calibrate stored in
    the database (when there is a database), else the model's default."""
    spec = weights.get_spec(settings.detection.model)
    calibrated = None
    if settings.labels.threshold is None and os.path.lexists(db_path):
        # Thresholds measured with another model or on another face crop do not apply (enroll
        # removes the latter, with a warning); comparing two photos needs no enrolled faces.
        gallery = gallery_db.read(db_path)
        calibrated = gallery.calibrated(spec.crop.key, spec.name).get("verify")
        if ignored := gallery.thresholds_of_an_older_crop(spec.crop.key, spec.name):
            warn(f"{db_path}: {ignored}")
    return replace(settings, labels=settings.labels.resolved(calibrated, spec.verify_threshold))


def read_pairs(pairs_csv: Path, base: Path | None = None) -> list[tuple[str, str]]:
    """The first two columns of each row.  The first row is a header when its first cell is
    neither an image name nor a file under `base` (a photo may lack a known suffix)."""
    try:
        text = read_file(pairs_csv, _MAX_PAIRS_BYTES).decode("utf-8-sig")
        if "\0" in text:  # no path holds one (a UTF-16 file, or a binary one)
            raise UsageProblem(f"{pairs_csv}: line {text.count(chr(10), 0, text.index(chr(0))) + 1} holds a NUL "
                               "character, which no path can; save it as UTF-8 CSV")
        reader = csv.reader(io.StringIO(text, newline=""))
        # (line, row): errors name the line an editor shows, counting the header and blank lines
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except ImageError as exc:
        problem = str(exc).split("; ", 1)[0]  # the image reader's own hint is about photos
        raise UsageProblem(f"{to_text(str(pairs_csv))}: {problem}; pass a CSV of image pairs") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageProblem(f"{pairs_csv}: not a readable CSV ({exc}); save it as UTF-8 CSV") from None
    if rows and not _names_a_photo(rows[0][1][0].strip(), base):
        rows = rows[1:]
    if not rows:
        raise UsageProblem(f"{pairs_csv}: no pairs in it; write two image paths per row")
    for line, row in rows:
        if len(row) < 2:
            raise UsageProblem(f"{pairs_csv}: line {line} has fewer than two columns; each row needs two image paths")
        if not row[0].strip() or not row[1].strip():
            raise UsageProblem(f"{pairs_csv}: line {line} has an empty path; each row needs two image paths")
    return [(_path_in(row[0], base), _path_in(row[1], base)) for _, row in rows]


def _path_in(cell: str, base: Path | None) -> str:
    """The cell as a path: spaces around it are the CSV's padding, unless a file's name has them."""
    return cell if base is not None and cell != cell.strip() and os.path.lexists(base / cell) else cell.strip()


def _names_a_photo(cell: str, base: Path | None) -> bool:
    return bool(cell) and (is_image_name(cell) or (base is not None and os.path.lexists(base / cell)))


def verify_pairs(pairs_csv: Path, root: Path | None, settings: Settings,
                 hooks: RunHooks = RunHooks()) -> list[PairResult]:
    if root is not None and not Path(root).is_dir():
        raise folder_refused(root, "pass the folder the pairs' paths are relative to with --root")
    base = Path(root) if root is not None else Path(pairs_csv).parent
    pairs = read_pairs(pairs_csv, base)
    paths = {p: str(base / p) for pair in pairs for p in pair}
    embedded = _embed_all(list(paths.values()), settings, hooks)
    results = []
    for a, b in pairs:
        r = _compare(embedded[paths[a]], embedded[paths[b]], settings.labels.threshold)
        results.append(PairResult(a, b, r.distance, r.same, r.error))
    return results


def _rows(results: list[PairResult]):
    yield PAIRS_HEADER
    for r in results:
        yield [safe_cell(to_text(r.a)), safe_cell(to_text(r.b)), "" if r.distance is None else f"{r.distance:.4f}",
               "" if r.same is None else ("1" if r.same else "0"), safe_cell(" ".join(r.error.split()))]


def write_pairs_report(results: list[PairResult], report_path: Path | None) -> None:
    if report_path is None:
        CsvRows(sys.stdout).writerows(_rows(results))
        return
    try:
        with atomic_writer(Path(report_path), "w") as handle:
            CsvRows(handle).writerows(_rows(results))
    except OSError as exc:
        raise OutputError(f"{report_path}: cannot write the report ({describe_os_error(exc)}); free some space or "
                          "choose another --report") from None
