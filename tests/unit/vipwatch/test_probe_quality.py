"""Probe pose from five landmarks: the yaw proxy by hand, and SCRFD on real aligned crops and photos."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.shared_data import DATA, FACES_ALIGNED
from vipwatch.evaluation.probe_quality import NEAR_FRONTAL_YAW, ProbePose, probe_pose, yaw_proxy


def test_yaw_proxy_by_hand():
    # Eyes 40 px apart at x 30 and 70 (midpoint 50). Nose under the midpoint: frontal, 0.
    assert yaw_proxy(np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]])) == pytest.approx(0.0)
    # Nose 12 px to the side: 12 / 40 = 0.3, whichever side.
    assert yaw_proxy(np.array([[30, 40], [70, 40], [62, 60], [35, 80], [65, 80]])) == pytest.approx(0.3)
    assert yaw_proxy(np.array([[30, 40], [70, 40], [38, 60], [35, 80], [65, 80]])) == pytest.approx(0.3)


def test_unmeasured_pose_fails_the_floor():
    pose = ProbePose(yaw=np.array([0.1, 0.5, np.nan]), inter_ocular_px=np.array([30.0, 30.0, np.nan]))
    assert pose.near_frontal(0.35).tolist() == [True, False, False]


def test_scrfd_pose_of_frontal_and_profile_crops_and_a_photo(onnx_analyzer):
    # barack_obama/010 looks at the camera; drew_barrymore/019 is a profile (viewed: nose at the crop's edge).
    crops = [str(FACES_ALIGNED / "barack_obama" / "010.png"), str(FACES_ALIGNED / "drew_barrymore" / "019.png")]
    pose = probe_pose(crops, onnx_analyzer.pack, aligned=True)
    assert pose.yaw[0] < 0.1 < NEAR_FRONTAL_YAW < 1.0 < pose.yaw[1]
    assert pose.near_frontal().tolist() == [True, False]
    # Aligned crops put the eyes ~36 px apart (ArcFace template: 73.5 - 38.3 px).
    assert 25 < pose.inter_ocular_px[0] < 45
    # A full LFW photo (250 px, face ~110 px): measured in the photo's pixels.
    photo = str(DATA / "lfw" / "lfw-deepfunneled" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg")
    measured = probe_pose([photo], onnx_analyzer.pack, aligned=False)
    assert np.isfinite(measured.yaw[0]) and 30 < measured.inter_ocular_px[0] < 80
