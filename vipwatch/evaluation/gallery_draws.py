"""The gallery threshold's FPIR over many galleries drawn from one set of identities.

One split of 14 identities into 5 enrolled and 9 non-mated says mostly whether one of the 9
happens to resemble an enrolled person. Drawing every (or many) 5-identity galleries from the
same identities, each calibrated exactly as ``build_gallery`` calibrates (``calibrate_threshold``
with the pack's impostor cohort), gives the rate a user of such galleries should expect and how
far one draw can stray from it."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional

import numpy as np

from index.cohort import Cohort
from index.gallery import calibrate_threshold

# The band for the FPIR a gallery's own threshold gives on non-mated probes.
FPIR_BAND = (0.005, 0.02)


@dataclass(frozen=True)
class DrawResult:
    enrolled: tuple[str, ...]
    target_fpir: float
    threshold: float
    nonmated_probes: int
    nonmated_passed: int
    mated_probes: int
    mated_identified: int
    photo_probes: int
    photo_passed: int
    # (non-mated probe's identity, enrolled identity it passed as) -> probes
    passes_by_pair: dict

    @property
    def nonmated_fpir(self) -> float:
        return self.nonmated_passed / self.nonmated_probes if self.nonmated_probes else float("nan")

    @property
    def photo_fpir(self) -> Optional[float]:
        return self.photo_passed / self.photo_probes if self.photo_probes else None

    @property
    def mated_tpir(self) -> float:
        return self.mated_identified / self.mated_probes if self.mated_probes else float("nan")


def gallery_draws(identities: list[str], gallery_size: int, max_draws: int = 0, seed: int = 0) -> list[tuple[str, ...]]:
    """Every ``gallery_size``-identity gallery of ``identities`` (sorted), or ``max_draws`` distinct
    ones drawn at random when there are more (``max_draws`` 0: all)."""
    identities = sorted(set(identities))
    if not 0 < gallery_size < len(identities):
        raise ValueError(f"a gallery of {gallery_size} of {len(identities)} identities leaves no non-mated one")
    every = list(itertools.combinations(identities, gallery_size))
    if max_draws <= 0 or len(every) <= max_draws:
        return every
    rows = np.random.default_rng(seed).choice(len(every), max_draws, replace=False)
    return [every[row] for row in sorted(rows)]


def evaluate_draw(enrolled: tuple[str, ...], reference_embeddings: np.ndarray, reference_ids: np.ndarray,
                  probe_embeddings: np.ndarray, probe_ids: np.ndarray, target_fpir: float,
                  cohort: Optional[Cohort] = None, photo_embeddings: Optional[np.ndarray] = None) -> DrawResult:
    """Enrol ``enrolled``'s references, set the threshold as ``build_gallery`` does, and score the
    probes by their best cosine to any reference (the matcher's flat search). A mated probe counts
    as identified when it passes and its best reference is its own identity."""
    reference_ids = np.asarray(reference_ids)
    probe_ids = np.asarray(probe_ids)
    enrolled_rows = np.isin(reference_ids, enrolled)
    references = np.asarray(reference_embeddings, np.float32)[enrolled_rows]
    reference_owner = reference_ids[enrolled_rows]
    threshold, _ = calibrate_threshold(references, reference_owner, target_fpir, cohort)
    similarity = np.asarray(probe_embeddings, np.float32) @ references.T
    best_score = similarity.max(axis=1)
    best_identity = reference_owner[similarity.argmax(axis=1)]
    passed = best_score >= threshold
    nonmated = ~np.isin(probe_ids, enrolled)
    pairs: dict = {}
    for probe_identity, matched_identity in zip(probe_ids[nonmated & passed], best_identity[nonmated & passed]):
        pairs[(str(probe_identity), str(matched_identity))] = pairs.get((str(probe_identity), str(matched_identity)), 0) + 1
    photo_passed = photo_probes = 0
    if photo_embeddings is not None and len(photo_embeddings):
        photo_probes = len(photo_embeddings)
        photo_passed = int(((np.asarray(photo_embeddings, np.float32) @ references.T).max(axis=1) >= threshold).sum())
    mated = ~nonmated
    return DrawResult(enrolled=tuple(enrolled), target_fpir=target_fpir, threshold=float(threshold),
                      nonmated_probes=int(nonmated.sum()), nonmated_passed=int((nonmated & passed).sum()),
                      mated_probes=int(mated.sum()),
                      mated_identified=int((mated & passed & (best_identity == probe_ids)).sum()),
                      photo_probes=photo_probes, photo_passed=photo_passed, passes_by_pair=pairs)


def _spread(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "q2_5": float(np.quantile(values, 0.025)), "q97_5": float(np.quantile(values, 0.975))}


def summarise_draws(results: list[DrawResult], band: tuple[float, float] = FPIR_BAND, top_pairs: int = 8) -> dict:
    """Over the draws of one target: the spread of the non-mated FPIR (and of the photo FPIR and
    mated TPIR), the share of draws inside / above the band, and the identity pairs that pass most
    often (what a high draw is made of)."""
    if not results:
        raise ValueError("no draws to summarise")
    fpir = np.asarray([r.nonmated_fpir for r in results])
    summary = {"target_fpir": results[0].target_fpir, "draws": len(results),
               "nonmated_fpir": _spread(fpir),
               "nonmated_fpir_pooled": sum(r.nonmated_passed for r in results) / sum(r.nonmated_probes for r in results),
               "share_of_draws_in_band": float(((fpir >= band[0]) & (fpir <= band[1])).mean()),
               "share_of_draws_above_band": float((fpir > band[1]).mean()),
               "mated_tpir": _spread(np.asarray([r.mated_tpir for r in results])),
               "threshold": _spread(np.asarray([r.threshold for r in results]))}
    photo = [r.photo_fpir for r in results if r.photo_fpir is not None]
    if photo:
        summary["photo_fpir"] = _spread(np.asarray(photo))
    # A pair's pass rate: its passes over the probes of that non-mated identity, in draws where the
    # other identity was enrolled and it was not.
    passes: dict = {}
    exposures: dict = {}
    for result in results:
        for pair, count in result.passes_by_pair.items():
            passes[pair] = passes.get(pair, 0) + count
        for enrolled in result.enrolled:
            exposures[enrolled] = exposures.get(enrolled, 0) + 1
    ranked = sorted(passes.items(), key=lambda item: -item[1])[:top_pairs]
    summary["top_pairs"] = [{"probe_identity": probe, "passed_as": enrolled, "passes": count,
                             "draws_with_it_enrolled": exposures.get(enrolled, 0)}
                            for (probe, enrolled), count in ranked]
    return summary
