"""Advisory file locks: the one place that knows flock.

A lock is a small file beside what it guards.  flock is released by the kernel when its holder
dies, so a crashed run never blocks the next one.  The lock file is removed again on release, so
a finished or failed run leaves nothing behind.  Removing a lock file safely needs one check:
after taking the lock, the path must still name the file we locked.  Otherwise another process
unlinked it between our open and our flock, and a third may have made a new one; we try again.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from pathlib import Path
from typing import Callable, Iterator

from .errors import FacebatchError, OutputError

PRIVATE = 0o600


class LockBusy(FacebatchError):
    """Raised by `held(..., wait=False)` when another process holds the lock."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path}: held by pid {holder}")
        self.path = path
        self.holder = holder


WAIT_POLL_SECONDS = 0.2


def _flock(fd: int, wait: bool, while_waiting: Callable[[str], None] | None) -> None:
    """Take the exclusive flock on `fd`.  With `while_waiting`, a wait polls instead of blocking,
    and calls it with the holder's pid every WAIT_POLL_SECONDS: it may raise to give up (a signal
    asking the run to stop), which a blocked flock would never let it do."""
    if not wait or while_waiting is None:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            try:
                while_waiting(_holder(fd))
            except BaseException:
                os.close(fd)
                raise
            time.sleep(WAIT_POLL_SECONDS)


def _holder(fd: int) -> str:
    return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"


def _open_locked(path: Path, wait: bool, while_waiting: Callable[[str], None] | None = None) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputError(f"{path}: a symbolic link where facebatch keeps its lock file; facebatch does "
                                  "not follow it, remove the link") from None
            if exc.errno in (errno.EISDIR, errno.ENXIO, errno.EOPNOTSUPP) and os.path.lexists(path):
                raise OutputError(f"{path}: not facebatch's lock file (a folder, socket or other special file "
                                  f"stands there: {exc.strerror}); move it away") from None
            raise OutputError(f"{path.parent}: cannot create a lock file there ({exc.strerror}); "
                              "check that the folder exists and is writable") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            # A lock file is ours alone: we write our pid into it and delete it.  A hard link
            # planted in its place would have us empty another file.
            os.close(fd)
            raise OutputError(f"{path}: not facebatch's lock file (a special file, or a file with other names: "
                              "hard links); facebatch leaves it alone, move it away")
        try:
            _flock(fd, wait, while_waiting)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LockBusy(path, holder) from None
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the file we locked was unlinked by its last holder: lock the current one


@contextlib.contextmanager
def held(path: Path, wait: bool = True, while_waiting: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed, removed on release); see `_flock`."""
    path = Path(path)
    fd = _open_locked(path, wait, while_waiting)
    try:
        # The pid only names the holder in another run's "held by" message: on a full disk the
        # lock holds without it, and the run's own writes report the disk.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        # Unlink while still holding the lock: a waiter that opened the old file sees it gone
        # (the inode check above) and starts again on a new one.
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
