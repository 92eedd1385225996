"""python -m jobs.forgery_pack_ensemble --first RUN/faces.csv --second RUN/faces.csv [--bootstrap 300]

Leave-one-family-out AUC of the identity signals of one pack, of another, and of both together, on
the faces both packs found (vipwatch/evaluation/pack_ensemble.py). The two inputs are the
faces.csv of two `jobs.forgery_benchmark` runs on the same corpus with different `--model-pack`
and no artefact detector. Prints a table; JSON last line.
"""
from __future__ import annotations

import argparse
import json

from vipwatch.cli import parse_job_args
from vipwatch.evaluation import pack_ensemble


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--first", required=True, help="faces.csv of the first pack's benchmark run")
    parser.add_argument("--second", required=True, help="faces.csv of the second pack's run, same corpus")
    parser.add_argument("--prior", type=float, default=0.01)
    parser.add_argument("--target-fpr", type=float, default=0.005)
    parser.add_argument("--bootstrap", type=int, default=300, help="bootstrap resamples (by identity / group)")
    args = parse_job_args(parser, argv)
    first, second = pack_ensemble.read_faces(args.first), pack_ensemble.read_faces(args.second)
    merged = pack_ensemble.pair_faces(first, second)
    results = {name: pack_ensemble.leave_one_family_out(merged, features, vip, args.prior, args.target_fpr,
                                                        args.bootstrap)
               for name, (features, vip) in pack_ensemble.recipes(merged).items()}
    print(f"faces paired: {len(merged)} of {len(first)} (first) and {len(second)} (second); forged faces that are "
          f"a VIP candidate: first {merged.loc[merged.label == 1, 'vip_first'].mean():.3f}, second "
          f"{merged.loc[merged.label == 1, 'vip_second'].mean():.3f}, either {merged.loc[merged.label == 1, 'vip'].mean():.3f}\n")
    print(pack_ensemble.markdown(results) + "\n")
    summary = {"paired_faces": int(len(merged)),
               "lofo_auc": {name: {f: round(m["auc"]["value"], 4) for f, m in fam.items()} for name, fam in results.items()},
               "authentic_flagged": {name: {f: f"{m['authentic_flagged']}/{m['authentic_faces']}" for f, m in fam.items()}
                                     for name, fam in results.items()}}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
