"""facebatch.state's messages, without photos or TensorFlow."""
import sqlite3

import pytest

from facebatch.errors import OutputError
from facebatch.state import RunState


def test_a_manifest_that_is_there_but_cannot_be_opened_says_so(tmp_path, monkeypatch):
    # (as root, chmod 000 does not stop sqlite; what it raises for other users is stood in for)
    manifest = tmp_path / "report.state.sqlite"
    manifest.write_bytes(b"")

    def refused(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite3, "connect", refused)
    with pytest.raises(OutputError, match=r"report.state.sqlite: cannot open the manifest \(.*\); make it readable and "
                                          r"writable \(chmod 600\), or choose another --report"):
        RunState(manifest)
    manifest.unlink()
    with pytest.raises(OutputError, match=r"cannot create the manifest .*check the report folder is writable"):
        RunState(manifest)


def test_a_folder_where_the_manifest_goes_is_named_as_one(tmp_path):
    (tmp_path / "report.state.sqlite").mkdir()
    with pytest.raises(OutputError, match=r"cannot open the manifest .*; a folder stands there: move it aside, or "
                                          r"choose another --report"):
        RunState(tmp_path / "report.state.sqlite")
