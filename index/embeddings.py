"""Embedding columns (Arrow list<float32>) as NumPy matrices."""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def embeddings_of(table: pa.Table, column: str = "embedding") -> np.ndarray:
    values = table.column(column).combine_chunks()
    if len(values) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return np.asarray(values.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(values), -1)
