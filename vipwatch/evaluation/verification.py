"""1:1 verification on LFW-style pairs (``img1,img2,label[,fold]``, label 1 = same person): accuracy
with the threshold chosen on the other nine folds (the LFW protocol), ROC AUC, and TAR at FAR 1e-3.

A pair with a photo in which no face is found cannot be compared: it counts as a wrong answer in
``accuracy`` (a pack is not flattered by the faces it misses) and is left out of
``accuracy_on_comparable_pairs``, AUC and TAR; the count is reported.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Optional

import numpy as np
from sklearn.metrics import roc_auc_score

from core import storage
from vipwatch.evaluation.face_embeddings import embed_faces

FOLDS = 10


@dataclass
class Pairs:
    first: list[str]
    second: list[str]
    label: np.ndarray  # 1 same person, 0 different
    fold: np.ndarray


def read_pairs(text: str) -> Pairs:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"img1", "img2", "label"} <= set(rows[0]):
        raise ValueError("pairs CSV needs columns img1,img2,label (and optionally fold)")
    label = np.asarray([int(r["label"]) for r in rows])
    if "fold" in rows[0] and all(r.get("fold") not in (None, "") for r in rows):
        fold = np.asarray([int(r["fold"]) for r in rows])
    else:
        # No folds given: deal pairs round-robin so every fold holds both labels.
        fold = np.arange(len(rows)) % min(FOLDS, max(1, len(rows)))
    return Pairs([r["img1"] for r in rows], [r["img2"] for r in rows], label, fold)


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (midpoint between neighbouring scores) with the highest accuracy."""
    ordered = np.unique(scores)
    candidates = np.concatenate([[ordered[0] - 1e-6], (ordered[:-1] + ordered[1:]) / 2, [ordered[-1] + 1e-6]])
    accuracy = [((scores >= t) == labels).mean() for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> Optional[float]:
    """Same-person pairs accepted at the threshold where at most ``far`` of different-person pairs
    are; None when there are too few different-person pairs to resolve that rate."""
    impostor = np.sort(scores[labels == 0])
    if len(impostor) * far < 1:
        return None
    allowed = int(np.floor(far * len(impostor)))
    threshold = np.nextafter(impostor[len(impostor) - allowed - 1], np.inf)
    return float((scores[labels == 1] >= threshold).mean())


def fold_answers(scores: np.ndarray, comparable: np.ndarray, pairs: Pairs) -> tuple[np.ndarray, list, list]:
    """Whether each pair is answered right at the threshold chosen on the other folds; per-fold
    accuracy and thresholds."""
    labels = pairs.label
    correct = np.zeros(len(labels), bool)
    fold_accuracy, thresholds = [], []
    for fold in np.unique(pairs.fold):
        test = pairs.fold == fold
        train = ~test & comparable
        threshold = best_threshold(scores[train], labels[train]) if train.any() else 0.5
        thresholds.append(threshold)
        correct[test] = comparable[test] & ((scores[test] >= threshold) == (labels[test] == 1))
        fold_accuracy.append(float(correct[test].mean()))
    return correct, fold_accuracy, thresholds


def evaluate_pairs(scores: np.ndarray, comparable: np.ndarray, pairs: Pairs, far: float = 1e-3) -> dict:
    """``scores``: cosine per pair (anything where not ``comparable``)."""
    labels = pairs.label
    correct, fold_accuracy, thresholds = fold_answers(scores, comparable, pairs)
    both = comparable
    result = {
        "pairs": int(len(labels)), "same": int(labels.sum()), "different": int((labels == 0).sum()),
        "pairs_without_face": int((~comparable).sum()),
        "accuracy": float(correct.mean()), "accuracy_std_over_folds": float(np.std(fold_accuracy)),
        "folds": int(len(fold_accuracy)),
        "accuracy_on_comparable_pairs": float(correct[both].mean()) if both.any() else None,
        "threshold_mean": float(np.mean(thresholds)),
        "auc": float(roc_auc_score(labels[both], scores[both])) if len(set(labels[both].tolist())) == 2 else None,
        f"tar_at_far_{far:g}": tar_at_far(scores[both], labels[both], far),
    }
    return result


def bootstrap_pairs(scores: np.ndarray, comparable: np.ndarray, pairs: Pairs, rounds: int = 1000,
                    seed: int = 0) -> dict[str, list[float]]:
    """95% intervals of accuracy (each pair's fold-threshold answer fixed) and AUC, resampling pairs."""
    rng = np.random.default_rng(seed)
    correct, _, _ = fold_answers(scores, comparable, pairs)
    accuracy, auc = [], []
    for _ in range(rounds):
        rows = rng.integers(0, len(correct), len(correct))
        accuracy.append(correct[rows].mean())
        usable = rows[comparable[rows]]
        if len(set(pairs.label[usable].tolist())) == 2:
            auc.append(roc_auc_score(pairs.label[usable], scores[usable]))
    return {"accuracy": [float(np.percentile(accuracy, 2.5)), float(np.percentile(accuracy, 97.5))],
            "auc": [float(np.percentile(auc, 2.5)), float(np.percentile(auc, 97.5))] if auc else None}


def verify_pairs(pairs_csv: str, root: str, analyzer, folds: Optional[set[int]] = None,
                 cache_dir: Optional[str] = None, storage_config=None) -> dict:
    """Embed every photo of the pairs (cached), score, and evaluate: the JSON summary."""
    pairs = read_pairs(pairs_csv)
    if folds is not None:
        keep = np.isin(pairs.fold, sorted(folds))
        pairs = Pairs([p for p, k in zip(pairs.first, keep) if k], [p for p, k in zip(pairs.second, keep) if k],
                      pairs.label[keep], pairs.fold[keep])
    uris = [storage.join(root, p) for p in dict.fromkeys(pairs.first + pairs.second)]
    faces = embed_faces(uris, analyzer, cache_dir=cache_dir, storage_config=storage_config)
    first = faces.rows_of([storage.join(root, p) for p in pairs.first])
    second = faces.rows_of([storage.join(root, p) for p in pairs.second])
    comparable = faces.found[first] & faces.found[second]
    scores = np.where(comparable, (faces.embedding[first] * faces.embedding[second]).sum(axis=1), -1.0)
    result = evaluate_pairs(scores, comparable, pairs)
    result["interval_95"] = bootstrap_pairs(scores, comparable, pairs)
    result.update(images=len(uris), images_without_face=int((~faces.found).sum()), model_pack=faces.model_pack,
                  embedder_id=faces.embedder_id, folds_used=sorted(set(pairs.fold.tolist())))
    return result
