"""python -m jobs.make_swaps --aligned-root DIR --out URI [--per-identity N] [--seed S] [--skip-first K]

A VIP-targeted fake set for development (vipwatch/evaluation/swaps.py): per identity X, classical
face swaps showing X's inner face on another identity's head, and untouched crops of X, plus
labels.csv. The first K crops of each identity (the gallery's enrolment) are never used.
"""
from __future__ import annotations

import argparse
import json

from core.config import StorageConfig
from vipwatch.cli import parse_job_args
from vipwatch.evaluation.swaps import make_swaps


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aligned-root", required=True, help="<root>/<identity>/<crop> of 112x112 aligned crops")
    parser.add_argument("--out", required=True, help="output prefix (dir or s3://)")
    parser.add_argument("--per-identity", type=int, default=20, help="fakes (and at most as many reals) per identity")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-first", type=int, default=10,
                        help="crops per identity reserved for the gallery (the enrolment's max_per_identity)")
    args = parse_job_args(parser, argv)
    summary = make_swaps(args.aligned_root, args.out, args.per_identity, args.seed, args.skip_first, StorageConfig())
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
