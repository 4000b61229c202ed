"""The review pages: pure rendering to strings, no I/O (the caller writes the files).

`render(data)` returns {relative path: HTML} for a static, self-contained site in the output
folder, which works opened from disk: no server, no network, no external scripts, fonts or
styles (the CSS and a few lines of JS are inline).  Pages:

    review.html                      the index: summary, and the first page of each section
    review/people-<k>.html           all people, paged (only when there are more than fit the index)
    review/person-<slug>-<k>.html    one person's faces, `per_page` thumbnails a page
    review/groups-<k>.html           all unknown groups, paged (likewise)
    review/group-<slug>-<k>.html     one group's faces
    review/uncertain-<k>.html        named faces just under the threshold, to check by eye
    review/errors-<k>.html           the images that failed

A listing page holds per_page // preview people or groups (each with at most `preview`
thumbnails), or per_page uncertain faces or errors, so no page but the index holds more than
`per_page` thumbnails, and the index (three sections of thumbnails) at most 3 x per_page, however
many photos there are: 100,000 faces (200 people, 5,000 groups) render to 6,213 pages in about 3 s.  Thumbnails are small JPEG crops written
beside the pages under review/thumbs/ (`thumb_path` names them, `thumb_box` gives the crop;
facebatch/thumbnails.py writes them).  Every user-controlled string (names, paths, errors) is
HTML-escaped, and paths in URLs are percent-encoded.
"""
from __future__ import annotations

import hashlib
import math
import os
import posixpath
import re
import unicodedata
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from .pathtext import direction_controls_spelled_out, from_text, shell_word

INDEX = "review.html"
FOLDER = "review"
THUMBS = "review/thumbs"
PER_PAGE = 120  # thumbnails on a page
PREVIEW = 6  # thumbnails beside each person or group in a listing
UNCERTAIN_BAND = 0.10  # a named face within this much under the threshold is "uncertain"

Box = tuple[int, int, int, int]  # left, top, right, bottom in the upright full-resolution photo


@dataclass(frozen=True)
class FaceThumb:
    image: str  # photo path relative to the input folder, as in the report
    face: int  # face index in that photo, as in the report
    box: Box
    thumb: str  # thumbnail path relative to the output folder (thumb_path), POSIX separators
    distance: float = math.inf  # to the named person, or to the nearest person for unknown faces
    annotated: str = ""  # the annotated copy, relative to the output folder, or ""


@dataclass(frozen=True)
class Person:
    name: str
    faces: tuple[FaceThumb, ...]  # every face named this person; shown in this order


@dataclass(frozen=True)
class UnknownGroup:
    id: str
    faces: tuple[FaceThumb, ...]  # the representative first


@dataclass(frozen=True)
class Problem:
    image: str
    error: str


@dataclass(frozen=True)
class ReviewData:
    people: tuple[Person, ...] = ()
    groups: tuple[UnknownGroup, ...] = ()
    errors: tuple[Problem, ...] = ()
    threshold: float = 0.90
    uncertain_band: float = UNCERTAIN_BAND
    ungrouped_unknown: int = 0  # unknown faces in no group (too small or unsure to start one)
    command_options: tuple[str, ...] = ()  # added to the commands shown, e.g. ("--db", "x.json")
    title: str = "facebatch review"


# --- thumbnails (pure) -----------------------------------------------------------------------

def thumb_box(box: Box, image_size: tuple[int, int], margin: float = 0.25) -> Box:
    """A square crop around the face, `margin` of its size larger on each side, inside the image.

    The square is moved (not shrunk) to fit the image; only a face larger than the image's
    shorter side gives a non-square crop.
    """
    left, top, right, bottom = box
    width, height = image_size
    side = max(right - left, bottom - top) * (1.0 + 2.0 * margin)
    side = max(1, min(int(round(side)), width, height))
    cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
    x0 = min(max(0, int(round(cx - side / 2.0))), width - side)
    y0 = min(max(0, int(round(cy - side / 2.0))), height - side)
    return x0, y0, x0 + side, y0 + side


def thumb_path(image: str, box: Box, photo_sha256: str = "") -> str:
    """Where the thumbnail of this face goes, relative to the output folder.

    Named by a hash of the photo path, its content hash (when known) and the box, so a changed
    photo or box gets a new file and an unchanged one is reused; spread over 256 subfolders so
    that no folder holds 100,000 files.
    """
    digest = hashlib.sha256(f"{image}\0{photo_sha256}\0{','.join(map(str, box))}".encode()).hexdigest()
    return f"{THUMBS}/{digest[:2]}/{digest[2:22]}.jpg"


def slug(text: str) -> str:
    """A file-name-safe, unique form of a name or id: readable ASCII part + a short hash."""
    ascii_part = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    readable = re.sub(r"[^a-z0-9]+", "-", ascii_part.lower()).strip("-")[:40] or "x"
    return f"{readable}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def uncertain_faces(data: ReviewData) -> list[tuple[str, FaceThumb]]:
    """(name, face) for named faces with threshold - band < distance <= threshold, most doubtful first."""
    low = data.threshold - data.uncertain_band
    found = [(p.name, f) for p in data.people for f in p.faces if low < f.distance <= data.threshold]
    return sorted(found, key=lambda nf: (-nf[1].distance, nf[1].image, nf[1].face))


def thumbnails_of(data: ReviewData) -> set[str]:
    """Every thumbnail the pages show (to write the missing ones and prune the rest)."""
    return {f.thumb for p in data.people for f in p.faces} | {f.thumb for g in data.groups for f in g.faces}


def name_command(group_id: str, options: tuple[str, ...] = ()) -> str:
    return " ".join(map(shell_word, ["facebatch", "people", "name", group_id, "NAME", *options]))


def ignore_command(group_id: str, options: tuple[str, ...] = ()) -> str:
    # `people ignore` touches only the run's manifest: it takes no --db
    kept = [word for i, word in enumerate(options) if word != "--db" and (i == 0 or options[i - 1] != "--db")]
    return " ".join(map(shell_word, ["facebatch", "people", "ignore", group_id, *kept]))


# --- pages -----------------------------------------------------------------------------------

def person_page(name: str, page: int = 1) -> str:
    return f"{FOLDER}/person-{slug(name)}-{page}.html"


def group_page(group_id: str, page: int = 1) -> str:
    return f"{FOLDER}/group-{slug(group_id)}-{page}.html"


def listing_page(section: str, page: int = 1) -> str:
    return f"{FOLDER}/{section}-{page}.html"


def _pages_of(count: int, per_page: int) -> int:
    return max(1, math.ceil(count / per_page))


def render(data: ReviewData, per_page: int = PER_PAGE, preview: int = PREVIEW) -> dict[str, str]:
    """Every page of the review site: {path relative to the output folder: HTML}."""
    if per_page < 1 or preview < 0:
        raise ValueError("per_page must be at least 1 and preview at least 0")
    people = sorted(data.people, key=lambda p: (p.name.casefold(), p.name))
    groups = sorted(data.groups, key=lambda g: (-len(g.faces), g.id))
    uncertain = uncertain_faces(data)
    errors = sorted(data.errors, key=lambda e: e.image)
    out: dict[str, str] = {}
    r = _Renderer(data, preview)

    entries_per_page = max(1, per_page // max(1, preview))  # people or groups, each with `preview` thumbnails
    sections = [
        ("people", "People", people, r.person_entry, entries_per_page),
        ("groups", "Unknown groups", groups, r.group_entry, entries_per_page),
        ("uncertain", f"Uncertain matches ({data.threshold - data.uncertain_band:.2f} < distance "
                      f"\u2264 {data.threshold:.2f})", uncertain, r.uncertain_entry, per_page),
        ("errors", "Errors", errors, r.error_entry, per_page),
    ]
    index_body = [r.summary(people, groups, uncertain, errors)]
    for key, heading, items, entry, size in sections:
        count = len(items)
        index_body.append(f'<section id="{key}"><h2>{_text(heading)} <span class="count">{count}</span></h2>')
        index_body.append(r.entries(key, items[:size], entry, INDEX))
        if count > size:
            index_body.append(f'<p class="more"><a href="{_url(INDEX, listing_page(key, 1))}">all {count} '
                              f'&rarr;</a></p>')
            out.update(_paged(r, items, size, lambda n, key=key: listing_page(key, n), heading, heading,
                              lambda chunk, path, key=key, entry=entry: [r.entries(key, chunk, entry, path)]))
        index_body.append("</section>")
    out[INDEX] = r.page(INDEX, data.title, index_body)

    for person in people:
        out.update(_paged(r, person.faces, per_page, lambda n, name=person.name: person_page(name, n),
                          person.name, person.name, lambda chunk, path: [r.thumbs(chunk, path)]))
    for group in groups:
        out.update(_paged(r, group.faces, per_page, lambda n, gid=group.id: group_page(gid, n),
                          f"Group {group.id}", f"group {group.id}",
                          lambda chunk, path, gid=group.id: [r.commands(gid), r.thumbs(chunk, path)]))
    return out


def _paged(r: "_Renderer", items: list, size: int, page_of, heading: str, title: str, content) -> dict[str, str]:
    """The pages of one list, `size` items a page: each has `heading` with the list's count, then
    content(the page's items, the page's path), then the pager.  {path: HTML}."""
    total = _pages_of(len(items), size)
    pages = {}
    for k in range(1, total + 1):
        path = page_of(k)
        body = [f'<h2>{_text(heading)} <span class="count">{len(items)}</span></h2>',
                *content(items[(k - 1) * size:k * size], path), _pager(path, k, total, page_of)]
        pages[path] = r.page(path, f"{title} {k}/{total}", body)
    return pages


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _visible(path: str) -> str:
    """A photo's path with its direction controls written out as \\uXXXX (pathtext)."""
    return direction_controls_spelled_out(path)


def _path(value: str) -> str:
    """A photo's path for display, HTML-escaped."""
    return _text(_visible(value))


def _url(from_page: str, target: str) -> str:
    """`target` (relative to the output folder, as pathtext) as a percent-encoded URL relative to
    `from_page`, HTML-escaped.  The URL encodes the file name's bytes, not its printable text: a
    backslash or a byte that is not UTF-8 (shown as `\\` and `\xe9`) must reach the file itself."""
    relative = posixpath.relpath(target, posixpath.dirname(from_page) or ".")
    return escape(quote(os.fsencode(from_text(relative)), safe="/"), quote=True)


def _count(n: int, singular: str, plural: str = "") -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _distance(d: float) -> str:
    return "" if math.isinf(d) or math.isnan(d) else f"{d:.2f}"


def _pager(path: str, k: int, total: int, page_for) -> str:
    links = [f'<a href="{_url(path, INDEX)}">index</a>']
    if k > 1:
        links.append(f'<a rel="prev" href="{_url(path, page_for(k - 1))}">&larr; previous</a>')
    links.append(f"page {k} of {total}")
    if k < total:
        links.append(f'<a rel="next" href="{_url(path, page_for(k + 1))}">next &rarr;</a>')
    return '<nav class="pager">' + " &middot; ".join(links) + "</nav>"


class _Renderer:
    def __init__(self, data: ReviewData, preview: int):
        self.data = data
        self.preview = preview

    def page(self, path: str, title: str, body: list[str]) -> str:
        home = "" if path == INDEX else f'<a href="{_url(path, INDEX)}">&larr; review</a> '
        return "".join([
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_text(title)}</title><style>{_CSS}</style><script>{_SCRIPT}</script></head>\n<body>",
            f"<header>{home}<h1>{_text(self.data.title)}</h1></header>\n<main>",
            "\n".join(body),
            '</main>\n<p id="thumb-status" class="note" hidden></p></body></html>\n',
        ])

    def summary(self, people, groups, uncertain, errors) -> str:
        named = sum(len(p.faces) for p in people)
        grouped = sum(len(g.faces) for g in groups)
        items = [f"{_count(len(people), 'person', 'people')}, {_count(named, 'named face')}",
                 f"{_count(len(groups), 'unknown group')} holding {_count(grouped, 'face')}",
                 f"{_count(self.data.ungrouped_unknown, 'unknown face')} in no group",
                 _count(len(uncertain), "uncertain match", "uncertain matches"), _count(len(errors), "error"),
                 f"threshold {self.data.threshold:.2f}"]
        return '<ul class="summary">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"

    def thumb(self, face: FaceThumb, from_page: str, caption: str = "") -> str:
        left, top, right, bottom = face.box
        title = f"{_visible(face.image)} face {face.face} ({left},{top})-({right},{bottom})"
        if not math.isinf(face.distance):
            title += f" distance {face.distance:.3f}"
        img = (f'<img src="{_url(from_page, face.thumb)}" width="96" height="96" loading="lazy" '
               f'alt="{_path(face.image)} face {face.face}">')
        if face.annotated:
            img = f'<a href="{_url(from_page, face.annotated)}">{img}</a>'
        text = caption or _distance(face.distance)
        return (f'<figure class="face" title="{_text(title)}">{img}<figcaption>'
                f'<span class="what">{_text(text)}</span><span class="path">{_path(face.image)}</span></figcaption></figure>')

    def thumbs(self, faces, from_page: str) -> str:
        return '<div class="faces">' + "".join(self.thumb(f, from_page) for f in faces) + "</div>"

    def entries(self, key: str, items, entry, from_page: str) -> str:
        if not items:
            return '<p class="none">none</p>'
        tag = "ul" if key == "errors" else "div"
        return f'<{tag} class="entries {key}">' + "".join(entry(item, from_page) for item in items) + f"</{tag}>"

    def person_entry(self, person: Person, from_page: str) -> str:
        link = _url(from_page, person_page(person.name))
        return (f'<article class="entry"><h3><a href="{link}">{_text(person.name)}</a> '
                f'<span class="count">{_count(len(person.faces), "face")}</span></h3>'
                f'{self.thumbs(person.faces[:self.preview], from_page)}</article>')

    def commands(self, group_id: str) -> str:
        options = self.data.command_options
        return ('<div class="commands"><code class="cmd">' + _text(name_command(group_id, options)) +
                '</code><code class="cmd">' + _text(ignore_command(group_id, options)) + "</code></div>")

    def group_entry(self, group: UnknownGroup, from_page: str) -> str:
        link = _url(from_page, group_page(group.id))
        photos = len({f.image for f in group.faces})
        return (f'<article class="entry" id="group-{_text(slug(group.id))}"><h3><a href="{link}">'
                f'{_text(group.id)}</a> <span class="count">{_count(len(group.faces), "face")} in '
                f'{_count(photos, "photo")}</span></h3>'
                f"{self.commands(group.id)}{self.thumbs(group.faces[:self.preview], from_page)}</article>")

    def uncertain_entry(self, item: tuple[str, FaceThumb], from_page: str) -> str:
        name, face = item
        return self.thumb(face, from_page, caption=f"{name}? {_distance(face.distance)}")

    def error_entry(self, problem: Problem, from_page: str) -> str:
        return f'<li><span class="path">{_path(problem.image)}</span>: {_text(problem.error)}</li>'


_CSS = """
:root{color-scheme:light dark;--fg:#1d1d1f;--bg:#fafafa;--card:#fff;--muted:#6b6b70;--line:#ddd;--accent:#0a64c8}
@media (prefers-color-scheme:dark){:root{--fg:#e8e8ea;--bg:#17171a;--card:#222226;--muted:#a0a0a8;--line:#3a3a40;
--accent:#6aa8ff}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:12px 20px;border-bottom:1px solid var(--line);display:flex;gap:16px;align-items:baseline}
h1{font-size:20px;margin:0}h2{font-size:18px;margin:24px 0 8px}h3{font-size:15px;margin:0 0 6px}
main{padding:0 20px 40px}a{color:var(--accent)}
.count{color:var(--muted);font-weight:normal;font-size:.9em}
.summary{display:flex;flex-wrap:wrap;gap:6px 18px;padding:0;list-style:none;color:var(--muted)}
.entries.people,.entries.groups{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:10px}
.entry{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px;margin:0}
.faces,.entries.uncertain{display:flex;flex-wrap:wrap;gap:8px}
.face{margin:0;width:104px;font-size:11px;color:var(--muted)}
.face img{display:block;width:96px;height:96px;object-fit:cover;border-radius:6px;background:var(--line)}
.face figcaption span{display:block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.what{color:var(--fg)}
.entries.errors .path{word-break:break-all}
h1,h3,.what,.entries li{overflow-wrap:anywhere;min-width:0}
h1,h3 a,.what,.path{unicode-bidi:isolate}
.commands{display:flex;flex-direction:column;gap:4px;margin:4px 0 8px}
.cmd{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--bg);border:1px solid var(--line);
border-radius:4px;padding:3px 6px;user-select:all;width:max-content;max-width:100%;overflow-x:auto}
.pager{margin:16px 0;color:var(--muted)}.none{color:var(--muted)}
.note{margin:0 20px 20px;color:#b3261e}
"""

# Counts the thumbnails that loaded and those that failed: shown to the user when some are missing
# (the output folder was moved without review/), and read by the browser test from the DOM.
_SCRIPT = """
(function(){var broken=0;
document.addEventListener('error',function(e){if(e.target.tagName==='IMG'){broken++;e.target.classList.add('broken');}},true);
window.addEventListener('load',function(){var imgs=document.images,ok=0;
for(var i=0;i!==imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0){ok++;}}
document.body.setAttribute('data-thumbs',imgs.length);document.body.setAttribute('data-thumbs-loaded',ok);
document.body.setAttribute('data-thumbs-broken',broken);
if(broken){var n=document.getElementById('thumb-status');n.hidden=false;
n.textContent=broken+' thumbnails are missing: run facebatch annotate again to rewrite them.';}});})();
"""
