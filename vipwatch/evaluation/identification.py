"""Open-set identification metrics (ISO/IEC 19795-1, NIST FRVT 1:N vocabulary).

A mated probe's person is enrolled; it is identified at threshold t when its best gallery
identity is its own and scores >= t (TPIR). A non-mated probe's person is not enrolled; it is a
false positive when its best score is >= t (FPIR). Intervals resample people, not probes, since
photos of one person are not independent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from index.calibration import threshold_at_fpir
from index.cohort import clopper_pearson
from index.gallery import Gallery
from vipwatch.evaluation.face_embeddings import FaceSet
from vipwatch.evaluation.probe_quality import NEAR_FRONTAL_YAW, ProbePose

FPIR_POINTS = (0.001, 0.01, 0.1)


@dataclass
class OpenSetScores:
    """Best gallery identity and score per probe: mated (true identity known) and non-mated."""
    mated_identity: np.ndarray      # true identity of each mated probe
    mated_top_identity: np.ndarray  # the gallery's best identity for it
    mated_top_score: np.ndarray
    nonmated_person: np.ndarray     # who each non-mated probe shows (for the bootstrap)
    nonmated_top_score: np.ndarray

    def take(self, mated_rows: np.ndarray, nonmated_rows: np.ndarray) -> "OpenSetScores":
        return OpenSetScores(self.mated_identity[mated_rows], self.mated_top_identity[mated_rows],
                             self.mated_top_score[mated_rows], self.nonmated_person[nonmated_rows],
                             self.nonmated_top_score[nonmated_rows])


def tpir_at(scores: OpenSetScores, threshold: float) -> float:
    hits = (scores.mated_top_identity == scores.mated_identity) & (scores.mated_top_score >= threshold)
    return float(hits.mean()) if len(hits) else float("nan")


def fpir_at(scores: OpenSetScores, threshold: float) -> float:
    values = scores.nonmated_top_score
    return float((values >= threshold).mean()) if len(values) else float("nan")


def rank1(scores: OpenSetScores) -> float:
    correct = scores.mated_top_identity == scores.mated_identity
    return float(correct.mean()) if len(correct) else float("nan")


def tpir_at_fpir(scores: OpenSetScores, fpir: float) -> Optional[float]:
    """TPIR at the threshold that the non-mated probes themselves put at ``fpir``; None when there
    are too few non-mated probes to resolve that rate (fewer than 1/fpir)."""
    if len(scores.nonmated_top_score) * fpir < 1:
        return None
    return tpir_at(scores, threshold_at_fpir(scores.nonmated_top_score, fpir))


def point_metrics(scores: OpenSetScores, gallery_threshold: Optional[float]) -> dict[str, Optional[float]]:
    metrics: dict[str, Optional[float]] = {"rank1": rank1(scores)}
    for point in FPIR_POINTS:
        metrics[f"tpir_at_fpir_{point:g}"] = tpir_at_fpir(scores, point)
    if gallery_threshold is not None:
        metrics["fpir_at_gallery_threshold"] = fpir_at(scores, gallery_threshold)
        metrics["tpir_at_gallery_threshold"] = tpir_at(scores, gallery_threshold)
    return metrics


def bootstrap_by_person(scores: OpenSetScores, gallery_threshold: Optional[float], rounds: int = 1000,
                        seed: int = 0, confidence: float = 0.95) -> dict[str, list[float]]:
    """Percentile intervals of point_metrics, resampling mated identities and non-mated people
    with replacement (each drawn person brings all their probes)."""
    rng = np.random.default_rng(seed)
    mated_groups = _groups(scores.mated_identity)
    nonmated_groups = _groups(scores.nonmated_person)
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        mated = _draw(rng, mated_groups)
        nonmated = _draw(rng, nonmated_groups)
        for name, value in point_metrics(scores.take(mated, nonmated), gallery_threshold).items():
            if value is not None and np.isfinite(value):
                samples.setdefault(name, []).append(value)
    tail = (1 - confidence) / 2 * 100
    return {name: [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
            for name, values in samples.items()}


def det_curve(scores: OpenSetScores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, FPIR, FNIR = 1 - TPIR) at every distinct score, lowest threshold first."""
    thresholds = np.unique(np.concatenate([scores.mated_top_score, scores.nonmated_top_score]))
    nonmated = np.sort(scores.nonmated_top_score)
    hit_scores = np.sort(np.where(scores.mated_top_identity == scores.mated_identity, scores.mated_top_score, -np.inf))
    fpir = 1 - np.searchsorted(nonmated, thresholds, side="left") / max(1, len(nonmated))
    tpir = 1 - np.searchsorted(hit_scores, thresholds, side="left") / max(1, len(hit_scores))
    return thresholds, fpir, 1 - tpir


def plot_det(curves: dict[str, OpenSetScores], path: str, title: str,
             gallery_threshold: Optional[float] = None) -> None:
    """DET plot (FNIR against FPIR, log axes) of one or more score sets, written as PNG."""
    import matplotlib  # optional heavy dependency: only the commands that draw need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    for label, scores in curves.items():
        _, fpir, fnir = det_curve(scores)
        floor = 0.5 / max(1, len(scores.nonmated_top_score))
        axes.step(np.maximum(fpir, floor), np.maximum(fnir, 0.5 / max(1, len(scores.mated_top_score))),
                  where="post", label=label)
        if gallery_threshold is not None:
            axes.plot(max(fpir_at(scores, gallery_threshold), floor), max(1 - tpir_at(scores, gallery_threshold), 1e-4),
                      "o", color="black")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("FPIR (non-mated probes above threshold)")
    axes.set_ylabel("FNIR (mated probes missed)")
    axes.set_title(title, fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _rates_at(scores: OpenSetScores, threshold: float) -> dict:
    hits = int((scores.nonmated_top_score >= threshold).sum())
    tpir = tpir_at(scores, threshold)
    return {"fpir_at_gallery_threshold": fpir_at(scores, threshold) if len(scores.nonmated_top_score) else None,
            "fpir_clopper_pearson_95": list(clopper_pearson(hits, len(scores.nonmated_top_score))),
            "tpir_at_gallery_threshold": tpir if np.isfinite(tpir) else None}


def _groups(labels: np.ndarray) -> list[np.ndarray]:
    _, inverse = np.unique(labels, return_inverse=True)
    return [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)] if len(labels) else []


def _draw(rng: np.random.Generator, groups: list[np.ndarray]) -> np.ndarray:
    if not groups:
        return np.zeros(0, dtype=np.int64)
    chosen = rng.integers(0, len(groups), len(groups))
    return np.concatenate([groups[g] for g in chosen])


def probe_masks(gallery: Gallery, probes: list[tuple[str, str]], faces: FaceSet) -> tuple[np.ndarray, np.ndarray]:
    """(mated, non-mated) row masks of ``probes``, in the order open_set_scores lists them; probes
    without a face are in neither."""
    enrolled = set(gallery.identity_ids())
    is_enrolled = np.asarray([identity in enrolled for identity, _ in probes], dtype=bool)
    return is_enrolled & faces.found, ~is_enrolled & faces.found


def open_set_scores(gallery: Gallery, probes: list[tuple[str, str]], faces: FaceSet) -> tuple[OpenSetScores, dict]:
    """Search each probe's face (``faces`` in the order of ``probes``: (identity, uri)) in the
    gallery the way the matcher does; split mated / non-mated by whether the identity is enrolled."""
    mated, nonmated = probe_masks(gallery, probes, faces)
    found = faces.found
    top_identity = np.full(len(probes), "", dtype=object)
    top_score = np.full(len(probes), -np.inf, dtype=np.float32)
    rows = np.flatnonzero(found)
    for row, best in zip(rows, gallery.search(faces.embedding[rows], top_k=1)):
        if best:
            top_identity[row], top_score[row] = best[0]
    identity = np.asarray([i for i, _ in probes], dtype=object)
    scores = OpenSetScores(identity[mated], top_identity[mated], top_score[mated], identity[nonmated],
                           top_score[nonmated])
    counts = {"probes": len(probes), "probes_without_face": int((~found).sum()),
              "mated_probes": int(mated.sum()), "mated_identities": len(set(identity[mated].tolist())),
              "nonmated_probes": int(nonmated.sum()), "nonmated_people": len(set(identity[nonmated].tolist()))}
    return scores, counts


def split_by_floor(scores: OpenSetScores, mated_above: np.ndarray, nonmated_above: np.ndarray,
                   fpir: float = 0.01, rounds: int = 1000) -> dict:
    """TPIR of the mated probes above and below a quality floor at one threshold: the one that all
    the non-mated probes put at ``fpir``. Also the FPIR at that threshold among non-mated probes
    above the floor (what a gate dropping below-floor faces would deliver on both sides)."""
    threshold = threshold_at_fpir(scores.nonmated_top_score, fpir)
    result: dict = {"fpir": fpir, "threshold": threshold}
    for name, mated_rows, nonmated_rows in (("above_floor", mated_above, nonmated_above),
                                           ("below_floor", ~mated_above, ~nonmated_above)):
        part = scores.take(np.flatnonzero(mated_rows), np.flatnonzero(nonmated_rows))
        tpir = tpir_at(part, threshold)
        interval = bootstrap_by_person(part, threshold, rounds=rounds).get("tpir_at_gallery_threshold") \
            if len(part.mated_top_score) else None
        result[name] = {"mated_probes": len(part.mated_top_score),
                        "mated_identities": len(set(part.mated_identity.tolist())),
                        "tpir": tpir if np.isfinite(tpir) else None, "tpir_interval_95_by_person": interval,
                        "nonmated_probes": len(part.nonmated_top_score),
                        "fpir": fpir_at(part, threshold) if len(part.nonmated_top_score) else None}
    return result


def describe_misses(scores: OpenSetScores, threshold: float, quality: dict[str, np.ndarray]) -> dict:
    """Median of each per-mated-probe quality measure for the probes missed at ``threshold`` and for
    those identified, and how many misses are rank-1 errors (another identity scored higher)."""
    hit = (scores.mated_top_identity == scores.mated_identity) & (scores.mated_top_score >= threshold)
    result: dict = {"threshold": threshold, "missed": int((~hit).sum()), "identified": int(hit.sum()),
                    "missed_wrong_identity": int((scores.mated_top_identity != scores.mated_identity).sum())}
    for name, values in quality.items():
        result[name] = {"median_missed": _median(values[~hit]), "median_identified": _median(values[hit])}
    return result


def _median(values: np.ndarray) -> Optional[float]:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else None


def evaluate_identification(gallery: Gallery, probe_sets: list[tuple[list[tuple[str, str]], FaceSet, str]],
                            det_png: Optional[str] = None, rounds: int = 1000,
                            poses: Optional[list[ProbePose]] = None, max_yaw: float = NEAR_FRONTAL_YAW) -> dict:
    """``probe_sets``: (probes, their faces, a name for the set). Probes that are enrolment
    photos of the gallery (same bytes) must be left out by the caller. ``poses`` (one per set, in
    probe order) adds what the misses at FPIR 1% are and TPIR above / below the yaw floor."""
    parts = [open_set_scores(gallery, probes, faces) for probes, faces, _ in probe_sets]
    scores = OpenSetScores(*(np.concatenate([getattr(p[0], f) for p in parts]) for f in
                             ("mated_identity", "mated_top_identity", "mated_top_score", "nonmated_person",
                              "nonmated_top_score")))
    threshold = gallery.match_threshold
    result = {"gallery_version": gallery.version, "model_pack": gallery.manifest["model_pack"],
              "embedder_id": gallery.manifest["embedder_id"], "gallery_identities": gallery.manifest["identity_count"],
              "gallery_references": gallery.manifest["reference_count"], "match_threshold": threshold,
              "calibration": {k: gallery.manifest["calibration"].get(k) for k in
                              ("target_fpir", "impostor_source", "impostor_count", "fpir_interval_95")},
              **{k: sum(p[1][k] for p in parts) for k in parts[0][1] if k not in ("mated_identities", "nonmated_people")},
              "mated_identities": len(set(scores.mated_identity.tolist())),
              "nonmated_people": len(set(scores.nonmated_person.tolist())),
              **point_metrics(scores, threshold)}
    nonmated_hits = int((scores.nonmated_top_score >= threshold).sum())
    result["fpir_at_gallery_threshold_clopper_pearson_95"] = list(clopper_pearson(nonmated_hits,
                                                                                  len(scores.nonmated_top_score)))
    result["interval_95_by_person"] = bootstrap_by_person(scores, threshold, rounds=rounds)
    # False positives cluster on look-alikes: who they are says how much a few people drive the FPIR.
    above = scores.nonmated_person[scores.nonmated_top_score >= threshold]
    people, counts = np.unique(above.astype(str), return_counts=True)
    result["false_positives_by_person"] = {str(p): int(c) for p, c in
                                           sorted(zip(people, counts), key=lambda x: -x[1])[:10]}
    result["by_probe_set"] = {name: {**counts, **_rates_at(part, threshold)}
                              for (part, counts), (_, _, name) in zip(parts, probe_sets)}
    if poses is not None:
        result["probe_quality"] = _quality_report(gallery, probe_sets, poses, scores, max_yaw, rounds)
    if det_png:
        plot_det({f"{gallery.manifest['model_pack'][:40]}": scores}, det_png,
                 f"gallery {gallery.version} ({result['gallery_identities']} ids)", threshold)
        result["det_png"] = det_png
    return result


def _quality_report(gallery: Gallery, probe_sets: list, poses: list[ProbePose], scores: OpenSetScores,
                    max_yaw: float, rounds: int) -> dict:
    masks = [probe_masks(gallery, probes, faces) for probes, faces, _ in probe_sets]

    def gather(values_per_set: list[np.ndarray], side: int) -> np.ndarray:
        return np.concatenate([values[mask[side]] for values, mask in zip(values_per_set, masks)])

    frontal = [pose.near_frontal(max_yaw) for pose in poses]
    quality = {"yaw": gather([p.yaw for p in poses], 0),
               "inter_ocular_px": gather([p.inter_ocular_px for p in poses], 0),
               "blur": gather([faces.blur for _, faces, _ in probe_sets], 0),
               "det_score": gather([faces.det_score for _, faces, _ in probe_sets], 0)}
    threshold = threshold_at_fpir(scores.nonmated_top_score, 0.01)
    return {"floor": f"yaw <= {max_yaw:g} (|nose x - eye midpoint x| / inter-ocular distance; unmeasured fails)",
            "mated_pose_unmeasured": int(np.isnan(quality["yaw"]).sum()),
            "misses_at_fpir_0.01": describe_misses(scores, threshold, quality),
            "by_floor_at_fpir_0.01": split_by_floor(scores, gather(frontal, 0), gather(frontal, 1), 0.01, rounds)}
