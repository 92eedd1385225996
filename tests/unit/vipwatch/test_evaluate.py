"""Metrics on a case small enough to work out by hand, and video aggregation."""
import numpy as np
import pandas as pd
import pytest

from vipwatch.evaluation.forgery_metrics import equal_error_rate, expected_calibration_error, report, tpr_at_fpr
from vipwatch.evaluation.video_verdicts import video_verdicts


def test_metrics_on_four_points():
    # real 0.1, 0.4; fake 0.35, 0.8. Pairs (fake > real): 0.35>0.1, 0.8>0.1, 0.8>0.4 -> AUC 3/4.
    # Threshold 0.4 flags 1 of 2 reals (FPR .5) and misses 0.35 (FNR .5): EER 0.5.
    # Only threshold 0.8 has FPR 0: TPR 0.5 there.
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    r = report(labels, scores, probability=True)
    assert r["auc"] == pytest.approx(0.75) and r["eer"] == pytest.approx(0.5)
    assert r["tpr_at_fpr_1pct"] == pytest.approx(0.5) and (r["real"], r["fake"]) == (2, 2)
    # ECE, 10 bins: 0.1 (label 0) -> .1; 0.35 (1) -> .65; 0.4 (0) -> .4; 0.8 (1) -> .2; mean 1.35/4.
    assert r["ece"] == pytest.approx(1.35 / 4)


def test_perfect_and_inverted_scores():
    labels = np.array([0, 0, 1, 1])
    assert equal_error_rate(labels, np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(0.0)
    assert tpr_at_fpr(labels, np.array([0.9, 0.8, 0.2, 0.1])) == pytest.approx(0.0)
    assert expected_calibration_error(labels, np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.0)
    assert report(np.array([0, 0]), np.array([0.1, 0.2]), True)["auc"] is None


def test_video_verdict_by_majority_of_vip_frames():
    # One face per frame at about the same place: one track per video (vipwatch/evaluation/video_verdicts.py).
    box = [100.0, 100.0, 200.0, 220.0]
    frames = pd.DataFrame({
        "image_uri": ["a.mp4"] * 3 + ["b.mp4"] * 2 + ["c.jpg"],
        "media_type": ["video"] * 5 + ["image"], "frame_index": [0, 25, 50, 0, 25, None],
        "bbox": [box, [104.0, 98.0, 204.0, 218.0], box, box, box, box],
        "forgery_score": [0.9, 0.8, 0.1, 0.2, 0.3, 0.99], "identity_id": ["x", "x", "x", None, None, "x"],
        "verdict": ["suspected_forgery", "suspected_forgery", "authentic", "unverified", "unverified",
                    "suspected_forgery"]})
    out = video_verdicts(frames).set_index("image_uri")
    assert list(out.index) == ["a.mp4", "b.mp4"]
    assert out.loc["a.mp4", "verdict"] == "suspected_forgery" and out.loc["a.mp4", "mean_score"] == pytest.approx(0.6)
    assert out.loc["a.mp4", "tracks"] == 1 and out.loc["a.mp4", "flagged_tracks"] == 1
    assert out.loc["b.mp4", "verdict"] == "unverified" and out.loc["b.mp4", "max_score"] == pytest.approx(0.3)


def test_video_rows_without_boxes_or_embeddings_form_one_track_per_video():
    frames = pd.DataFrame({
        "image_uri": ["a.mp4"] * 3, "media_type": ["video"] * 3, "frame_index": [0, 25, 50],
        "forgery_score": [0.9, 0.8, 0.1], "identity_id": [None] * 3,
        "verdict": ["suspected_forgery", "suspected_forgery", "authentic"]})
    out = video_verdicts(frames).iloc[0]
    assert out["tracks"] == 1 and out["verdict"] == "suspected_forgery"
    frames["verdict"] = ["suspected_forgery", "authentic", "authentic"]
    assert video_verdicts(frames).iloc[0]["verdict"] == "authentic"
