"""The alerts table of a real crawl (jobs.crawl on swaps of two VIPs), its layout and idempotence."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
from PIL import Image

from vipwatch.crawl.alerts import ALERT_SCHEMA, ALERTS_DIR, AlertProjection, alert_table, read_alerts
from core.schema import OUTPUT_SCHEMA, WORK_SCHEMA, table_from_rows
from vipwatch.crawl.shards import Shard, ShardedJob
from vipwatch.crawl.summary import read_results

from tests.conftest import ALERT_IDENTITIES


def test_alerts_are_the_vip_faces_flagged_as_forgeries(alert_crawl):
    results = read_results(alert_crawl["job_uri"]).to_pylist()
    alerts = read_alerts(alert_crawl["job_uri"])
    assert alerts.schema == ALERT_SCHEMA
    flagged = {(r["image_uri"], r["face_index"]) for r in results
               if r["verdict"] == "suspected_forgery" and r["forgery_identity_id"]}
    rows = alerts.to_pylist()
    assert flagged and {(a["image_uri"], a["face_index"]) for a in rows} == flagged
    assert len(rows) == len(flagged)  # each alert once
    # every swap raises an alert and no real photo does (as the scorer does on these swaps)
    fakes = {r["image_uri"] for r in results if Path(r["image_uri"]).name.startswith("fake_")}
    assert {a["image_uri"] for a in rows} == fakes
    assert {a["vip_identity_id"] for a in rows} & set(ALERT_IDENTITIES)
    for alert in rows:
        # checked against the VIP whose inner face was pasted in, or the one whose photo received it
        assert alert["vip_identity_id"] in Path(alert["image_uri"]).name
        assert alert["reasons"] and alert["forgery_score"] is not None and alert["job_id"] == "alerts-test"
        crop = Image.open(io.BytesIO(alert["face_jpeg"]))
        assert crop.format == "JPEG" and crop.size == (112, 112)


def test_results_readers_do_not_see_alerts(alert_crawl):
    job = Path(alert_crawl["job_uri"])
    assert list((job / ALERTS_DIR).glob("shard-*/shard-*-alerts-*.parquet"))
    table = pads.dataset(str(job), format="parquet").to_table()
    assert table.schema.names == OUTPUT_SCHEMA.names
    assert len(set(table.column("image_uri").to_pylist())) == alert_crawl["inputs"]


def test_alert_files_are_idempotent_and_cleared_with_their_shard(alert_crawl, tmp_path):
    """A block written twice (retried task) is one file; redoing a shard removes its old alerts."""
    alerts = read_alerts(alert_crawl["job_uri"]).slice(0, 1).to_pylist()[0]
    work = table_from_rows([{**{k: alerts[k] for k in OUTPUT_SCHEMA.names if k in alerts}, "status": "ok",
                             "aligned_face": bytes(112 * 112 * 3)}], WORK_SCHEMA)
    stranger = table_from_rows([{"image_uri": "x.jpg", "status": "ok", "verdict": "unverified"}], WORK_SCHEMA)
    job = ShardedJob(str(tmp_path / "job"), [Shard(0, "a", 1)], resumed=False)
    project = AlertProjection(str(tmp_path / "job" / ALERTS_DIR / "shard-00000"), "shard-00000")
    for _ in range(2):
        out = project(pa.concat_tables([work, stranger]))
        assert out.schema == OUTPUT_SCHEMA and out.num_rows == 2
    assert alert_table(stranger).num_rows == 0
    assert read_alerts(job.uri).num_rows == 1
    job.clear(job.shards[0])
    assert read_alerts(job.uri).num_rows == 0


def test_crawl_logs_are_json_and_end_with_one_summary_line(alert_crawl):
    summary = alert_crawl["summary"]
    assert summary["alerts"] == read_alerts(alert_crawl["job_uri"]).num_rows > 0
    assert summary["images_in_output"] == alert_crawl["inputs"] and summary["error_images"] == 1
    records = []
    for line in alert_crawl["stderr"].splitlines():
        # vipwatch's own loggers in plain format would start "<date> <time> LEVEL vipwatch..."
        assert not re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \w+ (vipwatch|jobs|index|operators)\b", line), line
        if line.startswith("{"):
            records.append(json.loads(line))
    ours = [r for r in records if r["logger"].split(".")[0] in ("vipwatch", "jobs")]
    assert {"vipwatch.ray_cluster", "jobs.crawl"} <= {r["logger"] for r in ours}
    assert all({"time", "level", "logger", "message"} <= set(r) for r in ours)
    summary_lines = [r["message"] for r in ours if r["message"].startswith("crawl alerts-test:")]
    assert len(summary_lines) == 1
    line = summary_lines[0]
    for figure in (f"{summary['images_in_output']} images", f"{summary['faces']} faces",
                   f"{summary['identified_faces']} VIP matches", f"{summary['suspected_forgeries']} suspected",
                   f"{summary['error_images']} errors", "images/s"):
        assert figure in line, (figure, line)


def test_progress_bars_on_by_default_off_for_json_logs(monkeypatch):
    from ray.data import DataContext

    from jobs.crawl import configure_progress, parse_config

    base = ["--input", "in", "--gallery", "g", "--output", "out"]
    for extra, expected in (([], True), (["--no-progress"], False), (["--json-logs"], False)):
        monkeypatch.setattr(DataContext.get_current(), "enable_progress_bars", True)
        _, args = parse_config(base + extra)
        assert configure_progress(args) is expected and DataContext.get_current().enable_progress_bars is expected
