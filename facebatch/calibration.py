"""Thresholds from labelled embeddings: distance distributions, accuracy, recommended thresholds.

Pure numpy, no I/O and no TensorFlow: the embeddings come in as (N, D) unit vectors with one
person label per row (and optionally a source id per row: rows with the same source are the same
photo and are never compared with each other).  bench/calibrate.py uses this module, and so will
`facebatch calibrate LABELLED_DIR`.

Two questions, two thresholds:

* verify (1:1): is this pair the same person?  The distribution of pair distances.
* annotate (1:N): which enrolled person is this face, if any?  Simulated with the labelled photos:
  each person in turn is left out of the gallery and counts as a stranger; the others are enrolled
  from 1 photo each (several draws) and from all their photos, and are named from their other
  photos.  The threshold is the largest at which at most 1 % of strangers are named in each of
  the gallery shapes.

The verify threshold is the largest at which at most 0.1 % of different-people pairs are SAME.
A SAME is a claim about one pair; annotate's 1 % is per stranger face against the best of all
enrolled people, so each of a gallery's P people takes only about 1 %/P of it (0.1 % is a
gallery of ten).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

QUANTILES = (0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0)
# The operating point: at most 1 % of strangers named (docs/calibration.md).  With the centroid
# rule the distances of strangers do not move with the number of photos per person, so a
# threshold set by them holds for any gallery shape.
MAX_FALSE_ACCEPT = 0.01
# verify's operating point: at most 0.1 % of different-people pairs called SAME.
MAX_FALSE_SAME = 0.001
# The fewest trials that can measure each operating point (one error in them is the rate itself);
# `recommend` does not loosen a threshold on fewer.
VERIFY_PAIRS_NEEDED = round(1 / MAX_FALSE_SAME)
ANNOTATE_STRANGERS_NEEDED = round(1 / MAX_FALSE_ACCEPT)
# Identities, not photos, are what a stranger threshold generalises over: the defaults were set
# on 11 people (5 enrolled, 6 strangers; docs/calibration.md), so a sample loosens a threshold
# above the model's default only with more people than that.
PEOPLE_NEEDED = 12
# Photos of one person this near are copies of one photo (re-encoded, resized, a burst): counted
# once when judging whether a sample is large enough.  Resizing a photo moves it 0.12 to 0.24,
# and the calibration photos' nearest same-person pair is 0.21 (docs/calibration.md).
NEAR_COPY_DISTANCE = 0.25
# Photos of two people this near are one person under two names, or a photo in the wrong folder,
# not two people: in the calibration the nearest different-people pair is 0.99 apart, and half of
# the same-person pairs are nearer than 0.86 (docs/calibration.md).  Calibrating on such a label
# would drag the thresholds down to it.
SUSPECT_DISTANCE = 0.5
# The range a stored threshold must lie in (gallery.py refuses others).
THRESHOLD_RANGE = (0.01, 1.99)
RULES = ("nearest", "centroid", "mean-3", "n-adjusted", "margin")


def summary(distances: np.ndarray) -> dict[str, float]:
    """count, and the quantiles of QUANTILES as {"q0": min, "q1": ..., "q50": median, ..., "q100": max}."""
    distances = np.asarray(distances, np.float64)
    out = {"count": float(len(distances))}
    for q in QUANTILES:
        out[f"q{round(q * 100)}"] = float(np.quantile(distances, q)) if len(distances) else float("nan")
    return out


def pair_distances(embeddings: np.ndarray, labels, sources=None) -> tuple[np.ndarray, np.ndarray]:
    """Distances of all pairs of rows (i < j) and whether each pair is the same person.

    Pairs of rows from the same source (the same photo) are left out.
    """
    labels = np.asarray(labels)
    sources = np.arange(len(labels)) if sources is None else np.asarray(sources)
    i, j = np.triu_indices(len(labels), k=1)
    keep = sources[i] != sources[j]
    i, j = i[keep], j[keep]
    # One (N, N) product, not a copy of both embeddings per pair: that took 8.8 GB for 2,496 photos.
    rows = embeddings.astype(np.float64)
    similarity = (rows @ rows.T)[i, j]
    return np.sqrt(np.maximum(2.0 - 2.0 * similarity, 0.0)), labels[i] == labels[j]


def distinct_photos(distances: np.ndarray, same: np.ndarray, count: int, near: float = NEAR_COPY_DISTANCE
                    ) -> np.ndarray:
    """(count,) a group id per row: rows joined by same-person pairs nearer than `near` (copies of
    one photo) share one.  `distances` and `same` are pair_distances' of all pairs (no sources)."""
    parent = np.arange(count)

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    i, j = np.triu_indices(count, k=1)
    for k in np.flatnonzero(same & (distances < near)):
        a, b = root(int(i[k])), root(int(j[k]))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([root(x) for x in range(count)])


def nearest_different_pairs(distances: np.ndarray, same: np.ndarray, count: int, below: float, limit: int
                            ) -> list[tuple[int, int, float]]:
    """(i, j, distance) of the `limit` nearest pairs of different people nearer than `below`, nearest
    first.  `distances` and `same` are pair_distances' of all `count` rows (no sources)."""
    i, j = np.triu_indices(count, k=1)
    near = np.flatnonzero(~same & (distances < below))
    near = near[np.argsort(distances[near], kind="stable")][:limit]
    return [(int(i[k]), int(j[k]), float(distances[k])) for k in near]


def suspect_pairs(distances: np.ndarray, same: np.ndarray, count: int, below: float = SUSPECT_DISTANCE
                  ) -> list[tuple[int, int, float]]:
    """(i, j, distance) of the rows of different people nearer than `below`, nearest first: labels
    to check before trusting thresholds measured on them.  `distances` and `same` are
    pair_distances' of all `count` rows (no sources)."""
    return nearest_different_pairs(distances, same, count, below, count ** 2)


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> dict[str, float]:
    """Pair accuracy at `threshold` (SAME when distance <= threshold), and the two kinds of error."""
    said_same = distances <= threshold
    return {"threshold": float(threshold), "pairs": int(len(distances)),
            "accuracy": float(np.mean(said_same == same)) if len(distances) else float("nan"),
            "false_same": int(np.sum(said_same & ~same)), "false_different": int(np.sum(~said_same & same))}


def _candidates(values: np.ndarray) -> np.ndarray:
    values = np.unique(np.asarray(values, np.float64))
    if len(values) == 0:
        return np.array([1.0])
    return np.concatenate([[values[0] - 1e-3], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-3]])


def _middle_of_best(candidates: np.ndarray, errors: np.ndarray) -> tuple[float, float]:
    best = np.flatnonzero(errors <= errors.min() + 1e-12)
    # the middle of the best range (between the last error on one side and the first on the other)
    return float((candidates[best[0]] + candidates[best[-1]]) / 2), float(errors.min())


def verify_threshold_at(distances: np.ndarray, same: np.ndarray, max_false_same: float = MAX_FALSE_SAME) -> float:
    """The largest threshold at which at most `max_false_same` of the different-people pairs are
    SAME (with fewer than 1/max_false_same such pairs, none may be): midway between the last
    distance it accepts and the first it refuses."""
    candidates = _candidates(distances)
    d_diff = np.sort(np.asarray(distances, np.float64)[~np.asarray(same)])
    allowed = int(np.floor(max_false_same * len(d_diff) + 1e-9))
    false_same = np.searchsorted(d_diff, candidates, side="right")
    return float(candidates[np.flatnonzero(false_same <= allowed)[-1]])


def verify_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the fewest pair errors (false SAME + false DIFFERENT), mid-range.
    (How verify's threshold was set before issue 8; bench/calibrate.py still reports it.)"""
    candidates = _candidates(distances)
    d_same, d_diff = np.sort(distances[same]), np.sort(distances[~same])
    # errors: same pairs above t + different pairs at or below t
    errors = (len(d_same) - np.searchsorted(d_same, candidates, side="right")) + \
        np.searchsorted(d_diff, candidates, side="right")
    return _middle_of_best(candidates, errors.astype(np.float64))[0]


# ---------------------------------------------------------------- 1:N (annotate) decision rules

@dataclass(frozen=True)
class Rule:
    """A decision rule for naming a face against a gallery.

    name: "nearest" (the closest of a person's photos: facebatch before issue 8), "centroid" (the
    distance to the mean of the person's unit embeddings, renormalised), "mean-3" (mean distance to
    the person's 3 closest photos), "n-adjusted" (nearest, with the threshold lowered by
    `beta * ln(photos)`), "margin" (nearest, and named only when the second-best person is at
    least `margin` farther).
    """

    name: str
    beta: float = 0.0
    margin: float = 0.0


def person_distances(similarity: np.ndarray, gram: np.ndarray, owner: np.ndarray, mask: np.ndarray,
                     people: int, rule: Rule) -> np.ndarray:
    """(F, P) distance of each probe to each person under `rule`; inf where a person has no photo.

    similarity (F, G): probe . gallery; gram (G, G): gallery . gallery; owner (G,): person index of
    each gallery row; mask (F, G): which gallery rows count for each probe (leave-one-out etc.).
    """
    F = similarity.shape[0]
    out = np.full((F, people), np.inf)
    distance = np.sqrt(np.maximum(2.0 - 2.0 * similarity, 0.0))
    for p in range(people):
        columns = np.flatnonzero(owner == p)
        if len(columns) == 0:
            continue
        m = mask[:, columns]
        count = m.sum(axis=1)
        has = count > 0
        if rule.name in ("nearest", "margin", "n-adjusted"):
            d = np.where(m, distance[:, columns], np.inf).min(axis=1)
            if rule.name == "n-adjusted":
                d = d + rule.beta * np.log(np.maximum(count, 1))
        elif rule.name == "centroid":
            mf = m.astype(np.float64)
            dot = (similarity[:, columns] * mf).sum(axis=1)
            norm2 = ((mf @ gram[np.ix_(columns, columns)]) * mf).sum(axis=1)
            cosine = dot / np.sqrt(np.maximum(norm2, 1e-12))
            d = np.sqrt(np.maximum(2.0 - 2.0 * cosine, 0.0))
        elif rule.name.startswith("mean-"):
            k = int(rule.name.split("-")[1])
            sorted_d = np.sort(np.where(m, distance[:, columns], np.inf), axis=1)[:, :k]
            finite = np.isfinite(sorted_d)
            d = np.where(finite, sorted_d, 0.0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)
        else:
            raise ValueError(f"unknown rule {rule.name!r}")
        out[has, p] = d[has]
    return out


@dataclass
class Trials:
    """Outcomes of simulated annotate runs, one row per (probe, gallery draw) that counts.

    For known probes: `right` (the best person is theirs), `d1`; for strangers: `d1`.  `d2` is the
    distance to the second-best person (for the margin rule), inf when there is none.
    """

    known_right: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    known_d1: np.ndarray = field(default_factory=lambda: np.zeros(0))
    known_d2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stranger_d1: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stranger_d2: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def joined(cls, parts: list["Trials"]) -> "Trials":
        """All of `parts` in one, concatenated once (extending one by one is quadratic)."""
        out = cls()
        for name in ("known_right", "known_d1", "known_d2", "stranger_d1", "stranger_d2"):
            setattr(out, name, np.concatenate([getattr(out, name)] + [getattr(p, name) for p in parts]))
        return out

    def counts(self, threshold: float, rule: Rule) -> dict[str, int]:
        """Known faces named right, and strangers named, at `threshold`."""
        margin_ok_known = (self.known_d2 - self.known_d1) >= rule.margin if rule.name == "margin" else True
        margin_ok_stranger = (self.stranger_d2 - self.stranger_d1) >= rule.margin if rule.name == "margin" else True
        return {"known": int(len(self.known_d1)),
                "named_right": int(np.sum(self.known_right & (self.known_d1 <= threshold) & margin_ok_known)),
                "strangers": int(len(self.stranger_d1)),
                "strangers_named": int(np.sum((self.stranger_d1 <= threshold) & margin_ok_stranger))}


def run_trials(gallery: np.ndarray, gallery_labels, probes: np.ndarray, probe_labels, rule: Rule,
               photos_per_person: int | None, draws: int = 1, gallery_sources=None, probe_sources=None,
               leave_out=None) -> Trials:
    """Simulated annotate runs.  Probes labelled with a person who is not enrolled are strangers.

    Each person's gallery photos are taken in sorted order; with `photos_per_person` = n, draw r
    enrolls photos r*n .. r*n+n-1 (cyclically), and None enrolls all.  `leave_out` lists the
    people who are removed from the gallery in turn (each turn is one more run, in which that
    person's probes are strangers); None means one run with everyone enrolled.  A probe is never
    compared with a gallery row of the same source (the same photo).
    """
    gallery_labels, probe_labels = np.asarray(gallery_labels), np.asarray(probe_labels)
    gallery_sources = np.arange(len(gallery)) if gallery_sources is None else np.asarray(gallery_sources)
    probe_sources = np.full(len(probes), -1) if probe_sources is None else np.asarray(probe_sources)
    people = sorted(set(gallery_labels.tolist()))
    index = {p: i for i, p in enumerate(people)}
    owner = np.array([index[label] for label in gallery_labels])
    similarity = probes.astype(np.float64) @ gallery.astype(np.float64).T
    gram = gallery.astype(np.float64) @ gallery.astype(np.float64).T
    same_source = probe_sources[:, None] == gallery_sources[None, :]
    probe_person = np.array([index.get(label, -1) for label in probe_labels.tolist()], dtype=np.int64)
    each_probe = np.arange(len(probes))
    parts: list[Trials] = []
    for draw in range(draws if photos_per_person is not None else 1):
        chosen = np.zeros(len(gallery), bool)
        for person in people:
            rows = np.flatnonzero(gallery_labels == person)  # in the caller's (sorted) order
            if photos_per_person is None:
                chosen[rows] = True
            else:
                picks = [(draw * photos_per_person + j) % len(rows) for j in range(min(photos_per_person, len(rows)))]
                chosen[rows[picks]] = True
        # Leaving a person out changes only that person's column: the distances to everyone are
        # computed once per draw, not once per person left out (P times fewer; 500 people took 163 s).
        everyone = person_distances(similarity, gram, owner, chosen[None, :] & ~same_source, len(people), rule)
        top, top_distance = _nearest_three(everyone)
        for left in (leave_out if leave_out is not None else [None]):
            gone = index.get(left, -1)  # the person left out of this run (-1: nobody)
            # the nearest two people other than the one left out, from each probe's nearest three
            others = top != gone
            rank = np.cumsum(others, axis=1)
            has_first = (others & (rank == 1)).any(axis=1)  # not when the only person is left out
            first = np.argmax(others & (rank == 1), axis=1)
            has_second = (others & (rank == 2)).any(axis=1)
            second = np.argmax(others & (rank == 2), axis=1)
            best = np.where(has_first, top[each_probe, first], -1)
            d1 = np.where(has_first, top_distance[each_probe, first], np.inf)
            d2 = np.where(has_second, top_distance[each_probe, second], np.inf)
            enrolled = (probe_person >= 0) & (probe_person != gone)
            # a known probe counts only when its person has a photo in this gallery
            own = np.where(enrolled, everyone[each_probe, np.maximum(probe_person, 0)], np.inf)
            known = enrolled & np.isfinite(own)
            stranger = ~enrolled
            parts.append(Trials(known_right=(best == probe_person)[known], known_d1=d1[known],
                                known_d2=d2[known], stranger_d1=d1[stranger], stranger_d2=d2[stranger]))
    return Trials.joined(parts)


def _nearest_three(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, k) the indices of each row's k = min(3, P) smallest distances, nearest first (ties in
    column order), and those distances.  Leaving one person out, the nearest two of the rest are
    among them."""
    # a stable sort of whole rows: exact ties go to the first column (an argpartition would cut
    # through a tie arbitrarily); once per gallery draw, so the full sort is affordable
    top = np.argsort(distances, axis=1, kind="stable")[:, :min(3, distances.shape[1])]
    return top, np.take_along_axis(distances, top, axis=1)


def _stranger_named_rates(trial_sets: list[Trials], rule: Rule, candidates: np.ndarray) -> np.ndarray:
    """(trial sets, candidates): the share of each set's strangers named at each candidate threshold."""
    rates = np.zeros((len(trial_sets), len(candidates)))
    for i, t in enumerate(trial_sets):
        passes = ((t.stranger_d2 - t.stranger_d1) >= rule.margin) if rule.name == "margin" else \
            np.ones(len(t.stranger_d1), bool)
        if len(t.stranger_d1):
            rates[i] = np.searchsorted(np.sort(t.stranger_d1[passes]), candidates, side="right") / len(t.stranger_d1)
    return rates


def _known_missed_rate(trial_sets: list[Trials], rule: Rule, candidates: np.ndarray) -> np.ndarray:
    rates = np.zeros(len(candidates))
    for t in trial_sets:
        ok = t.known_right & (((t.known_d2 - t.known_d1) >= rule.margin) if rule.name == "margin" else True)
        if len(t.known_d1):
            rates += 1.0 - np.searchsorted(np.sort(t.known_d1[ok]), candidates, side="right") / len(t.known_d1)
    return rates / max(len(trial_sets), 1)


def annotate_threshold(trial_sets: list[Trials], rule: Rule, max_false_accept: float | None = MAX_FALSE_ACCEPT
                       ) -> tuple[float, float]:
    """The annotate threshold for `rule` from simulated runs; returns (threshold, known-missed rate).

    With `max_false_accept` (the default): for each trial set (gallery shape), the largest
    threshold at which at most that fraction of its strangers is named, midway between the last
    stranger distance it accepts and the first it refuses; then the lowest of these, because a
    default must hold for whichever shape a user's gallery has, not on average over shapes.  With
    None: the threshold minimising (known missed rate + strangers named rate, each the mean over
    the sets), in the middle of the best range.
    """
    if max_false_accept is None:
        candidates = _candidates_of(trial_sets)
        missed = _known_missed_rate(trial_sets, rule, candidates)
        named = _stranger_named_rates(trial_sets, rule, candidates).mean(axis=0)
        threshold, _ = _middle_of_best(candidates, missed + named)
    else:
        threshold = min(_largest_within(t, rule, max_false_accept) for t in trial_sets)
    missed_at = float(_known_missed_rate(trial_sets, rule, np.array([threshold]))[0])
    return threshold, missed_at


def _candidates_of(trial_sets: list[Trials]) -> np.ndarray:
    values = np.concatenate([np.concatenate([t.known_d1, t.stranger_d1]) for t in trial_sets])
    return _candidates(values[np.isfinite(values)])


def _largest_within(trials: Trials, rule: Rule, max_false_accept: float) -> float:
    candidates = _candidates_of([trials])
    named = _stranger_named_rates([trials], rule, candidates)[0]
    allowed = np.flatnonzero(named <= max_false_accept + 1e-12)
    return float(candidates[allowed[-1]]) if len(allowed) else float(candidates[0])


def gap(trials: Trials) -> float:
    """Nearest stranger minus farthest known face named right: > 0 means one threshold separates them."""
    right = trials.known_d1[trials.known_right]
    far_known = right.max() if len(right) else 0.0
    near_stranger = trials.stranger_d1.min() if len(trials.stranger_d1) else 2.0
    return float(near_stranger - far_known)


@dataclass
class Recommendation:
    """What `facebatch calibrate` reports.  `verify_sample` and `annotate_sample` count what each
    operating point is measured on, copies of one photo counted once (different-people pairs;
    stranger faces, every photo being a stranger once when its person is left out), and `people`
    the identities.  Below VERIFY_PAIRS_NEEDED, ANNOTATE_STRANGERS_NEEDED or PEOPLE_NEEDED a
    threshold is `capped`: never above its ceiling (`_capped`)."""

    same: dict[str, float]
    different: dict[str, float]
    verify_threshold: float
    annotate_threshold: float
    verify_at_current: dict | None
    annotate_at_current: dict | None
    verify_sample: int = 0
    annotate_sample: int = 0
    verify_capped: bool = False
    annotate_capped: bool = False
    # The same counts at the recommended thresholds, on the photos they were chosen on (so a little
    # optimistic), for comparing with the current ones before --write.
    verify_at_recommended: dict | None = None
    annotate_at_recommended: dict | None = None
    people: int = 0
    photos: int = 0  # all rows, copies included (annotate_sample counts each photo once)


def _capped(measured: float, ceiling: float | None, sample: int, needed: int, people: int) -> tuple[float, bool]:
    """A sample too small to measure the operating point (fewer than 1/rate trials: not one error
    is allowed, and the threshold lands midway to the nearest stranger *seen*), or with too few
    people to stand for strangers in general, can show that a threshold is too loose, never that a
    looser one is safe: the nearest of 20 different-people pairs says little about the nearest of
    1,000.  So from such a sample the recommendation may go down from the ceiling (the model's
    calibrated default), not up."""
    if ceiling is None or (sample >= needed and people >= PEOPLE_NEEDED) or measured <= ceiling:
        return measured, False
    return float(ceiling), True


def _floor3(threshold: float) -> float:
    """A measured threshold as it is printed and stored: 3 decimals, rounded down (stricter)."""
    return float(np.floor(threshold * 1000 + 1e-9) / 1000)


def recommend(embeddings: np.ndarray, labels, sources=None, rule: Rule = Rule("centroid"),
              current_verify: float | None = None, current_annotate: float | None = None,
              draws: int = 5, ceiling_verify: float | None = None, ceiling_annotate: float | None = None
              ) -> Recommendation:
    """Everything `facebatch calibrate` reports, from one person label per embedding.

    annotate is simulated leave-one-person-out with galleries of 1 photo per person (`draws`
    draws) and of all photos (each probe compared with the other photos only).  A threshold
    measured on too little is capped at its ceiling (`_capped`): the model's default when given,
    else the current threshold.
    """
    labels = np.asarray(labels)
    sources = np.arange(len(labels)) if sources is None else np.asarray(sources)
    order = np.argsort(labels, kind="stable")
    embeddings, labels, sources = embeddings[order], labels[order], sources[order]
    distances, same = pair_distances(embeddings, labels)  # every pair: the samples count copies among them
    verify_sample, annotate_sample = _samples(distances, same, labels)
    if len(np.unique(sources)) < len(sources):  # rows of one photo are never a pair
        i, j = np.triu_indices(len(labels), k=1)
        keep = sources[i] != sources[j]
        distances, same = distances[keep], same[keep]
    people = sorted(set(labels.tolist()))
    trial_sets = [run_trials(embeddings, labels, embeddings, labels, rule, n, draws if n else 1, sources, sources,
                             leave_out=people if len(people) > 1 else None) for n in (1, None)]
    annotate, _ = annotate_threshold(trial_sets, rule)
    at_current = None
    if current_annotate is not None:
        at_current = {"one_photo": trial_sets[0].counts(current_annotate, rule),
                      "all_photos": trial_sets[1].counts(current_annotate, rule)}
    ceiling_verify = current_verify if ceiling_verify is None else ceiling_verify
    ceiling_annotate = current_annotate if ceiling_annotate is None else ceiling_annotate
    verify, verify_capped = _capped(_floor3(np.clip(verify_threshold_at(distances, same), *THRESHOLD_RANGE)),
                                    ceiling_verify, verify_sample, VERIFY_PAIRS_NEEDED, len(people))
    annotate, annotate_capped = _capped(_floor3(np.clip(annotate, *THRESHOLD_RANGE)), ceiling_annotate,
                                        annotate_sample, ANNOTATE_STRANGERS_NEEDED, len(people))
    return Recommendation(
        same=summary(distances[same]), different=summary(distances[~same]),
        verify_threshold=verify, annotate_threshold=annotate,
        verify_at_current=accuracy_at(distances, same, current_verify) if current_verify is not None else None,
        annotate_at_current=at_current, verify_sample=verify_sample, annotate_sample=annotate_sample,
        verify_capped=verify_capped, annotate_capped=annotate_capped,
        verify_at_recommended=accuracy_at(distances, same, verify),
        annotate_at_recommended={"one_photo": trial_sets[0].counts(annotate, rule),
                                 "all_photos": trial_sets[1].counts(annotate, rule)},
        people=len(people), photos=len(labels))


def _samples(distances: np.ndarray, same: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """(different-people pairs, photos), copies of one photo counted once (`distinct_photos`);
    from pair_distances' of every pair of rows."""
    group = distinct_photos(distances, same, len(labels))
    firsts = np.unique(group)  # each group's id is its first row
    per_person = np.unique(labels[firsts], return_counts=True)[1].astype(np.int64)
    photos = len(firsts)
    return int((photos * photos - int(np.sum(per_person ** 2))) // 2), photos
