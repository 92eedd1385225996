"""Fitting the fusion of the forgery signals on a labelled validation set (jobs.calibrate):
logistic regression, a ``vip`` head on faces with a VIP candidate (artefact + identity signals)
and a ``generic`` head on every face (artefact signals only), each with its verdict threshold at
the target false-alarm rate on authentic faces. ``calibrate_set`` runs the crawl's operators over
the set first (forgery_runs)."""
from __future__ import annotations

from datetime import datetime, timezone

from sklearn.linear_model import LogisticRegression

from index import calibration
from core.config import CrawlConfig
from operators.face_analyzer import FaceAnalyzer
from operators.forgery.fusion import FusionModel, Head, fusion_version
from operators.forgery.scorer import ForgeryScorer
from operators.matcher import GalleryMatcher
from vipwatch.evaluation.forgery_runs import feature_matrix, labelled_chain, labelled_uris, score_labelled, signal_columns

IDENTITY_FEATURES = ["identity_deficit", "inner_whole_gap", "context_deficit"]


def fit_head(frame, features: list[str], target_fpr: float):
    labels = frame["label"].to_numpy()
    if len(set(labels)) < 2 or not features:
        return None, {"rows": int(len(frame)), "skipped": "needs real and fake rows and at least one signal"}
    x = feature_matrix(frame, features)
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x, labels)
    head = Head(features=features, coef=model.coef_[0].tolist(), intercept=float(model.intercept_[0]), threshold=0.5)
    probabilities = head.predict(frame[features].to_dict("records"))
    head.threshold = calibration.threshold_at_fpir(probabilities[labels == 0], target_fpr)
    return head, {"rows": int(len(frame)), "real": int((labels == 0).sum()), "fake": int((labels == 1).sum()),
                  "false_alarm_rate_at_threshold": calibration.rate_at(probabilities[labels == 0], head.threshold),
                  "detection_rate_at_threshold": calibration.rate_at(probabilities[labels == 1], head.threshold)}


def calibrate(frame, target_fpr: float = 0.01, source: dict | None = None) -> FusionModel:
    artefacts = [c for c in signal_columns(frame) if c.startswith("artefact:")]
    # Rows without a feature (a weak / inner candidate has no deficits; a face the quality gate
    # kept from the artefact detectors has no artefact signal) are left out of this fit.
    vip_rows = frame[frame["vip"]].dropna(subset=IDENTITY_FEATURES + artefacts) if "identity_deficit" in frame \
        else frame.iloc[:0]
    heads, fits = {}, {}
    for name, rows, features in (("vip", vip_rows, IDENTITY_FEATURES + artefacts),
                                 ("generic", frame.dropna(subset=artefacts), artefacts)):
        head, fits[name] = fit_head(rows, features, target_fpr)
        if head is not None:
            heads[name] = head
    if not heads:
        raise ValueError(f"nothing to fit: {fits}")
    payload = {k: vars(h) for k, h in heads.items()}
    metadata = {"created_at": datetime.now(timezone.utc).isoformat(), "target_fpr": target_fpr, "fits": fits,
                "validation_set": source or {}}
    return FusionModel(heads=heads, version=fusion_version(payload), metadata=metadata)


def calibrate_set(real: str, fake: str, config: CrawlConfig, target_fpr: float = 0.01) -> FusionModel:
    """Scores the labelled set with the crawl's face chain (no fusion artefact: raw signals)
    and fits the fusion on it."""
    runner = labelled_chain(config.model_copy(update={"forgery": config.forgery.model_copy(update={"fusion_model": None})}))
    analyzer, matcher, scorer = (runner.operator(kind) for kind in (FaceAnalyzer, GalleryMatcher, ForgeryScorer))
    frame = score_labelled(labelled_uris(real, fake, config.storage), runner)
    source = {"real": real, "fake": fake, "gallery": matcher.gallery.version, "model_pack": analyzer.pack.name,
              "detectors": [f"{d.name}={d.version}" for d in scorer.detectors], "faces": int(len(frame)),
              "faceless_inputs": frame.attrs["faceless_inputs"]}
    return calibrate(frame, target_fpr, source)
