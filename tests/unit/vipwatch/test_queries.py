"""docs/querying.md's DuckDB queries (vipwatch/queries.py) against a real crawl output, locally and on S3."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from core import storage
from core.schema import OUTPUT_SCHEMA
from vipwatch.crawl.alerts import read_alerts
from vipwatch.queries import (ALERTS_PER_VIP, ERROR_BREAKDOWN, FACES_PER_IDENTITY, QUERIES, TOP_FORGERIES_PER_VIP,
                              VIEWS, connect)
from vipwatch.crawl.summary import read_results

QUERYING_DOC = Path(__file__).resolve().parents[3] / "docs" / "querying.md"


def rows(connection, sql: str) -> list[dict]:
    cursor = connection.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


def test_docs_show_every_query_verbatim():
    text = QUERYING_DOC.read_text()
    for name, sql in {**QUERIES, "views": VIEWS}.items():
        assert sql in text, f"docs/querying.md lacks the current {name} query (vipwatch/queries.py)"


def test_queries_answer_what_the_rows_say(alert_crawl):
    job = alert_crawl["job_uri"]
    results = read_results(job).to_pylist()
    faces = [r for r in results if r["status"] == "ok"]
    connection = connect(job)

    per_identity = {r["identity"]: r for r in rows(connection, FACES_PER_IDENTITY)}
    expected = Counter(r["identity_id"] or "(unknown)" for r in faces)
    assert {k: v["faces"] for k, v in per_identity.items()} == expected
    assert sum(v["suspected_forgeries"] for v in per_identity.values()) == \
        sum(r["verdict"] == "suspected_forgery" for r in faces)

    errors = rows(connection, ERROR_BREAKDOWN)
    assert [(e["reason"], e["images"]) for e in errors] == [("not a decodable image", 1)]
    assert errors[0]["example"].endswith("broken.png")

    top = rows(connection, TOP_FORGERIES_PER_VIP)
    flagged = [r for r in faces if r["verdict"] == "suspected_forgery" and r["forgery_identity_id"]]
    assert top and {t["vip"] for t in top} == {r["forgery_identity_id"] for r in flagged}
    for vip in {t["vip"] for t in top}:
        scores = [t["score"] for t in top if t["vip"] == vip]
        assert scores == sorted(scores, reverse=True) and len(scores) == min(5, sum(
            r["forgery_identity_id"] == vip for r in flagged))

    alerts = read_alerts(job).to_pylist()
    per_vip = {r["vip"]: r["alerts"] for r in rows(connection, ALERTS_PER_VIP)}
    assert per_vip == Counter(a["vip_identity_id"] for a in alerts)


def test_same_sql_over_pyarrow_datasets_on_s3(alert_crawl, s3_server):
    """The s3:// route: pyarrow.dataset objects named results / alerts, scanned by DuckDB."""
    s3_server.create_bucket("query-out")
    storage.upload_dir(alert_crawl["job_uri"], "s3://query-out/alerts-test")
    filesystem, path = storage.resolve("s3://query-out/alerts-test")
    results = pads.dataset(path, filesystem=filesystem, format="parquet")  # skips _alerts, _done, _inputs
    alerts = pads.dataset(f"{path}/_alerts", filesystem=filesystem, format="parquet")
    assert results.to_table().num_rows == read_results(alert_crawl["job_uri"]).num_rows
    assert alerts.count_rows() == alert_crawl["summary"]["alerts"]
    local = connect(alert_crawl["job_uri"])
    for sql in QUERIES.values():
        assert duckdb.sql(sql).fetchall() == local.execute(sql).fetchall(), sql


def test_connect_answers_on_a_job_without_alerts(tmp_path):
    """A crawl that flagged nothing writes no _alerts/ file; the queries still run and say so."""
    shard = tmp_path / "job" / "shard-00000"
    shard.mkdir(parents=True)
    rows_in = {name: [None] for name in OUTPUT_SCHEMA.names}
    rows_in.update(image_uri=["a.jpg"], status=["no_face"], media_type=["image"])
    pq.write_table(pa.Table.from_pydict(rows_in, schema=OUTPUT_SCHEMA), shard / "part.parquet")
    connection = connect(str(tmp_path / "job"))
    assert rows(connection, ALERTS_PER_VIP) == []
    assert rows(connection, "SELECT count(*) AS n FROM results") == [{"n": 1}]
