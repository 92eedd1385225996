"""Throughput, memory and gallery-scale figures, printed (never asserted).

    python -m jobs.benchmark --images N [--model-pack P] [--repeat R] [--batch-size B] [--actors A] ...
    python -m jobs.benchmark --gallery-sizes 10000,100000,1000000 [--dims 128,512]

--images: builds a crawl-like corpus of N images from ../shared/data/photos (resized to mixed
sizes, re-encoded as JPEG / PNG / WebP, ~12% background crops with no face, ~1% truncated
files), puts it in a local S3 server (moto's S3 on 127.0.0.1, started and stopped here),
enrols a gallery from ../shared/data/faces_aligned, runs the Ray crawl (vipwatch.crawl.run.run_crawl)
and then the same operator objects in one plain process over the same bytes (the raw-model
limit on the same cores), back to back. The last line printed is one JSON object.
The measuring code is in vipwatch/bench/.

--gallery-sizes: synthetic identity-clustered vectors whose same/different-identity cosines follow
those measured on real faces; per size exact search and the IVF / HNSW parameter sweeps report
top-1 identity recall, agreement with exact search, the outcome at a cohort-calibrated threshold
and batch queries/s (wall and per process-CPU second). See vipwatch/bench/gallery_scale.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from core.config import SHARED_DIR
from vipwatch.cli import add_logging_args, add_model_args, setup_logging

DEFAULT_DETECTOR = "scrfd_500m_kps.onnx"
DEFAULT_EMBEDDER = "mobilefacenet_128.onnx"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--images", type=int, help="corpus size for the crawl-vs-raw benchmark")
    mode.add_argument("--gallery-sizes", type=str, help="comma-separated gallery sizes for the FAISS benchmark")
    mode.add_argument("--gallery-cosines", action="store_true",
                      help="measure the same/different-identity cosines the synthetic galleries follow "
                           "(the pack's embedder on ../shared/data/faces_aligned)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="pipeline+raw pairs, back to back (odd pairs raw first); medians reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=os.environ.get("VIPWATCH_BENCH_CACHE",
                                                              str(Path(tempfile.gettempdir()) / "vipwatch-bench")))
    parser.add_argument("--gallery-per-identity", type=int, default=20)
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray node (default: all)")
    parser.add_argument("--object-store-mb", type=int, default=None,
                        help="object store of the local Ray node (default: the crawl's, VIPWATCH_OBJECT_STORE_MB or 2048)")
    parser.add_argument("--raw-batch-size", type=int, default=16)
    parser.add_argument("--warmup-images", type=int, default=32,
                        help="crawl this many images first, untimed, so the measured crawl finds a running "
                             "cluster as a scheduled one does (0: measure a cold local cluster)")
    parser.add_argument("--ray-worker-niceness", type=int, default=os.nice(0),
                        help="nice value of the Ray workers (Ray's default is 15); default: this process's")
    parser.add_argument("--forgery", action=argparse.BooleanOptionalAction, default=True,
                        help="the forgery stage with the shipped ForgeryConfig, on both sides (default: on, as "
                             "shipped); --no-forgery: the face chain only")
    parser.add_argument("--second-pack", default=None,
                        help="the opt-in second embedder of the identity signal (ForgeryConfig.second_pack) on both "
                             "sides; the benchmark enrols its gallery too")
    parser.add_argument("--second-embedder-file", default=None, help="ONNX file name inside --second-pack")
    parser.add_argument("--region-consistency", default=None, metavar="shipped|off|URI",
                        help="ForgeryConfig.region_consistency on both sides (default: shipped)")
    parser.add_argument("--forgery-detector", action="append", default=None, metavar="KIND:URI",
                        help="artefact detector of the forgery stage on both sides, repeatable (default: the "
                             "shipped ForgeryConfig's, none)")
    parser.add_argument("--forgery-fusion", default=None,
                        help="ForgeryConfig.fusion_model on both sides (default: the shipped fusion of the pack)")
    parser.add_argument("--timeline", default=None, help="write Ray's task timeline (Chrome trace JSON) here")
    tuning = parser.add_argument_group("tuning (default: core.config.RayResources)")
    tuning.add_argument("--batch-size", type=int, default=None)
    tuning.add_argument("--actors", type=int, default=None)
    tuning.add_argument("--actor-cpus", type=float, default=None)
    tuning.add_argument("--actor-gpus", type=float, default=None)
    tuning.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads per analyzer actor")
    tuning.add_argument("--min-rows-per-file", type=int, default=None, help="deprecated, ignored by the crawl (one Parquet file per shard)")
    tuning.add_argument("--separate-pools", action="store_true", help="one actor pool per face stage (not fused)")
    tuning.add_argument("--shard-size", type=int, default=None,
                        help="inputs per committed shard (CrawlConfig.shard_size): one Ray Data run each")
    tuning.add_argument("--target-max-block-mb", type=int, default=None, help="DataContext.target_max_block_size")
    tuning.add_argument("--object-store-limit-mb", type=int, default=None,
                        help="DataContext execution_options.resource_limits.object_store_memory")
    gallery = parser.add_argument_group("gallery scale")
    gallery.add_argument("--dims", default="128")
    gallery.add_argument("--kinds", default="ivf,hnsw,identity_hnsw",
                         help="approximate kinds besides exact search: ivf, hnsw, identity_hnsw, identity_ivf")
    gallery.add_argument("--per-identity", type=int, default=10, help="references per identity")
    gallery.add_argument("--genuine-probes", type=int, default=4000)
    gallery.add_argument("--impostor-probes", type=int, default=4000, help="half set the threshold, half check it")
    gallery.add_argument("--target-fpir", type=float, default=0.01)
    gallery.add_argument("--ivf-nlist", type=int, default=None,
                         help="default 4 sqrt(N); identity_ivf: 4 sqrt(identities)")
    gallery.add_argument("--ivf-storage", choices=["flat", "fp16", "sq8"], default="flat")
    gallery.add_argument("--nprobe", default="16,64,128,256", help="IVF lists searched, swept")
    gallery.add_argument("--hnsw-m", type=int, default=32)
    gallery.add_argument("--ef-construction", type=int, default=40)
    gallery.add_argument("--ef-search", default="64,128,256,512", help="HNSW efSearch, swept")
    gallery.add_argument("--hnsw-max", type=int, default=1_000_000, help="skip HNSW builds above this size")
    gallery.add_argument("--shortlist", type=int, default=16,
                         help="identity_hnsw / identity_ivf: identities whose references are scored exactly")
    gallery.add_argument("--centroid-storage", choices=["flat", "fp16", "sq8"], default="flat",
                         help="identity_hnsw: how the HNSW stores the identity centroids")
    gallery.add_argument("--leave-one-out-probes", type=int, default=0,
                         help="also time index.calibration's leave-one-identity-out with this many probes")
    gallery.add_argument("--faiss-gpu", action="store_true", help="search on the GPU (faiss-gpu)")
    add_model_args(parser)
    parser.set_defaults(model_pack=str(SHARED_DIR / "models"), detector_file=DEFAULT_DETECTOR,
                        embedder_file=DEFAULT_EMBEDDER)
    add_logging_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    for key, value in {"RAY_DATA_DISABLE_PROGRESS_BARS": "1", "AWS_EC2_METADATA_DISABLED": "true",
                       "RAY_AUTH_MODE": "disabled"}.items():
        os.environ.setdefault(key, value)
    args = parse_args(argv)
    setup_logging(args.json_logs)
    # lazy: Ray Data reads the environment set above when it is first imported.
    from index.faiss_index import gpu_count
    from vipwatch.bench.crawl_vs_raw import image_benchmark
    from vipwatch.bench.gallery_scale import gallery_benchmark, measure_cosine_stats

    if args.gallery_cosines:
        report = {"mode": "gallery_cosines", "embedder": args.embedder_file,
                  **measure_cosine_stats(str(Path(args.model_pack) / args.embedder_file),
                                         str(SHARED_DIR / "data" / "faces_aligned"))}
    elif args.images:
        report = image_benchmark(args)
    else:
        def numbers(text: str) -> list[int]:
            return [int(value) for value in text.split(",") if value]

        report = gallery_benchmark(
            numbers(args.gallery_sizes), numbers(args.dims), [k for k in args.kinds.split(",") if k],
            per_identity=args.per_identity, genuine_probes=args.genuine_probes,
            impostor_probes=args.impostor_probes, target_fpir=args.target_fpir, ivf_nlist=args.ivf_nlist,
            nprobes=numbers(args.nprobe), ivf_storage=args.ivf_storage, hnsw_m=args.hnsw_m,
            ef_construction=args.ef_construction, ef_searches=numbers(args.ef_search), hnsw_max=args.hnsw_max,
            shortlist=args.shortlist, centroid_storage=args.centroid_storage,
            leave_one_out_probes=args.leave_one_out_probes, use_gpu=args.faiss_gpu or gpu_count() > 0,
            seed=args.seed)
    sys.stdout.flush()
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
