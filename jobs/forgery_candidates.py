"""python -m jobs.forgery_candidates [--people 120] [--swaps 60] [--model-pack P ...]

Authentic LFW strangers vs swaps of a VIP's inner face onto the same strangers' heads: how many
become weak / inner-face candidates of a VIP, and per identity signal the AUC among those
candidates with a 95% interval resampling LFW people (vipwatch/evaluation/candidate_check.py).
The evidence behind giving weak / inner candidates the inner-vs-outer signals only.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.config import SHARED_DIR
from vipwatch.cli import add_model_args, model_config, parse_job_args
from vipwatch.evaluation import candidate_check


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_DIR / "data"))
    parser.add_argument("--people", type=int, default=120)
    parser.add_argument("--swaps", type=int, default=60)
    add_model_args(parser)
    args = parse_job_args(parser, argv)
    frame = candidate_check.measure(Path(args.data), model_config(args), args.people, args.swaps)
    counts = frame.groupby(["label", "kind"]).size().rename("faces").reset_index()
    counts["set"] = counts["label"].map({0: "stranger", 1: "swap"})
    flagged = frame[frame["verdict"] == "suspected_forgery"].groupby("label").size().to_dict()
    print(counts[["set", "kind", "faces"]].to_string(index=False))
    print(f"flagged by the configured fusion: strangers {flagged.get(0, 0)}, swaps {flagged.get(1, 0)}")
    table = candidate_check.candidate_table(frame)
    print(f"{'signal (candidates of their VIP)':34s} {'strangers':>9s} {'swaps':>6s}  AUC [95%, by LFW person]")
    for row in table:
        print(f"{row['signal']:34s} {row['strangers']:9d} {row['swaps']:6d}  {row['auc']:.2f} "
              f"[{row['auc_95'][0]:.2f}, {row['auc_95'][1]:.2f}]")
    result = {"counts": counts[["set", "kind", "faces"]].to_dict("records"), "flagged": flagged, "auc": table}
    print(json.dumps({"flagged": flagged, "candidates": {r["signal"]: round(r["auc"], 3) for r in table}}))
    return result


if __name__ == "__main__":
    main()
