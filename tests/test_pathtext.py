"""facebatch.pathtext: the printable, lossless form of file names.  Pure strings, no files."""
import os

from facebatch.pathtext import from_text, is_clean, to_text


def test_a_literal_backslash_round_trips_and_is_not_taken_for_an_escape():
    # a valid-UTF-8 name holding the ASCII text  a\xe9\b.jpg  (backslashes and all)
    literal = "a\\xe9\\b.jpg"
    latin1 = os.fsdecode(b"a\xe9\\b.jpg")  # a Latin-1 e-acute byte, then a backslash
    assert to_text(literal) == "a\\\\xe9\\\\b.jpg"
    assert from_text(to_text(literal)) == literal
    # the two names are different files, so their printable forms must differ too
    assert to_text(latin1) == "a\\xe9\\\\b.jpg" and from_text(to_text(latin1)) == latin1
    assert to_text(literal) != to_text(latin1)


def test_clean_names_are_unchanged_and_undecodable_bytes_become_hex():
    assert to_text("café/ß.jpg") == "café/ß.jpg" and is_clean("café/ß.jpg")
    name = os.fsdecode(b"caf\xe9.jpg")
    assert not is_clean(name) and to_text(name) == "caf\\xe9.jpg" and from_text("caf\\xe9.jpg") == name


def test_a_command_shown_for_a_folder_that_is_not_utf8_gives_the_shell_its_bytes():
    import os
    import subprocess

    from facebatch import review

    folder = os.fsdecode(b"/tmp/caf\xe9 it's \\ here")
    command = review.name_command("g0001", ("--out", folder))
    assert command.isascii() and command.startswith("facebatch people name g0001 NAME --out $'")
    # bash reads the pasted word back as the folder's own bytes
    word = command.split(" --out ", 1)[1]
    printed = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True).stdout
    assert printed == os.fsencode(folder)
    assert review.name_command("g1", ("--out", "/a b")) == "facebatch people name g1 NAME --out '/a b'"
