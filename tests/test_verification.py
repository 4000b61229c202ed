"""facebatch.verification's decision, on made-up embeddings: no TensorFlow, no photos."""
import math

import numpy as np

from facebatch.pipeline import PhotoEmbedding
from facebatch.verification import _compare


def test_a_distance_exactly_at_the_threshold_is_same():
    # SAME when distance <= threshold, as calibration measures it (calibration.accuracy_at and
    # verify_threshold_at count a pair at the threshold as SAME)
    a = PhotoEmbedding("a.jpg", np.array([1, 0, 0], np.float32), 1)
    b = PhotoEmbedding("b.jpg", np.array([0.6, 0.8, 0], np.float32), 1)
    distance = _compare(a, b, 1.5).distance
    assert 0.8 < distance < 1.0
    assert _compare(a, b, distance).same is True
    assert _compare(a, b, math.nextafter(distance, 0)).same is False
