"""Run one batch operator over several requests' tables at once and give each request its rows.

The operators are the crawl's (batch-in / batch-out Arrow); Serve's ``@serve.batch`` hands us a
list of per-request tables. Every row of one request carries the same ``image_uri`` (one image,
or the frames of one video), and every operator passes ``image_uri`` through, so it serves as
the request key: it is swapped for the request's position before the call and restored after.
"""
from __future__ import annotations

from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

KEY = "image_uri"


def _with_key(table: pa.Table, value: str) -> pa.Table:
    index = table.schema.get_field_index(KEY)
    return table.set_column(index, table.schema.field(index), pa.array([value] * table.num_rows, pa.string()))


def call_batched(operator: Callable[[pa.Table], pa.Table], tables: list[pa.Table]) -> list[pa.Table]:
    originals = []
    for table in tables:
        uris = set(table.column(KEY).to_pylist())
        if len(uris) > 1:
            raise ValueError(f"one request carries several {KEY} values: {sorted(map(str, uris))[:3]}")
        originals.append(uris.pop() if uris else None)
    combined = pa.concat_tables([_with_key(table, str(position)) for position, table in enumerate(tables)])
    result = operator(combined)
    keys = result.column(KEY)
    return [_with_key(result.filter(pc.equal(keys, str(position))), original)
            for position, original in enumerate(originals)]
