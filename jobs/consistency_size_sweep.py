"""python -m jobs.consistency_size_sweep [--model-pack P ...] [--people N] [--out report.json]

Own face vs two people AUC of the shipped region-consistency heads for the pack's embedder, and
the authentic median's drift, at controlled inter-ocular distances (10..32 px), on LFW people held
out of every SBI detector and of the heads' training (vipwatch/evaluation/consistency_size.py).
ForgeryConfig.consistency_min_inter_ocular_px is read from this table.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from core.config import SHARED_DIR
from operators.forgery.region_consistency import RegionConsistency, shipped_for
from operators.packs import load_model_pack
from vipwatch.cli import add_model_args, model_config, parse_job_args
from vipwatch.evaluation import consistency_size
from vipwatch.evaluation.unseen_authentic import held_out_lfw_people

log = logging.getLogger("jobs.consistency_size_sweep")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", default=str(SHARED_DIR / "data" / "lfw" / "lfw-deepfunneled"))
    parser.add_argument("--people", type=int, default=None, help="at most this many held-out people (all: 286)")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--out", default=None, help="JSON report path")
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    pack = load_model_pack(model_config(args), threads=2)
    heads_uri = shipped_for(pack.embedder_id)
    if heads_uri is None:
        raise SystemExit(f"no shipped region-consistency heads for {pack.embedder_id}")
    heads = RegionConsistency.load(heads_uri)
    people = sorted(held_out_lfw_people([])[0])[:args.people]
    faces = consistency_size.held_out_faces(pack, Path(args.lfw), people)
    log.info("%d held-out people, %d faces found at native size", len(people), len(faces))
    rows = consistency_size.sweep(pack, heads, faces, rounds=args.bootstrap)
    print(f"{heads.version} on {pack.embedder_id} (authentic median {heads.median:.3f}, spread {heads.spread:.3f})")
    print(consistency_size.format_table(rows))
    result = {"heads": heads.version, "model_pack": pack.embedder_id, "people": len(people), "faces": len(faces),
              "by_inter_ocular_px": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "by_inter_ocular_px"}))
    return result


if __name__ == "__main__":
    main()
