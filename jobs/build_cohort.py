"""python -m jobs.build_cohort [--model-pack P] [--out URI] [--max-lfw-photos N]

Builds the impostor cohort of a model pack's embedder from the cohort side of the identity split
of ../shared (LFW people, crowd photos) and writes it to URI (default: the repo's
models/cohorts/<embedder id>/, where build_gallery finds it). Build-time only: galleries read the
small written artefact, never ../shared.
"""
from __future__ import annotations

import argparse
import json
import logging

from core import storage
from core.config import StorageConfig
from index.cohort import cohort_root, embedder_directory
from operators.face_analyzer import FaceAnalyzer
from vipwatch.cli import add_model_args, model_config, parse_job_args
from vipwatch.evaluation.cohort_build import build_cohort

log = logging.getLogger("jobs.build_cohort")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="cohort directory or s3:// prefix")
    parser.add_argument("--max-lfw-photos", type=int, default=None, help="a fixed subset of the LFW cohort photos")
    parser.add_argument("--cache", default=None, help="embedding cache directory ('' for none)")
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    analyzer = FaceAnalyzer(model_config(args), storage=StorageConfig(), context_crops=False)
    cohort = build_cohort(analyzer, cache_dir=args.cache, max_lfw_photos=args.max_lfw_photos)
    out = args.out or storage.join(cohort_root(), embedder_directory(analyzer.pack.embedder_id))
    cohort.save(out)
    summary = {"out": out, **{k: v for k, v in cohort.manifest.items() if k not in ("sources", "licence", "files")},
               "lfw_faces": cohort.manifest["sources"]["lfw"]["faces"],
               "crowd_faces": cohort.manifest["sources"]["crowds"]["faces"]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
