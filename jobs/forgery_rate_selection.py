"""python -m jobs.forgery_rate_selection --run 0.3=RUN/faces.csv --run 0.5=RUN/faces.csv [...] [--fusion-heads vip]

Nested leave-one-family-out choice of the weak-candidate rate (vipwatch/evaluation/rate_selection.py):
for each held-out family the rate is chosen on the other families' LOFO AUC, then that family is
scored at the chosen rate, with a bootstrap interval by identity group. Inputs: faces.csv of
`jobs.forgery_benchmark` runs on one corpus and pack, each with its own `--weak-match-fpir`.
Prints a table; JSON last line.
"""
from __future__ import annotations

import argparse
import json

from core.config import ForgeryConfig
from vipwatch.cli import parse_job_args
from vipwatch.evaluation import rate_selection
from vipwatch.evaluation.pack_ensemble import read_faces


def rate_and_path(text: str) -> tuple[float, str]:
    rate, sep, path = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected RATE=faces.csv, got {text!r}")
    return float(rate), path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=rate_and_path, action="append", required=True,
                        help="RATE=faces.csv of a benchmark run at that --weak-match-fpir (two or more)")
    parser.add_argument("--prior", type=float, default=0.01)
    parser.add_argument("--target-fpr", type=float, default=0.005)
    parser.add_argument("--bootstrap", type=int, default=300, help="bootstrap resamples (by identity / group)")
    parser.add_argument("--fusion-heads", default="vip,generic", choices=["vip,generic", "vip"],
                        help="heads the refits fit, as the runs' --fusion-heads")
    args = parse_job_args(parser, argv)
    if len(args.run) < 2 or len({rate for rate, _ in args.run}) != len(args.run):
        parser.error("give two or more --run with different rates")
    runs = {rate: read_faces(path) for rate, path in args.run}
    result = rate_selection.nested_lofo(runs, ForgeryConfig(), args.prior, args.target_fpr, args.bootstrap,
                                        tuple(args.fusion_heads.split(",")))
    print(rate_selection.markdown(result) + "\n")
    summary = {"rates": result["rates"],
               "chosen_rate": {f: cell["chosen_rate"] for f, cell in result["families"].items()},
               "nested_lofo_auc": {f: round(cell["nested"]["auc"]["value"], 4) for f, cell in result["families"].items()},
               "authentic_flagged": {f: f"{cell['authentic_flagged']}/{cell['authentic_faces']}"
                                     for f, cell in result["families"].items()},
               "all_families_choice": result["all_families_choice"]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
