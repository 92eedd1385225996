"""The crawl: a Ray Data pipeline over object storage, by concern:

    ReadInputs (reader.py: row ranges of _inputs.parquet, objects fetched by the read tasks)
      -> ImageDecoder (CPU actor pool; Ray Data fuses the read into it) -> FaceAnalyzer (actor pool; GPU when present) -> GalleryMatcher -> [ForgeryScorer]
      -> output projection (+ alerts) -> write_parquet

The face stages share one actor pool unless one needs GPUs of its own (`stage_pools`).

Streaming: blocks flow through every stage at once, so memory stays bounded by the
in-flight blocks, not by the input size.

    inputs   what to crawl: a prefix or a manifest of URIs (or a range of its lines), page by page
    ordering the listed URIs sorted and de-duplicated in bounded memory (runs spilled, merged)
    pools    the face stages (operators/stages.py) grouped into actor pools
    reader   the read tasks: rows of _inputs.parquet, each object fetched (retried, or a reason)
    dataset  the Ray Data plan of a job's pending shards: read -> decode -> pools -> projection
    run      run_crawl: one execution, each shard written to Parquet and committed as it streams out
    shards   the job's layout, commit markers and resumption
    alerts   the alerts table written beside the results
    summary  the counts a finished job reports
"""
