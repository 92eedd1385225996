"""The crawl's alerts table: VIP faces with verdict ``suspected_forgery``, with the aligned crop.

Layout: ``<output>/<job_id>/_alerts/shard-NNNNN/shard-NNNNN-alerts-<key hash>.parquet``. The
``_`` prefix keeps alerts out of the results dataset for pyarrow, Spark and Athena (they skip
``_`` paths), so readers of ``<output>/<job_id>/`` see one row schema; read alerts from
``<output>/<job_id>/_alerts/`` (``read_alerts``).

Written by the crawl's last map step before the transient crops are dropped (inside the fused
face-stage actor by default, else a task before the write), one file per batch that holds
alerts. The file name is a hash of the batch's alert keys, not a run id: a retried batch writes
the same file again instead of a copy, and a shard that is redone after an interruption has its
``_alerts`` directory cleared first (``ShardedJob.clear``).
"""
from __future__ import annotations

import hashlib
from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from core import storage
from core.images import encode_jpeg
from core.schema import ALIGNED_SIZE, OUTPUT_SCHEMA, STATUS_OK, VERDICT_SUSPECTED, to_output
from vipwatch.crawl.locate import ShardLocator

ALERTS_DIR = "_alerts"

# Output columns an alert keeps (no embedding: re-match from the results if needed).
ALERT_OUTPUT_COLUMNS = [
    "image_uri", "image_sha256", "media_type", "frame_index", "timestamp_s", "face_index", "bbox",
    "det_score", "identity_id", "match_score", "match_threshold", "forgery_identity_id", "forgery_score",
    "verdict", "reasons", "forgery_signals", "model_pack", "forgery_model", "gallery_version", "job_id",
    "processed_at",
]
ALERT_SCHEMA = pa.schema(
    [pa.field("vip_identity_id", pa.string(), nullable=False)]
    + [OUTPUT_SCHEMA.field(name) for name in ALERT_OUTPUT_COLUMNS]
    + [pa.field("face_jpeg", pa.binary())])


def alerts_uri(job_uri: str, shard_name: Optional[str] = None) -> str:
    root = storage.join(job_uri, ALERTS_DIR)
    return storage.join(root, shard_name) if shard_name else root


def alert_table(work: pa.Table) -> pa.Table:
    """WORK_SCHEMA rows -> ALERT_SCHEMA rows for the faces flagged against a VIP. The VIP is the
    identity the scorer checked the face against (``forgery_identity_id``): the matched identity,
    or a weak / inner-face candidate, since a swap of X often does not match X as a whole face."""
    vip = work.column("forgery_identity_id") if "forgery_identity_id" in work.column_names else None
    vip = pc.coalesce(vip, work.column("identity_id")) if vip is not None else work.column("identity_id")
    flagged = pc.and_(pc.and_(pc.equal(work.column("status"), STATUS_OK), pc.equal(work.column("verdict"), VERDICT_SUSPECTED)),
                      pc.is_valid(vip))
    flagged = pc.fill_null(flagged, False)
    if not pc.any(flagged).as_py():
        return ALERT_SCHEMA.empty_table()
    rows = work.filter(flagged)
    columns = {"vip_identity_id": vip.filter(flagged)}
    output = to_output(rows)
    for name in ALERT_OUTPUT_COLUMNS:
        columns[name] = output.column(name)
    # Encoded like the gallery's references.aligned_face_jpeg, so the report shows them alike.
    columns["face_jpeg"] = pa.array([encode_jpeg(raw, ALIGNED_SIZE) if raw else None
                                     for raw in rows.column("aligned_face").to_pylist()], pa.binary())
    return pa.Table.from_pydict(columns, schema=ALERT_SCHEMA)


def alert_file_name(shard_name: str, alerts: pa.Table) -> str:
    keys = sorted(zip(alerts.column("image_uri").to_pylist(), alerts.column("frame_index").to_pylist(),
                      alerts.column("face_index").to_pylist()), key=repr)
    digest = hashlib.sha256(repr(keys).encode()).hexdigest()[:16]
    return f"{shard_name}-alerts-{digest}.parquet"


class AlertProjection:
    """The crawl's last map step: writes the batch's alerts and returns the batch as OUTPUT_SCHEMA
    (crops dropped). With one shard (``shard_name``) the alerts go to ``alerts_dir``; with a
    ``locator`` (one execution over many shards, vipwatch/crawl/run.py) ``alerts_dir`` is the job's
    ``_alerts`` root and each alert goes to the directory of its image's shard, so that a redone
    shard clears exactly its own alerts."""

    def __init__(self, alerts_dir: str, shard_name: str = "shard", storage_config=None,
                 locator: Optional[ShardLocator] = None):
        self.alerts_dir = alerts_dir
        self.shard_name = shard_name
        self.storage = storage_config
        self.locator = locator

    def __call__(self, work: pa.Table) -> pa.Table:
        alerts = alert_table(work)
        if alerts.num_rows and self.locator is None:
            self._write(self.alerts_dir, self.shard_name, alerts)
        elif alerts.num_rows:
            shard_names = [self.locator.name_of(uri) for uri in alerts.column("image_uri").to_pylist()]
            for name in sorted(set(shard_names)):
                mask = pa.array([shard == name for shard in shard_names])
                self._write(storage.join(self.alerts_dir, name), name, alerts.filter(mask))
        return to_output(work)

    def _write(self, directory: str, shard_name: str, alerts: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(alerts, sink)
        storage.write_bytes(storage.join(directory, alert_file_name(shard_name, alerts)),
                            sink.getvalue().to_pybytes(), self.storage)


def read_alerts(job_uri: str, storage_config=None) -> pa.Table:
    """Every alert of a job (or of several: an ``_alerts`` directory or the job directory)."""
    uri = job_uri if job_uri.rstrip("/").endswith(ALERTS_DIR) else alerts_uri(job_uri)
    if not storage.exists(uri, storage_config):
        return ALERT_SCHEMA.empty_table()
    filesystem, path = storage.resolve(uri, storage_config)
    return pads.dataset(path, filesystem=filesystem, format="parquet", schema=ALERT_SCHEMA).to_table()
