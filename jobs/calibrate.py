"""python -m jobs.calibrate --real URI --fake URI --gallery URI --out URI [--target-fpr 0.01] [model pack options]

Runs the crawl's operators over a labelled validation set, fits the fusion of the forgery
signals (logistic regression: a ``vip`` head on faces with a VIP candidate, artefact + identity
signals; a ``generic`` head on every face, artefact signals only), and writes a versioned JSON
artefact with each head's verdict threshold at the target false-alarm rate on authentic faces
(vipwatch/evaluation/calibrate.py). Point ForgeryConfig.fusion_model (crawl: --forgery-fusion)
at the written file.
"""
from __future__ import annotations

import argparse
import json

from core.config import CrawlConfig, StorageConfig
from vipwatch.cli import add_forgery_args, add_model_args, forgery_config, model_config, parse_job_args
from vipwatch.evaluation.calibrate import calibrate_set


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", required=True)
    parser.add_argument("--fake", required=True)
    parser.add_argument("--gallery", required=True)
    parser.add_argument("--out", required=True, help="fusion artefact URI (.json)")
    parser.add_argument("--target-fpr", type=float, default=0.01, help="authentic faces flagged at the threshold")
    add_model_args(parser)
    add_forgery_args(parser)
    args = parse_job_args(parser, argv)
    config = CrawlConfig(input="", output="", gallery=args.gallery, model=model_config(args), aligned=args.aligned,
                         forgery=forgery_config(args), storage=StorageConfig())
    fusion = calibrate_set(args.real, args.fake, config, args.target_fpr)
    fusion.save(args.out, config.storage)
    summary = {"out": args.out, "version": fusion.version, **fusion.metadata["fits"]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
