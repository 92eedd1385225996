"""python -m jobs.build_gallery --images ROOT --out URI [--model-pack P] [--aligned]"""
from __future__ import annotations

import argparse
import json
import logging

from vipwatch.enrol import enroll
from vipwatch.cli import add_model_args, model_config, parse_job_args

log = logging.getLogger("jobs.build_gallery")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", required=True, help="ROOT laid out as <identity_id>/<image> (dir or s3://)")
    parser.add_argument("--out", required=True, help="gallery root (dir or s3://); a new version is added")
    parser.add_argument("--impostors", default=None,
                        help="distractor faces (not enrolled), added to the impostor cohort for threshold calibration")
    parser.add_argument("--cohort", default="auto",
                        help="impostor cohort: auto (the one built for the pack's embedder, models/cohorts/ or "
                             "$VIPWATCH_COHORTS), a cohort URI, or none")
    parser.add_argument("--target-fpir", type=float, default=0.01)
    parser.add_argument("--max-per-identity", type=int, default=None, help="enroll only the first N images each")
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    enrolment = enroll(args.images, model_config(args), aligned=args.aligned, target_fpir=args.target_fpir,
                       impostors=args.impostors, max_per_identity=args.max_per_identity, cohort=args.cohort)
    version_uri = enrolment.gallery.save(args.out)
    manifest = enrolment.gallery.manifest
    summary = {"gallery_version": manifest["gallery_version"], "uri": version_uri,
               "identities": manifest["identity_count"], "references": manifest["reference_count"],
               "rejected": len(enrolment.rejected), "match_threshold": round(manifest["match_threshold"], 4),
               "calibration": manifest["calibration"], "model_pack": manifest["model_pack"]}
    for item in enrolment.rejected:
        log.warning("skipped %s: %s", item["image_uri"], item["reason"])
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
