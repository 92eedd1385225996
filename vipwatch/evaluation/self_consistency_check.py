"""Does a face's inner-face crop and its outer ring (operators/forgery/face_regions.py) carry the
SAME identity in the pack's embedding space? The precondition of a training-free self-consistency
signal (ICT idea: a swap's inner face belongs to someone else than its head). Measured on
authentic aligned crops: a face's own inner-vs-outer cosine against the inner-vs-outer cosine of
two different people (cross-region), and for contrast inner-vs-inner and outer-vs-outer of two
photos of one person against two people (like-with-like). AUC 0.5 cross-region = the embedder maps
the two crops of one face to unrelated places, and no threshold on their cosine can tell a swap.

Second variant (``profile``): compare like with like through a cohort of other people: the
correlation of the inner crop's cosines to the cohort's inner crops with the outer ring's cosines
to the same people's outer rings. Cohort = half of the identities (drawn per split), measured on
the faces of the other half."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

from operators.forgery.identity_signal import region_embeddings


def load_crops(root: Path, per_identity: int, skip: int) -> tuple[list[np.ndarray], np.ndarray]:
    crops, owners = [], []
    for identity in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for path in sorted(identity.iterdir())[skip:skip + per_identity]:
            crops.append(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
            owners.append(identity.name)
    return crops, np.asarray(owners)


def embeddings(pack, crops: list[np.ndarray], flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """(inner, outer); with ``flip``, each the normalised mean with the mirrored crop's."""
    inner, outer = region_embeddings(pack, crops)
    if flip:
        inner_f, outer_f = region_embeddings(pack, [np.ascontiguousarray(c[:, ::-1]) for c in crops])
        inner, outer = inner + inner_f, outer + outer_f
        inner /= np.linalg.norm(inner, axis=1, keepdims=True)
        outer /= np.linalg.norm(outer, axis=1, keepdims=True)
    return inner, outer


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    return float(roc_auc_score(np.r_[np.ones(len(positive)), np.zeros(len(negative))], np.r_[positive, negative]))


def pair_aucs(inner: np.ndarray, outer: np.ndarray, owners: np.ndarray, draw: np.ndarray | None = None) -> dict:
    """AUCs over the faces of the identities in ``draw`` (a bootstrap draw of identity names, with
    repeats; default: each identity once). Two copies of one drawn identity are never paired as
    "two people", nor as "one person"."""
    draw = np.unique(owners) if draw is None else draw
    rows = [np.flatnonzero(owners == name) for name in draw]
    tag = np.concatenate([np.full(len(r), k) for k, r in enumerate(rows)])
    rows = np.concatenate(rows)
    inner, outer, names = inner[rows], outer[rows], owners[rows]
    same = tag[:, None] == tag[None, :]
    self_pair = same & (np.arange(len(rows))[:, None] == np.arange(len(rows))[None, :])
    other_person = names[:, None] != names[None, :]
    cross = inner @ outer.T
    out = {"cross_region_own_face_vs_two_people": _auc(cross[self_pair], cross[other_person])}
    for name, vectors in (("inner_vs_inner", inner), ("outer_vs_outer", outer)):
        sims = vectors @ vectors.T
        out[f"{name}_same_person_vs_two_people"] = _auc(sims[same & ~self_pair], sims[other_person])
    out["mean_cosine"] = {"own_inner_vs_outer": float(cross[self_pair].mean()),
                          "two_people_inner_vs_outer": float(cross[other_person].mean())}
    return out


def _standardise_rows(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=1, keepdims=True)) / np.maximum(x.std(axis=1, keepdims=True), 1e-9)


def profile_corr(inner: np.ndarray, outer: np.ndarray, cohort_inner: np.ndarray,
                 cohort_outer: np.ndarray) -> np.ndarray:
    """(faces x faces) Pearson correlation of row i's inner-crop profile over the cohort with row
    j's outer-ring profile: the diagonal is each face with itself, off-diagonal two faces."""
    a = _standardise_rows(inner @ cohort_inner.T)
    b = _standardise_rows(outer @ cohort_outer.T)
    return a @ b.T / a.shape[1]


def profile_aucs(inner: np.ndarray, outer: np.ndarray, owners: np.ndarray, splits: int = 6) -> dict:
    """Own face vs two people by profile correlation, per random half/half identity split."""
    names = np.unique(owners)
    values = []
    for split in range(splits):
        cohort_names = np.random.default_rng(split).choice(names, len(names) // 2, replace=False)
        cohort = np.isin(owners, cohort_names)
        corr = profile_corr(inner[~cohort], outer[~cohort], inner[cohort], outer[cohort])
        test = owners[~cohort]
        values.append(_auc(np.diag(corr), corr[test[:, None] != test[None, :]]))
    return {"profile_own_face_vs_two_people": float(np.mean(values)), "per_split": values}


def check(pack, root: Path, per_identity: int = 20, skip: int = 10, flip: bool = False, resamples: int = 200,
          seed: int = 0) -> dict:
    crops, owners = load_crops(root, per_identity, skip)
    inner, outer = embeddings(pack, crops, flip)
    point = pair_aucs(inner, outer, owners)
    names = np.unique(owners)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        draw = rng.choice(names, size=len(names), replace=True)
        if len(np.unique(draw)) > 1:
            draws.append(pair_aucs(inner, outer, owners, draw))
    intervals = {k: [float(np.percentile([d[k] for d in draws], 2.5)), float(np.percentile([d[k] for d in draws], 97.5))]
                 for k in point if k != "mean_cosine"}
    return {"pack": pack.name, "faces": len(owners), "identities": len(names), "flip": flip, "auc": point,
            "interval_95": intervals, "profile": profile_aucs(inner, outer, owners)}
