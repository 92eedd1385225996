"""FaceAnalyzer: decoded images -> one row per face (detect, align, embed), plus one row per
image with no face or a decode error. Holds the model pack: run it in an actor pool."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from operators.align import ARCFACE_TEMPLATE, align_face, crop_from_aligned_input
from operators.decode import DECODED_SCHEMA, pixels_of
from operators.packs import ModelPack, load_model_pack
from core.config import ModelPackConfig, StorageConfig
from core.schema import STATUS_ERROR, STATUS_NO_FACE, STATUS_OK, WORK_SCHEMA, table_from_rows

PASSTHROUGH = ["image_uri", "image_sha256", "status", "error", "media_type", "frame_index", "timestamp_s",
               "image_width", "image_height"]


class FaceAnalyzer:
    def __init__(self, model: ModelPackConfig | None = None, aligned: bool = False, job_id: Optional[str] = None,
                 storage: StorageConfig | None = None, pack: ModelPack | None = None, threads: int = 0,
                 context_crops: bool = True):
        self.model_config = model or ModelPackConfig()
        self.pack = pack or load_model_pack(self.model_config, storage, threads=threads)
        self.aligned = aligned
        self.job_id = job_id
        # The 224x224 context crop feeds only the forgery stage: without it, it is not made.
        self.context_crops = context_crops

    def __call__(self, batch: pa.Table | pd.DataFrame) -> pa.Table:
        if isinstance(batch, pd.DataFrame):
            batch = pa.Table.from_pandas(batch, schema=DECODED_SCHEMA, preserve_index=False)
        rows: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        for record in batch.to_pylist():
            base = {key: record.get(key) for key in PASSTHROUGH}
            base.update(model_pack=self.pack.name, job_id=self.job_id)
            if base["status"] != STATUS_OK:
                rows.append(base)
                continue
            try:
                faces = self._faces(pixels_of(record), record)
            except Exception as exc:  # one bad image must not fail the batch
                rows.append({**base, "status": STATUS_ERROR, "error": f"face analysis failed: {type(exc).__name__}: {exc}"})
                continue
            if not faces:
                rows.append({**base, "status": STATUS_NO_FACE})
                continue
            for face_index, face in enumerate(faces):
                row = {**base, "face_index": face_index, **face}
                rows.append(row)
                pending.append(row)
        if pending:
            embeddings = self.pack.embed([np.frombuffer(r["aligned_face"], np.uint8).reshape(112, 112, 3) for r in pending])
            for row, vector in zip(pending, embeddings):
                row["embedding"] = vector.tolist()
        now = pd.Timestamp.now(tz="UTC")
        for row in rows:
            row["processed_at"] = now
        return table_from_rows(rows, WORK_SCHEMA)

    def _faces(self, rgb: np.ndarray, record: dict) -> list[dict[str, Any]]:
        height, width = rgb.shape[:2]
        if self.aligned:
            aligned, context = crop_from_aligned_input(rgb)
            landmarks = ARCFACE_TEMPLATE * np.array([width / 112.0, height / 112.0], dtype=np.float32)
            return [_face_row(np.array([0, 0, width, height], np.float32), landmarks, 1.0, aligned,
                              context if self.context_crops else None, 1.0)]
        # Boxes are reported in original pixels; the decoder may have downscaled.
        scale = float(record["image_width"]) / width
        faces = []
        for detection in sorted(self.pack.detect(rgb), key=lambda d: -d.score):
            box = detection.bbox
            if min(box[2] - box[0], box[3] - box[1]) < self.model_config.min_face_px:
                continue
            aligned, context = align_face(rgb, detection.landmarks, context=self.context_crops)
            faces.append(_face_row(box, detection.landmarks, detection.score, aligned, context, scale))
        return faces


def _face_row(box, landmarks, score, aligned, context, scale) -> dict[str, Any]:
    return {"bbox": (np.asarray(box, np.float32) * scale).tolist(),
            "landmarks": (np.asarray(landmarks, np.float32).reshape(-1) * scale).tolist(),
            "det_score": float(score), "aligned_face": aligned.tobytes(),
            "context_face": None if context is None else context.tobytes()}

