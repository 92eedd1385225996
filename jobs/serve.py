"""python -m jobs.serve --gallery URI [--host 127.0.0.1] [--port 8000] [--model-pack P]
                       [--allow-uri-prefix s3://bucket/] [--no-forgery]

Serves the crawl's face chain over HTTP on a local Ray cluster until interrupted. Needs
$VIPWATCH_API_KEY (callers send `Authorization: Bearer <key>`); $VIPWATCH_ADMIN_API_KEY turns
on the admin gallery reload. On a cluster use infra/serve.yaml (`serve deploy`).
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading

from vipwatch.cli import add_forgery_args, add_logging_args, add_model_args, forgery_config, model_config, setup_logging
from core.config import ServeConfig
from vipwatch.serve.app import run_local

log = logging.getLogger("jobs.serve")


def parse_config(argv: list[str] | None = None) -> tuple[ServeConfig, argparse.Namespace]:
    defaults = ServeConfig(gallery="")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", required=True, help="gallery root or version URI")
    parser.add_argument("--host", default="127.0.0.1", help="address Serve's HTTP proxy binds to")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--allow-uri-prefix", action="append", default=[], metavar="S3_PREFIX",
                        help="s3://bucket[/prefix] callers may name in {\"uri\": ...} (repeatable)")
    parser.add_argument("--allow-gallery-prefix", action="append", default=[], metavar="PREFIX",
                        help="extra roots the admin reload may load galleries from (repeatable)")
    parser.add_argument("--max-request-mb", type=float, default=defaults.max_request_bytes / 2**20)
    parser.add_argument("--request-timeout-s", type=float, default=defaults.request_timeout_s,
                        help="one request's whole chain; past it the caller gets 504")
    parser.add_argument("--max-queued-requests", type=int, default=defaults.max_queued_requests,
                        help="requests waiting per deployment beyond its ongoing ones; past it 503")
    parser.add_argument("--active-gallery-pointer", default=None, metavar="URI",
                        help="object recording the gallery an admin reload made active, so a restart keeps it")
    parser.add_argument("--public-docs", action="store_true", help="serve /docs and /openapi.json without a key")
    add_logging_args(parser)
    add_model_args(parser)
    add_forgery_args(parser)
    args = parser.parse_args(argv)
    config = ServeConfig(gallery=args.gallery, aligned=args.aligned, model=model_config(args),
                         forgery=forgery_config(args), allowed_uri_prefixes=args.allow_uri_prefix,
                         allowed_gallery_prefixes=args.allow_gallery_prefix,
                         max_request_bytes=int(args.max_request_mb * 2**20), public_docs=args.public_docs,
                         request_timeout_s=args.request_timeout_s, max_queued_requests=args.max_queued_requests,
                         active_gallery_pointer=args.active_gallery_pointer)
    return config, args


def main(argv: list[str] | None = None) -> None:
    from ray import serve

    config, args = parse_config(argv)
    setup_logging(args.json_logs)
    run_local(config, host=args.host, port=args.port)
    print(f"serving on http://{args.host}:{args.port} (docs: /docs); Ctrl-C stops", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log.info("shutting Serve down")
    serve.shutdown()


if __name__ == "__main__":
    main()
