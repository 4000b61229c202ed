"""What the command-line tests share: facebatch run in-process, and its CSV report read back."""
from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner, Result

from facebatch.cli import cli


def run(*args, env=None) -> Result:
    """facebatch with these arguments (any of them paths), exceptions not caught."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env=env)


def report_rows(path: Path) -> list[dict]:
    """The rows of the report CSV at `path`."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
