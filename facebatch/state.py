"""What earlier annotate runs found, per image: the manifest that makes reruns incremental.

A SQLite file beside the report (`report.csv` -> `report.state.sqlite`).  SQLite, not a JSON
file, because it is updated after every chunk: each chunk is one transaction, so a run killed at
any moment keeps every finished chunk and loses nothing else, and a rerun reads it back without
holding all rows in memory.  Only the parent process writes it.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

SCHEMA_VERSION = 1
PRIVATE = 0o600  # the rows name people: biometric-adjacent data, owner only


@dataclass(frozen=True)
class ImageRecord:
    path: str  # relative to the input folder
    size: int
    mtime_ns: int
    sha256: str
    options_key: str  # everything besides the image that the rows depend on
    rows: list  # the report rows for this image
    status: str
    annotated: str


def state_path_for(report_path: Path) -> Path:
    report_path = Path(report_path)
    return report_path.with_name(report_path.stem + ".state.sqlite")


class RunState:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, PRIVATE))
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS images (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, sha256 TEXT,"
            " options_key TEXT, rows TEXT, status TEXT, annotated TEXT)")
        version = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if version is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif version[0] != str(SCHEMA_VERSION):
            self._db.execute("DELETE FROM images")  # an older layout: start afresh, it is only a cache
            self._db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "RunState":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, path: str) -> ImageRecord | None:
        row = self._db.execute("SELECT * FROM images WHERE path=?", (path,)).fetchone()
        return None if row is None else _record(row)

    def records(self) -> Iterator[ImageRecord]:
        """Every record, ordered by path (SQLite's binary order is Python's str order for UTF-8)."""
        for row in self._db.execute("SELECT * FROM images ORDER BY path"):
            yield _record(row)

    def put_many(self, records: Iterable[ImageRecord]) -> None:
        """Store a chunk's records in one transaction: after a crash they are all there or none are."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.path, r.size, r.mtime_ns, r.sha256, r.options_key, json.dumps(r.rows, ensure_ascii=False),
                  r.status, r.annotated) for r in records])

    def update_stat(self, path: str, size: int, mtime_ns: int) -> None:
        self._db.execute("UPDATE images SET size=?, mtime_ns=? WHERE path=?", (size, mtime_ns, path))

    def remove(self, paths: Iterable[str]) -> None:
        with self._transaction():
            self._db.executemany("DELETE FROM images WHERE path=?", [(p,) for p in paths])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _record(row) -> ImageRecord:
    path, size, mtime_ns, sha256, options_key, rows, status, annotated = row
    return ImageRecord(path, size, mtime_ns, sha256, options_key, json.loads(rows), status, annotated)
