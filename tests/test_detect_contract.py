"""What detect.py relies on inside mtcnn, pinned at 1.0.0: fails loudly if an upgrade moves it."""
from importlib.metadata import version

import pytest

from facebatch.detect import DETECTORS, DetectorSettings, MtcnnDetector, make_detector


def test_mtcnn_is_the_pinned_version_with_the_members_we_use():
    assert version("mtcnn") == "1.0.0"
    from mtcnn.stages import StageONet, StagePNet, StageRNet
    from mtcnn.utils.bboxes import fix_bboxes_offsets, limit_bboxes, to_json  # noqa: F401
    from mtcnn.utils.images import standarize_batch  # noqa: F401

    for stage in (StagePNet(), StageRNet(), StageONet()):
        assert callable(stage._model)


def test_detectors_are_chosen_by_name():
    assert DETECTORS["mtcnn"] is MtcnnDetector
    with pytest.raises(ValueError, match="unknown detector 'nope'; choose one of: mtcnn"):
        make_detector(DetectorSettings(name="nope"))
