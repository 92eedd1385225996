"""Precondition check of a training-free self-consistency forgery signal: does the pack embed a
face's inner-face crop and its outer ring as the same person (vipwatch/evaluation/self_consistency_check.py)?

    python -m jobs.forgery_self_consistency --model-pack dlib
    python -m jobs.forgery_self_consistency --model-pack ../shared/models --detector-file scrfd_500m_kps.onnx \\
        --embedder-file mobilefacenet_128.onnx [--flip]
"""
from __future__ import annotations

import argparse
import json

from core.config import SHARED_DIR
from operators.packs import load_model_pack
from vipwatch.cli import add_model_args, model_config
from vipwatch.evaluation.self_consistency_check import check


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aligned-root", default=str(SHARED_DIR / "data" / "faces_aligned"))
    parser.add_argument("--per-identity", type=int, default=20)
    parser.add_argument("--skip", type=int, default=10, help="crops per identity left out (the benchmark's enrolment)")
    parser.add_argument("--flip", action="store_true", help="average each crop's embedding with its mirror's")
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples of identities")
    add_model_args(parser)
    args = parser.parse_args(argv)
    pack = load_model_pack(model_config(args), threads=1)
    result = check(pack, args.aligned_root, args.per_identity, args.skip, args.flip, args.bootstrap)
    for name, value in result["auc"].items():
        if name != "mean_cosine":
            low, high = result["interval_95"][name]
            print(f"{name:<45} AUC {value:.3f} [{low:.2f}, {high:.2f}]")
    splits = result["profile"]["per_split"]
    print(f"{'profile_own_face_vs_two_people':<45} AUC {result['profile']['profile_own_face_vs_two_people']:.3f} "
          f"(range over {len(splits)} cohort splits {min(splits):.2f}-{max(splits):.2f})")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
