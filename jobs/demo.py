"""python -m jobs.demo: the whole product on the embedded default, end to end.

Starts a local S3-compatible server (moto's S3 on 127.0.0.1), uploads reference crops and a
crawl corpus from ../shared (photos, two videos and a few broken files), builds a gallery with
the default dlib pack, runs the crawl on a local Ray cluster, prints the summary, and reads the
Parquet back with DuckDB (vipwatch/demo.py). A copy of the results is left in ./out/demo/.
"""
from __future__ import annotations

import argparse
import json

from core.config import REPO_ROOT, ModelPackConfig
from vipwatch.cli import add_forgery_args, forgery_config, parse_job_args
from vipwatch.demo import DEMO_SECOND_GALLERY, run_demo


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-pack", default=ModelPackConfig().pack)
    parser.add_argument("--keep", default=str(REPO_ROOT / "out" / "demo"), help="local copy of the results")
    # The same forgery options as the crawl, so an opt-in detector and its fusion can be tried on
    # the demo's corpus (e.g. --forgery-detector sbi:sbi-mfn-v4 --forgery-fusion <its artefact>).
    add_forgery_args(parser)
    args = parse_job_args(parser, argv)
    if args.second_pack and not args.second_gallery:
        # The demo enrols its references with the second pack too (vipwatch/demo.py).
        args.second_gallery = DEMO_SECOND_GALLERY
    summary, preview, verdicts = run_demo(ModelPackConfig(pack=args.model_pack), args.keep, forgery_config(args))

    print("\nDuckDB: faces per identity")
    for identity, faces, score in preview:
        print(f"  {identity:<20} {faces:>5}  mean match {score}")
    print(f"\nForgery verdicts: {verdicts['image_faces_flagged']} of {verdicts['image_faces']} image faces flagged "
          f"({verdicts['image_faces_judged']} judged); videos, from face tracks:")
    for video in verdicts["videos"]:
        print(f"  {video['image_uri'].rsplit('/', 1)[-1]:<16} {video['verdict']:<18} tracks flagged "
              f"{video['flagged_tracks']}/{video['judged_tracks']} judged ({video['tracks']} tracks, "
              f"{video['frames']} frames)")
    summary["forgery"]["videos"] = {v["image_uri"].rsplit("/", 1)[-1]: v["verdict"] for v in verdicts["videos"]}
    print(f"\nParquet written to {summary['output']} (local S3 server, now stopped); copy kept in "
          f"{summary['local_copy']}\n  e.g. duckdb -c \"SELECT * FROM '{summary['local_copy']}/shard-*/*.parquet' LIMIT 5\"")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
