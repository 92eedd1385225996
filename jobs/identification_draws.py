"""python -m jobs.identification_draws --identities ROOT [--aligned] [--gallery-size 5] [--draws 0]
       [--references-per-identity 10] [--target-fpir 0.01 ...] [--photo-probes ROOT]

The FPIR that a gallery's own threshold gives on non-mated probes, over every (or --draws random)
gallery of --gallery-size identities drawn from ROOT/<identity>/<image>: each identity's first
--references-per-identity images (sorted by name) are its references, the rest its probes; the
identities left out of a draw are its non-mated probes. Thresholds are set as build_gallery sets
them (the pack's impostor cohort unless --cohort none). --photo-probes adds non-mated full photos
(faces detected) scored against every draw's gallery. One line per target, JSON last line.
"""
from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from core.config import StorageConfig
from operators.face_analyzer import FaceAnalyzer
from vipwatch.cli import add_model_args, model_config, parse_job_args
from vipwatch.enrol import load_cohort
from vipwatch.evaluation.face_embeddings import embed_faces, list_identity_images
from vipwatch.evaluation.gallery_draws import evaluate_draw, gallery_draws, summarise_draws

log = logging.getLogger("jobs.identification_draws")


def split_references(pairs: list[tuple[str, str]], per_identity: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Each identity's first ``per_identity`` images (by URI) are references, the rest probes."""
    references, probes, seen = [], [], {}
    for identity, uri in sorted(pairs):
        seen[identity] = seen.get(identity, 0) + 1
        (references if seen[identity] <= per_identity else probes).append((identity, uri))
    return references, probes


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", required=True, help="ROOT/<identity>/<image>")
    parser.add_argument("--references-per-identity", type=int, default=10)
    parser.add_argument("--gallery-size", type=int, default=5)
    parser.add_argument("--draws", type=int, default=0, help="random galleries to draw; 0 = every one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-fpir", type=float, action="append", default=None,
                        help="the galleries' calibration target, repeatable (default 0.01)")
    parser.add_argument("--photo-probes", default=None, help="non-mated full photos ROOT/<person>/<image>")
    parser.add_argument("--cohort", default="auto", help="as build_gallery: auto, a cohort URI, or none")
    parser.add_argument("--cache", default=None, help="embedding cache directory ('' for none)")
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    storage_config = StorageConfig()
    analyzer = FaceAnalyzer(model_config(args), aligned=args.aligned, storage=storage_config, context_crops=False)
    references, probes = split_references(list_identity_images(args.identities, storage_config),
                                          args.references_per_identity)
    reference_faces = embed_faces([u for _, u in references], analyzer, args.cache, storage_config)
    probe_faces = embed_faces([u for _, u in probes], analyzer, args.cache, storage_config)
    reference_ids = np.asarray([i for i, _ in references])[reference_faces.found]
    probe_ids = np.asarray([i for i, _ in probes])[probe_faces.found]
    photo_embeddings = None
    if args.photo_probes:
        photo_analyzer = FaceAnalyzer(analyzer.model_config, aligned=False, pack=analyzer.pack, context_crops=False)
        photo_faces = embed_faces([u for _, u in list_identity_images(args.photo_probes, storage_config)],
                                  photo_analyzer, args.cache, storage_config)
        photo_embeddings = photo_faces.embedding[photo_faces.found]
    cohort = load_cohort(args.cohort, analyzer.pack.embedder_id, storage_config)
    draws = gallery_draws(sorted(set(reference_ids.tolist())), args.gallery_size, args.draws, args.seed)
    summaries = []
    for target in args.target_fpir or [0.01]:
        results = [evaluate_draw(enrolled, reference_faces.embedding[reference_faces.found], reference_ids,
                                 probe_faces.embedding[probe_faces.found], probe_ids, target, cohort, photo_embeddings)
                   for enrolled in draws]
        summary = summarise_draws(results)
        summaries.append(summary)
        fpir = summary["nonmated_fpir"]
        photo = summary.get("photo_fpir")
        print(f"target {target:.4f}: {len(draws)} galleries of {args.gallery_size}; non-mated FPIR mean "
              f"{fpir['mean']:.4f} (median {fpir['median']:.4f}, 95% of draws {fpir['q2_5']:.4f}-{fpir['q97_5']:.4f}); "
              f"in [0.5%, 2%]: {summary['share_of_draws_in_band']:.2f} of draws, above: "
              f"{summary['share_of_draws_above_band']:.2f}; mated TPIR mean {summary['mated_tpir']['mean']:.3f}"
              + (f"; photo FPIR mean {photo['mean']:.4f} ({photo['q2_5']:.4f}-{photo['q97_5']:.4f})" if photo else ""))
    out = {"identities": args.identities, "model_pack": analyzer.pack.name, "embedder_id": analyzer.pack.embedder_id,
           "cohort": cohort.version if cohort is not None else None, "gallery_size": args.gallery_size,
           "references": int(len(reference_ids)), "probes": int(len(probe_ids)),
           "photo_probes": 0 if photo_embeddings is None else int(len(photo_embeddings)), "by_target": summaries}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
