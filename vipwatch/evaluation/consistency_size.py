"""Where region consistency stops meaning anything: own face vs two people by inter-ocular
distance, on authentic LFW people that neither the consistency heads nor any SBI detector
trained on and that the forgery benchmark does not use (jobs.consistency_size_sweep).

Each photo is downscaled (area interpolation, as a web thumbnail is) so that the eyes are N px
apart; the pack's own detector finds the face again at that size and the crawl's alignment
(operators.align.align_face) makes the 112 crop, so detector and landmark noise at small sizes
count, as they do in a crawl. At each size, a face's mapped inner and outer embeddings are
compared with each other (own face) and crosswise with every other person's (two people), as
the heads' training measures it (vipwatch.training.region_consistency.own_face_auc). The
authentic median cosine at each size says how far small authentic faces drift towards looking
inconsistent, in the heads' own spreads.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np

from operators.align import align_face
from operators.forgery.identity_signal import region_embeddings
from vipwatch.evaluation.size_sweep import SourceFace, downscaled, image_faces
from vipwatch.training.region_consistency import own_face_auc

IOD_TARGETS = (10, 12, 14, 16, 18, 20, 24, 28, 32)


def held_out_faces(pack, lfw_root: Path, people: list[str]) -> list[SourceFace]:
    """Each person's first photo's central face at native size (LFW is labelled so)."""
    faces: list[SourceFace] = []
    for name in people:
        faces += image_faces(pack, sorted((lfw_root / name).iterdir())[0], f"lfw:{name}", 0, all_faces=False)
    return faces


def redetected_crop(pack, face: SourceFace, target_iod: float) -> Optional[np.ndarray]:
    """The 112 aligned crop of ``face`` with its eyes ``target_iod`` px apart, found again by the
    pack's detector in the downscaled photo (None when it misses the face there)."""
    small, landmarks = downscaled(face, target_iod)
    eyes = landmarks[:2].mean(axis=0)
    for detection in pack.detect(small):
        points = np.asarray(detection.landmarks, np.float32).reshape(-1, 2)
        if np.linalg.norm(points[:2].mean(axis=0) - eyes) < 0.5 * target_iod:
            return align_face(small, points)[0]
    return None


def person_bootstrap(cosines: np.ndarray, people: np.ndarray, rounds: int, seed: int = 0) -> tuple[float, float]:
    """95% interval of own_face_auc resampling faces (one per person here), duplicates dropped:
    a face paired with its own copy would be a second 'own face'."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        keep = np.unique(rng.integers(len(people), size=len(people)))
        value = own_face_auc(cosines[np.ix_(keep, keep)], people[keep])
        if value is not None:
            values.append(value)
    if not values:
        return math.nan, math.nan
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


def sweep(pack, heads, faces: list[SourceFace], targets=IOD_TARGETS, rounds: int = 200) -> list[dict]:
    """Per target size: faces found, own face vs two people AUC [95%], and the authentic median
    cosine with its shift from the heads' own median in their spreads (positive = less consistent)."""
    out = []
    for target in targets:
        used, crops = [], []
        for face in faces:
            if face.iod + 1e-6 < target:
                continue
            crop = redetected_crop(pack, face, target)
            if crop is not None:
                used.append(face)
                crops.append(crop)
        row = {"inter_ocular_px": target, "faces": len(used),
               "missed": sum(1 for f in faces if f.iod + 1e-6 >= target) - len(used)}
        if len(used) >= 2:
            inner, outer = region_embeddings(pack, crops)
            mapped_inner, mapped_outer = heads.mapped(inner, outer)
            cosines = mapped_inner @ mapped_outer.T
            people = np.array([f.group for f in used])
            low, high = person_bootstrap(cosines, people, rounds)
            median = float(np.median(np.diag(cosines)))
            row.update({"own_face_auc": own_face_auc(cosines, people), "auc_95": [low, high],
                        "own_cosine_median": median, "median_shift_spreads": (heads.median - median) / heads.spread})
        out.append(row)
    return out


def format_table(rows: list[dict]) -> str:
    lines = [f"{'eyes px':>7s} {'faces':>5s} {'missed':>6s}  own face vs two people AUC [95%]  "
             f"authentic median cosine (shift, spreads)"]
    for r in rows:
        if "own_face_auc" not in r:
            lines.append(f"{r['inter_ocular_px']:>7g} {r['faces']:>5d} {r['missed']:>6d}  -")
            continue
        lines.append(f"{r['inter_ocular_px']:>7g} {r['faces']:>5d} {r['missed']:>6d}  {r['own_face_auc']:.3f} "
                     f"[{r['auc_95'][0]:.3f}, {r['auc_95'][1]:.3f}]          {r['own_cosine_median']:.3f} "
                     f"({r['median_shift_spreads']:+.2f})")
    return "\n".join(lines)
