"""python -m jobs.downscale_probes --src ROOT --out DIR --scale F

Writes ROOT/<identity>/<image> again under DIR with each side times F: the same probes as
smaller faces, for jobs.evaluate_identification (what face size does to FPIR and TPIR).
"""
from __future__ import annotations

import argparse
import json

from vipwatch.cli import parse_job_args
from vipwatch.evaluation.protocols import write_downscaled


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, help="ROOT/<identity>/<image>")
    parser.add_argument("--out", required=True)
    parser.add_argument("--scale", type=float, required=True, help="side length factor, e.g. 0.33")
    args = parse_job_args(parser, argv)
    summary = {"out": args.out, "scale": args.scale, "images": write_downscaled(args.src, args.out, args.scale)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
