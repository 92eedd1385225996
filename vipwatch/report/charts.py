"""The report's charts as PNG bytes: score histograms, and the ROC against labels."""
from __future__ import annotations

import io
from typing import Optional

import numpy as np

from core import storage
from core.schema import VERDICT_AUTHENTIC, VERDICT_SUSPECTED, VERDICT_UNVERIFIED
from vipwatch.evaluation.forgery_metrics import report


def png(figure) -> bytes:
    sink = io.BytesIO()
    figure.savefig(sink, format="png", dpi=90, bbox_inches="tight")
    return sink.getvalue()


def histograms(faces: list[dict]) -> list[tuple[str, bytes]]:
    import matplotlib  # lazy: heavy, and only the report draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = []
    figure, axis = plt.subplots(figsize=(6, 3.2))
    bins = np.linspace(0, 1, 21)
    for verdict, colour in ((VERDICT_AUTHENTIC, "#2e86de"), (VERDICT_SUSPECTED, "#c0392b"), (VERDICT_UNVERIFIED, "#999999")):
        scores = [f["forgery_score"] for f in faces if f["verdict"] == verdict and f["forgery_score"] is not None]
        if scores:
            axis.hist(scores, bins=bins, alpha=0.6, color=colour, label=f"{verdict} ({len(scores)})")
    axis.set_xlabel("forgery_score")
    axis.set_ylabel("faces")
    axis.set_title("Forgery scores by verdict")
    axis.legend(fontsize=8)
    charts.append(("Forgery scores by verdict", png(figure)))
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6, 3.2))
    scores = [f["match_score"] for f in faces if f["match_score"] is not None]
    axis.hist(scores, bins=30, color="#16a085")
    axis.set_xlabel("match_score (cosine to the best identity)")
    axis.set_ylabel("faces")
    axis.set_title("Match scores")
    charts.append(("Match scores", png(figure)))
    plt.close(figure)
    return charts


def roc(faces: list[dict], labels: dict[str, int]) -> tuple[Optional[bytes], dict]:
    """ROC of forgery_score over labelled faces, all faces and VIP-checked faces."""
    import matplotlib  # lazy: heavy, and only the report draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    metrics, curves = {}, []
    for name, keep in (("all faces", lambda f: True), ("VIP faces", lambda f: f["forgery_identity_id"] is not None)):
        chosen = [f for f in faces if f["forgery_score"] is not None and keep(f)
                  and storage.normalise(f["image_uri"]) in labels]
        y = np.array([labels[storage.normalise(f["image_uri"])] for f in chosen], np.int64)
        s = np.array([f["forgery_score"] for f in chosen], np.float64)
        metrics[name] = report(y, s, probability=False)
        if metrics[name]["auc"] is not None:
            fpr, tpr, _ = roc_curve(y, s)
            curves.append((name, fpr, tpr, metrics[name]["auc"]))
    if not curves:
        return None, metrics
    figure, axis = plt.subplots(figsize=(4.2, 4))
    for name, fpr, tpr, auc in curves:
        axis.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], color="#bbb", linestyle="--")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title("ROC (forgery_score vs labels)")
    axis.legend(fontsize=8, loc="lower right")
    image = png(figure)
    plt.close(figure)
    return image, metrics
