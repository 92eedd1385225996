"""FAISS at gallery scale, measured by what a match decision needs: is the best identity right
(top-1 identity recall), and what happens at the gallery threshold (hit, wrong identity, miss;
false alarms of people who are not enrolled), for exact search and tuned HNSW / IVF indexes.

The vectors are synthetic but shaped like face embeddings: identities with several references
each, whose same-identity and different-identity cosines follow the distributions measured on
real faces (MobileFaceNet on ../shared/data/faces_aligned; see MOBILEFACENET_128). Probes are
fresh views of enrolled identities (genuine) and of identities that are not enrolled (impostors).
The threshold is set as Gallery.build sets it from an impostor cohort (index.calibration at the
target FPIR, on one half of the impostor probes) and checked on the other half.
"""
from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass

import numpy as np

from index import calibration, faiss_index

# References are generated (and exact search is run) in chunks of this many rows, so a gallery of
# a million 512-d references is never held twice.
CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class CosineStats:
    """Same-identity and different-identity cosine distributions of an embedder."""
    genuine_mean: float
    genuine_std: float
    impostor_mean: float
    impostor_std: float


# Measured on ../shared/data/faces_aligned (1,048 aligned crops of 14 identities, all pairs) with
# ../shared/models/mobilefacenet_128.onnx, 2026-12-03 (measure_cosine_stats; jobs.benchmark
# --gallery-cosines). No 512-d embedder is in ../shared, so 512-d
# runs use the same distributions: the index sees the same geometry at four times the cost.
MOBILEFACENET_128 = CosineStats(genuine_mean=0.506, genuine_std=0.172, impostor_mean=0.031, impostor_std=0.104)


def measure_cosine_stats(embedder_onnx: str, aligned_faces_dir: str) -> dict:
    """The numbers behind MOBILEFACENET_128: every pair of crops in an aligned-faces folder
    (``<identity>/<n>.png``, 112x112 on the ArcFace template) embedded by an ArcFace-style ONNX
    model ((x - 127.5) / 128, RGB), same vs different identity."""
    from pathlib import Path

    import cv2
    import onnxruntime

    session = onnxruntime.InferenceSession(embedder_onnx, providers=["CPUExecutionProvider"])
    paths = sorted(Path(aligned_faces_dir).glob("*/*.png"))
    owners = np.array([path.parent.name for path in paths])
    embeddings = []
    for start in range(0, len(paths), 64):
        crops = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths[start:start + 64]])
        batch = ((crops.astype(np.float32) - 127.5) / 128).transpose(0, 3, 1, 2)
        embeddings.append(session.run(None, {session.get_inputs()[0].name: batch})[0])
    vectors = np.concatenate(embeddings)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    upper = np.triu_indices(len(vectors), 1)
    cosines = (vectors @ vectors.T)[upper]
    same = (owners[:, None] == owners[None, :])[upper]
    return {"crops": len(paths), "identities": len(set(owners)), "genuine_pairs": int(same.sum()),
            "genuine_mean": round(float(cosines[same].mean()), 3), "genuine_std": round(float(cosines[same].std()), 3),
            "impostor_pairs": int((~same).sum()), "impostor_mean": round(float(cosines[~same].mean()), 3),
            "impostor_std": round(float(cosines[~same].std()), 3)}


class SyntheticFaces:
    """Identity-clustered unit vectors. A view of identity c is
    ``sqrt(m) u + sqrt(1-m) (a c + sqrt(1-a^2) n)`` with u a direction common to all faces (the
    impostor mean m), c and n drawn from an anisotropic Gaussian whose effective dimension gives
    the impostor spread, and a per-view quality a (its mean and spread give the genuine cosines)."""

    def __init__(self, dim: int, stats: CosineStats = MOBILEFACENET_128, seed: int = 0):
        self.dim, self.stats, self.seed = dim, stats, seed
        self.shared = float(stats.impostor_mean)
        spread = stats.impostor_std / (1 - self.shared)
        self.scale = _spectrum_for_spread(dim, spread)
        rng = np.random.default_rng([seed, 1])
        common = rng.standard_normal(dim)
        self.common = (common / np.linalg.norm(common)).astype(np.float32)
        # E[a1 a2] = mean^2 and Var[a1 a2] = 2 mean^2 var + var^2 give the genuine mean and spread.
        target_mean = (stats.genuine_mean - self.shared) / (1 - self.shared)
        target_var = (stats.genuine_std / (1 - self.shared)) ** 2 - spread ** 2 * (1 - target_mean) ** 2
        self.quality_mean = float(np.sqrt(max(target_mean, 1e-6)))
        mean_sq = self.quality_mean ** 2
        self.quality_std = float(np.sqrt(max(0.0, -mean_sq + np.sqrt(mean_sq ** 2 + max(target_var, 0.0)))))

    def directions(self, count: int, rng: np.random.Generator) -> np.ndarray:
        vectors = rng.standard_normal((count, self.dim), dtype=np.float32) * self.scale
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def identity_centres(self, count: int, stream: int) -> np.ndarray:
        return self.directions(count, np.random.default_rng([self.seed, 2, stream]))

    def views(self, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        quality = np.clip(rng.normal(self.quality_mean, self.quality_std, (len(centres), 1)), 0.02, 0.99)
        quality = quality.astype(np.float32)
        own = quality * centres + np.sqrt(1 - quality ** 2) * self.directions(len(centres), rng)
        own /= np.linalg.norm(own, axis=1, keepdims=True)
        faces = np.sqrt(self.shared) * self.common + np.sqrt(1 - self.shared) * own
        return np.ascontiguousarray(faces / np.linalg.norm(faces, axis=1, keepdims=True), dtype=np.float32)


def _spectrum_for_spread(dim: int, spread: float) -> np.ndarray:
    """Per-axis scales k^-p whose effective dimension (sum s^2)^2 / sum s^4 = 1 / spread^2, so two
    random directions have cosines of that standard deviation (isotropic if dim is smaller)."""
    target = min(float(dim), 1.0 / spread ** 2)
    axes = np.arange(1, dim + 1, dtype=np.float64)

    def effective(power: float) -> float:
        variance = axes ** (-2 * power)
        return variance.sum() ** 2 / (variance ** 2).sum()

    low, high = 0.0, 4.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if effective(middle) > target else (low, middle)
    return (axes ** -low).astype(np.float32)


@dataclass
class Gallery:
    """References of ``identities`` identities, ``per_identity`` each; reference r belongs to
    identity r // per_identity. Chunks are regenerated from the seed, never stored twice."""
    faces: SyntheticFaces
    identities: int
    per_identity: int

    @property
    def size(self) -> int:
        return self.identities * self.per_identity

    def chunks(self):
        for start in range(0, self.size, CHUNK_ROWS):
            stop = min(self.size, start + CHUNK_ROWS)
            owners = np.arange(start, stop) // self.per_identity
            yield start, self.faces.views(self._centres(owners), np.random.default_rng([self.faces.seed, 3, start]))

    def _centres(self, owners: np.ndarray) -> np.ndarray:
        if not hasattr(self, "_all_centres"):
            self._all_centres = self.faces.identity_centres(self.identities, stream=0)
        return self._all_centres[owners]

    def materialise(self) -> np.ndarray:
        vectors = np.empty((self.size, self.faces.dim), dtype=np.float32)
        for start, chunk in self.chunks():
            vectors[start:start + len(chunk)] = chunk
        return vectors

    def identity_of(self, reference_ids: np.ndarray) -> np.ndarray:
        return np.where(reference_ids >= 0, reference_ids // self.per_identity, -1)

    def probes(self, genuine: int, impostors: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fresh views of ``genuine`` distinct enrolled identities and of ``impostors`` identities
        that are not enrolled. Returns (vectors, true identity or -1, is_genuine)."""
        rng = np.random.default_rng([self.faces.seed, 4])
        enrolled = rng.choice(self.identities, min(genuine, self.identities), replace=False)
        genuine_views = self.faces.views(self._centres(enrolled), rng)
        impostor_views = self.faces.views(self.faces.identity_centres(impostors, stream=1), rng)
        vectors = np.concatenate([genuine_views, impostor_views])
        truth = np.concatenate([enrolled, np.full(impostors, -1)])
        return vectors, truth, truth >= 0


def exact_top1(gallery: Gallery, probes: np.ndarray, use_gpu: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Brute-force best reference per probe, chunk by chunk: (scores, ids, search seconds).
    ``use_gpu``: each chunk searched on the GPU (index.faiss_index.to_search_device)."""
    import faiss

    best = np.full(len(probes), -np.inf, dtype=np.float32)
    best_ids = np.full(len(probes), -1, dtype=np.int64)
    seconds = 0.0
    for start, chunk in gallery.chunks():
        flat = faiss.IndexFlatIP(chunk.shape[1])
        flat.add(chunk)
        searcher = faiss_index.to_search_device(flat, True) if use_gpu else flat
        started = time.perf_counter()
        scores, found = searcher.search(probes, 1)
        seconds += time.perf_counter() - started
        better = scores[:, 0] > best
        best[better], best_ids[better] = scores[better, 0], found[better, 0] + start
    return best, best_ids, seconds


def cohort_threshold(impostor_scores: np.ndarray, target_fpir: float) -> tuple[float, np.ndarray]:
    """Threshold from the first half of the impostor probes' best scores (the cohort, as
    Gallery.build calibrates); the second half is returned to check the promise on."""
    half = len(impostor_scores) // 2
    return calibration.threshold_at_fpir(impostor_scores[:half], target_fpir), impostor_scores[half:]


def _interval(successes: np.ndarray, resamples: int = 1000) -> list[float]:
    """Bootstrap 95% interval of a rate over probes (each genuine probe is a distinct identity)."""
    if len(successes) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(0)
    means = rng.choice(successes.astype(np.float64), (resamples, len(successes))).mean(axis=1)
    return [round(float(q), 4) for q in np.quantile(means, [0.025, 0.975])]


def outcome(gallery: Gallery, scores: np.ndarray, found: np.ndarray, truth: np.ndarray, genuine: np.ndarray,
            threshold: float, held_out_impostor_scores: np.ndarray) -> dict:
    """Top-1 identity recall of genuine probes and the decisions at ``threshold``."""
    right = gallery.identity_of(found[genuine]) == truth[genuine]
    above = scores[genuine] >= threshold
    false_alarms = held_out_impostor_scores >= threshold
    return {"genuine_probes": int(genuine.sum()),
            "top1_identity_recall": round(float(right.mean()), 4), "top1_identity_recall_ci95": _interval(right),
            "hit_rate_at_threshold": round(float((right & above).mean()), 4),
            "hit_rate_ci95": _interval(right & above),
            "wrong_identity_above_threshold": round(float((~right & above).mean()), 4),
            "miss_below_threshold": round(float((~above).mean()), 4),
            "impostor_probes_held_out": len(held_out_impostor_scores),
            "false_alarm_rate_at_threshold": round(float(false_alarms.mean()), 4),
            "false_alarm_ci95": _interval(false_alarms)}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def timed_search(index, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """One batch search; wall and process-CPU rates (CPU time is what a shared machine keeps honest)."""
    index.search(probes[:32], 1)  # warm-up
    cpu, started = _cpu_s(), time.perf_counter()
    scores, found = index.search(probes, 1)
    wall, cpu = time.perf_counter() - started, _cpu_s() - cpu
    return scores[:, 0], found[:, 0], {
        "queries_per_s": round(len(probes) / wall, 1),
        "cpu_ms_per_query": round(1000 * cpu / len(probes), 4),
        # What two cores would answer if the process had them to itself.
        "queries_per_s_on_2_free_cores": round(2 * len(probes) / cpu, 1) if cpu > 0 else None}


def _sq_types() -> dict:
    import faiss

    return {"fp16": faiss.ScalarQuantizer.QT_fp16, "sq8": faiss.ScalarQuantizer.QT_8bit}


def build_ivf(gallery: Gallery, nlist: int, storage: str = "flat"):
    """IVF over inner product, trained on 40 references per list (FAISS's floor is 39)."""
    import faiss

    quantiser = faiss.IndexFlatIP(gallery.faces.dim)
    if storage == "flat":
        index = faiss.IndexIVFFlat(quantiser, gallery.faces.dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:  # "fp16" / "sq8": scalar-quantised lists, half / a quarter of the memory
        index = faiss.IndexIVFScalarQuantizer(quantiser, gallery.faces.dim, nlist, _sq_types()[storage],
                                              faiss.METRIC_INNER_PRODUCT)
    sample_rows = np.sort(np.random.default_rng(5).choice(gallery.size, min(gallery.size, 40 * nlist), replace=False))
    sample = np.concatenate([chunk[sample_rows[(sample_rows >= start) & (sample_rows < start + len(chunk))] - start]
                             for start, chunk in gallery.chunks()])
    index.train(sample)
    for start, chunk in gallery.chunks():
        index.add(chunk)  # sequential ids = reference rows
    return index


def build_hnsw(gallery: Gallery, m: int, ef_construction: int):
    import faiss

    index = faiss.IndexHNSWFlat(gallery.faces.dim, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    for _, chunk in gallery.chunks():
        index.add(chunk)
    return index


class IdentityShortlist:
    """Two-stage search: an index over the identities' centroids (the gallery already stores them,
    index.gallery.identity_statistics) gives ``shortlist`` identities, whose references are then
    scored exactly; the answer is the best reference among them, as flat search would score it.
    A probe sits nearer its identity's centroid than any single reference of it (the references'
    own noise averages out), and there are per_identity times fewer vectors to navigate.
    The centroid index is HNSW (``m``, ``ef_construction``), or IVF-flat with ``nlist`` lists when
    ``nlist`` is given; ``set_effort`` sets efSearch or nprobe. ``storage`` "sq8" / "fp16" keeps the
    HNSW's centroids scalar-quantised (a quarter / half the bytes read per hop; the shortlist is
    rescored on the float references either way)."""

    def __init__(self, gallery: Gallery, m: int, ef_construction: int, shortlist: int, nlist: int | None = None,
                 storage: str = "flat"):
        import faiss

        self.per_identity, self.shortlist = gallery.per_identity, shortlist
        self.references = gallery.materialise().reshape(gallery.identities, gallery.per_identity, -1)
        centroids = self.references.mean(axis=1)
        centroids = np.ascontiguousarray(centroids / np.linalg.norm(centroids, axis=1, keepdims=True))
        dim = centroids.shape[1]
        if nlist is None and storage != "flat":
            self.index = faiss.IndexHNSWSQ(dim, _sq_types()[storage], m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = ef_construction
            self.index.train(centroids)
        elif nlist is None:
            self.index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = ef_construction
        else:
            self.quantiser = faiss.IndexFlatIP(dim)  # kept: the IVF index does not own it
            self.index = faiss.IndexIVFFlat(self.quantiser, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.train(centroids)
        self.index.add(centroids)

    def set_effort(self, effort: int) -> int:
        """efSearch (at least the shortlist, which HNSW needs) or nprobe; returns the value set."""
        if hasattr(self.index, "hnsw"):
            self.index.hnsw.efSearch = max(effort, self.shortlist)
            return self.index.hnsw.efSearch
        self.index.nprobe = effort
        return effort

    def search(self, probes: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        probes = np.ascontiguousarray(probes, dtype=np.float32)
        _, identities = self.index.search(probes, self.shortlist)
        # The shortlisted identities' reference rows; -1 (fewer identities than asked for) ends a row.
        rows = identities[:, :, None] * self.per_identity + np.arange(self.per_identity)
        rows = np.ascontiguousarray(np.where(identities[:, :, None] >= 0, rows, -1).reshape(len(probes), -1))
        references = self.references.reshape(-1, self.references.shape[-1])
        scores = np.empty((len(probes), k), dtype=np.float32)
        found = np.empty((len(probes), k), dtype=np.int64)
        # FAISS's rescoring reads the rows in place, threaded over probes; gathering them into a
        # numpy batch first cost more than the HNSW search itself (docs/performance.md).
        faiss.knn_inner_products_by_idx(
            faiss.swig_ptr(probes), faiss.swig_ptr(references), faiss.swig_ptr(rows), references.shape[1],
            len(probes), len(references), rows.shape[1], k, faiss.swig_ptr(scores), faiss.swig_ptr(found), rows.shape[1])
        return scores, found


def time_leave_one_out(gallery: Gallery, target_fpir: float, max_probes: int) -> dict:
    """The gallery's own calibration without a cohort (index.calibration, leave-one-identity-out),
    timed on the materialised references."""
    vectors = gallery.materialise()
    owners = np.arange(gallery.size) // gallery.per_identity
    cpu, started = _cpu_s(), time.perf_counter()
    scores = calibration.best_other_identity_scores(vectors, owners, max_probes=max_probes)
    wall, cpu = time.perf_counter() - started, _cpu_s() - cpu
    return {"leave_one_out_probes": len(scores), "leave_one_out_s": round(wall, 1),
            "leave_one_out_cpu_s": round(cpu, 1),
            "leave_one_out_threshold": round(calibration.threshold_at_fpir(scores, target_fpir), 4)}


def gallery_benchmark(sizes: list[int], dims: list[int], kinds: list[str], *, per_identity: int = 10,
                      genuine_probes: int = 4000, impostor_probes: int = 4000, target_fpir: float = 0.01,
                      ivf_nlist: int | None = None, nprobes: list[int] = (8, 16, 32, 64), ivf_storage: str = "flat",
                      hnsw_m: int = 32, ef_construction: int = 40, ef_searches: list[int] = (16, 32, 64, 128),
                      hnsw_max: int = 1_000_000, shortlist: int = 16, centroid_storage: str = "flat",
                      leave_one_out_probes: int = 0, use_gpu: bool = False,
                      seed: int = 0) -> dict:
    """Per dim and size: exact search (the ceiling: identity recall and its q/s), then each index
    kind over its search-parameter sweep, every row with the outcome at the cohort threshold."""
    import faiss

    results = []

    def emit(row: dict) -> None:
        results.append(row)
        print(json.dumps(row), flush=True)

    for dim in dims:
        for size in sizes:
            faces = SyntheticFaces(dim, seed=seed + dim)
            gallery = Gallery(faces, max(1, size // per_identity), per_identity)
            probes, truth, genuine = gallery.probes(genuine_probes, impostor_probes)
            base = {"dim": dim, "size": gallery.size, "identities": gallery.identities,
                    "faiss_threads": faiss.omp_get_max_threads(), "device": "gpu" if use_gpu else "cpu"}
            cpu = _cpu_s()
            exact_scores, exact_ids, exact_s = exact_top1(gallery, probes, use_gpu)
            threshold, held_out = cohort_threshold(exact_scores[~genuine], target_fpir)
            emit({**base, "kind": "exact (flat_ip)", "chosen_by_rule": faiss_index.index_kind_for(gallery.size) == "flat_ip",
                  "threshold": round(threshold, 4), "target_fpir": target_fpir,
                  "queries_per_s": round(len(probes) / exact_s, 1),
                  "cpu_s_incl_generation": round(_cpu_s() - cpu, 1),
                  **outcome(gallery, exact_scores, exact_ids, truth, genuine, threshold, held_out)})
            exact_identity = gallery.identity_of(exact_ids)
            # The decisions that matter: genuine probes exact search names correctly above the threshold.
            exact_hits = genuine & (exact_identity == truth) & (exact_scores >= threshold)

            def measure(index, kind: str, params: dict, build: dict) -> None:
                searcher = faiss_index.to_search_device(index, use_gpu) if use_gpu else index
                scores, found, speed = timed_search(searcher, probes)
                held = scores[~genuine][int((~genuine).sum()) // 2:]  # the half that did not set the threshold
                emit({**base, "kind": kind, **params, **build, **speed,
                      "agrees_with_exact_top1_identity": round(float(
                          (gallery.identity_of(found) == exact_identity)[genuine].mean()), 4),
                      "keeps_exact_hits": round(float(((gallery.identity_of(found) == truth)
                                                       & (scores >= threshold))[exact_hits].mean()), 4),
                      "exact_hits": int(exact_hits.sum()),
                      **outcome(gallery, scores, found, truth, genuine, threshold, held)})

            for kind in kinds:
                if kind == "ivf":
                    nlist = ivf_nlist or int(4 * np.sqrt(gallery.size))
                    before, cpu, started = _rss_mb(), _cpu_s(), time.perf_counter()
                    index = build_ivf(gallery, nlist, ivf_storage)
                    build = {"build_s": round(time.perf_counter() - started, 1), "build_cpu_s": round(_cpu_s() - cpu, 1),
                             "rss_delta_mb": round(_rss_mb() - before, 1), "nlist": nlist, "storage": ivf_storage}
                    for nprobe in nprobes:
                        index.nprobe = nprobe
                        measure(index, "ivf", {"nprobe": nprobe}, build)
                elif kind == "hnsw":
                    if gallery.size > hnsw_max:
                        emit({**base, "kind": "hnsw", "skipped": f"HNSW build above {hnsw_max} references not run"})
                        continue
                    before, cpu, started = _rss_mb(), _cpu_s(), time.perf_counter()
                    index = build_hnsw(gallery, hnsw_m, ef_construction)
                    build = {"build_s": round(time.perf_counter() - started, 1), "build_cpu_s": round(_cpu_s() - cpu, 1),
                             "rss_delta_mb": round(_rss_mb() - before, 1), "M": hnsw_m, "efConstruction": ef_construction}
                    for ef in ef_searches:
                        index.hnsw.efSearch = ef
                        measure(index, "hnsw", {"efSearch": ef}, build)
                elif kind in ("identity_hnsw", "identity_ivf"):
                    by_ivf = kind == "identity_ivf"
                    nlist = (ivf_nlist or int(4 * np.sqrt(gallery.identities))) if by_ivf else None
                    before, cpu, started = _rss_mb(), _cpu_s(), time.perf_counter()
                    index = IdentityShortlist(gallery, hnsw_m, ef_construction, shortlist, nlist, centroid_storage)
                    coarse = ({"nlist": nlist} if by_ivf else
                              {"M": hnsw_m, "efConstruction": ef_construction, "centroid_storage": centroid_storage})
                    build = {"build_s": round(time.perf_counter() - started, 1), "build_cpu_s": round(_cpu_s() - cpu, 1),
                             "rss_delta_mb": round(_rss_mb() - before, 1), **coarse, "shortlist_identities": shortlist}
                    for effort in (nprobes if by_ivf else ef_searches):
                        measure(index, kind, {"nprobe" if by_ivf else "efSearch": index.set_effort(effort)}, build)
                else:
                    raise ValueError(f"unknown index kind {kind!r} (exact search always runs; "
                                     "kinds: ivf, hnsw, identity_hnsw, identity_ivf)")
                del index
            if leave_one_out_probes:
                emit({**base, "kind": "calibration", **time_leave_one_out(gallery, target_fpir, leave_one_out_probes)})
    return {"mode": "gallery", "vectors": f"synthetic identity clusters calibrated to {MOBILEFACENET_128}",
            "per_identity": per_identity, "genuine_probes": genuine_probes, "impostor_probes": impostor_probes,
            "rule": f"flat_ip up to {faiss_index.EXACT_MAX_VECTORS} vectors, hnsw_ip above", "results": results}
