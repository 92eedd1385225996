"""python -m jobs.report --results URI --gallery URI --out report.html [--labels CSV] [--max-alerts N]

A static, self-contained HTML report of a crawl for analysts (vipwatch/report/): per alert the
face crop beside the VIP's reference crops, scores, reasons and source; counts per identity;
score histograms; ROC when labels (CSV ``uri,label``, 1 = fake) are given.
"""
from __future__ import annotations

import argparse
import json
import logging

from core import storage
from vipwatch.cli import parse_job_args
from vipwatch.report.render import render

log = logging.getLogger("jobs.report")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="a crawl job directory <output>/<job_id> (or the output root)")
    parser.add_argument("--gallery", required=True, help="gallery root or version URI (reference crops)")
    parser.add_argument("--out", required=True, help="HTML file to write (local path or s3://)")
    parser.add_argument("--labels", default=None, help="optional CSV uri,label (1 = fake) for the ROC")
    parser.add_argument("--max-alerts", type=int, default=200)
    args = parse_job_args(parser, argv)
    page, figures = render(args.results, args.gallery, args.labels, args.max_alerts)
    storage.write_bytes(args.out, page.encode("utf-8"))
    log.info("report written to %s (%d alerts, %d bytes)", args.out, figures["alerts"], len(page))
    print(json.dumps({"out": args.out, **figures}))
    return figures


if __name__ == "__main__":
    main()
