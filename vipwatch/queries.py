"""DuckDB queries over a crawl's Parquet, shown verbatim in docs/querying.md and run by
tests/unit/vipwatch/test_queries.py against a real crawl (the test also checks the doc still holds them).

Each query reads two relations, ``results`` (one row per face / image, OUTPUT_SCHEMA) and
``alerts`` (vipwatch/crawl/alerts.py): views over a local glob (``views``), or Python variables of
those names holding ``pyarrow.dataset`` objects (DuckDB scans them by name; the way to read
``s3://`` here, where DuckDB's httpfs extension cannot be downloaded).
"""
from __future__ import annotations

import glob

from vipwatch.crawl.alerts import ALERT_SCHEMA

# {job}: a job directory <output>/<job_id>, or <output>/* for every job below an output root.
# Results are the shard-* directories only: the job directory also holds _inputs.parquet and
# _alerts/, which a '**' glob would pick up (pyarrow, Spark and Athena skip '_' paths by themselves).
VIEWS = """CREATE OR REPLACE VIEW results AS
  SELECT * FROM read_parquet('{job}/shard-*/*.parquet', union_by_name = true);
CREATE OR REPLACE VIEW alerts AS
  SELECT * FROM read_parquet('{job}/_alerts/*/*.parquet', union_by_name = true);"""

TOP_FORGERIES_PER_VIP = """SELECT forgery_identity_id AS vip, round(forgery_score, 3) AS score, image_uri,
       frame_index, face_index, identity_id AS matched_as, reasons[1] AS first_reason
FROM results
WHERE verdict = 'suspected_forgery' AND forgery_identity_id IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY forgery_identity_id
                           ORDER BY forgery_score DESC, image_uri, face_index) <= 5
ORDER BY vip, score DESC, image_uri, face_index;"""

FACES_PER_IDENTITY = """SELECT coalesce(identity_id, '(unknown)') AS identity, count(*) AS faces,
       count(DISTINCT image_uri) AS images, round(avg(match_score), 3) AS mean_match_score,
       count(*) FILTER (verdict = 'suspected_forgery') AS suspected_forgeries
FROM results WHERE status = 'ok'
GROUP BY 1 ORDER BY faces DESC, identity;"""

ERROR_BREAKDOWN = """SELECT split_part(error, ':', 1) AS reason, count(DISTINCT image_uri) AS images,
       min(image_uri) AS example
FROM results WHERE status = 'error'
GROUP BY 1 ORDER BY images DESC, reason;"""

ALERTS_PER_VIP = """SELECT vip_identity_id AS vip, count(*) AS alerts, round(max(forgery_score), 3) AS max_score,
       count(DISTINCT image_uri) AS sources
FROM alerts GROUP BY 1 ORDER BY alerts DESC, vip;"""

QUERIES = {"top_forgeries_per_vip": TOP_FORGERIES_PER_VIP, "faces_per_identity": FACES_PER_IDENTITY,
           "error_breakdown": ERROR_BREAKDOWN, "alerts_per_vip": ALERTS_PER_VIP}


def views(job_glob: str) -> str:
    return VIEWS.format(job=job_glob.rstrip("/"))


def connect(job_glob: str):
    """A DuckDB connection with ``results`` and ``alerts`` views over a local job directory."""
    import duckdb

    connection = duckdb.connect()
    job = job_glob.rstrip("/")
    if glob.glob(f"{job}/_alerts/*/*.parquet"):
        connection.execute(views(job))
    else:
        # A crawl that raised no alert writes no alert file, and DuckDB refuses a view over a
        # glob that matches nothing: the alerts relation is then empty, with its real columns.
        results_view = views(job).split(";")[0] + ";"
        connection.execute(results_view)
        connection.register("alerts", ALERT_SCHEMA.empty_table())
    return connection
