"""python -m jobs.evaluate --real URI --fake URI [--gallery URI] --out DIR [--forgery-fusion F] [--aligned]

Scores a labelled set (images, aligned crops with --aligned, or videos: sampled frames) with the
crawl's operators and reports, per signal and fused: AUC, EER, TPR at FPR 1%, expected
calibration error (probabilities only), counts. Writes DIR/report.json and DIR/roc.png; for
videos also a per-video table (vipwatch/video_verdicts.py) and a video-level AUC of the mean
frame score. Without --gallery only the artefact signals exist (every verdict 'unverified').
"""
from __future__ import annotations

import argparse
import json
import logging
import os

import numpy as np

from core.config import CrawlConfig, DecodeConfig, StorageConfig
from operators.forgery.scorer import ForgeryScorer
from vipwatch.cli import add_forgery_args, add_model_args, forgery_config, model_config, setup_logging
from vipwatch.forgery_metrics import fmt, report
from vipwatch.forgery_runs import labelled_chain, labelled_uris, score_labelled, signal_columns
from vipwatch.video_verdicts import video_verdicts

log = logging.getLogger("jobs.evaluate")
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
    flagged = frame["verdict"] == "suspected_forgery"
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", required=True)
    parser.add_argument("--fake", required=True)
    parser.add_argument("--gallery", default=None)
    parser.add_argument("--out", required=True, help="local report directory")
    parser.add_argument("--video-frame-interval", type=float, default=DecodeConfig().video_frame_interval_s)
    parser.add_argument("--video-max-frames", type=int, default=DecodeConfig().video_max_frames)
    add_model_args(parser)
    add_forgery_args(parser)
    args = parser.parse_args(argv)
    setup_logging()
    storage_config = StorageConfig()
    decode = DecodeConfig(video_frame_interval_s=args.video_frame_interval, video_max_frames=args.video_max_frames)
    runner = labelled_chain(CrawlConfig(input="", output="", gallery=args.gallery or "", model=model_config(args),
                                        aligned=args.aligned, decode=decode, storage=storage_config,
                                        forgery=forgery_config(args)))
    scorer = runner.operator(ForgeryScorer)
    pairs = labelled_uris(args.real, args.fake, storage_config)
    frame = score_labelled(pairs, runner)
    result = {"real": args.real, "fake": args.fake, "gallery": args.gallery, "forgery_model": scorer.model_version,
              "inputs": len(pairs), "faceless_inputs": frame.attrs["faceless_inputs"], "faces": int(len(frame)),
              **evaluate_frame(frame)}
    if (frame["media_type"] == "video").any():
        per_video = video_verdicts(frame)
        per_video["label"] = [dict(pairs)[u] for u in per_video["image_uri"]]
        result["video"] = {"aggregation": "AUC of the mean frame forgery score; verdict from face tracks (majority of a track's judged frames)",
                           "report": report(per_video["label"], per_video["mean_score"], probability=True),
                           "per_video": per_video.to_dict("records")}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.json"), "w") as handle:
        json.dump(result, handle, indent=2, default=float)
    frame.drop(columns=[c for c in frame.columns if frame[c].dtype == object and c not in ("image_uri", "verdict")]) \
        .to_csv(os.path.join(args.out, "faces.csv"), index=False)
    roc_plot(frame, os.path.join(args.out, "roc.png"), f"{os.path.basename(args.fake.rstrip('/'))} vs "
                                                         f"{os.path.basename(args.real.rstrip('/'))}")
    print_table(result)
    return result


if __name__ == "__main__":
    main()
