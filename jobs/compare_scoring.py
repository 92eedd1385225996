"""python -m jobs.compare_scoring --sets DIR [--protocols g5,g14,g100] [model pack options]

Scores the protocols written by jobs.make_identification_sets under every variant of
vipwatch/evaluation/score_variants.py (flip TTA, aggregation over references, quality weighting,
cohort z-norm, probe T-norm, per-identity thresholds), each with its threshold set on the cohort
side of the identity split at FPIR 1%, and prints one line per protocol and variant (FPIR per
non-mated probe set with its count, Clopper-Pearson interval and the people it comes from), then a
JSON last line. --variants picks some by name; --bootstrap adds intervals by person.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from operators.face_analyzer import FaceAnalyzer
from vipwatch.cli import add_model_args, model_config, parse_job_args
from vipwatch.evaluation import splits
from vipwatch.evaluation.face_embeddings import FaceSet, embed_faces, list_identity_images
from vipwatch.evaluation.score_variants import VARIANTS, evaluate_variant

log = logging.getLogger("jobs.compare_scoring")


def _faces(root, analyzer, cache) -> tuple[FaceSet, np.ndarray]:
    listed = list_identity_images(root)
    faces = embed_faces([uri for _, uri in listed], analyzer, cache_dir=cache)
    people = np.asarray([identity for identity, _ in listed], dtype=object)
    return faces.take(faces.found), people[faces.found]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", required=True, help="output directory of jobs.make_identification_sets")
    parser.add_argument("--protocols", default="g5,g14,g100")
    parser.add_argument("--max-cohort-photos", type=int, default=None)
    parser.add_argument("--cache", default=None)
    parser.add_argument("--variants", default=None, help="comma-separated variant names (default: all)")
    parser.add_argument("--bootstrap", type=int, default=0, help="bootstrap rounds by person (0: none)")
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    photos = FaceAnalyzer(model_config(args), context_crops=False)
    crops = FaceAnalyzer(photos.model_config, aligned=True, pack=photos.pack, context_crops=False)
    lfw = splits.cohort_lfw_photos()
    if args.max_cohort_photos:
        lfw = lfw[:args.max_cohort_photos]  # as jobs.build_cohort --max-lfw-photos
    cohort = embed_faces([p for _, p in lfw], photos, cache_dir=args.cache)
    cohort_people = np.asarray([person for person, _ in lfw], dtype=object)[cohort.found]
    cohort = cohort.take(cohort.found)
    variants = VARIANTS if not args.variants else [v for v in VARIANTS if v.name in args.variants.split(",")]
    results = {}
    for protocol in args.protocols.split(","):
        base = f"{args.sets}/{protocol}"
        aligned = protocol != "g100"
        references, reference_ids = _faces(f"{base}/references", crops if aligned else photos, args.cache)
        probes, people = _faces(f"{base}/probes", crops if aligned else photos, args.cache)
        probe_sets = np.full(len(people), "aligned crops" if aligned else "photos", dtype=object)
        if aligned and Path(f"{base}/photo_probes").is_dir():
            more, more_people = _faces(f"{base}/photo_probes", photos, args.cache)
            probes = FaceSet(**{f: np.concatenate([getattr(probes, f), getattr(more, f)]) for f in
                                ("keys", "found", "embedding", "flip_embedding", "det_score", "face_px", "blur",
                                 "faces_in_image")}, model_pack=probes.model_pack, embedder_id=probes.embedder_id)
            people = np.concatenate([people, more_people])
            probe_sets = np.concatenate([probe_sets, np.full(len(more_people), "photos", dtype=object)])
        rows = [evaluate_variant(v, references, reference_ids, probes, people, cohort, cohort_people=cohort_people,
                                 probe_sets=probe_sets, rounds=args.bootstrap) for v in variants]
        for row in rows:
            by_set = "; ".join(f"{name} {r['false_positives']}/{r['nonmated']} = {r['fpir']:.4f} "
                               f"[{r['clopper_pearson_95'][0]:.4f}, {r['clopper_pearson_95'][1]:.4f}] {r['by_person']}"
                               for name, r in row["fpir_by_set"].items())
            print(f"{protocol:5s} {row['variant']:28s} rank1 {row['rank1']:.4f}  TPIR@FPIR1% "
                  f"{row['tpir_at_fpir_0.01']:.4f}  at cohort threshold: TPIR {row['tpir_at_cohort_threshold']:.4f} "
                  f"{row.get('interval_95_by_person', {}).get('tpir_at_gallery_threshold', '')} (mated {row['mated']}); "
                  f"FPIR {by_set}")
        results[protocol] = rows
    summary = {"model_pack": photos.pack.name, "cohort_faces": int(len(cohort.keys)), "results": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
