"""One in-process run of the face chain (operators/stages.py): read -> ImageDecoder -> each
stage's operator, batch by batch, each step timed. The raw-model loop of the benchmark,
enrolment, calibration and evaluation all run the chain through this; the crawl runs the same
stages in Ray Data actor pools, Serve one deployment per stage.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import pyarrow as pa

from core import storage
from core.config import DecodeConfig, StorageConfig
from operators.chain import OperatorChain
from operators.decode import ImageDecoder
from operators.stages import Stage, chain_steps

BATCH = 32


def step_name(step: Any) -> str:
    return getattr(step, "__name__", type(step).__name__)


class ChainRunner:
    """Batch-in / batch-out steps called one after another in this process. A batch is a table
    of ``path`` + ``bytes`` (what Ray Data's read gives the decoder), or decoded rows when the
    steps start after the decoder."""

    def __init__(self, steps: Sequence[Callable], storage_config: Optional[StorageConfig] = None,
                 batch_size: int = BATCH):
        self.steps = list(steps)
        self.storage_config = storage_config
        self.batch_size = batch_size
        self.seconds = dict.fromkeys((step_name(s) for s in self.steps), 0.0)

    @classmethod
    def from_stages(cls, stages: list[Stage], decoder: Optional[ImageDecoder] = None,
                    overrides: Optional[dict] = None, finish: Sequence[Callable] = (),
                    storage_config: Optional[StorageConfig] = None, batch_size: int = BATCH) -> "ChainRunner":
        """Builds every stage's operator here (shared gallery and model pack, as in the crawl's
        fused actor), after ``decoder`` and before the ``finish`` steps (e.g. to_output)."""
        operators = OperatorChain(chain_steps(stages, overrides)).operators
        return cls([decoder or ImageDecoder(DecodeConfig()), *operators, *finish], storage_config, batch_size)

    def operator(self, kind: type) -> Any:
        """The step that is a ``kind`` (its gallery, pack or detectors describe a run)."""
        return next(step for step in self.steps if isinstance(step, kind))

    def run_batch(self, batch: pa.Table) -> pa.Table:
        for step in self.steps:
            started = time.perf_counter()
            batch = step(batch)
            self.seconds[step_name(step)] += time.perf_counter() - started
        return batch

    def run_uris(self, uris: list[str]) -> Optional[pa.Table]:
        """Reads and runs ``uris`` in batches: every input's rows, concatenated (None for none)."""
        tables = []
        for start in range(0, len(uris), self.batch_size):
            chunk = uris[start:start + self.batch_size]
            batch = pa.table({"path": chunk, "bytes": pa.array([storage.read_bytes(u, self.storage_config) for u in chunk],
                                                                pa.binary())})
            tables.append(self.run_batch(batch))
        return pa.concat_tables(tables) if tables else None
