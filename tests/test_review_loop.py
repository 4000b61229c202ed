"""The review loop end to end (issue 11), on real photos with the real weights:

annotate groups the unknown faces; `facebatch unknowns --json` lists them; `people name` enrolls
a group and the next annotate names those faces by relabelling, without detecting again;
`people ignore` hides a group; review.html loads in headless Chromium with its thumbnails; and
two faces of one photo never get the same name.
"""
from __future__ import annotations

import html
import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import report_rows, run
from test_review import chromium, console_messages


@pytest.fixture(scope="module")
def loop(tmp_path_factory, celebrity, insightface_dir, models_root):
    """Everyone but madonna enrolled; madonna's photos, the group photo and two known faces annotated."""
    root = tmp_path_factory.mktemp("loop")
    people = root / "People"
    for person in sorted((celebrity / "train").iterdir()):
        if person.name != "madonna":
            shutil.copytree(person, people / person.name)
    db = root / "db.json"
    assert run("enroll", people, "--db", db, "--model-dir", models_root, "-q").exit_code == 0
    images = root / "images"
    shutil.copytree(celebrity / "val" / "madonna", images / "madonna")
    shutil.copy(insightface_dir / "t1.jpg", images / "group.jpg")
    for photo in sorted((celebrity / "val" / "elton_john").glob("*.jpg"))[:2]:
        shutil.copy(photo, images / photo.name)
    out = root / "out"
    first = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q")
    assert first.exit_code == 0, first.output
    return root, images, db, out


def unknown_groups(out: Path, *extra) -> list[dict]:
    result = run("unknowns", "--out", out, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["clusters"]


def test_unknown_faces_are_grouped_without_mixing_people(loop):
    _, _, _, out = loop
    groups = unknown_groups(out)
    assert groups, "no groups"
    for group in groups:
        assert set(group) >= {"id", "faces"}
        for face in group["faces"]:
            assert set(face) >= {"image", "face", "left", "top", "right", "bottom", "distance"}
        sources = {"madonna" if f["image"].startswith("madonna/") else f["image"] for f in group["faces"]}
        assert len(sources) == 1 or sources == {"group.jpg"} and len(group["faces"]) == 1, group
    sizes = [len(g["faces"]) for g in groups]
    assert sizes == sorted(sizes, reverse=True)
    madonna = max((g for g in groups if g["faces"][0]["image"].startswith("madonna/")), key=lambda g: len(g["faces"]))
    assert len(madonna["faces"]) >= 2
    assert all(len(g["faces"]) >= 2 for g in unknown_groups(out, "--min-faces", "2"))


def test_review_page_loads_in_chromium_with_the_runs_thumbnails(loop, tmp_path):
    _, _, _, out = loop
    index = out / "review.html"
    assert index.is_file()
    dom = chromium(index, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    assert 'data-thumbs-broken="0"' in dom.stdout and dom.stdout.count("<img ") >= 6
    # absolute paths, to paste in any folder; no --db: people name takes the run's from its manifest
    assert f"facebatch people name g0001 NAME --out {out.absolute()}" in dom.stdout
    shot = tmp_path / "shot.png"
    done = chromium(index, f"--screenshot={shot}", "--window-size=1200,900")
    assert done.returncode == 0 and shot.is_file()
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 1000  # thumbnails, not a blank page


def test_naming_a_group_names_its_faces_on_the_next_run_without_detecting(loop, models_root):
    root, images, db, out = loop
    madonna = max((g for g in unknown_groups(out) if g["faces"][0]["image"].startswith("madonna/")),
                  key=lambda g: len(g["faces"]))
    named = run("people", "name", madonna["id"], "Madonna", "--db", db, "--out", out)
    assert named.exit_code == 0, named.output
    assert f"named {madonna['id']} as Madonna: {len(madonna['faces'])} faces enrolled" in named.output
    entries = json.loads(db.read_text())["people"]["Madonna"]
    assert {e["source"] for e in entries} == {f"{f['image']}#{f['face']}" for f in madonna["faces"]}
    assert all(len(e["box"]) == 4 for e in entries)
    assert madonna["id"] not in {g["id"] for g in unknown_groups(out)}

    again = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q")
    assert again.exit_code == 0 and "(0 processed, " in again.output and " relabelled" in again.output, again.output
    by_face = {(r["image"], r["face"]): r["name"] for r in report_rows(out / "report.csv")}
    assert all(by_face[(f["image"], str(f["face"]))] == "Madonna" for f in madonna["faces"])
    assert "Madonna" not in {name for (image, _), name in by_face.items() if not image.startswith("madonna/")}

    missing = run("people", "name", "g9999", "Nobody", "--db", db, "--out", out)
    assert missing.exit_code == 1
    assert "there is no group 'g9999' of unknown faces; see: facebatch unknowns" in missing.output
    twice = run("people", "name", madonna["id"], "Madonna", "--db", db, "--out", out)
    assert twice.exit_code == 1
    assert f"group '{madonna['id']}' is gone: it was named, or its faces are no longer unknown" in twice.output


def test_unknowns_prints_one_line_a_group_whatever_the_file_names(tmp_path):
    from facebatch import cluster, groups as groups_mod
    from facebatch.state import RunState

    out = tmp_path / "out"
    out.mkdir()
    with RunState(out / "report.state.sqlite") as state:
        group = cluster.Group("g0001", (("new\nline.jpg", 0),), np.zeros((1, 128), np.float32))
        groups_mod.save(state, groups_mod.Groups(cluster.ClusterState((group,), 2)))
    listed = run("unknowns", "--out", out)
    assert listed.exit_code == 0, listed.output
    assert len(listed.output.splitlines()) == 1 and listed.output.endswith("\tnew\\nline.jpg face 0\n"), listed.output


def test_an_ignored_group_drops_off_the_list(loop):
    _, _, _, out = loop
    groups = unknown_groups(out)
    victim = groups[-1]["id"]
    # the command exactly as the review page shows it
    pages = "".join(page.read_text(encoding="utf-8") for page in [out / "review.html", *(out / "review").glob("*.html")])
    command = html.unescape(re.search(rf"facebatch people ignore {victim}[^<]*", pages).group())
    ignored = run(*shlex.split(command)[1:])
    assert ignored.exit_code == 0, (command, ignored.output)
    assert victim not in {g["id"] for g in unknown_groups(out)}


def test_two_faces_of_one_photo_never_share_a_name(tmp_path, celebrity, models_root, loop):
    _, _, db, _ = loop
    photo = sorted((celebrity / "val" / "elton_john").glob("*.jpg"))[0]
    with Image.open(photo) as image:
        image = image.convert("RGB")
        twice = Image.new("RGB", (image.width * 2 + 40, image.height), (255, 255, 255))
        twice.paste(image, (0, 0))
        twice.paste(image, (image.width + 40, 0))
    images = tmp_path / "images"
    images.mkdir()
    twice.save(images / "twice.jpg", quality=95)
    out = tmp_path / "out"
    assert run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q").exit_code == 0
    names = [r["name"] for r in report_rows(out / "report.csv")]
    assert len(names) == 2 and names.count("elton_john") == 1, names


def test_annotate_force_keeps_the_group_ids_and_what_was_ignored(loop, models_root):
    _, images, db, out = loop
    before = unknown_groups(out)
    victim = before[0]["id"]
    assert run("people", "ignore", victim, "--out", out).exit_code == 0
    again = run("annotate", images, "--db", db, "--out", out, "--model-dir", models_root, "-q", "--force")
    assert again.exit_code == 0, again.output
    after = unknown_groups(out)
    assert victim not in {g["id"] for g in after}  # still ignored, not back under a new id
    assert [(g["id"], len(g["faces"])) for g in after] == [(g["id"], len(g["faces"])) for g in before[1:]]


def test_a_change_of_detection_options_keeps_the_group_ids_and_what_was_ignored(loop, models_root, tmp_path):
    # another --min-face-size finds the faces again, their boxes moved by up to a sixth of their
    # width: the groups follow their faces instead of starting over under new ids (and losing the
    # ignores).  Faces found no more, or named now, leave their group, as they should.
    _, images, db, out = loop
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = unknown_groups(copy)
    victim = before[0]
    assert run("people", "ignore", victim["id"], "--out", copy).exit_code == 0
    again = run("annotate", images, "--db", db, "--out", copy, "--model-dir", models_root, "-q",
                "--min-face-size", "24")
    assert again.exit_code == 0, again.output

    def box(face):
        return face["image"], (face["left"], face["top"], face["right"], face["bottom"])

    def same_face(a, b) -> bool:  # the same photo, and boxes overlapping by half or more
        (image_a, (l1, t1, r1, b1)), (image_b, (l2, t2, r2, b2)) = a, b
        inter = max(0, min(r1, r2) - max(l1, l2)) * max(0, min(b1, b2) - max(t1, t2))
        union = (r1 - l1) * (b1 - t1) + (r2 - l2) * (b2 - t2) - inter
        return image_a == image_b and inter >= union / 2

    was = {box(f): g["id"] for g in before for f in g["faces"]}
    kept = 0
    for group in unknown_groups(copy):
        for face in group["faces"]:
            earlier = [i for b, i in was.items() if same_face(b, box(face))]
            assert earlier in ([], [group["id"]]), (face, group["id"], earlier)  # the id it had, if any
            assert victim["id"] not in earlier  # still ignored, not back under a new id
            kept += bool(earlier)
    assert kept >= len(was) // 2, (kept, len(was))


def test_a_rebuilt_manifest_never_gives_an_id_the_user_has_seen_to_another_face(loop, models_root, tmp_path):
    _, images, db, out = loop
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    seen = {g["id"] for g in unknown_groups(copy)}
    # the groups with the highest ids are ignored: their pages go with the next run, so the pages
    # alone no longer show that those ids were given out
    for group in sorted(seen, key=lambda i: int(i[1:]))[-2:]:
        assert run("people", "ignore", group, "--out", copy).exit_code == 0
    assert run("annotate", images, "--db", db, "--out", copy, "--model-dir", models_root, "-q").exit_code == 0
    (copy / "report.state.sqlite").write_bytes(b"garbage, as a crash or a full disk leaves it")
    rebuilt = run("annotate", images, "--db", db, "--out", copy, "--model-dir", models_root, "-q")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "damaged" in rebuilt.output
    fresh = {g["id"] for g in unknown_groups(copy)}
    assert fresh and not fresh & seen, (seen, fresh)
    assert min(int(i[1:]) for i in fresh) > max(int(i[1:]) for i in seen)


def copy_of_the_run(loop, tmp_path, models_root) -> tuple[Path, Path]:
    """A copy of the loop's database and output folder, the copy's run reading the copied database
    (naming into a database the run did not read is refused)."""
    _, images, db, out = loop
    db_copy, out_copy = tmp_path / "db.json", tmp_path / "out"
    shutil.copy(db, db_copy)
    shutil.copytree(out, out_copy)
    assert run("annotate", images, "--db", db_copy, "--out", out_copy, "--model-dir", models_root, "-q").exit_code == 0
    return db_copy, out_copy


def test_naming_into_another_database_than_the_runs_is_refused(loop, tmp_path):
    _, _, db, out = loop
    other = tmp_path / "other.json"
    shutil.copy(db, other)
    group = unknown_groups(out)[-1]["id"]
    refused = run("people", "name", group, "Someone", "--db", other, "--out", out)
    assert refused.exit_code == 1
    assert f"the annotate run there used the database {db.resolve()}, not {other}; leave out --db" in refused.output
    assert "Someone" not in json.loads(other.read_text())["people"]
    assert group in {g["id"] for g in unknown_groups(out)}


def test_naming_when_the_runs_database_was_moved_says_to_annotate_with_it(loop, tmp_path, models_root):
    db_copy, out_copy = copy_of_the_run(loop, tmp_path, models_root)
    db_copy.rename(tmp_path / "moved.json")
    group = unknown_groups(out_copy)[0]["id"]
    refused = run("people", "name", group, "Someone", "--out", out_copy)
    assert refused.exit_code == 1
    assert (f"the annotate run there used the database {db_copy}, which is not there any more; run facebatch "
            "annotate with the database's --db") in refused.output


def test_naming_a_group_with_other_capitals_than_an_enrolled_person_says_so(loop, tmp_path, models_root):
    db_copy, out_copy = copy_of_the_run(loop, tmp_path, models_root)
    group = unknown_groups(out_copy)[-1]["id"]
    named = run("people", "name", group, "ELTON_JOHN", "--db", db_copy, "--out", out_copy)
    assert named.exit_code == 0, named.output
    assert (f"note: elton_john is enrolled too, spelled with other capitals; if it is the same person, run "
            f"facebatch people remove ELTON_JOHN --db {db_copy}") in named.output


def test_a_group_named_as_an_enrolled_person_is_named_so_on_the_next_run(loop, models_root, tmp_path):
    """The group is unknown because it is far from the person's enrolled photos; averaged into
    them it would stay far.  It is matched by a centroid of its own."""
    images = loop[1]
    db_copy, out_copy = copy_of_the_run(loop, tmp_path, models_root)
    group = next(g for g in unknown_groups(out_copy) if g["faces"][0]["image"] == "group.jpg")
    # without --db: the database the run read
    assert run("people", "name", group["id"], "elton_john", "--out", out_copy).exit_code == 0
    again = run("annotate", images, "--db", db_copy, "--out", out_copy, "--model-dir", models_root, "-q")
    assert again.exit_code == 0, again.output
    by_face = {(r["image"], r["face"]): r for r in report_rows(out_copy / "report.csv")}
    for face in group["faces"]:
        row = by_face[(face["image"], str(face["face"]))]
        assert row["name"] == "elton_john" and float(row["distance"]) < 0.5, row
    assert all(r["name"] == "elton_john" for (image, face), r in by_face.items()
               if image.startswith("http") and face == "0"), "the enrolled photos' own centroid still names his photos"
    assert json.loads(db_copy.read_text())["people"]["elton_john"][-1]["group"]


def test_the_group_commands_with_another_model_than_the_runs_say_so(loop):
    _, _, _, out = loop
    for command in (["unknowns"], ["people", "ignore", "g0001"], ["people", "name", "g0001", "Someone"]):
        result = run(*command, "--out", out, "--model", "facenet-casia512")
        assert result.exit_code == 1
        assert ("the annotate run there used the model facenet, not facenet-casia512; leave out --model"
                in result.output), result.output
    assert unknown_groups(out), "the groups are still there for the model that made them"


def test_a_run_stopped_after_a_photo_changed_leaves_no_group_holding_its_old_face(loop, tmp_path, models_root,
                                                                                    insightface_dir):
    # a photo in a group is replaced by a photo of another unknown person, and the run is stopped
    # (a cron timeout) after detecting it: the group must not keep the old face under the new
    # photo's key, or `people name` would enroll one person's face as another's
    from facebatch import cluster, groups as groups_mod
    from facebatch.state import RunState
    from test_incremental import annotate_signalled_in

    db_copy, out_copy = copy_of_the_run(loop, tmp_path, models_root)
    photos = tmp_path / "images"
    shutil.copytree(loop[1], photos)
    changed = unknown_groups(out_copy)[0]["faces"][0]["image"]
    shutil.copy(insightface_dir / "Tom_Hanks_54745.png", photos / changed)
    stopped = annotate_signalled_in("annotation:annotate_chunk", photos, db_copy, out_copy, models_root, "-j", "1")
    assert stopped.returncode == 143, stopped.stderr
    assert run("annotate", photos, "--db", db_copy, "--out", out_copy, "--model-dir", models_root,
               "-q").exit_code == 0
    with RunState(out_copy / "report.state.sqlite") as state:
        for stored in groups_mod.load(state, 128).clusters.groups:
            for (image, index), embedding in zip(stored.keys, stored.embeddings):
                now = state.get(image).result
                assert index < len(now.faces), (stored.id, image, index)
                assert np.linalg.norm(now.embeddings[index] - embedding) <= cluster.FOLLOW_DISTANCE, (stored.id, image)
