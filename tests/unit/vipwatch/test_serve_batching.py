"""Several requests through one operator call must come back to the right request, with the
same rows each would get alone (real ONNX analyzer, real photos)."""
from __future__ import annotations

import pyarrow as pa

from operators.decode import ImageDecoder
from tests.support.shared_data import PHOTOS
from vipwatch.serve.batching import call_batched

INPUTS = {
    "upload://obama.jpg": (PHOTOS / "face_recognition" / "obama.jpg").read_bytes(),
    "upload://obama_and_biden.jpg":
        (PHOTOS / "face_recognition" / "knn_examples" / "test" / "obama_and_biden.jpg").read_bytes(),
    "upload://same-name.jpg": (PHOTOS / "face_recognition" / "biden.jpg").read_bytes(),
    "upload://notes.txt": b"plain text, not an image",
}


def decoded(uri: str, data: bytes) -> pa.Table:
    return ImageDecoder()(pa.table({"path": [uri], "bytes": pa.array([data], pa.binary())}))


def test_batched_requests_get_their_own_rows(onnx_analyzer):
    tables = [decoded(uri, data) for uri, data in INPUTS.items()]
    # Two requests may carry the same label (two uploads called image.jpg): positions, not
    # names, must keep them apart.
    tables.append(decoded("upload://same-name.jpg", INPUTS["upload://obama.jpg"]))
    together = call_batched(onnx_analyzer, tables)
    assert len(together) == len(tables)
    for table, result in zip(tables, together):
        alone = onnx_analyzer(table)
        assert set(result.column("image_uri").to_pylist()) == set(table.column("image_uri").to_pylist())
        assert result.column("status").to_pylist() == alone.column("status").to_pylist()
        assert result.column("bbox").to_pylist() == alone.column("bbox").to_pylist()
        assert result.column("image_sha256").to_pylist() == alone.column("image_sha256").to_pylist()
    statuses = [r.column("status").to_pylist() for r in together]
    assert statuses[0] == ["ok"] and statuses[3] == ["error"]
    assert len(statuses[1]) >= 2  # Obama and Biden
    assert together[2].column("image_sha256")[0] != together[4].column("image_sha256")[0]
