"""Open-set threshold calibration."""
from __future__ import annotations

import numpy as np
import pytest

from index import calibration


def test_threshold_keeps_fpir_at_or_below_target():
    rng = np.random.default_rng(0)
    impostors = rng.normal(0.2, 0.1, 1000).astype(np.float32)
    for target in (0.001, 0.01, 0.05, 0.2):
        threshold = calibration.threshold_at_fpir(impostors, target)
        assert calibration.rate_at(impostors, threshold) <= target
        # and not needlessly strict: one step lower would exceed the target
        assert calibration.rate_at(impostors, threshold - 1e-3) > target or target * 1000 < 1


def test_ties_do_not_leak_past_the_threshold():
    """Leave-one-identity-out scores come in symmetric pairs: ties must not both pass."""
    scores = np.array([0.1, 0.3, 0.5, 0.5, 0.9, 0.9], dtype=np.float32)
    threshold = calibration.threshold_at_fpir(scores, 0.2)  # one allowed, but the top two tie
    assert calibration.rate_at(scores, threshold) == 0.0


def test_leave_one_identity_out_scores():
    embeddings = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8]], dtype=np.float32)
    identities = np.array(["a", "a", "b", "b"])
    impostor = calibration.best_other_identity_scores(embeddings, identities)
    genuine = calibration.best_same_identity_scores(embeddings, identities)
    np.testing.assert_allclose(impostor, [0.6, 0.96, 0.6, 0.96], atol=1e-6)
    np.testing.assert_allclose(genuine, [0.8, 0.8, 0.8, 0.8], atol=1e-6)


def test_no_impostors_is_an_error():
    with pytest.raises(ValueError):
        calibration.threshold_at_fpir(np.array([]), 0.01)


def test_block_wise_scores_equal_the_dense_matrix(monkeypatch):
    """Galleries are scored in row blocks (no N x N matrix); any block size gives the same answer."""
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(300, 16)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    identities = rng.integers(0, 7, 300).astype(str)
    dense = embeddings @ embeddings.T
    same = identities[:, None] == identities[None, :]
    other_expected = np.where(same, -np.inf, dense).max(axis=1)
    np.fill_diagonal(same, False)
    same_expected = np.where(same, dense, -np.inf).max(axis=1)
    for block in (7, 300, 4096):
        monkeypatch.setattr(calibration, "BLOCK_ROWS", block)
        np.testing.assert_allclose(calibration.best_other_identity_scores(embeddings, identities), other_expected, atol=1e-6)
        np.testing.assert_allclose(calibration.best_same_identity_scores(embeddings, identities), same_expected, atol=1e-6)
    # The element cap (large galleries) shrinks blocks further: 1,500 similarities = 5 rows of 300.
    monkeypatch.setattr(calibration, "BLOCK_ELEMENTS", 1500)
    np.testing.assert_allclose(calibration.best_other_identity_scores(embeddings, identities), other_expected, atol=1e-6)
    np.testing.assert_allclose(calibration.best_same_identity_scores(embeddings, identities), same_expected, atol=1e-6)


def test_large_galleries_are_scored_on_a_fixed_sample_of_probes():
    """Above max_probes the scores are those of a deterministic sample of rows, each one exactly
    its row's dense score: the cost is probes x N, and the same gallery gives the same threshold."""
    rng = np.random.default_rng(2)
    embeddings = rng.normal(size=(500, 16)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    identities = rng.integers(0, 9, 500).astype(str)
    everything = calibration.best_other_identity_scores(embeddings, identities)
    sampled = calibration.best_other_identity_scores(embeddings, identities, max_probes=120)
    rows = calibration.probe_rows(500, 120)
    assert len(sampled) == len(rows) == 120 and len(set(rows.tolist())) == 120
    np.testing.assert_allclose(sampled, everything[rows], atol=1e-6)
    np.testing.assert_array_equal(rows, calibration.probe_rows(500, 120))
    genuine = calibration.best_same_identity_scores(embeddings, identities, max_probes=120)
    np.testing.assert_allclose(genuine, calibration.best_same_identity_scores(embeddings, identities)[rows], atol=1e-6)


def test_impostor_scores_against_other_targets():
    """Probes scored against per-identity centroids (the forgery scorer's inner-face floor): the
    best cosine to a centroid of another identity, block-wise equal to the dense result."""
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(200, 16)).astype(np.float32)
    identities = rng.integers(0, 6, 200).astype(str)
    owners = np.array([str(i) for i in range(6)])
    centroids = rng.normal(size=(6, 16)).astype(np.float32)
    dense = embeddings @ centroids.T
    expected = np.where(identities[:, None] == owners[None, :], -np.inf, dense).max(axis=1)
    scores = calibration.best_other_identity_scores(embeddings, identities, targets=centroids, target_ids=owners)
    np.testing.assert_allclose(scores, expected, atol=1e-6)
