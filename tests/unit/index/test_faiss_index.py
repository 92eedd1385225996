"""index.faiss_index: the size rule, both index kinds, our ids, serialisation."""
from __future__ import annotations

import numpy as np
import pytest

from index import faiss_index


def normalised(count: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_rule_switches_to_hnsw_above_the_exact_limit():
    limit = faiss_index.EXACT_MAX_VECTORS
    assert faiss_index.index_kind_for(1) == "flat_ip"
    assert faiss_index.index_kind_for(limit) == "flat_ip"
    assert faiss_index.index_kind_for(limit + 1) == "hnsw_ip"


@pytest.mark.parametrize("kind", ["flat_ip", "hnsw_ip"])
def test_scores_are_cosines_and_ids_are_ours(kind):
    vectors = normalised(500)
    ids = np.arange(1000, 1500, dtype=np.int64)
    index = faiss_index.build_index(vectors, ids, kind=kind)
    scores, found = index.search(vectors[:20], 3)
    assert found[:, 0].tolist() == ids[:20].tolist()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    expected = vectors[:20] @ vectors[found[:, 1] - 1000].T
    np.testing.assert_allclose(scores[:, 1], np.diag(expected), atol=1e-5)


def test_hnsw_recall_against_exact_search():
    vectors, queries = normalised(5000, seed=1), normalised(200, seed=2)
    ids = np.arange(5000)
    _, exact = faiss_index.build_index(vectors, ids, kind="flat_ip").search(queries, 10)
    _, approx = faiss_index.build_index(vectors, ids, kind="hnsw_ip").search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, exact)])
    # Random 32-d vectors are a hard case for graph search; at efSearch 128 recall stays high.
    assert recall > 0.9


def test_serialised_index_searches_the_same():
    vectors = normalised(300)
    index = faiss_index.build_index(vectors, np.arange(300))
    copy = faiss_index.deserialize(faiss_index.serialize(index))
    assert copy.ntotal == 300
    np.testing.assert_array_equal(copy.search(vectors[:5], 4)[1], index.search(vectors[:5], 4)[1])


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown index kind"):
        faiss_index.build_index(normalised(10), np.arange(10), kind="lsh")
