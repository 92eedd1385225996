"""The crawl output schema: one row per face, or one row per image with no face / an error.

Documented in README.md ("Output schema"); keep it stable: add columns, never rename.
Operators return ``pa.Table`` with WORK_SCHEMA so that a batch with zero faces keeps its types.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import pyarrow as pa

STATUS_OK = "ok"
STATUS_NO_FACE = "no_face"
STATUS_ERROR = "error"

VERDICT_AUTHENTIC = "authentic"
VERDICT_SUSPECTED = "suspected_forgery"
# No VIP involved: the generic score only, never a verdict on anyone.
VERDICT_UNVERIFIED = "unverified"
# Verdicts of faces checked against a VIP's references.
VIP_VERDICTS = (VERDICT_AUTHENTIC, VERDICT_SUSPECTED)

CANDIDATE = pa.struct([("identity_id", pa.string()), ("score", pa.float32())])
SIGNAL = pa.struct([("name", pa.string()), ("value", pa.float32())])

OUTPUT_FIELDS = [
    pa.field("image_uri", pa.string(), nullable=False),
    pa.field("image_sha256", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("media_type", pa.string()),          # image | video
    pa.field("frame_index", pa.int32()),          # videos only
    pa.field("timestamp_s", pa.float64()),        # videos only: frame time in seconds
    pa.field("image_width", pa.int32()),          # original pixels (before any downscale)
    pa.field("image_height", pa.int32()),
    pa.field("face_index", pa.int32()),
    pa.field("bbox", pa.list_(pa.float32(), 4)),  # x1, y1, x2, y2 in original pixels
    pa.field("landmarks", pa.list_(pa.float32(), 10)),  # 5 points (x, y) in original pixels
    pa.field("det_score", pa.float32()),
    pa.field("identity_id", pa.string()),         # null when no identity passes the threshold
    pa.field("match_score", pa.float32()),        # cosine similarity to the best identity
    pa.field("match_threshold", pa.float32()),
    pa.field("candidates", pa.list_(CANDIDATE)),  # top-k identities, best first
    pa.field("embedding", pa.list_(pa.float32())),
    pa.field("forgery_score", pa.float32()),      # calibrated P(manipulated), null until scored
    pa.field("verdict", pa.string()),             # authentic | suspected_forgery | unverified
    pa.field("reasons", pa.list_(pa.string())),
    pa.field("forgery_signals", pa.list_(SIGNAL)),
    pa.field("model_pack", pa.string()),
    pa.field("forgery_model", pa.string()),
    pa.field("gallery_version", pa.string()),
    pa.field("job_id", pa.string()),
    pa.field("processed_at", pa.timestamp("us", tz="UTC")),
    # The VIP whose references the verdict was checked against: identity_id, or a weak /
    # inner-face candidate (a swap of X often does not match X as a whole); null if unverified.
    pa.field("forgery_identity_id", pa.string()),
]

# Carried between operators, dropped before writing: RGB uint8 crops, row-major.
TRANSIENT_FIELDS = [
    pa.field("aligned_face", pa.binary()),   # 112x112x3, ArcFace template
    pa.field("context_face", pa.binary()),   # 224x224x3, same template zoomed out 2x (whole head); null without the forgery stage
]

OUTPUT_SCHEMA = pa.schema(OUTPUT_FIELDS)
WORK_SCHEMA = pa.schema(OUTPUT_FIELDS + TRANSIENT_FIELDS)
ALIGNED_SIZE = 112
CONTEXT_SIZE = 224


def table_from_rows(rows: Iterable[Mapping[str, Any]], schema: pa.Schema = WORK_SCHEMA) -> pa.Table:
    """Rows (dicts, missing keys = null) -> table with exactly ``schema``."""
    rows = list(rows)
    columns = {field.name: [row.get(field.name) for row in rows] for field in schema}
    return pa.Table.from_pydict(columns, schema=schema)


def set_columns(table: pa.Table, values: Mapping[str, Iterable[Any]]) -> pa.Table:
    """Replace whole columns of a WORK/OUTPUT table, keeping each column's declared type."""
    for name, column in values.items():
        index = table.schema.get_field_index(name)
        field = table.schema.field(index)
        table = table.set_column(index, field, pa.array(list(column), type=field.type))
    return table


def to_output(table: pa.Table) -> pa.Table:
    return table.select(OUTPUT_SCHEMA.names).cast(OUTPUT_SCHEMA)
