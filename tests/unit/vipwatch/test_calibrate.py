"""Fusion fitting on real signals: output monotone in each signal, in [0, 1], threshold at the
target false-alarm rate, and the artefact round-trips."""
import numpy as np
import pandas as pd
import pytest

from vipwatch.evaluation.calibrate import IDENTITY_FEATURES, calibrate
from operators.forgery.fusion import FusionModel


@pytest.fixture(scope="module")
def signal_frame(onnx_gallery, onnx_analyzer, tmp_path_factory):
    from vipwatch.evaluation.swaps import make_swaps
    from operators.face_analyzer import FaceAnalyzer
    from operators.forgery.scorer import ForgeryScorer
    from operators.matcher import GalleryMatcher
    from operators.decode import ImageDecoder
    from operators.runner import ChainRunner
    from tests.support.shared_data import FACES_ALIGNED, MODELS
    from core.config import ForgeryConfig
    from tests.support.fusions import ONNX_IDENTITY_ONLY
    from vipwatch.evaluation.forgery_runs import labelled_uris, score_labelled

    out = tmp_path_factory.mktemp("calib_swaps")
    make_swaps(str(FACES_ALIGNED), str(out), per_identity=5, seed=5)
    analyzer = FaceAnalyzer(onnx_analyzer.model_config, aligned=True, pack=onnx_analyzer.pack)
    matcher = GalleryMatcher(onnx_gallery)
    scorer = ForgeryScorer(gallery=matcher.gallery, pack=onnx_analyzer.pack,
                           forgery=ForgeryConfig(detectors=[f"mesonet:{MODELS / 'mesonet' / 'Meso4_DF.h5'}"],
                                                 fusion_model=ONNX_IDENTITY_ONLY))
    return score_labelled(labelled_uris(str(out / "real"), str(out / "fake")),
                          ChainRunner([ImageDecoder(), analyzer, matcher, scorer]))


def test_fusion_is_monotone_bounded_and_thresholded(signal_frame, tmp_path):
    fusion = calibrate(signal_frame, target_fpr=0.05)
    vip = fusion.head(True)
    assert set(IDENTITY_FEATURES) <= set(vip.features)
    rows = signal_frame[signal_frame["vip"]].dropna(subset=vip.features)
    p = vip.predict(rows[vip.features].to_dict("records"))
    assert ((p >= 0) & (p <= 1)).all()
    assert (p[rows["label"].to_numpy() == 0] >= vip.threshold).mean() <= 0.05
    for feature in vip.features:
        sweep = rows[vip.features].median().to_dict()
        values = []
        for x in np.linspace(rows[feature].min(), rows[feature].max(), 9):
            values.append(float(vip.predict([{**sweep, feature: x}])[0]))
        assert np.all(np.diff(values) >= 0) or np.all(np.diff(values) <= 0), feature
    # Identity deficit must push towards "fake" on real data.
    assert vip.coef[vip.features.index("identity_deficit")] > 0 or vip.coef[vip.features.index("inner_whole_gap")] > 0
    # The bound and monotonicity above hold for any logistic head; what the fit must learn is the
    # direction: a face less like its VIP's references scores as more likely fake.
    low, high = rows["identity_deficit"].quantile([0.1, 0.9])
    median = rows[vip.features].median().to_dict()
    assert vip.predict([{**median, "identity_deficit": high}])[0] > vip.predict([{**median, "identity_deficit": low}])[0]
    fusion.save(str(tmp_path / "fusion.json"))
    again = FusionModel.load(str(tmp_path / "fusion.json"))
    assert again.version == fusion.version and np.allclose(again.head(True).predict(rows[vip.features].to_dict("records")), p)


def test_refuses_a_single_class_set(signal_frame):
    with pytest.raises(ValueError):
        calibrate(signal_frame[signal_frame["label"] == 0].assign(vip=False).drop(
            columns=[c for c in signal_frame.columns if c.startswith("artefact:")]))
