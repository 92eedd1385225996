"""AUC of single forgery signals per family on one side of a benchmark's faces.csv.

    python -m jobs.forgery_signal_auc --faces /tmp/fb/out/faces.csv --side A \
        --signal self_inner_outer_deficit --signal self_inner_whole_deficit
"""
from __future__ import annotations

import argparse
import json

import pandas as pd

from vipwatch.evaluation.signal_auc import signal_table, text_table


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", required=True, help="faces.csv written by jobs.forgery_benchmark")
    parser.add_argument("--side", action="append", default=None, help="benchmark side(s) to measure (default A)")
    parser.add_argument("--signal", action="append", required=True, help="column; prefix '-' if low means fake")
    parser.add_argument("--bootstrap", type=int, default=300)
    args = parser.parse_args(argv)
    frame = pd.read_csv(args.faces)
    rows = []
    for signal in args.signal:
        name = signal.lstrip("-")
        rows += signal_table(frame, name, args.side or ["A"], args.bootstrap, higher_is_fake=not signal.startswith("-"))
    print(text_table(rows))
    summary = {"faces": args.faces, "sides": args.side or ["A"],
               "auc": {f"{r['signal']}/{r['subset']}": round(r["auc"], 4) for r in rows}}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
