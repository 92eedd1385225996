"""python -m jobs.crawl --input URI --gallery URI --output URI [--model-pack P] [--aligned] [--job-id ID]

Also: ray job submit --working-dir . -- python -m jobs.crawl ...
"""
from __future__ import annotations

import argparse
import json
import logging

from vipwatch.cli import add_forgery_args, add_logging_args, add_model_args, forgery_config, model_config, setup_logging
from core.config import CrawlConfig, LineRange, RayResources
from vipwatch.crawl.run import run_crawl
from vipwatch.crawl.summary import summarise, summary_line

log = logging.getLogger("jobs.crawl")


def parse_config(argv: list[str] | None = None) -> tuple[CrawlConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="prefix (dir or s3://) or a manifest file of URIs")
    parser.add_argument("--gallery", required=True, help="gallery root or version URI")
    parser.add_argument("--output", required=True, help="Parquet dataset directory (dir or s3://)")
    parser.add_argument("--job-id", default=None,
                        help="re-run with the same id to resume: only shards not yet committed are crawled")
    parser.add_argument("--shard-size", type=int, default=CrawlConfig.model_fields["shard_size"].default,
                        help="inputs per committed shard (the unit redone after an interruption)")
    parser.add_argument("--manifest-lines", type=LineRange.parse, default=None, metavar="START:END",
                        help="with a manifest --input: crawl its lines START <= n < END only (0 = first line; "
                             "either side may be empty), so that several jobs split one manifest")
    parser.add_argument("--min-rows-per-file", type=int,
                        default=CrawlConfig.model_fields["min_rows_per_file"].default,
                        help="deprecated, ignored: the crawl writes one Parquet file per shard")
    parser.add_argument("--batch-size", type=int, default=RayResources().batch_size)
    parser.add_argument("--actors", type=int, default=RayResources().analyzer_actors)
    parser.add_argument("--actor-cpus", type=float, default=RayResources().analyzer_num_cpus)
    parser.add_argument("--actor-gpus", type=float, default=RayResources().analyzer_num_gpus)
    parser.add_argument("--separate-pools", action="store_true",
                        help="one actor pool per face stage instead of analyzer + matcher (+ CPU forgery) in one "
                             "(e.g. a very large gallery whose search should not hold a GPU actor)")
    add_logging_args(parser, also="; implies --no-progress")
    parser.add_argument("--no-progress", action="store_true",
                        help="no Ray Data progress bars (also: RAY_DATA_DISABLE_PROGRESS_BARS=1)")
    add_model_args(parser)
    add_forgery_args(parser)
    args = parser.parse_args(argv)
    config = CrawlConfig(input=args.input, gallery=args.gallery, output=args.output, job_id=args.job_id,
                         shard_size=args.shard_size, manifest_lines=args.manifest_lines,
                         min_rows_per_file=args.min_rows_per_file,
                         aligned=args.aligned, model=model_config(args), forgery=forgery_config(args),
                         resources=RayResources(batch_size=args.batch_size, analyzer_actors=args.actors,
                                                analyzer_num_cpus=args.actor_cpus,
                                                analyzer_num_gpus=args.actor_gpus,
                                                fuse_face_stages=not args.separate_pools))
    return config, args


def configure_progress(args: argparse.Namespace) -> bool:
    """Ray Data's progress bars stay on (its default, unless RAY_DATA_DISABLE_PROGRESS_BARS=1)
    except when asked, or with JSON logs: bar redraws on stderr would break one-object-per-line."""
    from ray.data import DataContext

    context = DataContext.get_current()
    if args.no_progress or args.json_logs:
        context.enable_progress_bars = False
    return context.enable_progress_bars


def main(argv: list[str] | None = None) -> dict:
    config, args = parse_config(argv)
    setup_logging(args.json_logs)
    configure_progress(args)
    result = run_crawl(config)
    log.info("Ray Data stats:\n%s", result.stats)
    summary = {"job_id": result.job_id, **summarise(result.output, result.seconds, result.inputs, config.storage),
               "processed_inputs": result.processed_inputs, "shards": result.shards,
               "shards_processed": result.shards_processed}
    log.info("%s", summary_line(summary))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
