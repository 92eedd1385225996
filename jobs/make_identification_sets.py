"""python -m jobs.make_identification_sets --out DIR [--nonmated-people N]

Writes the open-set protocols g5 / g14 / g100 (vipwatch/evaluation/protocols.py) as trees of
links into ../shared under DIR, for jobs.build_gallery and jobs.evaluate_identification.
"""
from __future__ import annotations

import argparse
import json

from vipwatch.evaluation.protocols import write_protocols
from vipwatch.cli import parse_job_args


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--nonmated-people", type=int, default=1000, help="LFW check-side people as non-mated probes")
    parser.add_argument("--nonmated-per-person", type=int, default=1)
    parser.add_argument("--g100-people", type=int, default=110)
    args = parse_job_args(parser, argv)
    counts = write_protocols(args.out, args.nonmated_people, args.nonmated_per_person, args.g100_people)
    summary = {"out": args.out, **counts}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
