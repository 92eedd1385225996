"""python -m jobs.verify_pairs --pairs CSV --root DIR [--model-pack P] [--cache DIR] [--folds 0,1]

LFW-style 1:1 verification: each pair's photos (paths relative to DIR) go through the crawl's
decoder and analyzer (faces detected; the main face kept), cosine of the two embeddings; accuracy
with the threshold chosen on the other folds, AUC, TAR at FAR 1e-3, bootstrap intervals over pairs.
"""
from __future__ import annotations

import argparse
import json
import logging
import time

from core import storage
from core.config import StorageConfig
from operators.face_analyzer import FaceAnalyzer
from vipwatch.cli import add_model_args, model_config, parse_job_args
from vipwatch.evaluation.verification import verify_pairs

log = logging.getLogger("jobs.verify_pairs")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", required=True, help="CSV img1,img2,label[,fold]; label 1 = same person")
    parser.add_argument("--root", required=True, help="directory (or s3:// prefix) the CSV's paths are relative to")
    parser.add_argument("--folds", default=None, help="only these folds, comma-separated (a quicker subset)")
    parser.add_argument("--cache", default=None, help="embedding cache directory ('' for none; "
                                                      "default $VIPWATCH_CACHE/faces or ~/.cache/vipwatch/faces)")
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    storage_config = StorageConfig()
    analyzer = FaceAnalyzer(model_config(args), aligned=args.aligned, storage=storage_config, context_crops=False)
    folds = {int(f) for f in args.folds.split(",")} if args.folds else None
    started = time.perf_counter()
    summary = verify_pairs(storage.read_bytes(args.pairs, storage_config).decode(), args.root, analyzer,
                           folds=folds, cache_dir=args.cache, storage_config=storage_config)
    summary.update(pairs_file=args.pairs, seconds=round(time.perf_counter() - started, 1))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
