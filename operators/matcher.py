"""GalleryMatcher: adds identity_id / match_score / candidates to face rows by FAISS search."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from index.gallery import Gallery, embeddings_of
from core.config import MatchConfig, StorageConfig
from core.schema import STATUS_OK, WORK_SCHEMA, set_columns
from operators.forgery.quality import inter_ocular_px


class GalleryMatcher:
    def __init__(self, gallery_uri: Optional[str] = None, match: MatchConfig | None = None,
                 storage: StorageConfig | None = None, gallery: Optional[Gallery] = None):
        self.gallery = gallery or Gallery.load(gallery_uri, storage)
        self.match = match or MatchConfig()

    def __call__(self, batch: pa.Table | pd.DataFrame) -> pa.Table:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_pandas(batch, schema=WORK_SCHEMA,
                                                                                preserve_index=False)
        table = table.select(WORK_SCHEMA.names).cast(WORK_SCHEMA)
        rows = table.num_rows
        status = table.column("status").to_pylist()
        has_face = [s == STATUS_OK for s in status]
        identity, score, candidates = [None] * rows, [None] * rows, [None] * rows
        face_positions = [i for i, flag in enumerate(has_face) if flag]
        if face_positions:
            vectors = embeddings_of(table.take(face_positions))
            self.gallery.check_compatible(self._embedder_of(table), vectors.shape[1])
            threshold = self.gallery.match_threshold
            large_enough = self._large_enough(table.column("landmarks").take(face_positions).to_pylist())
            for position, found, identifiable in zip(face_positions, self.gallery.search(vectors, self.match.top_k),
                                                     large_enough):
                candidates[position] = [{"identity_id": i, "score": s} for i, s in found]
                if found:
                    score[position] = found[0][1]
                    identity[position] = found[0][0] if found[0][1] >= threshold and identifiable else None
        return set_columns(table, {
            "identity_id": identity, "match_score": score, "candidates": candidates,
            "match_threshold": [self.gallery.match_threshold if flag else None for flag in has_face],
            "gallery_version": [self.gallery.version] * rows,
        })

    def _large_enough(self, landmarks: list) -> list[bool]:
        """Per face: eyes at least min_identify_eye_px apart (a face without landmarks is not gated)."""
        floor = self.match.min_identify_eye_px
        return [floor <= 0 or points is None or inter_ocular_px(points) >= floor for points in landmarks]

    def _embedder_of(self, table: pa.Table) -> str:
        # model_pack is "<detector>+<embedder_id>"; only the embedder decides the space.
        packs = set(table.column("model_pack").to_pylist()) - {None}
        embedders = {p.rsplit("+", 1)[-1] for p in packs}
        if len(embedders) != 1:
            raise ValueError(f"one batch mixes embedders: {sorted(embedders)}")
        return embedders.pop()
