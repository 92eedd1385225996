"""Evaluating forgery scoring on a labelled set (jobs.evaluate): per signal and fused, AUC, EER,
TPR at FPR 1%, expected calibration error (probabilities only) and counts; for videos a
per-video table (video_verdicts.py) and a video-level AUC of the mean frame score. Without a
gallery only the artefact signals exist (every verdict 'unverified')."""
from __future__ import annotations

import json
import logging
import os


from core.config import CrawlConfig
from core.schema import VERDICT_SUSPECTED
from operators.forgery.scorer import ForgeryScorer
from vipwatch.evaluation.forgery_metrics import fmt, report
from vipwatch.evaluation.forgery_runs import labelled_chain, labelled_uris, score_labelled, signal_columns
from vipwatch.evaluation.video_verdicts import video_verdicts

log = logging.getLogger(__name__)
PROBABILITY_SIGNALS = ("artefact:",)
# Identity similarities are "higher = more authentic": flip them so every curve reads the same.
AUTHENTIC_HIGH = {"identity_similarity", "inner_similarity", "context_similarity"}


def evaluate_frame(frame) -> dict:
    signals = {}
    for name in signal_columns(frame):
        rows = frame.dropna(subset=[name])
        scores = -rows[name] if name in AUTHENTIC_HIGH else rows[name]
        signals[name] = report(rows["label"], scores, probability=name.startswith(PROBABILITY_SIGNALS))
    fused = {"all_faces": report(frame["label"], frame["forgery_score"], probability=True),
             "vip_faces": report(frame[frame["vip"]]["label"], frame[frame["vip"]]["forgery_score"], probability=True)}
    flagged = frame["verdict"] == VERDICT_SUSPECTED
    verdicts = {"vip_faces_real": int((frame["vip"] & (frame["label"] == 0)).sum()),
                "vip_faces_fake": int((frame["vip"] & (frame["label"] == 1)).sum()),
                "flagged_real": int((flagged & (frame["label"] == 0)).sum()),
                "flagged_fake": int((flagged & (frame["label"] == 1)).sum())}
    return {"signals": signals, "fused": fused, "verdicts": verdicts}


def roc_plot(frame, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    figure, axis = plt.subplots(figsize=(6, 6))
    curves = [(n, frame.dropna(subset=[n])) for n in signal_columns(frame)] + [("fused", frame.dropna(subset=["forgery_score"]))]
    for name, rows in curves:
        column = "forgery_score" if name == "fused" else name
        if rows["label"].nunique() < 2:
            continue
        scores = -rows[column] if column in AUTHENTIC_HIGH else rows[column]
        fpr, tpr, _ = roc_curve(rows["label"], scores)
        axis.plot(fpr, tpr, label=name, linewidth=2.5 if name == "fused" else 1.2)
    axis.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    axis.set_xlabel("false-alarm rate (authentic flagged)")
    axis.set_ylabel("detection rate (fakes flagged)")
    axis.set_title(title)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def print_table(result: dict) -> None:
    print(f"{'signal':28s} {'real':>5s} {'fake':>5s} {'AUC':>6s} {'EER':>6s} {'TPR@1%':>7s} {'ECE':>6s}")
    rows = list(result["signals"].items()) + [(f"fused ({k})", v) for k, v in result["fused"].items()]
    for name, r in rows:
        print(f"{name:28s} {r['real']:5d} {r['fake']:5d} {fmt(r['auc']):>6s} {fmt(r['eer']):>6s} "
              f"{fmt(r['tpr_at_fpr_1pct']):>7s} {fmt(r['ece']):>6s}")
    print("verdicts:", json.dumps(result["verdicts"]))
    if "video" in result:
        print("videos:", json.dumps(result["video"]["report"]))
        for v in result["video"]["per_video"]:
            print(f"  {v['image_uri']}: label={v['label']} frames={v['frames']} mean={v['mean_score']:.3f} "
                  f"max={v['max_score']:.3f} flagged={v['flagged_faces']}/{v['vip_faces']} tracks flagged={v['flagged_tracks']}/{v['judged_tracks']} "
                  f"-> {v['verdict']}")


def evaluate_set(real: str, fake: str, config: CrawlConfig, out: str) -> dict:
    """Scores the labelled set with the crawl's face chain and writes DIR/report.json,
    DIR/faces.csv and DIR/roc.png under ``out`` (a local directory)."""
    runner = labelled_chain(config)
    scorer = runner.operator(ForgeryScorer)
    pairs = labelled_uris(real, fake, config.storage)
    frame = score_labelled(pairs, runner)
    result = {"real": real, "fake": fake, "gallery": config.gallery or None, "forgery_model": scorer.model_version,
              "inputs": len(pairs), "faceless_inputs": frame.attrs["faceless_inputs"], "faces": int(len(frame)),
              **evaluate_frame(frame)}
    if (frame["media_type"] == "video").any():
        per_video = video_verdicts(frame)
        per_video["label"] = [dict(pairs)[u] for u in per_video["image_uri"]]
        result["video"] = {"aggregation": "AUC of the mean frame forgery score; verdict from face tracks (majority of a track's judged frames)",
                           "report": report(per_video["label"], per_video["mean_score"], probability=True),
                           "per_video": per_video.to_dict("records")}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.json"), "w") as handle:
        json.dump(result, handle, indent=2, default=float)
    frame.drop(columns=[c for c in frame.columns if frame[c].dtype == object and c not in ("image_uri", "verdict")]) \
        .to_csv(os.path.join(out, "faces.csv"), index=False)
    roc_plot(frame, os.path.join(out, "roc.png"), f"{os.path.basename(fake.rstrip('/'))} vs "
                                                  f"{os.path.basename(real.rstrip('/'))}")
    return result
