"""python -m jobs.evaluate_identification --gallery URI --probes ROOT [--aligned] [--photo-probes ROOT] [--det PNG]

Open-set identification of the probes ROOT/<identity>/<image> against a gallery (identities not
enrolled are non-mated): TPIR at FPIR 0.1/1/10%, rank-1, FPIR and TPIR at the gallery's own
threshold (with a Clopper-Pearson interval on the FPIR), bootstrap intervals by person, a DET
curve PNG, JSON last line. Probes that are enrolment photos of the gallery (same bytes) are left
out. --photo-probes adds a second root of full photos (faces detected) when --probes holds
aligned crops. --pose-pack adds the probes' yaw: what the misses are, and TPIR above / below a
yaw floor at the same threshold.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging

from core import storage
from core.config import ModelPackConfig, StorageConfig
from index.gallery import Gallery
from operators.face_analyzer import FaceAnalyzer
from operators.packs import load_model_pack
from vipwatch.cli import add_model_args, model_config, parse_job_args
from vipwatch.evaluation.face_embeddings import embed_faces, list_identity_images
from vipwatch.evaluation.identification import evaluate_identification
from vipwatch.evaluation.probe_quality import NEAR_FRONTAL_YAW, probe_pose

log = logging.getLogger("jobs.evaluate_identification")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", required=True)
    parser.add_argument("--probes", required=True, help="ROOT/<identity>/<image>")
    parser.add_argument("--photo-probes", default=None, help="a second probe ROOT of full photos (faces detected)")
    parser.add_argument("--det", default=None, help="DET curve PNG path")
    parser.add_argument("--cache", default=None, help="embedding cache directory ('' for none)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds")
    parser.add_argument("--pose-pack", default=None,
                        help="a keypoint-detector pack (e.g. ../shared/models) to measure probe yaw: adds what the "
                             "misses at FPIR 1%% are and TPIR above / below the --max-yaw floor")
    parser.add_argument("--max-yaw", type=float, default=NEAR_FRONTAL_YAW, help="the yaw-proxy floor")
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    storage_config = StorageConfig()
    gallery = Gallery.load(args.gallery, storage_config)
    analyzer = FaceAnalyzer(model_config(args), aligned=args.aligned, storage=storage_config, context_crops=False)
    gallery.check_compatible(analyzer.pack.embedder_id, analyzer.pack.embedding_dim)
    enrolled_photos = set(gallery.references.column("image_sha256").to_pylist())
    sets, poses = [], []
    pose_pack = None if not args.pose_pack else load_model_pack(
        ModelPackConfig(pack=args.pose_pack, device=args.device), storage_config)
    for root, aligned in ((args.probes, args.aligned), (args.photo_probes, False)):
        if not root:
            continue
        probes = [(identity, uri) for identity, uri in list_identity_images(root, storage_config)
                  if hashlib.sha256(storage.read_bytes(uri, storage_config)).hexdigest() not in enrolled_photos]
        mode = analyzer if aligned == analyzer.aligned else FaceAnalyzer(
            analyzer.model_config, aligned=aligned, pack=analyzer.pack, context_crops=False)
        faces = embed_faces([uri for _, uri in probes], mode, cache_dir=args.cache, storage_config=storage_config)
        sets.append((probes, faces, f"{root} ({'aligned' if aligned else 'photos'})"))
        if pose_pack is not None:
            poses.append(probe_pose([uri for _, uri in probes], pose_pack, aligned, storage_config))
    summary = evaluate_identification(gallery, sets, det_png=args.det, rounds=args.bootstrap,
                                      poses=poses if pose_pack is not None else None, max_yaw=args.max_yaw)
    summary["model_pack_probes"] = analyzer.pack.name
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
