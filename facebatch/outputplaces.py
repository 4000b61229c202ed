"""Where a report may be written: never over an input, the database, or another output.

`--report`, `--summary-json` and verify's `--report` are free paths, and each is replaced whole
by an atomic rename.  Pointed at the wrong file (the database, a photo, the pairs CSV, the
review page) they would destroy it without a word, so every such path is checked before any
work starts.  A file already there must be one facebatch wrote for the same purpose.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import review
from .atomicio import describe_os_error
from .errors import OutputError, UsageProblem
from .images import OUTPUT_MARKER
from .pathtext import shell_word, to_text
from .state import state_path_for


def _same_file(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)  # (not Path.resolve, which raises on a loop of links)


def _first_line(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle.readline(4096).decode("utf-8-sig", errors="replace").rstrip("\r\n")


def _csv_with_header(header: list[str]):
    return lambda path: _first_line(path) == ",".join(header)


def _our_summary(path: Path) -> bool:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):  # not JSON, not UTF-8, a number too long to read, nested too deep
        return False
    return isinstance(document, dict) and {"images", "faces", "report"} <= set(document)


def refuse_unless_ours(path: Path, option: str, is_ours) -> None:
    """Refuse `path` when something is there that facebatch did not write for `option`."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    shown = to_text(str(path))
    if not path.is_file():
        raise UsageProblem(f"{shown}: not a regular file; choose another {option}")
    try:
        ours = path.stat().st_size == 0 or is_ours(path)
    except OSError as exc:
        raise UsageProblem(f"{shown}: cannot read it ({describe_os_error(exc)}); choose another {option}") from None
    if not ours:
        raise UsageProblem(f"{shown}: already exists and is not a file facebatch wrote for {option}; choose another "
                           f"{option}, or move the file aside")


def check_annotate_outputs(input_dir: Path, output_dir: Path, db_path: Path, report_path: Path,
                           summary_json: Path | None, report_header: list[str], review_names: tuple[str, ...]) -> None:
    """The report and the summary must not land on the database, in the input folder, on each
    other, or on an annotated copy or the review pages in the output folder."""
    real_in, real_out = Path(os.path.realpath(input_dir)), Path(os.path.realpath(output_dir))
    places = [("--report", Path(report_path), ".csv")]
    if summary_json is not None:
        places.append(("--summary-json", Path(summary_json), ".json"))
        if _same_file(report_path, summary_json):
            raise UsageProblem(f"{to_text(str(summary_json))}: is the report too; choose another --summary-json")
    for option, path, suffix in places:
        real = Path(os.path.realpath(path))
        shown = to_text(str(path))
        if _same_file(real, db_path):
            raise UsageProblem(f"{shown}: is the face database (--db); choose another {option}")
        if real.is_relative_to(real_out):  # (the output folder may lie inside the input folder)
            inside = real.relative_to(real_out)
            if real.suffix.lower() != suffix or inside.parts[0] in review_names:
                raise UsageProblem(f"{shown}: in the output folder it must end in {suffix} and stay out of the "
                                   f"review pages, so it cannot overwrite an annotated copy; choose another {option}")
        elif real.is_relative_to(real_in):
            raise UsageProblem(f"{shown}: lies in the input folder {to_text(str(input_dir))}, where it could "
                               f"overwrite a photo or be read as one; choose another {option}")
    _refuse_a_file_on_the_way(Path(output_dir), "--out", [Path(output_dir), *Path(output_dir).parents])
    for option, path, _ in places:
        _refuse_a_file_on_the_way(path, option)
    refuse_unless_ours(report_path, "--report", _csv_with_header(report_header))
    if summary_json is not None:
        refuse_unless_ours(summary_json, "--summary-json", _our_summary)


def _refuse_a_file_on_the_way(path: Path, option: str, folders=None) -> None:
    """A file (or a link to nothing) where the path needs a folder (out.csv/summary.json) can
    only fail, and the summary is written after the whole run: say so before it starts."""
    for folder in Path(path).parents if folders is None else folders:
        if os.path.lexists(folder):
            if not os.path.isdir(folder):
                what = "a link to nothing" if os.path.islink(folder) else "a file, not a folder"
                where = "" if folder == path else f"{to_text(str(folder))} is "
                raise UsageProblem(f"{to_text(str(path))}: {where}{what}; choose another {option}")
            return


def check_pairs_report(pairs_csv: Path, report_path: Path | None, report_header: list[str]) -> None:
    """verify's report must not overwrite the pairs it reads, nor a file it did not write."""
    if report_path is None:
        return
    if _same_file(report_path, pairs_csv):
        raise UsageProblem(f"{to_text(str(report_path))}: is the --pairs file itself; choose another --report")
    refuse_unless_ours(report_path, "--report", _csv_with_header(report_header))


def refuse_a_folder_of_other_files(output_dir: Path) -> None:
    """An --out that already holds files facebatch did not write (~/Pictures, a web folder, a
    typo) would have them replaced by annotated copies and review pages, and its `review/`
    pruned.  Only a new or empty folder, or an earlier run's, is written into.  An earlier run's
    has the output marker, or (runs made before the marker) the default report's manifest.
    Hidden files (.DS_Store, .nomedia) are left alone by every run, so they do not count."""
    if os.path.lexists(output_dir / OUTPUT_MARKER) or os.path.lexists(state_path_for(output_dir / "report.csv")):
        return
    try:
        with os.scandir(output_dir) as entries:
            # lock files are ours by name, and the locks refuse a planted one (a link) themselves
            other = sorted(entry.name for entry in entries
                           if not entry.name.startswith(".") and not entry.name.endswith(".lock"))
    except (FileNotFoundError, NotADirectoryError):
        return  # made below (a file in its place is refused there, in one line)
    except OSError as exc:
        raise OutputError(f"{output_dir}: cannot list the output folder ({describe_os_error(exc)}); "
                          "choose a readable --out") from None
    if other:
        raise UsageProblem(f"{to_text(str(output_dir))}: holds files facebatch did not write (such as "
                           f"{to_text(other[0])}), which annotated copies and review pages could replace; choose a "
                           "new or empty --out, or the folder of an earlier annotate run (one made before facebatch "
                           f"marked its folders: mark it with touch {shell_word(str(output_dir / OUTPUT_MARKER))})")


def own_files_in_out(output_dir: Path, report_path: Path, summary_path: Path | None = None) -> dict[str, str]:
    """The paths inside --out (relative, as `to_text` gives annotated copies' names) that hold
    facebatch's own files, with what each is: an annotated copy there would be pruned as a stray
    thumbnail, or stand where the report must go, every run.  (A copy elsewhere in review/ is
    safe: only thumbnails and .html pages are pruned there, and no copy ends in .html.)"""
    own = {review.THUMBS: "review thumbnails", review.INDEX: "review index"}
    real_out = Path(os.path.realpath(output_dir))
    for path, what in ((report_path, "report"), (state_path_for(report_path), "manifest"),
                       (summary_path, "--summary-json")):
        if path is None:
            continue
        real = Path(os.path.realpath(path))
        if real.is_relative_to(real_out):
            own[to_text(real.relative_to(real_out).as_posix())] = what
    return own
