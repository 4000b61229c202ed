import math
import os
from dataclasses import replace
import posixpath
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes

import pytest
from PIL import Image

from facebatch import review
from facebatch.review import FaceThumb, Person, Problem, ReviewData, UnknownGroup


def face(image="a/b.jpg", index=0, distance=0.5, box=(10, 20, 60, 80)):
    return FaceThumb(image, index, box, review.thumb_path(image, box), distance)


def links(html: str) -> list[str]:
    return [unquote(u.replace("&amp;", "&")) for u in re.findall(r'(?:src|href)="([^"]*)"', html)]


def test_user_strings_are_escaped_and_paths_percent_encoded():
    name = '<script>alert("x")</script>&'
    image = 'odd "dir"/<b>#1 100%.jpg'
    data = ReviewData(people=(Person(name, (face(image),)),), errors=(Problem("<img src=x>.jpg", "bad <data>"),),
                      groups=(UnknownGroup("g<1>", (face(image, distance=math.inf),)),))
    pages = review.render(data)
    index = pages[review.INDEX]
    assert "<script>alert" not in index and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in index
    assert "<img src=x>" not in index and "&lt;img src=x&gt;.jpg" in index and "bad &lt;data&gt;" in index
    assert "<b>" not in index and 'odd &quot;dir&quot;/&lt;b&gt;#1 100%.jpg' in index
    assert "g&lt;1&gt;" in index and "g<1>" not in index
    person = pages[review.person_page(name)]
    assert "&lt;script&gt;" in person and "<script>alert" not in person
    # the annotated copy's link is percent-encoded: '#' and '%' would otherwise break the URL
    data = ReviewData(people=(Person("Ada", (FaceThumb(image, 0, (0, 0, 9, 9), "review/thumbs/x y#.jpg", 0.3,
                                                       annotated="out dir/" + image),)),))
    index = review.render(data)[review.INDEX]
    assert 'src="review/thumbs/x%20y%23.jpg"' in index
    assert 'href="out%20dir/odd%20%22dir%22/%3Cb%3E%231%20100%25.jpg"' in index
    # a file name with a backslash or a byte that is not UTF-8 is held as pathtext ("\\", "\xe9"):
    # its URL encodes the real bytes, so the link reaches the file
    data = ReviewData(people=(Person("Ada", (FaceThumb("x", 0, (0, 0, 9, 9), "review/thumbs/t.jpg", 0.3,
                                                       annotated="lat\\xe9n/back\\\\slash.jpg"),)),))
    index = review.render(data)[review.INDEX]
    assert 'href="lat%E9n/back%5Cslash.jpg"' in index
    assert unquote_to_bytes("lat%E9n/back%5Cslash.jpg") == b"lat\xe9n/back\\slash.jpg"  # the file's name


def test_direction_controls_in_a_path_are_shown_and_long_names_wrap():
    # U+202E in a file name would show "gpj.exe" as "exe.jpg"; the page spells it out
    data = ReviewData(people=(Person("Ada", (face("x/\u202egpj.exe"),)),))
    index = review.render(data)[review.INDEX]
    assert "\u202e" not in index and "x/\\u202egpj.exe" in index
    assert "overflow-wrap:anywhere" in index and "unicode-bidi:isolate" in index


def test_pages_are_self_contained_and_every_link_resolves():
    people = tuple(Person(f"P{i}", tuple(face(f"p{i}/{k}.jpg", 0, 0.4) for k in range(i * 70))) for i in range(4))
    groups = tuple(UnknownGroup(f"g{i:04d}", (face(f"u/{i}.jpg", 1, math.inf),) * (1 + i % 3)) for i in range(230))
    data = ReviewData(people=people, groups=groups, errors=tuple(Problem(f"e{i}.jpg", "unreadable") for i in range(5)))
    pages = review.render(data, per_page=100)
    thumbs = review.thumbnails_of(data)
    assert thumbs == {f.thumb for p in people for f in p.faces} | {f.thumb for g in groups for f in g.faces}
    for path, html in pages.items():
        assert "http:" not in html and "https:" not in html and "//" not in "".join(links(html))
        assert "<link" not in html and "src=\"/" not in html
        assert html.count("<img ") <= (100 if path != review.INDEX else 300)
        for target in links(html):
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            assert resolved in pages or resolved in thumbs, (path, target)
    assert {review.listing_page("groups", k) for k in (1, 2, 3)} <= set(pages)
    assert review.listing_page("people", 1) not in pages  # four people fit on the index


def test_a_person_with_many_faces_is_paged():
    person = Person("Ada Lovelace", tuple(face(f"x/{k}.jpg", 0, 0.3) for k in range(250)))
    pages = review.render(ReviewData(people=(person,)), per_page=100, preview=8)
    index = pages[review.INDEX]
    assert index.count("<img ") == 8 and "250 faces" in index
    paths = [review.person_page("Ada Lovelace", k) for k in (1, 2, 3)]
    assert all(p in pages for p in paths) and review.person_page("Ada Lovelace", 4) not in pages
    assert [pages[p].count("<img ") for p in paths] == [100, 100, 50]
    assert "page 2 of 3" in pages[paths[1]]
    assert 'rel="prev" href="person-ada-lovelace-' in pages[paths[1]] and 'rel="next"' in pages[paths[1]]
    assert 'rel="next"' not in pages[paths[2]]
    assert re.fullmatch(r"review/person-ada-lovelace-[0-9a-f]{8}-1\.html", paths[0])


def test_group_commands_are_shown_and_shell_quoted():
    data = ReviewData(groups=(UnknownGroup("g0007", (face(distance=math.inf),) * 3),),
                      command_options=("--db", "My Photos/db.json"))
    pages = review.render(data)
    expected_name = "facebatch people name g0007 NAME --db &#x27;My Photos/db.json&#x27;"
    expected_ignore = "facebatch people ignore g0007</code>"  # it takes no --db
    for html in (pages[review.INDEX], pages[review.group_page("g0007")]):
        assert expected_name in html and expected_ignore in html
    assert "3 faces in 1 photo" in pages[review.INDEX]
    assert review.name_command("g0001") == "facebatch people name g0001 NAME"


def test_groups_are_listed_largest_first():
    groups = (UnknownGroup("g0001", (face(),)), UnknownGroup("g0002", (face(),) * 3), UnknownGroup("g0003", (face(),) * 3))
    index = review.render(ReviewData(groups=groups))[review.INDEX]
    assert index.index(">g0002<") < index.index(">g0003<") < index.index(">g0001<")


def test_uncertain_band_is_just_under_the_threshold():
    faces = tuple(face(f"{d}.jpg", 0, d) for d in (0.3, 0.79, 0.81, 0.85, 0.90))
    data = ReviewData(people=(Person("Ada", faces),), threshold=0.9, uncertain_band=0.1)
    assert [f.distance for _, f in review.uncertain_faces(data)] == [0.90, 0.85, 0.81]
    assert "Ada? 0.85" in review.render(data)[review.INDEX]


def test_thumb_box_is_square_inside_the_image():
    assert review.thumb_box((100, 100, 140, 160), (1000, 800)) == (75, 85, 165, 175)
    assert review.thumb_box((0, 0, 40, 60), (1000, 800)) == (0, 0, 90, 90)  # moved, not cut, at the edge
    assert review.thumb_box((950, 750, 1000, 800), (1000, 800)) == (925, 725, 1000, 800)
    assert review.thumb_box((0, 0, 300, 300), (200, 100)) == (100, 0, 200, 100)  # larger than the image
    a = review.thumb_path("a.jpg", (1, 2, 3, 4), "sha")
    assert a == review.thumb_path("a.jpg", (1, 2, 3, 4), "sha") != review.thumb_path("a.jpg", (1, 2, 3, 4), "other")
    assert re.fullmatch(r"review/thumbs/[0-9a-f]{2}/[0-9a-f]{20}\.jpg", a)


def test_write_thumbnail_is_atomic_and_reused(tmp_path):
    from facebatch.thumbnails import prune_thumbnails, write_thumbnail

    image = Image.new("RGB", (400, 300), (200, 100, 50))
    relative = review.thumb_path("x.jpg", (100, 100, 200, 220))
    assert write_thumbnail(image, (100, 100, 200, 220), tmp_path, relative)
    assert not write_thumbnail(image, (100, 100, 200, 220), tmp_path, relative)
    with Image.open(tmp_path / relative) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 128
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".facebatch-tmp")]
    assert prune_thumbnails(tmp_path, {relative}) == 0 and prune_thumbnails(tmp_path, set()) == 1


# --- a real browser ----------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=5000"]


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:  # a real browser checks the page; .ci/run installs it
        pytest.fail("chromium is not installed: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                               *args, page.as_uri()], capture_output=True, text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def write_site(out: Path, data: ReviewData) -> Path:
    for relative, html in review.render(data, per_page=60).items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text(html, encoding="utf-8")
    return out / review.INDEX


@pytest.fixture(scope="module")
def real_site(engine, insightface_dir, celebrity, tmp_path_factory):
    """A review site for real faces: t1.jpg's six faces and two celebrity photos, thumbnails cropped from them."""
    from facebatch.images import load_image
    from facebatch.thumbnails import write_thumbnail

    out = tmp_path_factory.mktemp("out")
    photos = [insightface_dir / "t1.jpg"] + sorted((celebrity / "val" / "madonna").glob("*.jpg"))[:2]
    thumbs = []
    for photo in photos:
        image = load_image(photo)
        for index, f in enumerate(engine.detector.detect(image)):
            box = (f.left, f.top, f.right, f.bottom)
            relative = review.thumb_path(photo.name, box)
            write_thumbnail(image, box, out, relative)
            thumbs.append(FaceThumb(photo.name, index, box, relative, 0.5))
    assert len(thumbs) >= 8
    thumbs[1] = replace(thumbs[1], distance=0.88)  # two uncertain matches, shown once more in their section
    thumbs[6] = replace(thumbs[6], distance=0.85)
    data = ReviewData(
        people=(Person("Madonna", tuple(thumbs[6:])), Person("Zoë <O'Brien> & co", (thumbs[0], thumbs[1]))),
        groups=tuple(UnknownGroup(gid, tuple(replace(t, distance=1.1 + 0.03 * i) for i, t in enumerate(faces)))
                     for gid, faces in (("g0001", thumbs[2:4]), ("g0002", thumbs[4:5]), ("g0003", thumbs[5:6]))),
        errors=(Problem("broken/<odd>.jpg", "cannot read the image: truncated file"),),
        ungrouped_unknown=1)
    return out, data, thumbs


def test_review_page_loads_in_chromium_with_its_thumbnails(real_site, tmp_path):
    out, data, thumbs = real_site
    index = write_site(out, data)
    dom = chromium(index, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_messages(dom.stderr) == []
    shown = dom.stdout.count("<img ")
    assert shown == len(thumbs) + 2  # each person's and group's preview, and the uncertain Madonna faces
    assert f'data-thumbs="{shown}"' in dom.stdout
    assert f'data-thumbs-loaded="{shown}"' in dom.stdout and 'data-thumbs-broken="0"' in dom.stdout
    assert "facebatch people name g0001 NAME" in dom.stdout and "Zoë &lt;O'Brien&gt; &amp; co" in dom.stdout
    for page in ("person-", "group-"):
        sub = next((out / review.FOLDER).glob(f"{page}*-1.html"))
        sub_dom = chromium(sub, "--dump-dom")
        assert console_messages(sub_dom.stderr) == [] and 'data-thumbs-broken="0"' in sub_dom.stdout

    shot = tmp_path / "review.png"
    result = chromium(index, f"--screenshot={shot}", "--window-size=1200,900", "--run-all-compositor-stages-before-draw")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1200, 900)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 1000  # photos, not a blank page
    if os.environ.get("FACEBATCH_REVIEW_SCREENSHOT"):  # opt-in: how docs/review.png was made (256 colours)
        with Image.open(shot) as image:
            image.convert("RGB").quantize(256).save(os.environ["FACEBATCH_REVIEW_SCREENSHOT"], optimize=True)


def test_a_missing_thumbnail_is_caught_by_the_page(real_site, tmp_path):
    # the check above would see a broken thumbnail: delete one and the page reports it
    out, data, thumbs = real_site
    site = tmp_path / "copy"
    shutil.copytree(out, site)
    index = write_site(site, data)
    (site / thumbs[2].thumb).unlink()
    dom = chromium(index, "--dump-dom")
    assert 'data-thumbs-broken="1"' in dom.stdout and "1 thumbnails are missing" in dom.stdout


def test_the_ignore_command_shown_takes_only_the_options_people_ignore_has():
    options = ("--db", "my db.json", "--out", "out", "--report", "r.csv")
    assert review.name_command("g1", options) == "facebatch people name g1 NAME --db 'my db.json' --out out --report r.csv"
    assert review.ignore_command("g1", options) == "facebatch people ignore g1 --out out --report r.csv"


def test_the_longest_name_and_path_do_not_widen_the_page_in_chromium(tmp_path):
    # a 200-character name (the longest allowed) with no space, and a long file name
    data = ReviewData(people=(Person("N" * 200, (face("p/" + "x" * 150 + ".jpg"),)),),
                      groups=(UnknownGroup("g0001", (face("q/" + "y" * 150 + ".jpg", distance=math.inf),)),))
    html = review.render(data)[review.INDEX]
    measure = ('<script>document.body.dataset.widths = document.documentElement.scrollWidth + "/" + '
               'window.innerWidth</script></body>')
    (tmp_path / review.INDEX).write_text(html.replace("</body>", measure), encoding="utf-8")
    dom = chromium(tmp_path / review.INDEX, "--dump-dom", "--window-size=1000,800")
    page, window = map(int, re.search(r'data-widths="(\d+)/(\d+)"', dom.stdout).groups())
    assert page <= window, (page, window)


def test_terminal_lines_spell_out_direction_controls_too():
    from facebatch.pathtext import one_line

    # a warning naming "\u202egpj.exe" must not display as "exe.jpg", nor a newline split it
    assert one_line("x/\u202egpj.exe: skipped\nnext") == "x/\\u202egpj.exe: skipped\\nnext"
