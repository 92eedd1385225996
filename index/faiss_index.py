"""FAISS index construction. The index type follows the gallery size by one recorded rule."""
from __future__ import annotations

import logging

import faiss
import numpy as np

log = logging.getLogger(__name__)

# Exact search stays fast enough below this many vectors (brute-force IP is a GEMM);
# above it, HNSW keeps query time sub-linear at a small recall cost (see jobs.benchmark).
EXACT_MAX_VECTORS = 1_000_000
HNSW_M = 32
HNSW_EF_SEARCH = 128


def index_kind_for(count: int) -> str:
    return "flat_ip" if count <= EXACT_MAX_VECTORS else "hnsw_ip"


def build_index(embeddings: np.ndarray, ids: np.ndarray, kind: str | None = None) -> faiss.Index:
    """Inner-product index over L2-normalised vectors (so scores are cosines), with our ids."""
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    dim = embeddings.shape[1]
    kind = kind or index_kind_for(len(embeddings))
    if kind == "flat_ip":
        base = faiss.IndexFlatIP(dim)
    elif kind == "hnsw_ip":
        base = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        raise ValueError(f"unknown index kind {kind}")
    index = faiss.IndexIDMap2(base)
    index.add_with_ids(embeddings, np.asarray(ids, dtype=np.int64))
    return index


def gpu_count() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def to_search_device(index: faiss.Index, use_gpu: bool | None = None) -> faiss.Index:
    """Copy a flat index to the GPU when faiss-gpu sees one; HNSW stays on CPU (no GPU HNSW)."""
    use_gpu = gpu_count() > 0 if use_gpu is None else use_gpu
    if not use_gpu:
        return index
    if not hasattr(faiss, "StandardGpuResources"):
        raise RuntimeError("use_gpu requested but this faiss build has no GPU support (install faiss-gpu)")
    resources = faiss.StandardGpuResources()
    try:
        return faiss.index_cpu_to_gpu(resources, 0, index)
    except RuntimeError as exc:  # e.g. HNSW: keep CPU
        log.warning("index stays on CPU: %s", exc)
        return index


def serialize(index: faiss.Index) -> bytes:
    return faiss.serialize_index(index).tobytes()


def deserialize(data: bytes) -> faiss.Index:
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
