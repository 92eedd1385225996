"""python -m jobs.calibrate --real URI --fake URI --gallery URI --out URI [--target-fpr 0.01] [model pack options]

Runs the crawl's operators over a labelled validation set, fits the fusion of the forgery
signals (logistic regression: a ``vip`` head on faces with a VIP candidate, artefact + identity
signals; a ``generic`` head on every face, artefact signals only), and writes a versioned JSON
artefact with each head's verdict threshold at the target false-alarm rate on authentic faces.
Point ForgeryConfig.fusion_model (crawl: --forgery-fusion) at the written file.
"""
from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime, timezone

import numpy as np
from sklearn.linear_model import LogisticRegression

from index import calibration
from core.config import CrawlConfig, StorageConfig
from operators.face_analyzer import FaceAnalyzer
from operators.forgery.fusion import FusionModel, Head, fusion_version
from operators.forgery.scorer import ForgeryScorer
from operators.matcher import GalleryMatcher
from vipwatch.cli import add_forgery_args, add_model_args, forgery_config, model_config, setup_logging
from vipwatch.forgery_runs import feature_matrix, labelled_chain, labelled_uris, score_labelled, signal_columns

log = logging.getLogger("jobs.calibrate")
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", required=True)
    parser.add_argument("--fake", required=True)
    parser.add_argument("--gallery", required=True)
    parser.add_argument("--out", required=True, help="fusion artefact URI (.json)")
    parser.add_argument("--target-fpr", type=float, default=0.01, help="authentic faces flagged at the threshold")
    add_model_args(parser)
    add_forgery_args(parser)
    args = parser.parse_args(argv)
    setup_logging()
    storage_config = StorageConfig()
    runner = labelled_chain(CrawlConfig(input="", output="", gallery=args.gallery, model=model_config(args),
                                        aligned=args.aligned, storage=storage_config,
                                        forgery=forgery_config(args).model_copy(update={"fusion_model": None})))
    analyzer, matcher, scorer = (runner.operator(kind) for kind in (FaceAnalyzer, GalleryMatcher, ForgeryScorer))
    frame = score_labelled(labelled_uris(args.real, args.fake, storage_config), runner)
    source = {"real": args.real, "fake": args.fake, "gallery": matcher.gallery.version, "model_pack": analyzer.pack.name,
              "detectors": [f"{d.name}={d.version}" for d in scorer.detectors], "faces": int(len(frame)),
              "faceless_inputs": frame.attrs["faceless_inputs"]}
    fusion = calibrate(frame, args.target_fpr, source)
    fusion.save(args.out, storage_config)
    summary = {"out": args.out, "version": fusion.version, **fusion.metadata["fits"]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
