"""File names as text: a lossless, printable form for names that are not valid UTF-8.

Linux file names are bytes.  Python hands undecodable bytes to us as lone surrogates, which
cannot be written to a UTF-8 report, JSON or SQLite.  So every name we write goes through
`to_text`: each byte that is not part of valid UTF-8 becomes `\\xNN` (two hex digits), and a
backslash becomes `\\\\`, so the form can be turned back into the exact name (`from_text`).
A Latin-1 `café.jpg` from an old share is listed as `caf\\xe9.jpg`.  Names that are valid UTF-8
and hold no backslash are unchanged.
"""
from __future__ import annotations

import os
import re
import shlex

_ESCAPE = re.compile(rb"\\(\\|x[0-9a-f]{2})")


def to_text(name: str) -> str:
    """The printable, lossless form of a file name or relative path (see the module docstring)."""
    raw = os.fsencode(name).replace(b"\\", b"\\\\")
    return raw.decode("utf-8", errors="backslashreplace")


def from_text(text: str) -> str:
    """The file name `to_text` was given (as Python holds it: undecodable bytes as surrogates)."""
    raw = text.encode("utf-8")
    raw = _ESCAPE.sub(lambda m: b"\\" if m.group(1) == b"\\" else bytes([int(m.group(1)[1:], 16)]), raw)
    return os.fsdecode(raw)


def is_clean(name: str) -> bool:
    """True when `name` is valid UTF-8 (Python holds no surrogates for it)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_NAMES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


# Characters that reorder the text around them: in a file name, U+202E shows "gpj.exe" as
# "exe.jpg".  Person names cannot hold them (gallery.name_problem refuses format characters).
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def direction_controls_spelled_out(text: str) -> str:
    """`text` with its direction controls written out as \\uXXXX, so it displays in the order it is stored."""
    return _BIDI_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def one_line(message: str) -> str:
    """A message as one terminal line: control characters (a newline in a file name) shown as
    escapes, so a name cannot split an error in two or move the cursor, and direction controls
    spelled out, so a name cannot reverse the line.  For display only."""
    message = direction_controls_spelled_out(message)
    return _CONTROL.sub(lambda m: _CONTROL_NAMES.get(m.group(), f"\\x{ord(m.group()):02x}"), message)


def shell_word(word: str) -> str:
    """`word` quoted for a POSIX shell, as shlex.quote does; a name that is not valid UTF-8 (a web
    page or a terminal shows it only as text) in bash's $'...' form, whose \\xHH escapes give the
    shell the original bytes, so the command still works when pasted."""
    if is_clean(word):
        return shlex.quote(word)
    escaped = "".join(chr(b) if 32 <= b < 127 and b not in b"'\\" else f"\\x{b:02x}" for b in os.fsencode(word))
    return f"$'{escaped}'"
