"""Incremental grouping of unknown faces: pure numpy, no I/O.

A group is a set of faces believed to be one person.  Its id never changes once given.  Each call
to `update` offers new faces: each joins an existing group or starts a new one; groups are never
merged, so an id given to the user stays valid until the group is named, ignored or emptied.

Purity first.  A face joins a group only when it is within `join_threshold` of at least
`quorum` of the group's members (quorum 1.0 is complete linkage: within the threshold of every
member), so one face that happens to sit between two people cannot chain them together.  A wrong
split costs the user one extra `people name`; a wrong merge enrolls a stranger under a name.  The
threshold and quorum are measured in docs/clusters.md (bench/clusters.py).

Weak faces (shorter box side below `min_start_size` px, or detection confidence below
`min_start_confidence`) never start a group: their embeddings are the noisiest, and groups of
blurred background faces would crowd the list.  They may join a group under the same strict rule,
so a person's small faces are named with the rest; one that finds no group is left unplaced and
can be offered again with the next run.

Ids are "g" + a zero-padded counter kept in the state (`next_number`): short to type in
`facebatch people name g0007 Ada`, in creation order, and never reused, even after a group is
emptied or named.  (A hash of the founding face would also be stable without a counter, but would
come back if the same image and face index founded a group again after its first group was
dropped, carrying an old `ignore` with it, and is longer to type.)

For the caller: keep ignored groups in the state, so that they go on absorbing that bystander's
faces instead of the bystander coming back as a new group; drop a group once its faces are
enrolled (`without_groups`), since annotate names that person from then on; drop the members of
images that vanished or changed (`keeping_images`, `without_changed_faces`) before offering their faces
again; and offer `Update.unplaced` faces again with the next run.

Deterministic: the same state and faces in the same order give the same result.  Faces are taken
in order; each one sees the members added before it, in this call or earlier ones.

Cost: each block of faces is compared with all current members in one matrix product, so a call
is O(new faces x members) numpy work (BLAS), plus per face a few small numpy operations over the
members it is near, so no Python loop over pairs and no per-face work that grows with the number
of groups: 50,000 faces took 6 to 11 s in one call on 2 shared cores (docs/clusters.md).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Iterable

import numpy as np

FaceKey = tuple[str, int]  # (image path as in the report, face index in that image)

DEFAULT_JOIN_THRESHOLD = 0.85  # docs/clusters.md: pure in every run measured; 0.90 mixed one group in one run
DEFAULT_QUORUM = 0.5
MIN_START_SIZE = 48  # px, shorter side of the box
MIN_START_CONFIDENCE = 0.97
_BLOCK = 256  # faces compared with all members in one matrix product


@dataclass(frozen=True)
class NewFace:
    """An unknown face offered for grouping."""

    key: FaceKey
    embedding: np.ndarray  # (D,) float32, unit length
    size: int  # shorter side of the detector's box, px
    confidence: float  # the detector's


@dataclass(frozen=True)
class Group:
    """Faces of one (unnamed) person, in the order they joined; `embeddings[i]` belongs to `keys[i]`."""

    id: str
    keys: tuple[FaceKey, ...]
    embeddings: np.ndarray = field(compare=False)  # (len(keys), D) float32

    @property
    def images(self) -> set[str]:
        return {image for image, _ in self.keys}


@dataclass(frozen=True)
class ClusterState:
    groups: tuple[Group, ...] = ()  # in creation order
    next_number: int = 1  # the number of the next group's id

    def group(self, group_id: str) -> Group | None:
        return next((g for g in self.groups if g.id == group_id), None)


@dataclass(frozen=True)
class ClusterSettings:
    join_threshold: float = DEFAULT_JOIN_THRESHOLD  # Euclidean distance between unit embeddings
    quorum: float = DEFAULT_QUORUM  # fraction of a group's members a face must be within the threshold of
    min_start_size: int = MIN_START_SIZE
    min_start_confidence: float = MIN_START_CONFIDENCE

    def __post_init__(self):
        if not 0.0 < self.quorum <= 1.0:
            raise ValueError(f"quorum must be in (0, 1], not {self.quorum}")
        if not 0.0 < self.join_threshold < 2.0:
            raise ValueError(f"join_threshold must be in (0, 2), not {self.join_threshold}")


@dataclass(frozen=True)
class Update:
    state: ClusterState
    placed: dict  # FaceKey -> group id, for every offered face now in a group (old members keep theirs)
    unplaced: tuple[FaceKey, ...]  # weak faces that found no group; offer them again next run
    started: tuple[str, ...]  # ids of the groups this call created


# The largest difference in any coordinate for a face found again to be the one stored: the same
# pixels through the same network give the same embedding up to float rounding.
# A face found again by another detection (another --min-face-size, say: MTCNN's box moves by up
# to a sixth of its width) comes back up to about 0.5 from its first embedding.  Only faces of the
# same photo are candidates, and two people in one photo are about 1.0 apart or more (the nearest
# different-people pair of the calibration photos is 0.99): this near, it is the same person.
FOLLOW_DISTANCE = 0.6


def group_id(number: int) -> str:
    return f"g{number:04d}"


def update(state: ClusterState, faces: Iterable[NewFace], settings: ClusterSettings = ClusterSettings()) -> Update:
    """Place `faces`, in order, into the groups of `state`, starting new groups where allowed.

    A face whose key is already a member stays where it is (offering a face twice is harmless);
    of duplicate keys among `faces` the first counts.
    """
    faces = list(faces)
    existing = {k: g.id for g in state.groups for k in g.keys}
    placed: dict = {f.key: existing[f.key] for f in faces if f.key in existing}
    fresh, seen = [], set(existing)
    for face in faces:
        if face.key not in seen:
            seen.add(face.key)
            fresh.append(face)
    if not fresh:
        return Update(state, placed, (), ())
    dim = _dimension(state, fresh)
    work = _Workspace(state, fresh, dim, settings)
    strong = np.array([f.size >= settings.min_start_size and f.confidence >= settings.min_start_confidence
                       for f in fresh])
    left = work.place(np.arange(len(fresh)), strong)
    # Weak faces that came before the group they belong to was started get a second chance.
    left = work.place(left, np.zeros(len(fresh), bool)) if len(left) else left
    new_state, started = work.result(state)
    ids = {k: g.id for g in new_state.groups for k in g.keys}
    placed.update({f.key: ids[f.key] for f in fresh if f.key in ids})
    return Update(new_state, placed, tuple(fresh[i].key for i in left), started)


def _dimension(state: ClusterState, faces: list[NewFace]) -> int:
    dims = {np.asarray(f.embedding).shape for f in faces} | {g.embeddings.shape[1:] for g in state.groups}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise ValueError(f"embeddings of different shapes: {sorted(map(str, dims))}")
    return next(iter(dims))[0]


class _Workspace:
    """Members of all groups as one matrix, with the group of each row, grown in place."""

    def __init__(self, state: ClusterState, faces: list[NewFace], dim: int, settings: ClusterSettings):
        old = sum(len(g.keys) for g in state.groups)
        capacity = old + len(faces)
        self.members = np.empty((capacity, dim), np.float32)
        self.owner = np.empty(capacity, np.int64)
        self.keys: list[FaceKey] = []
        row = 0
        for number, group in enumerate(state.groups):
            n = len(group.keys)
            self.members[row:row + n] = group.embeddings
            self.owner[row:row + n] = number
            self.keys.extend(group.keys)
            row += n
        self.rows = row
        self.sizes = np.zeros(len(state.groups) + len(faces), np.int64)
        self.sizes[:len(state.groups)] = [len(g.keys) for g in state.groups]
        self.count = len(state.groups)
        self.faces = faces
        self.embeddings = np.stack([np.asarray(f.embedding, np.float32) for f in faces])
        # distance <= t  <=>  similarity >= 1 - t^2 / 2, for unit vectors
        self.min_similarity = np.float32(1.0 - settings.join_threshold ** 2 / 2.0)
        self.quorum = settings.quorum

    def _near_members(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each face of `block`, the groups of the members it is within the threshold of.

        Returns (groups, bounds): face p's are groups[bounds[p]:bounds[p + 1]], one entry per member.
        Sparse, since a face is near few members: the work per face does not grow with the groups.
        """
        if self.rows == 0:
            return np.zeros(0, np.int64), np.zeros(len(block) + 1, np.int64)
        face, member = np.nonzero((self.embeddings[block] @ self.members[:self.rows].T) >= self.min_similarity)
        return self.owner[member], np.searchsorted(face, np.arange(len(block) + 1))

    def place(self, indices: np.ndarray, may_start: np.ndarray) -> np.ndarray:
        """Place the faces `indices` in order; returns those left unplaced."""
        left = []
        for b0 in range(0, len(indices), _BLOCK):
            block = indices[b0:b0 + _BLOCK]
            near_groups, bounds = self._near_members(block)
            near_each_other = (self.embeddings[block] @ self.embeddings[block].T) >= self.min_similarity
            placed_in = np.full(len(block), -1, np.int64)  # the group of each face of the block placed so far
            for p, i in enumerate(block):
                # members near this face: those from before the block, and those placed earlier in it
                earlier = placed_in[:p][near_each_other[p, :p] & (placed_in[:p] >= 0)]
                candidates = np.concatenate([near_groups[bounds[p]:bounds[p + 1]], earlier])
                g = -1
                if len(candidates):
                    groups, near = np.unique(candidates, return_counts=True)  # ascending group numbers
                    n = self.sizes[groups]
                    ok = near >= np.maximum(1, np.ceil(self.quorum * n - 1e-9))
                    if ok.any():
                        # the group the face agrees with most, as a fraction; ties to the oldest group
                        share = np.where(ok, near / n, -1.0)
                        g = int(groups[np.argmax(share)])
                if g < 0 and may_start[i]:
                    g = self.count
                    self.count += 1
                if g < 0:
                    left.append(i)
                    continue
                self.members[self.rows] = self.embeddings[i]
                self.owner[self.rows] = g
                self.keys.append(self.faces[i].key)
                self.rows += 1
                self.sizes[g] += 1
                placed_in[p] = g
        return np.array(left, np.int64)

    def result(self, state: ClusterState) -> tuple[ClusterState, tuple[str, ...]]:
        order = np.argsort(self.owner[:self.rows], kind="stable")  # rows in join order within each group
        ends = np.cumsum(self.sizes[:self.count])
        groups = []
        number = state.next_number
        started = []
        for g, end in enumerate(ends):
            rows = order[end - self.sizes[g]:end]
            if g < len(state.groups):
                gid = state.groups[g].id
            else:
                gid = group_id(number)
                number += 1
                started.append(gid)
            groups.append(Group(gid, tuple(self.keys[r] for r in rows), self.members[rows].copy()))
        return ClusterState(tuple(groups), number), tuple(started)


def representative(group: Group) -> FaceKey:
    """The member nearest the group's mean direction (ties: the earliest member)."""
    return group.keys[_central_order(group)[0]]


def representatives(group: Group, count: int) -> tuple[FaceKey, ...]:
    """Up to `count` members, most central first: a subset to show or enroll."""
    return tuple(group.keys[i] for i in _central_order(group)[:count])


def _central_order(group: Group) -> np.ndarray:
    centre = group.embeddings.astype(np.float64).mean(axis=0)
    similarity = group.embeddings.astype(np.float64) @ centre
    return np.argsort(-similarity, kind="stable")


def _keeping(state: ClusterState, keep_key) -> ClusterState:
    """Only the members for whose key `keep_key` is true; groups left empty are dropped."""
    return _keeping_members(state, lambda group, i: keep_key(group.keys[i]))


def _keeping_members(state: ClusterState, keep_member) -> ClusterState:
    """Only the members (group, index) for which `keep_member` is true; groups left empty are dropped."""
    groups = []
    for group in state.groups:
        keep = [i for i in range(len(group.keys)) if keep_member(group, i)]
        if len(keep) == len(group.keys):
            groups.append(group)
        elif keep:
            groups.append(Group(group.id, tuple(group.keys[i] for i in keep), group.embeddings[keep].copy()))
    return replace(state, groups=tuple(groups))


def without_changed_faces(state: ClusterState, images: Iterable[str],
                          current: dict[FaceKey, np.ndarray]) -> ClusterState:
    """Follow the members of `images` (detected again) to the face they are now, or drop them.

    A member follows the face of its image nearest its embedding when that is within
    FOLLOW_DISTANCE, taking that face's key (indices shift when a photo gains or loses a face)
    and embedding; each face is taken once, nearest pairs first.  So a face found again, as
    `annotate --force` finds every face, or found again a little differently, as after a change
    of detection options, stays in its group, and the group keeps its id and an `ignore`.  A face
    no longer there, or another face in its place (the photo was replaced), leaves the group.
    """
    redone = set(images)
    by_image: dict[str, list[FaceKey]] = {}
    for key in current:
        by_image.setdefault(key[0], []).append(key)
    members = [(g, i) for g, group in enumerate(state.groups) for i, key in enumerate(group.keys) if key[0] in redone]
    pairs = []
    for g, i in members:
        member = state.groups[g]
        for key in by_image.get(member.keys[i][0], ()):
            distance = float(np.linalg.norm(current[key] - member.embeddings[i]))
            if distance <= FOLLOW_DISTANCE:
                pairs.append((distance, g, i, key))
    followed: dict[tuple[int, int], FaceKey] = {}
    taken: set[FaceKey] = set()
    for _, g, i, key in sorted(pairs):
        if (g, i) not in followed and key not in taken:
            followed[(g, i)] = key
            taken.add(key)
    groups = []
    for g, group in enumerate(state.groups):
        keys, vectors = [], []
        for i, key in enumerate(group.keys):
            if key[0] not in redone:
                keys.append(key)
                vectors.append(group.embeddings[i])
            elif (g, i) in followed:
                keys.append(followed[(g, i)])
                vectors.append(np.asarray(current[followed[(g, i)]], np.float32))
        if keys:
            groups.append(Group(group.id, tuple(keys), np.stack(vectors).astype(np.float32)))
    return replace(state, groups=tuple(groups))


def keeping_faces(state: ClusterState, keys: Iterable[FaceKey]) -> ClusterState:
    """Keep only the members whose key is in `keys` (faces still unknown), and non-empty groups."""
    present = set(keys)
    return _keeping(state, lambda key: key in present)


def keeping_images(state: ClusterState, images: Iterable[str]) -> ClusterState:
    """Keep only the members whose image is in `images` (the images that still exist)."""
    present = set(images)
    return _keeping(state, lambda key: key[0] in present)


def without_groups(state: ClusterState, group_ids: Iterable[str]) -> ClusterState:
    """Remove whole groups (once named, say); their ids are not given again."""
    drop = set(group_ids)
    return replace(state, groups=tuple(g for g in state.groups if g.id not in drop))


def to_document(state: ClusterState) -> dict:
    """A JSON-ready dict; embeddings as base64 of little-endian float32, as in the face database."""
    return {"next_number": state.next_number,
            "groups": [{"id": g.id, "faces": [[image, index] for image, index in g.keys],
                        "embeddings": base64.b64encode(np.ascontiguousarray(g.embeddings, "<f4").tobytes())
                        .decode("ascii")} for g in state.groups]}


def from_document(document: dict, embedding_size: int) -> ClusterState:
    """The inverse of `to_document`; raises ValueError on a damaged document."""
    try:
        groups = []
        for g in document["groups"]:
            keys = tuple((str(image), int(index)) for image, index in g["faces"])
            flat = np.frombuffer(base64.b64decode(g["embeddings"], validate=True), dtype="<f4")
            if flat.size != len(keys) * embedding_size or not keys:
                raise ValueError(f"group {g['id']}: {flat.size} values for {len(keys)} faces")
            groups.append(Group(str(g["id"]), keys, flat.reshape(len(keys), embedding_size).astype(np.float32)))
        next_number = int(document["next_number"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"damaged face groups: {exc}") from None
    if len({g.id for g in groups}) != len(groups):
        raise ValueError("damaged face groups: an id appears twice")
    return ClusterState(tuple(groups), next_number)

