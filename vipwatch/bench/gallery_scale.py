"""FAISS at gallery scale on synthetic vectors: build time, memory, batch query throughput and
recall@10 against exact search, for the index kind index.faiss_index chooses and the others."""
from __future__ import annotations

import json
import time

import numpy as np


def synthetic_gallery(count: int, dim: int, rng: np.random.Generator, per_identity: int = 10) -> np.ndarray:
    """Clustered like a face gallery: identities are random directions, references are noisy
    copies (same-identity cosine ~0.5, as mobilefacenet gives on faces_aligned)."""
    centres = rng.standard_normal((max(1, count // per_identity), dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    owners = rng.integers(0, len(centres), count)
    vectors = centres[owners] + rng.standard_normal((count, dim), dtype=np.float32) * (1.0 / np.sqrt(dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _build(kind: str, vectors: np.ndarray, ids: np.ndarray):
    import faiss

    from index import faiss_index

    if kind in ("flat_ip", "hnsw_ip"):
        return faiss_index.build_index(vectors, ids, kind=kind)
    # IVF: nlist ~ 4 sqrt(n), trained on a sample (not chosen by the rule; shown as the other option).
    nlist = int(4 * np.sqrt(len(vectors)))
    quantiser = faiss.IndexFlatIP(vectors.shape[1])
    ivf = faiss.IndexIVFFlat(quantiser, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(1).choice(len(vectors), min(len(vectors), 64 * nlist), replace=False)]
    ivf.train(sample)
    ivf.nprobe = 32
    index = faiss.IndexIDMap2(ivf)
    index.add_with_ids(vectors, ids)
    return index


def gallery_benchmark(sizes: list[int], dims: list[int], kinds: list[str], queries: int, k: int,
                      hnsw_max: int, use_gpu: bool) -> dict:
    import faiss

    from index import faiss_index

    results = []
    for dim in dims:
        for size in sizes:
            rng = np.random.default_rng(size + dim)
            vectors = synthetic_gallery(size, dim, rng)
            ids = np.arange(size, dtype=np.int64)
            # Queries: other noisy views of enrolled identities (same-identity cosine ~0.5).
            probes = vectors[rng.integers(0, size, queries)] + rng.standard_normal((queries, dim), dtype=np.float32) / np.sqrt(dim)
            probes = np.ascontiguousarray(probes / np.linalg.norm(probes, axis=1, keepdims=True), dtype=np.float32)
            exact = None
            chosen = faiss_index.index_kind_for(size)
            for kind in kinds:
                if kind == "hnsw_ip" and size > hnsw_max:
                    results.append({"dim": dim, "size": size, "kind": kind, "skipped": f"HNSW build above {hnsw_max} "
                                    "vectors takes too long on this 2-core machine (see the projection in docs/performance.md)"})
                    print(json.dumps(results[-1]), flush=True)
                    continue
                before = _rss_mb()
                started = time.perf_counter()
                index = _build(kind, vectors, ids)
                build_s = time.perf_counter() - started
                rss_delta_mb = _rss_mb() - before
                index_mb = len(faiss.serialize_index(index)) / 2**20
                search_index = faiss_index.to_search_device(index, use_gpu) if use_gpu else index
                search_index.search(probes[:16], k)  # warm-up
                started = time.perf_counter()
                _, found = search_index.search(probes, k)
                query_s = time.perf_counter() - started
                if kind == "flat_ip":
                    exact = found
                recall = None
                if exact is not None:
                    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)]))
                results.append({"dim": dim, "size": size, "kind": kind, "chosen_by_rule": kind == chosen,
                                "build_s": round(build_s, 2), "index_mb": round(index_mb, 1),
                                "rss_delta_mb": round(rss_delta_mb, 1),
                                "queries_per_s": round(queries / query_s, 1), "recall_at_10": recall,
                                "device": "gpu" if use_gpu else "cpu", "faiss_threads": faiss.omp_get_max_threads()})
                print(json.dumps(results[-1]), flush=True)
                del index, search_index
    return {"mode": "gallery", "queries": queries, "k": k, "vectors": "synthetic, L2-normalised, clustered",
            "rule": f"flat_ip up to {faiss_index.EXACT_MAX_VECTORS} vectors, hnsw_ip above", "results": results}
