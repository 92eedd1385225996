"""The crawl: a Ray Data pipeline over object storage, by concern:

    read_binary_files (object storage) -> ImageDecoder (CPU actor pool; Ray Data fuses the read
      into it) -> FaceAnalyzer (actor pool; GPU when present) -> GalleryMatcher -> [ForgeryScorer]
      -> output projection (+ alerts) -> write_parquet

The face stages share one actor pool unless one needs GPUs of its own (`stage_pools`).

Streaming: blocks flow through every stage at once, so memory stays bounded by the
in-flight blocks, not by the input size.

    inputs   what to crawl: a prefix or a manifest of URIs (or a range of its lines), page by page
    ordering the listed URIs sorted and de-duplicated in bounded memory (runs spilled, merged)
    pools    the face stages (operators/stages.py) grouped into actor pools
    dataset  the Ray Data plan of one shard: read -> decode -> pools -> projection
    run      run_crawl: shard by shard, each written to Parquet and committed
    shards   the job's layout, commit markers and resumption
    alerts   the alerts table written beside the results
    summary  the counts a finished job reports
"""
