"""facebatch.calibration on synthetic embeddings: no TensorFlow, no photos."""
import numpy as np
import pytest

from facebatch import calibration
from facebatch.calibration import Rule


def clusters(people=6, photos=8, spread=0.35, dim=32, seed=0):
    """Unit embeddings: each person a random direction plus noise; labels and sources."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((people, dim))
    rows, labels = [], []
    for p in range(people):
        for _ in range(photos):
            rows.append(centres[p] / np.linalg.norm(centres[p]) + spread * rng.standard_normal(dim) / np.sqrt(dim))
            labels.append(f"person{p}")
    emb = np.array(rows, np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True), np.array(labels)


def test_pair_distances_and_summary():
    emb, labels = clusters(people=3, photos=4)
    d, same = calibration.pair_distances(emb, labels)
    assert len(d) == 12 * 11 // 2 and same.sum() == 3 * 6
    s = calibration.summary(d[same])
    assert s["count"] == 18 and s["q0"] <= s["q50"] <= s["q100"]
    assert calibration.summary(d[~same])["q50"] > s["q50"]


def test_pairs_of_the_same_source_are_left_out():
    emb, labels = clusters(people=2, photos=2)
    d, same = calibration.pair_distances(emb, labels, sources=np.array([0, 0, 1, 2]))
    assert len(d) == 5


def test_accuracy_at_counts_both_errors():
    d = np.array([0.5, 0.9, 1.1, 1.3])
    same = np.array([True, True, True, False])
    out = calibration.accuracy_at(d, same, 1.0)
    assert out["false_same"] == 0 and out["false_different"] == 1 and out["accuracy"] == 0.75
    assert calibration.accuracy_at(d, same, 1.2)["accuracy"] == 1.0


def test_verify_threshold_allows_at_most_one_false_same_in_a_thousand():
    rng = np.random.default_rng(3)
    d_diff = np.sort(rng.uniform(1.0, 1.6, size=2500))
    d = np.concatenate([rng.uniform(0.3, 1.1, size=500), d_diff])
    same = np.arange(len(d)) < 500
    t = calibration.verify_threshold_at(d, same)
    assert np.sum((d <= t) & ~same) == 2  # floor(0.001 * 2500)
    assert d_diff[1] < t < d_diff[2]
    # too few different-people pairs for 0.1 %: none may be SAME, the threshold sits below the nearest
    small = np.array([0.5, 0.9, 1.0, 1.3])
    assert 0.9 < calibration.verify_threshold_at(small, np.array([True, True, False, False])) < 1.0


def test_verify_threshold_is_the_middle_of_the_gap():
    d = np.array([0.4, 0.6, 0.8, 1.2, 1.4])
    same = np.array([True, True, True, False, False])
    assert calibration.verify_threshold(d, same) == pytest.approx(1.0)


def test_centroid_distance_matches_a_direct_computation():
    emb, labels = clusters(people=3, photos=5, seed=2)
    gallery, probes = emb[:15], emb[[0, 7]]
    owner = np.repeat(np.arange(3), 5)
    mask = np.ones((2, 15), bool)
    mask[0, 0] = False  # probe 0 is photo 0: never compared with itself
    out = calibration.person_distances(probes @ gallery.T, gallery @ gallery.T, owner, mask, 3, Rule("centroid"))
    centroid0 = gallery[1:5].sum(axis=0)
    centroid0 /= np.linalg.norm(centroid0)
    assert out[0, 0] == pytest.approx(np.linalg.norm(probes[0] - centroid0), abs=1e-5)
    nearest = calibration.person_distances(probes @ gallery.T, gallery @ gallery.T, owner, mask, 3, Rule("nearest"))
    assert nearest[1, 2] == pytest.approx(np.linalg.norm(gallery[10:15] - probes[1], axis=1).min(), abs=1e-5)


def test_well_separated_people_are_all_named_and_strangers_rejected():
    emb, labels = clusters(people=6, photos=8, spread=0.3)
    rule = Rule("centroid")
    people = sorted(set(labels))
    trials = [calibration.run_trials(emb, labels, emb, labels, rule, n, 3 if n else 1, leave_out=people)
              for n in (1, None)]
    threshold, missed = calibration.annotate_threshold(trials, rule, max_false_accept=0.0)
    assert missed == 0.0
    balanced, _ = calibration.annotate_threshold(trials, rule, max_false_accept=None)
    assert max(t.known_d1.max() for t in trials) < balanced < min(t.stranger_d1.min() for t in trials)
    for t in trials:
        counts = t.counts(threshold, rule)
        assert counts["named_right"] == counts["known"] and counts["strangers_named"] == 0
        assert counts["strangers"] > 0 and calibration.gap(t) > 0


def test_the_nearest_stranger_comes_closer_with_more_photos_but_not_to_the_centroid():
    emb, labels = clusters(people=8, photos=20, spread=0.9, seed=4)
    people = sorted(set(labels))

    def nearest_stranger(rule, n):
        t = calibration.run_trials(emb, labels, emb, labels, rule, n, 1, leave_out=people)
        return np.quantile(t.stranger_d1, 0.05)

    assert nearest_stranger(Rule("nearest"), 20) < nearest_stranger(Rule("nearest"), 1) - 0.05
    assert abs(nearest_stranger(Rule("centroid"), 20) - nearest_stranger(Rule("centroid"), 1)) < 0.05


def test_recommend_reports_distributions_and_thresholds():
    emb, labels = clusters(people=5, photos=6, spread=0.3, seed=1)
    rec = calibration.recommend(emb, labels, current_verify=1.0, current_annotate=1.0)
    assert rec.same["q100"] < rec.annotate_threshold < rec.different["q50"]
    d, same = calibration.pair_distances(emb, labels)
    assert np.sum((d <= rec.verify_threshold) & ~same) <= calibration.MAX_FALSE_SAME * np.sum(~same)
    assert rec.verify_at_current["accuracy"] == 1.0
    assert rec.annotate_at_current["one_photo"]["strangers_named"] == 0


def test_a_sample_too_small_to_measure_never_loosens_the_thresholds_in_force():
    # 5 people x 6 photos, well apart: 30 photos and 375 different-people pairs measure neither
    # operating point (100 strangers, 1,000 pairs), and the nearest strangers seen are far away.
    emb, labels = clusters(people=5, photos=6, spread=0.3, seed=1)
    d, same = calibration.pair_distances(emb, labels)
    uncapped = calibration.recommend(emb, labels)
    assert min(uncapped.verify_threshold, uncapped.annotate_threshold) > 0.7 > d[same].max()
    rec = calibration.recommend(emb, labels, current_verify=0.6, current_annotate=0.65)
    assert (rec.verify_threshold, rec.annotate_threshold) == (0.6, 0.65)
    assert rec.verify_capped and rec.annotate_capped
    assert (rec.verify_sample, rec.annotate_sample) == (int(np.sum(~same)), 30)


def test_a_small_sample_still_lowers_a_threshold_that_names_its_strangers():
    emb, labels = clusters(people=5, photos=6, spread=1.2, seed=2)  # people overlap
    d, same = calibration.pair_distances(emb, labels)
    current = float(np.quantile(d[~same], 0.5))  # half the different-people pairs SAME
    rec = calibration.recommend(emb, labels, current_verify=current, current_annotate=current)
    assert rec.verify_threshold < current and rec.annotate_threshold < current
    assert not rec.verify_capped and not rec.annotate_capped
    assert np.sum((d <= rec.verify_threshold) & ~same) == 0


def test_a_sample_large_enough_to_measure_may_loosen_the_thresholds():
    emb, labels = clusters(people=12, photos=12, spread=0.3, seed=3)  # 144 photos, 9,504 different pairs
    rec = calibration.recommend(emb, labels, current_verify=0.9, current_annotate=0.9, draws=1)
    assert rec.verify_sample >= calibration.VERIFY_PAIRS_NEEDED
    assert rec.annotate_sample >= calibration.ANNOTATE_STRANGERS_NEEDED
    assert rec.verify_threshold > 0.9 and rec.annotate_threshold > 0.9
    assert not rec.verify_capped and not rec.annotate_capped


def test_the_threshold_names_at_most_the_budgeted_share_of_strangers():
    emb, labels = clusters(people=8, photos=10, spread=1.0, seed=6)
    people = sorted(set(labels))
    rule = Rule("centroid")
    trials = [calibration.run_trials(emb, labels, emb, labels, rule, n, 3 if n else 1, leave_out=people)
              for n in (1, None)]
    for budget in (0.0, 0.01, 0.05):
        threshold, _ = calibration.annotate_threshold(trials, rule, max_false_accept=budget)
        rates = [t.counts(threshold, rule)["strangers_named"] / t.counts(threshold, rule)["strangers"] for t in trials]
        assert np.mean(rates) <= budget + 1e-9


def test_too_few_people_never_loosen_however_many_photos_they_have():
    emb, labels = clusters(people=5, photos=40, spread=0.3, seed=3)  # 200 photos, 16,000 different pairs
    rec = calibration.recommend(emb, labels, current_verify=0.9, current_annotate=0.9, draws=1)
    assert rec.annotate_sample >= calibration.ANNOTATE_STRANGERS_NEEDED
    assert rec.verify_sample >= calibration.VERIFY_PAIRS_NEEDED
    assert (rec.people, rec.verify_threshold, rec.annotate_threshold) == (5, 0.9, 0.9)
    assert rec.verify_capped and rec.annotate_capped


def test_copies_of_one_photo_count_once():
    emb, labels = clusters(people=12, photos=2, spread=0.3, seed=3)
    rng = np.random.default_rng(0)
    copies = np.repeat(emb, 10, axis=0) + 0.005 * rng.normal(size=(len(emb) * 10, emb.shape[1]))
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    rec = calibration.recommend(copies, np.repeat(labels, 10), current_verify=0.9, current_annotate=0.9, draws=1)
    assert (rec.photos, rec.annotate_sample, rec.verify_sample) == (240, 24, (24 * 24 - 12 * 2 * 2) // 2)
    assert rec.annotate_capped and rec.annotate_threshold == 0.9


def test_a_small_sample_is_held_at_the_ceiling_not_at_a_stricter_threshold_in_force():
    # a threshold stored from wrong labels (0.5) does not hold back a calibration on right ones
    emb, labels = clusters(people=5, photos=6, spread=0.3, seed=1)
    measured = calibration.recommend(emb, labels)
    assert 0.5 < min(measured.verify_threshold, measured.annotate_threshold)
    rec = calibration.recommend(emb, labels, current_verify=0.5, current_annotate=0.5,
                                ceiling_verify=1.11, ceiling_annotate=1.12)
    assert (rec.verify_threshold, rec.annotate_threshold) == (measured.verify_threshold, measured.annotate_threshold)
    assert not rec.verify_capped and not rec.annotate_capped
    assert rec.verify_at_current["threshold"] == 0.5
    held = calibration.recommend(emb, labels, current_verify=0.5, current_annotate=0.5,
                                 ceiling_verify=0.6, ceiling_annotate=0.6)
    assert (held.verify_threshold, held.annotate_threshold) == (0.6, 0.6)
    assert held.verify_capped and held.annotate_capped


def test_one_person_left_out_of_a_gallery_of_one_leaves_nobody_to_name():
    emb, labels = clusters(people=1, photos=3, spread=0.3, seed=2)
    trials = calibration.run_trials(emb, labels, emb, labels, Rule("centroid"), None, 1,
                                    leave_out=sorted(set(labels)))
    assert len(trials.stranger_d1) == 3 and np.all(np.isinf(trials.stranger_d1))
    assert trials.counts(1.2, Rule("centroid"))["strangers_named"] == 0


def test_calibrate_reads_at_most_its_budget_of_photos_and_uses_all_of_it():
    from facebatch.calibrating import MAX_PHOTOS, _within_budget

    one_big = [("ada", f"ada/{i:05d}.jpg") for i in range(MAX_PHOTOS)] + [(f"p{i}", f"p{i}/1.jpg") for i in range(20)]
    kept, why = _within_budget(one_big)
    assert len(kept) == MAX_PHOTOS and sum(person != "ada" for person, _ in kept) == 20
    assert why.startswith("at most 4980 of each person's photos") and "people" not in why
    crowd = [(f"p{i:05d}", f"p{i:05d}/{j}.jpg") for i in range(2600) for j in range(2)]
    kept, why = _within_budget(crowd)
    assert len(kept) == MAX_PHOTOS and why.endswith("of the first 2,500 people by name")
    assert _within_budget(crowd[:100]) == (crowd[:100], "")


def test_thresholds_are_stored_rounded_down_to_three_decimals():
    # rounded down, the stricter way: 0.8129 must not become a looser 0.813
    assert calibration._floor3(0.8129) == 0.812
    # a value already of 3 decimals stays, even when its float is a hair below (1.001 * 1000 < 1001)
    assert calibration._floor3(0.812) == 0.812 and calibration._floor3(1.001) == 1.001


def test_a_pair_at_the_threshold_counts_as_same():
    out = calibration.accuracy_at(np.array([0.5, 0.5]), np.array([True, False]), 0.5)
    assert (out["false_different"], out["false_same"]) == (0, 1)


def test_rows_from_one_photo_are_never_a_pair_in_recommend():
    # person0 and person1 each have a 7th face, both from one group photo (one source): the two are
    # never compared, so that pair is missing from the different-people distances
    emb, labels = clusters(people=5, photos=7, spread=0.3, seed=1)
    sources = np.arange(len(labels))
    sources[13] = sources[6]  # rows 6 (person0's last) and 13 (person1's last): the same photo
    d, same = calibration.pair_distances(emb, labels)
    rec = calibration.recommend(emb, labels, sources=sources)
    assert rec.different["count"] == np.sum(~same) - 1 and rec.same["count"] == np.sum(same)


def test_distinct_photos_never_joins_photos_of_different_people_however_near():
    # rows 0 and 2: one photo of ann twice (a copy); row 1: the same pixels filed under bob
    emb = np.array([[1, 0], [1, 0], [1, 0]], np.float32)
    d, same = calibration.pair_distances(emb, np.array(["ann", "bob", "ann"]))
    assert calibration.distinct_photos(d, same, 3).tolist() == [0, 1, 0]


def test_with_no_candidate_within_the_budget_the_strictest_is_taken():
    # Every trial set names no stranger below its smallest distance, so only a budget below zero
    # reaches this fallback; it must then be the strictest threshold, never the loosest.
    trials = calibration.Trials(known_right=np.array([True]), known_d1=np.array([0.4]), known_d2=np.array([1.2]),
                                stranger_d1=np.array([0.9, 1.1]), stranger_d2=np.array([1.3, 1.4]))
    assert calibration._largest_within(trials, Rule("centroid"), -1.0) == pytest.approx(0.4 - 1e-3)
