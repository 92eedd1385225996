"""The measured precondition of a training-free self-consistency signal, on real aligned faces and
the ONNX pack: a face's inner crop and outer ring are NOT embedded as the same person (their
direct cosine tells one face from two people at chance), while like-with-like comparisons and the
cohort-profile variant do carry identity. Fails if the regions or the embedder change that."""
from tests.support.shared_data import FACES_ALIGNED
from vipwatch.evaluation.self_consistency_check import check


def test_direct_inner_outer_cosine_carries_no_identity_but_like_with_like_does(onnx_analyzer):
    result = check(onnx_analyzer.pack, FACES_ALIGNED, per_identity=6, skip=10, resamples=30)
    auc = result["auc"]
    assert result["faces"] >= 80 and result["identities"] == 14
    assert 0.4 < auc["cross_region_own_face_vs_two_people"] < 0.62
    assert auc["inner_vs_inner_same_person_vs_two_people"] > 0.8
    assert auc["outer_vs_outer_same_person_vs_two_people"] > 0.7
    assert result["profile"]["profile_own_face_vs_two_people"] > 0.6
