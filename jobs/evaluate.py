"""python -m jobs.evaluate --real URI --fake URI [--gallery URI] --out DIR [--forgery-fusion F] [--aligned]

Scores a labelled set (images, aligned crops with --aligned, or videos: sampled frames) with the
crawl's operators and reports, per signal and fused: AUC, EER, TPR at FPR 1%, expected
calibration error (probabilities only), counts. Writes DIR/report.json and DIR/roc.png; for
videos also a per-video table (vipwatch/evaluation/video_verdicts.py) and a video-level AUC of the mean
frame score. Without --gallery only the artefact signals exist (every verdict 'unverified').
"""
from __future__ import annotations

import argparse

from core.config import CrawlConfig, DecodeConfig, StorageConfig
from vipwatch.cli import add_forgery_args, add_model_args, forgery_config, model_config, parse_job_args
from vipwatch.evaluation.evaluate import evaluate_set, print_table


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
    args = parse_job_args(parser, argv)
    decode = DecodeConfig(video_frame_interval_s=args.video_frame_interval, video_max_frames=args.video_max_frames)
    config = CrawlConfig(input="", output="", gallery=args.gallery or "", model=model_config(args),
                         aligned=args.aligned, decode=decode, storage=StorageConfig(), forgery=forgery_config(args))
    result = evaluate_set(args.real, args.fake, config, args.out)
    print_table(result)
    return result


if __name__ == "__main__":
    main()
